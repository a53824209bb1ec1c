//! Numbers and tables as people read them: `1,234,567`, `4.09 G`, `25.6 MB`, columns
//! aligned for a terminal, Markdown tables for a report.

use std::fmt::Write;

/// `1,234,567`
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `4.09 G`, `25.6 M`: three significant digits with an SI prefix.
pub fn human(n: u128) -> String {
    const UNITS: &[(f64, &str)] = &[(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
    let value = n as f64;
    for (scale, unit) in UNITS {
        if value >= *scale {
            let scaled = value / scale;
            let text = if scaled >= 100.0 {
                format!("{scaled:.0}")
            } else if scaled >= 10.0 {
                format!("{scaled:.1}")
            } else {
                format!("{scaled:.2}")
            };
            return format!("{text} {unit}");
        }
    }
    n.to_string()
}

/// Columns padded to their widest cell: the first `left` columns align left, the rest
/// (numbers) right.
pub fn aligned<R: AsRef<[String]>>(header: &[&str], rows: &[R], left: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut text = String::new();
        for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
            if i < left {
                let _ = write!(text, "{cell:<w$}  ");
            } else {
                let _ = write!(text, "{cell:>w$}  ");
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.as_ref().iter().map(String::as_str).collect()));
    }
    out
}

/// A Markdown table: the first `left` columns align left, the rest right.
pub fn markdown<R: AsRef<[String]>>(header: &[&str], rows: &[R], left: usize) -> String {
    let rule: Vec<&str> = (0..header.len()).map(|i| if i < left { "---" } else { "--:" }).collect();
    let mut out = format!("| {} |\n|{}|\n", header.join(" | "), rule.join("|"));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.as_ref().join(" | ")));
    }
    out
}

/// `25.6 MB`
pub fn bytes(n: u128) -> String {
    format!("{}B", human(n))
}
