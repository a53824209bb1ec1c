//! `archc diff A.arch [B.arch] [--set [A:|B:]NAME=VALUE] [--input ...] [--batch N]
//! [--weights A_WEIGHTS] [--format human|json|markdown]`: what an edit changed, module
//! by module and tensor by tensor, and what it costs per stage. One file with `A:` and
//! `B:` settings compares the file with itself (`--set A:depth=10 --set B:depth=20`).

use super::{compile_file, parse_input, print_diagnostics};
use crate::diagnostics::Code;
use crate::diff::{self, Change, Cost, Diff, Side};
use crate::elaborate::Options;
use crate::error::{ArgumentError, Error, Purpose};
use crate::format::{aligned, bytes, markdown, thousands};
use crate::ir::{Model, Shape};
use std::fmt::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The network before (A) and after (B); one file compares it with itself under
    /// different `--set A:… --set B:…` values.
    #[arg(required = true, num_args = 1..=2, value_name = "A.arch [B.arch]")]
    files: Vec<String>,
    /// A network parameter for both sides (NAME=VALUE) or one (A:NAME=VALUE,
    /// B:NAME=VALUE). Repeatable.
    #[arg(long = "set", value_name = "[A:|B:]NAME=VALUE", value_parser = parse_sided)]
    set: Vec<(Option<char>, String, String)>,
    /// Override both sides' declared input: CxHxW, NxD or D.
    #[arg(long, value_parser = parse_input)]
    input: Option<Shape>,
    /// Silence a lint for this run (code or name). Repeatable.
    #[arg(long, value_parser = super::parse_lint)]
    allow: Vec<Code>,
    /// Batch size: multiplies MACs and activations.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// A's trained weights (safetensors or a PyTorch checkpoint): what they give B, as
    /// `archc train --init` would load them.
    #[arg(long, value_name = "A_WEIGHTS")]
    weights: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "human")]
    format: DiffFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum DiffFormat {
    Human,
    Json,
    Markdown,
}

/// `A:depth=10` → (Some('A'), "depth", "10"); `depth=10` → (None, ...).
fn parse_sided(text: &str) -> Result<(Option<char>, String, String), String> {
    let (side, rest) = match text.split_once(':') {
        Some((side @ ("A" | "B" | "a" | "b"), rest)) if !side.is_empty() => {
            (side.chars().next().map(|c| c.to_ascii_uppercase()), rest)
        }
        _ => (None, text),
    };
    let (name, value) = super::parse_setting(rest)?;
    Ok((side, name, value))
}

