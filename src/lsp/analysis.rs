//! One open document, checked: the compiler's result for its current text, and the
//! questions an editor asks about it (what is here, where is it defined, what can be
//! written here), answered from the IR and the checker's steps, never re-derived.

use crate::diagnostics::Diagnostic;
use crate::elaborate::{self, Compilation, DefEntry, Options};
use crate::ir::{Model, Node, NodeKind, Shape, Step};
use crate::ops::{self, Op};
use crate::source::{FileId, Sources, Span};
use crate::syntax::ast::{Body, Def, DefKind, ExprKind, LayerExpr, Stmt};
use std::rc::Rc;

pub struct Analysis {
    pub sources: Sources,
    pub result: Compilation,
    pub entry: FileId,
}

/// A layer statement as checked: every instance of it (one, or one per copy of the
/// block it is in), each with its path, what it is, its shapes and its cost.
pub struct Instance {
    pub path: String,
    pub what: String,
    pub input: Shape,
    pub output: Option<Shape>,
    pub params: u128,
    pub macs: u128,
    /// The mistake that stopped it being built (its shape is then the one checking went on with).
    pub error: Option<crate::diagnostics::Code>,
}

impl Analysis {
    /// Checks `text` as the file `path` (imports are read relative to it).
    pub fn new(path: &str, text: &str) -> Analysis {
        let mut sources = Sources::new();
        let result = elaborate::compile(&mut sources, path, text, &Options::default());
        let entry = sources.find(path).unwrap_or(0);
        Analysis { sources, result, entry }
    }

    pub fn text(&self) -> &str {
        self.sources.text(self.entry)
    }

    /// Whether the file parsed (it may still have other mistakes).
    pub fn parses(&self) -> bool {
        !self.result.diagnostics.iter().any(|d| d.code == crate::diagnostics::Code::Syntax)
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.result.diagnostics
    }

    /// The definition called `name` that the file sees.
    pub fn definition(&self, name: &str) -> Option<&Rc<DefEntry>> {
        self.result.definitions.iter().find(|e| e.def.name.text == name)
    }

    pub fn model(&self, network: &str) -> Option<&Model> {
        self.result.models.iter().find(|m| m.name == network)
    }

    /// The top-level nodes every network built (in a network with errors, the parts that
    /// did build).
    fn built(&self) -> impl Iterator<Item = &Node> {
        let models = self.result.models.iter().flat_map(|m| m.nodes.iter());
        models.chain(self.result.steps.iter().flat_map(|s| s.built.iter()))
    }

    /// The statements checked at the innermost statement span holding `offset` in the
    /// entry file: built nodes when the file checked, the checker's steps otherwise.
    pub fn instances_at(&self, offset: usize) -> Option<(Span, Vec<Instance>)> {
        let inside =
            |span: Span| span.file == self.entry && span.start <= offset && offset < span.end.max(span.start + 1);
        let mut spans: Vec<Span> = Vec::new();
        for node in self.built() {
            node.walk(0, &mut |node, _| {
                if inside(node.span) {
                    spans.push(node.span);
                }
            });
        }
        for steps in &self.result.steps {
            spans.extend(steps.steps.iter().map(|s| s.span).filter(|&s| inside(s)));
        }
        let span = spans.into_iter().min_by_key(|s| s.end - s.start)?;
        let instances = self.instances(span);
        (!instances.is_empty()).then_some((span, instances))
    }

    /// Every instance of the statement at `span`.
    pub fn instances(&self, span: Span) -> Vec<Instance> {
        let mut nodes: Vec<&Node> = Vec::new();
        for node in self.built() {
            node.walk(0, &mut |node, _| {
                if node.span == span {
                    nodes.push(node);
                }
            });
        }
        // A stage's copies share its span: the outermost node stands for them.
        let mut outermost: Vec<&Node> = Vec::new();
        for node in nodes {
            let inside_kept = outermost.iter().any(|kept| {
                node.path.starts_with(&format!("{}.", kept.path))
                    || (node.path == kept.path && !std::ptr::eq(node, *kept))
            });
            if !inside_kept {
                outermost.push(node);
            }
        }
        if !outermost.is_empty() {
            return outermost.into_iter().map(node_instance).collect();
        }
        let steps = self.result.steps.iter().flat_map(|s| s.steps.iter()).filter(|s| s.span == span);
        steps.map(step_instance).collect()
    }

