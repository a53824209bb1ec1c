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
    /// `for v in cfg { ... }` / `for i, v in cfg { ... }`: the body once per item,
    /// spliced into the enclosing sequence.
    For(ForStmt),
    /// `if cond { ... } else { ... }`, spliced; `else if` is an `else` body holding one
    /// `if`.
    If(IfStmt),
    /// `assert cond, "message"`
    Assert {
        condition: Expr,
        message: Expr,
        span: Span,
    },
}

impl Stmt {
    /// Where the whole statement is.
    pub fn span(&self) -> Span {
        match self {
            Stmt::Input(call) => call.span,
            Stmt::Insert(insert) => insert.span,
            Stmt::Point(point) => point.span,
            Stmt::Layer(layer) => layer.span,
            Stmt::For(for_stmt) => for_stmt.span,
            Stmt::If(if_stmt) => if_stmt.span,
            Stmt::Let { span, .. } | Stmt::Allow { span, .. } | Stmt::Assert { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ForStmt {
    /// The index variable of `for i, v in ...`.
    pub index: Option<Ident>,
    pub item: Ident,
    pub over: Expr,
    pub body: Body,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct IfStmt {
    pub condition: Expr,
    pub then: Body,
    pub otherwise: Option<Body>,
    pub span: Span,
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
    pub label: Option<Label>,
    pub layer: LayerExpr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Label {
    /// `conv1:`
    Name(Ident),
    /// `layer{i + 1}:`, computed where the statement is built.
    Template(Template),
}

impl Label {
    pub fn span(&self) -> Span {
        match self {
            Label::Name(ident) => ident.span,
            Label::Template(template) => template.span,
        }
    }

    /// The label as written.
    pub fn text(&self) -> &str {
        match self {
            Label::Name(ident) => &ident.text,
            Label::Template(template) => &template.text,
        }
    }

    /// The label when it is a plain name.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            Label::Name(ident) => Some(ident),
            Label::Template(_) => None,
        }
    }
}

/// A label with `{expr}` parts.
#[derive(Clone, Debug)]
pub struct Template {
    /// As written (`layer{i + 1}`).
    pub text: String,
    pub parts: Vec<TemplatePart>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TemplatePart {
    Text(String),
    Expr(Expr),
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
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `x in list`
    In,
    /// `x not in list`
    NotIn,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
        }
    }

    /// `==`, `<`, `in`, ...: the operators that chain (`0 < a < 5`).
    pub fn is_comparison(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::In | BinOp::NotIn)
    }

    /// Python's: `or` < `and` < `not` < comparisons < `+ -` < `* / %`.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::In | BinOp::NotIn => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
        }
    }
}

/// `not` binds looser than comparisons (`not a == b` is `not (a == b)`), as in Python.
pub const NOT_PRECEDENCE: u8 = 3;

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
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `[64, 64, "M"]`
    List(Vec<Expr>),
    /// `cfg[i]`
    Index(Box<Expr>, Box<Expr>),
    /// `if c { a } else { b }`
    If(Box<Expr>, Box<Expr>, Box<Expr>),
}
