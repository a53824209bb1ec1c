//! Syntax: `.arch` text → AST with spans. Knows nothing of shapes or ops.

pub mod ast;
mod parse;

pub use parse::{MAX_NESTING, Rule, code_end, concrete_tree, parse, parse_expression};
