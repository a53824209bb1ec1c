//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 2×2 block of outputs comes from a 4×4 input tile d and the 3×3 window g as
//! Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A: 16 multiplies per (input, output) channel pair where
//! the direct form needs 36, 2.25 times fewer multiply-adds. Summed over the input
//! channels, the 16 element-wise products become 16 GEMMs, one per position ξ of the
//! 4×4 transformed tile:
//!
//! - weight: U_ξ [out × in] (G g Gᵀ, once per call),
//! - input:  V_ξ [in × T] (Bᵀ d B for T tiles),
//! - M_ξ [out × T] = U_ξ · V_ξ, then Y = Aᵀ M A per tile, with the bias and the epilogue.
//!
//! The transforms only add, subtract and halve, so the result differs from the direct
//! form's by a few roundings. Tiles are taken by rows of tiles, a panel of such rows at
//! once (small enough that its V and M stay in cache). Within a panel a row of w tiles
//! takes w + 1 columns of V and M: tile j reads input columns 2j .. 2j + 3, which are
//! even and odd columns j and j + 1, so each transform is one pass along the panel's
//! whole length (long vectors) at the price of one unused column per row of tiles
//! (its GEMM columns are computed and dropped).

use super::{Conv2d, Matrix, matmul};
use crate::{Epilogue, Width};
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many channels (in or out) the transforms, whose memory traffic is 4 times
/// the image's per pass, cost about what the multiplies save: measured one 3×3 layer at
/// a time (`archc bench`, batch 32/128, 2 threads), 16 channels were twice as slow as
/// the unfolding GEMM, 32-64 even or slower, 128-512 10-30% faster (64 channels have
/// paid over wide planes since the weight transform stopped thrashing its cache sets:
/// `WIDE_MIN_CHANNELS`).
const MIN_CHANNELS: usize = 128;

/// Below this many tiles per call the weight's transform (16 values per channel pair)
/// outweighs the saving, and one image's transforms run on one thread: a batch of one
/// through ResNet-18's 16×16 stage (64 tiles) was slower.
const MIN_TILES: usize = 128;

/// From 64 channels the form pays only over wide planes and many tiles, where the
/// unused column per row of tiles is a small share and the transforms run long: one
/// 64-channel 3×3 layer (`archc bench --iters 20`, three alternating rounds, ms) at
/// 32×32, batch 32: 7.0–7.8 → 5.9–6.2 inference, 16.8–18.1 → 14.0–17.0 training; but
/// at 8×8, batch 128: 1.8–3.2 → 2.0–2.2 and 4.1–4.2 → 4.2–4.6, and at 32×32, batch 1:
/// 0.26–0.40 → 0.33–0.36 and 0.78–0.87 → 0.87–0.89.
const WIDE_MIN_CHANNELS: usize = 64;
const WIDE_MIN_WIDTH: usize = 32;
const WIDE_MIN_TILES: usize = 1024;

/// (in + out channels) × columns per panel: V and M together are 16 times this many
/// values (1 MiB), so that a panel's transformed input and products stay in L2 ...
const PANEL: usize = 1 << 14;

/// ... but at least this many columns: the GEMMs run along them, and narrower ones
/// fall to the GEMM's edge kernels (ResNet-18's 512 channels would get 16).
const MIN_COLUMNS: usize = 96;

/// Whether the Winograd form computes this convolution, and pays.
pub(super) fn applies(conv: &Conv2d) -> bool {
    let [out_h, out_w] = conv.output_size();
    let channels = conv.in_channels.min(conv.out_channels);
    let tiles = conv.batch * out_h.div_ceil(2) * out_w.div_ceil(2);
    conv.kernel == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && ((channels >= MIN_CHANNELS && tiles >= MIN_TILES)
            || (channels >= WIDE_MIN_CHANNELS && out_w >= WIDE_MIN_WIDTH && tiles >= WIDE_MIN_TILES))
}

