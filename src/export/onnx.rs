//! A checked model as an ONNX ModelProto: the IR walked in order, each op emitting its
//! own standard operators (`ops::*::onnx`), residual adds, gates and merges as Add, Mul
//! and Concat; the weights as initializers under their PyTorch names; a symbolic or
//! fixed batch dimension; every node's doc string the `.arch` location it comes from.
//! Eval-mode semantics: batch norm with running statistics, no dropout.

use super::onnx_proto as pb;
use crate::error::{Error, ExportError};
use crate::ir::{Merge, Model, Node, NodeKind, Shortcut};
use crate::lower::weights::StateDict;
use crate::ops::onnx::{Attribute, Graph, Values};
use crate::source::Sources;
use crate::tensor::Shape;

/// The batch dimension of the input and output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Symbolic (`batch`): any batch size.
    Dynamic,
    Fixed(u64),
}

/// The IR version each opset came with (onnx's `helper.VERSION_TABLE`).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19 | 20 => 9,
        _ => 10,
    }
}

struct Emitter<'a> {
    g: Graph,
    sources: &'a Sources,
}

impl Emitter<'_> {
    fn chain(&mut self, nodes: &[Node], mut x: String) -> Result<String, ExportError> {
        for node in nodes {
            x = self.node(node, x)?;
        }
        Ok(x)
    }

    fn locate(&mut self, node: &Node) -> String {
        let (line, column) = self.sources.line_column(node.span.file, node.span.start);
        format!("{}:{line}:{column}", self.sources.name(node.span.file))
    }

    fn node(&mut self, node: &Node, x: String) -> Result<String, ExportError> {
        self.g.path = node.path.clone();
        self.g.doc = self.locate(node);
        match &node.kind {
            NodeKind::Op { op, name, .. } => {
                op.onnx(&mut self.g, &x, &node.input, &node.path).map_err(|problem| ExportError::Unsupported {
                    layer: if node.path.is_empty() { name.to_string() } else { node.path.clone() },
                    location: self.g.doc.clone(),
                    opset: self.g.opset,
                    what: problem.what,
                })
            }
            NodeKind::Block { children, .. } => self.chain(children, x),
            NodeKind::Residual { body, shortcut } => {
                let out = self.chain(body, x.clone())?;
                let skip = match shortcut {
                    Shortcut::Off => return Ok(out),
                    Shortcut::Identity => x,
                    Shortcut::Projection(projection) => self.node(projection, x)?,
                };
                self.at(node);
                Ok(self.g.node("Add", &[&out, &skip], Vec::new()))
            }
            NodeKind::Scale { gate } => {
                let gated = self.chain(gate, x.clone())?;
                let gate_shape = gate.last().map_or(node.input, |n| n.output);
                self.at(node);
                // A vector gate (one value per channel or feature) broadcast over positions.
                let gated = match (node.input, gate_shape) {
                    (Shape::Image { .. }, Shape::Vector { .. }) => self.g.reshape(&gated, &[0, -1, 1, 1]),
                    (Shape::Tokens { .. }, Shape::Vector { .. }) => self.g.reshape(&gated, &[0, 1, -1]),
                    _ => gated,
                };
                Ok(self.g.node("Mul", &[&x, &gated], Vec::new()))
            }
            NodeKind::Parallel { merge, branches } => {
                let outs = branches.iter().map(|b| self.node(b, x.clone())).collect::<Result<Vec<_>, _>>()?;
                self.at(node);
                let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
                Ok(match merge {
                    Merge::Concat => {
                        let axis = if matches!(node.input, Shape::Image { .. }) { 1 } else { -1 };
                        self.g.node("Concat", &refs, vec![("axis", Attribute::Int(axis))])
                    }
                    Merge::Sum => self.fold("Add", &refs),
                    Merge::Mul => self.fold("Mul", &refs),
                })
            }
        }
    }

    /// Names and docs of a structural node's own Add/Mul/Concat.
    fn at(&mut self, node: &Node) {
        self.g.path = node.path.clone();
        self.g.doc = self.locate(node);
    }

    fn fold(&mut self, op_type: &'static str, values: &[&str]) -> String {
        let mut acc = values[0].to_string();
        for value in &values[1..] {
            acc = self.g.node(op_type, &[&acc, value], Vec::new());
        }
        acc
    }
}

fn value_info(name: &str, shape: &Shape, batch: Batch) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let first = match batch {
        Batch::Dynamic => Value::DimParam("batch".into()),
        Batch::Fixed(n) => Value::DimValue(n as i64),
    };
    let mut dims = vec![Dimension { value: Some(first), ..Default::default() }];
    dims.extend(
        shape.dims().iter().map(|&d| Dimension { value: Some(Value::DimValue(d as i64)), ..Default::default() }),
    );
    let tensor = pb::type_proto::Tensor {
        elem_type: Some(pb::tensor_proto::DataType::Float as i32),
        shape: Some(pb::TensorShapeProto { dim: dims }),
    };
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

