//! Elaboration: AST → IR. Resolves names (file, imports, standard library), evaluates
//! parameters and arithmetic, instantiates blocks, stages, repeats and insertion
//! points, and computes every shape. Most diagnostics are born here; elaboration
//! keeps going after an error so that one run reports every mistake.

mod bind;
mod eval;
mod load;
mod network;
mod sequence;
mod structure;
mod value;
pub mod variants;

pub use eval::FUNCTIONS;
pub use load::{DefEntry, STD_FILES};

use crate::diagnostics::{Code, Diagnostic};
use crate::error::{Error, IoReason};
use crate::ir::{Model, Node, Rounding, Shape, Step};
use crate::source::{Sources, Span};
use crate::suggest;
use crate::syntax::ast::Ident;
use load::Library;
use std::collections::HashMap;
use std::rc::Rc;
use structure::Structural;
use value::ModuleValue;

/// More nodes than this is a runaway `repeat`, not a network.
pub const MAX_NODES: usize = 200_000;
/// `for` passes in one network beyond this are a runaway loop (nested loops multiply).
pub const MAX_PASSES: usize = MAX_NODES;
/// Blocks instantiated inside blocks deeper than this.
pub const MAX_DEPTH: usize = 48;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Replaces every network's declared input (`--input 3x32x32`).
    pub input: Option<Shape>,
    /// Lints silenced for the whole run (`--allow W0002`).
    pub allow: Vec<Code>,
    /// Network arguments given on the command line (`--set depth=30`): the parameter's
    /// name and the text of its value, an expression in the language.
    pub set: Vec<(String, String)>,
    /// Moves one rounded value by a whole step (its span, its exact value, the step): how
    /// the rounding report measures what each rounding costs (`cost::rounding`).
    pub nudge: Option<(Span, f64, i64)>,
}

/// A `--set NAME=VALUE`, parsed. Its text lives in `sources` as a file of its own, so
/// diagnostics about the value point into it.
pub(crate) struct Setting {
    name: String,
    pub(super) name_span: Span,
    /// `None` when the value did not parse (already reported).
    value: Option<crate::syntax::ast::Expr>,
}

pub struct Compilation {
    pub models: Vec<Model>,
    pub diagnostics: Vec<Diagnostic>,
    /// Networks the entry file defines (models holds those that elaborated cleanly).
    pub networks: Vec<String>,
    /// Every layer each network's check met, built or failed, in order (one per network).
    pub steps: Vec<NetworkSteps>,
    /// Every block and network visible to the file (its own, its imports', the standard
    /// library's), for tools that answer questions about names (the language server).
    pub definitions: Vec<Rc<DefEntry>>,
}

/// The layers checked in one network, with its input when that was known, and, for a
/// network that is not among the models, the parts of it that were built.
pub struct NetworkSteps {
    pub network: String,
    pub input: Option<Shape>,
    pub steps: Vec<Step>,
    pub built: Vec<Node>,
    /// Every value rounded to a whole number while building it, in the order met.
    pub roundings: Vec<Rounding>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// What a called name is: a structural form, a block of the library, or a primitive op.
#[derive(Clone)]
pub(crate) enum Callee {
    Structural(Structural),
    Block(Rc<DefEntry>),
    Op(&'static crate::ops::OpSpec),
}

impl std::fmt::Debug for Callee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Callee::Structural(form) => write!(f, "Structural({})", form.name()),
            Callee::Block(entry) => write!(f, "Block({})", entry.def.name.text),
            Callee::Op(spec) => write!(f, "Op({})", spec.name),
        }
    }
}

/// One file, compiled: its sources (for rendering diagnostics) and the result.
pub struct Compiled {
    pub path: String,
    pub sources: Sources,
    pub result: Compilation,
}

