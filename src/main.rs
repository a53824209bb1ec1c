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
    let cli = archc::cli::Cli::parse();
    archc::cli::run(cli)
}
