//! 3×3 stride-1 convolutions of 64 channels or more by Winograd's F(4×4, 3×3) (Lavin
//! and Gray 2016, the points 0, ±1, ±2).
//!
//! Each 4×4 block of outputs comes from a 6×6 input tile d and the 3×3 window g as
//! Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A: 36 multiplies per (input, output) channel pair for
//! 16 outputs, where the unfolding GEMM takes 144 (and F(2×2, 3×3), which this form
//! replaced, 64). Summed over the input channels, the 36 element-wise products become
//! 36 GEMMs, one per position ξ of the 6×6 transformed tile:
//!
//! - weight: U_ξ [out × in] (G g Gᵀ, once per call),
//! - input:  V_ξ [in × T] (Bᵀ d B for a panel of T tiles),
//! - M_ξ [out × T] = U_ξ · V_ξ, then Y = Aᵀ M A per tile, with the bias and the epilogue.
//!
//! F(2×2)'s layout wasted a column per row of tiles (a third of them at a ResNet's 4×4
//! outputs); here a 4×4 plane is one tile and an 8×8 plane four. The transforms run
//! along lines of a block of channels' tiles (each tile's 36 values first gathered into
//! 36 lines), so that they vectorise even where a plane has one tile. B's and A's
//! entries (±1, ±2, ±4, ±5, ±8) are exact, G's (¼, ⅙, 1/12, 1/24) round: outputs differ
//! from the unfolding's by a few units of 1e-6 of their magnitude (F(2×2) by about one).

use super::{Conv2d, Matrix, matmul};
use crate::{Epilogue, Width};
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many channels (in or out) the transforms' memory traffic outweighs the
/// multiplies they save: two 3×3 layers (`archc bench --mode infer`, batch 32, 2
/// threads) of 16 channels over 32×32 took 2.3 ms in the direct form and 4.4 here, of
/// 32 over 16×16 2.3 and 4.1; of 64 over 8×8 2.8 and 2.1.
const MIN_CHANNELS: usize = 64;

/// Below this many channels, only where each thread has its own images' tiles (the
/// transforms of one task run on one thread): 64 channels over 32×32 at batch 1 took
/// 1.0 ms in the direct form and 1.3 here.
const WIDE_CHANNELS: usize = 128;

/// Below this many tiles per call the weight's transform (36 values per channel pair,
/// written every call) outweighs the saving.
const MIN_TILES: usize = 16;

/// Tiles per task, at least, to share the batch's images among the threads; below it
/// one task runs the transforms and the GEMMs run in parallel.
const MIN_TASK_TILES: usize = 64;

/// (in + out channels) × columns per panel: V and M together hold 36 times this many
/// values (2.25 MiB) ...
const PANEL: usize = 1 << 14;

/// ... but at least this many columns, along which the GEMMs run.
const MIN_COLUMNS: usize = 64;

/// Whether this form computes the convolution, and pays.
pub(super) fn applies(conv: &Conv2d) -> bool {
    let [out_h, out_w] = conv.output_size();
    let channels = conv.in_channels.min(conv.out_channels);
    let tiles = conv.batch * out_h.div_ceil(4) * out_w.div_ceil(4);
    computes(conv)
        && channels >= MIN_CHANNELS
        && tiles >= MIN_TILES
        && (channels >= WIDE_CHANNELS || splits_images(conv.batch, tiles, rayon::current_num_threads()))
}

/// Whether the form computes `conv`'s kind of window, whatever it pays: 3×3, stride 1,
/// no dilation, one group.
pub(super) fn computes(conv: &Conv2d) -> bool {
    conv.kernel == [3, 3] && conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1
}

/// Whether the batch's images are shared among the threads, each task taking its own
/// images' tiles (and running its GEMMs on one thread), rather than one task running
/// the transforms and parallel GEMMs: enough images and enough tiles for every thread.
fn splits_images(batch: usize, tiles: usize, threads: usize) -> bool {
    batch >= threads && tiles >= threads * MIN_TASK_TILES
}