/// The forward pass (`applies` must hold): y [batch, out, out_h, out_w], each output
/// row followed by `then` as soon as it is written.
pub(super) fn forward(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) -> Vec<f32> {
    debug_assert!(applies(conv));
    let (cin, cout) = (conv.in_channels, conv.out_channels);
    let [out_h, out_w] = conv.output_size();
    let tiles = Tiles { rows: out_h.div_ceil(2), per_row: out_w.div_ceil(2) };
    let u = transform_weight(weight, cin, cout);
    let width = Width::detect();
    let threads = rayon::current_num_threads().max(1);
    // Whole images per task, so that each task writes its own part of y; with fewer
    // images than threads, one task and parallel GEMMs.
    let (images_per_task, par) = if conv.batch >= threads {
        (conv.batch.div_ceil(threads), Parallelism::None)
    } else {
        (conv.batch, Parallelism::Rayon(threads))
    };
    let image_out = cout * out_h * out_w;
    let n = tiles.columns();
    let rows_per_panel = (PANEL / (cin + cout)).max(MIN_COLUMNS).div_ceil(n);
    // Written once each, without zeroing first (as the unfolding path does).
    let mut y = crate::uninit(conv.output_len());
    y.par_chunks_mut(images_per_task * image_out).enumerate().for_each(|(task, y)| {
        let first = task * images_per_task;
        let units = y.len() / image_out * tiles.rows;
        let panel_rows = rows_per_panel.min(units);
        let mut v = vec![0f32; 16 * cin * panel_rows * n];
        let mut m = vec![0f32; 16 * cout * panel_rows * n];
        // 8 rows of the panel's length (input) or 12 (output).
        let mut lines = vec![0f32; 12 * panel_rows * n];
        for start in (0..units).step_by(panel_rows) {
            let panel = Panel { conv, tiles: &tiles, units: start..(start + panel_rows).min(units), first };
            let len = panel.len();
            panel_input(width, &panel, x, &mut v, &mut lines);
            for xi in 0..16 {
                let lhs = Matrix::rows(&u[xi * cout * cin..][..cout * cin], cin);
                let rhs = Matrix::rows(&v[xi * cin * len..][..cin * len], len);
                matmul(&mut m[xi * cout * len..][..cout * len], false, (cout, len, cin), lhs, rhs, par);
            }
            panel_output(width, &panel, &m, bias, then, y, &mut lines);
        }
    });
    // SAFETY: the panels cover every row of tiles of every image, and each writes all
    // out_w values of each output row its tiles cover.
    unsafe { crate::assume_init(y) }
}

/// The output's tiles: `rows` rows of `per_row` 2×2 tiles (the last row and column may
/// hang over an odd output by one).
struct Tiles {
    rows: usize,
    per_row: usize,
}

impl Tiles {
    /// Columns of V and M for one row of tiles: one per tile and one unused.
    fn columns(&self) -> usize {
        self.per_row + 1
    }
}

/// Consecutive rows of tiles (units: image × tiles.rows + tile row) of one task's
/// images, the first of which is image `first` of the batch.
struct Panel<'a> {
    conv: &'a Conv2d,
    tiles: &'a Tiles,
    units: std::ops::Range<usize>,
    first: usize,
}

