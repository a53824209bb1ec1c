//! The IR flattened into steps over value slots. Slot 0 holds the network's input;
//! every step writes one new slot; a slot is dropped after its last reader.

use super::fuse::{Plan, Unit};
use super::{Layer, Network, Value};
use crate::ir::{Merge, Model, Node, NodeKind, Shortcut};
use crate::ops::Op;
use burn::prelude::*;
use burn::tensor::DType;
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub enum Step {
    /// A weight-carrying layer.
    Layer { layer: usize, input: usize },
    /// A weight-free op.
    Op { op: Op, input: usize },
    /// Residual: `a + b`.
    Add { a: usize, b: usize },
    /// `x * gate`, broadcast.
    Scale { x: usize, gate: usize },
    /// Parallel branches merged.
    Merge { merge: Merge, inputs: Vec<usize> },
}

impl Step {
    pub(super) fn inputs(&self) -> Vec<usize> {
        match self {
            Step::Layer { input, .. } | Step::Op { input, .. } => vec![*input],
            Step::Add { a, b } => vec![*a, *b],
            Step::Scale { x, gate } => vec![*x, *gate],
            Step::Merge { inputs, .. } => inputs.clone(),
        }
    }

    pub(super) fn map_inputs(&mut self, f: impl Fn(usize) -> usize) {
        match self {
            Step::Layer { input, .. } | Step::Op { input, .. } => *input = f(*input),
            Step::Add { a, b } => (*a, *b) = (f(*a), f(*b)),
            Step::Scale { x, gate } => (*x, *gate) = (f(*x), f(*gate)),
            Step::Merge { inputs, .. } => inputs.iter_mut().for_each(|i| *i = f(*i)),
        }
    }
}

/// What a step is, for people: the IR path of the node it came from and the op's name
/// (`conv`, `relu`, `add` for a residual sum, `scale` for a gate, or the merge).
#[derive(Clone, Debug)]
pub struct StepLabel {
    pub path: String,
    pub what: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Step `i` writes slot `i + 1`.
    pub steps: Vec<Step>,
    /// One label per step.
    pub labels: Vec<StepLabel>,
    /// The IR path of each layer (`layer1.0.conv1`), for weight names.
    pub layer_paths: Vec<String>,
    pub output: usize,
    /// For each slot, the last step that reads it (slots are freed after it).
    last_use: Vec<usize>,
    /// The fused chains (`fuse.rs`), once planned over the network's layers.
    pub(super) plan: Option<Plan>,
}

struct Lowering<'a, B: Backend> {
    device: &'a B::Device,
    program: Program,
    layers: Vec<Layer<B>>,
    /// Layers by path, so that the later uses of a shared module reuse its weights.
    by_path: HashMap<String, usize>,
}

pub fn lower<B: Backend>(model: &Model, device: &B::Device) -> (Program, Vec<Layer<B>>) {
    let mut lowering = Lowering { device, program: Program::default(), layers: Vec::new(), by_path: HashMap::new() };
    let mut slot = 0;
    for node in &model.nodes {
        slot = lowering.node(node, slot);
    }
    let program = lowering.program;
    (Program::new(program.steps, program.labels, program.layer_paths, slot), lowering.layers)
}

impl<B: Backend> Lowering<'_, B> {
    fn push(&mut self, step: Step, node: &Node, what: &'static str) -> usize {
        self.program.steps.push(step);
        self.program.labels.push(StepLabel { path: node.path.clone(), what });
        self.program.steps.len()
    }

    fn chain(&mut self, nodes: &[Node], mut slot: usize) -> usize {
        for node in nodes {
            slot = self.node(node, slot);
        }
        slot
    }

    fn node(&mut self, node: &Node, input: usize) -> usize {
        match &node.kind {
            NodeKind::Op { op, name, .. } => match self.layer(node, op) {
                Some(layer) => self.push(Step::Layer { layer, input }, node, name),
                None => self.push(Step::Op { op: op.clone(), input }, node, name),
            },
            NodeKind::Block { children, .. } => self.chain(children, input),
            NodeKind::Residual { body, shortcut } => {
                let out = self.chain(body, input);
                let skip = match shortcut {
                    Shortcut::Off => return out,
                    Shortcut::Identity => input,
                    Shortcut::Projection(projection) => self.node(projection, input),
                };
                self.push(Step::Add { a: out, b: skip }, node, "add")
            }
            NodeKind::Scale { gate } => {
                let gate = self.chain(gate, input);
                self.push(Step::Scale { x: input, gate }, node, "scale")
            }
            NodeKind::Parallel { merge, branches } => {
                let inputs = branches.iter().map(|b| self.node(b, input)).collect();
                self.push(Step::Merge { merge: *merge, inputs }, node, merge.name())
            }
        }
    }

    /// The layer index for a weight-carrying op; shared uses find the first one's.
    fn layer(&mut self, node: &Node, op: &Op) -> Option<usize> {
        if node.shared {
            return self.by_path.get(&node.path).copied();
        }
        let layer = op.init_layer::<B>(&node.input, self.device)?;
        self.layers.push(layer);
        self.program.layer_paths.push(node.path.clone());
        let index = self.layers.len() - 1;
        self.by_path.insert(node.path.clone(), index);
        Some(index)
    }
}

