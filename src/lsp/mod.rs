//! `archc lsp`: a language server over stdio (lsp-server + lsp-types, synchronous, as
//! Gleam's and nickel's are). Every open document is checked by the compiler itself,
//! so the editor shows the same codes, messages, labels and help as `archc check`;
//! hover, go to definition, references, completion, symbols, formatting (`archc fmt`)
//! and inlay hints read the same result.
//!
//! Checking is debounced: a change marks its document stale, and stale documents are
//! checked once the client has been quiet for `QUIET`, or at once when a request needs
//! an answer about them.

mod analysis;
mod features;
pub mod text;

pub use analysis::Analysis;
use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use lsp_types::{
    CompletionOptions, HoverProviderCapability, InitializeParams, OneOf, ServerCapabilities,
    TextDocumentSyncCapability, TextDocumentSyncKind, Uri, notification, request,
};
use std::collections::HashMap;
use std::time::Duration;

/// How long the client must be quiet before a changed document is checked again.
const QUIET: Duration = Duration::from_millis(150);

/// What went wrong talking to the client (the connection broke or spoke nonsense).
#[derive(Debug)]
pub struct LspError(pub String);

impl std::fmt::Display for LspError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "language server: {}", self.0)
    }
}

/// Serves on stdin/stdout until the client says `exit`.
pub fn run_stdio() -> Result<(), LspError> {
    let (connection, io_threads) = Connection::stdio();
    serve(&connection)?;
    drop(connection);
    io_threads.join().map_err(|e| LspError(e.to_string()))
}

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        inlay_hint_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "(".into(), ",".into()]),
            ..CompletionOptions::default()
        }),
        ..ServerCapabilities::default()
    }
}

/// One open document: its text as the editor has it, the last check of it, and the
/// last check of a version that parsed: while a line is half typed the file does not
/// parse, and hover, definitions, symbols and completion answer from that one.
struct Document {
    path: String,
    text: String,
    stale: bool,
    analysis: Option<Analysis>,
    parsed: Option<Analysis>,
}

struct Server<'c> {
    connection: &'c Connection,
    documents: HashMap<String, Document>,
    /// Inlay hints are opt-in (`initializationOptions.inlayHints` or the setting
    /// `archc.inlayHints`): a shape after every line is a lot of text.
    inlay_hints: bool,
}

/// Runs the protocol on a connection (stdio, or in memory for tests).
pub fn serve(connection: &Connection) -> Result<(), LspError> {
    let caps = serde_json::to_value(capabilities()).map_err(|e| LspError(e.to_string()))?;
    let params = connection.initialize(caps).map_err(|e| LspError(e.to_string()))?;
    let params: InitializeParams = serde_json::from_value(params).map_err(|e| LspError(e.to_string()))?;
    let inlay_hints =
        params.initialization_options.as_ref().and_then(|o| o.get("inlayHints")).and_then(|v| v.as_bool());
    let mut server = Server { connection, documents: HashMap::new(), inlay_hints: inlay_hints.unwrap_or(false) };
    loop {
        let message = match connection.receiver.recv_timeout(QUIET) {
            Ok(message) => message,
            Err(error) if error.is_timeout() => {
                server.check_stale();
                continue;
            }
            Err(_) => return Ok(()), // the client went away
        };
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request).map_err(|e| LspError(e.to_string()))? {
                    return Ok(());
                }
                server.request(request)?;
            }
            Message::Notification(notification) => {
                if notification.method == notification::Exit::METHOD {
                    return Ok(());
                }
                let _ = server.notification(notification);
            }
            Message::Response(_) => {}
        }
    }
}