/// A 3×3 weight's transform, all 36 positions: U_ξ [out × in] = (G g Gᵀ)_ξ for every
/// (out, in) pair, ξ after ξ. Four times the weight's size (a 512-channel layer's is
/// 38 MB): made once where the weight does not change between calls (inference), and
/// read by every call instead of the weight (`forward`'s `transformed`).
pub struct Transformed {
    values: Vec<f32>,
    out_channels: usize,
    in_channels: usize,
}

impl Transformed {
    /// The transform of a [out, in, 3, 3] weight.
    pub(super) fn new(weight: &[f32], out_channels: usize, in_channels: usize) -> Transformed {
        let pairs = out_channels * in_channels;
        assert_eq!(weight.len(), 9 * pairs, "a 3×3 weight of {out_channels} × {in_channels} channels");
        let (width, taps) = (Width::detect(), weight_taps(weight, pairs));
        let mut values = crate::uninit(36 * pairs);
        for (row, room) in values.chunks_exact_mut(6 * pairs).enumerate() {
            transform_weight_row_into(width, &taps, row, room);
        }
        // SAFETY: each of the six rows wrote its 6 · pairs values.
        Transformed { values: unsafe { crate::assume_init(values) }, out_channels, in_channels }
    }

    /// Row `row` of the transform: U_ξ for ξ = 6·row .. 6·row + 6.
    fn row(&self, row: usize) -> &[f32] {
        let len = 6 * self.out_channels * self.in_channels;
        &self.values[row * len..][..len]
    }

    /// Whether this is the transform of a weight of `conv`'s channels.
    pub fn fits(&self, conv: &Conv2d) -> bool {
        (self.out_channels, self.in_channels) == (conv.out_channels, conv.in_channels)
    }
}

impl std::fmt::Debug for Transformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transformed({} × {} × 36)", self.out_channels, self.in_channels)
    }
}

/// The forward pass (`applies` must hold): y [batch, out, out_h, out_w], each output
/// row followed by `then` as soon as it is written. With `transformed` (the weight's
/// transform, made earlier), the weight itself is not read; without it, each panel
/// transforms the weight a row at a time.
pub(super) fn forward(
    conv: &Conv2d,
    x: &[f32],
    weight: &[f32],
    transformed: Option<&Transformed>,
    bias: Option<&[f32]>,
    then: Epilogue,
) -> Vec<f32> {
    debug_assert!(applies(conv));
    debug_assert!(transformed.is_none_or(|t| t.fits(conv)));
    let (cin, cout) = (conv.in_channels, conv.out_channels);
    let [out_h, out_w] = conv.output_size();
    let tiles = Tiles { rows: out_h.div_ceil(4), per_row: out_w.div_ceil(4) };
    let width = Width::detect();
    let threads = rayon::current_num_threads().max(1);
    // Whole images per task, so that each task writes its own part of y; with few
    // tiles, one task and parallel GEMMs.
    let (images_per_task, par) = if splits_images(conv.batch, conv.batch * tiles.rows * tiles.per_row, threads) {
        (conv.batch.div_ceil(threads), Parallelism::None)
    } else {
        (conv.batch, Parallelism::Rayon(threads))
    };
    let image_out = cout * out_h * out_w;
    let units_per_panel = (PANEL / (cin + cout)).max(MIN_COLUMNS).div_ceil(tiles.per_row);
    // The weight's taps side by side, for the transform of each row below (not needed
    // where the whole transform was made before).
    let taps = if transformed.is_none() { weight_taps(weight, cin * cout) } else { Vec::new() };
    // Written once each, without zeroing first.
    let mut y = crate::uninit(conv.output_len());
    y.par_chunks_mut(images_per_task * image_out).enumerate().for_each(|(task, y)| {
        let first = task * images_per_task;
        let units = y.len() / image_out * tiles.rows;
        let panel_units = units_per_panel.min(units);
        let columns = panel_units * tiles.per_row;
        let mut v = vec![0f32; 36 * cin * columns];
        let mut m = vec![0f32; 36 * cout * columns];
        let mut u = Vec::with_capacity(if transformed.is_none() { 6 * cout * cin } else { 0 });
        let mut lines = vec![0f32; 72 * line_room(columns)];
        for start in (0..units).step_by(panel_units) {
            let panel = Panel { conv, tiles: &tiles, units: start..(start + panel_units).min(units), first };
            let len = panel.len();
            panel_input(width, &panel, x, &mut v, &mut lines);
            for row in 0..6 {
                let u = match transformed {
                    Some(transformed) => transformed.row(row),
                    None => transform_weight_row(width, &taps, row, &mut u),
                };
                for (j, u) in u.chunks_exact(cout * cin).enumerate() {
                    let xi = 6 * row + j;
                    let lhs = Matrix::rows(u, cin);
                    let rhs = Matrix::rows(&v[xi * cin * len..][..cin * len], len);
                    matmul(&mut m[xi * cout * len..][..cout * len], false, (cout, len, cin), lhs, rhs, par);
                }
            }
            panel_output(width, &panel, &m, bias, then, y, &mut lines);
        }
    });
    // SAFETY: the panels cover every row of tiles of every image, and each writes all
    // out_w values of each output row its tiles cover.
    unsafe { crate::assume_init(y) }
}

