//! archc's CPU kernels (convolution, pooling, batch norm): the hot loops of a training step, on contiguous `f32` slices in
//! PyTorch's NCHW layout, rayon-parallel on the current pool.
//!
//! They know nothing of Burn; `src/ops/kernels/` in archc wraps them as Burn ops
//! (with their backward passes) on burn-flex. Keeping them here lets the build optimise
//! them while archc's own crate stays fast to compile.

pub mod batch_norm;
pub mod conv;
mod dot;
pub mod pool;

use std::mem::{ManuallyDrop, MaybeUninit};

/// Room for `len` values that the caller will write, without first zeroing them: the
/// outputs here are written exactly once each, and zeroing a batch's activations first
/// was a tenth of an inference pass.
pub(crate) fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` values need no initialisation.
    unsafe { v.set_len(len) };
    v
}

/// The values of `v`, every one of which has been written.
///
/// # Safety
/// Every element of `v` must be initialised.
pub(crate) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = ManuallyDrop::new(v);
    // SAFETY: same allocation, layout and length; the caller guarantees initialisation.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}
