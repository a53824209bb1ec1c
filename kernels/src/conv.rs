//! 2-D convolution as GEMMs over NCHW, forward and both gradients.
//!
//! Per image and group, with K = in-channels-per-group × kernel area and P = output
//! positions, `col` [K × P] is the image unfolded (im2col; the image itself for a 1×1
//! convolution with stride 1 and no padding):
//!
//! - forward:         y [out × P]  = W [out × K] · col
//! - weight gradient: dW [out × K] += dy [out × P] · colᵀ
//! - input gradient:  dcol [K × P] = Wᵀ · dy, folded back onto the image (col2im);
//!   for a stride-1 convolution that keeps its size, a forward convolution of dy
//!   instead (`input_gradient_as_convolution`).
//!
//! The forward pass takes one of four forms (`Form`): Winograd's F(4×4, 3×3) for a 3×3
//! stride-1 convolution of 64 channels or more over enough tiles (`winograd.rs`); on
//! AVX-512, a stride-1 convolution of up to 64 channels straight from a padded copy of
//! the image (`direct.rs`); several images' unfoldings side by side in one GEMM where
//! an image has few output positions (`side_by_side`); or the unfolding above. A
//! stride-1 convolution with a window taller than one row is unfolded along the width
//! only and multiplied once per window row (`is_tall`). The weight
//! gradient of a layer the direct form takes comes from its padded images too
//! (`direct::weight_gradient`); elsewhere, with one thread per image and rows of 256
//! positions or more, from the dot-product kernel of `dot.rs` rather than the GEMM.
//!
//! Images are shared out among the pool's threads (each GEMM then runs on one thread);
//! with fewer images than threads a large GEMM runs in parallel, a small one on one
//! thread (`schedule`). The unfolding copies contiguous runs of a row, so it streams.

mod direct;
mod winograd;