/// Reads and compiles a file. An unreadable file is a one-line error naming it.
pub fn compile_file(path: &str, options: &Options) -> Result<Compiled, Error> {
    let unreadable = |reason| Error::Read { path: path.into(), reason };
    // A missing file or a directory in short words, anything else in the system's.
    let text = std::fs::read(path).map_err(|e| {
        unreadable(match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory => IoReason::from(&e),
            _ => IoReason::os(&e),
        })
    })?;
    let text = String::from_utf8(text).map_err(|_| unreadable(IoReason::NotUtf8))?;
    let mut sources = Sources::new();
    let result = compile(&mut sources, path, &text, options);
    Ok(Compiled { path: path.to_string(), sources, result })
}

/// Compiles one file: every network it defines, with every diagnostic.
pub fn compile(sources: &mut Sources, name: &str, text: &str, options: &Options) -> Compilation {
    // Editors on Windows start UTF-8 files with a byte-order mark; it is not code.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (library, mut diagnostics) = load::load(sources, name, text);
    let entry = sources.find(name);
    let mut models = Vec::new();
    let mut steps = Vec::new();
    let networks: Vec<String> = library.networks.iter().map(|n| n.def.name.text.clone()).collect();
    let settings = parse_settings(sources, &options.set, &mut diagnostics);
    diagnostics.extend(unknown_settings(&library, &settings));
    for network in &library.networks {
        let mut elaborator = Elaborator::new(&library, options, &settings);
        let model = elaborator.network(network);
        steps.push(NetworkSteps {
            network: network.def.name.text.clone(),
            input: elaborator.model_input,
            steps: std::mem::take(&mut elaborator.steps),
            built: std::mem::take(&mut elaborator.built),
            roundings: std::mem::take(&mut elaborator.roundings),
        });
        diagnostics.extend(once_per_mistake(elaborator.diagnostics, entry));
        models.extend(model);
    }
    // A bad `--set` value is checked once per network that has the parameter; say it once.
    let mut seen_settings = Vec::new();
    diagnostics.retain(|d| {
        let from_set = settings.iter().any(|s| s.name_span.file == d.primary.span.file);
        let key = (d.code, d.primary.span);
        !from_set
            || if seen_settings.contains(&key) {
                false
            } else {
                seen_settings.push(key);
                true
            }
    });
    // A model is only handed on when the whole file is free of errors (an import that
    // failed, say, is not the network's own error but still makes it untrustworthy).
    if diagnostics.iter().any(Diagnostic::is_error) {
        for model in models.drain(..) {
            if let Some(checked) = steps.iter_mut().find(|s| s.network == model.name) {
                checked.built = model.nodes;
            }
        }
    }
    let mut definitions: Vec<Rc<DefEntry>> = library.defs.values().cloned().collect();
    definitions.sort_by_key(|e| (e.file, e.def.span.start));
    Compilation { models, diagnostics, networks, steps, definitions }
}

/// Orders a network's diagnostics as people read the file, and reports a mistake inside
/// a block that is copied (stage, repeat, insert) once: the first instance met, which
/// is the first in the network, with a note naming how many more there are.
fn once_per_mistake(mut found: Vec<Diagnostic>, entry: Option<crate::source::FileId>) -> Vec<Diagnostic> {
    // A stable sort: instances of one mistake stay in the order they were met.
    found.sort_by_key(|d| (d.primary.span.file, d.primary.span.start, d.code.id()));
    let mut kept: Vec<(Diagnostic, Vec<String>)> = Vec::new();
    for d in found {
        match kept.last_mut() {
            Some((first, more)) if first.code == d.code && first.primary.span == d.primary.span => {
                // The same instance twice (two layers after it failed alike) is named once.
                if let Some(instance) =
                    d.instance.clone().filter(|i| !more.contains(i) && first.instance.as_ref() != Some(i))
                {
                    more.push(instance);
                }
            }
            _ => kept.push((d, Vec::new())),
        }
    }
    // In the order of the file being checked: a mistake inside a library block is placed
    // where this file builds it.
    kept.sort_by_key(|(d, _)| {
        let anchor = std::iter::once(d.primary.span)
            .chain(d.secondary.iter().map(|l| l.span))
            .find(|s| Some(s.file) == entry)
            .unwrap_or(d.primary.span);
        (Some(anchor.file) != entry, anchor.file, anchor.start)
    });
    kept.into_iter()
        .map(|(d, more)| {
            if more.is_empty() {
                return d;
            }
            // Up to five are named; beyond, four and a count ("1 others" would hide one name).
            const NAMED: usize = 4;
            let shown = if more.len() <= NAMED + 1 { more.len() } else { NAMED };
            let mut names: Vec<String> = more.iter().take(shown).map(|p| format!("`{p}`")).collect();
            if more.len() > shown {
                names.push(format!("{} others", more.len() - shown));
            }
            let s = if more.len() == 1 { "" } else { "s" };
            d.with_note(format!("and {} more instance{s} of the same mistake: {}", more.len(), names.join(", ")))
        })
        .collect()
}

