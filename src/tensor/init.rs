//! PyTorch's default initialisations, so an untrained archc model starts where the
//! same model in PyTorch would.

use burn::prelude::*;
use burn::tensor::Distribution;

/// U(-bound, bound).
pub fn uniform<B: Backend, const D: usize>(shape: [usize; D], bound: f64, device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Uniform(-bound, bound), device)
}

/// `nn.Conv2d` / `nn.Linear` default: kaiming_uniform(a=√5) for the weight, which is
/// U(±1/√fan_in), and U(±1/√fan_in) for the bias.
pub fn fan_in_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

/// xavier_uniform: U(±√(6 / (fan_in + fan_out))).
pub fn xavier_bound(fan_in: usize, fan_out: usize) -> f64 {
    (6.0 / (fan_in + fan_out).max(1) as f64).sqrt()
}

pub fn normal<B: Backend, const D: usize>(shape: [usize; D], std: f64, device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, std), device)
}
