//! archc's CPU kernels (convolution, pooling, batch norm, the SGD step): the hot loops of
//! a training step, on contiguous `f32` slices in PyTorch's NCHW layout, rayon-parallel
//! on the current pool.
//!
//! They know nothing of Burn; `src/ops/kernels/` in archc wraps them as Burn ops
//! (with their backward passes) on burn-flex. Keeping them here lets the build optimise
//! them while archc's own crate stays fast to compile.

pub mod batch_norm;
pub mod conv;
mod dot;
pub mod pad;
pub mod pool;
pub mod sgd;

use std::mem::{ManuallyDrop, MaybeUninit};

/// The widest vectors this CPU has, detected at run time: the crate is built for
/// baseline x86-64 (4 lanes), and its kernels that can use more are written for AVX2
/// with FMA and for AVX-512 (`dot.rs`, `conv/direct.rs`) or compiled for them as well
/// (`multiversion!`: Winograd's transforms, batch norm, ReLU's gradient, the SGD step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// AVX-512 F with VL (every AVX-512 CPU since Skylake-X has both).
    Avx512,
    Avx2,
    Baseline,
}

impl Width {
    /// The CPU's width, or a narrower one where `ARCHC_KERNEL_WIDTH` asks for it
    /// (`avx2`, `baseline`; `avx512` or empty is the CPU's own): the tests run the
    /// kernels again in each width this CPU can stand in for (`tests/kernels.rs`), so
    /// that the narrower versions are checked on a machine that would never take them.
    /// The variable cannot widen: a width the CPU lacks would be undefined behaviour.
    /// Only this crate's own choices follow it (the `gemm` crate picks its own).
    pub(crate) fn detect() -> Width {
        static WIDTH: std::sync::OnceLock<Width> = std::sync::OnceLock::new();
        *WIDTH.get_or_init(|| {
            let cpu = Width::of_cpu();
            let asked = std::env::var_os("ARCHC_KERNEL_WIDTH").map(|v| v.to_string_lossy().trim().to_ascii_lowercase());
            match asked.as_deref() {
                None | Some("" | "avx512") => cpu,
                Some("avx2") if cpu == Width::Avx512 => Width::Avx2,
                Some("avx2") => cpu,
                Some("baseline") => Width::Baseline,
                Some(other) => panic!("ARCHC_KERNEL_WIDTH is {other:?}: it takes avx512, avx2 or baseline"),
            }
        })
    }

    fn of_cpu() -> Width {
        #[cfg(target_arch = "x86_64")]
        {
            // AVX-512 only with AVX2 and FMA as well, which its code paths also take
            // (every such CPU has them; a virtual machine's flags need not say so).
            let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if avx2 && std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
                return Width::Avx512;
            }
            if avx2 {
                return Width::Avx2;
            }
        }
        Width::Baseline
    }

    fn name(self) -> &'static str {
        match self {
            Width::Avx512 => "avx512",
            Width::Avx2 => "avx2",
            Width::Baseline => "baseline",
        }
    }
}

/// The vector width the kernels run in: `avx512`, `avx2` or `baseline` (see
/// `ARCHC_KERNEL_WIDTH` above).
pub fn kernel_width() -> &'static str {
    Width::detect().name()
}

/// `fn $name(width: Width, args) -> R`: `$body(args)`, an `#[inline(always)]` function,
/// compiled for `width` (the crate is built for baseline x86-64, whose 4-lane loops left
/// batch norm's passes and Winograd's transforms compute-bound). Only for code whose results do not depend on
/// the width: Rust does not fuse multiplies and adds on its own, so the same operations
/// in the same order give the same values in every width. `width` must come from
/// `Width::detect`.
macro_rules! multiversion {
    ($name:ident => $body:ident ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty) => {
        fn $name(width: $crate::Width, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                // With VL, so that the 128- and 256-bit AVX-512 helpers the bodies call
                // (`#[inline]`, built for these features) inline into them.
                #[target_feature(enable = "avx512f,avx512vl")]
                fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                match width {
                    // SAFETY: `Width::detect` found the feature on this CPU.
                    $crate::Width::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::Width::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::Width::Baseline => {}
                }
            }
            let _ = width;
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Values per parallel task, at least: below this, waking the pool's threads costs
/// more than the loop (a batch of one image was mostly threads sleeping and waking).
const GRAIN: usize = 1 << 14;

/// How many items of `per_item` values one parallel task should take (`with_min_len`).
pub(crate) fn min_items(per_item: usize) -> usize {
    GRAIN.div_ceil(per_item.max(1))
}

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

/// What follows a layer's output in the same pass over it (the fused chain
/// conv/batch norm → residual add → ReLU): `relu(y + residual)`, where `residual` has
/// the output's layout and length.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.residual.is_none() && !self.relu
    }

    /// Applies the epilogue to `out`, the part of the output that starts at `offset`.
    #[inline(always)]
    pub(crate) fn apply(&self, out: &mut [f32], offset: usize) {
        match (self.residual, self.relu) {
            (Some(r), relu) => {
                let r = &r[offset..][..out.len()];
                for (o, &r) in out.iter_mut().zip(r) {
                    *o = if relu { relu_of(*o + r) } else { *o + r };
                }
            }
            (None, true) => out.iter_mut().for_each(|o| *o = relu_of(*o)),
            (None, false) => {}
        }
    }
}

/// max(v, 0), NaN giving 0 as burn-flex's ReLU does (PyTorch's keeps NaN): the fused
/// chains must give what the steps they replace give.
#[inline(always)]
fn relu_of(v: f32) -> f32 {
    v.max(0.0)
}

/// ReLU's gradient from its output (`relu_of`'s, never NaN): `dy` where the output is
/// positive, else 0.
#[inline(always)]
pub(crate) fn relu_gradient(dy: f32, output: f32) -> f32 {
    // As a bit mask rather than a branch, so that the loops using it vectorise.
    let keep = (output > 0.0) as u32;
    f32::from_bits(dy.to_bits() & keep.wrapping_neg())
}

#[inline(always)]
fn relu_backward_chunk(out: &mut [MaybeUninit<f32>], dy: &[f32], y: &[f32]) {
    for ((o, &g), &y) in out.iter_mut().zip(dy).zip(y) {
        o.write(relu_gradient(g, y));
    }
}
multiversion!(relu_backward_in => relu_backward_chunk(out: &mut [MaybeUninit<f32>], dy: &[f32], y: &[f32]) -> ());

/// `dy` through ReLU's mask (`output` is the ReLU's output), in parallel.
pub fn relu_backward(dy: &[f32], output: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    assert_eq!(dy.len(), output.len(), "ReLU gradient length");
    let mut dz = uninit(dy.len());
    const CHUNK: usize = 1 << 12;
    let width = Width::detect();
    dz.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK))
        .zip(output.par_chunks(CHUNK))
        .with_min_len(min_items(CHUNK))
        .for_each(|((out, dy), y)| relu_backward_in(width, out, dy, y));
    // SAFETY: the chunks cover `dz`, and each value was written.
    unsafe { assume_init(dz) }
}
