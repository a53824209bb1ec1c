//! Dynamic loss scaling for f16 training, with the rule and defaults of PyTorch's
//! `torch.amp.GradScaler`: the loss is multiplied by `scale` before the backward pass
//! so that small gradients survive f16's narrow range; the gradients are divided by it
//! again before the optimiser sees them. A step whose gradients overflowed is skipped
//! and the scale halved; after `GROWTH_INTERVAL` good steps in a row it doubles.

use serde::{Deserialize, Serialize};

const INITIAL_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: u32 = 2000;

/// The scaler's state, kept in state.json so that a resumed run continues with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    pub scale: f64,
    /// Good steps since the scale last changed.
    pub good_steps: u32,
    /// Steps skipped because their gradients overflowed, over the whole run.
    pub skipped: u64,
}

impl Default for LossScale {
    fn default() -> LossScale {
        LossScale { scale: INITIAL_SCALE, good_steps: 0, skipped: 0 }
    }
}

impl LossScale {
    /// Records whether this step's gradients were finite; `true` if the step may be taken.
    pub fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= GROWTH_FACTOR;
                self.good_steps = 0;
            }
        } else {
            self.scale *= BACKOFF_FACTOR;
            self.good_steps = 0;
            self.skipped += 1;
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_the_scale_and_skips() {
        let mut scaler = LossScale::default();
        assert!(!scaler.update(false));
        assert_eq!((scaler.scale, scaler.good_steps, scaler.skipped), (32768.0, 0, 1));
        assert!(scaler.update(true));
        assert!(!scaler.update(false));
        assert_eq!((scaler.scale, scaler.good_steps, scaler.skipped), (16384.0, 0, 2));
    }

    #[test]
    fn a_run_of_good_steps_doubles_the_scale() {
        let mut scaler = LossScale::default();
        for _ in 0..GROWTH_INTERVAL - 1 {
            assert!(scaler.update(true));
        }
        assert_eq!(scaler.scale, INITIAL_SCALE);
        scaler.update(true);
        assert_eq!((scaler.scale, scaler.good_steps), (2.0 * INITIAL_SCALE, 0));
    }
}
