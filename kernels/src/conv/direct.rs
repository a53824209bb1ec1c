//! Convolutions of stride 1 and 2 computed straight from a zero-padded copy of each
//! image, with no unfolding (AVX-512).
//!
//! In the padded image (rows `wp` = width + 2·padding long), output position (oh, ow)
//! reads tap (ki, kj) of channel c at c·plane + (oh + ki·d₀)·wp + ow + kj·d₁: with the
//! output also indexed along padded rows, q = oh·wp + ow, that is q plus an offset that
//! depends on the tap alone. So 16 consecutive q are one vector load per tap, whatever
//! rows they cross, and a register block of 8 output channels × 3 such vectors
//! accumulates 24 FMAs per tap from 3 loads and 8 broadcasts of the (packed) weight.
//! The q that fall in a row's padding columns are computed and dropped: 2 of every 34
//! on a 32-wide "same" 3×3 layer. Where rows are a multiple of 16 wide (or the rows'
//! own vectors take fewer for another reason), each output row has vectors of its own
//! instead, starting at q = oh·wp, and nothing is dropped. With stride 2 the padded
//! copy is split into the image's four phases (`Padded`), over which the taps are again
//! offsets from q.
//!
//! Where it pays (`applies`): few channels, where the unfolding GEMM's K is short and
//! the unfolding (three copies of the image for a 3×3 layer, then the GEMM's own
//! packing) costs as much as the multiplies. Images with few positions go several to a
//! group, so that the vectors of a block may come from different images.
//!
//! The weight gradient of the same layers (`weight_gradient`) reads the same padded
//! images: with dy laid out position by position, a position's output channels are one
//! vector and each input value one broadcast, summed over the positions in registers.

use super::Conv2d;
use crate::{Epilogue, Width};
use rayon::prelude::*;

/// Output channels per register block.
const CHANNELS: usize = 8;
/// Vectors of positions per register block: 8 × 3 accumulators, 3 loaded vectors and a
/// broadcast weight take 28 of the 32 registers.
const VECTORS: usize = 3;
/// Positions per vector.
const LANES: usize = 16;
/// At least this many positions per group of images (several images of 8×8 share the
/// blocks; a 32×32 image has more on its own).
const GROUP_POSITIONS: usize = 192;

/// At most this many channels in and out: above, a 3×3 block's weight (8 × in × 9
/// values) outgrows L1, and the unfolding GEMM and Winograd's F(2×2, 3×3) were faster
/// (one 3×3 layer of 128, 256 and 512 channels, `archc bench`: BENCHMARKS.md). A 3×3
/// layer of 64 goes to Winograd's form first, where it has enough tiles.
const MAX_CHANNELS: usize = 64;

/// Whether the direct form computes this convolution (on this CPU), and pays.
pub(super) fn applies(conv: &Conv2d) -> bool {
    // Stride 2 where the window reaches every phase (a 1×1 one would read a quarter of
    // the split copy: it unfolds, which is one copy of the values it reads).
    (conv.stride == [1, 1] || conv.stride == [2, 2] && conv.kernel[0] > 1 && conv.kernel[1] > 1)
        && conv.groups == 1
        && !conv.is_pointwise()
        && conv.in_channels <= MAX_CHANNELS
        && conv.out_channels <= MAX_CHANNELS
        && Width::detect() == Width::Avx512
}

/// The padded image and the positions computed over it.
///
/// With stride 2 the padded image is split into its four phases, the values at (even,
/// even), (even, odd), (odd, even) and (odd, odd) padded rows and columns, each a plane
/// of its own (half as high and wide): output (oh, ow) reads tap (ki, kj) from phase
/// (ki·d₀ mod 2, kj·d₁ mod 2) at (oh + ⌊ki·d₀/2⌋, ow + ⌊kj·d₁/2⌋), so that along the
/// phase planes' rows the taps are again offsets from q = oh·row + ow and the register
/// blocks are those of stride 1, each tap read once (no zeros stuffed between the
/// values, as a dilated stride-1 form would need).
struct Padded {
    /// The row length of the (phase) planes.
    wp: usize,
    /// Values per phase plane (the whole padded plane with stride 1).
    phase: usize,
    /// Values per padded channel (all its phases), and per padded image (with the
    /// slack the last vector's dropped lanes read past its last channel).
    plane: usize,
    len: usize,
    /// Where each vector of an image starts along the rows (q of its first lane), and
    /// how many of its lanes it may keep (a row's own vector keeps only that row's).
    starts: Vec<(usize, usize)>,
    /// Each tap's offset from q, window row by row.
    taps: Vec<usize>,
}

impl Padded {
    fn of(conv: &Conv2d) -> Padded {
        let [out_h, out_w] = conv.output_size();
        let [s0, s1] = conv.stride;
        let (hp, wp) = (conv.height + 2 * conv.padding[0], conv.width + 2 * conv.padding[1]);
        let (hq, wq) = (hp.div_ceil(s0), wp.div_ceil(s1));
        let phase = hq * wq;
        let plane = s0 * s1 * phase;
        let taps: Vec<usize> = (0..conv.kernel[0])
            .flat_map(|ki| {
                let (r, c) = (ki * conv.dilation[0], conv.dilation[1]);
                (0..conv.kernel[1]).map(move |kj| {
                    let phase_of = (r % s0) * s1 + (kj * c) % s1;
                    phase_of * phase + (r / s0) * wq + kj * c / s1
                })
            })
            .collect();
        Padded { phase, ..Padded::over([out_h, out_w], wq, plane, taps, conv.in_channels) }
    }

