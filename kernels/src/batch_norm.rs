//! Batch norm's training pass over `x` as [batch, channels, spatial] (NCHW with the
//! spatial dimensions flattened): each channel is `batch` planes of `spatial` values, a
//! channel's planes `channels` planes apart. Every pass walks the planes in memory
//! order (each thread a run of whole planes) and keeps per-plane partial results that
//! are then added channel by channel in image order: walking a channel's planes instead
//! (64 KB apart at 16 channels of 32×32) read memory at half the speed, each plane a new
//! page for the hardware prefetcher. Forward: one read (each plane's sum and its
//! deviations from its own mean, merged by the exact identity), then the normalisation; backward: the two sums (the
//! ReLU's mask applied inside), then the standard formula.

use crate::{Epilogue, Width};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The layout of a batch-norm input: [batch, channels, spatial].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
}

impl Planes {
    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }
}

/// Per-channel batch statistics (accumulated in f64).
#[derive(Clone, Debug)]
pub struct Statistics {
    pub mean: Vec<f32>,
    /// Biased (divided by the count), as the normalisation uses.
    pub var: Vec<f32>,
    pub inv_std: Vec<f32>,
}

/// The batch mean and biased variance of every channel, and `1/√(var + eps)`.
pub fn statistics(x: &[f32], at: Planes, eps: f64) -> Statistics {
    assert_eq!(x.len(), at.len(), "batch norm input length");
    let width = Width::detect();
    let s = at.spatial;
    let planes: Vec<Moments> =
        x.par_chunks(s).with_min_len(crate::min_items(s)).map(|p| plane_moments_in(width, p)).collect();
    let per_channel: Vec<(f32, f32, f32)> = (0..at.channels)
        .map(|ch| {
            let channel = || planes.iter().skip(ch).step_by(at.channels);
            let n = s as f64;
            let mean = channel().map(|p| p.sum).sum::<f64>() / (at.batch as f64 * n);
            // Σ (v − mean)² over a plane from its deviations around its own (rounded)
            // mean m: Σ (v − m)² + 2 (m − mean) Σ (v − m) + n (m − mean)². The sums of
            // deviations are summed as such (not the plane's sum less n·m, whose
            // rounding grows with the mean), so a channel whose mean is large against its
            // spread loses no more than two passes over it would; rounding can still
            // leave a constant channel a hair below 0.
            let squares: f64 = channel()
                .map(|p| {
                    let shift = p.mean as f64 - mean;
                    p.squares + 2.0 * shift * p.deviations + n * shift * shift
                })
                .sum();
            let var = (squares / (at.batch as f64 * n)).max(0.0);
            (mean as f32, var as f32, (1.0 / (var + eps).sqrt()) as f32)
        })
        .collect();
    Statistics {
        mean: per_channel.iter().map(|t| t.0).collect(),
        var: per_channel.iter().map(|t| t.1).collect(),
        inv_std: per_channel.iter().map(|t| t.2).collect(),
    }
}

/// One plane's sum, its mean m rounded to f32, and the sums of its deviations from m
/// and of their squares.
#[derive(Clone, Copy, Debug)]
struct Moments {
    sum: f64,
    mean: f32,
    deviations: f64,
    squares: f64,
}

/// Three passes over one plane (the last two from cache): its sum, then the deviations
/// from its mean and their squares.
#[inline(always)]
fn plane_moments(plane: &[f32]) -> Moments {
    // Loops rather than an iterator's `map` with a closure that is not inlined: that
    // would be a function of its own, built for the baseline rather than this width.
    let sum = lane_sum(plane, |v| v) as f64;
    let m = (sum / plane.len() as f64) as f32;
    let deviations = lane_sum(plane, |v| v - m) as f64;
    Moments { sum, mean: m, deviations, squares: lane_sum(plane, |v| (v - m) * (v - m)) as f64 }
}

/// `(x - mean) * inv_std * gamma + beta`, plane by plane, then the epilogue (a residual
/// added, ReLU) in the same pass.
pub fn normalize(x: &[f32], at: Planes, stats: &Statistics, gamma: &[f32], beta: &[f32], then: Epilogue) -> Vec<f32> {
    assert_eq!(x.len(), at.len(), "batch norm input length");
    assert!(gamma.len() == at.channels && beta.len() == at.channels, "batch norm parameter lengths");
    assert!(then.residual.is_none_or(|r| r.len() == at.len()), "batch norm residual length");
    let (c, s) = (at.channels, at.spatial);
    let width = Width::detect();
    let mut y = crate::uninit(at.len());
    y.par_chunks_mut(s).zip(x.par_chunks(s)).enumerate().with_min_len(crate::min_items(s)).for_each(
        |(plane, (out, input))| {
            let ch = plane % c;
            let scale = stats.inv_std[ch] * gamma[ch];
            let shift = beta[ch] - stats.mean[ch] * scale;
            normalize_plane_in(width, input, out, (scale, shift), then, plane * s);
        },
    );
    // SAFETY: the planes cover `y`, and each value was written.
    unsafe { crate::assume_init(y) }
}