/// Each `--set NAME=VALUE` becomes a source file `--set` holding `NAME=VALUE`; the value
/// is parsed as an expression at its offset in that text. A name given twice is an
/// error: which of the two would count is not obvious.
fn parse_settings(sources: &mut Sources, set: &[(String, String)], diagnostics: &mut Vec<Diagnostic>) -> Vec<Setting> {
    let mut settings: Vec<Setting> = Vec::new();
    for (name, value) in set {
        let text = format!("{name}={value}");
        let file = sources.add("--set", text);
        let name_span = Span::new(file, 0, name.len());
        if let Some(first) = settings.iter().find(|s| &s.name == name) {
            diagnostics.push(
                Diagnostic::new(Code::DuplicateArgument, format!("`{name}` is set twice"), name_span, "set again here")
                    .with_secondary(first.name_span, "first set here")
                    .with_help(format!("give `--set {name}=...` once")),
            );
            continue;
        }
        // Blanks in place of `NAME=` keep the parsed spans at their place in the text.
        let padded = format!("{}{value}", " ".repeat(name.len() + 1));
        let value = match crate::syntax::parse_expression(file, &padded) {
            Ok(expr) => Some(expr),
            Err(found) => {
                // pest's "expected ..." lists what may start a whole file; say what a value
                // is instead. Other diagnostics (too large, too deep) stand as they are.
                for d in found {
                    if d.code != Code::Syntax {
                        diagnostics.push(d);
                        continue;
                    }
                    let span = Span::new(file, name.len() + 1, name.len() + 1 + value.len());
                    diagnostics.push(
                        Diagnostic::new(
                            Code::Syntax,
                            format!("`{value}` is not a value for `{name}`"),
                            span,
                            "not a value",
                        )
                        .with_help("write a number, `true` or `false`, a name, or an expression such as `2 * 8`"),
                    );
                }
                None
            }
        };
        settings.push(Setting { name: name.clone(), name_span, value });
    }
    settings
}

/// Every network of the file must have every `--set` parameter: commands use the
/// first network or all of them, and a setting quietly ignored by one would mislabel
/// its results.
fn unknown_settings(library: &Library, settings: &[Setting]) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for setting in settings {
        for network in &library.networks {
            let params: Vec<&str> = network.def.params.iter().map(|p| p.name.text.as_str()).collect();
            if params.contains(&setting.name.as_str()) {
                continue;
            }
            let name = &network.def.name.text;
            let mut d = Diagnostic::new(
                Code::UnknownName,
                format!("network `{name}` has no parameter `{}`", setting.name),
                setting.name_span,
                "unknown parameter",
            )
            .with_secondary(network.def.name.span, "defined here");
            d = if params.is_empty() {
                d.with_note(format!("`{name}` takes no parameters"))
            } else {
                d.with_note(format!("the parameters of `{name}` are {}", params.join(", ")))
            };
            if let Some(help) = suggest::did_you_mean(&setting.name, params.iter().copied()) {
                d = d.with_help(help);
            }
            found.push(d);
        }
    }
    found
}

/// The result of building one module: its node, and the shape that flows on. The
/// shape can be known even when the node is not (an error inside a residual body
/// leaves the residual's output equal to its input), which keeps later checks useful.
pub(crate) struct Outcome {
    node: Option<Node>,
    output: Option<Shape>,
}

