//! A checked model as one self-contained Python file that needs only `torch`: an
//! `nn.Module` class per kind of block (blocks that differ only in numbers share a
//! class, the numbers that differ become its constructor's arguments), plain
//! containers as `nn.Sequential`, and the network's class, whose `forward` reads like
//! hand-written PyTorch (`identity = x`, `x = x + identity`, gates, concatenations).
//! Every attribute is named by its IR path, so the state dict's names are archc's (and
//! torchvision's): an archc checkpoint loads with `load_state_dict` as it is.
//!
//! Generation has two passes. The first walks the IR and writes each block instance as
//! a pattern of text, numbered slots (the whole numbers of its modules' constructors)
//! and calls of the blocks inside it; instances with the same pattern are one class.
//! The second decides each class's constructor arguments (the slots whose value
//! differs between its instances, one argument per distinct column of values) and
//! renders the classes, inner ones first.

use crate::error::{Error, ExportError};
use crate::ir::{Merge, Model, Node, NodeKind, Shortcut};
use crate::ops::torch::{Arg, Call};
use crate::source::Sources;
use crate::tensor::Shape;
use std::collections::HashMap;

/// The generated file and the classes it defines (the network's last).
pub struct Module {
    pub text: String,
    pub classes: Vec<String>,
}

#[derive(Clone, Debug)]
enum Token {
    Text(String),
    /// A whole number that may become a constructor argument.
    Slot(usize),
    /// The constructor call of the block `children[i]`.
    Child(usize),
}

#[derive(Clone, Debug)]
struct ChildRef {
    class: usize,
    /// Where the child instance's slots start among the parent's.
    offset: usize,
}

/// A class body (or a fragment of one) with its slots' names and values.
#[derive(Clone, Debug, Default)]
struct Piece {
    tokens: Vec<Token>,
    names: Vec<String>,
    /// What each slot is (`in_channels`), for naming arguments.
    kinds: Vec<&'static str>,
    values: Vec<i64>,
    children: Vec<ChildRef>,
}

impl Piece {
    fn text(&mut self, text: impl Into<String>) {
        self.tokens.push(Token::Text(text.into()));
    }

    fn slot(&mut self, name: String, kind: &'static str, value: i64) {
        self.tokens.push(Token::Slot(self.values.len()));
        self.names.push(name);
        self.kinds.push(kind);
        self.values.push(value);
    }

    /// A call of an instance of `class` whose own slots are `instance`.
    fn child(&mut self, class: usize, prefix: &str, instance: &Piece) {
        self.tokens.push(Token::Child(self.children.len()));
        self.children.push(ChildRef { class, offset: self.values.len() });
        self.names.extend(instance.names.iter().map(|n| format!("{prefix}_{n}")));
        self.kinds.extend(&instance.kinds);
        self.values.extend(&instance.values);
    }

    /// `other` inline, its slots and children renumbered after this piece's.
    fn append(&mut self, other: Piece) {
        let (slots, children) = (self.values.len(), self.children.len());
        self.tokens.extend(other.tokens.into_iter().map(|t| match t {
            Token::Slot(n) => Token::Slot(n + slots),
            Token::Child(i) => Token::Child(i + children),
            text => text,
        }));
        self.names.extend(other.names);
        self.kinds.extend(other.kinds);
        self.values.extend(other.values);
        self.children.extend(other.children.into_iter().map(|c| ChildRef { class: c.class, offset: c.offset + slots }));
    }
}

/// A class: its pattern (from its first instance), every instance's slot values, and
/// (after the second pass) its name and constructor arguments.
struct Class {
    block: String,
    key: String,
    pattern: Piece,
    instances: Vec<Vec<i64>>,
    name: String,
    /// (argument name, the slot positions it stands for; the first represents it).
    params: Vec<(String, Vec<usize>)>,
}

