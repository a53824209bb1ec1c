//! Reading files: the entry file, its imports (relative to the importing file), and
//! the standard library compiled into the binary. Produces the table of definitions.

use crate::diagnostics::{Code, Diagnostic};
use crate::error::IoReason;
use crate::source::{FileId, Sources};
use crate::syntax::{self, ast::Def, ast::DefKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The standard library: `.arch` sources compiled into the binary.
pub const STD_FILES: &[(&str, &str)] = &[
    ("<std>/resnet.arch", include_str!("../../std/resnet.arch")),
    ("<std>/attention.arch", include_str!("../../std/attention.arch")),
    ("<std>/vit.arch", include_str!("../../std/vit.arch")),
];

pub struct DefEntry {
    pub def: Def,
    pub file: FileId,
}

#[derive(Default)]
pub struct Library {
    pub defs: HashMap<String, Rc<DefEntry>>,
    /// Networks written in the entry file, in order.
    pub networks: Vec<Rc<DefEntry>>,
}

/// Names that are part of the language and cannot be redefined by a block.
pub fn is_builtin(name: &str) -> bool {
    crate::ops::spec(name).is_some() || super::structure::Structural::named(name).is_some()
}

pub fn load(sources: &mut Sources, entry_name: &str, entry_text: &str) -> (Library, Vec<Diagnostic>) {
    let mut loader = Loader { sources, library: Library::default(), diagnostics: Vec::new(), loaded: Vec::new() };
    for (name, text) in STD_FILES {
        let file = loader.sources.add(*name, *text);
        loader.parse_file(file, None, false);
    }
    let entry = loader.sources.add(entry_name, entry_text);
    loader.loaded.push(canonical(Path::new(entry_name)));
    loader.parse_file(entry, Some(PathBuf::from(entry_name)), true);
    (loader.library, loader.diagnostics)
}

struct Loader<'a> {
    sources: &'a mut Sources,
    library: Library,
    diagnostics: Vec<Diagnostic>,
    /// Files already read (canonical paths), so that diamonds load once.
    loaded: Vec<PathBuf>,
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

impl Loader<'_> {
    fn parse_file(&mut self, file: FileId, path: Option<PathBuf>, is_entry: bool) {
        let (ast, diagnostics) = syntax::parse(file, self.sources.text(file));
        self.diagnostics.extend(diagnostics);
        let is_std = path.is_none();
        for import in &ast.imports {
            let Some(importer) = &path else { continue };
            let target = importer.parent().unwrap_or(Path::new(".")).join(&import.path);
            let key = canonical(&target);
            if self.loaded.contains(&key) {
                continue;
            }
            match std::fs::read_to_string(&target) {
                Ok(text) => {
                    let text = text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text);
                    self.loaded.push(key);
                    let id = self.sources.add(target.display().to_string(), text);
                    self.parse_file(id, Some(target), false);
                }
                Err(error) => self.diagnostics.push(
                    Diagnostic::new(
                        Code::Import,
                        format!("cannot read `{}`: {}", target.display(), IoReason::from(&error)),
                        import.span,
                        "imported here",
                    )
                    .with_help("import paths are relative to the importing file"),
                ),
            }
        }
        for def in ast.defs {
            self.define(def, file, is_std, is_entry);
        }
    }

    fn define(&mut self, def: Def, file: FileId, is_std: bool, is_entry: bool) {
        let name = def.name.text.clone();
        if is_builtin(&name) {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::DuplicateLabel,
                    format!("`{name}` is a built-in layer and cannot be redefined"),
                    def.name.span,
                    "redefines a built-in",
                )
                .with_help(format!("give the block another name, such as `my_{name}`")),
            );
            return;
        }
        if let Some(previous) = self.library.defs.get(&name) {
            let previous_is_std = self.sources.name(previous.file).starts_with("<std>");
            if !previous_is_std || is_std {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateLabel,
                        format!("`{name}` is defined twice"),
                        def.name.span,
                        "defined again here",
                    )
                    .with_secondary(previous.def.name.span, "first defined here")
                    .with_help("rename one of them"),
                );
                return;
            }
            // A user's definition replaces the standard library's (copy-and-edit).
        }
        let entry = Rc::new(DefEntry { def, file });
        if is_entry && entry.def.kind == DefKind::Network {
            self.library.networks.push(entry.clone());
        }
        self.library.defs.insert(name, entry);
    }
}
