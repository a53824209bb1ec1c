//! `archc`: parses arguments and maps outcomes to exit codes (0 ok, 1 errors found or
//! a file could not be used, 2 usage errors). Everything else is in `archc::cli`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`archc check ... | head`) instead of failing to print.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = archc::cli::Cli::parse();
    archc::cli::run(cli)
}