impl Panel<'_> {
    /// Columns of V and M.
    fn len(&self) -> usize {
        self.units.len() * self.tiles.columns()
    }

    /// V [16][in][len] = Bᵀ d B of every tile. Per channel, the four input rows each
    /// row of tiles reads are split into even and odd columns (tile j reads even j,
    /// odd j, even j+1, odd j+1), then both transforms run along the whole panel.
    #[inline(always)]
    fn transform_input(&self, x: &[f32], v: &mut [f32], lines: &mut [f32]) {
        let conv = self.conv;
        let (n, len, plane) = (self.tiles.columns(), self.len(), conv.height * conv.width);
        let [pad_h, pad_w] = conv.padding;
        let (even, odd) = lines[..8 * len].split_at_mut(4 * len);
        for c in 0..conv.in_channels {
            for (at, unit) in self.units.clone().enumerate() {
                let (b, ty) = (self.first + unit / self.tiles.rows, unit % self.tiles.rows);
                let plane = &x[(b * conv.in_channels + c) * plane..][..plane];
                for i in 0..4 {
                    let (even, odd) = (&mut even[i * len + at * n..][..n], &mut odd[i * len + at * n..][..n]);
                    match (2 * ty + i).checked_sub(pad_h).filter(|&r| r < conv.height) {
                        Some(r) => split_row(&plane[r * conv.width..][..conv.width], pad_w, even, odd),
                        None => {
                            even.fill(0.0);
                            odd.fill(0.0);
                        }
                    }
                }
            }
            // Bᵀ d: rows (d0 − d2, d1 + d2, d2 − d1, d1 − d3), in place, both halves.
            for half in [&mut *even, &mut *odd] {
                let (d01, d23) = half.split_at_mut(2 * len);
                let (d0, d1) = d01.split_at_mut(len);
                let (d2, d3) = d23.split_at_mut(len);
                for (((d0, d1), d2), d3) in d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()).zip(d3.iter_mut()) {
                    (*d0, *d1, *d2, *d3) = (*d0 - *d2, *d1 + *d2, *d2 - *d1, *d1 - *d3);
                }
            }
            // (Bᵀ d) B: the same along the columns; the last column of each row of
            // tiles mixes two rows and is never read back.
            for i in 0..4 {
                let (e, o) = (&even[i * len..][..len], &odd[i * len..][..len]);
                let stride = conv.in_channels * len;
                let at = |q: usize| (4 * i + q) * stride + c * len;
                let (v0, rest) = v[at(0)..].split_at_mut(stride);
                let (v1, rest) = rest.split_at_mut(stride);
                let (v2, v3) = rest.split_at_mut(stride);
                let (v0, v1, v2, v3) = (&mut v0[..len - 1], &mut v1[..len - 1], &mut v2[..len - 1], &mut v3[..len - 1]);
                let (e0, e1, o0, o1) = (&e[..len - 1], &e[1..], &o[..len - 1], &o[1..]);
                for j in 0..len - 1 {
                    v0[j] = e0[j] - e1[j];
                    v1[j] = o0[j] + e1[j];
                    v2[j] = e1[j] - o0[j];
                    v3[j] = o0[j] - o1[j];
                }
            }
        }
    }

    /// Aᵀ M A plus the bias for every tile, from M [16][out][len], into the task's
    /// output `y` (each value written once), each row followed by `then`.
    #[inline(always)]
    fn transform_output(
        &self,
        m: &[f32],
        bias: Option<&[f32]>,
        then: Epilogue,
        y: &mut [MaybeUninit<f32>],
        lines: &mut [f32],
    ) {
        let conv = self.conv;
        let (cout, per_row, n, len) = (conv.out_channels, self.tiles.per_row, self.tiles.columns(), self.len());
        let [out_h, out_w] = conv.output_size();
        let out_plane = out_h * out_w;
        let (s, ys) = lines[..12 * len].split_at_mut(8 * len);
        for k in 0..cout {
            let products = |xi: usize| &m[(xi * cout + k) * len..][..len];
            // Aᵀ M over the tile's rows (ξ = 4i + j): s0j = m0j + m1j + m2j,
            // s1j = m1j − m2j − m3j, for each column j.
            for j in 0..4 {
                let (m0, m1, m2, m3) = (products(j), products(4 + j), products(8 + j), products(12 + j));
                let (s0, s1) = s[2 * j * len..][..2 * len].split_at_mut(len);
                for q in 0..len {
                    s0[q] = m0[q] + m1[q] + m2[q];
                    s1[q] = m1[q] - m2[q] - m3[q];
                }
            }
            // Then over the columns: ys row 2r + c holds y[2ty + r][2tx + c].
            let bias = bias.map_or(0.0, |b| b[k]);
            for r in 0..2 {
                let row = |j: usize| &s[(2 * j + r) * len..][..len];
                let (a0, a1, a2, a3) = (row(0), row(1), row(2), row(3));
                let (y0, y1) = ys[2 * r * len..][..2 * len].split_at_mut(len);
                for q in 0..len {
                    y0[q] = a0[q] + a1[q] + a2[q] + bias;
                    y1[q] = a1[q] - a2[q] - a3[q] + bias;
                }
            }
            for (at, unit) in self.units.clone().enumerate() {
                let (b, ty) = (unit / self.tiles.rows, unit % self.tiles.rows);
                let plane_at = (b * cout + k) * out_plane;
                let (top, bottom) = (2 * ty, (2 * ty + 2).min(out_h));
                for r in 0..bottom - top {
                    let even = &ys[2 * r * len + at * n..][..per_row];
                    let odd = &ys[(2 * r + 1) * len + at * n..][..per_row];
                    interleave(even, odd, &mut y[plane_at + (top + r) * out_w..][..out_w]);
                }
                if !then.is_empty() {
                    let written = &mut y[plane_at + top * out_w..plane_at + bottom * out_w];
                    // SAFETY: the rows just written.
                    let written = unsafe { &mut *(written as *mut [MaybeUninit<f32>] as *mut [f32]) };
                    then.apply(written, self.first * cout * out_plane + plane_at + top * out_w);
                }
            }
        }
    }
}

