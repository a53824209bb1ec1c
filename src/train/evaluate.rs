//! Evaluation, always in eval mode: the network given here is on an inner (non-autodiff)
//! backend, so batch norm uses its running statistics and dropout is off.

use crate::data::dataset::{Dataset, Pipeline};
use crate::lower::{Network, Value};
use burn::prelude::*;

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    pub fn per_class(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| row[c] as f64 / row.iter().sum::<u64>().max(1) as f64)
            .collect()
    }
}

pub fn evaluate<B: Backend>(
    network: &Network<B>,
    data: &Dataset,
    pipeline: &Pipeline,
    batch: usize,
    device: &B::Device,
) -> Result<Evaluation, String> {
    let classes = data.classes.len().max(1);
    let mut confusion = vec![vec![0u64; classes]; classes];
    let network = network.for_inference();
    let (mut loss, mut top1, mut top5) = (0f64, 0usize, 0usize);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let (images, _) = pipeline.batch::<B>(data, chunk, None, device);
        let logits = network.forward(Value::Image(images)).vector();
        let width = logits.dims()[1];
        let values = logits.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        for (row, &i) in values.chunks(width).zip(chunk) {
            let label = data.labels[i] as usize;
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row.iter().map(|v| ((v - max) as f64).exp()).sum::<f64>().ln() + max as f64;
            loss += log_sum - row[label] as f64;
            let mut order: Vec<usize> = (0..width).collect();
            order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            top1 += usize::from(order[0] == label);
            top5 += usize::from(order.iter().take(5).any(|&c| c == label));
            if label < classes && order[0] < classes {
                confusion[label][order[0]] += 1;
            }
        }
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation { loss: loss / n, top1: top1 as f64 / n, top5: top5 as f64 / n, confusion })
}