/// One plane of `normalize`: `v * scale + shift`, then the epilogue while the plane is
/// still in L1.
#[inline(always)]
fn normalize_plane(input: &[f32], out: &mut [MaybeUninit<f32>], (scale, shift): (f32, f32), then: Epilogue, at: usize) {
    for (o, &v) in out.iter_mut().zip(input) {
        o.write(v * scale + shift);
    }
    // SAFETY: every value of the plane was just written.
    let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
    then.apply(out, at);
}

/// The gradients of a training batch norm.
pub struct Gradients {
    /// Absent unless asked for.
    pub input: Option<Vec<f32>>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    /// The gradient of the fused ReLU's input (what flows into a fused residual), when
    /// asked for and there was a ReLU; without one it is the output gradient itself.
    pub before_relu: Option<Vec<f32>>,
}

/// What the backward pass of a fused chain is asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Backward<'a> {
    /// The input gradient.
    pub input: bool,
    /// The output of a fused ReLU: the gradient passes only where it is positive.
    pub relu_output: Option<&'a [f32]>,
    /// The gradient of that ReLU's input, for a fused residual.
    pub before_relu: bool,
}

/// dβ = Σ g, dγ = Σ g·x̂ per channel; dx = γ·inv_std·(g − dβ/M − x̂·dγ/M) with
/// M = batch × spatial, where g is `dy` through the fused ReLU's mask (if any). x̂ is
/// recomputed from `x` rather than stored.
pub fn backward(x: &[f32], dy: &[f32], at: Planes, stats: &Statistics, gamma: &[f32], wanted: Backward) -> Gradients {
    assert_eq!(dy.len(), at.len(), "batch norm output gradient length");
    assert_eq!(x.len(), at.len(), "batch norm input length");
    assert_eq!(gamma.len(), at.channels, "batch norm gamma length");
    assert!(wanted.relu_output.is_none_or(|y| y.len() == at.len()), "batch norm output length");
    let (c, s) = (at.channels, at.spatial);
    let width = Width::detect();
    let normalised = |plane: usize| (stats.mean[plane % c], stats.inv_std[plane % c]);
    // The gradient through the ReLU is written out only where a fused residual takes
    // it; otherwise the mask is applied inside both passes.
    let (before_relu, planes): (Option<Vec<f32>>, Vec<(f64, f64)>) = match wanted.relu_output {
        Some(y) if wanted.before_relu => {
            let mut dz = crate::uninit(at.len());
            let sums = dz
                .par_chunks_mut(s)
                .enumerate()
                .with_min_len(crate::min_items(s))
                .map(|(plane, out)| {
                    let at = plane * s..(plane + 1) * s;
                    masked_plane_sums_in(width, out, &x[at.clone()], &dy[at.clone()], &y[at], normalised(plane))
                })
                .collect();
            // SAFETY: the planes cover `dz`, and each value was written.
            (Some(unsafe { crate::assume_init(dz) }), sums)
        }
        mask => {
            let sums = (0..at.batch * c)
                .into_par_iter()
                .with_min_len(crate::min_items(s))
                .map(|plane| {
                    let at = plane * s..(plane + 1) * s;
                    plane_sums_in(width, &x[at.clone()], &dy[at.clone()], mask.map(|y| &y[at]), normalised(plane))
                })
                .collect();
            (None, sums)
        }
    };
    // Each channel's sums, its planes added in image order (the same whatever the
    // threads).
    let sums: Vec<(f64, f64)> =
        (0..c).map(|ch| planes.iter().skip(ch).step_by(c).fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1))).collect();
    let count = (at.batch * s) as f64;
    let input = wanted.input.then(|| {
        let mut dx = crate::uninit(at.len());
        dx.par_chunks_mut(s).enumerate().with_min_len(crate::min_items(s)).for_each(|(plane, out)| {
            let ch = plane % c;
            let means = ((sums[ch].0 / count) as f32, (sums[ch].1 / count) as f32);
            let at = plane * s..(plane + 1) * s;
            let (x, dy) = (&x[at.clone()], before_relu.as_deref().map_or(&dy[at.clone()], |dz| &dz[at.clone()]));
            let mask = if before_relu.is_some() { None } else { wanted.relu_output.map(|y| &y[at]) };
            let normalised = (stats.mean[ch], stats.inv_std[ch], gamma[ch]);
            plane_gradient_in(width, x, dy, mask, out, normalised, means);
        });
        // SAFETY: the planes cover `dx`, and each value was written.
        unsafe { crate::assume_init(dx) }
    });
    Gradients {
        input,
        gamma: sums.iter().map(|t| t.1 as f32).collect(),
        beta: sums.iter().map(|t| t.0 as f32).collect(),
        before_relu: before_relu.filter(|_| wanted.before_relu),
    }
}