impl Outcome {
    fn failed() -> Outcome {
        Outcome { node: None, output: None }
    }

    fn built(node: Node) -> Outcome {
        let output = Some(node.output);
        Outcome { node: Some(node), output }
    }
}

/// Names handed out in one naming scope (a block instance, a labelled sequence).
/// Unlabelled layers are named by their position, as in `nn.Sequential`.
pub(crate) struct Scope {
    path: String,
    used: HashMap<String, Span>,
    position: usize,
    /// Set before building a layer that archc adds (a shortcut projection, an inserted
    /// module): it is named but takes no position, so the numbering of the user's own
    /// unnamed layers does not depend on it.
    unpositioned: bool,
}

impl Scope {
    fn new(path: String) -> Scope {
        Scope { path, used: HashMap::new(), position: 0, unpositioned: false }
    }
}

/// A block being instantiated: for recursion checks, insertion points and context.
struct Frame {
    block: String,
    path: String,
    def_span: Span,
    call_span: Span,
}

pub(crate) struct Elaborator<'a> {
    library: &'a Library,
    options: &'a Options,
    settings: &'a [Setting],
    diagnostics: Vec<Diagnostic>,
    frames: Vec<Frame>,
    inserts: Vec<network::InsertRule>,
    allowed: Vec<Vec<Code>>,
    nodes_built: usize,
    aborted: bool,
    next_shared: usize,
    /// First use of each shared module: its path and tensors.
    shared: HashMap<usize, (Vec<crate::ir::NamedTensor>, Span, Shape)>,
    model_input: Option<Shape>,
    /// The last layer that made the feature map smaller, for "shrinks to zero".
    last_shrink: Option<(Span, String, Shape, Shape)>,
    /// The environment of the expression being evaluated, for "did you mean".
    current_env: Option<std::rc::Rc<value::Env>>,
    /// Every layer met, built or failed (see `Step`).
    steps: Vec<Step>,
    /// The network's top-level nodes that were built, also when others failed.
    built: Vec<Node>,
    /// The `insert` statements whose modules are being built, innermost last.
    insert_sites: Vec<Span>,
    /// The blocks the network instantiates, in the order first met (for an `insert` that
    /// matched nothing: which blocks it could have named).
    used_blocks: Vec<String>,
    /// The `for` passes being elaborated, outermost first (`v = 64`), for saying which
    /// pass a mistake is in.
    passes: Vec<(usize, String)>,
    passes_unrolled: usize,
    roundings: Vec<Rounding>,
}

impl<'a> Elaborator<'a> {
    fn new(library: &'a Library, options: &'a Options, settings: &'a [Setting]) -> Self {
        Elaborator {
            library,
            options,
            settings,
            diagnostics: Vec::new(),
            frames: Vec::new(),
            inserts: Vec::new(),
            allowed: vec![options.allow.clone()],
            nodes_built: 0,
            aborted: false,
            next_shared: 0,
            shared: HashMap::new(),
            model_input: None,
            last_shrink: None,
            current_env: None,
            steps: Vec::new(),
            built: Vec::new(),
            insert_sites: Vec::new(),
            used_blocks: Vec::new(),
            passes: Vec::new(),
            passes_unrolled: 0,
            roundings: Vec::new(),
        }
    }

