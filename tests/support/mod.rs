//! Helpers shared by the integration tests that check files users read.

use std::path::Path;

/// A real PNG picture of the given size with something drawn on it.
pub fn assert_png(path: &Path, size: (u32, u32)) {
    let picture = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(picture.dimensions(), size, "{}", path.display());
    let coloured = picture.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(coloured > 1000, "{} has content", path.display());
}

/// Numbers replaced by `#`, with their unit (`24.8 MB`, `0.51 ms`: a measured size
/// may change unit between runs); words that merely hold digits (`depth=4`,
/// `body.0.conv`, `b128`) stay. A snapshot then holds the report's form, not its values.
pub fn masked(text: &str) -> String {
    const UNITS: &[&str] = &["B", "KB", "MB", "GB", "K", "M", "G", "T", "ms", "s"];
    let is_number = |word: &str| {
        let bare = word.trim_start_matches('(').trim_end_matches(['%', ',', '.', ')', ';']);
        !bare.is_empty() && bare.parse::<f64>().is_ok()
    };
    let line = |line: &str| {
        let mut out: Vec<String> = Vec::new();
        for word in line.split(' ') {
            let after_number = out.last().is_some_and(|w| w == "#");
            if is_number(word) {
                out.push("#".into());
            } else if !(after_number && UNITS.contains(&word)) {
                out.push(word.to_string());
            }
        }
        out.join(" ")
    };
    text.lines().map(line).collect::<Vec<_>>().join("\n")
}
