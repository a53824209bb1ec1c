//! archc's CPU kernels: the hot loops of a training step, on contiguous `f32` slices in
//! PyTorch's NCHW layout, rayon-parallel on the current pool.
//!
//! They know nothing of Burn; `src/ops/*_kernel.rs` in archc wrap them as Burn ops
//! (with their backward passes) on burn-flex. Keeping them here lets the build optimise
//! them while archc's own crate stays fast to compile.

pub mod batch_norm;
pub mod conv;