use crate::Epilogue;
use crate::dot::Isa;
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A convolution's sizes: input [batch, in_channels, height, width], weight
/// [out_channels, in_channels / groups, kernel[0], kernel[1]].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Conv2d {
    /// Output height and width. The caller has checked the shapes (the window fits).
    pub fn output_size(&self) -> [usize; 2] {
        let size = |i: usize, input: usize| {
            (input + 2 * self.padding[i] - self.dilation[i] * (self.kernel[i] - 1) - 1) / self.stride[i] + 1
        };
        [size(0, self.height), size(1, self.width)]
    }

    /// Whether the kernels handle this convolution: non-empty, a window that fits, and
    /// channels that divide into the groups.
    pub fn is_supported(&self) -> bool {
        let fits = |i: usize, input: usize| {
            self.kernel[i] > 0
                && self.stride[i] > 0
                && self.dilation[i] > 0
                && input + 2 * self.padding[i] > self.dilation[i] * (self.kernel[i] - 1)
        };
        self.batch > 0
            && self.height > 0
            && self.width > 0
            && self.groups > 0
            && self.in_channels.is_multiple_of(self.groups)
            && self.out_channels.is_multiple_of(self.groups)
            && self.out_channels > 0
            && self.in_channels > 0
            && fits(0, self.height)
            && fits(1, self.width)
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.positions()
    }

    fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// K: the length of one unfolded patch.
    fn patch_len(&self) -> usize {
        self.in_per_group() * self.kernel[0] * self.kernel[1]
    }

    /// P: the number of output positions.
    fn positions(&self) -> usize {
        let [h, w] = self.output_size();
        h * w
    }

    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// A 1×1 convolution with stride 1 and no padding: the image is its own unfolding.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// A stride-1 convolution whose window is more than one row tall (a ResNet's 3×3):
    /// unfolded along the width only, into "tall" planes that the window's rows read at
    /// different offsets (`unfold_tall`). That copies the image kw times instead of
    /// kh·kw times; the GEMM runs once per window row, on K = in·kw.
    /// Only where it pays: the weight is regrouped for it on every call, so the copies
    /// it saves (kh − 1 of every kh unfolded rows) must outweigh the weight (not so for
    /// one image through ResNet-18's 512-channel layers, where the weight is 100 times
    /// the image).
    fn is_tall(&self) -> bool {
        let saved = (self.kernel[0] - 1) * self.kernel[1] * self.in_channels * self.positions() * self.batch;
        self.stride == [1, 1] && self.kernel[0] > 1 && !self.is_pointwise() && saved > 2 * self.weight_len()
    }

    /// The rows of a tall plane: every input row some window row reads, padding included.
    fn tall_rows(&self) -> usize {
        self.output_size()[0] + (self.kernel[0] - 1) * self.dilation[0]
    }

    /// K of one window row's GEMM: input channels per group × window width.
    fn tall_patch_len(&self) -> usize {
        self.in_per_group() * self.kernel[1]
    }

    /// The values of one group's tall unfolding: K rows of `tall_rows` × out_w values.
    fn tall_len(&self) -> usize {
        self.tall_patch_len() * self.tall_rows() * self.output_size()[1]
    }

    /// The scratch an image's unfolding needs: none for a pointwise convolution.
    fn scratch_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else if self.is_tall() {
            self.tall_len()
        } else {
            self.patch_len() * self.positions()
        }
    }

    /// Unfolds one group of one image (`x`) along the width: row (c, b) of `col` is input
    /// channel c read at window column b, over `tall_rows` rows starting `padding[0]`
    /// above the image; window row a reads those rows from a·dilation[0] down. Rows are
    /// `tall_rows() × out_w` values apart.
    fn unfold_tall(&self, x: &[f32], col: &mut [f32]) {
        let [_, out_w] = self.output_size();
        let rows = self.tall_rows();
        let plane = rows * out_w;
        for c in 0..self.in_per_group() {
            for b in 0..self.kernel[1] {
                let runs = Runs {
                    out_h: rows,
                    out_w,
                    positions: plane,
                    width: self.width,
                    height: self.height,
                    stride: [1, 1],
                    offset: [-(self.padding[0] as isize), (b * self.dilation[1]) as isize - self.padding[1] as isize],
                };
                let row = c * self.kernel[1] + b;
                let input = &x[c * self.height * self.width..][..self.height * self.width];
                runs.copy(input, &mut col[row * plane..][..plane]);
            }
        }
    }

    /// Window row `a` of the tall unfolding `col`: the [K × P] matrix its GEMM reads.
    fn tall_view<'a>(&self, col: &'a [f32], a: usize) -> Matrix<'a> {
        let [_, out_w] = self.output_size();
        Matrix { data: &col[a * self.dilation[0] * out_w..], row_stride: self.tall_rows() * out_w, col_stride: 1 }
    }

    /// The weight regrouped by window row: [groups][kh][out_g][in_g·kw], so that window
    /// row a of group g is a row-major [out_g × K] block.
    fn weight_by_rows(&self, weight: &[f32]) -> Vec<f32> {
        let (in_g, out_g, [kh, kw]) = (self.in_per_group(), self.out_per_group(), self.kernel);
        let mut regrouped = Vec::with_capacity(weight.len());
        // Value by value: a copy call per window row (kw values) cost more than the copy.
        for g in 0..self.groups {
            for a in 0..kh {
                for co in g * out_g..(g + 1) * out_g {
                    for c in 0..in_g {
                        let from = ((co * in_g + c) * kh + a) * kw;
                        regrouped.extend(weight[from..from + kw].iter().copied());
                    }
                }
            }
        }
        regrouped
    }

    /// The inverse of `weight_by_rows`: a gradient in the regrouped order back in the
    /// weight's own.
    fn weight_from_rows(&self, regrouped: &[f32]) -> Vec<f32> {
        let (in_g, out_g, [kh, kw]) = (self.in_per_group(), self.out_per_group(), self.kernel);
        let mut weight = vec![0f32; regrouped.len()];
        let mut at = 0;
        for g in 0..self.groups {
            for a in 0..kh {
                for co in g * out_g..(g + 1) * out_g {
                    for c in 0..in_g {
                        weight[((co * in_g + c) * kh + a) * kw..][..kw].copy_from_slice(&regrouped[at..at + kw]);
                        at += kw;
                    }
                }
            }
        }
        weight
    }

    /// For a stride-1 convolution without groups, its input gradient as a convolution:
    /// dx = conv(dy, W′) with W′[ci][co] = W[co][ci] rotated by 180° and padding
    /// d·(k − 1) − p, which gives back the input's size. Run forward it unfolds `dy` and
    /// writes `dx` once, instead of a GEMM into an unfolded buffer k² times `dx`'s size
    /// folded back with additions. `None` where that does not hold or does not pay (the
    /// caller then folds).
    fn input_gradient_as_convolution(&self, weight: &[f32]) -> Option<(Conv2d, Vec<f32>)> {
        let [kh, kw] = self.kernel;
        let padding = |i: usize| (self.dilation[i] * (self.kernel[i] - 1)).checked_sub(self.padding[i]);
        let [out_h, out_w] = self.output_size();
        // The transposed convolution multiplies over the input's positions, the fold over
        // the output's: worth it when the output is no smaller (a "same" convolution), not
        // for a valid one, whose dy would be padded by a whole kernel (LeNet-5's conv2).
        if self.groups != 1 || self.stride != [1, 1] || self.height * self.width > out_h * out_w {
            return None;
        }
        // The flipped weight is written once per call: over few positions (a batch of
        // one through ResNet-18's 4×4 stage: 2.4 M weights for 16 positions) that costs
        // more than folding, which touches only the batch's unfolded values.
        if self.batch * out_h * out_w < 2 * self.in_channels.max(self.out_channels) {
            return None;
        }
        let transposed = Conv2d {
            batch: self.batch,
            in_channels: self.out_channels,
            height: out_h,
            width: out_w,
            out_channels: self.in_channels,
            kernel: self.kernel,
            stride: [1, 1],
            padding: [padding(0)?, padding(1)?],
            dilation: self.dilation,
            groups: 1,
        };
        debug_assert_eq!(transposed.output_size(), [self.height, self.width]);
        // flipped[ci][co] is weight[co][ci] with its kh×kw window reversed (row by row,
        // then within each row: the window read backwards). Written in order, in parallel.
        let (cin, cout, window) = (self.in_channels, self.out_channels, kh * kw);
        let mut flipped = vec![0f32; weight.len()];
        flipped.par_chunks_mut(cout * window).with_min_len(crate::min_items(cout * window)).enumerate().for_each(
            |(ci, row)| {
                for (co, out) in row.chunks_exact_mut(window).enumerate() {
                    let source = &weight[(co * cin + ci) * window..][..window];
                    out.iter_mut().zip(source.iter().rev()).for_each(|(o, s)| *o = *s);
                }
            },
        );
        Some((transposed, flipped))
    }

    /// How many tasks to share the batch among, and how the GEMMs inside run.
    fn schedule(&self) -> (usize, Parallelism) {
        let threads = rayon::current_num_threads().max(1);
        // A GEMM of a few million multiply-adds takes about as long as waking the other
        // threads for it (a batch of one image through ResNet-20): one thread does it.
        let small = self.out_channels * self.patch_len() * self.positions() < 1 << 22;
        if self.batch >= threads || small {
            (threads.min(self.batch), Parallelism::None)
        } else {
            (self.batch, Parallelism::Rayon(threads))
        }
    }

    /// Unfolds one group of one image (`x`: that group's channels) into `col` [K × P].
    fn unfold(&self, x: &[f32], col: &mut [f32]) {
        self.unfold_into(x, col, self.positions());
    }

    /// `unfold` with the rows of `col` `row_stride` values apart (several images side by
    /// side, each starting at its own column).
    fn unfold_into(&self, x: &[f32], col: &mut [f32], row_stride: usize) {
        self.each_row(|row, plane, runs| {
            let out = &mut col[row * row_stride..][..runs.positions];
            runs.copy(&x[plane..][..self.height * self.width], out);
        });
    }

    /// Whether the forward pass unfolds several images side by side into one GEMM
    /// (`side_by_side`): few output positions per image, no groups, an unfolding, and
    /// enough images that every thread still gets a GEMM of its own.
    fn runs_side_by_side(&self) -> bool {
        self.groups == 1
            && !self.is_tall()
            && !self.is_pointwise()
            && self.positions() <= SIDE_BY_SIDE_MAX_POSITIONS
            && self.images_per_gemm() >= 2
    }

    /// Images side by side in one GEMM: enough for `SIDE_BY_SIDE_COLUMNS` columns, but
    /// no more than a thread's share of the batch.
    fn images_per_gemm(&self) -> usize {
        let threads = rayon::current_num_threads().max(1);
        SIDE_BY_SIDE_COLUMNS.div_ceil(self.positions().max(1)).min(self.batch.div_ceil(threads))
    }

    /// Adds `col` [K × P] back onto one group of one image (`x`), the adjoint of `unfold`.
    fn fold(&self, col: &[f32], x: &mut [f32]) {
        self.each_row(|row, plane, runs| {
            let from = &col[row * runs.positions..][..runs.positions];
            runs.accumulate(from, &mut x[plane..][..self.height * self.width]);
        });
    }

    /// Calls `f(row, plane offset, runs)` for every row of the unfolding: one input
    /// channel and one kernel tap.
    fn each_row(&self, mut f: impl FnMut(usize, usize, &Runs)) {
        let [out_h, out_w] = self.output_size();
        let mut row = 0;
        for c in 0..self.in_per_group() {
            for ki in 0..self.kernel[0] {
                for kj in 0..self.kernel[1] {
                    let runs = Runs {
                        out_h,
                        out_w,
                        positions: out_h * out_w,
                        width: self.width,
                        height: self.height,
                        stride: self.stride,
                        offset: [
                            (ki * self.dilation[0]) as isize - self.padding[0] as isize,
                            (kj * self.dilation[1]) as isize - self.padding[1] as isize,
                        ],
                    };
                    f(row, c * self.height * self.width, &runs);
                    row += 1;
                }
            }
        }
    }
}

