//! A network: its parameters, its input, its `insert` rules, and the checks that need
//! the whole network (ImageNet stem on a small input, inserts that matched nothing).

use super::bind::{ParamTy, TYPE_NAMES};
use super::load::DefEntry;
use super::value::{Const, Env, ModuleKind, ModuleValue};
use super::{Elaborator, Scope};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::{Model, Node, NodeKind, Shape};
use crate::ops::Op;
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{Body, Call, Def, Ident, Insert, LayerExpr, Stmt};
use std::rc::Rc;

/// `insert MODULE at BLOCK.POINT [as LABEL] [in PATH, ...]`, evaluated.
pub(super) struct InsertRule {
    module: Rc<ModuleValue>,
    block: String,
    point: String,
    label: Ident,
    within: Vec<Ident>,
    span: Span,
    used: bool,
}

impl Elaborator<'_> {
    pub(super) fn network(&mut self, entry: &Rc<DefEntry>) -> Option<Model> {
        let def = &entry.def;
        self.check_definitions();
        // Counted after the definition checks: an error in some block's parameter list
        // must not silence this network's own diagnostics below.
        let errors_before = self.error_count();
        let env = Env::root(None);
        // A parameter without a value stays poisoned: its uses are silent, its own error
        // is the one to fix, and the rest of the network is still checked.
        for param in &def.params {
            env.poison(&param.name.text);
        }
        for (i, param) in def.params.iter().enumerate() {
            let given = self.settings.iter().find(|s| s.name == param.name.text);
            if given.is_some_and(|s| s.value.is_none()) {
                continue; // reported when parsed
            }
            // A `--set` value may use the parameters before this one, which have values.
            if let Some(value) = given.and_then(|s| s.value.as_ref()) {
                let unset: Vec<Ident> = names_in(value)
                    .into_iter()
                    .filter(|used| def.params[i..].iter().any(|p| p.name.text == used.text))
                    .cloned()
                    .collect();
                for used in &unset {
                    self.error(
                        Diagnostic::new(
                            Code::UnknownName,
                            format!("the value of `{}` uses `{}`, which has no value yet", param.name.text, used.text),
                            used.span,
                            "no value yet",
                        )
                        .with_help(format!(
                            "a `--set` value may use the parameters declared before `{}`; write a number or an expression",
                            param.name.text
                        )),
                    );
                }
                if !unset.is_empty() {
                    continue;
                }
            }
            match given.and_then(|s| s.value.as_ref()).or(param.default.as_ref()) {
                Some(default) => {
                    if let Some(value) = self.eval(default, &env) {
                        let ty = ParamTy::from_decl(&param.ty.text).unwrap_or(ParamTy::Int);
                        if let Some(value) = self.coerce(&value, ty, &param.name.text, default.span) {
                            env.define(&param.name.text, value);
                        }
                    }
                }
                None => self.error(
                    Diagnostic::new(
                        Code::MissingArgument,
                        format!("network parameter `{}` needs a default value", param.name.text),
                        param.span,
                        "no default",
                    )
                    .with_help(format!("write `{}: {} = ...`", param.name.text, param.ty.text)),
                ),
            }
        }
        let input = self.network_input(def, &env);
        self.model_input = input;
        let env = Env::child(&env, input);
        self.collect_inserts(&def.body, &env);
        let mut scope = Scope::new(String::new());
        let (nodes, output) = self.sequence(&def.body, &env, input, &mut scope, true);
        self.check_insert_stages(&scope);
        self.unused_inserts();
        if let Some(input) = input {
            self.tiny_input_stem(&nodes, input);
        }
        if self.error_count() > errors_before {
            // What was built stays visible to tools (hover in a file with errors elsewhere).
            self.built = nodes;
            return None;
        }
        Some(Model { name: def.name.text.clone(), input: input?, output: output?, nodes, span: def.name.span })
    }

    /// Parameter types that do not exist, reported once per definition.
    fn check_definitions(&mut self) {
        let mut defs: Vec<&Rc<DefEntry>> = self.library.defs.values().collect();
        defs.sort_by_key(|e| (e.file, e.def.span.start));
        let mut found = Vec::new();
        for entry in defs {
            for param in &entry.def.params {
                if ParamTy::from_decl(&param.ty.text).is_none() {
                    let mut d = Diagnostic::new(
                        Code::UnknownName,
                        format!("unknown parameter type `{}`", param.ty.text),
                        param.ty.span,
                        "not a type",
                    )
                    .with_note(format!("the types are {}", TYPE_NAMES.join(", ")));
                    if let Some(help) = suggest::did_you_mean(&param.ty.text, TYPE_NAMES.iter().copied()) {
                        d = d.with_help(help);
                    }
                    found.push(d);
                }
            }
            for (i, param) in entry.def.params.iter().enumerate() {
                let Some(default) = &param.default else { continue };
                for used in names_in(default) {
                    if used.text == param.name.text && entry.def.kind == crate::syntax::ast::DefKind::Network {
                        // A block's would be an unknown name; a network's parameters are
                        // all reserved before any has a value, so it must be said here.
                        found.push(Diagnostic::new(
                            Code::UnknownName,
                            format!("the default of `{}` uses `{}` itself", param.name.text, used.text),
                            used.span,
                            "no value yet",
                        ));
                        continue;
                    }
                    if let Some(later) = entry.def.params[i + 1..].iter().find(|p| p.name.text == used.text) {
                        found.push(
                            Diagnostic::new(
                                Code::UnknownName,
                                format!(
                                    "the default of `{}` uses `{}`, which is declared after it",
                                    param.name.text, used.text
                                ),
                                used.span,
                                "not yet defined here",
                            )
                            .with_secondary(later.name.span, "declared here")
                            .with_help(format!(
                                "defaults may only use earlier parameters: move `{}` before `{}`",
                                used.text, param.name.text
                            )),
                        );
                    }
                }
                if entry.def.kind == crate::syntax::ast::DefKind::Network && uses_in(default) {
                    found.push(
                        Diagnostic::new(
                            Code::Misplaced,
                            "`in` is not available in a network's parameters",
                            default.span,
                            "uses `in`",
                        )
                        .with_help(
                            "`in` is the input of a block; a network's parameters are set before any input exists",
                        ),
                    );
                }
            }
            let mut seen: Vec<&Ident> = Vec::new();
            for param in &entry.def.params {
                if let Some(first) = seen.iter().find(|p| p.text == param.name.text) {
                    found.push(
                        Diagnostic::new(
                            Code::DuplicateLabel,
                            format!("parameter `{}` is declared twice", param.name.text),
                            param.name.span,
                            "declared again",
                        )
                        .with_secondary(first.span, "first declared here"),
                    );
                }
                seen.push(&param.name);
            }
        }
        for d in found {
            self.error(d);
        }
    }

    fn network_input(&mut self, def: &Def, env: &Rc<Env>) -> Option<Shape> {
        let declared: Vec<&Call> =
            def.body.stmts.iter().filter_map(|s| if let Stmt::Input(c) = s { Some(c) } else { None }).collect();
        if let [first, second, ..] = declared.as_slice() {
            self.error(
                Diagnostic::new(Code::DuplicateLabel, "the input is declared twice", second.span, "second `input`")
                    .with_secondary(first.span, "first `input`"),
            );
        }
        let parsed = declared.first().and_then(|call| self.input_shape(call, env));
        if let Some(overridden) = self.options.input {
            if let (Some(declared_shape), Some(call)) = (parsed, declared.first())
                && declared_shape.kind() != overridden.kind()
            {
                self.error(
                    Diagnostic::new(
                        Code::WrongInputKind,
                        format!("`--input` gives {overridden}, but the network takes {}", declared_shape.kind()),
                        call.span,
                        format!("declared {declared_shape}"),
                    )
                    .with_help(match declared_shape {
                        Shape::Image { .. } => "write `--input CxHxW`, e.g. 3x32x32".to_string(),
                        Shape::Tokens { .. } => "write `--input NxD`, e.g. 197x768".to_string(),
                        Shape::Vector { .. } => "write `--input D`, e.g. 784".to_string(),
                    }),
                );
            }
            return Some(overridden);
        }
        if declared.is_empty() {
            self.error(
                Diagnostic::new(
                    Code::MissingInput,
                    format!("network `{}` does not say what it takes as input", def.name.text),
                    def.name.span,
                    "no `input` declaration",
                )
                .with_help("add `input image(3, 224, 224)` as the network's first line, or pass `--input 3x224x224`"),
            );
        }
        parsed
    }

    fn input_shape(&mut self, call: &Call, env: &Rc<Env>) -> Option<Shape> {
        let arity = match call.name.text.as_str() {
            "image" => 3,
            "tokens" => 2,
            "vector" => 1,
            other => {
                let mut d = Diagnostic::new(
                    Code::WrongInputKind,
                    format!("`{other}` is not an input kind"),
                    call.name.span,
                    "unknown input kind",
                )
                .with_note("inputs are `image(C, H, W)`, `tokens(N, D)` or `vector(D)`");
                if let Some(help) = suggest::did_you_mean(other, ["image", "tokens", "vector"]) {
                    d = d.with_help(help);
                }
                self.error(d);
                return None;
            }
        };
        let args = self.eval_args(&call.args, env)?;
        if args.len() != arity || args.iter().any(|a| a.name.is_some()) {
            self.error(
                Diagnostic::new(
                    Code::WrongInputKind,
                    format!("`{}` takes {arity} sizes, written in order", call.name.text),
                    call.span,
                    format!("{} given", args.len()),
                )
                .with_help("write `image(3, 224, 224)`, `tokens(197, 768)` or `vector(784)`"),
            );
            return None;
        }
        let mut sizes = Vec::new();
        for arg in &args {
            match arg.value {
                Const::Int(v) if v >= 1 => sizes.push(v as u64),
                Const::Int(v) => {
                    self.error(Diagnostic::new(
                        Code::WrongInputKind,
                        format!("input sizes must be positive, but this is {v}"),
                        arg.span,
                        "not positive",
                    ));
                    return None;
                }
                ref other => return self.type_error(arg.span, "an integer size", &other.clone()),
            }
        }
        let shape = match sizes.as_slice() {
            [c, h, w] => Shape::Image { c: *c, h: *h, w: *w },
            [n, d] => Shape::Tokens { n: *n, d: *d },
            [d] => Shape::Vector { d: *d },
            _ => return None,
        };
        if shape.elements().is_none() {
            self.error(Diagnostic::new(
                Code::Overflow,
                "the input has more elements than fit in 64 bits",
                call.span,
                "too large",
            ));
            return None;
        }
        Some(shape)
    }

    fn collect_inserts(&mut self, body: &Body, env: &Rc<Env>) {
        let inserts: Vec<&Insert> =
            body.stmts.iter().filter_map(|s| if let Stmt::Insert(i) = s { Some(i) } else { None }).collect();
        for insert in inserts {
            let module = if let Some(callee) = self.callee(&insert.module.name.text) {
                self.eval_args(&insert.module.args, env).map(|args| {
                    Rc::new(ModuleValue {
                        kind: ModuleKind::Call { name: insert.module.name.clone(), callee, args, body: None },
                        span: insert.module.span,
                    })
                })
            } else {
                self.unknown_callee(&insert.module.name);
                None
            };
            let Some(target) = self.library.defs.get(&insert.block.text).cloned() else {
                let blocks: Vec<&str> = self.library.defs.keys().map(String::as_str).collect();
                let mut d = Diagnostic::new(
                    Code::UnknownName,
                    format!("unknown block `{}`", insert.block.text),
                    insert.block.span,
                    "no such block",
                );
                if let Some(help) = suggest::did_you_mean(&insert.block.text, blocks) {
                    d = d.with_help(help);
                }
                self.error(d);
                continue;
            };
            let points = points_in(&target.def.body);
            if !points.iter().any(|p| p.text == insert.point.text) {
                let names: Vec<&str> = points.iter().map(|p| p.text.as_str()).collect();
                let mut d = Diagnostic::new(
                    Code::UnknownPoint,
                    format!("block `{}` has no insertion point `{}`", insert.block.text, insert.point.text),
                    insert.point.span,
                    "unknown point",
                )
                .with_secondary(target.def.name.span, format!("`{}` is defined here", insert.block.text));
                d = match (suggest::did_you_mean(&insert.point.text, names.iter().copied()), names.is_empty()) {
                    (Some(help), _) => d.with_help(help),
                    (None, true) => d.with_help(format!(
                        "`{}` declares no points; add `point NAME` where modules may go",
                        insert.block.text
                    )),
                    (None, false) => d.with_help(format!("its points are: {}", names.join(", "))),
                };
                self.error(d);
                continue;
            }
            let Some(module) = module else { continue };
            self.inserts.push(InsertRule {
                module,
                block: insert.block.text.clone(),
                point: insert.point.text.clone(),
                label: insert.label.clone().unwrap_or_else(|| insert.point.clone()),
                within: insert.within.clone(),
                span: insert.span,
                used: false,
            });
        }
    }

    /// `point NAME` inside a block: builds whatever the network inserts here.
    pub(super) fn point(
        &mut self,
        point: &Ident,
        input: Option<Shape>,
        scope: &mut Scope,
    ) -> (Vec<Node>, Option<Shape>) {
        let Some(frame) = self.frames.last() else {
            self.misplaced(point.span, "`point` belongs inside a `block`");
            return (Vec::new(), input);
        };
        let (block, path) = (frame.block.clone(), frame.path.clone());
        let mut nodes = Vec::new();
        let mut current = input;
        for index in 0..self.inserts.len() {
            let rule = &self.inserts[index];
            let inside = rule.within.is_empty()
                || rule.within.iter().any(|w| path == w.text || path.starts_with(&format!("{}.", w.text)));
            if rule.block != block || rule.point != point.text || !inside {
                continue;
            }
            self.inserts[index].used = true;
            let (module, label) = (self.inserts[index].module.clone(), self.inserts[index].label.clone());
            scope.unpositioned = true;
            self.insert_sites.push(self.inserts[index].span);
            let outcome = self.instantiate(&module, current, scope, Some(&label), point.span);
            self.insert_sites.pop();
            nodes.extend(outcome.node);
            current = outcome.output;
        }
        (nodes, current)
    }

    /// `insert ... in layr2`: every stage named must be a layer of the network.
    fn check_insert_stages(&mut self, scope: &Scope) {
        let mut names: Vec<&str> =
            scope.used.keys().map(String::as_str).filter(|n| !n.chars().all(|c| c.is_ascii_digit())).collect();
        names.sort();
        let mut found = Vec::new();
        let mut misdirected = Vec::new();
        for (index, rule) in self.inserts.iter().enumerate() {
            for within in &rule.within {
                let top = within.text.split('.').next().unwrap_or("");
                if scope.used.contains_key(top) {
                    continue;
                }
                misdirected.push(index);
                let mut d = Diagnostic::new(
                    Code::UnknownName,
                    format!("the network has no layer `{top}`"),
                    within.span,
                    "not a layer of this network",
                )
                .with_note(format!("its top-level layers are: {}", names.join(", ")));
                if let Some(help) = suggest::did_you_mean(top, names.iter().copied()) {
                    d = d.with_help(help);
                }
                found.push(d);
            }
        }
        for d in found {
            self.error(d);
        }
        // An insert aimed at a layer that does not exist has its error; that it matched
        // nothing is not a second mistake.
        for index in misdirected {
            self.inserts[index].used = true;
        }
    }

    fn unused_inserts(&mut self) {
        let unused: Vec<(Span, String, String, Vec<String>)> = self
            .inserts
            .iter()
            .filter(|r| !r.used)
            .map(|r| (r.span, r.block.clone(), r.point.clone(), r.within.iter().map(|w| w.text.clone()).collect()))
            .collect();
        for (span, block, point, within) in unused {
            let where_ = if within.is_empty() { String::new() } else { format!(" in {}", within.join(", ")) };
            // The blocks this network does use that have the same point are what was meant.
            let with_point: Vec<String> = self
                .used_blocks
                .iter()
                .filter(|b| {
                    **b != block
                        && self
                            .library
                            .defs
                            .get(*b)
                            .is_some_and(|e| points_in(&e.def.body).iter().any(|p| p.text == point))
                })
                .map(|b| format!("`{b}`"))
                .collect();
            let used = self.used_blocks.iter().filter(|b| **b != block).map(|b| format!("`{b}`")).collect::<Vec<_>>();
            let help = match (with_point.first(), used.is_empty()) {
                (Some(first), _) => format!(
                    "the network uses {} with a point `{point}`: write `insert ... at {}.{point}`",
                    with_point.join(", "),
                    first.trim_matches('`')
                ),
                (None, false) => format!(
                    "the network uses no `{block}`{where_}; its blocks are {}, none with a point `{point}`",
                    used.join(", ")
                ),
                (None, true) => format!("the network uses no blocks{where_}; remove the insert"),
            };
            self.lint(
                Diagnostic::new(
                    Code::UnusedInsert,
                    format!("`insert ... at {block}.{point}` matched nothing"),
                    span,
                    format!("no `{block}` block{where_}"),
                )
                .with_help(help),
            );
        }
    }

    /// A 7×7 stride-2 first convolution on an input of 64 pixels or less.
    fn tiny_input_stem(&mut self, nodes: &[Node], input: Shape) {
        let Some((h, w)) = input.spatial() else { return };
        if h.min(w) > 64 {
            return;
        }
        let mut first_conv: Option<&Node> = None;
        for node in nodes {
            node.walk(0, &mut |n, _| {
                if first_conv.is_none()
                    && let NodeKind::Op { op: Op::Conv(_), .. } = n.kind
                {
                    first_conv = Some(n);
                }
            });
        }
        let Some(stem) = first_conv else { return };
        let NodeKind::Op { op: Op::Conv(conv), .. } = &stem.kind else { return };
        if conv.window.kernel >= 7 && conv.window.stride >= 2 {
            let (oh, ow) = stem.output.spatial().unwrap_or((0, 0));
            self.lint(
                Diagnostic::new(
                    Code::TinyInputStem,
                    format!("an ImageNet stem on a {h}×{w} input"),
                    stem.span,
                    format!("a {}×{} stride-{} stem leaves {oh}×{ow}", conv.window.kernel, conv.window.kernel, conv.window.stride),
                )
                .with_help("for small images use a 3×3 stride-1 stem without max pooling (as the CIFAR ResNets do), or a larger `--input`"),
            );
        }
    }
}

