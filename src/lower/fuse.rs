//! Fused chains, planned from the program once when a network is built: a layer whose
//! output goes only into a residual add, and/or whose result goes only into a ReLU, runs
//! as one op (`conv → add → relu` after batch norm is folded for inference; `batchnorm →
//! add → relu` and `batchnorm → relu` while training; `conv → relu` in LeNet). The
//! kernels apply the add and the ReLU in the pass that writes the layer's output, and
//! their backward passes in the pass that reads its gradient, so neither the
//! intermediate tensors nor their autodiff nodes exist.
//!
//! A chain runs where its last step ran and writes that step's slot; its other steps
//! are skipped. Where the kernels do not apply (another backend, a precision other than
//! f32, eval-mode batch norm), the chain runs its steps one after another, as unfused.
//! `forward_observed` (activation statistics, attention maps) runs every step: it must
//! see each intermediate output.

use super::program::{Program, Step};
use super::{Layer, Network, Value};
use crate::ops::Op;
use crate::ops::activation::{ActKind, Activation};
use burn::prelude::*;
use burn::tensor::DType;

/// A layer, then optionally a residual add, then optionally ReLU, run as one op.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The layer's step.
    pub head: usize,
    pub layer: usize,
    /// The layer's input slot.
    pub input: usize,
    /// The slot added to the layer's output.
    pub residual: Option<usize>,
    /// The ReLU op, when the chain ends with one.
    pub relu: Option<Op>,
}

/// What the planned program runs: a step as it is, or a chain; each writes the slot of
/// step `writes` (`writes + 1`).
#[derive(Clone, Debug)]
pub enum Unit {
    Step,
    Chain(Chain),
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// (step whose slot the unit writes, unit), in order.
    pub units: Vec<(usize, Unit)>,
    /// For each slot, the index of the last unit that reads it.
    pub last_use: Vec<usize>,
}

impl Chain {
    /// The slots the chain reads, in order.
    pub fn inputs(&self) -> Vec<usize> {
        std::iter::once(self.input).chain(self.residual).collect()
    }
}

fn is_relu(step: &Step) -> Option<&Op> {
    match step {
        Step::Op { op: op @ Op::Activation(Activation { kind: ActKind::Relu }), .. } => Some(op),
        _ => None,
    }
}

impl Program {
    /// The chains of this program over `layers`: each convolution or batch norm whose
    /// output (and the add's, if any) has no other reader and is not the network's output.
    pub fn planned<B: Backend>(mut self, layers: &[Layer<B>]) -> Program {
        let steps = &self.steps;
        // Readers of each slot, with multiplicity (`x + x` reads x twice); the output
        // counts as one. Step `i` writes slot `i + 1`.
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); steps.len() + 1];
        for (i, step) in steps.iter().enumerate() {
            for input in step.inputs() {
                readers[input].push(i);
            }
        }
        readers[self.output].push(usize::MAX);
        // The single reader of step `i`'s output, if it has exactly one.
        let only_reader = |i: usize| match readers[i + 1].as_slice() {
            [r] if *r != usize::MAX => Some(*r),
            _ => None,
        };
        // Steps inside a chain (not its last, which the chain replaces), and steps some
        // chain has taken (a shortcut's batch norm must not take the add its block's
        // body took).
        let mut absorbed = vec![false; steps.len()];
        let mut taken = vec![false; steps.len()];
        let mut chains: Vec<Option<Chain>> = vec![None; steps.len()];
        for (i, step) in steps.iter().enumerate() {
            let Step::Layer { layer, input } = *step else { continue };
            if !matches!(layers[layer], Layer::Conv(_) | Layer::BatchNorm(_)) {
                continue;
            }
            let mut chain = Chain { head: i, layer, input, residual: None, relu: None };
            let mut own = vec![i];
            let free_reader = |last: usize| only_reader(last).filter(|&r| !taken[r]);
            if let Some(r) = free_reader(i)
                && let Step::Add { a, b } = steps[r]
            {
                chain.residual = Some(if a == i + 1 { b } else { a });
                own.push(r);
            }
            if let Some(r) = free_reader(*own.last().expect("the head"))
                && let Some(relu) = is_relu(&steps[r])
            {
                chain.relu = Some(relu.clone());
                own.push(r);
            }
            let Some((&last, inside)) = own.split_last() else { continue };
            if inside.is_empty() {
                continue;
            }
            for &j in &own {
                taken[j] = true;
            }
            for &j in inside {
                absorbed[j] = true;
            }
            chains[last] = Some(chain);
        }
        let mut units = Vec::new();
        for (i, chain) in chains.into_iter().enumerate() {
            match chain {
                Some(chain) => units.push((i, Unit::Chain(chain))),
                None if !absorbed[i] => units.push((i, Unit::Step)),
                None => {}
            }
        }
        let mut last_use = vec![0; steps.len() + 1];
        for (u, (i, unit)) in units.iter().enumerate() {
            let inputs = match unit {
                Unit::Step => steps[*i].inputs(),
                Unit::Chain(chain) => chain.inputs(),
            };
            for input in inputs {
                last_use[input] = u;
            }
        }
        last_use[self.output] = usize::MAX;
        self.plan = Some(Plan { units, last_use });
        self
    }
}

impl Program {
    /// The planned chains, for people: `layer1.0.bn2: batchnorm → add → relu`.
    pub fn fused_chains(&self) -> Vec<String> {
        let Some(plan) = &self.plan else { return Vec::new() };
        plan.units
            .iter()
            .filter_map(|(_, unit)| match unit {
                Unit::Chain(chain) => {
                    let label = &self.labels[chain.head];
                    let add = if chain.residual.is_some() { " → add" } else { "" };
                    let relu = if chain.relu.is_some() { " → relu" } else { "" };
                    Some(format!("{}: {}{add}{relu}", label.path, label.what))
                }
                Unit::Step => None,
            })
            .collect()
    }
}

impl<B: Backend> Network<B> {
    /// Runs a chain: one fused op where the kernels apply, else its steps in turn.
    pub(super) fn run_chain(
        layers: &[Layer<B>],
        chain: &Chain,
        x: Value<B>,
        residual: Option<Value<B>>,
        compute: DType,
    ) -> Value<B> {
        let relu = chain.relu.is_some();
        let residual_image = match &residual {
            None => Some(None),
            Some(Value::Image(r)) => Some(Some(r)),
            Some(_) => None,
        };
        if let (Value::Image(t), Some(r)) = (&x, residual_image)
            && compute == DType::F32
        {
            let fused = match &layers[chain.layer] {
                Layer::BatchNorm(bn) => bn.forward_fused(t, r, relu),
                Layer::Conv(conv) => conv.forward_fused(t, crate::ops::kernels::Tail { residual: r, relu }),
                _ => None,
            };
            if let Some(y) = fused {
                return Value::Image(y);
            }
        }
        let mut y = Network::run_layer(layers, chain.layer, x, compute);
        if let Some(r) = residual {
            y = y.plus(r);
        }
        match &chain.relu {
            Some(op) => op.apply(y),
            None => y,
        }
    }
}
