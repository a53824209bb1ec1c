//! Batch norm's training pass over `x` as [batch, channels, spatial] (NCHW with the
//! spatial dimensions flattened): each channel is `batch` contiguous planes of
//! `spatial` values. Forward: two passes per channel (statistics, then normalise);
//! backward: two more (the two sums, then the standard formula).

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

    /// The values of channel `ch`, plane by plane.
    fn channel<'a>(&self, x: &'a [f32], ch: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (c, s) = (self.channels, self.spatial);
        (0..self.batch).map(move |b| &x[(b * c + ch) * s..][..s])
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
    let per_channel: Vec<(f32, f32, f32)> = (0..at.channels)
        .into_par_iter()
        .with_min_len(crate::min_items(at.batch * at.spatial))
        .map(|ch| channel_statistics_in(width, x, at, ch, eps))
        .collect();
    Statistics {
        mean: per_channel.iter().map(|t| t.0).collect(),
        var: per_channel.iter().map(|t| t.1).collect(),
        inv_std: per_channel.iter().map(|t| t.2).collect(),
    }
}

/// One channel's mean, biased variance and `1/√(var + eps)`: two passes (the sum, then
/// the squared deviations from the mean), as PyTorch's CPU kernel takes them.
#[inline(always)]
fn channel_statistics(x: &[f32], at: Planes, ch: usize, eps: f64) -> (f32, f32, f32) {
    // Loops over the planes rather than an iterator's `map`: a closure that is not
    // inlined is a function of its own, built for the baseline rather than the width
    // this one is compiled for (`lane_sum`'s own closures are small and inlined).
    let count = (at.batch * at.spatial) as f64;
    let mut sum = 0f64;
    for plane in at.channel(x, ch) {
        sum += lane_sum(plane, |v| v) as f64;
    }
    let mean = sum / count;
    let m = mean as f32;
    let mut squares = 0f64;
    for plane in at.channel(x, ch) {
        squares += lane_sum(plane, |v| (v - m) * (v - m)) as f64;
    }
    let var = squares / count;
    (mean as f32, var as f32, (1.0 / (var + eps).sqrt()) as f32)
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
    // Through the ReLU first, in one pass that vectorises (masking inside the passes
    // below did not, built for the baseline x86-64); with a fused residual that
    // gradient is an output anyway.
    if let Some(y) = wanted.relu_output {
        let dz = crate::relu_backward(dy, y);
        let unmasked = Backward { input: wanted.input, relu_output: None, before_relu: false };
        let found = backward(x, &dz, at, stats, gamma, unmasked);
        return Gradients { before_relu: wanted.before_relu.then_some(dz), ..found };
    }
    let (c, s) = (at.channels, at.spatial);
    let width = Width::detect();
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .with_min_len(crate::min_items(at.batch * s))
        .map(|ch| channel_sums_in(width, x, dy, at, (stats.mean[ch], stats.inv_std[ch]), ch))
        .collect();
    let count = (at.batch * s) as f64;
    let input = wanted.input.then(|| {
        let mut dx = crate::uninit(at.len());
        dx.par_chunks_mut(s).enumerate().with_min_len(crate::min_items(s)).for_each(|(plane, out)| {
            let ch = plane % c;
            let means = ((sums[ch].0 / count) as f32, (sums[ch].1 / count) as f32);
            let (x, dy) = (&x[plane * s..][..s], &dy[plane * s..][..s]);
            let normalised = (stats.mean[ch], stats.inv_std[ch], gamma[ch]);
            plane_gradient_in(width, x, dy, out, normalised, means);
        });
        // SAFETY: the planes cover `dx`, and each value was written.
        unsafe { crate::assume_init(dx) }
    });
    Gradients {
        input,
        gamma: sums.iter().map(|t| t.1 as f32).collect(),
        beta: sums.iter().map(|t| t.0 as f32).collect(),
        before_relu: None,
    }
}

/// Σ g and Σ g·x̂ over one channel, each plane in f32 lanes, the planes in f64.
#[inline(always)]
fn channel_sums(x: &[f32], dy: &[f32], at: Planes, (mean, inv_std): (f32, f32), ch: usize) -> (f64, f64) {
    let (mut dbeta, mut dgamma) = (0f64, 0f64);
    for (g, v) in at.channel(dy, ch).zip(at.channel(x, ch)) {
        dbeta += lane_sum(g, |g| g) as f64;
        dgamma += lane_sum2(g, v, |g, v| g * ((v - mean) * inv_std)) as f64;
    }
    (dbeta, dgamma)
}

/// One plane of the input gradient: γ·inv_std·(g − mean(g) − x̂·mean(g·x̂)).
#[inline(always)]
fn plane_gradient(
    x: &[f32],
    dy: &[f32],
    out: &mut [MaybeUninit<f32>],
    (mean, inv_std, gamma): (f32, f32, f32),
    (mean_dy, mean_dy_xhat): (f32, f32),
) {
    let k = gamma * inv_std;
    for ((o, &g), &v) in out.iter_mut().zip(dy).zip(x) {
        let x_hat = (v - mean) * inv_std;
        o.write(k * (g - mean_dy - x_hat * mean_dy_xhat));
    }
}

crate::multiversion!(channel_statistics_in => channel_statistics(x: &[f32], at: Planes, ch: usize, eps: f64) -> (f32, f32, f32));
crate::multiversion!(normalize_plane_in => normalize_plane(
    input: &[f32], out: &mut [MaybeUninit<f32>], scale_shift: (f32, f32), then: Epilogue, at: usize
) -> ());
crate::multiversion!(channel_sums_in => channel_sums(
    x: &[f32], dy: &[f32], at: Planes, normalised: (f32, f32), ch: usize
) -> (f64, f64));
crate::multiversion!(plane_gradient_in => plane_gradient(
    x: &[f32], dy: &[f32], out: &mut [MaybeUninit<f32>], normalised: (f32, f32, f32), means: (f32, f32)
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
    let mut lanes = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    // What is left, in 8 lanes and then one at a time: planes of 16 values (a ResNet's
    // 4×4 stage) would otherwise be summed value by value.
    let mut short = [0f32; SHORT_LANES];
    let (sa, sb) = (ca.remainder().chunks_exact(SHORT_LANES), cb.remainder().chunks_exact(SHORT_LANES));
    let rest: f32 = sa.remainder().iter().zip(sb.remainder()).map(|(&x, &y)| f(x, y)).sum();
    for (x, y) in ca.zip(cb) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += f(x, y);
        }
    }
    for (x, y) in sa.zip(sb) {
        for ((lane, &x), &y) in short.iter_mut().zip(x).zip(y) {
            *lane += f(x, y);
        }
    }
    lanes.iter().sum::<f32>() + short.iter().sum::<f32>() + rest
}
