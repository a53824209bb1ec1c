//! `archc`: parses arguments and maps outcomes to exit codes (0 ok, 1 errors found or
//! a file could not be used, 2 usage errors). Everything else is in `archc::cli`.

use clap::CommandFactory;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`archc check ... | head`) instead of failing to print.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A training step frees and re-allocates the same activation-sized buffers every
    // step. glibc hands allocations above its mmap threshold straight back to the
    // kernel, which then faults in and zeroes fresh pages next step (and shoots down
    // TLBs on both cores): about a tenth of a ResNet-20 step on 2 cores. Raise the
    // threshold to glibc's maximum and keep freed memory for reuse.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc tuning before any allocation-heavy work or thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
    // A failure inside archc or a backend ends with one line and exit code 101, as
    // errors do, instead of Rust's report (which RUST_BACKTRACE=1 keeps). Exiting at
    // once also ends a data-parallel run whose other devices would wait for the one
    // that failed.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
            eprintln!("error: archc stopped: {}{place}", archc::backend::failure_message(info.payload()));
            std::process::exit(101);
        }));
    }
    // The one way to make archc fail on purpose, for the test of the report above.
    if std::env::var_os("ARCHC_PANIC_FOR_TEST").is_some() {
        panic!("a panic asked for by ARCHC_PANIC_FOR_TEST");
    }
    archc::backend::main_thread_computes();
    archc::cli::run(&archc::cli::Cli::command().get_matches())
}