    /// Records an error, adding where the enclosing block was instantiated when the
    /// error sits inside that block's definition.
    fn error(&mut self, mut diagnostic: Diagnostic) {
        // The passes of the loops being built in the innermost block (or the network).
        let depth = self.frames.len();
        let passes: Vec<&str> = self.passes.iter().filter(|(d, _)| *d == depth).map(|(_, p)| p.as_str()).collect();
        let pass = (!passes.is_empty()).then(|| passes.join("; "));
        if let Some(frame) = self.frames.last() {
            let inside = diagnostic.primary.span.file == frame.def_span.file
                && frame.def_span.start <= diagnostic.primary.span.start
                && diagnostic.primary.span.end <= frame.def_span.end;
            if inside {
                diagnostic.instance = Some(frame.path.clone());
                let at = if frame.path.is_empty() { String::new() } else { format!(" as `{}`", frame.path) };
                diagnostic =
                    diagnostic.with_secondary(frame.call_span, format!("`{}` instantiated here{at}", frame.block));
                // A module an `insert` put here: the insert is what the user wrote.
                if let Some(&site) = self.insert_sites.last() {
                    diagnostic = diagnostic.with_secondary(site, "inserted by this `insert`");
                }
                // Deep inside library blocks, also say which layer of the network it is in.
                let outermost = &self.frames[0];
                if self.frames.len() > 1 && outermost.call_span.file != frame.call_span.file {
                    diagnostic = diagnostic.with_secondary(
                        outermost.call_span,
                        format!("in `{}` (`{}`), made here", outermost.path, outermost.block),
                    );
                }
            }
        }
        // A mistake in a loop's body is met once per pass: say which pass this is, and
        // group the others under it (`once_per_mistake`; in a block, with its path).
        if let Some(pass) = pass {
            diagnostic = diagnostic.with_note(format!("in the pass where {pass}"));
            diagnostic.instance = Some(match diagnostic.instance.take() {
                Some(path) => format!("{path} where {pass}"),
                None => pass,
            });
        }
        self.diagnostics.push(diagnostic);
    }

    fn lint(&mut self, diagnostic: Diagnostic) {
        if self.allowed.iter().any(|frame| frame.contains(&diagnostic.code)) {
            return;
        }
        self.error(diagnostic);
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// Names that a bare word used as a value may have been meant as: the parameters
    /// and `let`s in scope, and the booleans (Python's `True` is a common slip).
    fn known_value_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.current_env.as_ref().map(|e| e.names()).unwrap_or_default();
        names.extend(["true".to_string(), "false".to_string()]);
        names
    }

    /// What `name` calls, if it calls anything: looked up once, where the call is
    /// evaluated, and carried in the module value to where it is built.
    fn callee(&self, name: &str) -> Option<Callee> {
        if let Some(form) = Structural::named(name) {
            return Some(Callee::Structural(form));
        }
        if let Some(entry) = self.library.defs.get(name) {
            return Some(Callee::Block(entry.clone()));
        }
        crate::ops::spec(name).map(Callee::Op)
    }

    fn unknown_callee(&mut self, name: &Ident) {
        let mut candidates: Vec<String> = self.library.defs.keys().cloned().collect();
        candidates.extend(crate::ops::all_specs().map(|s| s.name.to_string()));
        candidates.extend(Structural::ALL.iter().map(|s| s.name().to_string()));
        candidates.extend(eval::FUNCTIONS.iter().map(|s| s.to_string()));
        candidates.sort();
        let mut d = Diagnostic::new(
            Code::UnknownName,
            format!("unknown layer or block `{}`", name.text),
            name.span,
            "not a layer, block or function",
        );
        d = match suggest::did_you_mean(&name.text, candidates.iter().map(String::as_str)) {
            Some(help) => d.with_help(help),
            None => d.with_help("define it with `block NAME(...) { ... }`, or `import` the file that does"),
        };
        self.error(d);
    }

    /// Counts a node against the budget; false once the network is too large.
    fn spend_node(&mut self, span: Span) -> bool {
        if self.aborted {
            return false;
        }
        self.nodes_built += 1;
        if self.nodes_built > MAX_NODES {
            self.aborted = true;
            self.error(
                Diagnostic::new(
                    Code::TooLarge,
                    format!("the network has more than {MAX_NODES} layers"),
                    span,
                    "elaboration stopped here",
                )
                .with_help("check `repeat` and `stage` counts"),
            );
            return false;
        }
        true
    }

    fn module_value(&self, value: &value::Const) -> Option<Rc<ModuleValue>> {
        match value {
            value::Const::Module(m) => Some(m.clone()),
            _ => None,
        }
    }
}
