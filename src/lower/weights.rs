//! Weights by PyTorch name: reading state dicts (`.safetensors`, PyTorch `.pt`/`.pth`),
//! loading them into a lowered network with exact error messages, exporting a network
//! (archc's checkpoints are torch-layout safetensors that PyTorch loads as is), and
//! gradients by name.
//!
//! Names come from the IR: layer `i` of a network is IR path `program.layer_paths[i]`,
//! and its fields are named as PyTorch names them, so `layers.3.Conv.weight` in Burn's
//! module tree is `layer1.0.conv1.weight` here.

use super::transfer::Freeze;
use super::{Layer, Network, Precision};
use crate::error::{Error, FileKind, IoReason, WeightProblem, WeightsError};
use crate::report::files::{read_bytes, write_atomic_with};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use std::collections::BTreeMap;
use std::path::Path;

/// A float tensor outside any backend, in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Per-channel means and standard deviations.
pub type MeanStd = (Vec<f32>, Vec<f32>);

/// Tensors by PyTorch name.
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    pub tensors: BTreeMap<String, RawTensor>,
    /// safetensors metadata (archc stores the input normalisation and class names).
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// Reads `.safetensors`, or a PyTorch pickle (`.pt`, `.pth`, `.bin`; a plain state
    /// dict or one under `state_dict` / `model`). Integer tensors (`num_batches_tracked`)
    /// are skipped; a `module.` prefix (DataParallel) is removed.
    pub fn read(path: &Path) -> Result<StateDict, Error> {
        Self::parse(path, &read_bytes(path)?)
    }

    /// `read` of a file whose bytes the caller already holds (to digest them too).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<StateDict, Error> {
        let malformed = |kind, problem| Error::Malformed { path: path.to_path_buf(), kind, problem };
        // A safetensors file opens with its header's length and then the header, a JSON
        // object; a damaged one is reported by the safetensors reader, not the pickle one.
        let looks_safetensors = bytes.get(8) == Some(&b'{');
        let named_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let mut dict = if looks_safetensors || named_safetensors {
            Self::from_safetensors(bytes).map_err(|e| malformed(FileKind::Safetensors, e))?
        } else {
            Self::from_pytorch(path).map_err(|e| malformed(FileKind::StateDict, e))?
        };
        // Training scripts save `{"state_dict": ...}` or `{"model": ...}`, DataParallel adds
        // `module.`: strip such a prefix when every tensor has it.
        'strip: loop {
            for prefix in ["state_dict.", "model.", "module."] {
                if !dict.tensors.is_empty() && dict.tensors.keys().all(|k| k.starts_with(prefix)) {
                    dict.tensors = dict.tensors.into_iter().map(|(k, v)| (k[prefix.len()..].to_string(), v)).collect();
                    continue 'strip;
                }
            }
            break;
        }
        Ok(dict)
    }

    /// The reader's own words for what is wrong, if anything.
    fn from_safetensors(bytes: &[u8]) -> Result<StateDict, String> {
        use safetensors::Dtype;
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        // The file deserialised above, so its header reads; a file without metadata
        // (PyTorch's `save_file` without it) has none.
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let metadata = header.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default();
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                    .collect(),
                Dtype::F16 => raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                Dtype::BF16 => raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                // Integer tensors (labels, counters) as floats; weights are never integers.
                Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                    .collect(),
                Dtype::I32 => {
                    raw.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32).collect()
                }
                _ => continue,
            };
            tensors.insert(name, RawTensor { shape: view.shape().to_vec(), data });
        }
        Ok(StateDict { tensors, metadata })
    }

    fn from_pytorch(path: &Path) -> Result<StateDict, String> {
        use burn_store::pytorch::PytorchReader;
        let mut last_error = String::new();
        for key in [None, Some("state_dict"), Some("model")] {
            let reader = match key {
                None => PytorchReader::new(path),
                Some(key) => PytorchReader::with_top_level_key(path, key),
            };
            match reader {
                Ok(reader) if !reader.is_empty() => {
                    let mut tensors = BTreeMap::new();
                    for (name, snapshot) in reader.into_tensors() {
                        if !snapshot.dtype.is_float() {
                            continue;
                        }
                        let data = snapshot.to_data().map_err(|e| format!("tensor `{name}`: {e:?}"))?;
                        let shape = data.shape.to_vec();
                        let values: Vec<f32> =
                            data.convert::<f32>().to_vec().map_err(|e| format!("tensor `{name}`: {e:?}"))?;
                        tensors.insert(name, RawTensor { shape, data: values });
                    }
                    return Ok(StateDict { tensors, metadata: BTreeMap::new() });
                }
                Ok(_) => last_error = "it holds no tensors".into(),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(last_error)
    }

    /// The network arguments (`--set NAME=VALUE`) the weights were trained with, as
    /// archc stores them in a checkpoint's metadata; none for other files.
    pub fn settings(&self) -> Result<Vec<(String, String)>, serde_json::Error> {
        self.metadata.get("set").map_or(Ok(Vec::new()), |text| serde_json::from_str(text))
    }

    /// The compute precision the weights were trained in (f32 for other files), so that
    /// `eval` measures what training's validation measured.
    pub fn precision(&self) -> Result<Precision, serde_json::Error> {
        self.metadata.get("precision").map_or(Ok(Precision::F32), |text| serde_json::from_value(text.as_str().into()))
    }

    /// The per-channel (mean, std) archc stores in a checkpoint's metadata, when it is
    /// there, reads, and has `channels` entries each (see `stored_normalization` for the
    /// checked form).
    pub fn normalization(&self, channels: usize) -> Option<(Vec<f32>, Vec<f32>)> {
        self.parsed_normalization().ok().flatten().filter(|(m, s)| m.len() == channels && s.len() == channels)
    }

    /// The stored normalisation for a model of `channels` channels: none when the file
    /// has none (a PyTorch file); an error naming `weights` when it is damaged or made
    /// for another channel count, rather than a silent fallback.
    pub fn stored_normalization(&self, weights: &Path, channels: usize) -> Result<Option<MeanStd>, Error> {
        let damaged = |key: &'static str, problem: String| WeightsError::Metadata {
            weights: weights.to_path_buf(),
            key,
            problem,
        };
        let Some((mean, std)) = self.parsed_normalization().map_err(|(key, problem)| damaged(key, problem))? else {
            return Ok(None);
        };
        for (key, values) in [("mean", &mean), ("std", &std)] {
            if values.len() != channels {
                return Err(damaged(key, format!("{} values for a {channels}-channel model", values.len())).into());
            }
        }
        Ok(Some((mean, std)))
    }

    /// `mean` and `std` as stored (comma-separated numbers), when both are there.
    fn parsed_normalization(&self) -> Result<Option<MeanStd>, (&'static str, String)> {
        let parse = |key: &'static str| -> Result<Option<Vec<f32>>, (&'static str, String)> {
            let Some(text) = self.metadata.get(key) else { return Ok(None) };
            let values =
                text.split(',').map(|x| x.trim().parse::<f32>().map_err(|_| (key, format!("`{x}` is not a number"))));
            values.collect::<Result<Vec<f32>, _>>().map(Some)
        };
        Ok(parse("mean")?.zip(parse("std")?))
    }

    /// Weights trained with `--set` arguments only fit the network built with the same
    /// ones; a different network may take the same tensor shapes and give wrong answers
    /// without any error.
    pub fn check_settings(&self, weights: &Path, set: &[(String, String)]) -> Result<(), Error> {
        let normal = |set: &[(String, String)]| {
            let mut set: Vec<(String, String)> = set.iter().map(|(n, v)| (n.clone(), v.trim().to_string())).collect();
            set.sort();
            set
        };
        // Only archc's checkpoints record their arguments (`set`, beside the class names it
        // always writes); a PyTorch file says nothing about how it was built, so any `--set`
        // may use it.
        if !self.metadata.contains_key("set") && !self.metadata.contains_key("classes") {
            return Ok(());
        }
        let trained = self.settings().map_err(|e| WeightsError::Metadata {
            weights: weights.to_path_buf(),
            key: "set",
            problem: e.to_string(),
        })?;
        let (trained, given) = (normal(&trained), normal(set));
        if trained == given {
            return Ok(());
        }
        Err(WeightsError::SettingsDiffer { weights: weights.to_path_buf(), trained, given }.into())
    }

    /// Writes torch-layout safetensors atomically (a temporary file, then a rename), so a
    /// crash never leaves half a checkpoint. `extra_int` adds int64 scalars (BatchNorm's
    /// `num_batches_tracked`, which PyTorch's strict loading expects).
    pub fn write_safetensors(&self, path: &Path, extra_int: &[(String, i64)]) -> Result<(), Error> {
        use safetensors::tensor::TensorView;
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), t.shape.clone(), bytes, safetensors::Dtype::F32)
            })
            .collect();
        for (name, value) in extra_int {
            buffers.push((name.clone(), Vec::new(), value.to_le_bytes().to_vec(), safetensors::Dtype::I64));
        }
        let views: Vec<(String, TensorView<'_>)> = buffers
            .iter()
            .map(|(name, shape, bytes, dtype)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Write { path: path.to_path_buf(), reason: IoReason::Other(e.to_string()) })
            })
            .collect::<Result<_, _>>()?;
        let metadata: Option<std::collections::HashMap<String, String>> =
            (!self.metadata.is_empty()).then(|| self.metadata.clone().into_iter().collect());
        let write = |temp: &Path| {
            safetensors::serialize_to_file(views, metadata, temp).map_err(|e| match e {
                safetensors::SafeTensorError::IoError(e) => IoReason::from(e),
                other => IoReason::Other(other.to_string()),
            })
        };
        write_atomic_with(path, &path.with_extension("safetensors.tmp"), write, |e| IoReason::from(e))
    }
}

