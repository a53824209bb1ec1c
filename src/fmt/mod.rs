//! `archc fmt`: one canonical layout for `.arch` files, laid out again from the
//! concrete syntax tree (which, unlike the AST, keeps every keyword and bracket with its
//! span) and the comments found between its tokens.
//!
//! The style is the zoo's: four-space indentation, one statement per line, labels of
//! consecutive single-line layers aligned, `a: b` and `a, b` spaced, argument lists
//! longer than the line wrapped one argument per line, at most one blank line, and every
//! comment where it was (own-line comments stay on their own line before what follows
//! them, trailing comments stay at the end of their line). A file that does not parse
//! is not formatted: its diagnostics come back instead.

use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::{Rule, code_end, concrete_tree};
use pest::iterators::Pair;

/// Lines longer than this have their argument lists wrapped.
pub const WIDTH: usize = 100;
const INDENT: &str = "    ";

/// Formats a file, or returns why it cannot be (syntax errors, as diagnostics).
pub fn format(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (_, diagnostics) = crate::syntax::parse(file, text);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    let Some(tree) = concrete_tree(text) else { return Err(diagnostics) };
    let mut printer = Printer { text, comments: comments(text), next: 0, out: String::new() };
    let items: Vec<Pair<Rule>> = tree.into_inner().filter(|p| p.as_rule() != Rule::EOI).collect();
    printer.sequence(&items, 0, text.len());
    Ok(printer.out)
}

/// A `# ...` comment: its byte range (without the line break).
#[derive(Clone, Copy, Debug)]
struct Comment {
    start: usize,
    end: usize,
}

/// Every comment in the file, in order (a `#` inside a string is not one).
fn comments(text: &str) -> Vec<Comment> {
    let mut found = Vec::new();
    let mut in_string = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\n' => in_string = false,
            '"' => in_string = !in_string,
            '#' if !in_string => {
                let mut end = text.len();
                while let Some(&(j, c)) = chars.peek() {
                    if c == '\n' {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                found.push(Comment { start: i, end });
            }
            _ => {}
        }
    }
    found
}

struct Printer<'t> {
    text: &'t str,
    comments: Vec<Comment>,
    /// The first comment not yet printed.
    next: usize,
    out: String,
}

/// A statement or definition and the label column it is printed at.
struct Element<'t> {
    pair: Pair<'t, Rule>,
    /// Width of `label: ` padded for alignment, 0 when there is nothing to align.
    label_width: usize,
}

