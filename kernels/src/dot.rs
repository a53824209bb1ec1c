//! `dst [m × n] += a [m × p] · bᵀ` for `b` [n × p]: every output is the dot product of
//! two contiguous rows (rows of `b` may start further apart than p). This is a
//! convolution's weight gradient (a = the output gradient, b = the unfolded image),
//! where m is the channel count (16-64) and p the output positions (up to thousands).
//!
//! A general GEMM does this shape badly: it first packs both operands, and with m that
//! small each packed value is used only m times, so the packing (a transposing gather of
//! `b`) costs more than the arithmetic; measured at 9-26 GFLOP/s on one core. Here
//! register blocks of 4 rows of `a` × 3 rows of `b` (AVX2, 8-wide) or × 6 (AVX-512,
//! 16-wide; 6 rather than 4 streamed `a` a third fewer times: the kernel's share of
//! ResNet-20's training profile 14.7% → 13.6%) accumulate FMAs straight from the rows,
//! with no packing; the rows of `b` (a few KiB) stay in L1 while `a` streams. Over
//! short rows the horizontal sum that ends each block weighs as much as its multiplies,
//! so `conv.rs` calls this only for rows of 256 positions or more.
//!
//! AVX-512, or AVX2 and FMA, are detected at run time (the crate is built for baseline
//! x86-64); elsewhere `add_a_bt` returns false and the caller runs the GEMM.

/// Which kernels `add_a_bt` may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The widest this CPU has.
    Best,
    /// AVX2 even where AVX-512 is present (for tests).
    Avx2,
}

/// Adds a·bᵀ to `dst` when this CPU has AVX-512, or AVX2 and FMA; returns whether it
/// did. Rows of `b` start `b_stride` values apart (p for contiguous rows).
pub(crate) fn add_a_bt(
    dst: &mut [f32],
    a: &[f32],
    (b, b_stride): (&[f32], usize),
    (m, n, p): (usize, usize, usize),
    isa: Isa,
) -> bool {
    let holds = |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|need| len >= need);
    // The last row of b starts at (n − 1)·b_stride and holds p values.
    let b_holds = n == 0
        || p == 0
        || (n - 1).checked_mul(b_stride).and_then(|start| start.checked_add(p)).is_some_and(|end| b.len() >= end);
    assert!(holds(dst.len(), m, n) && holds(a.len(), m, p) && b_holds && b_stride >= p, "a·bᵀ operand lengths");
    #[cfg(target_arch = "x86_64")]
    match (crate::Width::detect(), isa) {
        (crate::Width::Avx512, Isa::Best) => {
            // SAFETY: the feature is present; the lengths were checked above.
            unsafe { avx512::add_a_bt(dst.as_mut_ptr(), a.as_ptr(), (b.as_ptr(), b_stride), (m, n, p)) };
            return true;
        }
        (crate::Width::Avx512 | crate::Width::Avx2, _) => {
            // SAFETY: AVX2 and FMA are present (AVX-512 CPUs have both); the lengths
            // were checked above.
            unsafe { avx2::add_a_bt(dst.as_mut_ptr(), a.as_ptr(), (b.as_ptr(), b_stride), (m, n, p)) };
            return true;
        }
        (crate::Width::Baseline, _) => {}
    }
    let _ = isa;
    false
}

