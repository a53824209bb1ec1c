//! Source files known to one compilation: the user's files, their imports and the
//! standard library. Spans point into these by file id.

use codespan_reporting::files::SimpleFiles;

pub type FileId = usize;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

#[derive(Default)]
pub struct Sources {
    files: SimpleFiles<String, String>,
    paths: Vec<String>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let name = name.into();
        self.paths.push(name.clone());
        self.files.add(name, text.into())
    }

    pub fn text(&self, file: FileId) -> &str {
        self.files.get(file).map(|f| f.source().as_str()).unwrap_or("")
    }

    pub fn name(&self, file: FileId) -> &str {
        self.paths.get(file).map(String::as_str).unwrap_or("<unknown>")
    }

    pub fn find(&self, name: &str) -> Option<FileId> {
        self.paths.iter().position(|p| p == name)
    }

    pub fn files(&self) -> &SimpleFiles<String, String> {
        &self.files
    }

    /// 1-based line and column of a byte offset.
    pub fn line_column(&self, file: FileId, offset: usize) -> (usize, usize) {
        let text = self.text(file);
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = text[line_start..offset].chars().count() + 1;
        (line, column)
    }
}
