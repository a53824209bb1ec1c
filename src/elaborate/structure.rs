//! Structural forms: `residual`, `scale`, `parallel` (which wrap a body and are
//! transparent for naming: their layers are named in the enclosing block, as in
//! torchvision), and `repeat` / `stage` (which make numbered copies).

use super::bind::{DefaultSrc, ParamSig, ParamTy};
use super::value::{ArgValue, Const, Env, ModuleKind, ModuleValue};
use super::{Callee, Elaborator, MAX_NODES, Outcome, Scope};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::{Merge, Node, NodeKind, Shape, Shortcut, join_path};
use crate::source::Span;
use crate::syntax::ast::{Body, Ident, Stmt};
use std::rc::Rc;

/// The structural forms, as a `.arch` file calls them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Structural {
    Residual,
    Scale,
    Parallel,
    Repeat,
    Stage,
}

impl Structural {
    pub(super) const ALL: [Structural; 5] =
        [Structural::Residual, Structural::Scale, Structural::Parallel, Structural::Repeat, Structural::Stage];

    pub(super) fn named(name: &str) -> Option<Structural> {
        Structural::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Structural::Residual => "residual",
            Structural::Scale => "scale",
            Structural::Parallel => "parallel",
            Structural::Repeat => "repeat",
            Structural::Stage => "stage",
        }
    }
}

/// A structural form's call: its name (for messages), its arguments, and where it is.
pub(super) struct StructuralCall<'c> {
    pub name: &'c Ident,
    pub args: &'c [ArgValue],
    pub site: Span,
}

pub(super) const MERGES: &[&str] = &["sum", "concat", "mul"];