/// Tracks Burn's module path (`layers`, `3`, `Conv`, `weight`) and turns it into the
/// PyTorch name.
struct PathTracker<'a> {
    stack: Vec<String>,
    layer_paths: &'a [String],
}

impl PathTracker<'_> {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }

    fn exit(&mut self) {
        self.stack.pop();
    }

    /// `layers.{i}.{Variant}.{fields...}` → `{layer path}.{fields...}`; a single field
    /// named `value` (class token, position embedding) is the layer path itself.
    fn torch_name(&self, field: Option<&str>) -> Option<String> {
        let mut parts: Vec<&str> = self.stack.iter().map(String::as_str).collect();
        parts.extend(field);
        let at = parts.iter().position(|p| *p == "layers")?;
        let index: usize = parts.get(at + 1)?.parse().ok()?;
        let fields = parts.get(at + 3..)?;
        let prefix = self.layer_paths.get(index)?;
        Some(match fields {
            ["value"] => prefix.clone(),
            fields => crate::ir::join_path(prefix, &fields.join(".")),
        })
    }
}

struct Exporter<'a> {
    path: PathTracker<'a>,
    out: StateDict,
}

fn raw<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> RawTensor {
    let shape = tensor.dims().to_vec();
    // `iter` converts each value to f32, whatever the tensor's dtype: it cannot fail.
    let data = tensor.into_data().iter::<f32>().collect();
    RawTensor { shape, data }
}

