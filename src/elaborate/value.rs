//! Values that block parameters, `let` bindings and arguments can hold.

use crate::ir::Shape;
use crate::source::Span;
use crate::syntax::ast::{Body, Ident};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

/// A value of the language at compile time: a number, a flag, a word, a string, or a
/// module not built yet. (The values flowing through a built network are
/// `tensor::Value`s.)
#[derive(Clone, Debug)]
pub enum Const {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A bare word that names nothing defined: a choice such as `sum` or `spatial`,
    /// or a typo (reported when it is used as something else).
    Name(String),
    Str(String),
    /// `[64, 64, "M"]`: any values, mixed.
    List(Rc<Vec<Const>>),
    Module(Rc<ModuleValue>),
}

impl Const {
    pub fn type_name(&self) -> &'static str {
        match self {
            Const::Int(_) => "int",
            Const::Float(_) => "float",
            Const::Bool(_) => "bool",
            Const::Name(_) => "name",
            Const::Str(_) => "string",
            Const::List(_) => "list",
            Const::Module(_) => "module",
        }
    }
}

impl fmt::Display for Const {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Const::Int(v) => write!(f, "{v}"),
            Const::Float(v) => write!(f, "{v:?}"),
            Const::Bool(v) => write!(f, "{v}"),
            Const::Name(v) => write!(f, "{v}"),
            Const::Str(v) => write!(f, "\"{v}\""),
            Const::List(items) => write_list(f, items, 0),
            Const::Module(m) => write!(f, "{}", m.describe()),
        }
    }
}

/// A list as people read it in a message: at most `SHOWN` items, two levels deep (a
/// list can be built with 2^40 items by doubling; its message must stay a line).
fn write_list(f: &mut fmt::Formatter<'_>, items: &[Const], depth: usize) -> fmt::Result {
    const SHOWN: usize = 8;
    if depth >= 2 {
        return write!(f, "[… {} item{}]", items.len(), if items.len() == 1 { "" } else { "s" });
    }
    write!(f, "[")?;
    for (i, item) in items.iter().take(SHOWN).enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        match item {
            Const::List(inner) => write_list(f, inner, depth + 1)?,
            other => write!(f, "{other}")?,
        }
    }
    if items.len() > SHOWN {
        write!(f, ", … {} more", items.len() - SHOWN)?;
    }
    write!(f, "]")
}

/// An argument after evaluation, before it is matched to a parameter.
#[derive(Clone, Debug)]
pub struct ArgValue {
    pub name: Option<Ident>,
    pub value: Const,
    pub span: Span,
}

/// A module that has not been built yet: it is built (and shaped) where it is used.
#[derive(Debug)]
pub struct ModuleValue {
    pub kind: ModuleKind,
    pub span: Span,
}

#[derive(Debug)]
pub enum ModuleKind {
    /// A primitive, a block, or a structural form, with its evaluated arguments and,
    /// for `residual { ... }` and friends, its body.
    Call { name: Ident, callee: super::Callee, args: Vec<ArgValue>, body: Option<(Body, Rc<Env>)> },
    /// `{ ... }`: an anonymous sequence, evaluated in the environment it was written in.
    Seq { body: Body, env: Rc<Env> },
    /// A `let`-bound module: one set of weights however often it is used.
    Shared { id: usize, name: Ident, owner_path: String, inner: Rc<ModuleValue> },
}

impl ModuleValue {
    pub fn describe(&self) -> String {
        match &self.kind {
            ModuleKind::Call { name, args, .. } if args.is_empty() => name.text.clone(),
            ModuleKind::Call { name, args, .. } => {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| match &a.name {
                        Some(n) => format!("{}: {}", n.text, a.value),
                        None => a.value.to_string(),
                    })
                    .collect();
                format!("{}({})", name.text, args.join(", "))
            }
            ModuleKind::Seq { .. } => "{ ... }".into(),
            ModuleKind::Shared { name, .. } => name.text.clone(),
        }
    }

    /// The name it is called by, for modules that are calls.
    pub fn callee(&self) -> Option<&str> {
        match &self.kind {
            ModuleKind::Call { name, .. } => Some(&name.text),
            _ => None,
        }
    }

    pub fn is_identity(&self) -> bool {
        matches!(&self.kind, ModuleKind::Call { name, args, body: None, .. } if name.text == "identity" && args.is_empty())
    }
}

/// A lexical scope: parameters and `let`s of one block body, and the block's input.
#[derive(Debug, Default)]
pub struct Env {
    vars: RefCell<HashMap<String, Const>>,
    /// Names whose definition failed (a `let` or parameter with an error, already
    /// reported): using them is silent, as rustc's error type is, instead of a second
    /// "unknown name" about the same mistake.
    poisoned: RefCell<HashSet<String>>,
    /// The shape `in` refers to; `None` once an earlier error made it unknown.
    pub input: Option<Shape>,
    parent: Option<Rc<Env>>,
    /// The scope of one pass of a `for` loop.
    loop_pass: bool,
}

impl Env {
    pub fn root(input: Option<Shape>) -> Rc<Env> {
        Rc::new(Env { vars: RefCell::default(), poisoned: RefCell::default(), input, parent: None, loop_pass: false })
    }

    pub fn child(parent: &Rc<Env>, input: Option<Shape>) -> Rc<Env> {
        let parent = Some(parent.clone());
        Rc::new(Env { vars: RefCell::default(), poisoned: RefCell::default(), input, parent, loop_pass: false })
    }

    /// The scope of one pass of a `for` loop.
    pub fn pass(parent: &Rc<Env>) -> Rc<Env> {
        let parent = Some(parent.clone());
        let input = parent.as_ref().and_then(|p| p.input);
        Rc::new(Env { vars: RefCell::default(), poisoned: RefCell::default(), input, parent, loop_pass: true })
    }

    /// Whether this scope is inside a pass of a `for` loop (of the same block).
    pub fn in_loop(&self) -> bool {
        self.loop_pass || self.parent.as_ref().is_some_and(|p| p.in_loop())
    }

    pub fn define(&self, name: &str, value: Const) {
        self.vars.borrow_mut().insert(name.to_string(), value);
    }

    /// Marks a name whose definition failed.
    pub fn poison(&self, name: &str) {
        self.vars.borrow_mut().remove(name);
        self.poisoned.borrow_mut().insert(name.to_string());
    }

    /// Whether `name` refers to a definition that failed (the innermost one counts).
    pub fn is_poisoned(&self, name: &str) -> bool {
        if self.vars.borrow().contains_key(name) {
            return false;
        }
        self.poisoned.borrow().contains(name) || self.parent.as_ref().is_some_and(|p| p.is_poisoned(name))
    }

    pub fn lookup(&self, name: &str) -> Option<Const> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Some(v.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }

    /// Every name visible here, innermost first.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vars.borrow().keys().cloned().collect();
        names.sort();
        if let Some(parent) = &self.parent {
            names.extend(parent.names());
        }
        names
    }
}