impl<'t> Printer<'t> {
    fn comment_text(&self, comment: Comment) -> &'t str {
        self.text[comment.start..comment.end].trim_end()
    }

    /// Whether the source between two offsets holds an empty line.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let pieces: Vec<&str> = self.text[from.min(to)..to].split('\n').collect();
        // The first and last pieces are the ends of the lines `from` and `to` are on.
        pieces.len() >= 3 && pieces[1..pieces.len() - 1].iter().any(|line| line.trim().is_empty())
    }

    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Prints, as own-line comments at `depth`, the comments that start before `until`;
    /// `previous` is the end of what was printed last (for blank lines between).
    fn comments_before(&mut self, until: usize, depth: usize, previous: &mut Option<usize>) {
        while let Some(&comment) = self.comments.get(self.next) {
            if comment.start >= until {
                break;
            }
            if previous.is_some_and(|p| self.blank_between(p, comment.start)) {
                self.out.push('\n');
            }
            let text = self.comment_text(comment);
            self.line(depth, text);
            *previous = Some(comment.end);
            self.next += 1;
        }
    }

    /// A comment that starts on the line where `end` is, after it: printed at the end of
    /// that line. Returns the new end.
    fn trailing_comment(&mut self, end: usize) -> Option<(usize, &'t str)> {
        let comment = *self.comments.get(self.next)?;
        if comment.start < end || self.text[end..comment.start].contains('\n') {
            return None;
        }
        self.next += 1;
        Some((comment.end, self.comment_text(comment)))
    }

    /// Whether a comment lies inside the range.
    fn has_comment(&self, start: usize, end: usize) -> bool {
        self.comments[self.next..].iter().any(|c| c.start >= start && c.start < end)
    }

    /// Items of a file or statements of a body, each on its own line(s), with the
    /// comments and (single) blank lines between them.
    fn sequence(&mut self, pairs: &[Pair<'t, Rule>], depth: usize, close: usize) {
        let elements = self.aligned(pairs, depth);
        let mut previous: Option<usize> = None;
        for element in elements {
            let (start, end) = (element.pair.as_span().start(), code_end(&element.pair));
            self.comments_before(start, depth, &mut previous);
            if previous.is_some_and(|p| self.blank_between(p, start)) {
                self.out.push('\n');
            }
            self.element(&element, depth);
            previous = Some(end);
            // A comment after the body's `}` is not its last statement's.
            let inside = self.comments.get(self.next).is_some_and(|c| c.start < close);
            if inside && let Some((end, comment)) = self.trailing_comment(end) {
                // The line just printed ends in '\n'; the comment goes before it.
                self.out.pop();
                self.out.push_str("  ");
                self.out.push_str(comment);
                self.out.push('\n');
                previous = Some(end);
            }
        }
        self.comments_before(close, depth, &mut previous);
    }

    /// The label width of each statement. Single-line layer statements align their
    /// layers at one column for the whole body (the widest label), the zoo's layout:
    /// labelled ones, and unlabelled ones that continue a labelled one (`bn1: batchnorm`
    /// then `relu`) with no blank line or multi-line statement between.
    fn aligned(&self, pairs: &[Pair<'t, Rule>], depth: usize) -> Vec<Element<'t>> {
        // A statement whose arguments wrap is laid out on several lines too: the set of
        // single-line statements and the column they align at depend on each other, so
        // the widest-labelled one that no longer fits is dropped until all fit.
        let layout: Vec<Option<(usize, usize)>> = pairs
            .iter()
            .map(|pair| {
                let candidate = pair.as_rule() == Rule::layer_stmt
                    && !has_body(pair)
                    && !self.has_comment(pair.as_span().start(), code_end(pair));
                candidate.then(|| {
                    let label = self.label_of(pair).map_or(0, |l| l.chars().count() + 2);
                    let layer = pair.clone().into_inner().find(|p| p.as_rule() == Rule::layer);
                    (label, layer.map_or(0, |layer| self.flat(&layer).chars().count()))
                })
            })
            .collect();
        // Those too long even at their own label's width wrap whatever the column is.
        let mut excluded: Vec<bool> = layout
            .iter()
            .map(|l| l.is_some_and(|(label, layer)| depth * INDENT.len() + label + layer > WIDTH))
            .collect();
        let width = loop {
            let width = (0..pairs.len())
                .filter(|&i| !excluded[i])
                .filter_map(|i| layout[i].map(|(label, _)| label))
                .max()
                .unwrap_or(0);
            let too_long = (0..pairs.len())
                .filter(|&i| !excluded[i])
                .find(|&i| layout[i].is_some_and(|(_, layer)| depth * INDENT.len() + width + layer > WIDTH));
            match too_long {
                Some(i) => excluded[i] = true,
                None => break width,
            }
        };
        let single_line = |i: usize| layout[i].is_some() && !excluded[i];
        let mut in_run = false;
        let mut widths = Vec::with_capacity(pairs.len());
        for (i, pair) in pairs.iter().enumerate() {
            let parted = i > 0 && self.blank_between(code_end(&pairs[i - 1]), pair.as_span().start());
            in_run = single_line(i) && (self.label_of(pair).is_some() || (in_run && !parted));
            widths.push(if in_run { width } else { 0 });
        }
        pairs.iter().cloned().zip(widths).map(|(pair, label_width)| Element { pair, label_width }).collect()
    }

    fn element(&mut self, element: &Element<'t>, depth: usize) {
        let pair = element.pair.clone();
        match pair.as_rule() {
            Rule::block_def | Rule::network_def => self.definition(pair, depth),
            Rule::layer_stmt => self.layer_stmt(pair, depth, element.label_width),
            Rule::let_stmt => self.let_stmt(pair, depth),
            Rule::for_stmt => {
                let mut head = String::from("for");
                let mut names = Vec::new();
                let mut body = None;
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::name => names.push(part.as_str()),
                        Rule::expr => {
                            let start = format!("{head} {} in ", names.join(", "));
                            // With comments inside it stays as written (with them); else a
                            // list too long for the line (and ` {`) is filled over lines.
                            let over = if self.has_comment(part.as_span().start(), code_end(&part)) {
                                self.flat_or_verbatim(&part)
                            } else {
                                self.value(&part, depth, start.len() + " {".len())
                            };
                            head = format!("{start}{over}");
                        }
                        Rule::body => body = Some(part),
                        _ => {}
                    }
                }
                self.open_body(depth, &head, body.expect("grammar: for has a body"));
            }
            Rule::if_stmt => self.if_stmt(pair, depth, ""),
            Rule::assert_stmt => {
                let text = self.flat_or_verbatim(&pair);
                let parts: Vec<Pair<Rule>> = pair.into_inner().filter(|p| p.as_rule() == Rule::expr).collect();
                if depth * INDENT.len() + text.chars().count() <= WIDTH || text.contains('#') {
                    self.line(depth, &text);
                } else {
                    // The message on a line of its own.
                    self.line(depth, &format!("assert {},", self.flat(&parts[0])));
                    self.line(depth + 1, &self.flat(&parts[1]));
                }
            }
            Rule::input_decl => {
                let call = pair.into_inner().nth(1).expect("grammar: input holds a call");
                let text = self.call(call, depth, "input ".len());
                self.line(depth, &format!("input {text}"));
            }
            _ => {
                let text = self.flat_or_verbatim(&pair);
                self.line(depth, &text);
            }
        }
    }

    /// `block name(params) { ... }` / `network ...`.
    fn definition(&mut self, pair: Pair<'t, Rule>, depth: usize) {
        let mut keyword = "";
        let mut name = "";
        let mut params = None;
        let mut body = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::kw_block | Rule::kw_network => keyword = part.as_str(),
                Rule::name => name = part.as_str(),
                Rule::params => params = Some(part),
                Rule::body => body = Some(part),
                _ => {}
            }
        }
        let head = format!("{keyword} {name}");
        let list = params.map(|p| self.list(p, depth, head.len(), " {")).unwrap_or_default();
        self.open_body(depth, &format!("{head}{list}"), body.expect("grammar: a definition has a body"));
    }

    /// Prints `head {`, the body's statements one level deeper, and `}`.
    fn open_body(&mut self, depth: usize, head: &str, body: Pair<'t, Rule>) {
        let span = body.as_span();
        let statements: Vec<Pair<Rule>> =
            body.into_inner().filter(|p| !matches!(p.as_rule(), Rule::lbrace | Rule::rbrace)).collect();
        let opening = span.start() + 1;
        let closing = span.end() - 1;
        if statements.is_empty() && !self.has_comment(opening, closing) {
            let empty = if head.is_empty() { "{}".to_string() } else { format!("{head} {{}}") };
            self.line(depth, &empty);
            return;
        }
        let mut open = if head.is_empty() { "{".to_string() } else { format!("{head} {{") };
        // Comments between the head and `{` describe the head: they end its line.
        while let Some(&comment) = self.comments.get(self.next) {
            if comment.start >= span.start() {
                break;
            }
            open = format!("{open}  {}", self.comment_text(comment));
            self.next += 1;
        }
        // One after `{` is the line's, unless a statement comes first (`{ conv(...)  # x`).
        let first = statements.first().map_or(closing, |s| s.as_span().start());
        let trailing = match self.comments.get(self.next) {
            Some(c) if c.start < first => self.trailing_comment(opening),
            _ => None,
        };
        match trailing {
            Some((_, comment)) => self.line(depth, &format!("{open}  {comment}")),
            None => self.line(depth, &open),
        }
        self.sequence(&statements, depth + 1, closing);
        self.line(depth, "}");
    }

    /// `if c { ... } else if d { ... } else { ... }`; `before` is `} else ` for an
    /// `else if` (the previous body's closing line is reopened).
    fn if_stmt(&mut self, pair: Pair<'t, Rule>, depth: usize, before: &str) {
        let mut parts = pair.into_inner().filter(|p| !matches!(p.as_rule(), Rule::kw_if | Rule::kw_else));
        let condition = parts.next().expect("grammar: if has a condition");
        let head = format!("{before}if {}", self.flat_or_verbatim(&condition));
        self.open_body(depth, &head, parts.next().expect("grammar: if has a body"));
        let Some(otherwise) = parts.next() else { return };
        // `}` (or `... {}`) and `else` share a line.
        let printed = self.out.trim_end_matches('\n');
        let line_start = printed.rfind('\n').map_or(0, |i| i + 1);
        let closed = printed[line_start..].trim_start().to_string();
        self.out.truncate(line_start);
        if otherwise.as_rule() == Rule::if_stmt {
            self.if_stmt(otherwise, depth, &format!("{closed} else "));
        } else {
            self.open_body(depth, &format!("{closed} else"), otherwise);
        }
    }

    /// The label of a layer statement, as it is printed.
    fn label_of(&self, pair: &Pair<'t, Rule>) -> Option<String> {
        let label = pair.clone().into_inner().find(|p| matches!(p.as_rule(), Rule::label | Rule::label_template))?;
        Some(if label.as_rule() == Rule::label { label.as_str().to_string() } else { self.template(label) })
    }

    /// `layer{i + 1}`: the expressions spaced as everywhere else.
    fn template(&self, pair: Pair<'t, Rule>) -> String {
        pair.into_inner()
            .map(|part| match part.as_rule() {
                Rule::template_expr => match part.clone().into_inner().find(|p| p.as_rule() == Rule::expr) {
                    Some(expr) => format!("{{{}}}", self.flat(&expr)),
                    None => format!("{{{}}}", part.as_str().trim()),
                },
                _ => part.as_str().to_string(),
            })
            .collect()
    }

    fn layer_stmt(&mut self, pair: Pair<'t, Rule>, depth: usize, label_width: usize) {
        let mut label = None;
        let mut layer = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::label => label = Some(part.as_str().to_string()),
                Rule::label_template => label = Some(self.template(part)),
                Rule::layer => layer = Some(part),
                _ => {}
            }
        }
        let prefix = match label {
            Some(label) => format!("{:<label_width$}", format!("{label}: ")),
            None => " ".repeat(label_width),
        };
        let mut call = None;
        let mut body = None;
        for part in layer.expect("grammar: a layer statement has a layer").into_inner() {
            match part.as_rule() {
                Rule::call => call = Some(part),
                Rule::body => body = Some(part),
                _ => {}
            }
        }
        let head = match call {
            Some(call) => format!("{prefix}{}", self.call(call, depth, prefix.len())),
            None => prefix.trim_end().to_string(),
        };
        match body {
            Some(body) => self.open_body(depth, &head, body),
            None => self.line(depth, &head),
        }
    }

    fn let_stmt(&mut self, pair: Pair<'t, Rule>, depth: usize) {
        let mut name = "";
        let mut value = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::name => name = part.as_str(),
                Rule::body | Rule::expr => value = Some(part),
                _ => {}
            }
        }
        let value = value.expect("grammar: let has a value");
        if value.as_rule() == Rule::body {
            self.open_body(depth, &format!("let {name} ="), value);
        } else if let Some(choice) = lone_if_of_expr(&value)
            && depth * INDENT.len() + format!("let {name} = ").len() + self.flat(&value).chars().count() > WIDTH
            && !self.has_comment(value.as_span().start(), code_end(&value))
        {
            self.if_value(choice, depth, &format!("let {name} = "));
        } else {
            let head = format!("let {name} = ");
            let text = match lone_call_of_expr(&value) {
                Some(call) => self.call(call, depth, head.len()),
                None if !self.has_comment(value.as_span().start(), code_end(&value)) => {
                    self.value(&value, depth, head.len())
                }
                None => self.flat_or_verbatim(&value),
            };
            self.line(depth, &format!("{head}{text}"));
        }
    }

    /// A too-long `if c { a } else { b }` value, one branch per line:
    /// `head if c {`, `a`, `} else if d {`, `b`, `} else {`, `c`, `}`.
    fn if_value(&mut self, pair: Pair<'t, Rule>, depth: usize, head: &str) {
        let mut parts = pair.into_inner().filter(|p| matches!(p.as_rule(), Rule::expr | Rule::if_expr));
        let condition = parts.next().expect("grammar: if has a condition");
        self.line(depth, &format!("{head}if {} {{", self.flat(&condition)));
        let value = parts.next().expect("grammar: if has a value");
        self.line(depth + 1, &self.value(&value, depth + 1, 0));
        match parts.next() {
            Some(other) if other.as_rule() == Rule::if_expr => self.if_value(other, depth, "} else "),
            Some(other) => {
                self.line(depth, "} else {");
                self.line(depth + 1, &self.value(&other, depth + 1, 0));
                self.line(depth, "}");
            }
            None => self.line(depth, "}"),
        }
    }

    /// An expression on one line, or, when it is a list too long for the line at
    /// `depth` after `column` characters, its items filled over lines (`wrapped_list`).
    fn value(&self, expr: &Pair<'t, Rule>, depth: usize, column: usize) -> String {
        let flat = self.flat(expr);
        match lone_list_of_expr(expr) {
            Some(list) if depth * INDENT.len() + column + flat.chars().count() > WIDTH => {
                self.wrapped_list(&list, depth)
            }
            _ => flat,
        }
    }

    /// `[` and `]` at `depth`, the items filled in between as many to a line as fit,
    /// each followed by a comma (a table such as VGG's stays readable as rows).
    fn wrapped_list(&self, list: &Pair<'t, Rule>, depth: usize) -> String {
        let items: Vec<String> =
            list.clone().into_inner().filter(|p| p.as_rule() == Rule::expr).map(|p| self.flat(&p)).collect();
        let indent = INDENT.repeat(depth + 1);
        let mut text = String::from("[\n");
        let mut line = String::new();
        for item in items {
            if !line.is_empty() && indent.len() + line.chars().count() + 1 + item.chars().count() + 1 > WIDTH {
                text.push_str(&format!("{indent}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&item);
            line.push(',');
        }
        if !line.is_empty() {
            text.push_str(&format!("{indent}{line}\n"));
        }
        text.push_str(&INDENT.repeat(depth));
        text.push(']');
        text
    }

    /// `name` or `name(args)`, wrapped one argument per line when the line would be too
    /// long or a comment sits between the arguments.
    fn call(&mut self, pair: Pair<'t, Rule>, depth: usize, column: usize) -> String {
        let mut inner = pair.into_inner();
        let name = inner.next().expect("grammar: a call has a name").as_str();
        match inner.next() {
            Some(args) => format!("{name}{}", self.list(args, depth, column + name.len(), "")),
            None => name.to_string(),
        }
    }

    /// A parenthesised list (`args` or `params`): `(a, b)` on one line when it fits in
    /// `WIDTH` after `column` columns (and `after` following it), else one item per line.
    fn list(&mut self, pair: Pair<'t, Rule>, depth: usize, column: usize, after: &str) -> String {
        let span = pair.as_span();
        let items: Vec<Pair<Rule>> =
            pair.into_inner().filter(|p| matches!(p.as_rule(), Rule::arg | Rule::param)).collect();
        if !self.has_comment(span.start(), span.end()) {
            let flat: Vec<String> = items.iter().map(|p| self.flat(p)).collect();
            let one_line = format!("({})", flat.join(", "));
            if depth * INDENT.len() + column + one_line.chars().count() + after.len() <= WIDTH || items.is_empty() {
                return one_line;
            }
        }
        // One item per line, each followed by a comma; comments between them kept.
        let inner_indent = INDENT.repeat(depth + 1);
        let mut text = String::from("(\n");
        let mut previous: Option<usize> = None;
        // Where `)` is: a comment after it is not the last item's.
        let close = span.end() - 1;
        for (index, item) in items.iter().enumerate() {
            let (item_start, item_end) = (item.as_span().start(), code_end(item));
            // A comment after several items on one line belongs to the last of them.
            let next_start = items.get(index + 1).map_or(close, |next| next.as_span().start());
            let mut leading = String::new();
            while let Some(&comment) = self.comments.get(self.next) {
                if comment.start >= item_start {
                    break;
                }
                if previous.is_some_and(|p| self.blank_between(p, comment.start)) {
                    leading.push('\n');
                }
                leading.push_str(&format!("{inner_indent}{}\n", self.comment_text(comment)));
                previous = Some(comment.end);
                self.next += 1;
            }
            text.push_str(&leading);
            let value = self.item(item, depth + 1);
            text.push_str(&format!("{inner_indent}{value},"));
            // A trailing comment may follow the item or its comma.
            let comma_end = self.text[item_end..].find(',').map(|i| item_end + i + 1);
            let end = comma_end.filter(|&e| !self.text[item_end..e].contains('\n')).unwrap_or(item_end);
            previous = Some(end);
            let belongs = self.comments.get(self.next).is_some_and(|c| c.start < next_start);
            if belongs && let Some((comment_end, comment)) = self.trailing_comment(end) {
                text.push_str(&format!("  {comment}"));
                previous = Some(comment_end);
            }
            text.push('\n');
        }
        // Comments after the last item, before `)`.
        while let Some(&comment) = self.comments.get(self.next) {
            if comment.start >= close {
                break;
            }
            text.push_str(&format!("{inner_indent}{}\n", self.comment_text(comment)));
            self.next += 1;
        }
        text.push_str(&INDENT.repeat(depth));
        text.push(')');
        text
    }

    /// One argument or parameter of a wrapped list, at `depth`: on one line when it fits,
    /// else, when it is a call (`resnext_bottleneck(64, groups: 32, ...)`), wrapped in turn.
    fn item(&mut self, item: &Pair<'t, Rule>, depth: usize) -> String {
        let commented = self.has_comment(item.as_span().start(), code_end(item));
        if !commented && depth * INDENT.len() + self.flat(item).chars().count() < WIDTH {
            return self.flat(item);
        }
        match lone_call(item) {
            Some((prefix, call)) => {
                let prefix = prefix.map(|name| format!("{name}: ")).unwrap_or_default();
                let call = self.call(call, depth, prefix.len());
                format!("{prefix}{call}")
            }
            None => self.flat_or_verbatim(item),
        }
    }

    /// The pair on one line with canonical spacing, or its source text as written when
    /// a comment sits inside it (a comment is never moved or lost).
    fn flat_or_verbatim(&mut self, pair: &Pair<'t, Rule>) -> String {
        let (start, end) = (pair.as_span().start(), code_end(pair));
        if self.has_comment(start, end) {
            // Its comments are printed with it.
            while self.comments.get(self.next).is_some_and(|c| c.start < end) {
                self.next += 1;
            }
            return self.text[start..end].to_string();
        }
        self.flat(pair)
    }

    /// The tokens of a pair joined with canonical spacing.
    fn flat(&self, pair: &Pair<'t, Rule>) -> String {
        let mut tokens: Vec<(Rule, &str)> = Vec::new();
        leaves(pair.clone(), &mut tokens);
        let mut out = String::new();
        for (i, &(rule, text)) in tokens.iter().enumerate() {
            if i > 0 && space_between(&tokens[..i], rule) {
                out.push(' ');
            }
            out.push_str(text);
        }
        out
    }
}

/// The tokens under a pair, in order.
fn leaves<'t>(pair: Pair<'t, Rule>, out: &mut Vec<(Rule, &'t str)>) {
    let rule = pair.as_rule();
    let mut inner = pair.clone().into_inner().peekable();
    // Atomic rules (names, numbers, paths, keywords) are tokens whatever they hold.
    if inner.peek().is_none()
        || matches!(rule, Rule::path | Rule::label | Rule::label_template | Rule::name | Rule::string)
    {
        out.push((rule, pair.as_str()));
        return;
    }
    // An index's `[` hugs the value before it (`cfg[i]`); a list's is spaced as a value.
    if rule == Rule::index {
        for child in inner {
            if child.as_rule() == Rule::lbracket {
                out.push((Rule::index, child.as_str()));
            } else {
                leaves(child, out);
            }
        }
        return;
    }
    for child in inner {
        leaves(child, out);
    }
}

/// Whether a space goes between the tokens so far and the next one.
fn space_between(before: &[(Rule, &str)], next: Rule) -> bool {
    let previous = before[before.len() - 1].0;
    if matches!(next, Rule::comma | Rule::rparen | Rule::colon | Rule::dot | Rule::rbracket | Rule::index) {
        return false;
    }
    if matches!(previous, Rule::lparen | Rule::dot | Rule::neg | Rule::lbracket | Rule::index) {
        return false;
    }
    if next == Rule::lparen {
        // A call's parenthesis hugs its name; a grouping one is spaced like a value.
        return !matches!(previous, Rule::name | Rule::kw_allow);
    }
    true
}

/// An argument that is a call and nothing else: its name (if named) and the call.
fn lone_call<'t>(item: &Pair<'t, Rule>) -> Option<(Option<&'t str>, Pair<'t, Rule>)> {
    if item.as_rule() != Rule::arg {
        return None;
    }
    let mut name = None;
    for part in item.clone().into_inner() {
        match part.as_rule() {
            Rule::name => name = Some(part.as_str()),
            Rule::expr => return lone_call_of_expr(&part).map(|call| (name, call)),
            _ => {}
        }
    }
    None
}

/// An expression that is one `rule` (a list, an `if` value, a call) and nothing else:
/// no operator, index or prefix around it.
fn lone<'t>(expr: &Pair<'t, Rule>, rule: Rule) -> Option<Pair<'t, Rule>> {
    let mut parts = expr.clone().into_inner();
    let only = parts.next().filter(|p| p.as_rule() == rule)?;
    parts.next().is_none().then_some(only)
}

fn lone_list_of_expr<'t>(expr: &Pair<'t, Rule>) -> Option<Pair<'t, Rule>> {
    lone(expr, Rule::list)
}

fn lone_if_of_expr<'t>(expr: &Pair<'t, Rule>) -> Option<Pair<'t, Rule>> {
    lone(expr, Rule::if_expr)
}

/// An expression that is one call with arguments (`conv(...)`), not arithmetic.
fn lone_call_of_expr<'t>(expr: &Pair<'t, Rule>) -> Option<Pair<'t, Rule>> {
    lone(expr, Rule::call).filter(|call| call.clone().into_inner().any(|p| p.as_rule() == Rule::args))
}

/// Whether a layer statement has a `{ ... }` body (and so spans several lines).
fn has_body(pair: &Pair<Rule>) -> bool {
    pair.clone()
        .into_inner()
        .filter(|p| p.as_rule() == Rule::layer)
        .flat_map(|p| p.into_inner())
        .any(|p| p.as_rule() == Rule::body)
}
