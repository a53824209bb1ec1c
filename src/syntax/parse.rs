//! pest pairs → AST. Syntax errors become diagnostics that speak of tokens, never of
//! grammar rules.

use super::ast::*;
use crate::diagnostics::{Code, Diagnostic};
use crate::source::{FileId, Span};
use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/arch.pest"]
struct ArchParser;

/// The concrete tree of a file that `parse` accepted: every token, keyword and bracket
/// with its span, which the formatter lays out again (the AST keeps only meaning).
/// `None` for a file that does not parse.
pub fn concrete_tree(text: &str) -> Option<Pair<'_, Rule>> {
    ArchParser::parse(Rule::file, text).ok().and_then(|mut pairs| pairs.next())
}

/// Brackets nested deeper than this are refused before parsing: pest's parser recurses,
/// and no real model nests more than a handful of levels.
pub const MAX_NESTING: usize = 64;

/// Operators in one expression beyond this are refused: evaluation recurses over the
/// expression tree, and no shape arithmetic needs more.
pub const MAX_OPERATORS: usize = 256;

/// Parses one file. Returns the AST (empty on a syntax error) and its diagnostics.
pub fn parse(file: FileId, text: &str) -> (SourceFile, Vec<Diagnostic>) {
    if let Some(diagnostic) = check_nesting(file, text) {
        return (SourceFile::default(), vec![diagnostic]);
    }
    match ArchParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let mut builder = Builder { file, diagnostics: Vec::new() };
            let ast = builder.file(pairs.next().expect("the file rule always produces a pair"));
            (ast, builder.diagnostics)
        }
        Err(error) => (SourceFile::default(), vec![syntax_error(file, text, error)]),
    }
}

/// Parses one expression on its own: a network argument given on the command line.
pub fn parse_expression(file: FileId, text: &str) -> Result<Expr, Vec<Diagnostic>> {
    if let Some(diagnostic) = check_nesting(file, text) {
        return Err(vec![diagnostic]);
    }
    match ArchParser::parse(Rule::expression, text) {
        Ok(mut pairs) => {
            let mut builder = Builder { file, diagnostics: Vec::new() };
            let whole = pairs.next().expect("the expression rule always produces a pair");
            let expr = builder.expr(whole.into_inner().next().expect("grammar: expression holds an expr"));
            if builder.diagnostics.is_empty() { Ok(expr) } else { Err(builder.diagnostics) }
        }
        Err(error) => Err(vec![syntax_error(file, text, error)]),
    }
}

/// The characters of `text` that are code: comments and string literals skipped.
fn code_chars(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut in_comment, mut in_string) = (false, false);
    text.char_indices().filter(move |&(_, ch)| {
        match ch {
            '\n' => {
                in_comment = false;
                in_string = false;
            }
            _ if in_comment => return false,
            '"' => {
                in_string = !in_string;
                return false;
            }
            _ if in_string => return false,
            '#' => {
                in_comment = true;
                return false;
            }
            _ => {}
        }
        true
    })
}

fn check_nesting(file: FileId, text: &str) -> Option<Diagnostic> {
    let mut depth = 0usize;
    for (offset, ch) in code_chars(text) {
        match ch {
            '(' | '{' | '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::new(
                            Code::TooLarge,
                            format!("brackets nest more than {MAX_NESTING} levels deep"),
                            Span::new(file, offset, offset + 1),
                            "this bracket is too deep",
                        )
                        .with_help("split the expression or the sequence into named blocks"),
                    );
                }
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn describe_rule(rule: Rule) -> &'static str {
    match rule {
        Rule::name | Rule::label | Rule::type_name => "a name",
        Rule::path | Rule::path_list => "a layer name",
        Rule::expr
        | Rule::int
        | Rule::float
        | Rule::boolean
        | Rule::string
        | Rule::in_ref
        | Rule::neg
        | Rule::not
        | Rule::list
        | Rule::if_expr
        | Rule::template_expr => "a value",
        rule if rule == Rule::index || binary_operator(rule).is_some() => "an operator",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::kw_else => "`else`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbrace | Rule::body => "`{`",
        Rule::rbrace => "`}`",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::equals => "`=`",
        Rule::dot => "`.`",
        Rule::kw_at => "`at`",
        Rule::kw_as => "`as`",
        Rule::kw_in => "`in`",
        Rule::EOI => "the end of the file",
        Rule::import | Rule::kw_import | Rule::block_def | Rule::kw_block | Rule::network_def | Rule::kw_network => {
            "`block`, `network` or `import`"
        }
        Rule::param | Rule::params => "a parameter",
        Rule::arg | Rule::args => "an argument",
        _ => "a layer",
    }
}

