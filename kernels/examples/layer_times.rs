//! Each kernel of a ResNet-20 training step, timed alone at its real sizes: the 3×3
//! convolutions of each stage, the two that halve the size and the stem (forward, input gradient,
//! weight gradient, both gradients in one call) and the batch
//! norm passes (statistics, normalise + ReLU, backward through the ReLU's mask), as
//! milliseconds and GFLOP/s, on a pool of THREADS threads. For finding where a step's
//! time goes and for before/after comparisons of one kernel; the whole step is what
//! `archc bench` measures.
//!
//!     cargo run -p archc-kernels --example layer_times -- [BATCH [THREADS [REPEATS [ONLY]]]]
//!
//! ONLY times just the kernels whose line contains it (`"batch norm"`, `"16×32×32"`).
//! With `NETWORK=resnet18` in the environment, the layers are CIFAR ResNet-18's instead:
//! the stem, each stage's 3×3 layer, the three that halve and their 1×1 projections.

use archc_kernels::Epilogue;
use archc_kernels::batch_norm::{self, Backward, Planes};
use archc_kernels::conv::{self, Conv2d, Wanted};
use std::time::Instant;

/// The fastest of `repeats` timed calls of `f` after one untimed call, in milliseconds:
/// on a shared machine whose speed drifts within seconds, the least disturbed call.
/// Before each, 64 MB are written, so that the call finds its inputs in memory rather
/// than in cache, as in a training step, where each layer's tensors were last touched
/// many layers before.
fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    if repeats == 0 {
        return f64::NAN;
    }
    let mut flush = vec![0u8; 64 << 20];
    f();
    let ms: Vec<f64> = (0..repeats)
        .map(|i| {
            flush.iter_mut().step_by(64).for_each(|b| *b = i as u8);
            std::hint::black_box(&flush);
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.into_iter().fold(f64::INFINITY, f64::min)
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7 + seed * 13) % 23) as f32 * 0.1 - 1.1).collect()
}

fn report(what: &str, ms: f64, flops: f64) {
    if ms.is_nan() {
        return;
    }
    if flops > 0.0 {
        println!("{what:<44} {ms:8.2} ms {:7.1} GFLOP/s", flops / ms / 1e6);
    } else {
        println!("{what:<44} {ms:8.2} ms");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("a positive integer"));
    let (batch, threads, all_repeats) = (number(0, 128), number(1, 2), number(2, 5));
    let only = args.get(3);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
    pool.install(|| {
        // (in, out, input size, stride, kernel): the stages' layers, those that halve, the stem.
        let resnet20 =
            [(16, 16, 32, 1, 3), (32, 32, 16, 1, 3), (64, 64, 8, 1, 3), (16, 32, 32, 2, 3), (32, 64, 16, 2, 3)];
        let resnet18 = [
            (64, 64, 32, 1, 3),
            (128, 128, 16, 1, 3),
            (256, 256, 8, 1, 3),
            (512, 512, 4, 1, 3),
            (64, 128, 32, 2, 3),
            (128, 256, 16, 2, 3),
            (256, 512, 8, 2, 3),
            (64, 128, 32, 2, 1),
            (128, 256, 16, 2, 1),
            (256, 512, 8, 2, 1),
        ];
        let layers: Vec<(usize, usize, usize, usize, usize)> = match std::env::var("NETWORK").as_deref() {
            Ok("resnet18") => resnet18.into_iter().chain([(3, 64, 32, 1, 3)]).collect(),
            _ => resnet20.into_iter().chain([(3, 16, 32, 1, 3)]).collect(),
        };
        for (in_channels, channels, size, stride, kernel) in layers {
            let conv = Conv2d {
                batch,
                in_channels,
                height: size,
                width: size,
                out_channels: channels,
                kernel: [kernel, kernel],
                stride: [stride, stride],
                padding: [kernel / 2, kernel / 2],
                dilation: [1, 1],
                groups: 1,
            };
            let (x, w, dy) = (values(conv.input_len(), 1), values(conv.weight_len(), 2), values(conv.output_len(), 3));
            let flops = 2.0 * (conv.output_len() * in_channels * kernel * kernel) as f64;
            let name = |what: &str| match (stride, kernel) {
                (1, 3) if in_channels == channels => format!("{channels}×{size}×{size} {what}"),
                (_, 3) => format!("{in_channels}→{channels}×{size}×{size} /{stride} {what}").replace(" /1", ""),
                _ => format!("{in_channels}→{channels}×{size}×{size} /{stride} {kernel}×{kernel} {what}"),
            };
            // A kernel left out is timed zero times (and not reported).
            let repeats =
                |what: &str| if only.is_none_or(|o| name(what).contains(o.as_str())) { all_repeats } else { 0 };
            report(
                &name("conv forward"),
                time(repeats("conv forward"), || drop(conv::forward(&conv, &x, &w, None))),
                flops,
            );
            // Inference: a Winograd layer reads its weight's transform, made beforehand.
            if let Some(kept) = conv::winograd_weight(&conv, &w).filter(|_| conv::is_winograd(&conv)) {
                let then = Epilogue::default();
                report(
                    &name("conv forward, transform kept"),
                    time(repeats("conv forward, transform kept"), || {
                        drop(conv::forward_transformed(&conv, &x, &w, Some(&kept), None, then))
                    }),
                    flops,
                );
            }
            let input = Wanted { input: true, weight: false, bias: false };
            report(
                &name("conv input gradient"),
                time(repeats("conv input gradient"), || drop(conv::backward(&conv, &x, &w, &dy, input))),
                flops,
            );
            let weight = Wanted { input: false, weight: true, bias: false };
            report(
                &name("conv weight gradient"),
                time(repeats("conv weight gradient"), || drop(conv::backward(&conv, &x, &w, &dy, weight))),
                flops,
            );
            let both = Wanted { input: true, weight: true, bias: false };
            report(
                &name("conv both gradients"),
                time(repeats("conv both gradients"), || drop(conv::backward(&conv, &x, &w, &dy, both))),
                2.0 * flops,
            );
            if stride > 1 || in_channels != channels || kernel != 3 {
                continue;
            }
            let at = Planes { batch, channels, spatial: size * size };
            let (gamma, beta) = (vec![1.5f32; channels], vec![0.25f32; channels]);
            let stats = batch_norm::statistics(&x, at, 1e-5);
            report(
                &name("batch norm statistics"),
                time(repeats("batch norm statistics"), || drop(batch_norm::statistics(&x, at, 1e-5))),
                0.0,
            );
            let relu = Epilogue { residual: None, relu: true };
            let y = batch_norm::normalize(&x, at, &stats, &gamma, &beta, relu);
            report(
                &name("batch norm normalise + ReLU"),
                time(repeats("batch norm normalise + ReLU"), || {
                    drop(batch_norm::normalize(&x, at, &stats, &gamma, &beta, relu))
                }),
                0.0,
            );
            for (what, before_relu) in [("backward (ReLU)", false), ("backward (ReLU, residual)", true)] {
                let wanted = Backward { input: true, relu_output: Some(&y), before_relu };
                report(
                    &name(&format!("batch norm {what}")),
                    time(repeats(&format!("batch norm {what}")), || {
                        drop(batch_norm::backward(&x, &dy, at, &stats, &gamma, wanted))
                    }),
                    0.0,
                );
            }
        }
    });
}
