//! `archc lsp`: the language server, over stdin and stdout (editors start it).

use crate::error::Error;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct LspArgs {}

pub fn run(_args: LspArgs) -> Result<ExitCode, Error> {
    // A bug in one answer is reported to the editor (the server catches it) and the server
    // lives on: the panic is logged on stderr (the editor's server log), not fatal.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
            eprintln!("archc lsp: {}{place}", crate::backend::failure_message(info.payload()));
        }));
    }
    match crate::lsp::run_stdio() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}
