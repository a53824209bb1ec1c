//! `archc flops` numbers against PyTorch's own counters: core MACs must equal
//! `FlopCounterMode` / 2 and fvcore MACs must equal fvcore 0.1.5's `FlopCountAnalysis`
//! for every zoo model (tests/fixtures/reference/reference_counts.json, produced by
//! torch_reference.py). Tables are snapshots.

use archc::cost::{Convention, Format, GroupBy, render, render_comparison, report};
use archc::elaborate::{Options, compile};
use archc::ir::{Model, Shape};
use archc::source::Sources;

fn model(name: &str, input: Option<Shape>) -> Model {
    let path = format!("models/{name}.arch");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut sources = Sources::new();
    let options = Options { input, allow: vec![archc::diagnostics::Code::TinyInputStem], ..Options::default() };
    let result = compile(&mut sources, &path, &text, &options);
    assert!(!result.has_errors(), "{name} does not compile");
    result.models.into_iter().next().unwrap()
}

#[test]
fn macs_equal_pytorch_counters() {
    let text = std::fs::read_to_string("tests/fixtures/reference/reference_counts.json").unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (key, expected) in reference.as_object().unwrap() {
        let (name, input) = match key.split_once('@') {
            Some((name, input)) => (name, Some(archc::cli::parse_input(input).unwrap())),
            None => (key.as_str(), None),
        };
        let m = model(name, input);
        let core = report(&m, Convention::Core, 1, GroupBy::Layer);
        let fvcore = report(&m, Convention::Fvcore, 1, GroupBy::Layer);
        assert_eq!(core.macs, expected["core_macs"].as_u64().unwrap() as u128, "{key}: core MACs");
        assert_eq!(fvcore.macs, expected["fvcore_macs"].as_u64().unwrap() as u128, "{key}: fvcore MACs");
        assert_eq!(core.params, expected["params"].as_u64().unwrap() as u128, "{key}: params");
    }
}

#[test]
fn grouping_keeps_totals() {
    let m = model("resnet50_cbam", None);
    for convention in [Convention::Core, Convention::Fvcore, Convention::Full] {
        let layers = report(&m, convention, 1, GroupBy::Layer);
        for by in [GroupBy::Block, GroupBy::Stage] {
            let grouped = report(&m, convention, 1, by);
            let sum: u128 = grouped.rows.iter().map(|r| r.macs).sum();
            assert_eq!(sum, layers.macs, "{by:?} rows add up to the total");
            let params: u128 = grouped.rows.iter().map(|r| r.params).sum();
            assert_eq!(params, layers.params, "{by:?} params add up");
        }
    }
    let stages = report(&m, Convention::Core, 1, GroupBy::Stage);
    let names: Vec<&str> = stages.rows.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"layer3") && !names.iter().any(|n| n.starts_with("layer3.")));
}

#[test]
fn batch_scales_macs_not_params() {
    let m = model("resnet20", None);
    let one = report(&m, Convention::Core, 1, GroupBy::Layer);
    let many = report(&m, Convention::Core, 128, GroupBy::Layer);
    assert_eq!(many.macs, one.macs * 128);
    assert_eq!(many.params, one.params);
    assert_eq!(many.activations, one.activations * 128);
}

#[test]
fn full_counts_more_than_core() {
    for name in ["resnet18", "vit_tiny_16", "lenet5", "resnet50_cbam"] {
        let m = model(name, None);
        let core = report(&m, Convention::Core, 1, GroupBy::Layer).macs;
        let full = report(&m, Convention::Full, 1, GroupBy::Layer).macs;
        assert!(full > core, "{name}: full {full} should exceed core {core}");
    }
}

#[test]
fn table_snapshots() {
    let cases = [
        ("lenet5", Convention::Core, GroupBy::Layer, Format::Table),
        ("resnet20", Convention::Fvcore, GroupBy::Block, Format::Table),
        ("resnet50_cbam", Convention::Core, GroupBy::Stage, Format::Table),
        ("vit_tiny_16", Convention::Full, GroupBy::Stage, Format::Markdown),
        ("resnet18_cifar", Convention::Core, GroupBy::Stage, Format::Csv),
        ("lenet5", Convention::Fvcore, GroupBy::Layer, Format::Json),
    ];
    for (name, convention, by, format) in cases {
        let text = render(&report(&model(name, None), convention, 1, by), format);
        let snapshot = format!("{name}.{}.{by:?}.{format:?}", convention.name()).to_lowercase();
        insta::with_settings!({ snapshot_path => "../snapshots/cost", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(snapshot, text);
        });
    }
    let reports: Vec<_> = ["resnet50", "resnet50_se", "resnet50_cbam"]
        .iter()
        .map(|n| report(&model(n, None), Convention::Core, 1, GroupBy::Stage))
        .collect();
    insta::with_settings!({ snapshot_path => "../snapshots/cost", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("compare_resnet50_se_cbam", render_comparison(&reports, Format::Table));
    });
}