pub fn run(args: DiffArgs) -> Result<ExitCode, Error> {
    let sided = args.set.iter().any(|(side, _, _)| side.is_some());
    // clap gives one file or two.
    let (file_a, file_b) = match args.files.as_slice() {
        [a, b, ..] => (a.clone(), b.clone()),
        [one] if sided => (one.clone(), one.clone()),
        _ => return Err(ArgumentError::DiffNeedsTwo { file: args.files.concat() }.into()),
    };
    let settings = |wanted: char| -> Vec<(String, String)> {
        args.set
            .iter()
            .filter(|(side, _, _)| side.is_none_or(|s| s == wanted))
            .map(|(_, name, value)| (name.clone(), value.clone()))
            .collect()
    };
    let build = |path: &str, set: Vec<(String, String)>| -> Result<(Model, Side), Error> {
        let options = Options { input: args.input, allow: args.allow.clone(), set: set.clone(), nudge: None };
        let compiled = compile_file(path, &options)?;
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
        let failed = compiled.result.has_errors();
        match compiled.result.models.into_iter().next() {
            Some(model) if !failed => {
                let side =
                    Side { file: path.to_string(), model: model.name.clone(), input: model.input, settings: set };
                Ok((model, side))
            }
            _ => Err(Error::HasErrors { path: path.to_string(), purpose: Purpose::Compare }),
        }
    };
    let (model_a, side_a) = build(&file_a, settings('A'))?;
    let (model_b, side_b) = build(&file_b, settings('B'))?;
    let mut diff = diff::compare((&model_a, side_a), (&model_b, side_b), args.batch);
    if let Some(path) = &args.weights {
        diff.transfer = Some(diff::transfer(&model_a, &model_b, path)?);
    }
    let text = match args.format {
        DiffFormat::Json => serde_json::to_string_pretty(&diff).unwrap_or_default() + "\n",
        DiffFormat::Human => render(&diff, false),
        DiffFormat::Markdown => render(&diff, true),
    };
    super::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn side_line(label: &str, side: &Side) -> String {
    let mut line = format!("{label}  {} ({}), input {}", side.file, side.model, side.input);
    if !side.settings.is_empty() {
        let set: Vec<String> = side.settings.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let _ = write!(line, " with {}", set.join(", "));
    }
    line
}

/// `+1,234`, `-56`, `0`: the magnitude as `show` writes it, with its sign.
fn with_sign(n: i128, show: fn(u128) -> String) -> String {
    let magnitude = show(n.unsigned_abs());
    match n.signum() {
        1 => format!("+{magnitude}"),
        -1 => format!("-{magnitude}"),
        _ => magnitude,
    }
}

fn signed(n: i128) -> String {
    with_sign(n, thousands)
}

/// `+9.85%`, or empty when A has none of it.
fn percent(a: u128, b: u128) -> String {
    if a == 0 {
        return String::new();
    }
    let change = (b as f64 - a as f64) * 100.0 / a as f64;
    format!("{change:+.2}%")
}

fn diffed(a: u128, b: u128) -> i128 {
    i128::try_from(b).unwrap_or(i128::MAX).saturating_sub(i128::try_from(a).unwrap_or(i128::MAX))
}

const SHOWN_TENSORS: usize = 12;

/// The report for people (`markdown`: the same in Markdown, tables as tables).
fn render(diff: &Diff, markdown_out: bool) -> String {
    let mut out = String::new();
    let (fence_open, fence_close) = if markdown_out { ("```text\n", "```\n") } else { ("", "") };
    let heading = |out: &mut String, text: &str| {
        if markdown_out {
            let _ = writeln!(out, "\n### {text}\n");
        } else {
            let _ = writeln!(out, "\n{text}");
        }
    };
    out.push_str(fence_open);
    let _ = writeln!(out, "{}", side_line("A", &diff.a));
    let _ = writeln!(out, "{}", side_line("B", &diff.b));
    let _ = writeln!(out, "batch {}", diff.batch);
    out.push_str(fence_close);
    if diff.identical() {
        let _ = writeln!(out, "\nno difference: the same modules, tensors and wiring");
    }

    let (added, removed, changed, renumbered) = (
        diff.count(Change::Added),
        diff.count(Change::Removed),
        diff.count(Change::Changed),
        diff.count(Change::Renumbered),
    );
    let moved = match diff.count(Change::Moved) {
        0 => String::new(),
        n => format!(", {n} moved"),
    };
    heading(
        &mut out,
        &format!(
            "modules: {added} added, {removed} removed, {changed} changed, {renumbered} renumbered{moved} (by name)"
        ),
    );
    if !diff.modules.is_empty() {
        let rows: Vec<Vec<String>> = diff.modules.iter().map(module_row).collect();
        let header = ["", "module", "op", "what", "params", "MACs"];
        out.push_str(&table(&header, &rows, 4, markdown_out));
    }

    let t = &diff.tensors;
    // Tensors inside an added or removed module are that module's; list the others.
    let covered = |name: &str, change: Change| {
        diff.modules.iter().any(|m| m.change == change && crate::lower::transfer::covers(&m.path, name))
    };
    let loose_added: Vec<_> = t.added.iter().filter(|x| !covered(&x.name, Change::Added)).collect();
    let loose_removed: Vec<_> = t.removed.iter().filter(|x| !covered(&x.name, Change::Removed)).collect();
    let inside = |all: usize, loose: usize| match (all, loose) {
        (0, _) => String::new(),
        (_, 0) => " (all in the modules above)".to_string(),
        _ if loose < all => format!(" ({} in the modules above)", all - loose),
        _ => String::new(),
    };
    heading(
        &mut out,
        &format!(
            "tensors: {} same, {} added{}, {} removed{}, {} reshaped (by PyTorch name)",
            t.same,
            t.added.len(),
            inside(t.added.len(), loose_added.len()),
            t.removed.len(),
            inside(t.removed.len(), loose_removed.len()),
            t.reshaped.len()
        ),
    );
    let shape = |s: &[u64]| format!("[{}]", s.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.extend(loose_added.iter().map(|x| vec!["+".into(), x.name.clone(), String::new(), shape(&x.shape)]));
    rows.extend(loose_removed.iter().map(|x| vec!["-".into(), x.name.clone(), shape(&x.shape), String::new()]));
    rows.extend(t.reshaped.iter().map(|x| vec!["~".into(), x.name.clone(), shape(&x.found), shape(&x.expected)]));
    if !rows.is_empty() {
        let more = rows.len().saturating_sub(SHOWN_TENSORS);
        rows.truncate(SHOWN_TENSORS);
        out.push_str(&table(&["", "tensor", "A", "B"], &rows, 4, markdown_out));
        if more > 0 {
            let _ = writeln!(out, "and {more} more (--format json lists them)");
        }
    }
    let rewired = diff.modules.iter().filter(|m| m.what.iter().any(|w| w.starts_with("wiring"))).count();
    if diff.same_tensors() && rewired > 0 {
        let _ = writeln!(
            out,
            "\nsame tensors, different wiring: every weight has the same name and shape on both sides; {rewired} module{} wired differently",
            if rewired == 1 { " is" } else { "s are" }
        );
    }

    heading(
        &mut out,
        "cost by stage (core MACs; activations: float32 outputs of one forward pass, the total with the input)",
    );
    let mut rows: Vec<Vec<String>> = diff.stages.iter().map(stage_row).collect();
    rows.push(stage_row(&diff.total));
    let header =
        ["stage", "params A", "params B", "Δ params", "MACs A", "MACs B", "Δ MACs", "act. A", "act. B", "Δ act."];
    out.push_str(&table(&header, &rows, 1, markdown_out));
    if let (Some(a), Some(b)) = (diff.total.a, diff.total.b) {
        let _ = writeln!(
            out,
            "\ntotal: params {} ({}), MACs {} ({}), activations {} ({})",
            signed(diffed(a.params, b.params)),
            percent(a.params, b.params),
            signed(diffed(a.macs, b.macs)),
            percent(a.macs, b.macs),
            signed_bytes(diffed(a.activation_bytes, b.activation_bytes)),
            percent(a.activation_bytes, b.activation_bytes)
        );
    }

    if let Some(weights) = &diff.transfer {
        heading(
            &mut out,
            &format!("A's weights {} in B (as `archc train --init` loads them)", weights.weights.display()),
        );
        out.push_str(fence_open);
        out.push_str(&super::train::transfer_lines(&weights.transfer, "--format json"));
        out.push_str(fence_close);
        if weights.misfit_a > 0 {
            let _ = writeln!(
                out,
                "note: the file and A differ in {} tensors (missing, reshaped or extra): these may not be A's weights",
                weights.misfit_a
            );
        }
    }
    out
}

fn table(header: &[&str], rows: &[Vec<String>], left: usize, markdown_out: bool) -> String {
    if markdown_out {
        markdown(header, rows, left)
    } else {
        let text = aligned(header, rows, left);
        text.lines().map(|l| format!("  {l}\n")).collect()
    }
}

fn module_row(m: &diff::ModuleChange) -> Vec<String> {
    let (mark, what) = match m.change {
        Change::Added | Change::Removed => {
            let place = m.after.as_ref().map(|a| format!(", after {a}")).unwrap_or_default();
            let sign = if m.change == Change::Added { "+" } else { "-" };
            let (layers, tensors) = (m.layers.unwrap_or(0), m.tensors.unwrap_or(0));
            let inside = format!("{layers} layer{}, {tensors} tensor{}", plural(layers), plural(tensors));
            (sign, format!("{} ({inside}{place})", if m.change == Change::Added { "added" } else { "removed" }))
        }
        Change::Changed => ("~", m.what.join("; ")),
        Change::Renumbered => ("=", format!("was {}: its weights change names", m.was.clone().unwrap_or_default())),
        Change::Moved => {
            let mut what = format!("moved: now after {}", m.after.clone().unwrap_or_default());
            for change in &m.what {
                what.push_str("; ");
                what.push_str(change);
            }
            (">", what)
        }
    };
    vec![mark.into(), m.path.clone(), m.op.clone(), what, signed(m.params), signed(m.macs)]
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn signed_bytes(n: i128) -> String {
    with_sign(n, bytes)
}

fn stage_row(stage: &diff::StageCost) -> Vec<String> {
    let value =
        |c: Option<Cost>, f: fn(&Cost) -> u128, show: fn(u128) -> String| c.map(|c| show(f(&c))).unwrap_or("—".into());
    let change = |f: fn(&Cost) -> u128, show: fn(i128) -> String| {
        let a = stage.a.map(|c| f(&c)).unwrap_or(0);
        let b = stage.b.map(|c| f(&c)).unwrap_or(0);
        if a == b { "·".to_string() } else { show(diffed(a, b)) }
    };
    // A numbered stage (an unlabelled `relu`) says what it is, and so does the
    // network's own residual add or merge (no name).
    let name = if stage.name.is_empty() {
        format!("(network) {}", stage.op)
    } else if stage.name.chars().all(|c| c.is_ascii_digit()) {
        format!("{} ({})", stage.name, stage.op)
    } else {
        stage.name.clone()
    };
    vec![
        name,
        value(stage.a, |c| c.params, thousands),
        value(stage.b, |c| c.params, thousands),
        change(|c| c.params, signed),
        value(stage.a, |c| c.macs, crate::format::human),
        value(stage.b, |c| c.macs, crate::format::human),
        change(|c| c.macs, |n| with_sign(n, crate::format::human)),
        value(stage.a, |c| c.activation_bytes, bytes),
        value(stage.b, |c| c.activation_bytes, bytes),
        change(|c| c.activation_bytes, signed_bytes),
    ]
}
