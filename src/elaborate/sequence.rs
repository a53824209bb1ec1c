//! Building modules: sequences of statements, primitives, block instances, `{ ... }`
//! literals and `let`-shared modules. Structural forms are in `structure.rs`.

use super::bind::{DefaultSrc, ParamSig, ParamTy};
use super::structure::StructuralCall;
use super::value::{ArgValue, Const, Env, ModuleKind, ModuleValue};
use super::{Callee, Elaborator, Frame, MAX_DEPTH, MAX_PASSES, Outcome, Scope};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::{Node, NodeKind, Shape, Step, join_path};
use crate::ops::{self, Args, Op, OpArg, OpSpec};
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{Body, ForStmt, Ident, Label, LayerExpr, Stmt, Template, TemplatePart};
use std::rc::Rc;

impl Elaborator<'_> {
    /// Elaborates the statements of a body, left to right, threading the shape.
    pub(super) fn sequence(
        &mut self,
        body: &Body,
        env: &Rc<Env>,
        input: Option<Shape>,
        scope: &mut Scope,
        top_of_network: bool,
    ) -> (Vec<Node>, Option<Shape>) {
        let mut nodes: Vec<Node> = Vec::new();
        let mut current = input;
        self.statements(body, env, scope, top_of_network, &mut nodes, &mut current);
        (nodes, current)
    }

    /// The statements of a body, appended to `nodes` in the enclosing sequence: a `for`
    /// or `if` body is spliced into it, so unnamed layers go on counting
    /// (`features.0` … `features.28`, as `nn.Sequential(*layers)` names them).
    fn statements(
        &mut self,
        body: &Body,
        env: &Rc<Env>,
        scope: &mut Scope,
        top_of_network: bool,
        nodes: &mut Vec<Node>,
        current: &mut Option<Shape>,
    ) {
        let allowed = self.allows_in(body);
        self.allowed.push(allowed);
        for stmt in &body.stmts {
            if self.aborted {
                break;
            }
            match stmt {
                Stmt::Layer(layer_stmt) => {
                    let label = self.label(layer_stmt.label.as_ref(), env);
                    let reported = self.diagnostics.len();
                    let Some(module) = self.layer_module(&layer_stmt.layer, env) else {
                        let label_text = label.as_ref().map_or("?".to_string(), |l| l.text.clone());
                        if let Some(label) = &label {
                            self.claim(scope, Some(label), layer_stmt.span);
                        }
                        let recovered = current.and_then(|input| self.recovered(&layer_stmt.layer, env, input));
                        if let (Some(input), LayerExpr::Call { call, .. }) = (*current, &layer_stmt.layer) {
                            let path = join_path(&scope.path, &label_text);
                            self.failed_layer(reported, path, &call.name.text, input, recovered, layer_stmt.span);
                        }
                        *current = recovered;
                        continue;
                    };
                    let outcome = self.instantiate(&module, *current, scope, label.as_ref(), layer_stmt.span);
                    if let Some(node) = outcome.node {
                        if let Some(previous) = nodes.last() {
                            self.bias_before_norm(previous, &node);
                        }
                        nodes.push(node);
                    }
                    *current = outcome.output;
                }
                Stmt::Let { name, value, .. } => self.bind_let(name, value, env, scope),
                Stmt::Point(point) => {
                    let (inserted, output) = self.point(point, *current, scope);
                    nodes.extend(inserted);
                    *current = output;
                }
                Stmt::For(for_stmt) => self.for_loop(for_stmt, env, scope, nodes, current),
                Stmt::If(if_stmt) => match self.condition(&if_stmt.condition, env) {
                    Some(taken) => {
                        let (branch, other) = if taken {
                            (Some(&if_stmt.then), if_stmt.otherwise.as_ref())
                        } else {
                            (if_stmt.otherwise.as_ref(), Some(&if_stmt.then))
                        };
                        if let Some(branch) = branch {
                            let inner = Env::child(env, env.input);
                            self.statements(branch, &inner, scope, false, nodes, current);
                        }
                        if let Some(other) = other {
                            let mut local = Vec::new();
                            self.unchosen(other, env, &mut local);
                        }
                    }
                    // Which branch was meant is unknown, and so is the shape after it.
                    None => *current = None,
                },
                Stmt::Assert { condition, message, .. } => self.assert(condition, message, env),
                Stmt::Allow { .. } => {}
                Stmt::Input(call) if !top_of_network => {
                    self.misplaced(call.span, "`input` belongs at the top of a `network`")
                }
                Stmt::Insert(insert) if !top_of_network => {
                    self.misplaced(insert.span, "`insert` belongs at the top of a `network`")
                }
                Stmt::Input(_) | Stmt::Insert(_) => {}
            }
        }
        self.allowed.pop();
    }

    /// A branch not taken is not built: its values may make no sense for these
    /// parameters (`basic` gets no `groups`). A name misspelt in it is a mistake whatever
    /// the parameters, so its layers' names and their arguments' names are checked
    /// (`local`: names its own `let`s and loops bind).
    pub(super) fn unchosen(&mut self, body: &Body, env: &Rc<Env>, local: &mut Vec<String>) {
        for stmt in &body.stmts {
            match stmt {
                Stmt::Let { name, value, .. } => {
                    self.names_known(value, env, local);
                    local.push(name.text.clone());
                }
                Stmt::Input(call) => self.misplaced(call.span, "`input` belongs at the top of a `network`"),
                Stmt::Insert(insert) => self.misplaced(insert.span, "`insert` belongs at the top of a `network`"),
                Stmt::Layer(layer_stmt) => match &layer_stmt.layer {
                    LayerExpr::Seq(inner) => self.unchosen(inner, env, local),
                    LayerExpr::Call { call, body } => {
                        self.unchosen_call(call, env, local);
                        if let Some(inner) = body {
                            self.unchosen(inner, env, local);
                        }
                    }
                },
                Stmt::For(for_stmt) => {
                    self.names_known(&for_stmt.over, env, local);
                    local.extend(for_stmt.index.iter().chain([&for_stmt.item]).map(|n| n.text.clone()));
                    self.unchosen(&for_stmt.body, env, local);
                }
                Stmt::If(if_stmt) => {
                    self.names_known(&if_stmt.condition, env, local);
                    self.unchosen(&if_stmt.then, env, local);
                    if let Some(otherwise) = &if_stmt.otherwise {
                        self.unchosen(otherwise, env, local);
                    }
                }
                _ => {}
            }
        }
    }

    fn unchosen_call(&mut self, call: &crate::syntax::ast::Call, env: &Rc<Env>, local: &[String]) {
        let name = &call.name.text;
        // A bare name may be a module value; with parentheses it is always a layer or
        // block (as where layers are built).
        if !call.has_parens && (local.contains(name) || env.lookup(name).is_some() || env.is_poisoned(name)) {
            return;
        }
        let names: Vec<(String, bool)> = match self.callee(name) {
            None => return self.unknown_callee(&call.name),
            Some(Callee::Op(spec)) => {
                spec.args.iter().map(|a| (a.name.to_string(), matches!(a.default, ops::ArgDefault::Required))).collect()
            }
            Some(Callee::Block(entry)) => {
                entry.def.params.iter().map(|p| (p.name.text.clone(), p.default.is_none())).collect()
            }
            Some(Callee::Structural(_)) => return,
        };
        let params: Vec<ParamSig> = names
            .iter()
            .map(|(name, required)| ParamSig {
                name,
                ty: ParamTy::Any,
                default: if *required { DefaultSrc::Required } else { DefaultSrc::Absent },
            })
            .collect();
        for arg in &call.args {
            self.names_known(&arg.value, env, local);
        }
        // The values are not looked at: any placeholder binds.
        let args: Vec<ArgValue> =
            call.args.iter().map(|a| ArgValue { name: a.name.clone(), value: Const::Int(0), span: a.span }).collect();
        let _ = self.bind(&call.name, &params, &args, call.span, None);
    }

    /// Reports the bare names in an expression that is not evaluated (a branch not
    /// taken) when they name nothing: no parameter, `let` or loop variable (`local`: those
    /// bound inside the branch), layer, block, function or choice.
    pub(super) fn names_known(&mut self, expr: &crate::syntax::ast::Expr, env: &Rc<Env>, local: &[String]) {
        for name in super::network::names_in(expr) {
            let text = name.text.as_str();
            let known = local.iter().any(|l| l == text)
                || env.lookup(text).is_some()
                || env.is_poisoned(text)
                || self.callee(text).is_some()
                || super::eval::is_choice(text);
            if !known {
                self.current_env = Some(env.clone());
                let _: Option<()> = self.unknown_value(text, name.span);
            }
        }
    }

    /// `for v in list { ... }`: the body once per item, each pass in a scope of its own
    /// for names (`v`, the index, its `let`s) but in the enclosing sequence for layers.
    fn for_loop(
        &mut self,
        for_stmt: &ForStmt,
        env: &Rc<Env>,
        scope: &mut Scope,
        nodes: &mut Vec<Node>,
        current: &mut Option<Shape>,
    ) {
        let items = match self.eval(&for_stmt.over, env) {
            // No pass: the body is still checked for names, as a branch not taken is.
            Some(Const::List(items)) if items.is_empty() => {
                let mut local: Vec<String> =
                    for_stmt.index.iter().chain([&for_stmt.item]).map(|n| n.text.clone()).collect();
                self.unchosen(&for_stmt.body, env, &mut local);
                return;
            }
            Some(Const::List(items)) => items,
            Some(other) => {
                let counted = written(&for_stmt.over).unwrap_or_else(|| other.to_string());
                let what = "`for` goes over the items of a list";
                let _: Option<()> = self.not_a_list(&other, for_stmt.over.span, what, Some(counted));
                *current = None;
                return;
            }
            None => {
                *current = None;
                return;
            }
        };
        for (position, item) in items.iter().enumerate() {
            self.passes_unrolled += 1;
            if self.passes_unrolled > MAX_PASSES {
                self.aborted = true;
                self.error(
                    Diagnostic::new(
                        Code::TooLarge,
                        format!("loops run more than {MAX_PASSES} passes in this network"),
                        for_stmt.over.span,
                        "unrolling stopped here",
                    )
                    .with_help("check the loop bounds (nested loops multiply)"),
                );
                return;
            }
            let pass = Env::pass(env);
            let mut described = Vec::new();
            if let Some(index) = &for_stmt.index {
                pass.define(&index.text, Const::Int(position as i64));
                described.push(format!("{} = {position}", index.text));
            }
            pass.define(&for_stmt.item.text, item.clone());
            described.push(format!("{} = {item}", for_stmt.item.text));
            self.passes.push((self.frames.len(), described.join(", ")));
            self.statements(&for_stmt.body, &pass, scope, false, nodes, current);
            self.passes.pop();
            if self.aborted {
                return;
            }
        }
    }

    /// `assert condition, "message"`: the model author's own check.
    fn assert(&mut self, condition: &crate::syntax::ast::Expr, message: &crate::syntax::ast::Expr, env: &Rc<Env>) {
        let text = match self.eval(message, env) {
            Some(Const::Str(text)) => Some(text),
            Some(other) => {
                // `assert c,` with the message forgotten takes the next line as its message.
                self.error(
                    Diagnostic::new(
                        Code::WrongType,
                        format!(
                            "an `assert`'s message is a string, but this is {} {}",
                            super::eval::article(other.type_name()),
                            other.type_name()
                        ),
                        message.span,
                        "not a message",
                    )
                    .with_help("write the message after the comma: `assert CONDITION, \"what went wrong\"`"),
                );
                None
            }
            None => None,
        };
        if self.condition(condition, env) != Some(false) {
            return;
        }
        let Some(text) = text else { return };
        let mut d = Diagnostic::new(Code::AssertFailed, text, condition.span, "this is false");
        let mut values = Vec::new();
        for name in super::network::names_in(condition) {
            if let Some(value) = env.lookup(&name.text)
                && !matches!(value, Const::Module(_))
            {
                let shown = format!("`{} = {value}`", name.text);
                if !values.contains(&shown) {
                    values.push(shown);
                }
            }
        }
        if !values.is_empty() {
            d = d.with_note(format!("here {}", values.join(", ")));
        }
        self.error(d);
    }

    /// The name a layer statement's label gives (in this pass, for `layer{i + 1}`).
    pub(super) fn label(&mut self, label: Option<&Label>, env: &Rc<Env>) -> Option<Ident> {
        match label? {
            Label::Name(name) => Some(name.clone()),
            Label::Template(template) => self.template_label(template, env),
        }
    }

    fn template_label(&mut self, template: &Template, env: &Rc<Env>) -> Option<Ident> {
        let mut text = String::new();
        for part in &template.parts {
            match part {
                TemplatePart::Text(piece) => text.push_str(piece),
                TemplatePart::Expr(expr) => match self.eval(expr, env)? {
                    Const::Int(v) if v >= 0 => text.push_str(&v.to_string()),
                    Const::Str(word) | Const::Name(word)
                        if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        text.push_str(&word)
                    }
                    other => {
                        self.error(
                            Diagnostic::new(
                                Code::InvalidValue,
                                format!("a label cannot contain {} `{other}`", other.type_name()),
                                expr.span,
                                "not part of a name",
                            )
                            .with_help("label parts are whole numbers (0 or more) or words of letters, digits and `_`"),
                        );
                        return None;
                    }
                },
            }
        }
        Some(Ident { text, span: template.span })
    }

    /// The shape checking goes on with after a layer that could not be built (its
    /// mistake already reported): its input when it names (or nearly names) an op that
    /// never changes the shape; for a primitive whose named arguments had mistakes in
    /// their values, the output when it is the same whatever those values were (a flag
    /// or a choice tried both or every way, a float taken at its default: no float sizes
    /// anything); `None` when it depends on them (an integer such as a stride).
    fn recovered(&mut self, layer: &LayerExpr, env: &Rc<Env>, input: Shape) -> Option<Shape> {
        let LayerExpr::Call { call, body: None } = layer else { return None };
        let name = call.name.text.as_str();
        let names = ops::all_specs().map(|s| s.name);
        if ops::preserves_shape(name) || suggest::closest(name, names).is_some_and(ops::preserves_shape) {
            return Some(input);
        }
        let spec = ops::spec(name).filter(|_| env.lookup(name).is_none())?;
        // Evaluated again only to see which arguments fail; their mistakes are reported.
        let reported = self.diagnostics.len();
        let mut good = Vec::new();
        let mut unknown: Vec<&ops::ArgSpec> = Vec::new();
        for arg in &call.args {
            let value = self.eval(&arg.value, env);
            let arg_spec = arg.name.as_ref().and_then(|n| spec.args.iter().find(|a| a.name == n.text));
            match (value, arg_spec) {
                (Some(value), _) => good.push(ArgValue { name: arg.name.clone(), value, span: arg.span }),
                (None, Some(arg_spec)) => unknown.push(arg_spec),
                // A positional or misspelt argument that failed: what it meant is unknown.
                (None, None) => {
                    self.diagnostics.truncate(reported);
                    return None;
                }
            }
        }
        self.diagnostics.truncate(reported);
        self.same_output_for_any(spec, &call.name, good, &unknown, input)
    }

    /// The output of a primitive whose `unknown` arguments had mistakes, when it is the
    /// same whatever their values (see `recovered`).
    fn same_output_for_any(
        &mut self,
        spec: &OpSpec,
        name: &Ident,
        good: Vec<ArgValue>,
        unknown: &[&ops::ArgSpec],
        input: Shape,
    ) -> Option<Shape> {
        let reported = self.diagnostics.len();
        let mut tries: Vec<Vec<ArgValue>> = vec![good];
        for arg_spec in unknown {
            let values: Vec<Const> = match arg_spec.ty {
                ops::Ty::Bool => vec![Const::Bool(true), Const::Bool(false)],
                ops::Ty::Choice(options) => options.iter().map(|o| Const::Name(o.to_string())).collect(),
                ops::Ty::Float => continue,
                ops::Ty::Int => {
                    tries.clear();
                    break;
                }
            };
            let ident = Ident { text: arg_spec.name.to_string(), span: name.span };
            let mut next = Vec::new();
            for tried in &tries {
                for value in &values {
                    let mut args = tried.clone();
                    args.push(ArgValue { name: Some(ident.clone()), value: value.clone(), span: name.span });
                    next.push(args);
                }
            }
            tries = next;
        }
        let outputs: Vec<Option<Shape>> = tries.iter().map(|args| self.output_with(spec, name, args, input)).collect();
        self.diagnostics.truncate(reported);
        let first = *outputs.first()?;
        outputs.iter().all(|o| *o == first && o.is_some()).then_some(first).flatten()
    }

    /// What a primitive with these arguments gives on `input`, or `None` if it fails
    /// (its diagnostics are the caller's to discard).
    fn output_with(&mut self, spec: &OpSpec, name: &Ident, args: &[ArgValue], input: Shape) -> Option<Shape> {
        let params = op_params(spec);
        let bound = self.bind(name, &params, args, name.span, None)?;
        let op = (spec.build)(&op_args(spec, &bound)).ok()?;
        op.rule().output(&input).ok()
    }

    /// The lints a body's `allow(...)` statements silence (for the whole body).
    fn allows_in(&mut self, body: &Body) -> Vec<Code> {
        let mut codes = Vec::new();
        for stmt in &body.stmts {
            let Stmt::Allow { lints, .. } = stmt else { continue };
            for lint in lints {
                match Code::lookup(&lint.text).filter(|c| c.info().lint.is_some()) {
                    Some(code) => codes.push(code),
                    None => {
                        let names: Vec<&str> = crate::diagnostics::CODES.iter().filter_map(|c| c.lint).collect();
                        let mut d = Diagnostic::new(
                            Code::UnknownName,
                            format!("unknown lint `{}`", lint.text),
                            lint.span,
                            "not a lint",
                        )
                        .with_note(format!("lints: {}", names.join(", ")));
                        if let Some(help) = suggest::did_you_mean(&lint.text, names) {
                            d = d.with_help(help);
                        }
                        self.error(d);
                    }
                }
            }
        }
        codes
    }

    pub(super) fn misplaced(&mut self, span: Span, message: &str) {
        self.error(Diagnostic::new(Code::Misplaced, message, span, "not allowed here"));
    }

    /// The module a layer statement builds.
    pub(super) fn layer_module(&mut self, layer: &LayerExpr, env: &Rc<Env>) -> Option<Rc<ModuleValue>> {
        match layer {
            LayerExpr::Seq(body) => Some(Rc::new(ModuleValue {
                kind: ModuleKind::Seq { body: body.clone(), env: env.clone() },
                span: body.span,
            })),
            LayerExpr::Call { call, body } => {
                if !call.has_parens && env.is_poisoned(&call.name.text) {
                    return None;
                }
                if !call.has_parens
                    && let Some(value) = env.lookup(&call.name.text)
                {
                    return match value {
                        Const::Module(module) if body.is_none() => Some(module),
                        Const::Module(_) => {
                            self.misplaced(call.span, "a module parameter takes no `{ ... }` body");
                            None
                        }
                        other => {
                            self.error(
                                Diagnostic::new(
                                    Code::WrongType,
                                    format!(
                                        "`{}` is {} {}, not a layer",
                                        call.name.text,
                                        super::eval::article(other.type_name()),
                                        other.type_name()
                                    ),
                                    call.span,
                                    format!("`{}` = {other}", call.name.text),
                                )
                                .with_help("a layer statement needs an op, a block, or a parameter of type `module`"),
                            );
                            None
                        }
                    };
                }
                let Some(callee) = self.callee(&call.name.text) else {
                    self.unknown_callee(&call.name);
                    // Still look at the arguments: their mistakes are worth reporting too.
                    let _ = self.eval_args(&call.args, env);
                    return None;
                };
                let args = self.eval_args(&call.args, env)?;
                Some(Rc::new(ModuleValue {
                    kind: ModuleKind::Call {
                        name: call.name.clone(),
                        callee,
                        args,
                        body: body.clone().map(|b| (b, env.clone())),
                    },
                    span: call.span,
                }))
            }
        }
    }

    /// `let name = value`: numbers are constants; modules become shared modules.
    fn bind_let(&mut self, name: &Ident, value: &crate::syntax::ast::Expr, env: &Rc<Env>, scope: &mut Scope) {
        let value_span = value.span;
        let Some(value) = self.eval(value, env) else {
            env.poison(&name.text);
            return;
        };
        // A bare word that names nothing (and is no choice any layer takes) is a mistake
        // here, once, rather than at every use.
        if let Const::Name(word) = &value
            && !super::eval::is_choice(word)
        {
            let word = word.clone();
            let _: Option<()> = self.unknown_value(&word, value_span);
            env.poison(&name.text);
            return;
        }
        let value = match value {
            Const::Module(_) if env.in_loop() => {
                self.error(
                    Diagnostic::new(
                        Code::DuplicateLabel,
                        format!("a `let` module in a loop would be one set of weights named `{}` in every pass", name.text),
                        name.span,
                        "shared by every pass",
                    )
                    .with_help("write the layer in the loop without `let` (each pass gets its own), or move the `let` before the loop to share one module"),
                );
                env.poison(&name.text);
                return;
            }
            Const::Module(inner) => {
                self.claim(scope, Some(name), name.span);
                self.next_shared += 1;
                Const::Module(Rc::new(ModuleValue {
                    span: inner.span,
                    kind: ModuleKind::Shared {
                        id: self.next_shared,
                        name: name.clone(),
                        owner_path: join_path(&scope.path, &name.text),
                        inner,
                    },
                }))
            }
            other => other,
        };
        env.define(&name.text, value);
    }

    /// Reserves a name in a scope: the label, or the next position.
    pub(super) fn claim(&mut self, scope: &mut Scope, label: Option<&Ident>, site: Span) -> String {
        let positioned = !std::mem::take(&mut scope.unpositioned);
        let name = match label {
            Some(label) => {
                if let Some(first) = scope.used.get(&label.text) {
                    let first = *first;
                    if first == label.span {
                        // The same statement again: a label in a loop that gives one name
                        // in two passes.
                        self.error(
                            Diagnostic::new(
                                Code::DuplicateLabel,
                                format!("this label gives the name `{}` in more than one pass", label.text),
                                label.span,
                                format!("`{}` again", label.text),
                            )
                            .with_help(
                                "layer names become weight names: build the label from the loop's index, as in `layer{i + 1}:`",
                            ),
                        );
                        scope.position += usize::from(positioned);
                        return label.text.clone();
                    }
                    self.error(
                        Diagnostic::new(
                            Code::DuplicateLabel,
                            format!(
                                "the name `{}` is used twice in {}",
                                label.text,
                                if scope.path.is_empty() {
                                    "the network".to_string()
                                } else {
                                    format!("`{}`", scope.path)
                                }
                            ),
                            label.span,
                            "used again here",
                        )
                        .with_secondary(first, "first used here")
                        .with_help("layer names become weight names and must be unique; rename one"),
                    );
                    // Keep checking with the duplicate name; the error stops the model.
                    scope.position += usize::from(positioned);
                    return label.text.clone();
                }
                scope.used.insert(label.text.clone(), label.span);
                label.text.clone()
            }
            None => {
                while scope.used.contains_key(&scope.position.to_string()) {
                    scope.position += 1;
                }
                scope.position.to_string()
            }
        };
        scope.used.entry(name.clone()).or_insert(site);
        scope.position += usize::from(positioned);
        name
    }

    /// Builds a module on an input, naming it in `scope`.
    pub(super) fn instantiate(
        &mut self,
        module: &Rc<ModuleValue>,
        input: Option<Shape>,
        scope: &mut Scope,
        label: Option<&Ident>,
        site: Span,
    ) -> Outcome {
        if !self.spend_node(site) {
            return Outcome::failed();
        }
        match &module.kind {
            ModuleKind::Call { name, callee, args, body } => {
                let spec = match callee {
                    Callee::Structural(form) => {
                        let call = StructuralCall { name, args, site };
                        return self.structural(*form, &call, body.as_ref(), input, scope, label);
                    }
                    Callee::Block(entry) => {
                        let claimed = self.claim(scope, label, site);
                        let path = join_path(&scope.path, &claimed);
                        if body.is_some() {
                            self.misplaced(
                                site,
                                "a block takes its layers from its definition, not from a `{ ... }` body",
                            );
                            return Outcome::failed();
                        }
                        return self.block(entry, name, args, input, path, site);
                    }
                    Callee::Op(spec) => *spec,
                };
                let claimed = self.claim(scope, label, site);
                let path = join_path(&scope.path, &claimed);
                if body.is_some() {
                    self.misplaced(site, &format!("`{}` takes no `{{ ... }}` body", name.text));
                    return Outcome::failed();
                }
                self.primitive(spec, name, args, input, path, site)
            }
            ModuleKind::Seq { body, env } => {
                let claimed = self.claim(scope, label, site);
                let path = join_path(&scope.path, &claimed);
                let env = Env::child(env, input);
                let mut inner = Scope::new(path.clone());
                let (children, output) = self.sequence(body, &env, input, &mut inner, false);
                self.composite(path, "seq".into(), children, input, output, site)
            }
            ModuleKind::Shared { id, name, owner_path, inner } => {
                self.shared_use(*id, name, owner_path, inner, input, site)
            }
        }
    }

    /// Wraps children into a block node when everything in it was built.
    pub(super) fn composite(
        &mut self,
        path: String,
        name: String,
        children: Vec<Node>,
        input: Option<Shape>,
        output: Option<Shape>,
        site: Span,
    ) -> Outcome {
        match (input, output) {
            (Some(input), Some(output)) => Outcome::built(Node {
                path,
                kind: NodeKind::Block { name, children },
                input,
                output,
                span: site,
                shared: false,
            }),
            _ => Outcome { node: None, output },
        }
    }

    fn primitive(
        &mut self,
        spec: &OpSpec,
        name: &Ident,
        args: &[ArgValue],
        input: Option<Shape>,
        path: String,
        site: Span,
    ) -> Outcome {
        let params = op_params(spec);
        let reported = self.diagnostics.len();
        let recovered = Outcome { node: None, output: input.filter(|_| ops::preserves_shape(spec.name)) };
        let Some(bound) = self.bind(name, &params, args, site, None) else {
            // Named arguments whose values do not fit their types (already reported): the
            // output may not depend on them.
            let Some(input) = input else { return recovered };
            let (mut good, mut unknown) = (Vec::new(), Vec::new());
            let already = self.diagnostics.len();
            for arg in args {
                let arg_spec = arg.name.as_ref().and_then(|n| spec.args.iter().find(|a| a.name == n.text));
                match arg_spec {
                    // The binder's own rule, asked again without its report.
                    Some(arg_spec)
                        if self.coerce(&arg.value, param_ty(arg_spec.ty), arg_spec.name, arg.span).is_none() =>
                    {
                        unknown.push(arg_spec)
                    }
                    _ => good.push(arg.clone()),
                }
            }
            self.diagnostics.truncate(already);
            let output = recovered.output.or(self.same_output_for_any(spec, name, good, &unknown, input));
            self.failed_layer(reported, path, spec.name, input, output, site);
            return Outcome { node: None, output };
        };
        let op_args = op_args(spec, &bound);
        let op = match (spec.build)(&op_args) {
            Ok(op) => op,
            Err(error) => {
                let span = bound.span(error.arg, site);
                let mut d = Diagnostic::new(Code::InvalidValue, error.message, span, "out of range");
                if let Some(help) = error.help {
                    d = d.with_help(help);
                }
                self.error(d);
                if let Some(input) = input {
                    self.failed_layer(reported, path, spec.name, input, recovered.output, site);
                }
                return recovered;
            }
        };
        let Some(input) = input else { return Outcome::failed() };
        // Mistakes that did not stop the op being built (an extra or misspelt argument,
        // ignored): what it was meant to say may have changed the shape (`strde: 2`).
        if self.diagnostics[reported..].iter().any(Diagnostic::is_error) {
            let output = Some(input).filter(|_| ops::preserves_shape(spec.name));
            self.failed_layer(reported, path, spec.name, input, output, site);
            return Outcome { node: None, output };
        }
        self.shape_op(spec.name, op_args, op, input, path, site)
    }

    /// Records in the trace a layer whose mistakes (reported since `since`) stopped it
    /// being built, with the shape checking goes on with.
    fn failed_layer(
        &mut self,
        since: usize,
        path: String,
        name: &str,
        input: Shape,
        output: Option<Shape>,
        span: Span,
    ) {
        let Some(code) = self.diagnostics[since..].iter().find(|d| d.is_error()).map(|d| d.code) else { return };
        self.failed_step(path, name, input, output, span, code);
    }

    /// Records in the trace something that was not built because of `code`.
    pub(super) fn failed_step(
        &mut self,
        path: String,
        name: &str,
        input: Shape,
        output: Option<Shape>,
        span: Span,
        code: Code,
    ) {
        self.steps.push(Step { path, name: name.to_string(), op: None, input, output, span, error: Some(code) });
    }

    fn shape_op(&mut self, name: &'static str, args: Args, op: Op, input: Shape, path: String, site: Span) -> Outcome {
        let output = match op.rule().output(&input) {
            Ok(output) => output,
            Err(error) => {
                // Ops that never change the shape go on with their input whatever went wrong.
                let recovered = error.recovered.or(ops::preserves_shape(name).then_some(input));
                let code = self.shape_error(error, &input, &path, site);
                self.steps.push(Step {
                    path,
                    name: name.into(),
                    op: Some(op),
                    input,
                    output: recovered,
                    span: site,
                    error: Some(code),
                });
                return Outcome { node: None, output: recovered };
            }
        };
        self.steps.push(Step {
            path: path.clone(),
            name: name.into(),
            op: Some(op.clone()),
            input,
            output: Some(output),
            span: site,
            error: None,
        });
        if output.elements().is_none() {
            self.error(Diagnostic::new(
                Code::Overflow,
                format!("the output of `{path}` has more elements than fit in 64 bits"),
                site,
                format!("{output}"),
            ));
            return Outcome::failed();
        }
        for hit in op.rule().lints(&input) {
            let mut d = Diagnostic::new(hit.code, hit.message, site, hit.label);
            if let Some(help) = hit.help {
                d = d.with_help(help);
            }
            self.lint(d);
        }
        if let (Some((ih, iw)), Some((oh, ow))) = (input.spatial(), output.spatial())
            && (oh < ih || ow < iw)
        {
            self.last_shrink = Some((site, path.clone(), input, output));
        }
        Outcome::built(Node { path, kind: NodeKind::Op { name, args, op }, input, output, span: site, shared: false })
    }

    /// Turns an op's shape error into a diagnostic at the layer. A kernel that no longer
    /// fits because earlier layers shrank the map is reported as the map shrinking.
    /// Returns the code reported.
    fn shape_error(&mut self, error: ops::ShapeError, input: &Shape, path: &str, site: Span) -> Code {
        let shrunk = match (error.code, self.model_input.and_then(|s| s.spatial()), input.spatial()) {
            (Code::KernelTooLarge, Some((mh, mw)), Some((h, w))) => h < mh || w < mw,
            _ => false,
        };
        let mut d = if shrunk {
            let (h, w) = input.spatial().unwrap_or((0, 0));
            let mut d = Diagnostic::new(
                Code::EmptyFeatureMap,
                format!("the feature map has shrunk to {h}×{w} before `{path}`, too small for it"),
                site,
                error.label,
            )
            .with_help(format!(
                "downsample less before this layer, or use a larger input (`--input`); the declared input is {}",
                self.model_input.map(|s| s.to_string()).unwrap_or_default()
            ));
            if let Some((span, by, from, to)) = self.last_shrink.clone() {
                d = d.with_secondary(span, format!("`{by}` shrinks {from} to {to}"));
            }
            d
        } else {
            let mut d = Diagnostic::new(error.code, error.message, site, error.label);
            if let Some(help) = error.help {
                d = d.with_help(help);
            }
            d
        };
        if !path.is_empty() {
            d = d.with_note(format!("in `{path}`, whose input is {input}"));
        }
        let code = d.code;
        self.error(d);
        code
    }

    fn block(
        &mut self,
        entry: &Rc<super::load::DefEntry>,
        name: &Ident,
        args: &[ArgValue],
        input: Option<Shape>,
        path: String,
        site: Span,
    ) -> Outcome {
        let def = &entry.def;
        if def.kind == crate::syntax::ast::DefKind::Network {
            self.error(
                Diagnostic::new(
                    Code::Misplaced,
                    format!("`{}` is a network, not a block", name.text),
                    name.span,
                    "used as a layer",
                )
                .with_secondary(def.name.span, "defined as a network here")
                .with_help("define the reusable part as a `block` and use it from both networks"),
            );
            return Outcome::failed();
        }
        if let Some(frame) = self.frames.iter().find(|f| f.block == def.name.text) {
            let first_call = frame.call_span;
            let innermost = self.frames.last().map(|f| f.call_span);
            let mut d = Diagnostic::new(
                Code::RecursiveBlock,
                format!("block `{}` uses itself", def.name.text),
                site,
                "used again inside its own definition",
            )
            .with_help("a network must be finite: use `repeat` or `stage` for copies");
            if innermost != Some(first_call) {
                d = d.with_secondary(first_call, "first instantiated here");
            }
            self.error(d);
            return Outcome::failed();
        }
        if self.frames.len() >= MAX_DEPTH {
            self.error(Diagnostic::new(
                Code::TooLarge,
                format!("blocks are nested more than {MAX_DEPTH} deep"),
                site,
                "too deep",
            ));
            return Outcome::failed();
        }
        let env = Env::root(input);
        let mut params = Vec::new();
        let mut ok = true;
        for decl in &def.params {
            let ty = ParamTy::from_decl(&decl.ty.text);
            if ty.is_none() {
                ok = false;
            }
            params.push(ParamSig {
                name: &decl.name.text,
                ty: ty.unwrap_or(ParamTy::Int),
                default: decl.default.as_ref().map(DefaultSrc::Expr).unwrap_or(DefaultSrc::Required),
            });
        }
        if !ok {
            // Reported once per definition by the network pass (`check_definitions`).
            return Outcome::failed();
        }
        if self.bind(name, &params, args, site, Some(&env)).is_none() {
            return Outcome::failed();
        }
        if !self.used_blocks.contains(&def.name.text) {
            self.used_blocks.push(def.name.text.clone());
        }
        self.frames.push(Frame {
            block: def.name.text.clone(),
            path: path.clone(),
            def_span: def.span,
            call_span: site,
        });
        let mut scope = Scope::new(path.clone());
        let (children, output) = self.sequence(&def.body, &env, input, &mut scope, false);
        self.frames.pop();
        self.composite(path, def.name.text.clone(), children, input, output, site)
    }

    fn shared_use(
        &mut self,
        id: usize,
        name: &Ident,
        owner_path: &str,
        inner: &Rc<ModuleValue>,
        input: Option<Shape>,
        site: Span,
    ) -> Outcome {
        let parent = owner_path.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
        let mut scope = Scope::new(parent);
        let mut outcome = self.instantiate(inner, input, &mut scope, Some(name), site);
        let Some(node) = outcome.node.as_mut() else { return outcome };
        let mut tensors = Vec::new();
        node.walk(0, &mut |n, _| {
            for t in n.own_tensors() {
                tensors.push(crate::ir::NamedTensor {
                    name: format!("{}.{}", n.path, t.suffix),
                    shape: t.shape,
                    trainable: t.trainable,
                });
            }
        });
        match self.shared.get(&id).cloned() {
            None => {
                self.shared.insert(id, (tensors, site, node.input));
            }
            Some((first, first_site, first_input)) => {
                node.shared = true;
                if first != tensors {
                    self.error(
                        Diagnostic::new(
                            Code::ChannelMismatch,
                            format!("shared module `{}` is used on {} here, but its weights were made for {first_input}", name.text, node.input),
                            site,
                            format!("input {}", node.input),
                        )
                        .with_secondary(first_site, format!("first used on {first_input}"))
                        .with_help("a `let` module has one set of weights: use it on inputs of the same width, or write two modules"),
                    );
                    // Its output is known all the same: check on with it.
                    return Outcome { node: None, output: Some(node.output) };
                }
            }
        }
        outcome
    }

    /// Warns about `conv(..., bias: true)` directly followed by `batchnorm`.
    fn bias_before_norm(&mut self, previous: &Node, node: &Node) {
        let (NodeKind::Op { op: Op::Conv(conv), .. }, NodeKind::Op { op: Op::BatchNorm(_), .. }) =
            (&previous.kind, &node.kind)
        else {
            return;
        };
        if !conv.bias {
            return;
        }
        self.lint(
            Diagnostic::new(
                Code::BiasBeforeNorm,
                format!("`{}` has a bias that the batch norm after it cancels", previous.path),
                previous.span,
                format!("{} bias parameters that do nothing", conv.out),
            )
            .with_secondary(node.span, "this batch norm subtracts the mean")
            .with_help("write `bias: false` on the convolution"),
        );
    }
}