/// Bare names an expression reads (`planes` in `planes * 4`).
pub(super) fn names_in(expr: &crate::syntax::ast::Expr) -> Vec<&Ident> {
    use crate::syntax::ast::ExprKind;
    match &expr.kind {
        ExprKind::Call(call) if !call.has_parens => vec![&call.name],
        ExprKind::Call(call) => call.args.iter().flat_map(|a| names_in(&a.value)).collect(),
        ExprKind::Neg(inner) | ExprKind::Not(inner) => names_in(inner),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => names_in(a).into_iter().chain(names_in(b)).collect(),
        ExprKind::List(items) => items.iter().flat_map(names_in).collect(),
        ExprKind::If(c, a, b) => names_in(c).into_iter().chain(names_in(a)).chain(names_in(b)).collect(),
        _ => Vec::new(),
    }
}

fn uses_in(expr: &crate::syntax::ast::Expr) -> bool {
    use crate::syntax::ast::ExprKind;
    match &expr.kind {
        ExprKind::InRef(_) => true,
        ExprKind::Call(call) => call.args.iter().any(|a| uses_in(&a.value)),
        ExprKind::Neg(inner) | ExprKind::Not(inner) => uses_in(inner),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => uses_in(a) || uses_in(b),
        ExprKind::List(items) => items.iter().any(uses_in),
        ExprKind::If(c, a, b) => uses_in(c) || uses_in(a) || uses_in(b),
        _ => false,
    }
}

/// Every `point` a block declares, at any depth of its body.
fn points_in(body: &Body) -> Vec<&Ident> {
    let mut points = Vec::new();
    for stmt in &body.stmts {
        match stmt {
            Stmt::Point(p) => points.push(p),
            Stmt::Layer(layer) => match &layer.layer {
                LayerExpr::Seq(inner) | LayerExpr::Call { body: Some(inner), .. } => points.extend(points_in(inner)),
                LayerExpr::Call { body: None, .. } => {}
            },
            Stmt::For(for_stmt) => points.extend(points_in(&for_stmt.body)),
            Stmt::If(if_stmt) => {
                points.extend(points_in(&if_stmt.then));
                points.extend(if_stmt.otherwise.iter().flat_map(points_in));
            }
            _ => {}
        }
    }
    points
}
