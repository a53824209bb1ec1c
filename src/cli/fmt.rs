//! `archc fmt FILE|DIR... [--check]`, `archc fmt -` (stdin to stdout).

use super::print_diagnostics;
use crate::error::{Error, IoReason};
use crate::report::files;
use crate::source::Sources;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct FmtArgs {
    /// `.arch` files, or directories to format every `.arch` file under; `-` formats
    /// standard input to standard output.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Change nothing: list the files that are not formatted and exit with 1 if any is
    /// (for CI).
    #[arg(long)]
    check: bool,
}

pub fn run(args: FmtArgs) -> Result<ExitCode, Error> {
    if args.paths.iter().any(|p| p == "-") {
        return stdin(args.check);
    }
    let mut failed = false;
    let mut unformatted = 0;
    for path in expand(&args.paths)? {
        let text = files::read_text(&path)?;
        let name = path.display().to_string();
        let mut sources = Sources::new();
        let file = sources.add(name.clone(), text.clone());
        let formatted = match crate::fmt::format(file, &text) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                // Left as it is: a file that does not parse has no layout to restore.
                print_diagnostics(&sources, &diagnostics);
                eprintln!("error: `{name}` is not formatted: it has syntax errors (the file is unchanged)");
                failed = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        unformatted += 1;
        if args.check {
            println!("{name}");
        } else {
            files::write_atomic(&path, &formatted)?;
            println!("formatted {name}");
        }
    }
    Ok(ExitCode::from(if failed || (args.check && unformatted > 0) { 1 } else { 0 }))
}

/// The files named, with directories replaced by the `.arch` files under them (sorted).
fn expand(paths: &[String]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for path in paths {
        let path = Path::new(path);
        if path.is_dir() {
            let mut found = Vec::new();
            collect(path, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.to_path_buf());
        }
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let unreadable = |e: std::io::Error| Error::Read { path: dir.to_path_buf(), reason: IoReason::os(&e) };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "arch") {
            out.push(path);
        }
    }
    Ok(())
}

/// Formats standard input to standard output (what editors call); on a syntax error
/// nothing is written to standard output. With `--check`, writes nothing but `<stdin>`
/// when it is not formatted (exit 1).
fn stdin(check: bool) -> Result<ExitCode, Error> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::Read { path: PathBuf::from("<stdin>"), reason: IoReason::from(&e) })?;
    let mut sources = Sources::new();
    let file = sources.add("<stdin>", text.clone());
    match crate::fmt::format(file, &text) {
        Ok(formatted) if check => {
            if formatted == text {
                return Ok(ExitCode::SUCCESS);
            }
            println!("<stdin>");
            Ok(ExitCode::from(1))
        }
        Ok(formatted) => {
            print!("{formatted}");
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            print_diagnostics(&sources, &diagnostics);
            Ok(ExitCode::from(1))
        }
    }
}
