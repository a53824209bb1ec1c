//! The answers, in the protocol's types. Each reads an `Analysis`; none re-checks.

use super::analysis::{self, Analysis};
use super::text::{LineIndex, uri_of};
use crate::diagnostics::{Diagnostic, Severity};
use crate::format::thousands;
use crate::source::{FileId, Span};
use crate::syntax::ast::{Body, Def, DefKind, LayerExpr, Stmt};
use lsp_types::{
    CompletionItem, CompletionItemKind, DiagnosticRelatedInformation, DiagnosticSeverity, DocumentSymbol, Hover,
    HoverContents, InlayHint, InlayHintLabel, Location, MarkupContent, MarkupKind, NumberOrString, Position,
    PublishDiagnosticsParams, Range, SymbolKind, TextEdit, Uri,
};
use std::path::PathBuf;

/// Instances listed in a hover before "and N more".
const HOVER_INSTANCES: usize = 8;

impl Analysis {
    fn index(&self) -> LineIndex {
        LineIndex::new(self.text())
    }

    fn offset(&self, position: Position) -> usize {
        self.index().offset(self.text(), position)
    }

    /// The range of a span in its own file.
    fn range(&self, span: Span) -> Range {
        let text = self.sources.text(span.file);
        LineIndex::new(text).range(text, span.start, span.end)
    }

    /// Where a span is, as a location an editor can open: the file on disk, or for the
    /// standard library (compiled into archc) a copy written out for reading.
    fn location(&self, span: Span) -> Option<Location> {
        let uri = self.uri_of_file(span.file)?;
        Some(Location { uri, range: self.range(span) })
    }

    fn uri_of_file(&self, file: FileId) -> Option<Uri> {
        let name = self.sources.name(file);
        if let Some(std_name) = name.strip_prefix("<std>/") {
            return uri_of(&std_copy(std_name, self.sources.text(file))?);
        }
        let path = PathBuf::from(name);
        let absolute = if path.is_absolute() { path } else { std::env::current_dir().ok()?.join(path) };
        uri_of(&absolute)
    }

    /// The word (name) at `offset` in the entry file, with its span.
    fn word_at(&self, offset: usize) -> Option<(String, Span)> {
        let text = self.text();
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let offset = offset.min(text.len());
        // A word boundary may follow a character of several bytes (`×`, `ü`).
        let start =
            text[..offset].char_indices().rev().find(|&(_, c)| !is_word(c)).map_or(0, |(i, c)| i + c.len_utf8());
        let end = text[start..].find(|c: char| !is_word(c)).map_or(text.len(), |i| start + i);
        (start < end).then(|| (text[start..end].to_string(), Span::new(self.entry, start, end)))
    }
}

/// Standard-library files are compiled into archc; go-to-definition opens a read-only
/// copy written beside other temporary files, one folder per archc version.
fn std_copy(name: &str, text: &str) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("archc-std-{}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        std::fs::create_dir_all(&dir).ok()?;
        crate::report::files::write_atomic(&path, text).ok()?;
    }
    Some(path)
}

pub fn publish_diagnostics(analysis: &Analysis, uri: Uri) -> PublishDiagnosticsParams {
    let diagnostics = analysis.diagnostics().iter().map(|d| diagnostic(analysis, d)).collect();
    PublishDiagnosticsParams { uri, diagnostics, version: None }
}

/// A checker diagnostic as the protocol's: the message with its notes and help, the
/// primary label's range (or, for a mistake inside a standard-library or imported
/// block, where this file uses it), secondary labels as related information.
fn diagnostic(analysis: &Analysis, d: &Diagnostic) -> lsp_types::Diagnostic {
    let here = |span: Span| span.file == analysis.entry;
    let anchor =
        if here(d.primary.span) { Some(d.primary.span) } else { d.secondary.iter().map(|l| l.span).find(|&s| here(s)) };
    let range = anchor.map_or(Range::default(), |span| analysis.range(span));
    // The range shows where; a mistake inside another file's block says where it is.
    let mut message = d.message.clone();
    if !here(d.primary.span) {
        let file = d.primary.span.file;
        let (line, _) = analysis.sources.line_column(file, d.primary.span.start);
        let instance = d.instance.as_ref().map(|i| format!(", in `{i}`")).unwrap_or_default();
        message.push_str(&format!(" ({}:{line}{instance})", analysis.sources.name(file)));
    }
    for note in &d.notes {
        message.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let mut related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .filter_map(|label| {
            Some(DiagnosticRelatedInformation {
                location: analysis.location(label.span)?,
                message: label.message.clone(),
            })
        })
        .collect();
    if !here(d.primary.span)
        && let Some(location) = analysis.location(d.primary.span)
    {
        related.insert(0, DiagnosticRelatedInformation { location, message: d.primary.message.clone() });
    }
    lsp_types::Diagnostic {
        range,
        severity: Some(match d.severity() {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.id().to_string())),
        source: Some("archc".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..lsp_types::Diagnostic::default()
    }
}

fn markdown(value: String) -> Hover {
    Hover { contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value }), range: None }
}

