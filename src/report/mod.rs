//! The leaf beneath every job that writes for people: numbers and tables as they are
//! read (`format`), files written whole or not at all (`files`), and the warnings a
//! job gives without stopping (`warning`).

pub mod files;
mod format;
mod warning;

pub use files::write_atomic;
pub use format::{aligned, bytes, human, markdown, thousands};
pub use warning::Warning;