/// The kernel for one instruction set: its module name, target features, lanes, and
/// zero/load/fused-multiply-add/horizontal-sum intrinsics; register blocks of
/// ROWS_A × ROWS_B accumulators.
macro_rules! dot_kernel {
    ($module:ident, $features:literal, $lanes:literal, $zero:ident, $load:ident, $fma:ident, $sum:ident,
     $rows_a:literal, $rows_b:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use std::arch::x86_64::*;

            const ROWS_A: usize = $rows_a;
            const ROWS_B: usize = $rows_b;

            /// # Safety
            /// The target features present; `dst` and `a` hold m×n and m×p values, `b` n
            /// rows of p values starting `b_stride` apart.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn add_a_bt(
                dst: *mut f32,
                a: *const f32,
                (b, b_stride): (*const f32, usize),
                (m, n, p): (usize, usize, usize),
            ) {
                let mut j = 0;
                while j < n {
                    let nj = ROWS_B.min(n - j);
                    let mut i = 0;
                    while i < m {
                        let mi = ROWS_A.min(m - i);
                        // SAFETY: rows i..i+mi of a, j..j+nj of b and that block of dst are in
                        // bounds.
                        unsafe {
                            let (a, b, dst) = (a.add(i * p), b.add(j * b_stride), dst.add(i * n + j));
                            if (mi, nj) == (ROWS_A, ROWS_B) {
                                block::<ROWS_A, ROWS_B>(dst, n, a, (b, b_stride), p);
                            } else if mi == ROWS_A {
                                // The last columns, one at a time against a whole block of rows.
                                for jj in 0..nj {
                                    block::<ROWS_A, 1>(dst.add(jj), n, a, (b.add(jj * b_stride), b_stride), p);
                                }
                            } else if nj == ROWS_B {
                                // The last rows, one at a time against a whole block of columns.
                                for ii in 0..mi {
                                    block::<1, ROWS_B>(dst.add(ii * n), n, a.add(ii * p), (b, b_stride), p);
                                }
                            } else {
                                for ii in 0..mi {
                                    for jj in 0..nj {
                                        block::<1, 1>(
                                            dst.add(ii * n + jj),
                                            n,
                                            a.add(ii * p),
                                            (b.add(jj * b_stride), b_stride),
                                            p,
                                        );
                                    }
                                }
                            }
                        }
                        i += mi;
                    }
                    j += nj;
                }
            }

            /// dst[r·stride + c] += Σₗ a[r·p + l] · b[c·p + l] for r < MI, c < NJ.
            ///
            /// # Safety
            /// The target features present; `a` points at MI rows of `p` values, `b` at NJ
            /// rows of `p` values starting `b_stride` apart, and `dst` at MI rows of
            /// `stride` values of which the first NJ are written.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn block<const MI: usize, const NJ: usize>(
                dst: *mut f32,
                stride: usize,
                a: *const f32,
                (b, b_stride): (*const f32, usize),
                p: usize,
            ) {
                let mut acc = [[$zero(); NJ]; MI];
                let whole = p / $lanes * $lanes;
                let mut l = 0;
                // SAFETY (the reads below): l + lanes <= p, within the MI rows of `a` and NJ rows
                // of `b` that the caller vouches for.
                while l < whole {
                    let mut bv = [$zero(); NJ];
                    for (c, v) in bv.iter_mut().enumerate() {
                        *v = unsafe { $load(b.add(c * b_stride + l)) };
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = unsafe { $load(a.add(r * p + l)) };
                        for (sum, &bv) in row.iter_mut().zip(&bv) {
                            *sum = $fma(av, bv, *sum);
                        }
                    }
                    l += $lanes;
                }
                for (r, row) in acc.iter().enumerate() {
                    for (c, &sum) in row.iter().enumerate() {
                        let mut total = super::$sum(sum);
                        for l in whole..p {
                            // SAFETY: l < p, r < MI, c < NJ: inside the rows the caller vouches for.
                            total += unsafe { *a.add(r * p + l) * *b.add(c * b_stride + l) };
                        }
                        // SAFETY: the write: r < MI rows of `stride` values and c < NJ, inside the
                        // block of `dst` the caller vouches for.
                        unsafe { *dst.add(r * stride + c) += total };
                    }
                }
            }
        }
    };
}

/// AVX2's sum of a vector's lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn sum_avx2(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair)))
}

/// AVX-512's sum of a vector's lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn sum_avx512(v: std::arch::x86_64::__m512) -> f32 {
    std::arch::x86_64::_mm512_reduce_add_ps(v)
}

dot_kernel!(avx2, "avx2,fma", 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, sum_avx2, 4, 3);
// With full-width 512-bit units (AMD Zen 5, recent Intel) twice the work per
// instruction; 32 registers hold a 4 × 6 block (24 sums, 6 rows of b, 1 of a).
dot_kernel!(avx512, "avx512f", 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, sum_avx512, 4, 6);