pub fn hover(analysis: &Analysis, position: Position) -> Option<Hover> {
    let offset = analysis.offset(position);
    if let Some((word, span)) = analysis.word_at(offset)
        && let Some(entry) = analysis.definition(&word)
    {
        let mut hover = definition_hover(analysis, &entry.def, entry.file);
        hover.range = Some(analysis.range(span));
        return Some(hover);
    }
    let (span, instances) = analysis.instances_at(offset)?;
    let first = &instances[0];
    let line = |i: &analysis::Instance| {
        let output = i.output.map_or("?".to_string(), |o| o.to_string());
        let shapes = match i.error {
            // Not built: say so, and what checking went on with.
            Some(code) => format!("✗ {} on {} (checking went on with {output})", code.id(), i.input),
            None => format!("{} → {output}", i.input),
        };
        (shapes, thousands(i.params), thousands(i.macs))
    };
    let mut value = String::new();
    if instances.len() == 1 {
        let (shapes, params, macs) = line(first);
        value
            .push_str(&format!("**`{}`** · `{}`\n\n{shapes}\n\n{params} params · {macs} MACs", first.path, first.what));
    } else {
        let params = instances.iter().fold(0u128, |s, i| s.saturating_add(i.params));
        let macs = instances.iter().fold(0u128, |s, i| s.saturating_add(i.macs));
        let label = first.path.rsplit('.').next().unwrap_or(&first.path);
        value.push_str(&format!(
            "**`{label}`** · `{}` · used {} times · {} params · {} MACs in all\n\n| instance | shapes | params | MACs |\n|---|---|---:|---:|\n",
            first.what,
            instances.len(),
            thousands(params),
            thousands(macs)
        ));
        for instance in instances.iter().take(HOVER_INSTANCES) {
            let (shapes, params, macs) = line(instance);
            value.push_str(&format!("| `{}` | {shapes} | {params} | {macs} |\n", instance.path));
        }
        if instances.len() > HOVER_INSTANCES {
            value.push_str(&format!("\nand {} more", instances.len() - HOVER_INSTANCES));
        }
    }
    let mut hover = markdown(value);
    let text = analysis.text();
    // The first line of the statement: a block's body is not part of its hover.
    let end = text[span.start..span.end].find('\n').map_or(span.end, |i| span.start + i);
    hover.range = Some(analysis.range(Span::new(span.file, span.start, end)));
    Some(hover)
}

/// A block's signature and doc comment; a network's signature and totals.
fn definition_hover(analysis: &Analysis, def: &Def, file: FileId) -> Hover {
    let mut value = format!("```archc\n{}\n```", analysis::signature(def, &analysis.sources, file));
    let doc = analysis::doc_comment(def, &analysis.sources, file);
    if !doc.is_empty() {
        value.push_str(&format!("\n\n{doc}"));
    }
    if def.kind == DefKind::Network {
        match analysis.model(&def.name.text) {
            Some(model) => {
                let report = crate::cost::report(model, crate::cost::Convention::Core, 1, crate::cost::GroupBy::Layer);
                value.push_str(&format!(
                    "\n\n{} → {} · {} params · {} MACs · {} of activations per image",
                    model.input,
                    model.output,
                    thousands(report.params),
                    thousands(report.macs),
                    crate::format::bytes(report.memory.forward_activation_bytes)
                ));
            }
            None => value.push_str("\n\n(no totals: the network has errors)"),
        }
    } else {
        let points = analysis::points(def);
        if !points.is_empty() {
            let names: Vec<String> = points.iter().map(|p| format!("`{}`", p.text)).collect();
            value.push_str(&format!("\n\ninsertion points: {}", names.join(", ")));
        }
    }
    markdown(value)
}