    /// Outputs [out_h, out_w] over planes of `plane` values in rows of `wp`, read through
    /// `taps`, for `channels` input channels (`phase` left as the whole plane).
    fn over([out_h, out_w]: [usize; 2], wp: usize, plane: usize, taps: Vec<usize>, channels: usize) -> Padded {
        // Vectors one after another along the rows (a row's padding columns computed
        // and dropped), or each output row in vectors of its own (the rest of its last
        // vector dropped): whichever takes fewer. Rows of 16 or 32 take their own (no
        // lane dropped: 64 vectors for a 32×32 image instead of 68, 16 for 16×16
        // instead of 18); 8×8 takes the first (5 vectors instead of 8).
        let along = ((out_h - 1) * wp + out_w).div_ceil(LANES);
        let per_row = out_w.div_ceil(LANES);
        let starts: Vec<(usize, usize)> = if out_h * per_row < along {
            (0..out_h)
                .flat_map(|r| (0..per_row).map(move |j| (r * wp + LANES * j, LANES.min(out_w - LANES * j))))
                .collect()
        } else {
            (0..along).map(|v| (LANES * v, LANES)).collect()
        };
        let last_tap = taps.iter().copied().max().unwrap_or(0);
        // The last channel's last vector reads up to its start + 16 + the furthest tap.
        let reach = starts.last().map_or(0, |&(q, _)| q + LANES) + last_tap;
        let len = (channels - 1) * plane + reach.max(plane);
        Padded { wp, phase: plane, plane, len, starts, taps }
    }

    /// Vectors per image.
    fn vectors(&self) -> usize {
        self.starts.len()
    }

    /// Copies image `x` [in, height, width] into `out` (`len` values) where its
    /// padding was zeroed before: only the image's own rows are written, so the zeros
    /// around them stay from one image to the next.
    ///
    /// # Safety
    /// AVX-512F present.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill(&self, conv: &Conv2d, x: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let ([ph, pw], (h, w)) = (conv.padding, (conv.height, conv.width));
        assert!(x.len() == conv.in_channels * h * w && out.len() == self.len, "padded image lengths");
        if conv.stride == [2, 2] {
            // SAFETY: as this function's.
            return unsafe { self.fill_phases(conv, x, out) };
        }
        // Row by row in vectors (a copy call per row cost more than the copy: rows are
        // 8-32 values).
        let tail = ((1u32 << (w % LANES)) - 1) as u16;
        for (c, input) in x.chunks_exact(h * w).enumerate() {
            for (r, row) in input.chunks_exact(w).enumerate() {
                let to = &mut out[c * self.plane + (ph + r) * self.wp + pw..][..w];
                let (from, to) = (row.as_ptr(), to.as_mut_ptr());
                // SAFETY: whole vectors below w, then the tail's lanes only, inside both
                // rows of w values.
                unsafe {
                    for at in (0..w - w % LANES).step_by(LANES) {
                        _mm512_storeu_ps(to.add(at), _mm512_loadu_ps(from.add(at)));
                    }
                    let at = w - w % LANES;
                    _mm512_mask_storeu_ps(to.add(at), tail, _mm512_maskz_loadu_ps(tail, from.add(at)));
                }
            }
        }
    }

    /// `fill` with stride 2: each row's values split between the phases of its padded
    /// row's parity, even and odd padded columns apart, 32 values at a time (two
    /// vectors in, their even and odd lanes out).
    ///
    /// # Safety
    /// AVX-512F present.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_phases(&self, conv: &Conv2d, x: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let ([ph, pw], (h, w)) = (conv.padding, (conv.height, conv.width));
        let lanes = |n: usize| ((1u32 << n.min(LANES)) - 1) as u16;
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for (c, input) in x.chunks_exact(h * w).enumerate() {
            for (r, row) in input.chunks_exact(w).enumerate() {
                let (prow, from) = (ph + r, row.as_ptr());
                // The phase plane row of padded row `prow`, padded column parity b.
                let to = |b: usize| c * self.plane + ((prow % 2) * 2 + b) * self.phase + prow / 2 * self.wp;
                for at in (0..w).step_by(2 * LANES) {
                    let n = (w - at).min(2 * LANES);
                    // SAFETY: the loads are masked to the n values left in the row (the
                    // second's address, past the row when n ≤ 16, is only formed: with
                    // no lane it reads nothing); each class of n.div_ceil(2) or n / 2
                    // values goes to phase row `to(b)` from column (at + parity + pw) / 2,
                    // inside its wp columns.
                    unsafe {
                        let lo = _mm512_maskz_loadu_ps(lanes(n), from.add(at));
                        let hi = _mm512_maskz_loadu_ps(lanes(n.saturating_sub(LANES)), from.wrapping_add(at + LANES));
                        for (parity, index) in [(0, even), (1, odd)] {
                            let values = _mm512_permutex2var_ps(lo, index, hi);
                            let (count, column) = ((n - parity).div_ceil(2), at + parity + pw);
                            let dst = out.as_mut_ptr().add(to(column % 2) + column / 2);
                            _mm512_mask_storeu_ps(dst, lanes(count), values);
                        }
                    }
                }
            }
        }
    }

    /// Each vector of an image: the lanes that are output positions (not a padding
    /// column, nor past the last row), and where the first of them goes in the output
    /// plane; the others follow it there, since output rows are contiguous.
    fn stores(&self, out_h: usize, out_w: usize) -> Vec<(usize, u16)> {
        self.starts
            .iter()
            .map(|&(start, lanes)| {
                let inside = |l: usize| {
                    let q = start + l;
                    l < lanes && q / self.wp < out_h && q % self.wp < out_w
                };
                let mask = (0..LANES).filter(|&l| inside(l)).fold(0u16, |m, l| m | 1 << l);
                let first = (mask != 0).then(|| start + mask.trailing_zeros() as usize);
                (first.map_or(0, |q| q / self.wp * out_w + q % self.wp), mask)
            })
            .collect()
    }
}

