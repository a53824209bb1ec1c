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
    // `iter` converts each value to f32: the read cannot fail.
    t.into_data().iter::<f32>().collect()
}

/// Runs one image ([1, C, H, W]) through `network` and collects every gate's weights
/// in order, then the last attention layer's maps.
pub fn attention_maps<B: Backend>(network: &Network<B>, image: Tensor<B, 4>) -> Vec<AttentionMap> {
    // Slot i + 1 holds step i's output; slot 0 the input.
    let mut slots: Vec<Value<B>> = vec![Value::Image(image.clone())];
    network.forward_observed(Value::Image(image), &mut |_, value| slots.push(value.clone()));
    let mut maps = Vec::new();
    let mut last_attention = None;
    // The patch grid, from the patchify layer's input and stride.
    let mut grid = None;
    let mut class_token = false;
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
            Step::Layer { layer, input } => match (&network.layers[*layer], &slots[*input]) {
                (Layer::Attention(_), _) => last_attention = Some((*layer, *input, path)),
                (Layer::Patchify(conv), Value::Image(x)) => {
                    let [_, _, h, w] = x.dims();
                    let [_, _, kh, kw] = conv.weight.val().dims();
                    let side =
                        |size: usize, kernel: usize| (size + 2 * conv.padding).saturating_sub(kernel) / conv.stride + 1;
                    grid = Some((side(h, kh), side(w, kw)));
                }
                (Layer::ClassToken(_), _) => class_token = true,
                _ => {}
            },
            _ => {}
        }
    }
    // Gates of a map that could not be read are left out rather than drawn empty.
    maps.retain(|m| match m {
        AttentionMap::Channels { weights, .. } => !weights.is_empty(),
        AttentionMap::Spatial { height, width, map, .. } => map.len() == height * width && !map.is_empty(),
        AttentionMap::Heads { .. } => true,
    });
    if let (Some((layer, input, path)), Some((height, width))) = (last_attention, grid)
        && let (Layer::Attention(attention), Value::Tokens(tokens)) = (&network.layers[layer], &slots[input])
    {
        let weights = attention.weights(tokens.clone());
        let [_, heads, n, _] = weights.dims();
        // The class token (when there is one) comes first, then the patches in rows.
        let first = usize::from(class_token);
        if n == first + height * width {
            let per_head: Vec<Vec<f32>> = (0..heads)
                .map(|h| {
                    let head = weights.clone().slice([0..1, h..h + 1, 0..n, 0..n]).reshape([n, n]);
                    if class_token { host(head.slice([0..1, 1..n])) } else { host(head.mean_dim(0)) }
                })
                .collect();
            if per_head.iter().all(|m| m.len() == height * width) {
                maps.push(AttentionMap::Heads { path, from_class_token: class_token, height, width, heads: per_head });
            }
        }
    }
    maps
}