    /// Every layer statement of the entry file with the shapes it gives: for inlay hints.
    pub fn statement_outputs(&self) -> Vec<(Span, Vec<Option<Shape>>)> {
        let mut spans: Vec<Span> = Vec::new();
        for node in self.built() {
            node.walk(0, &mut |node, _| {
                if node.span.file == self.entry
                    && !matches!(
                        node.kind,
                        NodeKind::Residual { .. } | NodeKind::Scale { .. } | NodeKind::Parallel { .. }
                    )
                {
                    spans.push(node.span);
                }
            });
        }
        for steps in &self.result.steps {
            spans.extend(steps.steps.iter().map(|s| s.span).filter(|s| s.file == self.entry));
        }
        spans.sort_by_key(|s| (s.start, s.end));
        spans.dedup();
        spans.into_iter().map(|span| (span, self.instances(span).iter().map(|i| i.output).collect())).collect()
    }

    /// The definitions written in the document itself, in order (from the check, not
    /// parsed again).
    pub fn own_definitions(&self) -> impl Iterator<Item = &Def> {
        self.result.definitions.iter().filter(|e| e.file == self.entry).map(|e| &e.def)
    }

    /// The definition (block or network) of the entry file that holds `offset`.
    pub fn enclosing_def(&self, offset: usize) -> Option<&Def> {
        self.own_definitions().find(|d| d.span.start <= offset && offset <= d.span.end)
    }
}

fn node_instance(node: &Node) -> Instance {
    let mut params = 0u128;
    let mut macs = 0u128;
    node.walk(0, &mut |n, _| {
        if let NodeKind::Op { op, .. } = &n.kind {
            macs = macs.saturating_add(op.rule().cost(&n.input, &n.output).core);
            if !n.shared {
                params = params.saturating_add(trainable(op, &n.input));
            }
        }
    });
    Instance {
        path: node.path.clone(),
        what: node.kind_name(),
        input: node.input,
        output: Some(node.output),
        params,
        macs,
        error: None,
    }
}

fn step_instance(step: &Step) -> Instance {
    let built = step.op.as_ref().filter(|_| step.error.is_none());
    let macs = match (built, step.output) {
        (Some(op), Some(output)) => op.rule().cost(&step.input, &output).core,
        _ => 0,
    };
    let params = built.map_or(0, |op| trainable(op, &step.input));
    Instance {
        path: step.path.clone(),
        what: step.name.clone(),
        input: step.input,
        output: step.output,
        params,
        macs,
        error: step.error,
    }
}

fn trainable(op: &Op, input: &Shape) -> u128 {
    op.rule().tensors(input).iter().filter(|t| t.trainable).fold(0u128, |s, t| s.saturating_add(ops::product(&t.shape)))
}

/// The statements of a body and of the bodies inside it, depth first.
pub fn statements(body: &Body, visit: &mut dyn FnMut(&Stmt)) {
    for stmt in &body.stmts {
        visit(stmt);
        match stmt {
            Stmt::Layer(layer) => match &layer.layer {
                LayerExpr::Seq(inner) | LayerExpr::Call { body: Some(inner), .. } => statements(inner, visit),
                LayerExpr::Call { call, body: None } => call_bodies(call, visit),
            },
            Stmt::Let { value, .. } => expr_bodies(value, visit),
            Stmt::For(for_stmt) => {
                expr_bodies(&for_stmt.over, visit);
                statements(&for_stmt.body, visit);
            }
            Stmt::If(if_stmt) => {
                expr_bodies(&if_stmt.condition, visit);
                statements(&if_stmt.then, visit);
                if let Some(otherwise) = &if_stmt.otherwise {
                    statements(otherwise, visit);
                }
            }
            _ => {}
        }
    }
}

fn call_bodies(call: &crate::syntax::ast::Call, visit: &mut dyn FnMut(&Stmt)) {
    for arg in &call.args {
        expr_bodies(&arg.value, visit);
    }
}

