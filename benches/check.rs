//! `cargo bench`: parse + check + cost of every zoo model, the work `archc check` and
//! `archc flops` do. Compare with building the model in PyTorch and running one
//! forward pass (README, "How fast is check?").

use archc::cost::{Convention, GroupBy, report};
use archc::elaborate::{Options, compile};
use archc::source::Sources;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn zoo() -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir("models").unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "arch"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

fn check_zoo(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    for (path, text) in zoo() {
        let name = path.trim_start_matches("models/").trim_end_matches(".arch").to_string();
        group.bench_function(&name, |b| {
            b.iter(|| {
                let mut sources = Sources::new();
                let result = compile(&mut sources, &path, black_box(&text), &Options::default());
                let model = result.models.first().expect("zoo models check");
                black_box(report(model, Convention::Core, 1, GroupBy::Layer).macs)
            })
        });
    }
    group.finish();
}

/// What the language server does on a keystroke in `resnet152.arch`: check the whole
/// file again and turn the diagnostics into the protocol's (README: "Editing .arch
/// files"; the goal is well under 50 ms).
fn lsp_keystroke(c: &mut Criterion) {
    let text = std::fs::read_to_string("models/resnet152.arch").unwrap();
    let uri: lsp_types::Uri = "file:///models/resnet152.arch".parse().unwrap();
    c.bench_function("lsp keystroke resnet152", |b| {
        b.iter(|| {
            let (_, params) = archc::lsp::check_document("models/resnet152.arch", black_box(&text), uri.clone());
            black_box(params.diagnostics.len())
        })
    });
}

criterion_group!(benches, check_zoo, lsp_keystroke);
criterion_main!(benches);