fn attribute(name: &str, value: &Attribute) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType;
    let mut proto = pb::AttributeProto { name: Some(name.into()), ..Default::default() };
    let kind = match value {
        Attribute::Int(v) => {
            proto.i = Some(*v);
            AttributeType::Int
        }
        Attribute::Ints(v) => {
            proto.ints = v.clone();
            AttributeType::Ints
        }
        Attribute::Float(v) => {
            proto.f = Some(*v);
            AttributeType::Float
        }
        Attribute::Text(v) => {
            proto.s = Some(v.as_bytes().to_vec());
            AttributeType::String
        }
    };
    proto.r#type = Some(kind as i32);
    proto
}

fn tensor(name: &str, dims: Vec<i64>, values: &Values) -> pb::TensorProto {
    use pb::tensor_proto::DataType;
    let (data_type, raw) = match values {
        Values::F32(v) => (DataType::Float, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Values::I64(v) => (DataType::Int64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    pb::TensorProto {
        name: Some(name.into()),
        dims,
        data_type: Some(data_type as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// What the export wrote, for the report.
#[derive(Clone, Debug)]
pub struct Summary {
    pub nodes: usize,
    /// The network's tensors among the initializers; the rest are constants.
    pub weights: usize,
    pub initializers: usize,
    /// Operator types used, sorted.
    pub operators: Vec<&'static str>,
}

/// The model as a ModelProto. `weights` must hold every tensor the model has (a
/// network's own `state_dict`).
pub fn model_proto(
    model: &Model,
    sources: &Sources,
    weights: &StateDict,
    opset: i64,
    batch: Batch,
) -> Result<(pb::ModelProto, Summary), Error> {
    if !crate::ops::onnx::OPSETS.contains(&opset) {
        let (lowest, highest) = (*crate::ops::onnx::OPSETS.start(), *crate::ops::onnx::OPSETS.end());
        return Err(ExportError::Opset { opset, lowest, highest }.into());
    }
    let mut emitter = Emitter { g: Graph::new(opset), sources };
    let mut out = "input".to_string();
    for node in &model.nodes {
        out = emitter.node(node, out)?;
    }
    let mut g = emitter.g;
    g.path = String::new();
    g.doc = String::new();
    // The output is a value of its own, even when the last op is an identity.
    g.nodes.push(crate::ops::onnx::Node {
        op_type: "Identity",
        name: "output".into(),
        inputs: vec![out],
        outputs: vec!["logits".into()],
        attributes: Vec::new(),
        doc: String::new(),
    });
    let mut initializers = Vec::new();
    for name in &g.weights {
        let raw = weights.tensors.get(name).ok_or_else(|| ExportError::NoWeight { name: name.clone() })?;
        let dims = raw.shape.iter().map(|&d| d as i64).collect();
        initializers.push(tensor(name, dims, &Values::F32(raw.data.clone())));
    }
    for constant in &g.constants {
        initializers.push(tensor(&constant.name, constant.dims.clone(), &constant.values));
    }
    let nodes: Vec<pb::NodeProto> = g
        .nodes
        .iter()
        .map(|n| pb::NodeProto {
            input: n.inputs.clone(),
            output: n.outputs.clone(),
            name: Some(n.name.clone()),
            op_type: Some(n.op_type.into()),
            domain: Some(String::new()),
            attribute: n.attributes.iter().map(|(name, value)| attribute(name, value)).collect(),
            doc_string: (!n.doc.is_empty()).then(|| n.doc.clone()),
            ..Default::default()
        })
        .collect();
    let mut operators: Vec<&'static str> = g.nodes.iter().map(|n| n.op_type).collect();
    operators.sort_unstable();
    operators.dedup();
    let summary = Summary { nodes: nodes.len(), weights: g.weights.len(), initializers: initializers.len(), operators };
    let graph = pb::GraphProto {
        node: nodes,
        name: Some(model.name.clone()),
        initializer: initializers,
        input: vec![value_info("input", &model.input, batch)],
        output: vec![value_info("logits", &model.output, batch)],
        doc_string: Some(format!("{} as archc compiled it", model.name)),
        ..Default::default()
    };
    let proto = pb::ModelProto {
        ir_version: Some(ir_version(opset)),
        opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        producer_name: Some("archc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!("{} (input {}, output {}), eval mode", model.name, model.input, model.output)),
        graph: Some(graph),
        // An archc checkpoint's input normalisation and class names (`mean`, `std`,
        // `classes`, ...), so that a deployment knows what the logits expect and mean.
        metadata_props: weights
            .metadata
            .iter()
            .map(|(key, value)| pb::StringStringEntryProto { key: Some(key.clone()), value: Some(value.clone()) })
            .collect(),
        ..Default::default()
    };
    Ok((proto, summary))
}
