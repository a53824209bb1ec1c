//! An op as PyTorch code, for `archc export --format pytorch`: the module its
//! `__init__` makes (whose whole-number arguments may become the enclosing class's
//! constructor arguments), how `forward` applies it, and, for ops without weights,
//! the plain function a hand-written `forward` would call instead of a module.

/// One argument of a module's constructor.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A whole number (channels, kernel, stride, ...): `what` names it, `keyword` is
    /// how it is passed (positionally when `None`).
    Int { what: &'static str, keyword: Option<&'static str>, value: i64 },
    /// Anything else, written as is (`bias=False`, `eps=1e-06`).
    Text(String),
}

pub fn int(what: &'static str, value: u64) -> Arg {
    Arg::Int { what, keyword: None, value: value as i64 }
}

pub fn keyword(what: &'static str, value: u64) -> Arg {
    Arg::Int { what, keyword: Some(what), value: value as i64 }
}

pub fn text(text: impl Into<String>) -> Arg {
    Arg::Text(text.into())
}

/// `func(args)`, optionally inside `wrap` (whose `{}` is the call).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: &'static str,
    pub args: Vec<Arg>,
    pub wrap: Option<&'static str>,
}

pub fn call(func: &'static str, args: Vec<Arg>) -> Call {
    Call { func, args, wrap: None }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TorchOp {
    /// The module (or `nn.Parameter`) `__init__` makes; `None` when the op is only a
    /// function.
    pub module: Option<Call>,
    /// `forward` with the module: `{m}` is the attribute, `{x}` the input.
    pub apply: &'static str,
    /// `forward` without a module (ops without weights): `{x}` is the input.
    pub function: Option<String>,
}

impl TorchOp {
    pub fn module(call: Call) -> TorchOp {
        TorchOp { module: Some(call), apply: "{m}({x})", function: None }
    }

    /// A weight-free op: a module when it has a name, a function in `forward` otherwise.
    pub fn both(call: Call, function: impl Into<String>) -> TorchOp {
        TorchOp { module: Some(call), apply: "{m}({x})", function: Some(function.into()) }
    }

    pub fn function(function: impl Into<String>) -> TorchOp {
        TorchOp { module: None, apply: "{m}({x})", function: Some(function.into()) }
    }

    /// A module applied as `module(x)`, so that it can stand in an `nn.Sequential`.
    pub fn sequential(&self) -> bool {
        self.module.is_some() && self.apply == "{m}({x})"
    }
}

/// A float as Python writes it.
pub fn float(value: f64) -> String {
    format!("{value:?}")
}
