//! archc: a compiler for neural-network architectures.
//!
//! The pipeline is the layout: `syntax` (text → AST) → `elaborate` (AST → shaped IR)
//! → `ir` → `cost` (params, MACs, memory) and `lower` (Burn modules) → `train` and
//! `bench`; `diagnostics` renders what goes wrong in a `.arch` file, `error` everything
//! else.

pub mod analyze;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod data;
pub mod diagnostics;
pub mod elaborate;
pub mod error;
pub mod ir;
pub mod lower;
pub mod ops;
pub mod plots;
pub mod predict;
pub mod report;
pub mod source;
pub mod suggest;
pub mod syntax;
pub mod tensor;
pub mod train;