/// One kernel tap's view of an input plane: output position (oh, ow) reads input
/// (oh·stride + offset₀, ow·stride + offset₁), or zero outside the plane.
struct Runs {
    out_h: usize,
    out_w: usize,
    positions: usize,
    width: usize,
    height: usize,
    stride: [usize; 2],
    offset: [isize; 2],
}

impl Runs {
    /// The input row an output row reads, if inside the plane.
    fn input_row(&self, oh: usize) -> Option<usize> {
        let ih = (oh * self.stride[0]) as isize + self.offset[0];
        (ih >= 0 && (ih as usize) < self.height).then_some(ih as usize)
    }

    /// The output columns [lo, hi) whose input column is inside the plane.
    fn columns(&self) -> (usize, usize) {
        let (s, off) = (self.stride[1], self.offset[1]);
        let lo = if off >= 0 { 0 } else { (off.unsigned_abs()).div_ceil(s) }.min(self.out_w);
        let hi = ((self.width as isize - off).max(0) as usize).div_ceil(s).clamp(lo, self.out_w);
        (lo, hi)
    }

    fn copy(&self, plane: &[f32], out: &mut [f32]) {
        if self.stride == [1, 1] && self.out_w == self.width {
            return self.copy_block(plane, out);
        }
        let (lo, hi) = self.columns();
        for oh in 0..self.out_h {
            let out = &mut out[oh * self.out_w..][..self.out_w];
            let Some(ih) = self.input_row(oh) else {
                out.fill(0.0);
                continue;
            };
            let input = &plane[ih * self.width..][..self.width];
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            if hi == lo {
                continue;
            }
            let first = (lo * self.stride[1]) as isize + self.offset[1];
            if self.stride[1] == 1 {
                out[lo..hi].copy_from_slice(&input[first as usize..][..hi - lo]);
            } else {
                for (i, o) in out[lo..hi].iter_mut().enumerate() {
                    *o = input[first as usize + i * self.stride[1]];
                }
            }
        }
    }

    /// `copy` for a stride-1 window that keeps the width (a "same" convolution, most of
    /// a ResNet): the rows inside the plane are one shifted run of the plane, copied at
    /// once, after which the columns that wrapped round to a neighbouring row are zeroed.
    /// Row by row, the copies were short enough for the call overhead to dominate.
    fn copy_block(&self, plane: &[f32], out: &mut [f32]) {
        let (width, [off_h, off_w]) = (self.width as isize, self.offset);
        let first = (-off_h).clamp(0, self.out_h as isize) as usize;
        let last = (self.height as isize - off_h).clamp(first as isize, self.out_h as isize) as usize;
        out[..first * self.width].fill(0.0);
        out[last * self.width..self.positions].fill(0.0);
        let block = &mut out[first * self.width..last * self.width];
        // block[i] reads plane[start + i], where inside the plane.
        let start = (first as isize + off_h) * width + off_w;
        let skip = ((-start).max(0) as usize).min(block.len());
        let end = ((plane.len() as isize - start).max(0) as usize).clamp(skip, block.len());
        block[..skip].fill(0.0);
        block[end..].fill(0.0);
        if end > skip {
            block[skip..end].copy_from_slice(&plane[(start + skip as isize) as usize..][..end - skip]);
        }
        let (lo, hi) = self.columns();
        // Column by column down the rows: the edges are a column or two, and zeroing
        // them row by row called memset for each row's one or two values.
        for column in (0..lo).chain(hi..self.width) {
            for v in block.iter_mut().skip(column).step_by(self.width) {
                *v = 0.0;
            }
        }
    }