fn syntax_error(file: FileId, text: &str, error: pest::error::Error<Rule>) -> Diagnostic {
    let position = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((start, _)) => start,
    };
    let found = token_at(text, position);
    let span = Span::new(file, position, position + found.len().max(if position < text.len() { 1 } else { 0 }));
    let mut expected: Vec<&str> = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.iter().map(|r| describe_rule(*r)).collect(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    if brace_depth(&text[..position]) == 0 {
        // Between definitions only these can start.
        expected.retain(|e| *e != "a layer");
        expected.push("`block`, `network` or `import`");
    }
    // After a value, `[` starts an index: one more operator, not a token of its own.
    if expected.contains(&"an operator") {
        expected.retain(|e| *e != "`[`");
    }
    expected.sort();
    expected.dedup();
    let message = if found.is_empty() { "unexpected end of file".to_string() } else { format!("unexpected `{found}`") };
    let label =
        if expected.is_empty() { "not expected here".to_string() } else { format!("expected {}", join_or(&expected)) };
    // A `)` missing at the end of a line is noticed only at the next line's first word;
    // the mistake is where the line ended.
    let code_before = text[..position].trim_end();
    if expected.contains(&"`)`")
        && text[code_before.len()..position].contains('\n')
        && !code_before.is_empty()
        && !found.is_empty()
    {
        let last = code_before.char_indices().last().map_or(0, |(i, _)| i);
        let open = Span::new(file, last, code_before.len());
        return Diagnostic::new(Code::Syntax, "missing `)`", open, "expected `)` after this")
            .with_secondary(span, format!("the next line starts with `{found}`"))
            .with_help("close the parenthesis on this line, or end the line with `,` to go on with the arguments");
    }
    // Likewise a line that stops in the middle of a statement (`insert se() at bottleneck.`).
    let mid_statement = !expected.iter().any(|e| *e == "a layer" || *e == "`}`" || e.starts_with("`block`"));
    if mid_statement && text[code_before.len()..position].contains('\n') && !code_before.is_empty() && !found.is_empty()
    {
        let last = code_before.char_indices().last().map_or(0, |(i, _)| i);
        let wanted = join_or(&expected);
        return Diagnostic::new(
            Code::Syntax,
            format!("unfinished line: expected {wanted}"),
            Span::new(file, last, code_before.len()),
            format!("expected {wanted} after this"),
        )
        .with_secondary(span, format!("the next line starts with `{found}`"));
    }
    let mut diagnostic = Diagnostic::new(Code::Syntax, message, span, label);
    if let Some(help) = syntax_help(text, position, &found, &expected) {
        diagnostic = diagnostic.with_help(help);
    }
    diagnostic
}

fn syntax_help(text: &str, position: usize, found: &str, expected: &[&str]) -> Option<String> {
    let before = text[..position].trim_end();
    let line = &before[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..];
    let last_word = before.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
    if found == "=" && !line.contains('(') && line.trim().chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Some(format!("name a layer with a colon: `{}: conv(...)`", line.trim()));
    }
    if found == "=" && before.ends_with(|c: char| c.is_alphanumeric()) {
        return Some("arguments are written `name: value`, not `name = value`".into());
    }
    if matches!(last_word, "network" | "block") && brace_depth(before) > 0 {
        return Some(format!(
            "`{last_word}` starts a new definition, but the one above is still open: is a `}}` missing?"
        ));
    }
    if expected.contains(&"`,`") && expected.contains(&"`)`") {
        return Some("separate arguments with commas: `conv(64, kernel: 3)`".into());
    }
    if found.is_empty() && expected.contains(&"`}`") {
        return Some("a `{` is never closed; add the missing `}`".into());
    }
    None
}

/// How many `{` are open at the end of `text` (comments and strings skipped).
fn brace_depth(text: &str) -> usize {
    code_chars(text).fold(0usize, |depth, (_, ch)| match ch {
        '{' => depth + 1,
        '}' => depth.saturating_sub(1),
        _ => depth,
    })
}