struct Writer<'a> {
    classes: Vec<Class>,
    by_key: HashMap<String, usize>,
    sources: &'a Sources,
    sinusoidal: bool,
    ordered_dict: bool,
}

fn identifier(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
    ];
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

/// `self.name`, or `self._modules["0"]` for a name Python cannot write after a dot.
fn attribute(name: &str) -> String {
    if identifier(name) { format!("self.{name}") } else { format!("self._modules[\"{name}\"]") }
}

fn camel(name: &str) -> String {
    name.split(['_', '.', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The last component of `path` (each IR level adds one).
fn local(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn call_piece(call: &Call, prefix: &str) -> Piece {
    let mut piece = Piece::default();
    let (open, close) = match call.wrap {
        Some(wrap) => wrap.split_once("{}").unwrap_or((wrap, "")),
        None => ("", ""),
    };
    piece.text(format!("{open}{}(", call.func));
    for (i, arg) in call.args.iter().enumerate() {
        if i > 0 {
            piece.text(", ");
        }
        match arg {
            Arg::Int { what, keyword, value } => {
                if let Some(keyword) = keyword {
                    piece.text(format!("{keyword}="));
                }
                piece.slot(format!("{prefix}_{what}"), what, *value);
            }
            Arg::Text(text) => piece.text(text.clone()),
        }
    }
    piece.text(format!("){close}"));
    piece
}

/// Whether every layer inside `node` is named under its path. A block that uses a
/// module of an enclosing one (a `let`-bound layer shared by two branches) is not a
/// module of its own: its body is written into the enclosing class's `forward`.
fn owns_paths(node: &Node) -> bool {
    fn under(node: &Node, prefix: &str) -> bool {
        let own = match &node.kind {
            NodeKind::Op { .. } | NodeKind::Block { .. } => node.path.starts_with(prefix),
            _ => true,
        };
        own && node.children().into_iter().all(|child| under(child, prefix))
    }
    let prefix = format!("{}.", node.path);
    node.children().into_iter().all(|child| under(child, &prefix))
}

/// Structural nodes (residuals, gates, parallel branches) and ops applied other than
/// as `module(x)` need a class; anything else is an `nn.Sequential`.
fn sequential(node: &Node) -> bool {
    let NodeKind::Block { children, .. } = &node.kind else { return false };
    !node.shared
        && owns_paths(node)
        && children.iter().all(|child| match &child.kind {
            NodeKind::Op { op, .. } => !child.shared && op.torch(&child.input).sequential(),
            NodeKind::Block { .. } => !child.shared,
            _ => false,
        })
}

impl Writer<'_> {
    fn unsupported(&self, node: &Node, what: &str) -> Error {
        let (line, column) = self.sources.line_column(node.span.file, node.span.start);
        ExportError::NoModule {
            layer: node.path.clone(),
            location: format!("{}:{line}:{column}", self.sources.name(node.span.file)),
            what: what.into(),
        }
        .into()
    }

    /// The module expression of a child of a container: an op's module, a nested
    /// `nn.Sequential`, or a block class's call.
    fn module_piece(&mut self, node: &Node, prefix: &str) -> Result<Piece, Error> {
        match &node.kind {
            NodeKind::Op { op, .. } => match op.torch(&node.input).module {
                Some(call) => Ok(call_piece(&call, prefix)),
                None => Err(self.unsupported(node, "it has no module form")),
            },
            NodeKind::Block { children, .. } if sequential(node) => {
                let mut piece = Piece::default();
                let indexed = children.iter().enumerate().all(|(i, c)| local(&c.path) == i.to_string());
                piece.text(if indexed { "nn.Sequential(" } else { "nn.Sequential(OrderedDict([" });
                self.ordered_dict |= !indexed;
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        piece.text(", ");
                    }
                    let name = local(&child.path);
                    if !indexed {
                        piece.text(format!("(\"{name}\", "));
                    }
                    let inner = self.module_piece(child, &format!("{prefix}_{name}"))?;
                    piece.append(inner);
                    if !indexed {
                        piece.text(")");
                    }
                }
                piece.text(if indexed { ")" } else { "]))" });
                Ok(piece)
            }
            NodeKind::Block { .. } => {
                let (class, instance) = self.class(node)?;
                let mut piece = Piece::default();
                piece.child(class, prefix, &instance);
                Ok(piece)
            }
            _ => Err(self.unsupported(node, "a residual, gate or branch outside a block")),
        }
    }

    /// The class of a block instance (registered on first sight) and its slots.
    fn class(&mut self, node: &Node) -> Result<(usize, Piece), Error> {
        let NodeKind::Block { name, children } = &node.kind else { unreachable!("classes are made for blocks") };
        let mut init = Piece::default();
        let mut forward = Vec::new();
        let mut fresh = HashMap::new();
        self.body(children, &node.path, "x", &mut init, &mut forward, &mut fresh)?;
        let block = match name.as_str() {
            // Anonymous groups are named after where they are.
            "seq" | "stage" | "repeat" => local(&node.path).to_string(),
            other => other.to_string(),
        };
        Ok(self.register(block, init, forward))
    }

    fn register(&mut self, block: String, init: Piece, forward: Vec<String>) -> (usize, Piece) {
        let mut key = block.clone();
        for token in &init.tokens {
            match token {
                Token::Text(t) => key.push_str(t),
                Token::Slot(_) => key.push('\u{1}'),
                Token::Child(i) => key.push_str(&format!("\u{2}{}\u{3}", self.classes[init.children[*i].class].key)),
            }
        }
        key.push('\u{4}');
        key.push_str(&forward.join("\n"));
        let mut pattern = init.clone();
        pattern.tokens.push(Token::Text("\u{5}".into()));
        pattern.tokens.extend(forward.into_iter().map(|line| Token::Text(format!("{line}\n"))));
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                self.classes.push(Class {
                    block,
                    key: key.clone(),
                    pattern,
                    instances: Vec::new(),
                    name: String::new(),
                    params: Vec::new(),
                });
                self.by_key.insert(key, self.classes.len() - 1);
                self.classes.len() - 1
            }
        };
        self.classes[id].instances.push(init.values.clone());
        (id, init)
    }

    fn fresh(fresh: &mut HashMap<&'static str, usize>, base: &'static str) -> String {
        let n = fresh.entry(base).or_insert(0);
        *n += 1;
        if *n == 1 { base.to_string() } else { format!("{base}_{n}") }
    }

    /// `forward`'s lines for `nodes` acting on the variable `var`, and `__init__`'s
    /// attributes for the modules they use.
    fn body(
        &mut self,
        nodes: &[Node],
        class_path: &str,
        var: &str,
        init: &mut Piece,
        forward: &mut Vec<String>,
        fresh: &mut HashMap<&'static str, usize>,
    ) -> Result<(), Error> {
        for node in nodes {
            let name = local(&node.path).to_string();
            // One level below the class, or the layer is not the class's attribute.
            let attribute_here = node.path == crate::ir::join_path(class_path, &name);
            match &node.kind {
                NodeKind::Op { op, .. } => {
                    let torch = op.torch(&node.input);
                    let unnamed = name.chars().all(|c| c.is_ascii_digit()) || !attribute_here;
                    if !attribute_here && torch.function.is_none() {
                        return Err(self.unsupported(
                            node,
                            "its weights belong to a block inside a block that uses layers of the one around it",
                        ));
                    }
                    match (&torch.module, &torch.function) {
                        (None, Some(function)) | (Some(_), Some(function)) if unnamed || torch.module.is_none() => {
                            if function != "{x}" {
                                self.sinusoidal |= function.contains("sinusoidal(");
                                forward.push(format!("{var} = {}", function.replace("{x}", var)));
                            }
                        }
                        (Some(call), _) => {
                            if !node.shared {
                                self.declare(init, &name, call_piece(call, &name));
                            }
                            let m = attribute(&name);
                            forward.push(format!("{var} = {}", torch.apply.replace("{m}", &m).replace("{x}", var)));
                        }
                        (None, _) => return Err(self.unsupported(node, "it has no PyTorch form")),
                    }
                }
                NodeKind::Block { children, .. } if !owns_paths(node) || !attribute_here => {
                    self.body(children, class_path, var, init, forward, fresh)?;
                }
                NodeKind::Block { .. } => {
                    if !node.shared {
                        let piece = self.module_piece(node, &name)?;
                        self.declare(init, &name, piece);
                    }
                    forward.push(format!("{var} = {}({var})", attribute(&name)));
                }
                NodeKind::Residual { body, shortcut } => {
                    if let Shortcut::Off = shortcut {
                        self.body(body, class_path, var, init, forward, fresh)?;
                        continue;
                    }
                    let identity = Self::fresh(fresh, "identity");
                    forward.push(format!("{identity} = {var}"));
                    self.body(body, class_path, var, init, forward, fresh)?;
                    if let Shortcut::Projection(projection) = shortcut {
                        self.body(std::slice::from_ref(projection), class_path, &identity, init, forward, fresh)?;
                    }
                    forward.push(format!("{var} = {var} + {identity}"));
                }
                NodeKind::Scale { gate } => {
                    let g = Self::fresh(fresh, "gate");
                    forward.push(format!("{g} = {var}"));
                    self.body(gate, class_path, &g, init, forward, fresh)?;
                    let gate_shape = gate.last().map_or(node.input, |n| n.output);
                    let broadcast = match (node.input, gate_shape) {
                        (Shape::Image { .. }, Shape::Vector { .. }) => "[:, :, None, None]",
                        (Shape::Tokens { .. }, Shape::Vector { .. }) => "[:, None, :]",
                        _ => "",
                    };
                    forward.push(format!("{var} = {var} * {g}{broadcast}"));
                }
                NodeKind::Parallel { merge, branches } => {
                    let mut outs = Vec::new();
                    for branch in branches {
                        let b = Self::fresh(fresh, "branch");
                        forward.push(format!("{b} = {var}"));
                        self.body(std::slice::from_ref(branch), class_path, &b, init, forward, fresh)?;
                        outs.push(b);
                    }
                    let merged = match merge {
                        Merge::Concat => {
                            let dim = if matches!(node.input, Shape::Image { .. }) { 1 } else { -1 };
                            format!("torch.cat([{}], dim={dim})", outs.join(", "))
                        }
                        Merge::Sum => outs.join(" + "),
                        Merge::Mul => outs.join(" * "),
                    };
                    forward.push(format!("{var} = {merged}"));
                }
            }
        }
        Ok(())
    }

    /// `self.name = <module>` in `__init__`.
    fn declare(&mut self, init: &mut Piece, name: &str, module: Piece) {
        match identifier(name) {
            true => init.text(format!("        self.{name} = ")),
            false => init.text(format!("        self.add_module(\"{name}\", ")),
        }
        init.append(module);
        init.text(if identifier(name) { "\n" } else { ")\n" });
    }

    /// Second pass: names and constructor arguments, inner classes first.
    fn decide(&mut self) {
        let mut taken: Vec<String> = Vec::new();
        for id in 0..self.classes.len() {
            let class = &self.classes[id];
            let mut used: Vec<usize> = class
                .pattern
                .tokens
                .iter()
                .filter_map(|t| if let Token::Slot(n) = t { Some(*n) } else { None })
                .collect();
            for child in &class.pattern.children {
                used.extend(self.classes[child.class].params.iter().map(|(_, positions)| child.offset + positions[0]));
            }
            let column = |n: usize| class.instances.iter().map(|values| values[n]).collect::<Vec<i64>>();
            let mut params: Vec<(String, Vec<usize>)> = Vec::new();
            let mut columns: Vec<Vec<i64>> = Vec::new();
            for n in used {
                let values = column(n);
                if values.iter().all(|v| *v == values[0]) {
                    continue;
                }
                match columns.iter().position(|c| *c == values) {
                    Some(at) => params[at].1.push(n),
                    None => {
                        params.push((String::new(), vec![n]));
                        columns.push(values);
                    }
                }
            }
            // Each argument is named for what it is (`channels` when it is both a layer's
            // input and output width), or by its first layer when that is ambiguous.
            let kinds: Vec<&str> = params
                .iter()
                .map(|(_, positions)| {
                    let kinds: Vec<&str> = positions.iter().map(|&n| class.pattern.kinds[n]).collect();
                    let widths = ["in_channels", "out_channels", "num_features", "in_features", "out_features"];
                    let into = kinds.iter().any(|k| k.starts_with("in_"));
                    let out = kinds.iter().any(|k| k.starts_with("out_") || *k == "num_features");
                    if into && out && kinds.iter().all(|k| widths.contains(k)) { "channels" } else { kinds[0] }
                })
                .collect();
            for (i, (name, positions)) in params.iter_mut().enumerate() {
                let unique = kinds.iter().filter(|k| **k == kinds[i]).count() == 1;
                *name = if unique { kinds[i].to_string() } else { class.pattern.names[positions[0]].clone() };
            }
            let mut base = camel(&class.block);
            if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
                base = format!("Block{base}");
            }
            let mut name = base.clone();
            let mut k = 2;
            while taken.contains(&name) {
                name = format!("{base}{k}");
                k += 1;
            }
            taken.push(name.clone());
            let class = &mut self.classes[id];
            class.params = params;
            class.name = name;
        }
    }

    /// A slot of class `id` as its code: the argument standing for it, or its value.
    fn value(&self, id: usize, n: usize) -> String {
        let class = &self.classes[id];
        match class.params.iter().find(|(_, positions)| positions.contains(&n)) {
            Some((name, _)) => name.clone(),
            None => class.instances[0][n].to_string(),
        }
    }

    fn render(&self, id: usize) -> String {
        let class = &self.classes[id];
        let mut code = String::new();
        for token in &class.pattern.tokens {
            match token {
                Token::Text(t) => code.push_str(t),
                Token::Slot(n) => code.push_str(&self.value(id, *n)),
                Token::Child(i) => {
                    let child = &class.pattern.children[*i];
                    let inner = &self.classes[child.class];
                    let args: Vec<String> = inner
                        .params
                        .iter()
                        .map(|(name, positions)| format!("{name}={}", self.value(id, child.offset + positions[0])))
                        .collect();
                    code.push_str(&format!("{}({})", inner.name, args.join(", ")));
                }
            }
        }
        let (init, forward) = code.split_once('\u{5}').unwrap_or((&code, ""));
        let init: String = init.lines().map(|line| wrap(line) + "\n").collect();
        let params: String = class.params.iter().map(|(name, _)| format!(", {name}")).collect();
        let mut out =
            format!("class {}(nn.Module):\n    def __init__(self{params}):\n        super().__init__()\n", class.name);
        out.push_str(&init);
        out.push_str("\n    def forward(self, x):\n");
        for line in forward.split('\n').filter(|l| !l.is_empty()) {
            out.push_str(&wrap(&format!("        {line}")));
            out.push('\n');
        }
        out.push_str("        return x\n");
        out
    }
}