/// The weight as [block][in][tap][8]: block b's 8 output channels side by side for
/// each (input channel, tap), the channels past the last zero.
fn pack_weight(conv: &Conv2d, weight: &[f32]) -> Vec<f32> {
    let (cin, cout, taps) = (conv.in_channels, conv.out_channels, conv.kernel[0] * conv.kernel[1]);
    let blocks = cout.div_ceil(CHANNELS);
    let mut packed = vec![0f32; blocks * cin * taps * CHANNELS];
    for (b, block) in packed.chunks_exact_mut(cin * taps * CHANNELS).enumerate() {
        for co in b * CHANNELS..((b + 1) * CHANNELS).min(cout) {
            for ci in 0..cin {
                for t in 0..taps {
                    block[(ci * taps + t) * CHANNELS + co - b * CHANNELS] = weight[(co * cin + ci) * taps + t];
                }
            }
        }
    }
    packed
}

/// The output, shared by the tasks: each writes its own (image, channel) planes.
struct Output(*mut f32);
// SAFETY: the tasks write disjoint planes (see `forward`).
unsafe impl Sync for Output {}

impl Output {
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

/// The forward pass (`applies` must hold): y [batch, out, out_h, out_w].
pub(super) fn forward(conv: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>, then: Epilogue) -> Vec<f32> {
    debug_assert!(applies(conv));
    let padded = Padded::of(conv);
    let packed = pack_weight(conv, weight);
    let [out_h, out_w] = conv.output_size();
    let (cout, out_plane) = (conv.out_channels, out_h * out_w);
    let stores = padded.stores(out_h, out_w);
    let blocks = cout.div_ceil(CHANNELS);
    let per_group = GROUP_POSITIONS.div_ceil(LANES * padded.vectors()).clamp(1, conv.batch);
    let groups = conv.batch.div_ceil(per_group);
    // Groups of images shared among the threads; with fewer groups than threads, each
    // group's channel blocks are split too (each part pads the group itself).
    let threads = rayon::current_num_threads().max(1);
    let splits = if groups >= threads { 1 } else { threads.div_ceil(groups).min(blocks) };
    let mut y = crate::uninit(conv.output_len());
    let out = Output(y.as_mut_ptr().cast::<f32>());
    // Zeroed once per task: `fill` writes only the images' own rows.
    let scratch = || vec![0f32; per_group * padded.len];
    (0..groups * splits).into_par_iter().for_each_init(scratch, |images, unit| {
        let (group, split) = (unit / splits, unit % splits);
        let first = group * per_group;
        let count = per_group.min(conv.batch - first);
        for i in 0..count {
            let image = &x[(first + i) * conv.image_len()..][..conv.image_len()];
            // SAFETY: `applies` found AVX-512.
            unsafe { padded.fill(conv, image, &mut images[i * padded.len..][..padded.len]) };
        }
        let target = Target {
            y: out.ptr(),
            channels: cout,
            plane: out_plane,
            at: &|i, block| ((first + i) * cout + block * CHANNELS) * out_plane,
        };
        let parts = split * blocks / splits..(split + 1) * blocks / splits;
        // SAFETY: `applies` found AVX-512; the group's images were just padded; the
        // unit alone writes planes (image, block's channels) of its group and blocks
        // (units split the images into groups, and a group's channel blocks into parts),
        // and the residual has y's layout.
        unsafe {
            run_blocks(&padded, &stores, (&packed, conv.in_channels), (images, count), parts, &target, bias, then)
        };
    });
    // SAFETY: the units cover every (image, channel) plane, and the vectors of an image
    // cover each output position of its planes (`Padded::stores`).
    unsafe { crate::assume_init(y) }
}

/// The input gradient of a stride-2 layer (without dilation), added onto `onto` if
/// given. Each of the input's four phases (`Padded`) is a stride-1 convolution of the
/// zero-padded dy with the window's taps of that phase: input row R = 2·oh + ki takes
/// the taps ki ≡ R (mod 2), from dy row oh = ⌊R/2⌋ − (ki − R mod 2)/2, and so for
/// columns. The phases' outputs go to a scratch laid out phase by phase, which is then
/// interleaved into dx's rows (the inverse of `Padded::fill_phases`): the multiplies are
/// the register blocks of the forward pass, each tap once, where unfolding dy's gradient
/// and folding it back ran at half their speed.
///
/// `None` for other layers (stride 1, dilation): the caller then runs the gradient as a
/// convolution, or folds.
pub(super) fn input_gradient(conv: &Conv2d, weight: &[f32], dy: &[f32], onto: Option<&[f32]>) -> Option<Vec<f32>> {
    debug_assert!(applies(conv));
    if conv.stride != [2, 2] || conv.dilation != [1, 1] {
        return None;
    }
    let (cin, cout, [kh, kw], [p0, p1]) = (conv.in_channels, conv.out_channels, conv.kernel, conv.padding);
    let (h, w, hw) = (conv.height, conv.width, conv.height * conv.width);
    let [out_h, out_w] = conv.output_size();
    // Along one dimension, phase a (padded coordinates ≡ a mod 2) of an input `size`
    // long after `pad`: the half of its first coordinate, and how many it has.
    let phase = |a: usize, pad: usize, size: usize| {
        let first = pad + (a + 2 - pad % 2) % 2;
        (first / 2, if first < pad + size { (pad + size - 1 - first) / 2 + 1 } else { 0 })
    };
    let (rows, cols) = ([phase(0, p0, h), phase(1, p0, h)], [phase(0, p1, w), phase(1, p1, w)]);
    // dy padded by the furthest a tap reaches back, (k − 1)/2, above and to the left, and
    // as far down and right as a phase reads.
    let (top, left) = ((kh - 1) / 2, (kw - 1) / 2);
    let far =
        |phases: [(usize, usize); 2], out: usize| phases.iter().map(|&(first, n)| first + n).fold(out, usize::max);
    let (hp, wp) = (top + far(rows, out_h), left + far(cols, out_w));
    let dy_as_input = Conv2d {
        in_channels: cout,
        height: out_h,
        width: out_w,
        out_channels: cin,
        stride: [1, 1],
        padding: [top, left],
        ..*conv
    };
    // Each phase: its place in a channel of the scratch (phases one after another), its
    // taps and positions, and the weight packed for its taps.
    let mut place = 0;
    let phases: Vec<_> = [(0, 0), (0, 1), (1, 0), (1, 1)]
        .into_iter()
        .filter_map(|(a, b)| {
            let ((i0, n), (j0, m)) = (rows[a], cols[b]);
            if n == 0 || m == 0 {
                return None;
            }
            let window: Vec<(usize, usize)> =
                (a..kh).step_by(2).flat_map(|ki| (b..kw).step_by(2).map(move |kj| (ki, kj))).collect();
            let taps =
                window.iter().map(|&(ki, kj)| (i0 + top - (ki - a) / 2) * wp + j0 + left - (kj - b) / 2).collect();
            let padded = Padded::over([n, m], wp, hp * wp, taps, cout);
            let stores = padded.stores(n, m);
            let blocks = cin.div_ceil(CHANNELS);
            let mut packed = vec![0f32; blocks * cout * window.len() * CHANNELS];
            for (block, values) in packed.chunks_exact_mut(cout * window.len() * CHANNELS).enumerate() {
                for ci in block * CHANNELS..((block + 1) * CHANNELS).min(cin) {
                    for co in 0..cout {
                        for (t, &(ki, kj)) in window.iter().enumerate() {
                            values[(co * window.len() + t) * CHANNELS + ci - block * CHANNELS] =
                                weight[((co * cin + ci) * kh + ki) * kw + kj];
                        }
                    }
                }
            }
            place += n * m;
            Some(((a, b), place - n * m, padded, stores, packed))
        })
        .collect();
    // One image stride for all: the furthest any phase's vectors read.
    let len = phases.iter().map(|p| p.2.len).max().expect("a phase with positions");
    let mut phases = phases;
    phases.iter_mut().for_each(|p| p.2.len = len);
    let fill = Padded { len, ..Padded::over([out_h, out_w], wp, hp * wp, vec![0], cout) };
    // Each phase's place in a channel of the scratch, for the interleave (None: empty).
    let mut places = [[None; 2]; 2];
    for &((a, b), at, ..) in &phases {
        places[a][b] = Some(at);
    }
    let vectors: usize = phases.iter().map(|p| p.2.vectors()).sum();
    let per_group = GROUP_POSITIONS.div_ceil(LANES * vectors).clamp(1, conv.batch);
    let (groups, blocks) = (conv.batch.div_ceil(per_group), cin.div_ceil(CHANNELS));
    let threads = rayon::current_num_threads().max(1);
    let splits = if groups >= threads { 1 } else { threads.div_ceil(groups).min(blocks) };
    let mut dx = crate::uninit(conv.input_len());
    let out = Output(dx.as_mut_ptr().cast::<f32>());
    // The padded dy (zeroed once per task), and the phases' outputs.
    let scratch = || (vec![0f32; per_group * len], vec![0f32; per_group * cin * hw]);
    (0..groups * splits).into_par_iter().for_each_init(scratch, |(images, by_phase), unit| {
        let (group, split) = (unit / splits, unit % splits);
        let first = group * per_group;
        let count = per_group.min(conv.batch - first);
        let image_len = cout * out_h * out_w;
        for i in 0..count {
            // SAFETY: `applies` found AVX-512.
            unsafe {
                fill.fill(&dy_as_input, &dy[(first + i) * image_len..][..image_len], &mut images[i * len..][..len])
            };
        }
        let parts = split * blocks / splits..(split + 1) * blocks / splits;
        for (_, at, padded, stores, packed) in &phases {
            let target = Target {
                y: by_phase.as_mut_ptr(),
                channels: cin,
                plane: hw,
                at: &|i, block| (i * cin + block * CHANNELS) * hw + at,
            };
            // SAFETY: `applies` found AVX-512; the group's dy were just padded (every
            // phase reads within `len`); the unit's scratch has its images' planes.
            unsafe {
                run_blocks(
                    padded,
                    stores,
                    (packed, cout),
                    (images, count),
                    parts.clone(),
                    &target,
                    None,
                    Default::default(),
                )
            };
        }
        // Interleaved into dx: row R's two column phases, lane by lane.
        let channels = parts.start * CHANNELS..(parts.end * CHANNELS).min(cin);
        for i in 0..count {
            for ci in channels.clone() {
                let plane = ((first + i) * cin + ci) * hw;
                for r in 0..h {
                    let (a, b) = ((r + p0) % 2, p1 % 2);
                    let row = (r + p0) / 2 - rows[a].0;
                    let from = |b: usize| places[a][b].map(|at| (i * cin + ci) * hw + at + row * cols[b].1);
                    let (even, odd) = (from(b), from(1 - b));
                    // SAFETY: `applies` found AVX-512; the row's phases hold ⌈w/2⌉ and ⌊w/2⌋
                    // values at `even` and `odd` (absent only when w is 1); the unit alone
                    // writes dx's planes of its images and channels.
                    unsafe {
                        let onto = onto.map(|o| o[plane + r * w..].as_ptr());
                        interleave(
                            by_phase.as_ptr(),
                            (even.unwrap_or(0), odd.unwrap_or(0)),
                            w,
                            onto,
                            out.ptr().add(plane + r * w),
                        )
                    };
                }
            }
        }
    });
    // SAFETY: the units cover every (image, channel) plane, each row interleaved whole.
    Some(unsafe { crate::assume_init(dx) })
}

/// A row of `w` values from two phases: value 2t from `even` + t, 2t + 1 from `odd` + t
/// (of `from`), plus the row of `onto` if given, to `to`.
///
/// # Safety
/// AVX-512F present; ⌈w/2⌉ values readable from from + even, ⌊w/2⌋ from from + odd, w
/// from `onto`; w writable at `to`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave(from: *const f32, (even, odd): (usize, usize), w: usize, onto: Option<*const f32>, to: *mut f32) {
    use std::arch::x86_64::*;
    let lanes = |n: usize| ((1u32 << n.min(LANES)) - 1) as u16;
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for at in (0..w).step_by(2 * LANES) {
        let n = (w - at).min(2 * LANES);
        // SAFETY: as the caller guarantees: the loads are masked to the n.div_ceil(2) and
        // n / 2 values left in each phase's row, the stores to the n left in the row.
        unsafe {
            let a = _mm512_maskz_loadu_ps(lanes(n.div_ceil(2)), from.add(even + at / 2));
            let b = _mm512_maskz_loadu_ps(lanes(n / 2), from.add(odd + at / 2));
            for (half, index) in [(0, low), (1, high)] {
                let count = n.saturating_sub(half * LANES).min(LANES);
                if count == 0 {
                    continue;
                }
                let mut v = _mm512_permutex2var_ps(a, index, b);
                if let Some(onto) = onto {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes(count), onto.add(at + half * LANES)));
                }
                _mm512_mask_storeu_ps(to.add(at + half * LANES), lanes(count), v);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn interleave(_: *const f32, _: (usize, usize), _: usize, _: Option<*const f32>, _: *mut f32) {
    unreachable!("`applies` holds only on x86-64 with AVX-512")
}

/// Where a unit's register blocks write: y, its output channels, the values per channel
/// plane, and where image i (of the unit's group) of channel block b starts.
struct Target<'a> {
    y: *mut f32,
    channels: usize,
    plane: usize,
    at: &'a dyn Fn(usize, usize) -> usize,
}

/// The register blocks of channel blocks `blocks` over `count` padded images (`images`,
/// `padded.len` values each), three vectors at a time: vector v is vector v % vectors'
/// of image v / vectors'; its valid lanes go to the image's planes of the block.
///
/// # Safety
/// AVX-512F present; `packed` is the weight packed for `in_channels` channels and
/// `padded.taps`; `images` holds `count` images padded for `padded`; the target has room
/// for every (image, block) plane written, which no other thread writes meanwhile, and a
/// residual has its layout.
#[allow(clippy::too_many_arguments)]
unsafe fn run_blocks(
    padded: &Padded,
    stores: &[(usize, u16)],
    (packed, in_channels): (&[f32], usize),
    (images, count): (&[f32], usize),
    blocks: std::ops::Range<usize>,
    target: &Target,
    bias: Option<&[f32]>,
    then: Epilogue,
) {
    let vectors = count * padded.vectors();
    for block in blocks {
        let w = &packed[block * in_channels * padded.taps.len() * CHANNELS..];
        let store = Store {
            bias: std::array::from_fn(|k| bias.and_then(|b| b.get(block * CHANNELS + k)).copied().unwrap_or(0.0)),
            channels: CHANNELS.min(target.channels - block * CHANNELS),
            plane: target.plane,
            residual: then.residual.map(<[f32]>::as_ptr),
            relu: then.relu,
        };
        let vector = |v: usize| {
            let (i, local) = (v / padded.vectors(), v % padded.vectors());
            let (at, mask) = stores[local];
            let input = images[i * padded.len + padded.starts[local].0..].as_ptr();
            (input, ((target.at)(i, block) + at, mask))
        };
        let mut v = 0;
        while v < vectors {
            let n = VECTORS.min(vectors - v);
            let taken: [_; VECTORS] = std::array::from_fn(|j| vector(v + j.min(n - 1)));
            let inputs = (taken.map(|t| t.0), in_channels, padded.plane, padded.taps.as_slice());
            let (o, wp) = (taken.map(|t| t.1), w.as_ptr());
            // SAFETY: as the caller guarantees; each vector's loads stay inside its padded
            // image (`Padded::over` sized it for the last vector's furthest tap), the
            // weight holds in × taps blocks of 8.
            unsafe {
                match n {
                    3 => block_avx512::<3>(inputs, wp, [o[0], o[1], o[2]], target.y, &store),
                    2 => block_avx512::<2>(inputs, wp, [o[0], o[1]], target.y, &store),
                    _ => block_avx512::<1>(inputs, wp, [o[0]], target.y, &store),
                }
            }
            v += n;
        }
    }
}

/// How a block's sums are written: plus the bias, then the epilogue.
struct Store {
    bias: [f32; CHANNELS],
    /// The block's channels that exist (the last block may have fewer than 8).
    channels: usize,
    /// Values per output plane.
    plane: usize,
    residual: Option<*const f32>,
    relu: bool,
}

/// One register block: 8 output channels × N vectors of 16 positions, summed over the
/// input channels and taps, then stored: vector j's valid lanes (`outputs[j].1`) packed
/// together at y + outputs[j].0 + channel·plane, with the bias, residual and ReLU.
///
/// # Safety
/// AVX-512F present; for every input vector j, channel c < in and tap t, 16 values from
/// inputs[j] + c·plane + t readable; `weight` holds in × taps × 8 values; for each
/// vector and each of `store.channels` channels, as many values as the mask has lanes
/// writable from y + outputs[j].0 + channel·store.plane (and readable from the residual
/// there).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const N: usize>(
    (inputs, channels, plane, taps): ([*const f32; VECTORS], usize, usize, &[usize]),
    weight: *const f32,
    outputs: [(usize, u16); N],
    y: *mut f32,
    store: &Store,
) {
    use std::arch::x86_64::*;
    let mut sums = [[_mm512_setzero_ps(); N]; CHANNELS];
    let mut w = weight;
    for c in 0..channels {
        for &tap in taps {
            let at = c * plane + tap;
            // SAFETY: as the caller guarantees.
            unsafe {
                let x: [__m512; N] = std::array::from_fn(|j| _mm512_loadu_ps(inputs[j].add(at)));
                for (k, sum) in sums.iter_mut().enumerate() {
                    let wk = _mm512_set1_ps(*w.add(k));
                    for j in 0..N {
                        sum[j] = _mm512_fmadd_ps(wk, x[j], sum[j]);
                    }
                }
                w = w.add(CHANNELS);
            }
        }
    }
    for (k, sum) in sums.iter().enumerate().take(store.channels) {
        for (j, &(at, mask)) in outputs.iter().enumerate() {
            // The first count_ones lanes, where the valid ones are packed to.
            let packed = ((1u32 << mask.count_ones()) - 1) as u16;
            let at = at + k * store.plane;
            let mut v = _mm512_maskz_compress_ps(mask, _mm512_add_ps(sum[j], _mm512_set1_ps(store.bias[k])));
            // SAFETY: as the caller guarantees.
            unsafe {
                if let Some(residual) = store.residual {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(packed, residual.add(at)));
                }
                if store.relu {
                    // max(v, 0) gives 0 for NaN, as the other forms' ReLU does.
                    v = _mm512_max_ps(v, _mm512_setzero_ps());
                }
                _mm512_mask_storeu_ps(y.add(at), packed, v);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn block_avx512<const N: usize>(
    _: ([*const f32; VECTORS], usize, usize, &[usize]),
    _: *const f32,
    _: [(usize, u16); N],
    _: *mut f32,
    _: &Store,
) {
    unreachable!("`applies` holds only on x86-64 with AVX-512")
}

/// The weight gradient from the same padded images: dW[co][ci][ki][kj] = Σ over the
/// output positions of dy[co][p] · x̃[ci][q(p) + ki·d₀·wp + kj], with the 16 output
/// channels of a vector side by side. dy is first laid out position by position
/// (dyᵀ), so that a position's output channels are one vector load and each (input
/// channel, window row, tap) value one broadcast: a register block of 24 sums (20 for a
/// 5-wide window; window rows × taps × channel vectors) takes as many FMAs per position,
/// summed over an image's positions and then added to the task's sums, with no
/// unfolding and no horizontal sums (the dot products over the tall unfolding ran at about 240
/// GFLOP/s in ResNet-20's training, against 340 for the forward form).
///
/// With stride 2 a window row's taps alternate between the even and odd columns' phases
/// (`Padded`): tap kj at ⌊kj/2⌋ in the phase of kj's parity.
///
/// `None` where it is not built for the window (its width 3 or 5, taps side by side
/// without dilation): the caller then unfolds.
///
/// With `along`, the input gradient too, as that convolution of dy image by image in the
/// same tasks (each image's dy read from memory once for both, then from cache), added
/// onto `along.onto` if given.
pub(super) fn weight_gradient(
    conv: &Conv2d,
    x: &[f32],
    dy: &[f32],
    along: Option<AlongInput>,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    debug_assert!(applies(conv));
    if conv.dilation[1] != 1 || !matches!(conv.kernel[1], 3 | 5) {
        return None;
    }
    // The input gradient's padded dy, packed weight and stores, and its output. Only
    // where an image fills a group of its own: smaller ones go several to a group in the
    // forward pass, which the caller then runs.
    let input = along
        .map(|a| (a, Padded::of(a.transposed)))
        .filter(|(_, p)| LANES * p.vectors() >= GROUP_POSITIONS)
        .map(|(a, padded)| {
            debug_assert!(applies(a.transposed) && a.transposed.stride == [1, 1]);
            let stores = padded.stores(conv.height, conv.width);
            (a, pack_weight(a.transposed, a.flipped), padded, stores)
        });
    let mut dx = input.as_ref().map(|_| crate::uninit(conv.input_len()));
    let dx_out = Output(dx.as_mut().map_or(std::ptr::null_mut(), |d| d.as_mut_ptr().cast::<f32>()));
    let padded = Padded::of(conv);
    let [out_h, out_w] = conv.output_size();
    let (cin, cout, [kh, kw]) = (conv.in_channels, conv.out_channels, conv.kernel);
    let (positions, vectors) = (out_h * out_w, cout.div_ceil(LANES));
    let width = vectors * LANES;
    let rows = cin * kh;
    // The sums [row (ci, ki)][kj][co], each task's own, added up at the end.
    let sums_len = rows * kw * width;
    let threads = rayon::current_num_threads().max(1);
    // Images shared among the threads; one image's rows (blocks of them) otherwise.
    // (No more parts than the first channel block, the widest, has row blocks: the rest
    // would pad and transpose for nothing.)
    let most_blocks = rows.div_ceil(rows_per_block(block_vectors(vectors), kw));
    let (tasks, row_parts) =
        if conv.batch >= threads { (threads, 1) } else { (conv.batch, threads.div_ceil(conv.batch).min(most_blocks)) };
    // Window row r's first tap: (input channel, window row) = (r / kh, r % kh).
    let row = |r: usize| (r / kh) * padded.plane + padded.taps[(r % kh) * kw];
    let shape = Shape { out_h, out_w, wp: padded.wp, odd: padded.phase, width };
    let per_task = conv.batch.div_ceil(tasks);
    let units = conv.batch.div_ceil(per_task) * row_parts;
    let partial = (0..units).into_par_iter().map(|unit| {
        let (task, part) = (unit / row_parts, unit % row_parts);
        let mut sums = vec![0f32; sums_len];
        let mut image = vec![0f32; padded.len];
        let mut dy_t = vec![0f32; positions * width];
        let mut dy_padded = vec![0f32; input.as_ref().map_or(0, |i| i.2.len)];
        for b in task * per_task..((task + 1) * per_task).min(conv.batch) {
            let x_image = &x[b * conv.image_len()..][..conv.image_len()];
            let dy_image = &dy[b * cout * positions..][..cout * positions];
            // SAFETY: `applies` found AVX-512.
            unsafe { padded.fill(conv, x_image, &mut image) };
            // SAFETY: as above; dy_t holds positions × width values.
            unsafe { transpose_avx512(dy_image, cout, positions, &mut dy_t) };
            if let Some((along, packed, dy_as_input, stores)) = &input {
                // This part's share of the image's input-gradient channel blocks.
                let blocks = cin.div_ceil(CHANNELS);
                let parts = part * blocks / row_parts..(part + 1) * blocks / row_parts;
                let plane = conv.height * conv.width;
                let target = Target {
                    y: dx_out.ptr(),
                    channels: cin,
                    plane,
                    at: &|_, block| (b * cin + block * CHANNELS) * plane,
                };
                // SAFETY: `applies` found AVX-512 (and holds for the transposed layer);
                // dy_padded was zeroed and is padded for it; the unit alone writes dx's
                // planes of image b and these blocks (tasks split the images, parts
                // their blocks), and `onto` has dx's layout.
                unsafe {
                    dy_as_input.fill(along.transposed, dy_image, &mut dy_padded);
                    let then = Epilogue { residual: along.onto, relu: false };
                    run_blocks(dy_as_input, stores, (packed, cout), (&dy_padded, 1), parts, &target, None, then);
                }
            }
            let mut first = 0;
            while first < vectors {
                let v = block_vectors(vectors - first);
                let per_block = rows_per_block(v, kw);
                let blocks = rows.div_ceil(per_block);
                for block in part * blocks / row_parts..(part + 1) * blocks / row_parts {
                    let r0 = block * per_block;
                    let real = per_block.min(rows - r0);
                    let dy_at = dy_t[LANES * first..].as_ptr();
                    let sums_at = sums[(r0 * kw) * width + LANES * first..].as_mut_ptr();
                    // SAFETY: `applies` found AVX-512; each row's reads, q + kj for the
                    // output positions' q (with stride 2, q + ⌊kj/2⌋ in the phase of kj's
                    // parity), stay inside its padded channel; dy_t has
                    // `width` values per position from LANES·first on (v vectors fit);
                    // the sums hold `real` rows × kw taps × width from r0.
                    unsafe {
                        let start = |i: usize| image.as_ptr().add(row(r0 + i.min(real - 1)));
                        macro_rules! run {
                            ($kw:literal, $v:literal, $rows:literal) => {{
                                debug_assert_eq!($rows, rows_per_block($v, $kw));
                                let rows = std::array::from_fn(start);
                                match conv.stride[1] {
                                    1 => gradient_block::<$kw, $v, $rows, 1>(rows, dy_at, sums_at, real, &shape),
                                    _ => gradient_block::<$kw, $v, $rows, 2>(rows, dy_at, sums_at, real, &shape),
                                }
                            }};
                        }
                        match (kw, v) {
                            (3, 4) => run!(3, 4, 2),
                            (3, 2) => run!(3, 2, 4),
                            (3, _) => run!(3, 1, 8),
                            (_, 4) => run!(5, 4, 1),
                            (_, 2) => run!(5, 2, 2),
                            (_, _) => run!(5, 1, 4),
                        }
                    }
                }
                first += v;
            }
        }
        sums
    });
    let sums = partial
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        })
        .expect("a batch of at least one image");
    // [ci][ki][kj][co] to the weight's [co][ci][ki][kj].
    let mut dw = vec![0f32; conv.weight_len()];
    for (co, out) in dw.chunks_exact_mut(cin * kh * kw).enumerate() {
        for (t, w) in out.iter_mut().enumerate() {
            *w = sums[t * width + co];
        }
    }
    // SAFETY: the units cover every image, and each image's parts its channel blocks,
    // whose vectors cover each position of their planes (`Padded::stores`).
    Some((dw, dx.map(|dx| unsafe { crate::assume_init(dx) })))
}

/// The input gradient of a stride-1 layer, to be computed alongside its weight gradient
/// (`weight_gradient`): the layer it runs as (a convolution of dy, which the direct form
/// takes), its weight, and what it is added onto.
#[derive(Clone, Copy)]
pub(super) struct AlongInput<'a> {
    pub transposed: &'a Conv2d,
    pub flipped: &'a [f32],
    pub onto: Option<&'a [f32]>,
}