/// The word or symbol starting at `position`, for "unexpected `...`".
fn token_at(text: &str, position: usize) -> String {
    let rest = &text[position.min(text.len())..];
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if !word.is_empty() {
        return word.chars().take(40).collect();
    }
    rest.chars().next().filter(|c| !c.is_whitespace()).map(String::from).unwrap_or_default()
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

struct Builder {
    file: FileId,
    diagnostics: Vec<Diagnostic>,
}

fn is_punctuation(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::lparen
            | Rule::rparen
            | Rule::lbrace
            | Rule::rbrace
            | Rule::colon
            | Rule::comma
            | Rule::equals
            | Rule::dot
            | Rule::lbracket
            | Rule::rbracket
    ) || format!("{rule:?}").starts_with("kw_")
}

/// The meaningful children of a pair (keywords and punctuation dropped).
fn children(pair: Pair<'_, Rule>) -> Vec<Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_punctuation(p.as_rule())).collect()
}

impl Builder {
    /// The pair's span without the whitespace and comments pest lets trail after it.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        Span::new(self.file, pair.as_span().start(), code_end(pair))
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident { text: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn file(&mut self, pair: Pair<'_, Rule>) -> SourceFile {
        let mut file = SourceFile::default();
        for item in children(pair) {
            match item.as_rule() {
                Rule::import => {
                    let span = self.span(&item);
                    let literal = children(item).remove(0);
                    file.imports.push(Import { path: unquote(literal.as_str()), span });
                }
                Rule::block_def => file.defs.push(self.def(item, DefKind::Block)),
                Rule::network_def => file.defs.push(self.def(item, DefKind::Network)),
                _ => {}
            }
        }
        file
    }

    fn def(&mut self, pair: Pair<'_, Rule>, kind: DefKind) -> Def {
        let span = self.span(&pair);
        let mut name = None;
        let mut params = Vec::new();
        let mut body = None;
        for part in children(pair) {
            match part.as_rule() {
                Rule::name => name = Some(self.ident(part)),
                Rule::params => params = children(part).into_iter().map(|p| self.param(p)).collect(),
                Rule::body => body = Some(self.body(part)),
                _ => {}
            }
        }
        Def {
            kind,
            name: name.expect("grammar: def has a name"),
            params,
            body: body.expect("grammar: def has a body"),
            span,
        }
    }

    fn param(&mut self, pair: Pair<'_, Rule>) -> ParamDecl {
        let span = self.span(&pair);
        let mut parts = children(pair).into_iter();
        let name = self.ident(parts.next().expect("grammar: param name"));
        let ty = self.ident(parts.next().expect("grammar: param type"));
        let default = parts.next().map(|e| self.expr(e));
        ParamDecl { name, ty, default, span }
    }

    fn body(&mut self, pair: Pair<'_, Rule>) -> Body {
        let span = self.span(&pair);
        let stmts = children(pair).into_iter().map(|s| self.stmt(s)).collect();
        Body { stmts, span }
    }

    fn stmt(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::input_decl => Stmt::Input(self.call(children(pair).remove(0))),
            Rule::let_stmt => {
                let mut parts = children(pair).into_iter();
                let name = self.ident(parts.next().expect("grammar: let name"));
                let value = parts.next().expect("grammar: let value");
                let value = if value.as_rule() == Rule::body {
                    let body = self.body(value);
                    Expr { span: body.span, kind: ExprKind::Seq(body) }
                } else {
                    self.expr(value)
                };
                Stmt::Let { name, value, span }
            }
            Rule::insert_stmt => {
                let mut parts = children(pair).into_iter().peekable();
                let module = self.call(parts.next().expect("grammar: insert module"));
                let block = self.ident(parts.next().expect("grammar: insert block"));
                let point = self.ident(parts.next().expect("grammar: insert point"));
                let mut label = None;
                let mut within = Vec::new();
                for part in parts {
                    match part.as_rule() {
                        Rule::label => label = Some(self.ident(part)),
                        Rule::path_list => within = children(part).into_iter().map(|p| self.ident(p)).collect(),
                        _ => {}
                    }
                }
                Stmt::Insert(Insert { module, block, point, label, within, span })
            }
            Rule::point_stmt => Stmt::Point(self.ident(children(pair).remove(0))),
            Rule::allow_stmt => {
                Stmt::Allow { lints: children(pair).into_iter().map(|p| self.ident(p)).collect(), span }
            }
            Rule::for_stmt => {
                let mut names = Vec::new();
                let mut over = None;
                let mut body = None;
                for part in children(pair) {
                    match part.as_rule() {
                        Rule::name => names.push(self.ident(part)),
                        Rule::expr => over = Some(self.expr(part)),
                        _ => body = Some(self.body(part)),
                    }
                }
                let item = names.pop().expect("grammar: for names its item");
                Stmt::For(ForStmt {
                    index: names.pop(),
                    item,
                    over: over.expect("grammar: for has a list"),
                    body: body.expect("grammar: for has a body"),
                    span,
                })
            }
            Rule::if_stmt => Stmt::If(self.if_stmt(pair)),
            Rule::assert_stmt => {
                let mut parts = children(pair).into_iter();
                let condition = self.expr(parts.next().expect("grammar: assert condition"));
                let message = self.expr(parts.next().expect("grammar: assert message"));
                Stmt::Assert { condition, message, span }
            }
            _ => Stmt::Layer(self.layer_stmt(pair)),
        }
    }

