//! The machine's single-precision GEMM rate, to hold archc's achieved GFLOP/s against:
//! C = A·B for square f32 matrices through the same `gemm` crate (and the same
//! instruction set, chosen at run time) that archc's convolutions use, on a pool of
//! THREADS threads, as JSON on stdout.
//!
//!     cargo run -p archc-kernels --example sgemm -- [N [THREADS [REPEATS]]]

use gemm::Parallelism;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a positive integer")).collect();
    let n = args.first().copied().unwrap_or(2048);
    let threads = args.get(1).copied().unwrap_or(2);
    let repeats = args.get(2).copied().unwrap_or(5);
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.25 - 0.75).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
    let mut c = vec![0f32; n * n];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
    let mut rates: Vec<f64> = pool.install(|| {
        (0..repeats + 1)
            .map(|_| {
                let start = Instant::now();
                // SAFETY: a, b and c each hold n×n values, row-major (row stride n).
                unsafe {
                    gemm::gemm(
                        n,
                        n,
                        n,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        n as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::Rayon(threads),
                    );
                }
                2.0 * (n as f64).powi(3) / start.elapsed().as_secs_f64() / 1e9
            })
            .collect()
    });
    rates.remove(0); // the warm-up
    rates.sort_by(f64::total_cmp);
    let median = rates[(rates.len() - 1) / 2];
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
    println!(
        "{{\"tool\": \"sgemm\", \"n\": {n}, \"threads\": {threads}, \"gflops_median\": {median:.1}, \"gflops\": [{}]}}",
        list.join(", ")
    );
}