/// Σ g and Σ g·x̂ over one plane, g being `dy` through the ReLU's mask if there is one.
#[inline(always)]
fn plane_sums(x: &[f32], dy: &[f32], relu_output: Option<&[f32]>, (mean, inv_std): (f32, f32)) -> (f64, f64) {
    match relu_output {
        Some(y) => (
            lane_sum2(dy, y, crate::relu_gradient) as f64,
            lane_sum3(dy, y, x, |g, y, v| crate::relu_gradient(g, y) * ((v - mean) * inv_std)) as f64,
        ),
        None => (lane_sum(dy, |g| g) as f64, lane_sum2(dy, x, |g, v| g * ((v - mean) * inv_std)) as f64),
    }
}

/// `plane_sums` through the ReLU's mask, the masked gradient written to `out` first
/// (and summed from there, still in L1).
#[inline(always)]
fn masked_plane_sums(
    out: &mut [MaybeUninit<f32>],
    x: &[f32],
    dy: &[f32],
    relu_output: &[f32],
    normalised: (f32, f32),
) -> (f64, f64) {
    for ((o, &g), &y) in out.iter_mut().zip(dy).zip(relu_output) {
        o.write(crate::relu_gradient(g, y));
    }
    // SAFETY: every value of the plane was just written.
    let dz = unsafe { &*(out as *const [MaybeUninit<f32>] as *const [f32]) };
    plane_sums(x, dz, None, normalised)
}

/// One plane of the input gradient: γ·inv_std·(g − mean(g) − x̂·mean(g·x̂)).
#[inline(always)]
fn plane_gradient(
    x: &[f32],
    dy: &[f32],
    relu_output: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
    (mean, inv_std, gamma): (f32, f32, f32),
    (mean_dy, mean_dy_xhat): (f32, f32),
) {
    let k = gamma * inv_std;
    let formula = |g: f32, v: f32| {
        let x_hat = (v - mean) * inv_std;
        k * (g - mean_dy - x_hat * mean_dy_xhat)
    };
    match relu_output {
        Some(y) => {
            for (((o, &g), &v), &y) in out.iter_mut().zip(dy).zip(x).zip(y) {
                o.write(formula(crate::relu_gradient(g, y), v));
            }
        }
        None => {
            for ((o, &g), &v) in out.iter_mut().zip(dy).zip(x) {
                o.write(formula(g, v));
            }
        }
    }
}

crate::multiversion!(plane_moments_in => plane_moments(plane: &[f32]) -> Moments);
crate::multiversion!(normalize_plane_in => normalize_plane(
    input: &[f32], out: &mut [MaybeUninit<f32>], scale_shift: (f32, f32), then: Epilogue, at: usize
) -> ());
crate::multiversion!(plane_sums_in => plane_sums(
    x: &[f32], dy: &[f32], relu_output: Option<&[f32]>, normalised: (f32, f32)
) -> (f64, f64));
crate::multiversion!(masked_plane_sums_in => masked_plane_sums(
    out: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32], relu_output: &[f32], normalised: (f32, f32)
) -> (f64, f64));
crate::multiversion!(plane_gradient_in => plane_gradient(
    x: &[f32], dy: &[f32], relu_output: Option<&[f32]>, out: &mut [MaybeUninit<f32>],
    normalised: (f32, f32, f32), means: (f32, f32)
) -> ());

/// Lanes of independent partial sums: a sequential float sum cannot be reordered, so it
/// would not vectorise; 32 running sums do (and are more accurate than one), as two
/// AVX-512 vectors or four AVX2 ones, whose additions overlap (with one vector of 8 each
/// addition waited for the last, and the statistics ran at half the speed).
const LANES: usize = 32;
const SHORT_LANES: usize = 8;

/// Σ f(v) over one plane, in f32 (a plane is one feature map; planes add up in f64).
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    lane_sum2(values, values, |v, _| f(v))
}

/// Σ f(a, b) over two planes of equal length, as `lane_sum`.
#[inline(always)]
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    lane_sum3(a, b, b, |x, y, _| f(x, y))
}

/// Σ f(a, b, c) over three planes of equal length, as `lane_sum`.
#[inline(always)]
fn lane_sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let (ca, cb, cc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    // What is left, in 8 lanes and then one at a time: planes of 16 values (a ResNet's
    // 4×4 stage) would otherwise be summed value by value.
    let mut short = [0f32; SHORT_LANES];
    let (sa, sb, sc) = (
        ca.remainder().chunks_exact(SHORT_LANES),
        cb.remainder().chunks_exact(SHORT_LANES),
        cc.remainder().chunks_exact(SHORT_LANES),
    );
    let rest: f32 =
        sa.remainder().iter().zip(sb.remainder()).zip(sc.remainder()).map(|((&x, &y), &z)| f(x, y, z)).sum();
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for (((lane, &x), &y), &z) in lanes.iter_mut().zip(x).zip(y).zip(z) {
            *lane += f(x, y, z);
        }
    }
    for ((x, y), z) in sa.zip(sb).zip(sc) {
        for (((lane, &x), &y), &z) in short.iter_mut().zip(x).zip(y).zip(z) {
            *lane += f(x, y, z);
        }
    }
    lanes.iter().sum::<f32>() + short.iter().sum::<f32>() + rest
}
