//! Matching arguments to parameters: positional then named, defaults, types. One
//! routine for primitives, blocks and structural forms, so every callee reports
//! unknown, duplicate, missing and mistyped arguments the same way.

use super::Elaborator;
use super::eval::{article, as_float};
use super::value::{ArgValue, Const, Env};
use crate::diagnostics::{Code, Diagnostic};
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{Expr, Ident};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamTy {
    Int,
    Float,
    Bool,
    /// A bare word from a fixed set.
    Choice(&'static [&'static str]),
    /// Any bare word (block parameters declared `name`).
    Name,
    Str,
    /// Any list (`[64, 64, "M"]`, `range(4)`).
    List,
    Module,
    /// Anything: a branch not taken is checked for names, not values.
    Any,
}

impl ParamTy {
    pub fn from_decl(name: &str) -> Option<ParamTy> {
        Some(match name {
            "int" => ParamTy::Int,
            "float" => ParamTy::Float,
            "bool" => ParamTy::Bool,
            "name" => ParamTy::Name,
            "string" => ParamTy::Str,
            "module" => ParamTy::Module,
            "list" => ParamTy::List,
            _ => return None,
        })
    }

    fn describe(self) -> String {
        match self {
            ParamTy::Int => "an integer".into(),
            ParamTy::Float => "a number".into(),
            ParamTy::Bool => "`true` or `false`".into(),
            ParamTy::Choice(options) => format!("one of {}", options.join(", ")),
            ParamTy::Name => "a name".into(),
            ParamTy::Str => "a string".into(),
            ParamTy::List => "a list".into(),
            ParamTy::Module => "a layer or block".into(),
            ParamTy::Any => "a value".into(),
        }
    }
}

pub const TYPE_NAMES: &[&str] = &["int", "float", "bool", "name", "string", "list", "module"];

#[derive(Clone, Debug)]
pub enum DefaultSrc<'a> {
    Required,
    /// Optional with no value.
    Absent,
    Const(Const),
    /// A block parameter's default, evaluated with the earlier parameters in scope.
    Expr(&'a Expr),
}

#[derive(Clone, Debug)]
pub struct ParamSig<'a> {
    pub name: &'a str,
    pub ty: ParamTy,
    pub default: DefaultSrc<'a>,
}

/// The arguments of a call bound to its signature: each parameter's value (`None` for
/// an absent optional) and the span to point at, in signature order and by name.
pub struct Bound(Vec<(String, Option<Const>, Span)>);

impl Bound {
    /// The value bound to `name`; `None` for an absent optional (or a name the
    /// signature does not have).
    pub fn value(&self, name: &str) -> Option<&Const> {
        self.0.iter().find(|(n, _, _)| *n == name).and_then(|(_, v, _)| v.as_ref())
    }

    /// Where the argument for `name` was written, or `call` when it was not given.
    pub fn span(&self, name: &str, call: Span) -> Span {
        self.0.iter().find(|(n, _, _)| *n == name).map_or(call, |(_, _, s)| *s)
    }

    /// The values in signature order.
    pub fn values(&self) -> impl Iterator<Item = Option<&Const>> {
        self.0.iter().map(|(_, v, _)| v.as_ref())
    }
}

