//! Learning-rate schedules, per epoch, as PyTorch's: CosineAnnealingLR (T_max =
//! epochs after warm-up, no restart), StepLR, constant; optional linear warm-up.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Cosine,
    Step,
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrPlan {
    pub base: f64,
    pub schedule: Schedule,
    pub epochs: usize,
    /// StepLR: multiply by `gamma` every `step_size` epochs.
    pub step_size: usize,
    pub gamma: f64,
    /// Linear warm-up from base/warmup to base over these epochs.
    pub warmup: usize,
    pub min_lr: f64,
}

impl LrPlan {
    /// The learning rate used during epoch `epoch` (0-based).
    pub fn at(&self, epoch: usize) -> f64 {
        if epoch < self.warmup {
            return self.base * (epoch + 1) as f64 / self.warmup as f64;
        }
        let e = epoch - self.warmup;
        let span = self.epochs.saturating_sub(self.warmup).max(1);
        match self.schedule {
            Schedule::Constant => self.base,
            Schedule::Step => self.base * self.gamma.powi((e / self.step_size.max(1)) as i32),
            Schedule::Cosine => {
                self.min_lr
                    + (self.base - self.min_lr) * (1.0 + (std::f64::consts::PI * e as f64 / span as f64).cos()) / 2.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(schedule: Schedule, warmup: usize) -> LrPlan {
        LrPlan { base: 1.0, schedule, epochs: 4, step_size: 2, gamma: 0.1, warmup, min_lr: 0.0 }
    }

    #[test]
    fn matches_pytorch_schedulers() {
        let cosine: Vec<f64> = (0..4).map(|e| plan(Schedule::Cosine, 0).at(e)).collect();
        let expected = [1.0, 0.853_553_4, 0.5, 0.146_446_6];
        for (a, b) in cosine.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{cosine:?}");
        }
        let step: Vec<f64> = (0..4).map(|e| plan(Schedule::Step, 0).at(e)).collect();
        for (a, b) in step.iter().zip([1.0, 1.0, 0.1, 0.1]) {
            assert!((a - b).abs() < 1e-12, "{step:?}");
        }
        let warm: Vec<f64> = (0..4).map(|e| plan(Schedule::Constant, 2).at(e)).collect();
        assert_eq!(warm, vec![0.5, 1.0, 1.0, 1.0]);
        // CosineAnnealingLR(T_max=4, eta_min=0.1), as torch 2.15 prints it.
        let floor = LrPlan { min_lr: 0.1, ..plan(Schedule::Cosine, 0) };
        for (e, expected) in [1.0, 0.868_198_051_533_946_4, 0.55, 0.231_801_948_466_053_7].into_iter().enumerate() {
            assert!((floor.at(e) - expected).abs() < 1e-12, "epoch {e}: {} vs {expected}", floor.at(e));
        }
    }
}