    fn if_stmt(&mut self, pair: Pair<'_, Rule>) -> IfStmt {
        let span = self.span(&pair);
        let mut parts = children(pair).into_iter();
        let condition = self.expr(parts.next().expect("grammar: if condition"));
        let then = self.body(parts.next().expect("grammar: if body"));
        let otherwise = parts.next().map(|part| {
            if part.as_rule() == Rule::if_stmt {
                let nested = self.if_stmt(part);
                Body { span: nested.span, stmts: vec![Stmt::If(nested)] }
            } else {
                self.body(part)
            }
        });
        IfStmt { condition, then, otherwise, span }
    }

    fn template(&mut self, pair: Pair<'_, Rule>) -> Template {
        let span = self.span(&pair);
        let text = pair.as_str().to_string();
        let parts = pair
            .into_inner()
            .map(|part| match part.as_rule() {
                Rule::label_text => TemplatePart::Text(part.as_str().to_string()),
                _ => TemplatePart::Expr(self.expr(children(part).remove(0))),
            })
            .collect();
        Template { text, parts, span }
    }

    fn layer_stmt(&mut self, pair: Pair<'_, Rule>) -> LayerStmt {
        let span = self.span(&pair);
        let mut label = None;
        let mut layer = None;
        for part in children(pair) {
            match part.as_rule() {
                Rule::label => label = Some(Label::Name(self.ident(part))),
                Rule::label_template => label = Some(Label::Template(self.template(part))),
                Rule::layer => layer = Some(self.layer(part)),
                _ => {}
            }
        }
        LayerStmt { label, layer: layer.expect("grammar: layer statement has a layer"), span }
    }

    fn layer(&mut self, pair: Pair<'_, Rule>) -> LayerExpr {
        let mut parts = children(pair).into_iter();
        let first = parts.next().expect("grammar: layer is not empty");
        if first.as_rule() == Rule::body {
            return LayerExpr::Seq(self.body(first));
        }
        let call = self.call(first);
        let body = parts.next().map(|b| self.body(b));
        LayerExpr::Call { call, body }
    }

    fn call(&mut self, pair: Pair<'_, Rule>) -> Call {
        let span = self.span(&pair);
        let mut parts = children(pair).into_iter();
        let name = self.ident(parts.next().expect("grammar: call has a name"));
        let (args, has_parens) = match parts.next() {
            Some(args) => (children(args).into_iter().map(|a| self.arg(a)).collect(), true),
            None => (Vec::new(), false),
        };
        Call { name, args, has_parens, span }
    }

    fn arg(&mut self, pair: Pair<'_, Rule>) -> Arg {
        let span = self.span(&pair);
        let parts = children(pair);
        if parts.len() == 2 {
            let mut parts = parts.into_iter();
            let name = self.ident(parts.next().expect("two parts"));
            let value = self.expr(parts.next().expect("two parts"));
            Arg { name: Some(name), value, span }
        } else {
            Arg { name: None, value: self.expr(parts.into_iter().next().expect("grammar: arg value")), span }
        }
    }