/// `room`'s `rows` rows (of `pairs` values each) cut into runs of `run` pairs: runs[r]
/// holds run r's part of every row, so that each parallel task writes its own run.
fn runs_of_rows(
    room: &mut [MaybeUninit<f32>],
    rows: usize,
    pairs: usize,
    run: usize,
) -> Vec<Vec<&mut [MaybeUninit<f32>]>> {
    let mut runs: Vec<Vec<&mut [MaybeUninit<f32>]>> =
        (0..pairs.div_ceil(run)).map(|_| Vec::with_capacity(rows)).collect();
    for row in room[..rows * pairs].chunks_mut(pairs) {
        for (parts, part) in runs.iter_mut().zip(row.chunks_mut(run)) {
            parts.push(part);
        }
    }
    runs
}

/// The weight's taps side by side: taps[q·pairs + p] = weight[9p + q], so that the
/// transform below runs along the pairs with whole vectors. Once per call, in parallel.
fn weight_taps(weight: &[f32], pairs: usize) -> Vec<f32> {
    let chunk = crate::min_items(9);
    let mut taps = crate::uninit(9 * pairs);
    let width = Width::detect();
    runs_of_rows(&mut taps, 9, pairs, chunk).into_par_iter().zip(weight.par_chunks(9 * chunk)).for_each(
        |(mut parts, windows)| {
            let parts: &mut [&mut [MaybeUninit<f32>]; 9] = (&mut parts[..]).try_into().expect("nine taps");
            split_taps(width, windows, parts);
        },
    );
    // SAFETY: the runs cover every pair, and each writes its pairs' 9 taps.
    unsafe { crate::assume_init(taps) }
}

/// One run's windows (9 values each) into the nine taps' parts, each cut to the run's
/// length first so that the loop stores without bounds checks (through a list of
/// slices, each value's store was most of the transform's time).
#[inline(always)]
fn taps_of(windows: &[f32], parts: &mut [&mut [MaybeUninit<f32>]; 9]) {
    let n = windows.len() / 9;
    let [p0, p1, p2, p3, p4, p5, p6, p7, p8] = parts;
    let (p0, p1, p2, p3, p4) = (&mut p0[..n], &mut p1[..n], &mut p2[..n], &mut p3[..n], &mut p4[..n]);
    let (p5, p6, p7, p8) = (&mut p5[..n], &mut p6[..n], &mut p7[..n], &mut p8[..n]);
    for (p, w) in windows.chunks_exact(9).enumerate() {
        p0[p].write(w[0]);
        p1[p].write(w[1]);
        p2[p].write(w[2]);
        p3[p].write(w[3]);
        p4[p].write(w[4]);
        p5[p].write(w[5]);
        p6[p].write(w[6]);
        p7[p].write(w[7]);
        p8[p].write(w[8]);
    }
}

crate::multiversion!(split_taps => taps_of(windows: &[f32], parts: &mut [&mut [MaybeUninit<f32>]; 9]) -> ());

