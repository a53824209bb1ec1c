//! An ONNX graph as ops emit it: nodes of standard operators over named values, with
//! the weights referenced by their PyTorch names (the initializers `export::onnx`
//! writes under the same names) and small constants (reshape targets, tables). Each op
//! family file emits its own ops beside its shape rule and lowering; this file holds
//! only the shared vocabulary. The batch dimension stays symbolic: reshapes copy it
//! with ONNX's `0`.

use crate::tensor::Shape;

/// The opsets archc writes: 17 (the first with LayerNormalization) to 21.
pub const OPSETS: std::ops::RangeInclusive<i64> = 17..=21;

#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Text(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op_type: &'static str,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(&'static str, Attribute)>,
    /// Where the node comes from in the `.arch` source (`file:line:column`).
    pub doc: String,
}

/// A constant's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub name: String,
    pub dims: Vec<i64>,
    pub values: Values,
}

/// A layer ONNX cannot express in the chosen opset (the caller names the layer).
#[derive(Clone, Debug, PartialEq)]
pub struct Unsupported {
    pub what: String,
}

/// The graph being emitted.
#[derive(Debug)]
pub struct Graph {
    pub opset: i64,
    pub nodes: Vec<Node>,
    pub constants: Vec<Constant>,
    /// The weights the nodes read, by PyTorch name, in first-use order.
    pub weights: Vec<String>,
    /// The IR path and source location of the layer being emitted: names and docs.
    pub path: String,
    pub doc: String,
    count: usize,
}

impl Graph {
    pub fn new(opset: i64) -> Graph {
        Graph {
            opset,
            nodes: Vec::new(),
            constants: Vec::new(),
            weights: Vec::new(),
            path: String::new(),
            doc: String::new(),
            count: 0,
        }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        let path = if self.path.is_empty() { "net".to_string() } else { self.path.clone() };
        format!("{path}/{what}_{}", self.count)
    }

    /// One node with one output, named after the layer path.
    pub fn node(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, Attribute)>,
    ) -> String {
        let output = self.fresh(&op_type.to_lowercase());
        self.nodes.push(Node {
            op_type,
            name: output.clone(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.clone()],
            attributes,
            doc: self.doc.clone(),
        });
        output
    }

    /// A weight of the layer at `path` (`path.suffix`, or the path itself for an empty
    /// suffix), as an initializer name.
    pub fn weight(&mut self, path: &str, suffix: &str) -> String {
        let name = match (path.is_empty(), suffix.is_empty()) {
            (_, true) => path.to_string(),
            (true, false) => suffix.to_string(),
            (false, false) => format!("{path}.{suffix}"),
        };
        if !self.weights.contains(&name) {
            self.weights.push(name.clone());
        }
        name
    }

    pub fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        self.constants.push(Constant {
            name: name.clone(),
            dims: vec![values.len() as i64],
            values: Values::I64(values.to_vec()),
        });
        name
    }

    pub fn int_scalar(&mut self, value: i64) -> String {
        let name = self.fresh("const");
        self.constants.push(Constant { name: name.clone(), dims: Vec::new(), values: Values::I64(vec![value]) });
        name
    }

    pub fn floats(&mut self, dims: &[i64], values: Vec<f32>) -> String {
        let name = self.fresh("const");
        self.constants.push(Constant { name: name.clone(), dims: dims.to_vec(), values: Values::F32(values) });
        name
    }

    pub fn scalar(&mut self, value: f32) -> String {
        self.floats(&[], vec![value])
    }

    /// `ReduceMean`/`ReduceMax` over `axes`: an attribute before opset 18, an input from it.
    pub fn reduce(&mut self, op_type: &'static str, x: &str, axes: &[i64], keep: bool) -> String {
        let keepdims = ("keepdims", Attribute::Int(keep as i64));
        if self.opset < 18 {
            self.node(op_type, &[x], vec![("axes", Attribute::Ints(axes.to_vec())), keepdims])
        } else {
            let axes = self.ints(axes);
            self.node(op_type, &[x, &axes], vec![keepdims])
        }
    }

    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(shape);
        self.node("Reshape", &[x, &shape], Vec::new())
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.node("Transpose", &[x], vec![("perm", Attribute::Ints(perm.to_vec()))])
    }

    /// `x · Wᵀ (+ b)` over the last dimension, with W in PyTorch's [out, in] layout:
    /// Gemm for a batch of vectors, MatMul with the transposed weight for tokens.
    pub fn linear(&mut self, x: &str, input: &Shape, weight: &str, bias: Option<&str>) -> String {
        if let Shape::Vector { .. } = input {
            let mut inputs = vec![x, weight];
            inputs.extend(bias);
            return self.node("Gemm", &inputs, vec![("transB", Attribute::Int(1))]);
        }
        let transposed = self.transpose(weight, &[1, 0]);
        let y = self.node("MatMul", &[x, &transposed], Vec::new());
        match bias {
            Some(bias) => self.node("Add", &[&y, bias], Vec::new()),
            None => y,
        }
    }

    /// The exact GELU, `x · Φ(x)`: the Gelu operator from opset 20, else through Erf.
    pub fn gelu(&mut self, x: &str, tanh: bool) -> String {
        if self.opset >= 20 {
            let approximate = if tanh { "tanh" } else { "none" };
            return self.node("Gelu", &[x], vec![("approximate", Attribute::Text(approximate.into()))]);
        }
        let half = self.scalar(0.5);
        let one = self.scalar(1.0);
        let inner = if tanh {
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let cube = {
                let three = self.scalar(3.0);
                self.node("Pow", &[x, &three], Vec::new())
            };
            let c = self.scalar(0.044715);
            let scaled = self.node("Mul", &[&cube, &c], Vec::new());
            let sum = self.node("Add", &[x, &scaled], Vec::new());
            let k = self.scalar((2.0f64 / std::f64::consts::PI).sqrt() as f32);
            let arg = self.node("Mul", &[&sum, &k], Vec::new());
            self.node("Tanh", &[&arg], Vec::new())
        } else {
            // 0.5·x·(1 + erf(x / √2))
            let root2 = self.scalar(std::f32::consts::SQRT_2);
            let arg = self.node("Div", &[x, &root2], Vec::new());
            self.node("Erf", &[&arg], Vec::new())
        };
        let plus = self.node("Add", &[&inner, &one], Vec::new());
        let times = self.node("Mul", &[x, &plus], Vec::new());
        self.node("Mul", &[&times, &half], Vec::new())
    }
}