    /// Expressions: a flat list of operands and operators, folded by precedence.
    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let parts = pair.clone().into_inner().filter(|p| !is_punctuation(p.as_rule())).count();
        if parts > 2 * MAX_OPERATORS {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::TooLarge,
                    format!("this expression has more than {MAX_OPERATORS} operators"),
                    Span::new(self.file, span.start, (span.start + 1).min(span.end)),
                    "expression starts here",
                )
                .with_help("compute the value in steps with `let`, or write the number"),
            );
            return Expr { kind: ExprKind::Int(None), span };
        }
        // Operands with their prefixes (`-`, `not`) and indexes, and the operators
        // between them, folded by precedence.
        let mut operands: Vec<Operand> = Vec::new();
        let mut operators: Vec<BinOp> = Vec::new();
        let mut prefixes: Vec<(Rule, Span)> = Vec::new();
        for part in children(pair) {
            let rule = part.as_rule();
            match rule {
                Rule::neg | Rule::not => prefixes.push((rule, self.span(&part))),
                Rule::index => {
                    let index = self.expr(children(part.clone()).remove(0));
                    let end = self.span(&part);
                    let operand = operands.last_mut().expect("grammar: an index follows an operand");
                    let base = std::mem::replace(&mut operand.expr, Expr { kind: ExprKind::Bool(false), span });
                    operand.expr =
                        Expr { span: base.span.to(end), kind: ExprKind::Index(Box::new(base), Box::new(index)) };
                }
                _ if binary_operator(rule).is_some() => operators.extend(binary_operator(rule)),
                _ => {
                    let expr = self.primary(part);
                    operands.push(Operand { prefixes: std::mem::take(&mut prefixes), expr });
                }
            }
        }
        fold_binary(operands, operators)
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::int => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                let value = digits.parse::<i64>().ok();
                if value.is_none() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::Overflow,
                            "integer literal is too large",
                            span,
                            "does not fit in 64 bits",
                        )
                        .with_note(format!("the largest integer is {}", i64::MAX)),
                    );
                }
                ExprKind::Int(value)
            }
            Rule::float => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                match digits.parse::<f64>() {
                    Ok(v) if v.is_finite() => ExprKind::Float(Some(v)),
                    _ => {
                        self.diagnostics.push(Diagnostic::new(
                            Code::Overflow,
                            "float literal is too large",
                            span,
                            "not a finite number",
                        ));
                        ExprKind::Float(None)
                    }
                }
            }
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::string => ExprKind::Str(unquote(pair.as_str())),
            Rule::in_ref => ExprKind::InRef(self.ident(children(pair).remove(0))),
            Rule::call => ExprKind::Call(self.call(pair)),
            Rule::body => ExprKind::Seq(self.body(pair)),
            Rule::list => ExprKind::List(children(pair).into_iter().map(|e| self.expr(e)).collect()),
            Rule::if_expr => {
                let mut parts = children(pair).into_iter();
                let condition = self.expr(parts.next().expect("grammar: if condition"));
                let then = self.expr(parts.next().expect("grammar: if value"));
                let other = parts.next().expect("grammar: else value");
                let otherwise = if other.as_rule() == Rule::if_expr { self.primary(other) } else { self.expr(other) };
                ExprKind::If(Box::new(condition), Box::new(then), Box::new(otherwise))
            }
            Rule::expr => return self.expr(pair),
            other => unreachable!("grammar: unexpected primary {other:?}"),
        };
        Expr { kind, span }
    }
}

/// The binary operator a rule is, if it is one.
fn binary_operator(rule: Rule) -> Option<BinOp> {
    Some(match rule {
        Rule::add => BinOp::Add,
        Rule::sub => BinOp::Sub,
        Rule::mul => BinOp::Mul,
        Rule::div => BinOp::Div,
        Rule::rem => BinOp::Rem,
        Rule::eq => BinOp::Eq,
        Rule::ne => BinOp::Ne,
        Rule::lt => BinOp::Lt,
        Rule::le => BinOp::Le,
        Rule::gt => BinOp::Gt,
        Rule::ge => BinOp::Ge,
        Rule::and => BinOp::And,
        Rule::or => BinOp::Or,
        Rule::member => BinOp::In,
        Rule::not_member => BinOp::NotIn,
        _ => return None,
    })
}