/// `out` = e0 o0 e1 o1 …, its length 2·even.len() or one less. Eight pairs at a time
/// through a fixed-size block, which the compiler turns into vector shuffles (pair by
/// pair it stored one value at a time).
#[inline(always)]
fn interleave(even: &[f32], odd: &[f32], out: &mut [MaybeUninit<f32>]) {
    let done = out.len() / 16 * 8;
    let mut blocks = out.chunks_exact_mut(16);
    let (mut e, mut o) = (even.chunks_exact(8), odd.chunks_exact(8));
    for ((block, e), o) in (&mut blocks).zip(&mut e).zip(&mut o) {
        let mut pairs = [MaybeUninit::new(0f32); 16];
        for i in 0..8 {
            (pairs[2 * i], pairs[2 * i + 1]) = (MaybeUninit::new(e[i]), MaybeUninit::new(o[i]));
        }
        block.copy_from_slice(&pairs);
    }
    for (q, v) in blocks.into_remainder().iter_mut().enumerate() {
        v.write(if q % 2 == 0 { even[done + q / 2] } else { odd[done + q / 2] });
    }
}

/// One input row with `pad` zeros on the left (and as many as it takes on the right),
/// split into its even and odd columns: column q of the row is padded column q + pad.
#[inline(always)]
fn split_row(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) {
    let n = even.len();
    let row = &row[..row.len().min((2 * n).saturating_sub(pad))];
    // Row values 0, 2, 4 … go to `first` from pad/2 on; 1, 3, 5 … to `second` from
    // (pad + 1)/2 on.
    let (first, second) = if pad.is_multiple_of(2) { (even, odd) } else { (odd, even) };
    let (from_first, from_second) = (pad / 2, pad.div_ceil(2));
    let (to_first, to_second) = (from_first + row.len().div_ceil(2), from_second + row.len() / 2);
    first[..from_first].fill(0.0);
    second[..from_second].fill(0.0);
    first[to_first..].fill(0.0);
    second[to_second..].fill(0.0);
    let pairs = row.len() / 2;
    deinterleave(&row[..2 * pairs], &mut first[from_first..][..pairs], &mut second[from_second..][..pairs]);
    if row.len() % 2 == 1 {
        first[to_first - 1] = row[row.len() - 1];
    }
}