    fn accumulate(&self, from: &[f32], plane: &mut [f32]) {
        let (lo, hi) = self.columns();
        for oh in 0..self.out_h {
            let Some(ih) = self.input_row(oh) else { continue };
            let from = &from[oh * self.out_w..][..self.out_w];
            let input = &mut plane[ih * self.width..][..self.width];
            if hi == lo {
                continue;
            }
            let first = (lo * self.stride[1]) as isize + self.offset[1];
            if self.stride[1] == 1 {
                for (i, &v) in input[first as usize..][..hi - lo].iter_mut().zip(&from[lo..hi]) {
                    *i += v;
                }
            } else {
                for (i, &v) in from[lo..hi].iter().enumerate() {
                    input[first as usize + i * self.stride[1]] += v;
                }
            }
        }
    }
}

/// A matrix view for `gemm` over a borrowed slice: row-major with rows of `row_len`,
/// or the transpose of one. The slice's length is what makes the views safe to hand
/// to `gemm`: `matmul` checks that every element a view of the asked-for size reaches
/// lies inside it.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    fn rows(data: &'a [f32], row_len: usize) -> Matrix<'a> {
        Matrix { data, row_stride: row_len, col_stride: 1 }
    }

    /// The transpose of the row-major matrix with rows of `row_len`.
    fn transposed(data: &'a [f32], row_len: usize) -> Matrix<'a> {
        Matrix { data, row_stride: 1, col_stride: row_len }
    }

    /// Whether a `rows × cols` matrix read through this view stays inside the slice:
    /// its last element, at (rows−1)·row_stride + (cols−1)·col_stride, is in bounds.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        let last = (rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (cols - 1).checked_mul(self.col_stride).and_then(|c| r.checked_add(c)));
        last.is_some_and(|last| last < self.data.len())
    }
}

/// Checks the operands of `dst [m × n] = lhs [m × k] · rhs [k × n]` against their
/// slices, so that no safe caller can make `gemm` read or write out of bounds.
fn check_operands(dst_len: usize, (m, n, k): (usize, usize, usize), lhs: &Matrix, rhs: &Matrix) {
    assert!(m.checked_mul(n).is_some_and(|mn| dst_len >= mn), "GEMM destination too short");
    assert!(lhs.covers(m, k), "GEMM left operand too short for {m}×{k}");
    assert!(rhs.covers(k, n), "GEMM right operand too short for {k}×{n}");
    // gemm takes strides as isize.
    assert!(
        [lhs.row_stride, lhs.col_stride, rhs.row_stride, rhs.col_stride, n].iter().all(|&s| isize::try_from(s).is_ok()),
        "GEMM stride too large"
    );
}

/// `dst [m × n] (+)= lhs [m × k] · rhs [k × n]`, `dst` row-major.
fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: Matrix,
    rhs: Matrix,
    par: Parallelism,
) {
    check_operands(dst.len(), (m, n, k), &lhs, &rhs);
    // SAFETY: `dst` holds m×n initialised values and the operands cover m×k and k×n
    // values (checked above).
    unsafe { gemm_into(dst.as_mut_ptr(), accumulate, (m, n, k), lhs, rhs, par) }
}

/// `dst [m × n] = lhs [m × k] · rhs [k × n]` into values not yet written.
fn matmul_uninit(
    dst: &mut [MaybeUninit<f32>],
    (m, n, k): (usize, usize, usize),
    lhs: Matrix,
    rhs: Matrix,
    par: Parallelism,
) {
    check_operands(dst.len(), (m, n, k), &lhs, &rhs);
    // SAFETY: `dst` holds room for m×n values; without `accumulate`, gemm only writes;
    // the operands cover m×k and k×n values (checked above).
    unsafe { gemm_into(dst.as_mut_ptr().cast::<f32>(), false, (m, n, k), lhs, rhs, par) }
}

/// # Safety
/// `dst` must point at m×n writable values (initialised if `accumulate`), and `lhs`
/// and `rhs` must cover m×k and k×n values (`check_operands`).
unsafe fn gemm_into(
    dst: *mut f32,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: Matrix,
    rhs: Matrix,
    par: Parallelism,
) {
    // SAFETY: as the caller guarantees; the strides fit in isize (`check_operands`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// How the forward pass computes a convolution, in the order `form` tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Winograd's F(4×4, 3×3) (`winograd.rs`): 3×3, stride 1, 64 channels or more
    /// over enough tiles. Tried first: at 64 channels it beats the direct form wherever
    /// each thread has a few images' tiles (two 3×3 layers, `archc bench --mode infer`,
    /// 2 threads: 32×32 at batch 32, 26.2-26.6 → 17.9-19.0 ms; 8×8 at batch 128, 10.8 →
    /// 7.9 ms), not over 16 or 32 channels (2.30 → 4.06-4.38 ms at batch 32).
    Winograd,
    /// Straight from a padded copy of the image (`direct.rs`): stride 1, up to 64
    /// channels, AVX-512.
    Direct,
    /// Several images' unfoldings in one GEMM (`side_by_side`): few positions per image.
    SideBySide,
    /// Image by image (`unfolded`).
    Unfolded,
}

/// The form the forward pass takes for `conv` on the current thread pool.
fn form(conv: &Conv2d) -> Form {
    if winograd::applies(conv) {
        Form::Winograd
    } else if direct::applies(conv) {
        Form::Direct
    } else if conv.runs_side_by_side() {
        Form::SideBySide
    } else {
        Form::Unfolded
    }
}

/// Whether the forward pass (and a stride-1 input gradient, run as one) takes
/// Winograd's F(4×4, 3×3) form (`winograd.rs`): 3×3, stride 1, 64 channels or more over
/// enough tiles.
pub fn is_winograd(conv: &Conv2d) -> bool {
    form(conv) == Form::Winograd
}

/// Whether the forward pass (and a stride-1 input gradient, run as one) reads a padded
/// copy of the image with no unfolding (`direct.rs`): stride 1, few channels, AVX-512.
pub fn is_direct(conv: &Conv2d) -> bool {
    form(conv) == Form::Direct
}