fn expr_bodies(expr: &crate::syntax::ast::Expr, visit: &mut dyn FnMut(&Stmt)) {
    match &expr.kind {
        ExprKind::Seq(body) => statements(body, visit),
        ExprKind::Call(call) => call_bodies(call, visit),
        ExprKind::Neg(inner) | ExprKind::Not(inner) => expr_bodies(inner, visit),
        ExprKind::Binary(_, left, right) | ExprKind::Index(left, right) => {
            expr_bodies(left, visit);
            expr_bodies(right, visit);
        }
        ExprKind::List(items) => items.iter().for_each(|item| expr_bodies(item, visit)),
        ExprKind::If(condition, then, otherwise) => {
            expr_bodies(condition, visit);
            expr_bodies(then, visit);
            expr_bodies(otherwise, visit);
        }
        _ => {}
    }
}

/// The names a def calls (layers, blocks, module values), with where.
pub fn called_names(def: &Def, visit: &mut dyn FnMut(&crate::syntax::ast::Ident)) {
    fn in_expr(expr: &crate::syntax::ast::Expr, visit: &mut dyn FnMut(&crate::syntax::ast::Ident)) {
        match &expr.kind {
            ExprKind::Call(call) => {
                visit(&call.name);
                for arg in &call.args {
                    in_expr(&arg.value, visit);
                }
            }
            ExprKind::Neg(inner) | ExprKind::Not(inner) => in_expr(inner, visit),
            ExprKind::Binary(_, left, right) | ExprKind::Index(left, right) => {
                in_expr(left, visit);
                in_expr(right, visit);
            }
            ExprKind::List(items) => items.iter().for_each(|item| in_expr(item, visit)),
            ExprKind::If(condition, then, otherwise) => {
                in_expr(condition, visit);
                in_expr(then, visit);
                in_expr(otherwise, visit);
            }
            _ => {}
        }
    }
    for param in &def.params {
        if let Some(default) = &param.default {
            in_expr(default, visit);
        }
    }
    statements(&def.body, &mut |stmt| match stmt {
        Stmt::Layer(layer) => {
            if let LayerExpr::Call { call, .. } = &layer.layer {
                visit(&call.name);
                for arg in &call.args {
                    in_expr(&arg.value, visit);
                }
            }
        }
        Stmt::Let { value, .. } => in_expr(value, visit),
        Stmt::Insert(insert) => {
            visit(&insert.module.name);
            for arg in &insert.module.args {
                in_expr(&arg.value, visit);
            }
            visit(&insert.block);
        }
        Stmt::Input(call) => {
            for arg in &call.args {
                in_expr(&arg.value, visit);
            }
        }
        Stmt::For(for_stmt) => in_expr(&for_stmt.over, visit),
        Stmt::If(if_stmt) => in_expr(&if_stmt.condition, visit),
        Stmt::Assert { condition, message, .. } => {
            in_expr(condition, visit);
            in_expr(message, visit);
        }
        _ => {}
    });
}

/// The insertion points a block declares.
pub fn points(def: &Def) -> Vec<crate::syntax::ast::Ident> {
    let mut found = Vec::new();
    statements(&def.body, &mut |stmt| {
        if let Stmt::Point(point) = stmt {
            found.push(point.clone());
        }
    });
    found
}

/// `block name(a: int = 1, ...)` as written (defaults in their source text).
pub fn signature(def: &Def, sources: &Sources, file: FileId) -> String {
    let text = sources.text(file);
    let params: Vec<String> = def
        .params
        .iter()
        .map(|p| match &p.default {
            Some(default) => {
                format!("{}: {} = {}", p.name.text, p.ty.text, &text[default.span.start..default.span.end])
            }
            None => format!("{}: {}", p.name.text, p.ty.text),
        })
        .collect();
    let keyword = if def.kind == DefKind::Block { "block" } else { "network" };
    format!("{keyword} {}({})", def.name.text, params.join(", "))
}

/// The comment lines right above a definition, without their `#`.
pub fn doc_comment(def: &Def, sources: &Sources, file: FileId) -> String {
    let text = sources.text(file);
    let mut lines: Vec<&str> = Vec::new();
    for line in text[..def.span.start].lines().rev() {
        let line = line.trim();
        match line.strip_prefix('#') {
            Some(comment) => lines.push(comment.strip_prefix(' ').unwrap_or(comment)),
            None => break,
        }
    }
    lines.reverse();
    lines.join("\n")
}