/// Vectors of output channels in a gradient block, with `left` still to do: 4, 2 or 1.
fn block_vectors(left: usize) -> usize {
    match left {
        4.. => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

/// Rows (input channel, window row) in a gradient block of `v` channel vectors over a
/// window `kw` wide: as many as make 24 sums, or 20 (`gradient_block`'s ROWS).
fn rows_per_block(v: usize, kw: usize) -> usize {
    24 / (v * kw)
}

/// The sizes a gradient block walks: the output rows and columns, the (phase) planes' row
/// length, the odd columns' phase from the even ones' (stride 2), and the values per
/// position of dyᵀ and per tap of the sums.
struct Shape {
    out_h: usize,
    out_w: usize,
    wp: usize,
    odd: usize,
    width: usize,
}

/// dyᵀ [position][width] from dy [cout][positions], channels past cout zero: blocks of
/// 16 channels × 16 positions transposed in registers (gathering a position's channels
/// one position at a time cost a third of what the gradient blocks did).
///
/// # Safety
/// AVX-512F present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_avx512(dy: &[f32], cout: usize, positions: usize, dy_t: &mut [f32]) {
    use std::arch::x86_64::*;
    let width = cout.next_multiple_of(LANES);
    assert!(dy.len() == cout * positions && dy_t.len() == positions * width, "dyᵀ lengths");
    for first in (0..cout).step_by(LANES) {
        for p0 in (0..positions).step_by(LANES) {
            let lanes = ((1u32 << (positions - p0).min(LANES)) - 1) as u16;
            // SAFETY: row c reads positions p0.. of channel first + c (< cout), masked to
            // the positions there are.
            let rows: [__m512; LANES] = std::array::from_fn(|c| {
                if first + c < cout {
                    unsafe { _mm512_maskz_loadu_ps(lanes, dy.as_ptr().add((first + c) * positions + p0)) }
                } else {
                    _mm512_setzero_ps()
                }
            });
            let columns = transpose16(rows);
            for (j, column) in columns.iter().enumerate().take((positions - p0).min(LANES)) {
                // SAFETY: position p0 + j < positions; 16 values from `first` fit in width.
                unsafe { _mm512_storeu_ps(dy_t.as_mut_ptr().add((p0 + j) * width + first), *column) };
            }
        }
    }
}

/// The transpose of a 16 × 16 block held as 16 rows: 32-bit, then 64-bit interleaves,
/// then two rounds of 128-bit lane shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [std::arch::x86_64::__m512; LANES]) -> [std::arch::x86_64::__m512; LANES] {
    use std::arch::x86_64::*;
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved by 32-bit elements.
    let t: [__m512; LANES] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(a, b) } else { _mm512_unpackhi_ps(a, b) }
    });
    // Within each group of four rows, 64-bit interleaves: (t0, t2) and (t1, t3).
    let u: [__m512; LANES] = std::array::from_fn(|i| {
        let group = i & !3;
        let (a, b) = match i % 4 {
            0 | 1 => (t[group], t[group + 2]),
            _ => (t[group + 1], t[group + 3]),
        };
        if i % 2 == 0 { ps(_mm512_unpacklo_pd(pd(a), pd(b))) } else { ps(_mm512_unpackhi_pd(pd(a), pd(b))) }
    });
    // 128-bit lanes between groups 0-1 and 2-3 (and 4-5, 6-7 of the second half).
    let v: [__m512; LANES] = std::array::from_fn(|i| {
        let (half, k) = (i / 8 * 8, i % 8);
        let (a, b) = (u[half + k % 4], u[half + 4 + k % 4]);
        if k < 4 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xdd>(a, b) }
    });
    std::array::from_fn(|i| {
        let (a, b) = (v[i % 8], v[8 + i % 8]);
        if i < 8 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xdd>(a, b) }
    })
}