impl Elaborator<'_> {
    pub(super) fn structural(
        &mut self,
        form: Structural,
        call: &StructuralCall,
        body: Option<&(Body, Rc<Env>)>,
        input: Option<Shape>,
        scope: &mut Scope,
        label: Option<&Ident>,
    ) -> Outcome {
        let (name, args, site) = (call.name, call.args, call.site);
        let kind = form.name();
        if matches!(form, Structural::Residual | Structural::Scale | Structural::Parallel) {
            if let Some(label) = label {
                self.error(
                    Diagnostic::new(
                        Code::Misplaced,
                        format!("`{kind}` cannot be named"),
                        label.span,
                        "this name would be lost",
                    )
                    .with_help(format!(
                        "`{kind}` has no weights of its own: its layers are named in the enclosing block; remove `{}:`",
                        label.text
                    )),
                );
            }
            let Some((body, env)) = body else {
                self.misplaced(site, &format!("`{kind}` needs a body: `{kind} {{ ... }}`"));
                return Outcome::failed();
            };
            return match form {
                Structural::Residual => self.residual(call, body, env, input, scope),
                Structural::Scale => self.scale(call, body, env, input, scope),
                _ => self.parallel(call, body, env, input, scope),
            };
        }
        let claimed = self.claim(scope, label, site);
        let path = join_path(&scope.path, &claimed);
        if form == Structural::Repeat {
            self.repeat(name, args, body, input, path, site)
        } else {
            self.stage(name, args, body, input, path, site)
        }
    }

    fn residual(
        &mut self,
        call: &StructuralCall,
        body: &Body,
        env: &Rc<Env>,
        input: Option<Shape>,
        scope: &mut Scope,
    ) -> Outcome {
        let (name, args, site) = (call.name, call.args, call.site);
        let Some(callee) = self.callee("identity") else { return Outcome::failed() };
        let identity = Rc::new(ModuleValue {
            kind: ModuleKind::Call {
                name: Ident { text: "identity".into(), span: name.span },
                callee,
                args: Vec::new(),
                body: None,
            },
            span: name.span,
        });
        let params = [
            ParamSig { name: "shortcut", ty: ParamTy::Module, default: DefaultSrc::Const(Const::Module(identity)) },
            ParamSig { name: "enabled", ty: ParamTy::Bool, default: DefaultSrc::Const(Const::Bool(true)) },
        ];
        let bound = self.bind(name, &params, args, site, None);
        let (nodes, body_output) = self.sequence(body, env, input, scope, false);
        let Some(bound) = bound else { return Outcome::failed() };
        let shortcut = bound.value("shortcut").and_then(|v| self.module_value(v));
        let enabled = matches!(bound.value("enabled"), Some(Const::Bool(true)));
        let Some(shortcut) = shortcut else { return Outcome::failed() };
        let Some(input) = input else { return Outcome::failed() };
        let Some(output) = body_output else {
            // The body failed; with an identity shortcut the result still has the input's shape.
            let recovered = (enabled && shortcut.is_identity()).then_some(input);
            return Outcome { node: None, output: recovered };
        };
        let path = scope.path.clone();
        let node = |body: Vec<Node>, shortcut: Shortcut| Node {
            path: path.clone(),
            kind: NodeKind::Residual { body, shortcut },
            input,
            output,
            span: site,
            shared: false,
        };
        if !enabled {
            return Outcome::built(node(nodes, Shortcut::Off));
        }
        if output == input {
            return Outcome::built(node(nodes, Shortcut::Identity));
        }
        if shortcut.is_identity() {
            self.residual_mismatch(name, &nodes, input, output);
            self.failed_form("residual", &scope.path, input, output, name.span, Code::ResidualMismatch);
            return Outcome { node: None, output: Some(output) };
        }
        let (projection, inferred_stride) = self.projection(&shortcut, input, output);
        let label = Ident { text: projection_label(&shortcut), span: shortcut.span };
        scope.unpositioned = true;
        // The projection runs beside the main path: "shrinks to zero" later blames the body.
        let main_path_shrink = self.last_shrink.clone();
        let outcome = self.instantiate(&projection, Some(input), scope, Some(&label), shortcut.span);
        self.last_shrink = main_path_shrink;
        let Some(projected) = outcome.node else { return Outcome { node: None, output: Some(output) } };
        if projected.output != output {
            let mut d = Diagnostic::new(
                Code::ResidualMismatch,
                format!("the shortcut gives {}, but the residual body gives {output}", projected.output),
                shortcut.span,
                format!("projects {input} to {}", projected.output),
            )
            .with_secondary(name.span, format!("body: {input} → {output}"));
            d = match (inferred_stride, input.spatial(), output.spatial(), lost_rows(&nodes)) {
                // The body shrank the map by no whole factor: the stride guessed from the
                // shapes cannot match, and the layer that lost the rows is the mistake.
                (Some(stride), Some((h, _)), Some((oh, _)), Some(layer)) if h % oh != 0 => d
                    .with_secondary(layer.span, format!("`{}` gives {} from {}", layer.path, layer.output, layer.input))
                    .with_note(format!(
                        "the shortcut's stride {stride} was inferred from the shapes, but {h} → {oh} is no whole stride"
                    ))
                    .with_help(format!(
                        "`{}` loses rows: give it the padding that keeps {} a multiple of the output (a 3×3 convolution needs `padding: 1`)",
                        layer.path,
                        layer.input.spatial().map_or(0, |(h, _)| h)
                    )),
                _ => d.with_help("the projection must produce the body's shape; check its channels and stride"),
            };
            self.error(d);
            self.failed_form("residual", &scope.path, input, output, name.span, Code::ResidualMismatch);
            return Outcome { node: None, output: Some(output) };
        }
        Outcome::built(node(nodes, Shortcut::Projection(Box::new(projected))))
    }

    /// Records a structural form that failed in the trace (checking goes on with `output`).
    fn failed_form(&mut self, name: &str, path: &str, input: Shape, output: Shape, span: Span, code: Code) {
        let path = if path.is_empty() { format!("({name})") } else { format!("{path}.({name})") };
        self.failed_step(path, name, input, Some(output), span, code);
    }

    /// Also returns the stride when it was inferred from the shapes (not written).
    fn projection(&self, shortcut: &Rc<ModuleValue>, input: Shape, output: Shape) -> (Rc<ModuleValue>, Option<u64>) {
        let ModuleKind::Call { name, callee, args, body } = &shortcut.kind else { return (shortcut.clone(), None) };
        let Callee::Block(entry) = callee else { return (shortcut.clone(), None) };
        let stride = match (input.spatial(), output.spatial()) {
            (Some((h, _)), Some((oh, _))) if oh > 0 => h.div_ceil(oh),
            _ => 1,
        };
        let mut args = args.clone();
        let mut inferred = None;
        for (param, value) in [("channels", output.features()), ("stride", stride)] {
            let declared = entry.def.params.iter().any(|p| p.name.text == param);
            let given = args.iter().any(|a| a.name.as_ref().is_some_and(|n| n.text == param));
            if declared && !given {
                if param == "stride" {
                    inferred = Some(stride);
                }
                args.push(ArgValue {
                    name: Some(Ident { text: param.into(), span: shortcut.span }),
                    value: Const::Int(value as i64),
                    span: shortcut.span,
                });
            }
        }
        let module = Rc::new(ModuleValue {
            kind: ModuleKind::Call { name: name.clone(), callee: callee.clone(), args, body: body.clone() },
            span: shortcut.span,
        });
        (module, inferred)
    }

    fn residual_mismatch(&mut self, name: &Ident, nodes: &[Node], input: Shape, output: Shape) {
        let mut d = Diagnostic::new(
            Code::ResidualMismatch,
            format!("residual adds {output} to its input {input}, but the shortcut is identity"),
            name.span,
            format!("identity shortcut keeps {input}"),
        );
        let mut channel_change = false;
        let mut spatial_change = false;
        for node in nodes {
            let channels = node.output.features() != node.input.features() || node.output.kind() != node.input.kind();
            let spatial = node.output.spatial() != node.input.spatial() && !channels;
            if (channels && !channel_change) || (spatial && !spatial_change) {
                channel_change |= channels;
                spatial_change |= spatial;
                d = d.with_secondary(node.span, format!("`{}` changes {} to {}", node.path, node.input, node.output));
            }
        }
        self.error(d.with_help(format!(
            "project the shortcut with `residual(shortcut: downsample) {{ ... }}` (1×1 conv + batch norm), or keep the body's output at {input}"
        )));
    }

    fn scale(
        &mut self,
        call: &StructuralCall,
        body: &Body,
        env: &Rc<Env>,
        input: Option<Shape>,
        scope: &mut Scope,
    ) -> Outcome {
        let (name, args, site) = (call.name, call.args, call.site);
        let bound = self.bind(name, &[], args, site, None);
        // A gate's pooling does not shrink the main path: "shrinks to zero" later must
        // not blame it.
        let main_path_shrink = self.last_shrink.clone();
        let (gate_nodes, gate) = self.sequence(body, env, input, scope, false);
        self.last_shrink = main_path_shrink;
        let (Some(input), Some(gate), Some(_)) = (input, gate, bound) else {
            return Outcome { node: None, output: input };
        };
        let fits = gate == input
            || match (input, gate) {
                (Shape::Image { c, .. }, Shape::Image { c: gc, h: 1, w: 1 }) => gc == c,
                (Shape::Image { h, w, .. }, Shape::Image { c: 1, h: gh, w: gw }) => gh == h && gw == w,
                (Shape::Image { c, .. } | Shape::Tokens { d: c, .. }, Shape::Vector { d }) => d == c,
                _ => false,
            };
        if !fits {
            self.error(
                Diagnostic::new(
                    Code::GateMismatch,
                    format!("the gate gives {gate}, which cannot scale an input of {input}"),
                    name.span,
                    format!("gate {gate} for input {input}"),
                )
                .with_help(match input {
                    Shape::Image { c, h, w } => format!(
                        "end the gate in {input} itself, a per-channel image({c}, 1, 1) or vector({c}), or a spatial image(1, {h}, {w})"
                    ),
                    other => format!("end the gate in {other} or vector({})", other.features()),
                }),
            );
            self.failed_form("scale", &scope.path, input, input, name.span, Code::GateMismatch);
            return Outcome { node: None, output: Some(input) };
        }
        Outcome::built(Node {
            path: scope.path.clone(),
            kind: NodeKind::Scale { gate: gate_nodes },
            input,
            output: input,
            span: site,
            shared: false,
        })
    }

    fn parallel(
        &mut self,
        call: &StructuralCall,
        body: &Body,
        env: &Rc<Env>,
        input: Option<Shape>,
        scope: &mut Scope,
    ) -> Outcome {
        let (name, args, site) = (call.name, call.args, call.site);
        let params = [ParamSig {
            name: "merge",
            ty: ParamTy::Choice(MERGES),
            default: DefaultSrc::Const(Const::Name("sum".into())),
        }];
        let merge = match self.bind(name, &params, args, site, None).map(|b| b.value("merge").cloned()) {
            Some(Some(Const::Name(m))) if m == "concat" => Merge::Concat,
            Some(Some(Const::Name(m))) if m == "mul" => Merge::Mul,
            Some(_) => Merge::Sum,
            None => return Outcome::failed(),
        };
        let mut branches = Vec::new();
        let mut complete = true;
        for stmt in &body.stmts {
            let Stmt::Layer(layer_stmt) = stmt else {
                self.misplaced(
                    stmt.span(),
                    "a `parallel` body holds only branches (layers or `{ ... }` sequences): no `let`, `for` or `if`",
                );
                complete = false;
                continue;
            };
            let Some(module) = self.layer_module(&layer_stmt.layer, env) else {
                complete = false;
                continue;
            };
            let label = self.label(layer_stmt.label.as_ref(), env);
            match self.instantiate(&module, input, scope, label.as_ref(), layer_stmt.span).node {
                Some(node) => branches.push(node),
                None => complete = false,
            }
        }
        let Some(input) = input else { return Outcome::failed() };
        if !complete {
            // A sum or product has the shape of any branch that built; a concatenation's
            // width needs them all.
            let output = branches.first().map(|b| b.output).filter(|_| merge != Merge::Concat);
            return Outcome { node: None, output };
        }
        if branches.is_empty() {
            self.misplaced(site, "`parallel` needs at least one branch");
            return Outcome::failed();
        }
        let Some(output) = self.merge_shapes(name, merge, &branches) else { return Outcome::failed() };
        Outcome::built(Node {
            path: scope.path.clone(),
            kind: NodeKind::Parallel { merge, branches },
            input,
            output,
            span: site,
            shared: false,
        })
    }

    fn merge_shapes(&mut self, name: &Ident, merge: Merge, branches: &[Node]) -> Option<Shape> {
        let first = branches[0].output;
        let mut features = 0u64;
        for branch in branches {
            let out = branch.output;
            let agrees = match merge {
                Merge::Sum | Merge::Mul => out == first,
                Merge::Concat => out.kind() == first.kind() && out.with_features(first.features()) == first,
            };
            if !agrees {
                let how = if merge == Merge::Concat { "the same shape apart from channels" } else { "the same shape" };
                self.error(
                    Diagnostic::new(
                        Code::BranchMismatch,
                        format!("`parallel(merge: {})` needs {how}, but branches give {first} and {out}", merge.name()),
                        branch.span,
                        format!("gives {out}"),
                    )
                    .with_secondary(branches[0].span, format!("gives {first}"))
                    .with_secondary(name.span, format!("merged with {}", merge.name())),
                );
                return None;
            }
            features = features.checked_add(out.features())?;
        }
        Some(if merge == Merge::Concat { first.with_features(features) } else { first })
    }

    fn copies_count(&mut self, what: &str, value: Option<&Const>, span: Span) -> Option<u64> {
        let Some(Const::Int(n)) = value else { return None };
        if *n < 1 {
            self.error(Diagnostic::new(
                Code::InvalidValue,
                format!("`{what}` must be at least 1, but it is {n}"),
                span,
                "too few copies",
            ));
            return None;
        }
        if *n as u64 > MAX_NODES as u64 {
            self.error(
                Diagnostic::new(
                    Code::TooLarge,
                    format!("{n} copies is more than archc builds ({MAX_NODES} layers)"),
                    span,
                    "too many copies",
                )
                .with_help("check the count"),
            );
            return None;
        }
        Some(*n as u64)
    }

    fn repeat(
        &mut self,
        name: &Ident,
        args: &[ArgValue],
        body: Option<&(Body, Rc<Env>)>,
        input: Option<Shape>,
        path: String,
        site: Span,
    ) -> Outcome {
        let params = [
            ParamSig { name: "module", ty: ParamTy::Module, default: DefaultSrc::Absent },
            ParamSig { name: "times", ty: ParamTy::Int, default: DefaultSrc::Required },
            ParamSig { name: "prefix", ty: ParamTy::Str, default: DefaultSrc::Const(Const::Str(String::new())) },
        ];
        let Some(bound) = self.bind(name, &params, args, site, None) else { return Outcome::failed() };
        let Some(times) = self.copies_count("times", bound.value("times"), bound.span("times", site)) else {
            return Outcome::failed();
        };
        let prefix = match bound.value("prefix") {
            Some(Const::Str(p)) => p.clone(),
            _ => String::new(),
        };
        let module = match (bound.value("module").and_then(|v| self.module_value(v)), body) {
            (Some(module), None) => module,
            (None, Some((body, env))) => {
                Rc::new(ModuleValue { kind: ModuleKind::Seq { body: body.clone(), env: env.clone() }, span: body.span })
            }
            (Some(_), Some(_)) => {
                self.misplaced(site, "`repeat` takes a module or a body, not both");
                return Outcome::failed();
            }
            (None, None) => {
                self.error(
                    Diagnostic::new(
                        Code::MissingArgument,
                        "`repeat` needs a module to copy",
                        site,
                        "nothing to repeat",
                    )
                    .with_help("write `repeat(block(...), times: n)` or `repeat(times: n) { ... }`"),
                );
                return Outcome::failed();
            }
        };
        let copies = (0..times).map(|i| (format!("{prefix}{i}"), module.clone())).collect();
        self.copies("repeat", copies, input, path, site)
    }

    fn stage(
        &mut self,
        name: &Ident,
        args: &[ArgValue],
        body: Option<&(Body, Rc<Env>)>,
        input: Option<Shape>,
        path: String,
        site: Span,
    ) -> Outcome {
        if body.is_some() {
            self.misplaced(site, "`stage` copies a block given as its first argument; it takes no body");
            return Outcome::failed();
        }
        let params = [
            ParamSig { name: "block", ty: ParamTy::Module, default: DefaultSrc::Required },
            ParamSig { name: "blocks", ty: ParamTy::Int, default: DefaultSrc::Required },
            ParamSig { name: "stride", ty: ParamTy::Int, default: DefaultSrc::Const(Const::Int(1)) },
        ];
        let Some(bound) = self.bind(name, &params, args, site, None) else { return Outcome::failed() };
        let Some(module) = bound.value("block").and_then(|v| self.module_value(v)) else { return Outcome::failed() };
        let Some(blocks) = self.copies_count("blocks", bound.value("blocks"), bound.span("blocks", site)) else {
            return Outcome::failed();
        };
        let stride = match bound.value("stride") {
            Some(Const::Int(s)) => *s,
            _ => 1,
        };
        let stride_span = bound.span("stride", site);
        let takes_stride = match &module.kind {
            ModuleKind::Call { callee: block, args: block_args, .. } => {
                if let Some(given) = block_args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.text == "stride")) {
                    self.error(
                        Diagnostic::new(Code::StageNeedsStride, "give the stride to the stage, not to its block", given.span, "stride given to the block")
                            .with_help("write `stage(block(...), blocks: n, stride: s)`: the first copy gets the stride, the others stride 1"),
                    );
                    return Outcome::failed();
                }
                matches!(block, Callee::Block(entry) if entry.def.params.iter().any(|p| p.name.text == "stride"))
            }
            _ => false,
        };
        if !takes_stride && stride != 1 {
            self.error(
                Diagnostic::new(
                    Code::StageNeedsStride,
                    format!(
                        "`{}` has no `stride` parameter, so the stage cannot apply stride {stride}",
                        module.describe()
                    ),
                    stride_span,
                    "stride for the first copy",
                )
                .with_secondary(module.span, "this block takes no stride")
                .with_help("declare `stride: int = 1` in the block and use it in its first strided layer"),
            );
            return Outcome::failed();
        }
        if stride < 1 {
            self.error(Diagnostic::new(
                Code::InvalidValue,
                format!("stride must be positive, but it is {stride}"),
                stride_span,
                "out of range",
            ));
            return Outcome::failed();
        }
        let copies = (0..blocks)
            .map(|i| {
                let copy =
                    if takes_stride { with_stride(&module, if i == 0 { stride } else { 1 }) } else { module.clone() };
                (i.to_string(), copy)
            })
            .collect();
        self.copies("stage", copies, input, path, site)
    }

    /// Builds numbered copies one after another in a scope of their own (`stage`,
    /// `repeat`), each copy taking the previous one's output.
    fn copies(
        &mut self,
        kind: &str,
        copies: Vec<(String, Rc<ModuleValue>)>,
        input: Option<Shape>,
        path: String,
        site: Span,
    ) -> Outcome {
        let mut scope = Scope::new(path.clone());
        let mut children = Vec::new();
        let mut current = input;
        for (label, module) in copies {
            let label = Ident { text: label, span: site };
            let outcome = self.instantiate(&module, current, &mut scope, Some(&label), site);
            children.extend(outcome.node);
            current = outcome.output;
            if self.aborted {
                break;
            }
        }
        self.composite(path, kind.into(), children, input, current, site)
    }
}