impl<B: Backend> ModuleVisitor<B> for Exporter<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(name) = self.path.torch_name(None) {
            self.out.tensors.insert(name, raw(param.val()));
        }
    }
}

struct Loader<'a> {
    path: PathTracker<'a>,
    dict: &'a StateDict,
    errors: Vec<WeightProblem>,
    /// The file's tensors the model has a place for (loaded or not: one of another
    /// shape is reported as reshaped, not also as unexpected).
    matched: std::collections::BTreeSet<String>,
}

impl<B: Backend> ModuleMapper<B> for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(name) = self.path.torch_name(None) else { return Param::from_mapped_value(id, tensor, mapper) };
        let expected = tensor.dims().to_vec();
        match self.dict.tensors.get(&name) {
            None => self.errors.push(WeightProblem::Missing { name, expected }),
            Some(found) if found.shape != expected => {
                self.matched.insert(name.clone());
                self.errors.push(WeightProblem::Reshaped { name, found: found.shape.clone(), expected })
            }
            Some(found) => {
                self.matched.insert(name);
                let value = Tensor::<B, D>::from_data(
                    TensorData::new(found.data.clone(), found.shape.clone()),
                    &tensor.device(),
                )
                .set_require_grad(tensor.is_require_grad());
                return Param::from_mapped_value(id, value, mapper);
            }
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

impl<B: Backend> Network<B> {
    /// Every parameter and running statistic by PyTorch name.
    pub fn state_dict(&self) -> StateDict {
        // Clones share running statistics; recording syncs them (Burn keeps the last
        // batch-norm update pending per thread).
        let _ = self.clone().into_record();
        let mut exporter = Exporter {
            path: PathTracker { stack: Vec::new(), layer_paths: &self.program.layer_paths },
            out: StateDict::default(),
        };
        self.visit(&mut exporter);
        exporter.out
    }

    /// BatchNorm counters PyTorch's `state_dict` has (written as 0).
    pub fn num_batches_tracked(&self) -> Vec<(String, i64)> {
        self.layers
            .iter()
            .zip(&self.program.layer_paths)
            .filter(|(layer, _)| matches!(layer, Layer::BatchNorm(_)))
            .map(|(_, path)| (crate::ir::join_path(path, "num_batches_tracked"), 0))
            .collect()
    }

    /// Writes the weights as torch-layout safetensors, atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        self.state_dict().write_safetensors(path, &self.num_batches_tracked())
    }

    /// Loads weights by PyTorch name. Every mismatch is reported: a missing key with
    /// the shape archc expects, a shape mismatch with both shapes, a key the model
    /// does not use.
    pub fn load_state_dict(self, dict: &StateDict) -> Result<Network<B>, Vec<WeightProblem>> {
        let (network, mut errors, matched) = self.load(dict);
        for (name, tensor) in &dict.tensors {
            if !matched.contains(name) && !name.ends_with("num_batches_tracked") {
                errors.push(WeightProblem::Unexpected { name: name.clone(), shape: tensor.shape.clone() });
            }
        }
        if errors.is_empty() { Ok(network) } else { Err(errors) }
    }

    /// `load_state_dict` of the weights file `weights`, its mismatches the error that
    /// names the file and `model`.
    pub fn load_file(self, dict: &StateDict, weights: &Path, model: &str) -> Result<Network<B>, WeightsError> {
        self.load_state_dict(dict).map_err(|problems| WeightsError::DoNotFit {
            weights: weights.to_path_buf(),
            model: model.to_string(),
            problems,
        })
    }

    /// Loads the tensors of `dict` whose name and shape match, leaving the others as
    /// they are (`--init`; `Transfer::plan` says beforehand which those are).
    pub fn load_matching(self, dict: &StateDict) -> Network<B> {
        self.load(dict).0
    }

    fn load(self, dict: &StateDict) -> (Network<B>, Vec<WeightProblem>, std::collections::BTreeSet<String>) {
        let layer_paths = self.program.layer_paths.clone();
        let mut loader = Loader {
            path: PathTracker { stack: Vec::new(), layer_paths: &layer_paths },
            dict,
            errors: Vec::new(),
            matched: Default::default(),
        };
        let network = self.map(&mut loader);
        (network, loader.errors, loader.matched)
    }

    /// Keeps the parameters `freeze` covers fixed (no gradient, so no optimiser step
    /// moves them) and puts batch norms whose weight and bias are both frozen in eval
    /// mode, their running statistics fixed too.
    pub fn freeze(self, freeze: &Freeze) -> Network<B> {
        let layer_paths = self.program.layer_paths.clone();
        let mut freezer = Freezer { path: PathTracker { stack: Vec::new(), layer_paths: &layer_paths }, freeze };
        let mut network = self.map(&mut freezer);
        for (layer, path) in network.layers.iter_mut().zip(&layer_paths) {
            if let Layer::BatchNorm(bn) = layer {
                let frozen = |field| freeze.is_frozen(&crate::ir::join_path(path, field));
                bn.frozen = frozen("weight") && frozen("bias");
            }
        }
        network
    }
}