pub fn definition(analysis: &Analysis, position: Position) -> Option<lsp_types::GotoDefinitionResponse> {
    let offset = analysis.offset(position);
    let (word, span) = analysis.word_at(offset)?;
    let text = analysis.text();
    // `insert ... at block.point`: the point inside the block.
    let before = text[..span.start].trim_end();
    if let Some(block_text) = before.strip_suffix('.') {
        let block = block_text.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or_default();
        if let Some(entry) = analysis.definition(block)
            && let Some(point) = analysis::points(&entry.def).into_iter().find(|p| p.text == word)
        {
            return analysis.location(point.span).map(lsp_types::GotoDefinitionResponse::Scalar);
        }
    }
    if let Some(entry) = analysis.definition(&word) {
        return analysis.location(entry.def.name.span).map(lsp_types::GotoDefinitionResponse::Scalar);
    }
    // A `let` or a parameter of the definition the cursor is in: the nearest before it.
    let def = analysis.enclosing_def(offset)?;
    let mut found: Option<Span> = def.params.iter().find(|p| p.name.text == word).map(|p| p.name.span);
    analysis::statements(&def.body, &mut |stmt| {
        if let Stmt::Let { name, .. } = stmt
            && name.text == word
            && name.span.start < offset
        {
            found = Some(name.span);
        }
        // A loop's variables, inside its body.
        if let Stmt::For(for_stmt) = stmt
            && for_stmt.body.span.start < offset
            && offset < for_stmt.body.span.end
            && let Some(name) = for_stmt.index.iter().chain([&for_stmt.item]).find(|n| n.text == word)
        {
            found = Some(name.span);
        }
    });
    analysis.location(found?).map(lsp_types::GotoDefinitionResponse::Scalar)
}

pub fn references(analysis: &Analysis, position: Position, include_declaration: bool) -> Vec<Location> {
    let offset = analysis.offset(position);
    let Some((word, _)) = analysis.word_at(offset) else { return Vec::new() };
    let Some(entry) = analysis.definition(&word) else { return Vec::new() };
    let mut spans = Vec::new();
    if include_declaration {
        spans.push(entry.def.name.span);
    }
    for entry in &analysis.result.definitions {
        analysis::called_names(&entry.def, &mut |name| {
            if name.text == word {
                spans.push(name.span);
            }
        });
    }
    spans.sort_by_key(|s| (s.file, s.start));
    spans.dedup();
    spans.into_iter().filter_map(|s| analysis.location(s)).collect()
}

/// `text` is the document as typed so far, which may not parse; names come from the
/// last check that did.
pub fn completion(analysis: &Analysis, text: &str, position: Position) -> Vec<CompletionItem> {
    let offset = LineIndex::new(text).offset(text, position);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..offset];
    // `insert ... at block.` → the block's insertion points.
    if let Some(at) = line.rfind(" at ") {
        let target = line[at + 4..].trim_start();
        if let Some((block, _)) = target.split_once('.') {
            let Some(entry) = analysis.definition(block.trim()) else { return Vec::new() };
            return analysis::points(&entry.def)
                .into_iter()
                .map(|p| item(&p.text, CompletionItemKind::ENUM_MEMBER, format!("point in `{block}`")))
                .collect();
        }
    }
    let mut items = Vec::new();
    if let Some((callee, open)) = open_call(text, offset) {
        // Arguments already given by name in this call are not offered again.
        let given = given_names(&text[open + 1..offset]);
        items.extend(argument_items(analysis, &callee).into_iter().filter(|i| !given.contains(&i.label)));
    }
    items.extend(name_items(analysis));
    items
}

fn item(label: &str, kind: CompletionItemKind, detail: String) -> CompletionItem {
    CompletionItem { label: label.to_string(), kind: Some(kind), detail: Some(detail), ..CompletionItem::default() }
}