/// A name or a call of names as written (`depth`, `len(cfg)`), for a help line.
fn written(expr: &crate::syntax::ast::Expr) -> Option<String> {
    let crate::syntax::ast::ExprKind::Call(call) = &expr.kind else { return None };
    if !call.has_parens {
        return Some(call.name.text.clone());
    }
    let args: Option<Vec<String>> = call.args.iter().filter(|a| a.name.is_none()).map(|a| written(&a.value)).collect();
    Some(format!("{}({})", call.name.text, args?.join(", ")))
}

/// A primitive argument's type as the binder knows it.
fn param_ty(ty: ops::Ty) -> ParamTy {
    match ty {
        ops::Ty::Int => ParamTy::Int,
        ops::Ty::Float => ParamTy::Float,
        ops::Ty::Bool => ParamTy::Bool,
        ops::Ty::Choice(options) => ParamTy::Choice(options),
    }
}

/// A primitive's signature as the binder takes it.
fn op_params(spec: &OpSpec) -> Vec<ParamSig<'static>> {
    spec.args
        .iter()
        .map(|a| ParamSig {
            name: a.name,
            ty: param_ty(a.ty),
            default: match a.default {
                ops::ArgDefault::Required => DefaultSrc::Required,
                ops::ArgDefault::Absent => DefaultSrc::Absent,
                ops::ArgDefault::Int(v) => DefaultSrc::Const(Const::Int(v)),
                ops::ArgDefault::Float(v) => DefaultSrc::Const(Const::Float(v)),
                ops::ArgDefault::Bool(v) => DefaultSrc::Const(Const::Bool(v)),
                ops::ArgDefault::Choice(v) => DefaultSrc::Const(Const::Name(v.to_string())),
            },
        })
        .collect()
}

/// The bound values as the op's builder takes them.
fn op_args(spec: &OpSpec, bound: &super::bind::Bound) -> Args {
    Args {
        values: spec
            .args
            .iter()
            .zip(bound.values())
            .map(|(a, value)| {
                let value = match value {
                    Some(Const::Int(v)) => OpArg::Int(*v),
                    Some(Const::Float(v)) => OpArg::Float(*v),
                    Some(Const::Bool(v)) => OpArg::Bool(*v),
                    Some(Const::Name(v)) => OpArg::Choice(v.clone()),
                    _ => OpArg::Absent,
                };
                (a.name, value)
            })
            .collect(),
    }
}
