//! What attention modules look at, for one input: the channel weights of SE and CBAM
//! gates, CBAM's spatial map, and the class token's attention per head in a ViT's
//! last attention layer. Read from the gates' own outputs as the network runs.

use crate::lower::{Layer, Network, Step, Value};
use burn::prelude::*;

pub enum AttentionMap {
    /// A per-channel gate (SE, CBAM's channel attention): one weight per channel.
    Channels { path: String, weights: Vec<f32> },
    /// A per-position gate (CBAM's spatial attention): `height × width` weights.
    Spatial { path: String, height: usize, width: usize, map: Vec<f32> },
    /// Attention over the patch grid of each head of a ViT's last attention layer: the
    /// class token's row, or the mean over queries when there is no class token.
    Heads { path: String, from_class_token: bool, height: usize, width: usize, heads: Vec<Vec<f32>> },
}

impl AttentionMap {
    pub fn path(&self) -> &str {
        match self {
            AttentionMap::Channels { path, .. }
            | AttentionMap::Spatial { path, .. }
            | AttentionMap::Heads { path, .. } => path,
        }
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// Runs one image ([1, C, H, W]) through `network` and collects every gate's weights
/// in order, then the last attention layer's maps.
pub fn attention_maps<B: Backend>(network: &Network<B>, image: Tensor<B, 4>) -> Vec<AttentionMap> {
    // Slot i + 1 holds step i's output; slot 0 the input.
    let mut slots: Vec<Value<B>> = vec![Value::Image(image.clone())];
    network.forward_observed(Value::Image(image), &mut |_, value| slots.push(value.clone()));
    let mut maps = Vec::new();
    let mut last_attention = None;
    for (i, step) in network.program.steps.iter().enumerate() {
        let path = network.program.labels[i].path.clone();
        match step {
            Step::Scale { gate, .. } => match &slots[*gate] {
                Value::Vector(g) => maps.push(AttentionMap::Channels { path, weights: host(g.clone()) }),
                Value::Image(g) => match g.dims() {
                    [_, _, 1, 1] => maps.push(AttentionMap::Channels { path, weights: host(g.clone()) }),
                    [_, 1, height, width] => {
                        maps.push(AttentionMap::Spatial { path, height, width, map: host(g.clone()) })
                    }
                    _ => {}
                },
                Value::Tokens(_) => {}
            },
            Step::Layer { layer, input } if matches!(network.layers[*layer], Layer::Attention(_)) => {
                last_attention = Some((*layer, *input, path));
            }
            _ => {}
        }
    }
    if let Some((layer, input, path)) = last_attention
        && let (Layer::Attention(attention), Value::Tokens(tokens)) = (&network.layers[layer], &slots[input])
    {
        let weights = attention.weights(tokens.clone());
        let [_, heads, n, _] = weights.dims();
        let side = |count: usize| (1..=count).find(|s| s * s >= count).filter(|s| s * s == count);
        // A class token in front of a square grid of patches; else the grid alone.
        let (from_class_token, grid) = match (side(n.saturating_sub(1)), side(n)) {
            (Some(s), _) => (true, Some(s)),
            (None, Some(s)) => (false, Some(s)),
            _ => (false, None),
        };
        if let Some(s) = grid {
            let per_head: Vec<Vec<f32>> = (0..heads)
                .map(|h| {
                    let head = weights.clone().slice([0..1, h..h + 1, 0..n, 0..n]).reshape([n, n]);
                    if from_class_token { host(head.slice([0..1, 1..n])) } else { host(head.mean_dim(0)) }
                })
                .collect();
            maps.push(AttentionMap::Heads { path, from_class_token, height: s, width: s, heads: per_head });
        }
    }
    maps
}
