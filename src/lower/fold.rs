//! Compile-time rewrites for inference. In eval mode a batch norm is a fixed
//! per-channel affine map, so one that reads a convolution's output (and nothing else
//! reads that output) is folded into the convolution's weight and bias: nothing of it
//! remains at run time. Training never sees a folded network.

use super::{Layer, Network, Program, Step};
use burn::prelude::*;

impl<B: Backend> Network<B> {
    /// The same function for eval mode, with every foldable batch norm folded into the
    /// convolution before it, and every convolution keeping the form its kernel reads
    /// of its weight (a 3×3 weight's Winograd transform) between calls. Only for
    /// inference: the folded weights are not the model's parameters and must not be
    /// trained or saved.
    pub fn for_inference(&self) -> Network<B> {
        let mut layers = self.layers.clone();
        let steps = &self.program.steps;
        // How many steps run each layer, and how many read each slot (the output counts
        // as a reader), counted once.
        let mut uses = vec![0usize; layers.len()];
        let mut readers = vec![0usize; steps.len() + 1];
        readers[self.program.output] += 1;
        for step in steps {
            if let Step::Layer { layer, .. } = step {
                uses[*layer] += 1;
            }
            for input in step.inputs() {
                readers[input] += 1;
            }
        }
        let mut folded = vec![false; steps.len()];
        for (i, step) in steps.iter().enumerate() {
            let Step::Layer { layer: norm, input } = *step else { continue };
            // Slot `input` was written by step `input - 1` (slot 0 is the network input).
            let Some(Step::Layer { layer: conv, .. }) = input.checked_sub(1).map(|p| &steps[p]) else { continue };
            let (Layer::Conv(c), Layer::BatchNorm(bn)) = (&layers[*conv], &layers[norm]) else { continue };
            // Shared modules and outputs read twice keep their batch norm.
            if readers[input] != 1 || uses[*conv] != 1 || uses[norm] != 1 {
                continue;
            }
            layers[*conv] = Layer::Conv(c.fold(bn.eval_affine()));
            folded[i] = true;
        }
        // Weights that no longer change: each convolution keeps its kernel's form of
        // its weight from one call to the next.
        for layer in &mut layers {
            if let Layer::Conv(conv) = layer {
                *conv = conv.clone().prepared();
            }
        }
        let program = self.program.without(&folded).planned(&layers);
        Network { layers, program, precision: self.precision }
    }
}

impl Program {
    /// The program with the marked single-input steps removed: their readers read the
    /// removed step's input instead.
    fn without(&self, skip: &[bool]) -> Program {
        // new_slot[old] for every old slot.
        let mut new_slot = vec![0usize; self.steps.len() + 1];
        let (mut steps, mut labels) = (Vec::new(), Vec::new());
        for (i, step) in self.steps.iter().enumerate() {
            let mut step = step.clone();
            step.map_inputs(|slot| new_slot[slot]);
            if skip[i] {
                new_slot[i + 1] = step.inputs()[0];
            } else {
                steps.push(step);
                labels.push(self.labels[i].clone());
                new_slot[i + 1] = steps.len();
            }
        }
        Program::new(steps, labels, self.layer_paths.clone(), new_slot[self.output])
    }
}
