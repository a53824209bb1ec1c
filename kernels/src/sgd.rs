//! One SGD step over one parameter in a single pass: weight decay, momentum and the
//! update read each value once and write the parameter and its velocity in place.
//!
//! Burn's SGD is a chain of tensor ops (decay, two scalings and an add for the momentum,
//! a scaling and a subtraction for the update), each a pass over the parameter's size
//! and two of them into new buffers, on one thread. On ResNet-18 at batch 1 that chain
//! was a sixth of the training step. The arithmetic here is the chain's, in its order
//! and at its precision (f32, scalars rounded to f32 first), so the values are the same
//! bit for bit.

use rayon::prelude::*;

/// `torch.optim.SGD`'s settings, as Burn's `Sgd` takes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub learning_rate: f32,
    /// Coupled weight decay: the gradient becomes `grad + decay * param`.
    pub weight_decay: Option<f32>,
    pub momentum: Option<Momentum>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Momentum {
    pub momentum: f32,
    /// The gradient's share of a new velocity: `1 - dampening`, worked out in f64 and
    /// rounded once, as Burn's scalar op does.
    pub gradient_share: f32,
    pub nesterov: bool,
}

/// A parameter's velocity and whether it holds a value yet (the first step starts it
/// at the gradient, as PyTorch and Burn do).
pub struct Velocity<'a> {
    pub values: &'a mut [f32],
    pub started: bool,
}

/// Updates `params` in place from `grads`; `velocity` is required when the settings
/// have momentum (and ignored otherwise).
///
/// # Panics
/// If the slices' lengths differ, or momentum is set without a velocity.
pub fn step(params: &mut [f32], grads: &[f32], velocity: Option<Velocity>, settings: &Settings) {
    assert_eq!(params.len(), grads.len(), "a gradient per parameter");
    let chunk = crate::min_items(1);
    let width = crate::Width::detect();
    match (settings.momentum, velocity) {
        (None, _) => {
            params.par_chunks_mut(chunk).zip(grads.par_chunks(chunk)).for_each(|(p, g)| plain_in(width, p, g, settings))
        }
        (Some(momentum), Some(velocity)) => {
            assert_eq!(velocity.values.len(), params.len(), "a velocity per parameter");
            let started = velocity.started;
            params
                .par_chunks_mut(chunk)
                .zip(grads.par_chunks(chunk))
                .zip(velocity.values.par_chunks_mut(chunk))
                .for_each(|((p, g), v)| with_momentum_in(width, p, g, v, (started, &momentum), settings))
        }
        (Some(_), None) => panic!("momentum needs a velocity"),
    }
}

/// The gradient after coupled weight decay: Burn's `param * decay + grad`.
#[inline(always)]
fn decayed(p: f32, g: f32, settings: &Settings) -> f32 {
    match settings.weight_decay {
        Some(decay) => p * decay + g,
        None => g,
    }
}

crate::multiversion!(plain_in => plain(params: &mut [f32], grads: &[f32], settings: &Settings) -> ());
crate::multiversion!(with_momentum_in => with_momentum(
    params: &mut [f32], grads: &[f32], velocity: &mut [f32], started: (bool, &Momentum), settings: &Settings
) -> ());

#[inline(always)]
fn plain(params: &mut [f32], grads: &[f32], settings: &Settings) {
    let lr = settings.learning_rate;
    for (p, &g) in params.iter_mut().zip(grads) {
        let g = decayed(*p, g, settings);
        *p -= g * lr;
    }
}

#[inline(always)]
fn with_momentum(
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    (started, momentum): (bool, &Momentum),
    settings: &Settings,
) {
    let lr = settings.learning_rate;
    let (mu, keep) = (momentum.momentum, momentum.gradient_share);
    for ((p, &g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
        let g = decayed(*p, g, settings);
        // Burn: `grad * (1 - dampening) + velocity * momentum`, or the gradient itself
        // on the first step.
        let new_v = if started { g * keep + *v * mu } else { g };
        *v = new_v;
        let update = if momentum.nesterov { new_v * mu + g } else { new_v };
        *p -= update * lr;
    }
}