/// Whether the forward pass (on the current thread pool) unfolds several images side by
/// side into one GEMM: few output positions per image (`side_by_side`).
pub fn is_side_by_side(conv: &Conv2d) -> bool {
    form(conv) == Form::SideBySide
}

/// The forward pass: y [batch, out_channels, out_h, out_w].
pub fn forward(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    forward_then(conv, x, weight, bias, Epilogue::default())
}

/// The forward pass followed by `then` (a residual added, ReLU), applied to each image's
/// output right after its GEMMs, while it is still in cache.
pub fn forward_then(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) -> Vec<f32> {
    forward_transformed(conv, x, weight, None, bias, then)
}

/// A 3×3 weight's Winograd transform (`winograd.rs`), made once and read by every
/// forward pass that takes that form (`forward_transformed`) instead of each call
/// transforming the weight again: for inference, where the weight does not change.
pub use winograd::Transformed as WinogradWeight;

/// The Winograd transform of `conv`'s weight, where `conv` has the kind of window
/// that form computes (3×3, stride 1, no dilation, one group; whether a call takes the
/// form also depends on its batch); `None` elsewhere.
pub fn winograd_weight(conv: &Conv2d, weight: &[f32]) -> Option<WinogradWeight> {
    assert_eq!(weight.len(), conv.weight_len(), "convolution weight length");
    winograd::computes(conv).then(|| WinogradWeight::new(weight, conv.out_channels, conv.in_channels))
}

/// `forward_then`, where the Winograd form reads `transformed` (the transform of this
/// `weight`, from `winograd_weight`) rather than transforming the weight itself. The
/// caller vouches that `transformed` was made from `weight`'s values.
pub fn forward_transformed(
    conv: &Conv2d,
    x: &[f32],
    weight: &[f32],
    transformed: Option<&WinogradWeight>,
    bias: Option<&[f32]>,
    then: Epilogue,
) -> Vec<f32> {
    check_forward(conv, x, weight, bias, then);
    assert!(transformed.is_none_or(|t| t.fits(conv)), "Winograd weight of other channels than {conv:?}");
    match form(conv) {
        Form::Winograd => winograd::forward(conv, x, weight, transformed, bias, then),
        Form::Direct => direct::forward(conv, x, weight, bias, then),
        Form::SideBySide => side_by_side(conv, x, weight, bias, then),
        Form::Unfolded => unfolded(conv, x, weight, bias, then),
    }
}

fn check_forward(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) {
    assert!(conv.is_supported(), "unsupported convolution {conv:?}");
    assert_eq!(x.len(), conv.input_len(), "convolution input length");
    assert!(bias.is_none_or(|b| b.len() == conv.out_channels), "convolution bias length");
    assert_eq!(weight.len(), conv.weight_len(), "convolution weight length");
    assert!(then.residual.is_none_or(|r| r.len() == conv.output_len()), "convolution residual length");
}

/// `forward_then` image by image, by unfolding and GEMMs, whatever the convolution
/// (`Form::Unfolded`; the tests' reference for the other forms).
pub fn forward_unfolded(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) -> Vec<f32> {
    check_forward(conv, x, weight, bias, then);
    unfolded(conv, x, weight, bias, then)
}

/// At most this many output positions per image for `side_by_side` (8×8: a ResNet's
/// stride-2 layers into its last two stages at CIFAR size; LeNet-5's 10×10 is not).
const SIDE_BY_SIDE_MAX_POSITIONS: usize = 64;

/// ... and images side by side up to this many GEMM columns (fewer where a thread's
/// share of the batch has fewer images).
const SIDE_BY_SIDE_COLUMNS: usize = 256;

/// The forward pass with several images' unfoldings side by side in one GEMM of up to
/// `SIDE_BY_SIDE_COLUMNS` columns (`runs_side_by_side` must hold). Image by image,
/// a layer with 16 output positions (ResNet-18's `conv(512, kernel: 3, stride: 2)` at
/// 8×8) gave the GEMM 16 columns, all on its edge kernels: 184 GFLOP/s against 360 for
/// its neighbours. The product is then laid out image by image, with the bias and the
/// epilogue (the same terms as `unfolded`'s, though the GEMM may block the sums
/// otherwise, and the bias is added after them rather than accumulated onto).
fn side_by_side(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) -> Vec<f32> {
    debug_assert!(conv.runs_side_by_side());
    let (k, p, cout) = (conv.patch_len(), conv.positions(), conv.out_channels);
    let per_gemm = conv.images_per_gemm();
    let image_out = cout * p;
    let mut y = crate::uninit(conv.output_len());
    let scratch = || (vec![0f32; k * per_gemm * p], vec![0f32; cout * per_gemm * p]);
    y.par_chunks_mut(per_gemm * image_out).enumerate().for_each_init(scratch, |(col, product), (chunk, out)| {
        let images = out.len() / image_out;
        let n = images * p;
        let first = chunk * per_gemm;
        for i in 0..images {
            let image = &x[(first + i) * conv.image_len()..][..conv.image_len()];
            conv.unfold_into(image, &mut col[i * p..], n);
        }
        let (lhs, rhs) = (Matrix::rows(weight, k), Matrix::rows(&col[..k * n], n));
        matmul(&mut product[..cout * n], false, (cout, n, k), lhs, rhs, Parallelism::None);
        for (i, out) in out.chunks_exact_mut(image_out).enumerate() {
            for (o, row) in out.chunks_exact_mut(p).enumerate() {
                let from = &product[o * n + i * p..][..p];
                match bias {
                    Some(bias) => row.iter_mut().zip(from).for_each(|(y, v)| _ = y.write(bias[o] + v)),
                    None => row.iter_mut().zip(from).for_each(|(y, &v)| _ = y.write(v)),
                }
            }
            if !then.is_empty() {
                // SAFETY: the image's rows were all written just above.
                let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
                then.apply(out, (first + i) * image_out);
            }
        }
    });
    // SAFETY: the chunks cover `y`, and each image's rows were written.
    unsafe { crate::assume_init(y) }
}

