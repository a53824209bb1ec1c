//! What rounding did to a scaled network (`archc check --rounding`): every value the
//! network's expressions rounded to a whole number (a `make_divisible` channel count, a
//! `round`ed block count, an integer division that dropped a remainder), and the
//! params and MACs as built against the unrounded ideal.
//!
//! The ideal is measured, not modelled: each rounded value is rebuilt one step up and
//! one step down (`Options::nudge`), which gives what one more channel or block there
//! costs; the ideal adds, for every rounded value, (exact - rounded) times that. This is
//! exact for block counts (cost is linear in them) and first-order for channel counts
//! (a convolution whose input and output both move is off by the square of the
//! fraction, a fraction of a channel's cost). Integer divisions are listed but not undone
//! (`kernel / 2` is a padding, `cfg[i / 2]` an index, not a scaled width).

use super::{Convention, GroupBy, report};
use crate::elaborate::{Options, compile_file};
use crate::error::{Error, Purpose};
use crate::format::{aligned, thousands};
use crate::ir::{FLOOR_DIVISION, Rounding};
use crate::source::Span;
use serde::Serialize;

/// One place that rounded, with every instance that gave the same exact value merged
/// (a block's `make_divisible` in each copy of a stage).
#[derive(Clone, Debug, Serialize)]
pub struct RoundedValue {
    /// The file, when it is not the one checked (a block of the standard library).
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    /// The expression as written.
    pub expression: String,
    pub rule: String,
    pub exact: f64,
    pub rounded: i64,
    /// How many times the network computed it.
    pub uses: usize,
    /// What one more step of this value costs (params, MACs), when it was measured
    /// (only values that rounding changed are).
    pub params_per_step: Option<f64>,
    pub macs_per_step: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundingReport {
    pub network: String,
    pub values: Vec<RoundedValue>,
    pub params: u128,
    pub macs: u128,
    /// `None` when some rounded value could not be moved a step (the network no longer
    /// builds with it: heads that stop dividing, say); `unmeasured` says which.
    pub ideal_params: Option<f64>,
    pub ideal_macs: Option<f64>,
    pub unmeasured: Vec<String>,
}

/// Compiles `path` and reports its first network's roundings (see the module doc).
pub fn rounding_report(path: &str, options: &Options) -> Result<RoundingReport, Error> {
    let compiled = compile_file(path, options)?;
    let has_errors = || Error::HasErrors { path: path.to_string(), purpose: Purpose::Run };
    let model = compiled.result.models.first().ok_or_else(has_errors)?;
    let steps = compiled.result.steps.iter().find(|s| s.network == model.name).ok_or_else(has_errors)?;
    let base = report(model, Convention::Core, 1, GroupBy::Layer);
    let mut values: Vec<(Rounding, usize)> = Vec::new();
    for rounding in &steps.roundings {
        match values.iter_mut().find(|(r, _)| r.span == rounding.span && r.exact == rounding.exact) {
            Some((_, uses)) => *uses += 1,
            None => values.push((rounding.clone(), 1)),
        }
    }
    let cost_with = |nudge: (Span, f64, i64)| -> Option<(f64, f64)> {
        let options = Options { nudge: Some(nudge), ..options.clone() };
        let compiled = compile_file(path, &options).ok()?;
        let model = compiled.result.models.into_iter().find(|m| m.name == model.name)?;
        let cost = report(&model, Convention::Core, 1, GroupBy::Layer);
        Some((cost.params as f64, cost.macs as f64))
    };
    let (base_params, base_macs) = (base.params as f64, base.macs as f64);
    let mut out = Vec::new();
    let mut unmeasured = Vec::new();
    let (mut ideal_params, mut ideal_macs) = (base_params, base_macs);
    for (rounding, uses) in values {
        let text = compiled.sources.text(rounding.span.file);
        let expression = text[rounding.span.start..rounding.span.end].to_string();
        let (line, column) = compiled.sources.line_column(rounding.span.file, rounding.span.start);
        let name = compiled.sources.name(rounding.span.file);
        let file = (name != path).then(|| name.replace("<std>/", "std/"));
        let mut per_step = None;
        // An integer division is listed but not undone: it halves kernels into paddings
        // and picks list items as often as it computes widths.
        if rounding.exact != rounding.rounded as f64 && rounding.rule != FLOOR_DIVISION {
            // A central difference where the value can go down a step, else a forward one.
            let up = cost_with((rounding.span, rounding.exact, 1));
            let down = if rounding.rounded > 1 { cost_with((rounding.span, rounding.exact, -1)) } else { None };
            per_step = match (up, down) {
                (Some(up), Some(down)) => Some(((up.0 - down.0) / 2.0, (up.1 - down.1) / 2.0)),
                (Some(up), None) => Some((up.0 - base_params, up.1 - base_macs)),
                (None, Some(down)) => Some((base_params - down.0, base_macs - down.1)),
                (None, None) => None,
            };
            match per_step {
                Some((params, macs)) => {
                    let shift = rounding.exact - rounding.rounded as f64;
                    ideal_params += shift * params;
                    ideal_macs += shift * macs;
                }
                None => unmeasured.push(format!("line {line}: {expression}")),
            }
        }
        out.push(RoundedValue {
            file,
            line,
            column,
            expression,
            rule: rounding.rule,
            exact: rounding.exact,
            rounded: rounding.rounded,
            uses,
            params_per_step: per_step.map(|(p, _)| p),
            macs_per_step: per_step.map(|(_, m)| m),
        });
    }
    let measured = unmeasured.is_empty();
    Ok(RoundingReport {
        network: model.name.clone(),
        values: out,
        params: base.params,
        macs: base.macs,
        ideal_params: measured.then_some(ideal_params),
        ideal_macs: measured.then_some(ideal_macs),
        unmeasured,
    })
}

/// The report as a table and two totals lines.
pub fn render_rounding(report: &RoundingReport) -> String {
    if report.values.is_empty() {
        return format!("{}: nothing was rounded\n", report.network);
    }
    let rows: Vec<Vec<String>> = report
        .values
        .iter()
        .map(|v| {
            let change = if v.exact == v.rounded as f64 {
                "exact".to_string()
            } else {
                format!("{:+.1}%", (v.rounded as f64 / v.exact - 1.0) * 100.0)
            };
            vec![
                match &v.file {
                    Some(file) => format!("{file}:{}:{}", v.line, v.column),
                    None => format!("{}:{}", v.line, v.column),
                },
                v.expression.clone(),
                v.rule.clone(),
                short(v.exact),
                v.rounded.to_string(),
                change,
                v.uses.to_string(),
            ]
        })
        .collect();
    let mut out =
        format!("{}: {} rounded value{}\n\n", report.network, rows.len(), if rows.len() == 1 { "" } else { "s" });
    out.push_str(&aligned(&["line", "expression", "rule", "exact", "rounded", "change", "uses"], &rows, 3));
    out.push('\n');
    for (what, built, ideal) in
        [("params", report.params, report.ideal_params), ("MACs", report.macs, report.ideal_macs)]
    {
        match ideal {
            Some(ideal) => out.push_str(&format!(
                "{what:<6} {} as built, {} unrounded ({:+.2}% from rounding)\n",
                thousands(built),
                thousands(ideal.round().max(0.0) as u128),
                (built as f64 / ideal - 1.0) * 100.0
            )),
            None => out.push_str(&format!("{what:<6} {} as built\n", thousands(built))),
        }
    }
    if report.values.iter().any(|v| v.rule == FLOOR_DIVISION && v.exact != v.rounded as f64) {
        out.push_str(
            "integer divisions are listed, not undone: the ideal undoes round, floor, ceil and make_divisible\n",
        );
    }
    if !report.unmeasured.is_empty() {
        out.push_str(&format!(
            "no unrounded ideal: the network does not build with these values a step away: {}\n",
            report.unmeasured.join("; ")
        ));
    }
    out
}

/// `19.2`, `0.333333`, `64`: up to six decimals, no trailing zeros.
fn short(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
