//! `torch.optim.SGD` (momentum, dampening, Nesterov, coupled weight decay) as a Burn
//! optimiser whose step is one fused pass per parameter on burn-flex
//! (`ops::kernels::sgd`), and Burn's own chain of tensor ops on other backends.
//!
//! Both paths compute what Burn's `Sgd` computes, in its order and precision, so a
//! run's numbers do not depend on which one ran. The state is recorded with the same
//! field names as Burn's `SgdState`/`MomentumState`, so a checkpoint written with
//! Burn's optimiser (archc before this module) resumes with this one, and back.

use crate::ops::kernels::sgd as fused;
use archc_kernels::sgd::{Momentum, Settings};
use burn::module::AutodiffModule;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::prelude::*;
use burn::record::Record;
use burn::tensor::backend::AutodiffBackend;

/// The optimiser's settings (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    momentum: Option<Momentum>,
    weight_decay: Option<f32>,
}

/// A parameter's state between steps: its velocity when there is momentum. Field
/// names as Burn's `SgdState`, whose records this reads and writes.
#[derive(Record, Clone)]
pub struct SgdState<B: Backend, const D: usize> {
    pub momentum: Option<MomentumState<B, D>>,
}

/// As Burn's `MomentumState`.
#[derive(Record, Clone)]
pub struct MomentumState<B: Backend, const D: usize> {
    pub velocity: Tensor<B, D>,
}

impl Sgd {
    /// `torch.optim.SGD(momentum, dampening, nesterov, weight_decay)`: no momentum
    /// buffer when `momentum` is 0, no decay term when `weight_decay` is 0.
    pub fn pytorch(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Sgd {
        Sgd {
            // Burn holds the momentum as the backend's float and `1 - dampening` as an
            // f64 that its scalar op rounds to f32: the same values here.
            momentum: (momentum > 0.0).then_some(Momentum {
                momentum: momentum as f32,
                gradient_share: (1.0 - dampening) as f32,
                nesterov,
            }),
            weight_decay: (weight_decay > 0.0).then_some(weight_decay as f32),
        }
    }

    /// The optimiser over a module's parameters.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(self) -> OptimizerAdaptor<Sgd, M, B> {
        OptimizerAdaptor::from(self)
    }

    fn settings(&self, lr: f64) -> Settings {
        Settings { learning_rate: lr as f32, weight_decay: self.weight_decay, momentum: self.momentum }
    }

    /// Burn's `Sgd::step`, op for op: for backends the fused kernel does not serve.
    fn chained<B: Backend, const D: usize>(
        &self,
        lr: f64,
        param: Tensor<B, D>,
        mut grad: Tensor<B, D>,
        velocity: Option<Tensor<B, D>>,
    ) -> (Tensor<B, D>, Option<Tensor<B, D>>) {
        if let Some(decay) = self.weight_decay {
            grad = param.clone().mul_scalar(decay).add(grad);
        }
        let velocity = self.momentum.map(|m| {
            let velocity = match velocity {
                Some(v) => grad.clone().mul_scalar(m.gradient_share).add(v.mul_scalar(m.momentum)),
                None => grad.clone(),
            };
            grad =
                if m.nesterov { velocity.clone().mul_scalar(m.momentum).add(grad.clone()) } else { velocity.clone() };
            velocity
        });
        (param - grad.mul_scalar(lr), velocity)
    }
}

impl<B: Backend> SimpleOptimizer<B> for Sgd {
    type State<const D: usize> = SgdState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        param: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<SgdState<B, D>>,
    ) -> (Tensor<B, D>, Option<SgdState<B, D>>) {
        let velocity = state.and_then(|s| s.momentum).map(|m| m.velocity);
        let (param, velocity) = if fused::applies([&param, &grad].into_iter().chain(velocity.as_ref())) {
            fused::step(param, grad, velocity, &self.settings(lr))
        } else {
            self.chained(lr, param, grad, velocity)
        };
        (param, Some(SgdState { momentum: velocity.map(|velocity| MomentumState { velocity }) }))
    }

    fn to_device<const D: usize>(state: SgdState<B, D>, device: &B::Device) -> SgdState<B, D> {
        SgdState { momentum: state.momentum.map(|m| MomentumState { velocity: m.velocity.to_device(device) }) }
    }
}