/// Row `row` of G g Gᵀ for every (out, in) pair from the weight's `taps`, into `u`
/// (its room reused): u[(j·out + o)·in + i] = (G g Gᵀ)[row][j], the weight of
/// ξ = 6·row + j. In parallel over runs of pairs.
///
/// A row at a time, each panel, rather than all 36 once per call: a 512-channel
/// weight transforms into 38 MB, which left every cache between the transform and
/// its GEMMs (and was mapped and faulted in afresh each call); a sixth of it stays in
/// L3. The transform's share of the work stays small (9 loads, 6 stores and about 25
/// operations per pair, against 6 · tiles multiply-adds in the row's GEMMs).
fn transform_weight_row<'u>(width: Width, taps: &[f32], row: usize, u: &'u mut Vec<f32>) -> &'u [f32] {
    let pairs = taps.len() / 9;
    u.clear();
    u.reserve(6 * pairs);
    transform_weight_row_into(width, taps, row, &mut u.spare_capacity_mut()[..6 * pairs]);
    // SAFETY: `transform_weight_row_into` wrote all 6 · pairs values.
    unsafe { u.set_len(6 * pairs) };
    u
}

/// `transform_weight_row` into `room` (6 · pairs values, each written).
fn transform_weight_row_into(width: Width, taps: &[f32], row: usize, room: &mut [MaybeUninit<f32>]) {
    let pairs = taps.len() / 9;
    assert_eq!(room.len(), 6 * pairs, "room for a row of the weight's transform");
    let chunk = crate::min_items(6).div_ceil(16) * 16;
    // The runs cover every pair, and each writes its pairs' 6 values.
    let runs = runs_of_rows(room, 6, pairs, chunk);
    runs.into_par_iter().enumerate().for_each(|(r, mut rows)| {
        let start = r * chunk;
        let len = rows[0].len();
        let taps: [&[f32]; 9] = std::array::from_fn(|q| &taps[q * pairs + start..][..len]);
        transform_run(width, taps, row, &mut rows);
    });
}

/// One run of pairs into their parts of the 6 rows, lane by lane along the pairs: G's
/// row `row` applied down the window's columns (its three entries constants of the
/// loop), then G along the result.
#[inline(always)]
fn weight_run(taps: [&[f32]; 9], row: usize, rows: &mut [&mut [MaybeUninit<f32>]]) {
    let [g0, g1, g2] = G[row];
    let n = taps[0].len();
    let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = taps.map(|tap| &tap[..n]);
    let [r0, r1, r2, r3, r4, r5] = rows else { panic!("six rows") };
    let (r0, r1, r2, r3, r4, r5) = (&mut r0[..n], &mut r1[..n], &mut r2[..n], &mut r3[..n], &mut r4[..n], &mut r5[..n]);
    for p in 0..n {
        let column = |top: f32, middle: f32, bottom: f32| g0 * top + g1 * middle + g2 * bottom;
        let [v0, v1, v2, v3, v4, v5] =
            g_transform(column(t0[p], t3[p], t6[p]), column(t1[p], t4[p], t7[p]), column(t2[p], t5[p], t8[p]));
        r0[p].write(v0);
        r1[p].write(v1);
        r2[p].write(v2);
        r3[p].write(v3);
        r4[p].write(v4);
        r5[p].write(v5);
    }
}

crate::multiversion!(transform_run => weight_run(taps: [&[f32]; 9], row: usize, rows: &mut [&mut [MaybeUninit<f32>]]) -> ());