/// `forward_unfolded` on checked operands.
fn unfolded(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) -> Vec<f32> {
    // The output is written without zeroing: every size it covers must be one the
    // loops below fill.
    let (k, p) = (conv.patch_len(), conv.positions());
    let (in_g, out_g) = (conv.in_per_group(), conv.out_per_group());
    let (_, par) = conv.schedule();
    let mut y = crate::uninit(conv.output_len());
    let image_out = conv.out_channels * p;
    let tall = conv.is_tall();
    let by_rows = if tall { conv.weight_by_rows(weight) } else { Vec::new() };
    let each_image = |col: &mut Vec<f32>, (b, out): (usize, &mut [MaybeUninit<f32>])| {
        let image = &x[b * conv.image_len()..][..conv.image_len()];
        for g in 0..conv.groups {
            let group_in = &image[g * in_g * conv.height * conv.width..];
            let dst = &mut out[g * out_g * p..][..out_g * p];
            let mut written = false;
            if let Some(bias) = bias {
                for (o, row) in dst.chunks_exact_mut(p).enumerate() {
                    row.fill(MaybeUninit::new(bias[g * out_g + o]));
                }
                written = true;
            }
            // One GEMM per window row on the tall unfolding, or one on the whole.
            let gemms: Vec<(Matrix, Matrix)> = if tall {
                conv.unfold_tall(group_in, col);
                let kt = conv.tall_patch_len();
                (0..conv.kernel[0])
                    .map(|a| {
                        let w = &by_rows[(g * conv.kernel[0] + a) * out_g * kt..][..out_g * kt];
                        (Matrix::rows(w, kt), conv.tall_view(col, a))
                    })
                    .collect()
            } else {
                let rhs = if conv.is_pointwise() {
                    &group_in[..k * p]
                } else {
                    conv.unfold(group_in, col);
                    &col[..]
                };
                vec![(Matrix::rows(&weight[g * out_g * k..][..out_g * k], k), Matrix::rows(rhs, p))]
            };
            let depth = if tall { conv.tall_patch_len() } else { k };
            for (w, rhs) in gemms {
                if written {
                    // SAFETY: every value was written (bias fill or an earlier GEMM).
                    let dst = unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) };
                    matmul(dst, true, (out_g, p, depth), w, rhs, par);
                } else {
                    matmul_uninit(dst, (out_g, p, depth), w, rhs, par);
                    written = true;
                }
            }
        }
        if !then.is_empty() {
            // SAFETY: the groups above wrote the whole image.
            let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
            then.apply(out, b * image_out);
        }
    };
    let scratch = || vec![0f32; conv.scratch_len()];
    match par {
        Parallelism::None => y.par_chunks_mut(image_out).enumerate().for_each_init(scratch, each_image),
        _ => {
            let mut col = scratch();
            y.chunks_mut(image_out).enumerate().for_each(|item| each_image(&mut col, item));
        }
    }
    // SAFETY: each image's groups cover its output, each written by the bias fill or
    // the GEMM.
    unsafe { crate::assume_init(y) }
}

/// Below this many output positions (ResNet-18's 4×4 stage has 16), with patches of
/// at least `MANY_PATCH_VALUES`, the folded input gradient is computed transposed.
const FEW_POSITIONS: usize = 48;
const MANY_PATCH_VALUES: usize = 256;