struct Ids<'a, F: Fn(&str) -> bool> {
    path: PathTracker<'a>,
    wanted: F,
    ids: std::collections::HashSet<ParamId>,
}

impl<B: Backend, F: Fn(&str) -> bool> ModuleVisitor<B> for Ids<'_, F> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.path.torch_name(None).is_some_and(|name| (self.wanted)(&name)) {
            self.ids.insert(param.id);
        }
    }
}

impl<B: Backend> Network<B> {
    /// The ids of the parameters whose PyTorch name `wanted` accepts.
    pub fn param_ids(&self, wanted: impl Fn(&str) -> bool) -> std::collections::HashSet<ParamId> {
        let mut ids = Ids {
            path: PathTracker { stack: Vec::new(), layer_paths: &self.program.layer_paths },
            wanted,
            ids: Default::default(),
        };
        self.visit(&mut ids);
        ids.ids
    }
}

struct Freezer<'a> {
    path: PathTracker<'a>,
    freeze: &'a Freeze,
}

impl<B: Backend> ModuleMapper<B> for Freezer<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        match self.path.torch_name(None) {
            Some(name) if self.freeze.is_frozen(&name) => param.set_require_grad(false),
            _ => param,
        }
    }
}

struct GradCollector<'a, B: AutodiffBackend> {
    path: PathTracker<'a>,
    grads: &'a B::Gradients,
    out: StateDict,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradCollector<'_, B> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let (Some(name), Some(grad)) = (self.path.torch_name(None), param.val().grad(self.grads)) {
            self.out.tensors.insert(name, raw(grad));
        }
    }
}

impl<B: AutodiffBackend> Network<B> {
    /// The gradient of every parameter that has one, by PyTorch name.
    pub fn gradients(&self, grads: &B::Gradients) -> StateDict {
        let mut collector = GradCollector {
            path: PathTracker { stack: Vec::new(), layer_paths: &self.program.layer_paths },
            grads,
            out: StateDict::default(),
        };
        self.visit(&mut collector);
        collector.out
    }
}