fn with_stride(module: &Rc<ModuleValue>, stride: i64) -> Rc<ModuleValue> {
    let ModuleKind::Call { name, callee, args, body } = &module.kind else { return module.clone() };
    let mut args = args.clone();
    args.push(ArgValue {
        name: Some(Ident { text: "stride".into(), span: module.span }),
        value: Const::Int(stride),
        span: module.span,
    });
    let kind = ModuleKind::Call { name: name.clone(), callee: callee.clone(), args, body: body.clone() };
    Rc::new(ModuleValue { kind, span: module.span })
}

/// The first layer of a body that shrinks the feature map by no whole factor (a
/// strided convolution without the padding that would keep the rows).
fn lost_rows(nodes: &[Node]) -> Option<&Node> {
    let mut found = None;
    for node in nodes {
        node.walk(0, &mut |n, _| {
            if found.is_none()
                && matches!(n.kind, NodeKind::Op { .. })
                && let (Some((h, _)), Some((oh, _))) = (n.input.spatial(), n.output.spatial())
                && oh < h
                && h % oh != 0
            {
                found = Some(n);
            }
        });
    }
    found
}

fn projection_label(shortcut: &ModuleValue) -> String {
    match &shortcut.kind {
        ModuleKind::Call { name, .. } => name.text.clone(),
        ModuleKind::Shared { name, .. } => name.text.clone(),
        ModuleKind::Seq { .. } => "shortcut".into(),
    }
}