impl Program {
    pub(super) fn new(steps: Vec<Step>, labels: Vec<StepLabel>, layer_paths: Vec<String>, output: usize) -> Program {
        let mut last_use = vec![0; steps.len() + 1];
        for (i, step) in steps.iter().enumerate() {
            for input in step.inputs() {
                last_use[input] = i;
            }
        }
        last_use[output] = usize::MAX;
        Program { steps, labels, layer_paths, output, last_use, plan: None }
    }

    /// Runs the program in the compute precision `compute` (see `precision.rs`): its
    /// fused chains where it has been planned (`fuse.rs`), else every step.
    pub fn run<B: Backend>(&self, layers: &[Layer<B>], input: Value<B>, compute: DType) -> Value<B> {
        let Some(plan) = &self.plan else { return self.run_observed(layers, input, compute, &mut |_, _| {}) };
        let mut slots: Vec<Option<Value<B>>> = vec![None; self.steps.len() + 1];
        slots[0] = Some(input);
        for (u, (i, unit)) in plan.units.iter().enumerate() {
            let is_last = |slot: usize| plan.last_use[slot] == u;
            let out = match unit {
                Unit::Step => {
                    let values = Self::read(&mut slots, &self.steps[*i].inputs(), is_last);
                    Self::eval(&self.steps[*i], values, layers, compute)
                }
                Unit::Chain(chain) => {
                    let mut values = Self::read(&mut slots, &chain.inputs(), is_last).into_iter();
                    let x = values.next().expect("a chain reads its layer's input");
                    Network::run_chain(layers, chain, x, values.next(), compute)
                }
            };
            slots[i + 1] = Some(out);
        }
        slots[self.output].take().expect("the output slot is written")
    }

    /// Runs every step of the program, unfused, in the compute precision `compute` (see
    /// `precision.rs`), showing `observe` each step's index and output as it is made (for
    /// activation statistics and attention maps).
    pub fn run_observed<B: Backend>(
        &self,
        layers: &[Layer<B>],
        input: Value<B>,
        compute: DType,
        observe: &mut dyn FnMut(usize, &Value<B>),
    ) -> Value<B> {
        let mut slots: Vec<Option<Value<B>>> = vec![None; self.steps.len() + 1];
        slots[0] = Some(input);
        for (i, step) in self.steps.iter().enumerate() {
            let values = Self::read(&mut slots, &step.inputs(), |slot| self.last_use[slot] == i);
            let out = Self::eval(step, values, layers, compute);
            observe(i, &out);
            slots[i + 1] = Some(out);
        }
        slots[self.output].take().expect("the output slot is written")
    }

    /// One step, on the values it reads.
    fn eval<B: Backend>(step: &Step, values: Vec<Value<B>>, layers: &[Layer<B>], compute: DType) -> Value<B> {
        let mut values = values.into_iter();
        let mut next = || values.next().expect("one value per input");
        match step {
            Step::Layer { layer, .. } => Network::run_layer(layers, *layer, next(), compute),
            Step::Op { op, .. } => op.apply(next()),
            Step::Add { .. } => next().plus(next()),
            Step::Scale { .. } => next().scale(next()),
            Step::Merge { merge, inputs } => {
                let values: Vec<Value<B>> = (0..inputs.len()).map(|_| next()).collect();
                match merge {
                    Merge::Concat => Value::concat(values),
                    Merge::Sum => values.into_iter().reduce(Value::plus).expect("parallel has branches"),
                    Merge::Mul => values.into_iter().reduce(Value::times).expect("parallel has branches"),
                }
            }
        }
    }

    /// The values a step reads. A slot's last reader takes it (so Burn can reuse the
    /// buffer in place); earlier readers, and earlier reads within the same step, clone.
    fn read<B: Backend>(
        slots: &mut [Option<Value<B>>],
        inputs: &[usize],
        is_last: impl Fn(usize) -> bool,
    ) -> Vec<Value<B>> {
        inputs
            .iter()
            .enumerate()
            .map(|(k, &slot)| {
                let last = is_last(slot) && !inputs[k + 1..].contains(&slot);
                let value = if last { slots[slot].take() } else { slots[slot].clone() };
                value.expect("a slot is written before it is read")
            })
            .collect()
    }
}