/// G's rows (`g_transform` applies them to a column or row of three).
const G: [[f32; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// G applied to a window's row or column (a, b, c): G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙;
/// 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1], by multiplications (divisions held the transform
/// up).
#[inline(always)]
fn g_transform(a: f32, b: f32, c: f32) -> [f32; 6] {
    const SIXTH: f32 = 1.0 / 6.0;
    let (outer, inner) = ((a + c) * SIXTH, b * SIXTH);
    let (quarter, half) = (a * 0.25 * SIXTH, inner * 0.5);
    [a * 0.25, -(outer + inner), inner - outer, quarter + half + c * SIXTH, quarter - half + c * SIXTH, c]
}

/// The output's tiles: `rows` rows of `per_row` 4×4 tiles (the last row and column may
/// hang over the output by up to three).
struct Tiles {
    rows: usize,
    per_row: usize,
}

/// Consecutive rows of tiles (units: image × tiles.rows + tile row) of one task's
/// images, the first of which is image `first` of the batch. Tile t of the panel is
/// tile t % per_row of unit units.start + t / per_row.
struct Panel<'a> {
    conv: &'a Conv2d,
    tiles: &'a Tiles,
    units: std::ops::Range<usize>,
    first: usize,
}

impl Panel<'_> {
    /// Tiles, the columns of V and M.
    fn len(&self) -> usize {
        self.units.len() * self.tiles.per_row
    }

    /// V [36][in][len] = Bᵀ d B of every tile, for a block of channels at a time: the
    /// 6×6 values of each tile gathered into 36 lines (`d`, line 6j + i holding row i,
    /// column j, channel by channel), Bᵀ applied down the rows into `e` (line 6k + j),
    /// then B along the columns straight into V, where a block's channels lie side by
    /// side. Lines of a whole block rather than one channel's few tiles: ResNet-18's
    /// 4×4 stage has one tile per image.
    #[inline(always)]
    fn transform_input(&self, x: &[f32], v: &mut [f32], lines: &mut [f32]) {
        let conv = self.conv;
        let (cin, len, plane) = (conv.in_channels, self.len(), conv.height * conv.width);
        let per_row = self.tiles.per_row;
        let [pad_h, pad_w] = conv.padding;
        let block = channels_per_block(len);
        // One row of the padded image as the tiles read it (4 columns per tile, the last
        // tile's 2 more), for the widths below AVX-512.
        let mut padded = vec![0f32; 4 * per_row + 2];
        let avx512 = Width::detect() == Width::Avx512;
        for c0 in (0..cin).step_by(block) {
            let channels = block.min(cin - c0);
            let line = channels * len;
            let (d, e) = lines[..72 * line].split_at_mut(36 * line);
            for cc in 0..channels {
                for (at, unit) in self.units.clone().enumerate() {
                    let (b, ty) = (self.first + unit / self.tiles.rows, unit % self.tiles.rows);
                    let plane = &x[(b * cin + c0 + cc) * plane..][..plane];
                    for i in 0..6 {
                        // The input row (None: in the padding), and lines 6j + i,
                        // j = 0..6, at this unit's tiles.
                        let row = (4 * ty + i).checked_sub(pad_h).filter(|&r| r < conv.height);
                        let row = row.map(|r| &plane[r * conv.width..][..conv.width]);
                        let lines =
                            Strided { first: i * line + cc * len + at * per_row, stride: 6 * line, len: per_row };
                        split_row(avx512, (row, pad_w), &mut padded, d, lines);
                    }
                }
            }
            // Bᵀ down each column j: e[k][j] = Σ_i Bᵀ[k][i] d[i][j].
            for j in 0..6 {
                let d = lines_at(d, |i| (6 * j + i) * line, line);
                let e = lines_at_mut(e, |k| (6 * k + j) * line, line);
                b_transform(d, e);
            }
            // B along each row k: V_{6k+l}[c] = Σ_j e[k][j] B[j][l].
            for k in 0..6 {
                let e = lines_at(e, |j| (6 * k + j) * line, line);
                let v = lines_at_mut(v, |l| ((6 * k + l) * cin + c0) * len, line);
                b_transform(e, v);
            }
        }
    }

    /// Aᵀ M A plus the bias for every tile, from M [36][out][len], into the task's
    /// output `y` (each value written once), each unit's rows followed by `then`; a
    /// block of channels at a time, as for the input.
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
        let (cout, per_row, len) = (conv.out_channels, self.tiles.per_row, self.len());
        let [out_h, out_w] = conv.output_size();
        let out_plane = out_h * out_w;
        let block = channels_per_block(len);
        let avx512 = Width::detect() == Width::Avx512;
        for k0 in (0..cout).step_by(block) {
            let channels = block.min(cout - k0);
            let line = channels * len;
            // s: line 6a + j (Aᵀ down the columns), o: line 4a + b (the 4×4 outputs).
            let (s, o) = lines[..40 * line].split_at_mut(24 * line);
            for j in 0..6 {
                let m = lines_at(m, |i| ((6 * i + j) * cout + k0) * len, line);
                a_transform(m, lines_at_mut(s, |a| (6 * a + j) * line, line));
            }
            for a in 0..4 {
                let s = lines_at(s, |j| (6 * a + j) * line, line);
                a_transform(s, lines_at_mut(o, |b| (4 * a + b) * line, line));
            }
            for kk in 0..channels {
                let k = k0 + kk;
                let bias = bias.map_or(0.0, |b| b[k]);
                for (at, unit) in self.units.clone().enumerate() {
                    let (b, ty) = (unit / self.tiles.rows, unit % self.tiles.rows);
                    let plane_at = (b * cout + k) * out_plane;
                    let (top, bottom) = (4 * ty, (4 * ty + 4).min(out_h));
                    for a in 0..bottom - top {
                        let row = &mut y[plane_at + (top + a) * out_w..][..out_w];
                        // Lines 4a + b, b = 0..4, at this unit's tiles.
                        let lines =
                            Strided { first: 4 * a * line + kk * len + at * per_row, stride: line, len: per_row };
                        interleave4(avx512, o, lines, bias, row);
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
}

/// Values per line of the transforms, about: a block of channels' tiles side by side.
const LINE: usize = 256;

/// Channels per block for panels of `len` tiles.
fn channels_per_block(len: usize) -> usize {
    (LINE / len).max(1)
}

/// The longest line (a block's channels × a panel's tiles) of any panel up to
/// `columns` tiles: a shorter last panel takes more channels to a block, and its lines
/// can be longer than the first panel's (66 tiles: 3 channels, 198 values; 30 tiles: 8
/// channels, 240), but never over `LINE` unless one channel's tiles are.
fn line_room(columns: usize) -> usize {
    LINE.max(columns)
}

/// N lines of `len` values at `at(q)`.
#[inline(always)]
fn lines_at<const N: usize>(values: &[f32], at: impl Fn(usize) -> usize, len: usize) -> [&[f32]; N] {
    std::array::from_fn(|q| &values[at(q)..][..len])
}

/// N lines of `len` values at `at(q)`, which must not overlap.
#[inline(always)]
fn lines_at_mut<const N: usize>(values: &mut [f32], at: impl Fn(usize) -> usize, len: usize) -> [&mut [f32]; N] {
    values.get_disjoint_mut(std::array::from_fn(|q| at(q)..at(q) + len)).expect("disjoint lines")
}

/// out = Bᵀ d, lane by lane: Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
/// 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1].
#[inline(always)]
fn b_transform(d: [&[f32]; 6], out: [&mut [f32]; 6]) {
    let [d0, d1, d2, d3, d4, d5] = d;
    let len = d0.len();
    let (d1, d2, d3, d4, d5) = (&d1[..len], &d2[..len], &d3[..len], &d4[..len], &d5[..len]);
    let [o0, o1, o2, o3, o4, o5] = out;
    let (o0, o1, o2, o3, o4, o5) =
        (&mut o0[..len], &mut o1[..len], &mut o2[..len], &mut o3[..len], &mut o4[..len], &mut o5[..len]);
    for q in 0..len {
        let (a0, a1, a2, a3, a4, a5) = (d0[q], d1[q], d2[q], d3[q], d4[q], d5[q]);
        // Shared terms: rows 1 and 2 are ∓4(a1 ± ...) pairs, rows 3 and 4 ∓2 pairs.
        let (p, r) = (a4 - 4.0 * a2, a3 - 4.0 * a1);
        let (p2, r2) = (a4 - a2, 2.0 * (a3 - a1));
        o0[q] = 4.0 * a0 - 5.0 * a2 + a4;
        o1[q] = p + r;
        o2[q] = p - r;
        o3[q] = p2 + r2;
        o4[q] = p2 - r2;
        o5[q] = 4.0 * a1 - 5.0 * a3 + a5;
    }
}

/// out = Aᵀ m, lane by lane: Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0;
/// 0 1 −1 8 −8 1].
#[inline(always)]
fn a_transform(m: [&[f32]; 6], out: [&mut [f32]; 4]) {
    let [m0, m1, m2, m3, m4, m5] = m;
    let len = m0.len();
    let (m1, m2, m3, m4, m5) = (&m1[..len], &m2[..len], &m3[..len], &m4[..len], &m5[..len]);
    let [o0, o1, o2, o3] = out;
    let (o0, o1, o2, o3) = (&mut o0[..len], &mut o1[..len], &mut o2[..len], &mut o3[..len]);
    for q in 0..len {
        let (sum12, diff12) = (m1[q] + m2[q], m1[q] - m2[q]);
        let (sum34, diff34) = (m3[q] + m4[q], m3[q] - m4[q]);
        o0[q] = m0[q] + sum12 + sum34;
        o1[q] = diff12 + 2.0 * diff34;
        o2[q] = sum12 + 4.0 * sum34;
        o3[q] = diff12 + 8.0 * diff34 + m5[q];
    }
}

/// Lines of `len` values in one buffer, line k from `first + k·stride` (the callers'
/// strides are at least `len`, so the lines do not overlap). Offsets rather than an
/// array of slices: built for every row of tiles, such an array went through the
/// stack and stalled the loads that read it back (a third of the output transform).
#[derive(Clone, Copy)]
struct Strided {
    first: usize,
    stride: usize,
    len: usize,
}

impl Strided {
    /// Whether `count` such lines fit in `values` values without overlapping.
    fn fit(&self, count: usize, values: usize) -> bool {
        self.stride >= self.len && self.first + (count - 1) * self.stride + self.len <= values
    }
}

/// Lines j = 0..6 of `d` (`lines`) for a row of tiles from one input row (`None`: a
/// row of the padding) with `pad` zeros on its left: column j of tile tx is padded
/// column 4·tx + j, zero outside the row. On AVX-512 four tiles at a time, by masked
/// loads straight from the row (the masks give the padding's zeros), two permutations
/// and six 4-lane stores; value by value, the moves were most of the input transform,
/// and through a padded copy of the row (`padded`, the other widths' way) each load
/// waited for the stores that had just written it.
#[inline(always)]
fn split_row(avx512: bool, (row, pad): (Option<&[f32]>, usize), padded: &mut [f32], d: &mut [f32], lines: Strided) {
    let tiles = lines.len;
    assert!(lines.fit(6, d.len()) && padded.len() >= 4 * tiles + 2);
    let Some(row) = row else {
        for j in 0..6 {
            d[lines.first + j * lines.stride..][..tiles].fill(0.0);
        }
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        let base = d.as_mut_ptr();
        let lines = std::array::from_fn(|j| base.wrapping_add(lines.first + j * lines.stride));
        // SAFETY: AVX-512 detected; the six lines lie within `d` (asserted above).
        unsafe { split_row_avx512(row, pad, tiles, lines) };
        return;
    }
    let _ = avx512;
    padded.fill(0.0);
    let inside = row.len().min(padded.len().saturating_sub(pad));
    padded[pad..][..inside].copy_from_slice(&row[..inside]);
    for j in 0..6 {
        let line = &mut d[lines.first + j * lines.stride..][..tiles];
        for (value, &from) in line.iter_mut().zip(padded[j..].iter().step_by(4)) {
            *value = from;
        }
    }
}

/// `split_row` on AVX-512: padded columns 16g .. 16g + 32 give tiles 4g .. 4g + 4.
///
/// # Safety
/// AVX-512F and VL present; `tiles` values writable at each line.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn split_row_avx512(row: &[f32], pad: usize, tiles: usize, lines: [*mut f32; 6]) {
    use std::arch::x86_64::*;
    // Lanes 4j .. 4j + 3: column j of the four tiles (a 4×4 transpose) ...
    let columns = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    // ... and columns 4 and 5, which reach into the next 16.
    let next = _mm512_setr_epi32(4, 8, 12, 16, 5, 9, 13, 17, 0, 0, 0, 0, 0, 0, 0, 0);
    // Padded columns from .. from + 16, zero outside the row: the lanes that fall in
    // the row are loaded, the others are masked off and never read.
    let sixteen = |from: isize| {
        let first = (-from).clamp(0, 16) as u32;
        let end = (row.len() as isize - from).clamp(0, 16) as u32;
        let mask = (((1u32 << end) - 1) & !((1u32 << first) - 1)) as __mmask16;
        // SAFETY: only the lanes whose columns lie in the row are read.
        unsafe { _mm512_maskz_loadu_ps(mask, row.as_ptr().wrapping_offset(from)) }
    };
    for g in (0..tiles).step_by(4) {
        let mask = ((1u32 << (tiles - g).min(4)) - 1) as __mmask8;
        let from = (4 * g) as isize - pad as isize;
        let (a, b) = (sixteen(from), sixteen(from + 16));
        // SAFETY: as the caller guarantees.
        unsafe {
            let low = _mm512_permutexvar_ps(columns, a);
            let high = _mm512_permutex2var_ps(a, next, b);
            _mm_mask_storeu_ps(lines[0].add(g), mask, _mm512_castps512_ps128(low));
            _mm_mask_storeu_ps(lines[1].add(g), mask, _mm512_extractf32x4_ps::<1>(low));
            _mm_mask_storeu_ps(lines[2].add(g), mask, _mm512_extractf32x4_ps::<2>(low));
            _mm_mask_storeu_ps(lines[3].add(g), mask, _mm512_extractf32x4_ps::<3>(low));
            _mm_mask_storeu_ps(lines[4].add(g), mask, _mm512_castps512_ps128(high));
            _mm_mask_storeu_ps(lines[5].add(g), mask, _mm512_extractf32x4_ps::<1>(high));
        }
    }
}

/// `out` = a0 b0 c0 d0 a1 b1 … plus the bias, from lines a, b, c, d (`lines`, b = 0..4)
/// of `o`: the outputs of a row of tiles, 4 per tile, the last tile cut where the row
/// ends. On AVX-512 four tiles at a time (the transpose of `split_row`'s).
#[inline(always)]
fn interleave4(avx512: bool, o: &[f32], lines: Strided, bias: f32, out: &mut [MaybeUninit<f32>]) {
    let tiles = out.len().div_ceil(4);
    assert!(lines.len == tiles && lines.fit(4, o.len()));
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        let base = o.as_ptr();
        // SAFETY: AVX-512 detected; the four lines hold `tiles` values within `o`
        // (asserted above), and out 4·tiles − 3 or more.
        unsafe {
            let lines = std::array::from_fn(|b| base.add(lines.first + b * lines.stride));
            interleave4_avx512(lines, bias, out.as_mut_ptr().cast(), out.len())
        };
        return;
    }
    let _ = avx512;
    let line = |b: usize, tx: usize| o[lines.first + b * lines.stride + tx] + bias;
    for (q, slot) in out.iter_mut().enumerate() {
        slot.write(line(q % 4, q / 4));
    }
}

/// `interleave4` on AVX-512.
///
/// # Safety
/// AVX-512F and VL present; len.div_ceil(4) values readable at each line, `len`
/// writable at `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn interleave4_avx512(lines: [*const f32; 4], bias: f32, out: *mut f32, len: usize) {
    use std::arch::x86_64::*;
    let transpose = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let bias = _mm512_set1_ps(bias);
    for g in (0..len.div_ceil(4)).step_by(4) {
        let values = (len - 4 * g).min(16);
        let tiles = ((1u32 << values.div_ceil(4)) - 1) as __mmask8;
        // SAFETY: as the caller guarantees.
        unsafe {
            let v = _mm512_castps128_ps512(_mm_maskz_loadu_ps(tiles, lines[0].add(g)));
            let v = _mm512_insertf32x4::<1>(v, _mm_maskz_loadu_ps(tiles, lines[1].add(g)));
            let v = _mm512_insertf32x4::<2>(v, _mm_maskz_loadu_ps(tiles, lines[2].add(g)));
            let v = _mm512_insertf32x4::<3>(v, _mm_maskz_loadu_ps(tiles, lines[3].add(g)));
            let v = _mm512_add_ps(_mm512_permutexvar_ps(transpose, v), bias);
            _mm512_mask_storeu_ps(out.add(4 * g), ((1u32 << values) - 1) as __mmask16, v);
        }
    }
}

// The transforms add, subtract and multiply by constants only: every width gives the
// same values.
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