/// Which gradients a backward pass computes.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// A convolution's gradients; each absent unless wanted.
#[derive(Debug, Default)]
pub struct Gradients {
    pub input: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

/// The backward pass, from the output gradient `dy` [batch, out_channels, out_h, out_w].
pub fn backward(conv: &Conv2d, x: &[f32], weight: &[f32], dy: &[f32], wanted: Wanted) -> Gradients {
    backward_with(conv, x, weight, dy, wanted, Some(Isa::Best), None)
}

/// `backward` with the input gradient added onto `onto` (x's gradient from its other
/// uses, a residual's), in the pass that writes it: the input gradient as a convolution
/// adds it as its epilogue's residual, the direct form's stride-2 one as it interleaves
/// its phases, a folded one starts from it. Autodiff would otherwise add the two
/// afterwards, in one more pass over both.
pub fn backward_onto(conv: &Conv2d, x: &[f32], weight: &[f32], dy: &[f32], wanted: Wanted, onto: &[f32]) -> Gradients {
    assert_eq!(onto.len(), conv.input_len(), "length of the gradient added onto");
    backward_with(conv, x, weight, dy, wanted, Some(Isa::Best), Some(onto))
}

/// `backward` with the weight gradient always on the GEMM, as on a CPU without AVX2 and
/// FMA (for tests: the dot kernel is otherwise taken wherever it can be).
#[doc(hidden)]
pub fn backward_on_gemm(conv: &Conv2d, x: &[f32], weight: &[f32], dy: &[f32], wanted: Wanted) -> Gradients {
    backward_with(conv, x, weight, dy, wanted, None, None)
}

/// `backward` with the weight gradient's dot products in AVX2 even where AVX-512 is
/// present (for tests: the AVX-512 kernel is otherwise taken).
#[doc(hidden)]
pub fn backward_on_avx2(conv: &Conv2d, x: &[f32], weight: &[f32], dy: &[f32], wanted: Wanted) -> Gradients {
    backward_with(conv, x, weight, dy, wanted, Some(Isa::Avx2), None)
}

/// `dot`: the dot-product kernels to try for the weight gradient (None: the GEMM);
/// `onto`: what the input gradient is added onto.
fn backward_with(
    conv: &Conv2d,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    wanted: Wanted,
    dot: Option<Isa>,
    onto: Option<&[f32]>,
) -> Gradients {
    assert!(conv.is_supported(), "unsupported convolution {conv:?}");
    assert_eq!(x.len(), conv.input_len(), "convolution input length");
    assert_eq!(weight.len(), conv.weight_len(), "convolution weight length");
    assert_eq!(dy.len(), conv.output_len(), "convolution output gradient length");
    let (k, p) = (conv.patch_len(), conv.positions());
    let (in_g, out_g) = (conv.in_per_group(), conv.out_per_group());
    let (tasks, par) = conv.schedule();
    let per_task = conv.batch.div_ceil(tasks);
    let (image_len, group_len) = (conv.image_len(), in_g * conv.height * conv.width);
    let tall = conv.is_tall();

    // The weight gradient of a layer the direct form takes, from its padded images; with
    // it, image by image, the input gradient where that runs as a direct convolution of
    // dy (each image's dy then read from memory once for both).
    if wanted.weight && dot == Some(Isa::Best) && direct::applies(conv) {
        let as_convolution = wanted.input.then(|| conv.input_gradient_as_convolution(weight)).flatten();
        let along = as_convolution
            .as_ref()
            .filter(|(transposed, _)| form(transposed) == Form::Direct)
            .map(|(transposed, flipped)| direct::AlongInput { transposed, flipped, onto });
        if let Some((dw, dx)) = direct::weight_gradient(conv, x, dy, along) {
            let input = wanted.input && dx.is_none();
            let rest = backward_with(conv, x, weight, dy, Wanted { weight: false, input, ..wanted }, dot, onto);
            return Gradients { weight: Some(dw), input: dx.or(rest.input), ..rest };
        }
    }

    // A stride-2 layer the direct form takes: its input's phases, each a convolution of dy.
    if wanted.input
        && direct::applies(conv)
        && let Some(dx) = direct::input_gradient(conv, weight, dy, onto)
    {
        let rest = backward_with(conv, x, weight, dy, Wanted { input: false, ..wanted }, dot, None);
        return Gradients { input: Some(dx), ..rest };
    }

    // With stride 1 the input gradient is itself a convolution, of dy, run forward.
    if wanted.input
        && let Some((transposed, flipped)) = conv.input_gradient_as_convolution(weight)
    {
        let rest = backward_with(conv, x, weight, dy, Wanted { input: false, ..wanted }, dot, None);
        let then = Epilogue { residual: onto, relu: false };
        return Gradients { input: Some(forward_then(&transposed, dy, &flipped, None, then)), ..rest };
    }

    // Folded onto zeros, or onto `onto` (copied in parallel).
    let mut dx = wanted.input.then(|| match onto {
        None => vec![0f32; conv.input_len()],
        Some(onto) => {
            let mut dx = crate::uninit(onto.len());
            dx.par_chunks_mut(1 << 16).zip(onto.par_chunks(1 << 16)).for_each(|(to, from)| {
                to.iter_mut().zip(from).for_each(|(t, &f)| {
                    t.write(f);
                })
            });
            // SAFETY: the chunks cover dx, each value copied.
            unsafe { crate::assume_init(dx) }
        }
    });
    let dx_chunks: Vec<Option<&mut [f32]>> = match &mut dx {
        Some(dx) => dx.chunks_mut(per_task * image_len).map(Some).collect(),
        None => (0..conv.batch.div_ceil(per_task)).map(|_| None).collect(),
    };

    // One thread per task: dot products without packing (see `dot`). The dot products
    // pay for few output rows over long ones (a ResNet's first stages); over fewer
    // positions (ResNet-20's 8×8, ResNet-18's 512 rows of 16) each block's horizontal
    // sums weigh as much as its multiplies, and the GEMM's packing pays.
    let may_dot = matches!(par, Parallelism::None) && out_g <= 64 && p >= 256 && dot.is_some();

    // Each task: its images' input gradients, and its partial weight and bias gradients.
    let task = |(t, mut dx): (usize, Option<&mut [f32]>)| {
        // Zeroed only where the dot products may add into it: the GEMM writes each block
        // from the task's first image on (zeroing ResNet-18's weights first was 5% of a
        // training step at batch 1).
        let mut dw = match (wanted.weight, may_dot) {
            (false, _) => Vec::new(),
            (true, true) => vec![MaybeUninit::new(0f32); conv.weight_len()],
            (true, false) => crate::uninit(conv.weight_len()),
        };
        let mut db = vec![0f32; if wanted.bias { conv.out_channels } else { 0 }];
        // The unfolding is only for the weight gradient.
        let mut col = vec![0f32; if wanted.weight { conv.scratch_len() } else { 0 }];
        // The unfolded input gradient, for the convolutions whose input gradient is folded.
        let mut dcol = Vec::new();
        let mut dcol_t = Vec::new();
        let images = t * per_task..((t + 1) * per_task).min(conv.batch);
        for (i, b) in images.enumerate() {
            let image = &x[b * image_len..][..image_len];
            let dy_image = &dy[b * conv.out_channels * p..][..conv.out_channels * p];
            for g in 0..conv.groups {
                let dy_g = &dy_image[g * out_g * p..][..out_g * p];
                let w = &weight[g * out_g * k..][..out_g * k];
                if wanted.weight {
                    let group_in = &image[g * group_len..][..group_len];
                    // dW [out × K] += dy [out × P] · colᵀ, per window row on the tall unfolding
                    // (dW in `weight_by_rows` order), else at once.
                    let blocks: Vec<(usize, Matrix)> = if tall {
                        conv.unfold_tall(group_in, &mut col);
                        let kt = conv.tall_patch_len();
                        (0..conv.kernel[0])
                            .map(|a| ((g * conv.kernel[0] + a) * out_g * kt, conv.tall_view(&col, a)))
                            .collect()
                    } else if conv.is_pointwise() {
                        vec![(g * out_g * k, Matrix::rows(&group_in[..k * p], p))]
                    } else {
                        conv.unfold(group_in, &mut col);
                        vec![(g * out_g * k, Matrix::rows(&col, p))]
                    };
                    let depth = if tall { conv.tall_patch_len() } else { k };
                    for (at, cols) in blocks {
                        let dw_block = &mut dw[at..][..out_g * depth];
                        let cols_t = Matrix { data: cols.data, row_stride: 1, col_stride: cols.row_stride };
                        let (dy_rows, size) = (Matrix::rows(dy_g, p), (out_g, depth, p));
                        if i == 0 && !may_dot {
                            matmul_uninit(dw_block, size, dy_rows, cols_t, par);
                            continue;
                        }
                        // SAFETY: zeroed (`may_dot`), or written by the first image's GEMM.
                        let dw_block = unsafe { &mut *(dw_block as *mut [MaybeUninit<f32>] as *mut [f32]) };
                        let dotted = may_dot
                            && dot.is_some_and(|isa| {
                                crate::dot::add_a_bt(dw_block, dy_g, (cols.data, cols.row_stride), size, isa)
                            });
                        if !dotted {
                            matmul(dw_block, i > 0, size, dy_rows, cols_t, par);
                        }
                    }
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let dx_g = &mut dx[i * image_len + g * group_len..][..group_len];
                    let wt = Matrix::transposed(w, k);
                    if conv.is_pointwise() {
                        matmul(dx_g, onto.is_some(), (k, p, out_g), wt, Matrix::rows(dy_g, p), par);
                    } else if p < FEW_POSITIONS && k >= MANY_PATCH_VALUES {
                        // dcolᵀ [P × K] = dyᵀ · W, then transposed for the fold: the GEMM
                        // computes a row-major product as its transpose, so this runs its
                        // register blocks down K (reading W as it lies) rather than along
                        // P's few positions in its narrow edge kernel.
                        dcol_t.resize(k * p, 0.0);
                        let dy_t = Matrix::transposed(dy_g, p);
                        matmul(&mut dcol_t, false, (p, k, out_g), dy_t, Matrix::rows(w, k), par);
                        dcol.resize(k * p, 0.0);
                        for (row, values) in dcol.chunks_exact_mut(p).enumerate() {
                            values.iter_mut().zip(dcol_t[row..].iter().step_by(k)).for_each(|(d, &v)| *d = v);
                        }
                        conv.fold(&dcol, dx_g);
                    } else {
                        dcol.resize(k * p, 0.0);
                        matmul(&mut dcol, false, (k, p, out_g), wt, Matrix::rows(dy_g, p), par);
                        conv.fold(&dcol, dx_g);
                    }
                }
            }
            for (sum, row) in db.iter_mut().zip(dy_image.chunks_exact(p)) {
                *sum += row.iter().sum::<f32>();
            }
        }
        // SAFETY: zeroed, or every block (together they cover each group's weight) was
        // written by the first image's GEMMs; a task has at least one image.
        (unsafe { crate::assume_init(dw) }, db)
    };
    let add = |(mut dw, mut db): (Vec<f32>, Vec<f32>), (dw2, db2): (Vec<f32>, Vec<f32>)| {
        dw.iter_mut().zip(&dw2).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
        (dw, db)
    };
    let (dw, db) = match par {
        Parallelism::None => dx_chunks.into_par_iter().enumerate().map(task).reduce_with(add),
        _ => dx_chunks.into_iter().enumerate().map(task).reduce(add),
    }
    .expect("a batch of at least one image");
    let dw = if tall && wanted.weight { conv.weight_from_rows(&dw) } else { dw };
    Gradients { input: dx, weight: wanted.weight.then_some(dw), bias: wanted.bias.then_some(db) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_multiplies_row_major_and_transposed_views() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]; the transpose of [5 7; 6 8] is the same rhs.
        let (lhs, rhs, rhs_t) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [5.0, 7.0, 6.0, 8.0]);
        let mut dst = [0.0; 4];
        matmul(&mut dst, false, (2, 2, 2), Matrix::rows(&lhs, 2), Matrix::rows(&rhs, 2), Parallelism::None);
        assert_eq!(dst, [19.0, 22.0, 43.0, 50.0]);
        matmul(&mut dst, true, (2, 2, 2), Matrix::rows(&lhs, 2), Matrix::transposed(&rhs_t, 2), Parallelism::None);
        assert_eq!(dst, [38.0, 44.0, 86.0, 100.0]);
    }

    #[test]
    fn views_cover_exactly_what_their_slices_hold() {
        let data = [0.0; 6];
        assert!(Matrix::rows(&data, 3).covers(2, 3));
        assert!(!Matrix::rows(&data, 3).covers(3, 3));
        assert!(!Matrix::rows(&data, 3).covers(2, 4));
        assert!(Matrix::transposed(&data, 3).covers(3, 2));
        assert!(!Matrix::transposed(&data, 3).covers(3, 3));
        assert!(Matrix::rows(&[], 3).covers(0, 3));
        assert!(!Matrix::rows(&data, usize::MAX).covers(2, 1), "an overflowing extent is refused");
    }

    #[test]
    #[should_panic(expected = "GEMM left operand too short")]
    fn a_size_larger_than_an_operand_panics_instead_of_reading_past_it() {
        let (lhs, rhs) = ([1.0; 4], [1.0; 64]);
        let mut dst = [0.0; 16];
        // k = 8 asks for 2×8 values of a 4-value lhs: before the check, gemm read past it.
        matmul(&mut dst, false, (2, 8, 8), Matrix::rows(&lhs, 8), Matrix::rows(&rhs, 8), Parallelism::None);
    }

    #[test]
    #[should_panic(expected = "GEMM right operand too short")]
    fn a_short_right_operand_panics() {
        let (lhs, rhs) = ([1.0; 4], [1.0; 3]);
        let mut dst = [std::mem::MaybeUninit::new(0.0); 4];
        matmul_uninit(&mut dst, (2, 2, 2), Matrix::rows(&lhs, 2), Matrix::rows(&rhs, 2), Parallelism::None);
    }
}