impl Server<'_> {
    fn send(&self, message: Message) -> Result<(), LspError> {
        self.connection.sender.send(message).map_err(|e| LspError(e.to_string()))
    }

    fn check_stale(&mut self) {
        let stale: Vec<String> = self.documents.iter().filter(|(_, d)| d.stale).map(|(u, _)| u.clone()).collect();
        for uri in stale {
            self.check(&uri);
        }
    }

    /// Checks a document and publishes its diagnostics.
    fn check(&mut self, uri: &str) {
        let Some(document) = self.documents.get_mut(uri) else { return };
        let Ok(lsp_uri) = uri.parse::<Uri>() else { return };
        let (analysis, params) = check_document(&document.path, &document.text, lsp_uri);
        document.stale = false;
        if analysis.parses() {
            document.parsed = None;
        } else if let Some(previous) = document.analysis.take().filter(Analysis::parses) {
            document.parsed = Some(previous);
        }
        document.analysis = Some(analysis);
        let _ = self.send(Message::Notification(Notification::new(
            notification::PublishDiagnostics::METHOD.to_string(),
            params,
        )));
    }

    /// The check of a document to answer from, checking it now if it changed: the
    /// current one, or while it does not parse, the last one that did.
    fn analysis(&mut self, uri: &Uri) -> Option<&Analysis> {
        let key = uri.as_str().to_string();
        if self.documents.get(&key).is_some_and(|d| d.stale || d.analysis.is_none()) {
            self.check(&key);
        }
        self.documents.get(&key).and_then(|d| d.parsed.as_ref().or(d.analysis.as_ref()))
    }

    /// The document's text as the editor has it now.
    fn text(&self, uri: &Uri) -> String {
        self.documents.get(uri.as_str()).map(|d| d.text.clone()).unwrap_or_default()
    }

    /// Handles a notification; one with malformed parameters is ignored (there is no one
    /// to answer).
    fn notification(&mut self, notification: Notification) -> Result<(), BadParams> {
        match notification.method.as_str() {
            notification::DidOpenTextDocument::METHOD => {
                let params: lsp_types::DidOpenTextDocumentParams = extract_notification(notification)?;
                let uri = params.text_document.uri;
                let key = uri.as_str().to_string();
                let path = document_path(&uri);
                self.documents.insert(
                    key.clone(),
                    Document { path, text: params.text_document.text, stale: true, analysis: None, parsed: None },
                );
                // Opening shows its diagnostics at once; typing is debounced.
                self.check(&key);
            }
            notification::DidChangeTextDocument::METHOD => {
                let params: lsp_types::DidChangeTextDocumentParams = extract_notification(notification)?;
                let key = params.text_document.uri.as_str().to_string();
                if let (Some(document), Some(change)) =
                    (self.documents.get_mut(&key), params.content_changes.into_iter().last())
                {
                    document.text = change.text;
                    document.stale = true;
                }
            }
            notification::DidCloseTextDocument::METHOD => {
                let params: lsp_types::DidCloseTextDocumentParams = extract_notification(notification)?;
                self.documents.remove(params.text_document.uri.as_str());
                // A closed file's diagnostics go away with it.
                let cleared = lsp_types::PublishDiagnosticsParams {
                    uri: params.text_document.uri,
                    diagnostics: Vec::new(),
                    version: None,
                };
                let _ = self.send(Message::Notification(Notification::new(
                    notification::PublishDiagnostics::METHOD.into(),
                    cleared,
                )));
            }
            notification::DidChangeConfiguration::METHOD => {
                let params: lsp_types::DidChangeConfigurationParams = extract_notification(notification)?;
                if let Some(enabled) = params.settings.pointer("/archc/inlayHints").and_then(|v| v.as_bool()) {
                    self.inlay_hints = enabled;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn request(&mut self, request: Request) -> Result<(), LspError> {
        let id = request.id.clone();
        let method = request.method.clone();
        // A bug of ours in one answer must not take the editor's server down with it.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer(request)));
        let Ok(answered) = answered else {
            let code = lsp_server::ErrorCode::InternalError as i32;
            let message = format!("archc failed answering `{method}` (a bug: please report it with the file)");
            return self.send(Message::Response(Response::new_err(id, code, message)));
        };
        match answered {
            Ok(Some(result)) => self.respond(id, result),
            Ok(None) => {
                let code = lsp_server::ErrorCode::MethodNotFound as i32;
                self.send(Message::Response(Response::new_err(id, code, format!("`{method}` is not supported"))))
            }
            // A client's malformed request is answered, not fatal.
            Err(BadParams(message)) => {
                let code = lsp_server::ErrorCode::InvalidParams as i32;
                self.send(Message::Response(Response::new_err(id, code, message)))
            }
        }
    }

    /// The answer to a request (`None` for a method the server does not know). While the
    /// document does not parse, the answer comes from its last version that did: the
    /// request's position is taken to that version's lines, and the answer's ranges back.
    fn answer(&mut self, mut request: Request) -> Result<Option<serde_json::Value>, BadParams> {
        let uri = request.params.pointer("/textDocument/uri").and_then(|u| u.as_str()).unwrap_or_default().to_string();
        if self.documents.get(&uri).is_some_and(|d| d.stale || d.analysis.is_none()) {
            self.check(&uri);
        }
        let shift = self.documents.get(&uri).and_then(|d| Some(LineShift::new(d.parsed.as_ref()?.text(), &d.text)));
        let completion = request.method == request::Completion::METHOD;
        if let (Some(shift), false) = (&shift, completion)
            && let Some(line) = request.params.pointer_mut("/position/line")
        {
            match line.as_u64().and_then(|l| shift.to_old(l)) {
                Some(old) => *line = old.into(),
                None => return Ok(Some(serde_json::Value::Null)), // a line being typed
            }
        }
        let answer = self.answer_now(request)?;
        Ok(match (answer, shift) {
            (Some(mut value), Some(shift)) if !completion => {
                shift.remap(&mut value, &uri);
                Some(value)
            }
            (answer, _) => answer,
        })
    }

    fn answer_now(&mut self, request: Request) -> Result<Option<serde_json::Value>, BadParams> {
        let result = match request.method.as_str() {
            request::HoverRequest::METHOD => {
                let params: lsp_types::HoverParams = extract(request)?;
                let at = params.text_document_position_params;
                self.analysis(&at.text_document.uri).and_then(|a| features::hover(a, at.position)).map(to_value)
            }
            request::GotoDefinition::METHOD => {
                let params: lsp_types::GotoDefinitionParams = extract(request)?;
                let at = params.text_document_position_params;
                self.analysis(&at.text_document.uri).and_then(|a| features::definition(a, at.position)).map(to_value)
            }
            request::References::METHOD => {
                let params: lsp_types::ReferenceParams = extract(request)?;
                let at = params.text_document_position;
                let declaration = params.context.include_declaration;
                self.analysis(&at.text_document.uri)
                    .map(|a| to_value(features::references(a, at.position, declaration)))
            }
            request::Completion::METHOD => {
                let params: lsp_types::CompletionParams = extract(request)?;
                let at = params.text_document_position;
                // The names known come from the last check; what is being typed, from now.
                let text = self.text(&at.text_document.uri);
                self.analysis(&at.text_document.uri).map(|a| to_value(features::completion(a, &text, at.position)))
            }
            request::DocumentSymbolRequest::METHOD => {
                let params: lsp_types::DocumentSymbolParams = extract(request)?;
                self.analysis(&params.text_document.uri).map(|a| to_value(features::symbols(a)))
            }
            request::Formatting::METHOD => {
                let params: lsp_types::DocumentFormattingParams = extract(request)?;
                self.analysis(&params.text_document.uri).map(|a| to_value(features::formatting(a)))
            }
            request::InlayHintRequest::METHOD => {
                let params: lsp_types::InlayHintParams = extract(request)?;
                let enabled = self.inlay_hints;
                self.analysis(&params.text_document.uri)
                    .map(|a| to_value(if enabled { features::inlay_hints(a, params.range) } else { Vec::new() }))
            }
            _ => return Ok(None),
        };
        Ok(Some(result.unwrap_or(serde_json::Value::Null)))
    }

    fn respond(&self, id: RequestId, result: serde_json::Value) -> Result<(), LspError> {
        self.send(Message::Response(Response { id, response_result: Ok(result) }))
    }
}

/// What a keystroke costs: the document checked, and its diagnostics in the protocol's
/// form (what `benches/check.rs` measures on ResNet-152).
pub fn check_document(path: &str, text: &str, uri: Uri) -> (Analysis, lsp_types::PublishDiagnosticsParams) {
    let analysis = Analysis::new(path, text);
    let params = features::publish_diagnostics(&analysis, uri);
    (analysis, params)
}

fn to_value<T: serde::Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// How the lines of the text being typed map to those of the last version that parsed:
/// the same up to the first changed line and after the last one; none in between.
struct LineShift {
    prefix: u64,
    old_len: u64,
    new_len: u64,
    suffix: u64,
}

impl LineShift {
    fn new(old: &str, new: &str) -> LineShift {
        let (old, new): (Vec<&str>, Vec<&str>) = (old.split('\n').collect(), new.split('\n').collect());
        let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let room = old.len().min(new.len()) - prefix;
        let suffix = old.iter().rev().zip(new.iter().rev()).take_while(|(a, b)| a == b).count().min(room);
        LineShift { prefix: prefix as u64, old_len: old.len() as u64, new_len: new.len() as u64, suffix: suffix as u64 }
    }

    fn to_old(&self, line: u64) -> Option<u64> {
        self.across(line, self.new_len, self.old_len)
    }

    fn to_new(&self, line: u64) -> Option<u64> {
        self.across(line, self.old_len, self.new_len)
    }

    /// A line of a text of `from` lines in the other of `to` lines.
    fn across(&self, line: u64, from: u64, to: u64) -> Option<u64> {
        if line < self.prefix {
            Some(line)
        } else if line >= from - self.suffix {
            Some(line + to - from)
        } else {
            None
        }
    }

    /// Takes the ranges of an answer about document `uri` to the new lines; an item
    /// whose range fell in the changed lines is dropped (a hover keeps no range).
    fn remap(&self, value: &mut serde_json::Value, uri: &str) -> bool {
        use serde_json::Value;
        match value {
            Value::Array(items) => {
                items.retain_mut(|item| self.remap(item, uri));
                true
            }
            Value::Object(object) => {
                if object.get("uri").and_then(Value::as_str).is_some_and(|u| u != uri) {
                    return true; // another file's lines did not move
                }
                for key in ["range", "selectionRange"] {
                    if let Some(range) = object.get_mut(key)
                        && !self.remap_range(range)
                    {
                        if object.contains_key("contents") {
                            object.remove(key); // a hover without its range
                        } else {
                            return false;
                        }
                    }
                }
                if let Some(position) = object.get_mut("position")
                    && !self.remap_position(position)
                {
                    return false;
                }
                if let Some(children) = object.get_mut("children") {
                    self.remap(children, uri);
                }
                true
            }
            _ => true,
        }
    }

    fn remap_range(&self, range: &mut serde_json::Value) -> bool {
        let ok = range.get_mut("start").is_some_and(|p| self.remap_position(p));
        ok && range.get_mut("end").is_some_and(|p| self.remap_position(p))
    }

    fn remap_position(&self, position: &mut serde_json::Value) -> bool {
        let Some(line) = position.get_mut("line") else { return false };
        match line.as_u64().and_then(|l| self.to_new(l)) {
            Some(new) => {
                *line = new.into();
                true
            }
            None => false,
        }
    }
}

/// Parameters that do not have the shape the protocol gives them.
struct BadParams(String);

fn extract<P: serde::de::DeserializeOwned>(request: Request) -> Result<P, BadParams> {
    serde_json::from_value(request.params).map_err(|e| BadParams(format!("{}: {e}", request.method)))
}

fn extract_notification<P: serde::de::DeserializeOwned>(notification: Notification) -> Result<P, BadParams> {
    serde_json::from_value(notification.params).map_err(|e| BadParams(format!("{}: {e}", notification.method)))
}

/// The path the compiler sees for a document: its file path (imports are relative to
/// it), or the URI itself for an unsaved buffer.
fn document_path(uri: &Uri) -> String {
    text::path_of(uri).map(|p| p.display().to_string()).unwrap_or_else(|| uri.as_str().to_string())
}
