//! archc: a compiler for neural-network architectures.
//!
//! The pipeline is the layout, and imports only point down it (`tests/layering.rs`
//! checks): leaves at the bottom (`source`, `diagnostics` for mistakes in `.arch`
//! files, `error` for everything else, `format` for numbers as people read them, `tensor`,
//! `report`, `plots`); then the compiler,
//! `syntax` (text → AST) → `elaborate` (AST → shaped IR, with `ops` and `ir`) → `cost`
//! (params, MACs, memory) and `lower` (Burn modules), with `data`; `graph` (pictures) and
//! `diff` (what an edit changed) read the IR and its costs; then the jobs, which
//! take typed requests, report through events and return typed results (`train`,
//! `bench`, `analyze`, `compare`, `predict`); and `cli` on top, which parses arguments
//! and prints.

pub mod analyze;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod data;
pub mod diagnostics;
pub mod diff;
pub mod elaborate;
pub mod error;
pub mod export;
pub mod fmt;
pub mod format;
pub mod graph;
pub mod ir;
pub mod lower;
pub mod lsp;
pub mod ops;
pub mod plots;
pub mod predict;
pub mod report;
pub mod source;
pub mod suggest;
pub mod syntax;
pub mod tensor;
pub mod train;
