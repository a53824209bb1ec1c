//! The leaf beneath every job that writes for people: numbers and tables as they are
//! read (from the leaf `format`, which errors use too), files written whole or not at
//! all (`files`), and the warnings a job gives without stopping (`warning`).

pub mod files;
mod warning;

pub use crate::format::{aligned, bytes, human, markdown, thousands};
pub use files::write_atomic;
pub use warning::Warning;
