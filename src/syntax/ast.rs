//! The AST: what the user wrote, with a span on every node. No meaning yet.

use crate::source::Span;

#[derive(Clone, Debug)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct SourceFile {
    pub imports: Vec<Import>,
    pub defs: Vec<Def>,
}

#[derive(Clone, Debug)]
pub struct Import {
    pub path: String,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Block,
    Network,
}

/// `block name(params) { body }` or `network name(params) { body }`.
#[derive(Clone, Debug)]
pub struct Def {
    pub kind: DefKind,
    pub name: Ident,
    pub params: Vec<ParamDecl>,
    pub body: Body,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: Ident,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Body {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    /// `input image(3, 224, 224)`
    Input(Call),
    /// `let name = expr` or `let name = { ... }`
    Let {
        name: Ident,
        value: Expr,
        span: Span,
    },
    Insert(Insert),
    /// `point attention`
    Point(Ident),
    /// `allow(bias_before_norm, W0002)`
    Allow {
        lints: Vec<Ident>,
        span: Span,
    },
    Layer(LayerStmt),
}

/// `insert cbam(reduction: 16) at bottleneck.attention as se in layer3, layer4`
#[derive(Clone, Debug)]
pub struct Insert {
    pub module: Call,
    pub block: Ident,
    pub point: Ident,
    pub label: Option<Ident>,
    pub within: Vec<Ident>,
    pub span: Span,
}

/// `label: layer`; the label is optional.
#[derive(Clone, Debug)]
pub struct LayerStmt {
    pub label: Option<Ident>,
    pub layer: LayerExpr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum LayerExpr {
    /// `{ ... }`: a sequence of layers.
    Seq(Body),
    /// `conv(64, kernel: 3)` or `residual(shortcut: downsample) { ... }`.
    Call { call: Call, body: Option<Body> },
}

#[derive(Clone, Debug)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    /// Whether parentheses were written (`f` vs `f()`).
    pub has_parens: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    /// An integer literal; `None` when it does not fit in 64 bits (reported by the parser).
    Int(Option<i64>),
    /// A float literal; `None` when it is not finite (reported by the parser).
    Float(Option<f64>),
    Bool(bool),
    Str(String),
    /// `in.channels`
    InRef(Ident),
    /// A name, a function call, or a module value (`downsample`, `se(reduction: 8)`).
    Call(Call),
    /// `{ ... }` used as a value (a module literal).
    Seq(Body),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}
