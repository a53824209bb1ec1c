//! Batch norm's training pass over `x` as [batch, channels, spatial] (NCHW with the
//! spatial dimensions flattened): each channel is `batch` contiguous planes of
//! `spatial` values. Forward: two passes per channel (statistics, then normalise);
//! backward: two more (the two sums, then the standard formula).

use crate::Epilogue;
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
    let count = (at.batch * at.spatial) as f64;
    let per_channel: Vec<(f32, f32, f32)> = (0..at.channels)
        .into_par_iter()
        .with_min_len(crate::min_items(at.batch * at.spatial))
        .map(|ch| {
            let sum: f64 = at.channel(x, ch).map(|p| lane_sum(p, |v| v) as f64).sum();
            let mean = sum / count;
            let m = mean as f32;
            let squares: f64 = at.channel(x, ch).map(|p| lane_sum(p, |v| (v - m) * (v - m)) as f64).sum();
            let var = squares / count;
            (mean as f32, var as f32, (1.0 / (var + eps).sqrt()) as f32)
        })
        .collect();
    Statistics {
        mean: per_channel.iter().map(|t| t.0).collect(),
        var: per_channel.iter().map(|t| t.1).collect(),
        inv_std: per_channel.iter().map(|t| t.2).collect(),
    }
}

/// `(x - mean) * inv_std * gamma + beta`, plane by plane, then the epilogue (a residual
/// added, ReLU) in the same pass.
pub fn normalize(x: &[f32], at: Planes, stats: &Statistics, gamma: &[f32], beta: &[f32], then: Epilogue) -> Vec<f32> {
    assert_eq!(x.len(), at.len(), "batch norm input length");
    assert!(gamma.len() == at.channels && beta.len() == at.channels, "batch norm parameter lengths");
    assert!(then.residual.is_none_or(|r| r.len() == at.len()), "batch norm residual length");
    let (c, s) = (at.channels, at.spatial);
    let mut y = crate::uninit(at.len());
    y.par_chunks_mut(s).zip(x.par_chunks(s)).enumerate().with_min_len(crate::min_items(s)).for_each(
        |(plane, (out, input))| {
            let ch = plane % c;
            let scale = stats.inv_std[ch] * gamma[ch];
            let shift = beta[ch] - stats.mean[ch] * scale;
            for (o, &v) in out.iter_mut().zip(input) {
                o.write(v * scale + shift);
            }
            // SAFETY: every value of the plane was just written.
            let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
            // The epilogue while the plane is still in L1.
            then.apply(out, plane * s);
        },
    );
    // SAFETY: the planes cover `y`, and each value was written.
    unsafe { crate::assume_init(y) }
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
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .with_min_len(crate::min_items(at.batch * s))
        .map(|ch| {
            let (mean, inv_std) = (stats.mean[ch], stats.inv_std[ch]);
            let (mut dbeta, mut dgamma) = (0f64, 0f64);
            for (g, v) in at.channel(dy, ch).zip(at.channel(x, ch)) {
                dbeta += lane_sum(g, |g| g) as f64;
                dgamma += lane_sum2(g, v, |g, v| g * ((v - mean) * inv_std)) as f64;
            }
            (dbeta, dgamma)
        })
        .collect();
    let count = (at.batch * s) as f64;
    let plane_gradient = |plane: usize, out: &mut [MaybeUninit<f32>]| {
        let ch = plane % c;
        let (mean, inv_std) = (stats.mean[ch], stats.inv_std[ch]);
        let k = gamma[ch] * inv_std;
        let (mean_dy, mean_dy_xhat) = ((sums[ch].0 / count) as f32, (sums[ch].1 / count) as f32);
        let at = plane * s;
        for ((o, &g), &v) in out.iter_mut().zip(&dy[at..at + s]).zip(&x[at..at + s]) {
            let x_hat = (v - mean) * inv_std;
            o.write(k * (g - mean_dy - x_hat * mean_dy_xhat));
        }
    };
    let input = wanted.input.then(|| {
        let mut dx = crate::uninit(at.len());
        dx.par_chunks_mut(s)
            .enumerate()
            .with_min_len(crate::min_items(s))
            .for_each(|(plane, out)| plane_gradient(plane, out));
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

/// Lanes of independent partial sums: a sequential float sum cannot be reordered, so it
/// would not vectorise; eight running sums do (and are more accurate than one).
const LANES: usize = 8;

/// Σ f(v) over one plane, in f32 (a plane is one feature map; planes add up in f64).
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Σ f(a, b) over two planes of equal length, as `lane_sum`.
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| f(x, y)).sum();
    for (x, y) in ca.zip(cb) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += f(x, y);
        }
    }
    lanes.iter().sum::<f32>() + rest
}