impl Elaborator<'_> {
    /// Binds `args` to `params`. `scope` receives each bound value as it is bound, so
    /// that defaults can refer to earlier parameters; pass `None` when there is none.
    pub(super) fn bind(
        &mut self,
        callee: &Ident,
        params: &[ParamSig],
        args: &[ArgValue],
        call_span: Span,
        scope: Option<&Rc<Env>>,
    ) -> Option<Bound> {
        let mut given: Vec<Option<&ArgValue>> = vec![None; params.len()];
        let mut positional = 0;
        // Parameters that a misspelt argument was probably meant as: not also "missing".
        let mut meant: Vec<&str> = Vec::new();
        for arg in args {
            let index = match &arg.name {
                None => {
                    let index = positional;
                    positional += 1;
                    if index >= params.len() {
                        if index > params.len() {
                            continue; // the first extra one is reported, with the count
                        }
                        let given = args.iter().filter(|a| a.name.is_none()).count();
                        self.error(
                            Diagnostic::new(
                                Code::UnknownArgument,
                                format!(
                                    "`{}` takes {} positional argument{}, but {given} were given",
                                    callee.text,
                                    params.len(),
                                    if params.len() == 1 { "" } else { "s" }
                                ),
                                arg.span,
                                "extra argument",
                            )
                            .with_help(signature_help(callee, params)),
                        );
                        continue;
                    }
                    index
                }
                Some(name) => match params.iter().position(|p| p.name == name.text) {
                    Some(index) => index,
                    None => {
                        let mut d = Diagnostic::new(
                            Code::UnknownArgument,
                            format!("`{}` has no parameter `{}`", callee.text, name.text),
                            name.span,
                            "unknown argument",
                        );
                        meant.extend(suggest::closest(&name.text, params.iter().map(|p| p.name)));
                        d = match suggest::did_you_mean(&name.text, params.iter().map(|p| p.name)) {
                            Some(help) => d.with_help(help).with_note(signature_help(callee, params)),
                            None => d.with_help(signature_help(callee, params)),
                        };
                        self.error(d);
                        continue;
                    }
                },
            };
            if let Some(previous) = given[index] {
                self.error(
                    Diagnostic::new(
                        Code::DuplicateArgument,
                        format!("`{}` is given twice", params[index].name),
                        arg.span,
                        "given again here",
                    )
                    .with_secondary(previous.span, "first given here")
                    .with_help("remove one of them"),
                );
                continue;
            }
            given[index] = Some(arg);
        }

        // Unknown, extra and duplicate arguments are reported above but do not stop the
        // binding: the call is still built, so that later layers are still checked.
        let mut ok = true;
        let mut bound = Vec::new();
        for (param, arg) in params.iter().zip(&given) {
            let value = match (arg, &param.default) {
                (Some(arg), _) => self.coerce(&arg.value, param.ty, param.name, arg.span).map(Some),
                (None, DefaultSrc::Required) if meant.contains(&param.name) => None,
                (None, DefaultSrc::Required) => {
                    self.error(
                        Diagnostic::new(
                            Code::MissingArgument,
                            format!("`{}` needs the argument `{}`", callee.text, param.name),
                            call_span,
                            format!("`{}` missing", param.name),
                        )
                        .with_help(format!(
                            "add `{}: ...` ({})",
                            param.name,
                            param.ty.describe()
                        )),
                    );
                    None
                }
                (None, DefaultSrc::Absent) => Some(None),
                (None, DefaultSrc::Const(v)) => Some(Some(v.clone())),
                (None, DefaultSrc::Expr(expr)) => {
                    let env = scope.cloned().unwrap_or_else(|| Env::root(None));
                    self.eval(expr, &env).and_then(|v| self.coerce(&v, param.ty, param.name, expr.span)).map(Some)
                }
            };
            match value {
                Some(value) => {
                    if let (Some(scope), Some(v)) = (scope, &value) {
                        scope.define(param.name, v.clone());
                    }
                    let span = arg.map(|a| a.span).unwrap_or(call_span);
                    bound.push((param.name.to_string(), value, span));
                }
                None => ok = false,
            }
        }
        ok.then_some(Bound(bound))
    }

    /// Checks a value against a parameter type, converting int → float.
    pub(super) fn coerce(&mut self, value: &Const, ty: ParamTy, param: &str, span: Span) -> Option<Const> {
        let wrong = |this: &mut Self| -> Option<Const> {
            if let Const::Name(name) = value
                && ty != ParamTy::Module
            {
                if ty == ParamTy::Bool {
                    this.current_env = None;
                }
                return this.unknown_value(name, span);
            }
            if let (Const::Name(name), ParamTy::Module) = (value, ty) {
                this.unknown_callee(&Ident { text: name.clone(), span });
                return None;
            }
            this.error(
                Diagnostic::new(
                    Code::WrongType,
                    format!(
                        "`{param}` must be {}, but this is {} {}",
                        ty.describe(),
                        article(value.type_name()),
                        value.type_name()
                    ),
                    span,
                    format!("{} `{value}`", value.type_name()),
                )
                .with_help({
                    // A value from `--set` is fixed on the command line, not in the file.
                    let (before, between) = match this.settings.iter().any(|s| s.name_span.file == span.file) {
                        true => ("--set ", "="),
                        false => ("", ": "),
                    };
                    match ty {
                        ParamTy::Bool => {
                            format!("write `{before}{param}{between}true` or `{before}{param}{between}false`")
                        }
                        _ => format!("write `{before}{param}{between}{}`", example(ty)),
                    }
                }),
            );
            None
        };
        match (ty, value) {
            (ParamTy::Int, Const::Int(_))
            | (ParamTy::Float, Const::Float(_))
            | (ParamTy::Bool, Const::Bool(_))
            | (ParamTy::Str, Const::Str(_))
            | (ParamTy::Name, Const::Name(_))
            | (ParamTy::List, Const::List(_))
            | (ParamTy::Any, _)
            | (ParamTy::Module, Const::Module(_)) => Some(value.clone()),
            (ParamTy::Float, Const::Int(v)) => Some(Const::Float(*v as f64)),
            (ParamTy::Int, Const::Float(v)) => {
                self.error(
                    Diagnostic::new(
                        Code::WrongType,
                        format!("`{param}` must be an integer, but this is the float {v:?}"),
                        span,
                        "a float",
                    )
                    .with_help(format!(
                        "write a whole number such as {}, or wrap a computed value in `round(...)`, `floor(...)` or `ceil(...)`",
                        as_float(value).round()
                    )),
                );
                None
            }
            (ParamTy::Name, Const::Str(s)) => Some(Const::Name(s.clone())),
            (ParamTy::Str, Const::Name(s)) => Some(Const::Str(s.clone())),
            (ParamTy::Choice(options), Const::Name(word) | Const::Str(word)) => self.choice(options, word, param, span),
            (ParamTy::Choice(options), Const::Module(m)) if m.callee().is_some_and(|c| options.contains(&c)) => {
                Some(Const::Name(m.callee().unwrap_or_default().to_string()))
            }
            (ParamTy::Name, Const::Module(m)) if m.callee().is_some() => {
                Some(Const::Name(m.callee().unwrap_or_default().to_string()))
            }
            _ => wrong(self),
        }
    }

    fn choice(&mut self, options: &[&'static str], word: &str, param: &str, span: Span) -> Option<Const> {
        if options.contains(&word) {
            return Some(Const::Name(word.to_string()));
        }
        let mut d = Diagnostic::new(
            Code::InvalidValue,
            format!("`{word}` is not a valid `{param}`"),
            span,
            format!("expected one of {}", options.join(", ")),
        );
        if let Some(help) = suggest::did_you_mean(word, options.iter().copied()) {
            d = d.with_help(help);
        }
        self.error(d);
        None
    }
}

fn example(ty: ParamTy) -> String {
    match ty {
        ParamTy::Int => "64".into(),
        ParamTy::Float => "0.5".into(),
        ParamTy::Bool => "false".into(),
        ParamTy::Choice(options) => options.first().unwrap_or(&"").to_string(),
        ParamTy::Name => "name".into(),
        ParamTy::Str => "\"text\"".into(),
        ParamTy::List => "[64, 128]".into(),
        ParamTy::Module => "basic(64)".into(),
        ParamTy::Any => "64".into(),
    }
}

fn signature_help(callee: &Ident, params: &[ParamSig]) -> String {
    let list: Vec<&str> = params.iter().map(|p| p.name).collect();
    if list.is_empty() {
        format!("`{}` takes no arguments", callee.text)
    } else {
        format!("`{}` takes: {}", callee.text, list.join(", "))
    }
}