/// An operand of a flat expression: its value (indexes applied) and the prefix
/// operators written before it, outermost first.
struct Operand {
    prefixes: Vec<(Rule, Span)>,
    expr: Expr,
}

/// What the shunting-yard keeps on its stack: a binary operator, or a `not` waiting
/// for its operand (which may be a whole comparison: `not a == b`).
#[derive(Clone, Copy)]
enum Pending {
    Binary(BinOp),
    Not(Span),
}

impl Pending {
    fn precedence(self) -> u8 {
        match self {
            Pending::Binary(op) => op.precedence(),
            Pending::Not(_) => NOT_PRECEDENCE,
        }
    }
}

/// Shunting-yard over a flat `a op b op c` list; binary operators are left-associative,
/// `-` binds tighter than any of them, `not` looser than comparisons. Comparisons chain
/// as in Python: `0 < a < 5` is `0 < a and a < 5`.
fn fold_binary(operands: Vec<Operand>, operators: Vec<BinOp>) -> Expr {
    // Each value on the stack, and whether it is a comparison folded here (not one in
    // parentheses), which a following comparison chains onto.
    let mut output: Vec<(Expr, bool)> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let reduce = |output: &mut Vec<(Expr, bool)>, top: Pending| {
        let (right, _) = output.pop().expect("operand");
        match top {
            Pending::Binary(op) => {
                let (left, chained) = output.pop().expect("operand");
                let span = left.span.to(right.span);
                let comparison = op.is_comparison();
                let expr = match chained_middle(&left).filter(|_| chained && comparison) {
                    Some(middle) => {
                        let next = Expr {
                            span: middle.span.to(right.span),
                            kind: ExprKind::Binary(op, Box::new(middle), Box::new(right)),
                        };
                        Expr { span, kind: ExprKind::Binary(BinOp::And, Box::new(left), Box::new(next)) }
                    }
                    None => Expr { span, kind: ExprKind::Binary(op, Box::new(left), Box::new(right)) },
                };
                output.push((expr, comparison));
            }
            Pending::Not(at) => {
                output.push((Expr { span: at.to(right.span), kind: ExprKind::Not(Box::new(right)) }, false))
            }
        }
    };
    // Pushes an operand: its `-`s apply at once; its `not`s wait on the stack.
    let push = |output: &mut Vec<(Expr, bool)>, pending: &mut Vec<Pending>, operand: Operand| {
        let mut expr = operand.expr;
        let mut nots = Vec::new();
        for (rule, at) in operand.prefixes.into_iter().rev() {
            if rule == Rule::neg {
                expr = Expr { span: at.to(expr.span), kind: ExprKind::Neg(Box::new(expr)) };
            } else {
                nots.push(at);
            }
        }
        pending.extend(nots.into_iter().rev().map(Pending::Not));
        output.push((expr, false));
    };
    let mut operands = operands.into_iter();
    push(&mut output, &mut pending, operands.next().expect("grammar: expression has an operand"));
    for (op, operand) in operators.into_iter().zip(operands) {
        while let Some(&top) = pending.last() {
            if top.precedence() >= op.precedence() {
                pending.pop();
                reduce(&mut output, top);
            } else {
                break;
            }
        }
        pending.push(Pending::Binary(op));
        push(&mut output, &mut pending, operand);
    }
    while let Some(top) = pending.pop() {
        reduce(&mut output, top);
    }
    output.pop().expect("one expression remains").0
}

/// The right-hand side of the last comparison of a chain (`b` of `a < b`, `c` of
/// `a < b and b < c`), which the next comparison of the chain compares again.
fn chained_middle(expr: &Expr) -> Option<Expr> {
    match &expr.kind {
        ExprKind::Binary(op, _, right) if op.is_comparison() => Some((**right).clone()),
        ExprKind::Binary(BinOp::And, _, right) => chained_middle(right),
        _ => None,
    }
}

/// Where a pair's last token ends. pest's spans of rules ending in an optional or
/// repeated part include the whitespace and comments skipped while looking for it.
pub fn code_end(pair: &Pair<'_, Rule>) -> usize {
    match pair.clone().into_inner().last() {
        Some(last) => code_end(&last),
        None => pair.as_span().end(),
    }
}

fn unquote(literal: &str) -> String {
    literal.trim_matches('"').to_string()
}