/// Generated files are formatted as black formats them at this width.
const WIDTH: usize = 120;

/// A line longer than `WIDTH` split as black splits it: the bracket that closes the
/// line opened on a line of its own, one argument per line with a trailing comma (so
/// black keeps them so), each argument split again if still too long.
fn wrap(line: &str) -> String {
    if line.chars().count() <= WIDTH {
        return line.to_string();
    }
    let indent = line.len() - line.trim_start().len();
    let (body, comma) = match line.strip_suffix(',') {
        Some(body) => (body, ","),
        None => (line, ""),
    };
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let Some(&(close_at, close)) = chars.last().filter(|(_, c)| *c == ')' || *c == ']') else {
        return line.to_string();
    };
    let (mut depth, mut quoted, mut open_at) = (0i32, false, None);
    for &(at, c) in chars.iter().rev() {
        match c {
            '"' => quoted = !quoted,
            ')' | ']' if !quoted => depth += 1,
            '(' | '[' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    open_at = Some(at);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(open_at) = open_at else { return line.to_string() };
    let inner = &body[open_at + 1..close_at];
    let mut args = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                args.push(inner[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    args.push(inner[start..].trim());
    args.retain(|a| !a.is_empty());
    let pad = " ".repeat(indent + 4);
    let mut out = format!("{}\n", &body[..=open_at]);
    for arg in args {
        out.push_str(&wrap(&format!("{pad}{arg},")));
        out.push('\n');
    }
    out.push_str(&format!("{}{close}{comma}", " ".repeat(indent)));
    out
}

const SINUSOIDAL: &str = "def sinusoidal(n, d):
    \"\"\"The fixed position table of Vaswani et al.: sin at even features, cos at odd ones.\"\"\"
    position = torch.arange(n, dtype=torch.float64)[:, None]
    angle = position / 10000.0 ** (torch.arange(0, d - d % 2, 2, dtype=torch.float64) / d)
    table = torch.zeros(n, d, dtype=torch.float64)
    table[:, 0 : d - d % 2 : 2] = angle.sin()
    table[:, 1 : d - d % 2 : 2] = angle.cos()
    return table[None].float()
";

pub fn module(model: &Model, sources: &Sources) -> Result<Module, Error> {
    let mut writer =
        Writer { classes: Vec::new(), by_key: HashMap::new(), sources, sinusoidal: false, ordered_dict: false };
    let mut init = Piece::default();
    let mut forward = Vec::new();
    let mut fresh = HashMap::new();
    writer.body(&model.nodes, "", "x", &mut init, &mut forward, &mut fresh)?;
    let (network, _) = writer.register(model.name.clone(), init, forward);
    writer.decide();
    let source = model.span.file;
    let net = &writer.classes[network].name;
    let mut text = format!(
        "\"\"\"{name}, exported by archc {version} from {file}.\n\n\
         Input {input}, output {output}. Parameter and buffer names are archc's (torchvision's and\n\
         timm's), so archc's checkpoints load as they are, and weights saved from this\n\
         module load back into `archc eval` and `archc predict`:\n\n    \
         from safetensors.torch import load_file\n\n    \
         model = {net}()\n    \
         model.load_state_dict(load_file(\"best.safetensors\"))\n    \
         model.eval()  # batch norm with running statistics, no dropout, as archc evaluates\n\"\"\"\n\n",
        name = model.name,
        version = env!("CARGO_PKG_VERSION"),
        file = sources.name(source),
        input = model.input,
        output = model.output,
    );
    if writer.ordered_dict {
        text.push_str("from collections import OrderedDict\n\n");
    }
    text.push_str("import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n");
    if writer.sinusoidal {
        text.push_str(SINUSOIDAL);
        text.push_str("\n\n");
    }
    let classes: Vec<String> = writer.classes.iter().map(|c| c.name.clone()).collect();
    let rendered: Vec<String> = (0..writer.classes.len()).map(|id| writer.render(id)).collect();
    text.push_str(&rendered.join("\n\n"));
    text.push_str(&format!(
        "\n\nif __name__ == \"__main__\":\n    model = {net}()\n    print(sum(p.numel() for p in model.parameters()), \"parameters\")\n"
    ));
    Ok(Module { text, classes })
}
