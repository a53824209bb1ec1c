//! Starting a network from another network's weights (`archc train --init`): which
//! tensors carry over by name and shape, which are new, which the file has for nothing,
//! and which exist on both sides with different shapes. Computed from the IR's tensor
//! list, before any network is built, so that a refusal costs nothing; loading
//! (`Network::load_matching`) then takes exactly the `loaded` tensors.
//!
//! `--freeze` prefixes are dotted names matched whole component by component, so
//! `layer1` freezes `layer1.0.conv1.weight` but not `layer10.0.conv1.weight`.

use super::weights::StateDict;
use crate::ir::Model;
use serde::{Deserialize, Serialize};

/// A tensor by PyTorch name with its shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedShape {
    pub name: String,
    pub shape: Vec<u64>,
}

/// A tensor both sides have, with different shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reshaped {
    pub name: String,
    /// In the weights file.
    pub found: Vec<u64>,
    /// In the model.
    pub expected: Vec<u64>,
}

/// What `--init` does with each tensor. Model tensors are in the model's order, the
/// file's unused ones in name order. BatchNorm's `num_batches_tracked` counters are
/// left out on both sides (archc does not keep them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Carried over: same name, same shape.
    pub loaded: Vec<NamedShape>,
    /// The model's tensors the file does not have: initialised as usual.
    pub new: Vec<NamedShape>,
    /// The file's tensors the model has no place for.
    pub unused: Vec<NamedShape>,
    /// On both sides with different shapes: initialised as usual.
    pub reshaped: Vec<Reshaped>,
}

fn counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

impl Transfer {
    pub fn plan(model: &Model, weights: &StateDict) -> Transfer {
        let mut transfer = Transfer::default();
        let mut placed = std::collections::BTreeSet::new();
        for tensor in model.tensors().into_iter().filter(|t| !counter(&t.name)) {
            let entry = NamedShape { name: tensor.name.clone(), shape: tensor.shape.clone() };
            match weights.tensors.get(&tensor.name) {
                None => transfer.new.push(entry),
                Some(found) => {
                    placed.insert(tensor.name.clone());
                    let found: Vec<u64> = found.shape.iter().map(|&d| d as u64).collect();
                    if found == tensor.shape {
                        transfer.loaded.push(entry);
                    } else {
                        transfer.reshaped.push(Reshaped { name: tensor.name, found, expected: tensor.shape });
                    }
                }
            }
        }
        for (name, tensor) in &weights.tensors {
            if !placed.contains(name) && !counter(name) {
                let shape = tensor.shape.iter().map(|&d| d as u64).collect();
                transfer.unused.push(NamedShape { name: name.clone(), shape });
            }
        }
        transfer
    }

    /// The model's tensors that start from the usual initialisation (new or reshaped):
    /// the ones `--head-lr-mult` speeds up.
    pub fn fresh(&self) -> Vec<String> {
        let new = self.new.iter().map(|t| t.name.clone());
        new.chain(self.reshaped.iter().map(|t| t.name.clone())).collect()
    }
}

/// Whether the dotted `prefix` names `name` or one of its ancestors.
pub fn covers(prefix: &str, name: &str) -> bool {
    name == prefix || name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'))
}

/// The trainable parameters `--freeze` keeps fixed, and how many elements train.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Freeze {
    /// The prefixes as given.
    pub prefixes: Vec<String>,
    /// The parameters they cover, in the model's order.
    pub frozen: Vec<String>,
    /// Parameter elements kept fixed and trained.
    pub frozen_params: u128,
    pub trainable_params: u128,
}

impl Freeze {
    /// The prefixes that cover no trainable parameter are returned as the error (a
    /// misspelt prefix would otherwise freeze nothing without a word).
    pub fn plan(model: &Model, prefixes: &[String]) -> Result<Freeze, Vec<String>> {
        let params: Vec<_> = model.tensors().into_iter().filter(|t| t.trainable).collect();
        let unknown: Vec<String> =
            prefixes.iter().filter(|p| !params.iter().any(|t| covers(p, &t.name))).cloned().collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut freeze = Freeze { prefixes: prefixes.to_vec(), ..Freeze::default() };
        for tensor in params {
            let size = crate::ops::product(&tensor.shape);
            if prefixes.iter().any(|p| covers(p, &tensor.name)) {
                freeze.frozen.push(tensor.name);
                freeze.frozen_params += size;
            } else {
                freeze.trainable_params += size;
            }
        }
        Ok(freeze)
    }

    pub fn is_frozen(&self, name: &str) -> bool {
        self.prefixes.iter().any(|p| covers(p, name))
    }
}

/// The prefixes of a model's parameter names (what `--freeze` accepts), for
/// suggesting one.
pub fn tensor_prefixes(model: &Model) -> Vec<String> {
    let mut prefixes = std::collections::BTreeSet::new();
    for tensor in model.tensors().into_iter().filter(|t| t.trainable) {
        let parts: Vec<&str> = tensor.name.split('.').collect();
        for end in 1..=parts.len() {
            prefixes.insert(parts[..end].join("."));
        }
    }
    prefixes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_prefix_covers_whole_components_only() {
        assert!(covers("layer1", "layer1.0.conv1.weight"));
        assert!(covers("layer1.0", "layer1.0.conv1.weight"));
        assert!(covers("fc.weight", "fc.weight"));
        assert!(!covers("layer1", "layer10.0.conv1.weight"));
        assert!(!covers("layer1.0.conv", "layer1.0.conv1.weight"));
        assert!(!covers("fc.weight", "fc.bias"));
    }
}