/// The inverse of `interleave`: `even`, `odd` from `pairs` (2·even.len() values).
#[inline(always)]
fn deinterleave(pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let mut blocks = pairs.chunks_exact(16);
    let (mut e, mut o) = (even.chunks_exact_mut(8), odd.chunks_exact_mut(8));
    for ((block, e), o) in (&mut blocks).zip(&mut e).zip(&mut o) {
        let block: &[f32; 16] = block.try_into().expect("16 values");
        for i in 0..8 {
            (e[i], o[i]) = (block[2 * i], block[2 * i + 1]);
        }
    }
    let done = pairs.len() / 16 * 8;
    for (q, pair) in blocks.remainder().chunks_exact(2).enumerate() {
        (even[done + q], odd[done + q]) = (pair[0], pair[1]);
    }
}

// The transforms add, subtract and halve only: every width gives the same values.
#[inline(always)]
fn input_of(panel: &Panel, x: &[f32], v: &mut [f32], lines: &mut [f32]) {
    panel.transform_input(x, v, lines)
}

#[inline(always)]
fn output_of(
    panel: &Panel,
    m: &[f32],
    bias: Option<&[f32]>,
    then: Epilogue,
    y: &mut [MaybeUninit<f32>],
    lines: &mut [f32],
) {
    panel.transform_output(m, bias, then, y, lines)
}

crate::multiversion!(panel_input => input_of(panel: &Panel, x: &[f32], v: &mut [f32], lines: &mut [f32]) -> ());
crate::multiversion!(panel_output => output_of(
    panel: &Panel, m: &[f32], bias: Option<&[f32]>, then: Epilogue, y: &mut [MaybeUninit<f32>], lines: &mut [f32]
) -> ());

/// G g Gᵀ for every (out, in) pair: u[(ξ·out + o)·in + i], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
/// In parallel over runs of pairs, each task writing its run of all 16 rows of u (a
/// 512-channel layer has 262 K pairs, and the serial version kept the other thread
/// waiting).
fn transform_weight(weight: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let pairs = cout * cin;
    let run = crate::min_items(16);
    let mut u = crate::uninit(16 * pairs);
    // runs[r] holds run r's part of each of the 16 rows.
    let mut runs: Vec<Vec<&mut [MaybeUninit<f32>]>> =
        (0..pairs.div_ceil(run)).map(|_| Vec::with_capacity(16)).collect();
    for row in u.chunks_mut(pairs) {
        for (parts, part) in runs.iter_mut().zip(row.chunks_mut(run)) {
            parts.push(part);
        }
    }
    runs.into_par_iter().zip(weight.par_chunks(9 * run)).for_each(|(rows, windows)| {
        // The run's 16 rows side by side, then each copied to its place in u. The rows
        // are a little longer than the run: 16 rows 4 KiB apart share their cache sets.
        let len = windows.len() / 9;
        let stride = len + 16;
        let mut local = vec![0f32; 16 * stride];
        for (pair, g) in windows.chunks_exact(9).enumerate() {
            // G applied to a 3-vector: (a, (a + b + c)/2, (a − b + c)/2, c).
            let expand = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            let cols: [[f32; 4]; 3] = std::array::from_fn(|j| expand(g[j], g[3 + j], g[6 + j]));
            for i in 0..4 {
                let row = expand(cols[0][i], cols[1][i], cols[2][i]);
                for (j, value) in row.into_iter().enumerate() {
                    local[(4 * i + j) * stride + pair] = value;
                }
            }
        }
        for (row, values) in rows.into_iter().zip(local.chunks_exact(stride)) {
            for (slot, &value) in row.iter_mut().zip(values) {
                slot.write(value);
            }
        }
    });
    // SAFETY: the runs cover every pair, and each writes its pairs' 16 values.
    unsafe { crate::assume_init(u) }
}
