//! Admission before allocation: a network is built only when the static memory
//! estimate for its batch fits in what the device can give. A model that `check`
//! accepts but no machine can hold is refused in one line, with both numbers and the
//! largest batch that fits, instead of ending in the allocator's abort.

use super::{Convention, GroupBy, report};
use crate::error::{DeviceError, Error, MemoryUse};
use crate::ir::Model;

/// What the network is built for, which decides what must be held at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Forward only: the weights, and a layer's input and output at a time.
    Infer,
    /// Forward and backward: weights, gradients, the optimiser's state (`state_copies`
    /// weight-sized tensors: 1 for SGD with momentum, 2 for Adam) and every activation,
    /// kept for backward (`archc flops`'s training estimate).
    Train { state_copies: u128 },
}

/// How much memory the device can give, and where that number comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Available {
    pub bytes: u64,
    /// `MemAvailable`, `the cgroup's memory limit`, `free GPU memory`.
    pub source: String,
}

/// The estimate for `batch` images: bytes that do not depend on the batch, and bytes
/// per image.
fn estimate(model: &Model, purpose: Purpose) -> (u128, u128) {
    let costs = report(model, Convention::Core, 1, GroupBy::Layer);
    let weights = costs.memory.param_bytes;
    match purpose {
        Purpose::Train { state_copies } => {
            (weights.saturating_mul(2 + state_copies), costs.memory.forward_activation_bytes)
        }
        Purpose::Infer => {
            let input = crate::ops::numel(&model.input);
            let largest = costs.rows.iter().map(|r| r.activations).max().unwrap_or(0).max(input);
            (weights, largest.saturating_mul(2).saturating_mul(4))
        }
    }
}

/// The memory the estimate needs for `batch`.
pub fn needed(model: &Model, purpose: Purpose, batch: u64) -> u128 {
    let (fixed, per_image) = estimate(model, purpose);
    fixed.saturating_add(per_image.saturating_mul(batch as u128))
}

/// Refuses a network whose estimate for `batch` exceeds what is available.
pub fn admit(model: &Model, purpose: Purpose, batch: u64, available: &Available) -> Result<(), Error> {
    let (fixed, per_image) = estimate(model, purpose);
    let needed = fixed.saturating_add(per_image.saturating_mul(batch as u128));
    let bytes = available.bytes as u128;
    if needed <= bytes {
        return Ok(());
    }
    let largest_batch = match bytes.checked_sub(fixed) {
        Some(room) if per_image > 0 && room >= per_image => Some((room / per_image).min(u64::MAX as u128) as u64),
        _ => None,
    };
    let needs = match purpose {
        Purpose::Infer => MemoryUse::Infer,
        Purpose::Train { state_copies: 0 } => MemoryUse::Backward,
        Purpose::Train { .. } => MemoryUse::Train,
    };
    Err(DeviceError::NotEnoughMemory {
        model: model.name.clone(),
        needs,
        batch,
        needed,
        available: available.bytes,
        source: available.source.clone(),
        largest_batch,
    }
    .into())
}
