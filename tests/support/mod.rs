//! Helpers shared by the integration tests that check files users read.
// Each test binary that includes this module uses only some of its helpers.
#![allow(dead_code)]

pub mod runs;

use std::path::{Path, PathBuf};

/// A scratch directory under the system's temporary directory, named after the test
/// and the process, emptied when made and removed when the test passes (kept after a
/// failure, to look at).
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(prefix: &str, name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("archc-{prefix}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A real PNG picture of the given size with something drawn on it.
pub fn assert_png(path: &Path, size: (u32, u32)) {
    let picture = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(picture.dimensions(), size, "{}", path.display());
    let coloured = picture.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(coloured > 1000, "{} has content", path.display());
}

/// Numbers replaced by `#`, with their unit (`24.8 MB`, `0.51 ms`: a measured size
/// may change unit between runs); the punctuation around a number stays (`(#)`, `#,`,
/// `#%`), and words that merely hold digits (`depth=4`, `body.0.conv`, `b128`) stay. A
/// snapshot then holds the report's form, not its values; tests check the values
/// against their sources separately.
pub fn masked(text: &str) -> String {
    const UNITS: &[&str] = &["B", "KB", "MB", "GB", "K", "M", "G", "T", "ms", "s"];
    let mask = |word: &str| -> Option<String> {
        let start = word.len() - word.trim_start_matches('(').len();
        let end = word.trim_end_matches(['%', ',', '.', ')', ';', ':']).len();
        let number = word.get(start..end).filter(|n| !n.is_empty())?;
        number.parse::<f64>().ok()?;
        Some(format!("{}#{}", &word[..start], &word[end..]))
    };
    let line = |line: &str| {
        let mut out: Vec<String> = Vec::new();
        for word in line.split(' ') {
            let after_number = out.last().is_some_and(|w| w == "#");
            match mask(word) {
                Some(masked) => out.push(masked),
                None if after_number && UNITS.contains(&word) => {}
                None => out.push(word.to_string()),
            }
        }
        out.join(" ")
    };
    text.lines().map(line).collect::<Vec<_>>().join("\n")
}