/// The name of the call whose parentheses hold `offset`, and where its `(` is.
fn open_call(text: &str, offset: usize) -> Option<(String, usize)> {
    let mut depth = 0i32;
    for (i, ch) in text[..offset].char_indices().rev() {
        match ch {
            ')' => depth += 1,
            '(' if depth > 0 => depth -= 1,
            '(' => {
                let before = &text[..i];
                let name = before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next()?;
                return (!name.is_empty()).then(|| (name.to_string(), i));
            }
            '{' | '}' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// The names given as `name: value` at the top level of an argument list's text.
fn given_names(arguments: &str) -> Vec<String> {
    let mut depth = 0i32;
    let mut names = Vec::new();
    for piece in arguments.split_inclusive([',', '(', ')']) {
        if depth == 0
            && let Some((name, _)) = piece.split_once(':')
        {
            let name = name.trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.push(name.to_string());
            }
        }
        match piece.chars().last() {
            Some('(') => depth += 1,
            Some(')') => depth -= 1,
            _ => {}
        }
    }
    names
}

/// `name: ` for each parameter of the op, block or structural form called `callee`.
fn argument_items(analysis: &Analysis, callee: &str) -> Vec<CompletionItem> {
    let named = |name: &str, detail: String| CompletionItem {
        insert_text: Some(format!("{name}: ")),
        ..item(name, CompletionItemKind::FIELD, detail)
    };
    if let Some(spec) = crate::ops::spec(callee) {
        return spec
            .args
            .iter()
            .map(|a| {
                let default = match a.default {
                    crate::ops::ArgDefault::Required => " (required)".to_string(),
                    crate::ops::ArgDefault::Absent => " (optional)".to_string(),
                    crate::ops::ArgDefault::Int(v) => format!(" = {v}"),
                    crate::ops::ArgDefault::Float(v) => format!(" = {v:?}"),
                    crate::ops::ArgDefault::Bool(v) => format!(" = {v}"),
                    crate::ops::ArgDefault::Choice(v) => format!(" = {v}"),
                };
                named(a.name, format!("{}{default}", a.ty))
            })
            .collect();
    }
    if let Some(entry) = analysis.definition(callee) {
        let text = analysis.sources.text(entry.file);
        return entry
            .def
            .params
            .iter()
            .map(|p| {
                let default = p
                    .default
                    .as_ref()
                    .map_or(" (required)".to_string(), |d| format!(" = {}", &text[d.span.start..d.span.end]));
                named(&p.name.text, format!("{}{default}", p.ty.text))
            })
            .collect();
    }
    let structural: &[(&str, &str)] = match callee {
        "residual" => &[("shortcut", "module = identity"), ("enabled", "bool = true")],
        "parallel" => &[("merge", "one of sum, concat, mul = sum")],
        "repeat" => &[("times", "int (required)"), ("prefix", "string = \"\"")],
        "stage" => &[("blocks", "int (required)"), ("stride", "int = 1")],
        _ => &[],
    };
    structural.iter().map(|(name, detail)| named(name, detail.to_string())).collect()
}

/// Layers, blocks, structural forms and functions.
fn name_items(analysis: &Analysis) -> Vec<CompletionItem> {
    let mut items: Vec<CompletionItem> =
        crate::ops::all_specs().map(|s| item(s.name, CompletionItemKind::FUNCTION, s.summary.to_string())).collect();
    for entry in &analysis.result.definitions {
        if entry.def.kind == DefKind::Block {
            let signature = analysis::signature(&entry.def, &analysis.sources, entry.file);
            items.push(item(&entry.def.name.text, CompletionItemKind::CLASS, signature));
        }
    }
    for form in ["residual", "scale", "parallel", "repeat", "stage"] {
        items.push(item(form, CompletionItemKind::KEYWORD, "structural form".into()));
    }
    for function in crate::elaborate::FUNCTIONS {
        items.push(item(function, CompletionItemKind::FUNCTION, "function".into()));
    }
    items
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` must be written out; it is `None`.
pub fn symbols(analysis: &Analysis) -> Vec<DocumentSymbol> {
    analysis
        .own_definitions()
        .map(|def| DocumentSymbol {
            name: def.name.text.clone(),
            detail: Some(analysis::signature(def, &analysis.sources, analysis.entry)),
            kind: if def.kind == DefKind::Network { SymbolKind::CLASS } else { SymbolKind::FUNCTION },
            tags: None,
            deprecated: None,
            range: analysis.range(def.span),
            selection_range: analysis.range(def.name.span),
            children: Some(label_symbols(analysis, &def.body)),
        })
        .collect()
}

#[allow(deprecated)]
fn label_symbols(analysis: &Analysis, body: &Body) -> Vec<DocumentSymbol> {
    let mut symbols = Vec::new();
    for stmt in &body.stmts {
        let layer = match stmt {
            Stmt::Layer(layer) => layer,
            // Spliced bodies: their labels belong to this scope.
            Stmt::For(for_stmt) => {
                symbols.extend(label_symbols(analysis, &for_stmt.body));
                continue;
            }
            Stmt::If(if_stmt) => {
                symbols.extend(label_symbols(analysis, &if_stmt.then));
                if let Some(otherwise) = &if_stmt.otherwise {
                    symbols.extend(label_symbols(analysis, otherwise));
                }
                continue;
            }
            _ => continue,
        };
        let inner = match &layer.layer {
            LayerExpr::Seq(inner) | LayerExpr::Call { body: Some(inner), .. } => Some(inner),
            LayerExpr::Call { body: None, .. } => None,
        };
        let children = inner.map(|b| label_symbols(analysis, b)).unwrap_or_default();
        match &layer.label {
            Some(label) => symbols.push(DocumentSymbol {
                name: label.text().to_string(),
                detail: match &layer.layer {
                    LayerExpr::Call { call, .. } => Some(call.name.text.clone()),
                    LayerExpr::Seq(_) => None,
                },
                kind: SymbolKind::FIELD,
                tags: None,
                deprecated: None,
                range: analysis.range(layer.span),
                selection_range: analysis.range(label.span()),
                children: (!children.is_empty()).then_some(children),
            }),
            // Unlabelled structure (residual, scale): its labels belong to the enclosing scope.
            None => symbols.extend(children),
        }
    }
    symbols
}

/// The whole document, formatted, as one edit (none when it is formatted or does not parse).
pub fn formatting(analysis: &Analysis) -> Vec<TextEdit> {
    let text = analysis.text();
    match crate::fmt::format(analysis.entry, text) {
        Ok(formatted) if formatted != text => {
            vec![TextEdit { range: analysis.range(Span::new(analysis.entry, 0, text.len())), new_text: formatted }]
        }
        _ => Vec::new(),
    }
}

/// The output shape at the end of each layer statement's first line.
pub fn inlay_hints(analysis: &Analysis, range: Range) -> Vec<InlayHint> {
    let text = analysis.text();
    let index = analysis.index();
    let mut hints = Vec::new();
    for (span, outputs) in analysis.statement_outputs() {
        let line_end = text[span.start..].find('\n').map_or(text.len(), |i| span.start + i);
        let end = span.end.min(line_end);
        let position = index.position(text, end);
        if position.line < range.start.line || position.line > range.end.line {
            continue;
        }
        let mut shapes: Vec<String> = outputs.iter().map(|o| o.map_or("?".into(), |s| s.to_string())).collect();
        shapes.dedup();
        let label = match shapes.as_slice() {
            [one] => format!("→ {one}"),
            many => format!("→ {} shapes ({} instances)", many.len(), outputs.len()),
        };
        hints.push(InlayHint {
            position,
            label: InlayHintLabel::String(label),
            kind: Some(lsp_types::InlayHintKind::TYPE),
            text_edits: None,
            tooltip: None,
            padding_left: Some(true),
            padding_right: None,
            data: None,
        });
    }
    // Several statements can end on one line (a stage and its copies): one hint each line.
    hints.dedup_by(|a, b| a.position.line == b.position.line);
    hints
}

#[cfg(test)]
mod tests {
    use super::{given_names, open_call};

    #[test]
    fn the_open_call_is_the_innermost_unclosed_parenthesis() {
        assert_eq!(open_call("conv(64, ", 9), Some(("conv".to_string(), 4)));
        assert_eq!(open_call("stage(bottleneck(64), ", 22), Some(("stage".to_string(), 5)));
        assert_eq!(open_call("conv(64) ", 9), None);
    }

    #[test]
    fn given_names_are_those_at_the_top_level_of_the_call() {
        assert_eq!(given_names("64, kernel: 3, stride: 2, "), ["kernel", "stride"]);
        assert_eq!(given_names("basic(16, skip: true), blocks: 2, "), ["blocks"]);
        assert!(given_names("").is_empty());
    }
}
