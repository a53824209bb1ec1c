//! UI tests, rustc style: every `tests/ui/*.arch` is compiled and its rendered
//! diagnostics are compared with `snapshots/ui/<name>.snap`. A file named after a
//! code (`E0009_...`) must report that code. Review changes with `cargo insta review`.

use archc::diagnostics::{CODES, render_plain};
use archc::elaborate::{Options, compile};
use archc::source::Sources;
use std::path::PathBuf;

fn ui_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/ui")
        .expect("tests/ui exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "arch"))
        .collect();
    files.sort();
    files
}

fn render(path: &PathBuf) -> (String, Vec<&'static str>) {
    let text = std::fs::read_to_string(path).expect("readable ui file");
    let name = path.to_string_lossy().replace('\\', "/");
    let mut sources = Sources::new();
    let result = compile(&mut sources, &name, &text, &Options::default());
    let codes = result.diagnostics.iter().map(|d| d.code.id()).collect();
    (render_plain(&sources, &result.diagnostics), codes)
}

#[test]
fn every_ui_file_renders_its_snapshot() {
    let files = ui_files();
    assert!(files.len() >= 30, "expected at least 30 UI files, found {}", files.len());
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let (rendered, codes) = render(&path);
        let expected_code = &stem[..5];
        if CODES.iter().any(|c| c.id == expected_code) && !stem.contains("silenced") {
            assert!(codes.contains(&expected_code), "{stem}: expected {expected_code}, got {codes:?}\n{rendered}");
        }
        insta::with_settings!({
            snapshot_path => "../snapshots/ui",
            prepend_module_to_snapshot => false,
            input_file => &path,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(stem, rendered);
        });
    }
}

/// Files with several independent mistakes say which they hold (`# expect: E0010 W0001`):
/// exactly those are reported, each once, in source order (no cascade, none hidden).
#[test]
fn files_with_several_mistakes_report_each_once() {
    let mut checked = 0;
    for path in ui_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(expected) = text.lines().find_map(|l| l.strip_prefix("# expect:")) else { continue };
        let expected: Vec<&str> = expected.split_whitespace().collect();
        let (rendered, codes) = render(&path);
        assert_eq!(codes, expected, "{}:\n{rendered}", path.display());
        checked += 1;
    }
    assert!(checked >= 5, "expected at least 5 files with `# expect:`, found {checked}");
}

#[test]
fn every_code_has_a_ui_test() {
    let stems: Vec<String> = ui_files().iter().map(|p| p.file_stem().unwrap().to_string_lossy().to_string()).collect();
    for info in CODES {
        assert!(stems.iter().any(|s| s.starts_with(info.id)), "no tests/ui file for {} ({})", info.id, info.summary);
    }
}

#[test]
fn allow_silences_its_lint() {
    let (rendered, codes) = render(&PathBuf::from("tests/ui/W0002_silenced_with_allow.arch"));
    assert!(codes.is_empty(), "expected no diagnostics, got:\n{rendered}");
}

#[test]
fn command_line_allow_silences_a_lint() {
    let text = std::fs::read_to_string("tests/ui/W0002_stride_drops_rows.arch").unwrap();
    let mut sources = Sources::new();
    let allow = vec![archc::diagnostics::Code::UnevenStride];
    let result = compile(&mut sources, "w.arch", &text, &Options { input: None, allow, ..Options::default() });
    assert!(result.diagnostics.is_empty());
    assert_eq!(result.models.len(), 1);
}