/// ROWS (input channel, window row) pairs × KW taps × V vectors of output channels,
/// summed over every output position, then added to `sums` (for the first `real` rows:
/// the others repeat the last and are dropped). With STRIDE 1 tap kj is at q + kj along
/// a row; with 2, at q + ⌊kj/2⌋ in the even or odd columns' phase.
///
/// # Safety
/// AVX-512F present; rows[i] + q + tap(kj) readable for every output position's q and kj
/// < KW; dy_t + p·width holds 16·V values for each position p; sums + (i·KW + kj)·width
/// holds 16·V values for i < real.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gradient_block<const KW: usize, const V: usize, const ROWS: usize, const STRIDE: usize>(
    rows: [*const f32; ROWS],
    dy_t: *const f32,
    sums: *mut f32,
    real: usize,
    shape: &Shape,
) {
    use std::arch::x86_64::*;
    let mut acc = [[[_mm512_setzero_ps(); V]; KW]; ROWS];
    let offset = |kj: usize| if STRIDE == 1 { kj } else { (kj % 2) * shape.odd + kj / 2 };
    let mut p = 0;
    for oh in 0..shape.out_h {
        let row_start = oh * shape.wp;
        for q in row_start..row_start + shape.out_w {
            // SAFETY: as the caller guarantees.
            unsafe {
                let d: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(dy_t.add(p * shape.width + LANES * v)));
                for (sums, row) in acc.iter_mut().zip(rows) {
                    for (kj, tap) in sums.iter_mut().enumerate() {
                        let value = _mm512_set1_ps(*row.add(q + offset(kj)));
                        for (sum, d) in tap.iter_mut().zip(d) {
                            *sum = _mm512_fmadd_ps(value, d, *sum);
                        }
                    }
                }
            }
            p += 1;
        }
    }
    for (r, row) in acc.iter().enumerate().take(real) {
        for (kj, tap) in row.iter().enumerate() {
            for (v, sum) in tap.iter().enumerate() {
                // SAFETY: as the caller guarantees.
                unsafe {
                    let at = sums.add((r * KW + kj) * shape.width + LANES * v);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), *sum));
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose_avx512(_: &[f32], _: usize, _: usize, _: &mut [f32]) {
    unreachable!("`applies` holds only on x86-64 with AVX-512")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn gradient_block<const KW: usize, const V: usize, const ROWS: usize, const STRIDE: usize>(
    _: [*const f32; ROWS],
    _: *const f32,
    _: *mut f32,
    _: usize,
    _: &Shape,
) {
    unreachable!("`applies` holds only on x86-64 with AVX-512")
}
