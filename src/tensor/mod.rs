//! Tensors as every later stage sees them, beneath both the IR and the ops: the
//! shapes values can have, lowered values (Burn tensors with the batch first), compute
//! precision with autocast's rules, and PyTorch's default initialisations. Nothing here
//! imports anything above it.

pub mod init;
pub mod precision;
mod shape;
mod value;

pub use precision::Precision;
pub use shape::Shape;
pub use value::{Value, cyclic_labels};
