//! What archc refuses before it builds anything, and the words it uses: a model too big
//! for the machine (refused by its static memory estimate, before any allocation),
//! degenerate settings (exit 2), and messages that say what is true (a shape mismatch
//! as a shape mismatch, a damaged safetensors file by the safetensors reader, an
//! unnormalised prediction, a stopped run with no checkpoint).

use archc::cost::admission::{Available, Purpose, admit, needed};
use std::path::Path;
use std::process::Command;
use support::Scratch;
use support::runs::{archc, idx, ok, tiny_model, write_mnist};

mod support;

fn scratch(name: &str) -> Scratch {
    Scratch::new("refusals", name)
}

fn compile(text: &str) -> archc::ir::Model {
    let mut sources = archc::source::Sources::new();
    let result = archc::elaborate::compile(&mut sources, "m.arch", text, &Default::default());
    assert!(!result.has_errors(), "{text}");
    result.models.into_iter().next().unwrap()
}

/// Writes the seeded initial weights of a zoo model, in PyTorch's names.
fn write_initial_weights(model: &str, path: &Path) {
    let compiled = archc::elaborate::compile_file(model, &Default::default()).unwrap();
    let network = archc::lower::Network::<burn::backend::Flex>::new(&compiled.result.models[0], &Default::default());
    network.state_dict().write_safetensors(path, &[]).unwrap();
}

/// 10^12 parameters (4 TB of weights): `check` accepts it, nothing can build it.
const HUGE: &str = "network huge { input vector(1000000)\n fc: linear(1000000, bias: false) }";

/// Runs archc and returns its output with the child's peak resident set in bytes
/// (`wait4`'s rusage: this child's alone, not the test process's other children).
// The child is waited for with wait4 (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn archc_with_peak_rss(args: &[&str]) -> (std::process::Output, u64) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes into both out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    // Linux reports ru_maxrss in KiB.
    (std::process::Output { status, stdout, stderr }, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_model_too_big_for_the_machine_is_refused_before_anything_is_allocated() {
    let dir = scratch("huge");
    write_mnist(&dir, false);
    let model = dir.join("huge.arch");
    std::fs::write(&model, HUGE).unwrap();
    let model = model.to_str().unwrap();
    let run = dir.join("run");
    let data_dir = dir.to_str().unwrap();
    let commands: [(&str, Vec<&str>); 3] = [
        ("train", vec!["train", model, "--data", "mnist", "--data-dir", data_dir, "--out", run.to_str().unwrap()]),
        ("bench", vec!["bench", model, "--batch", "1", "--iters", "1", "--warmup", "0"]),
        ("analyze", vec!["analyze", "gradients", model, "--batch", "2", "--out", run.to_str().unwrap()]),
    ];
    for (what, args) in commands {
        let started = std::time::Instant::now();
        let (out, peak) = archc_with_peak_rss(&args);
        let seconds = started.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains("`huge` needs about") && err.contains("TB") && err.contains("available ("),
            "{what}: {err}"
        );
        assert!(err.contains("no batch fits") && err.contains("--no-memory-check"), "{what}: {err}");
        assert!(peak < 512 << 20, "{what}: the refused process peaked at {} MiB", peak >> 20);
        assert!(seconds < 10.0, "{what}: refused after {seconds:.1} s");
        assert!(!run.exists(), "{what}: no run directory is left behind");
    }
}

/// The estimate is `archc flops`'s: for training, weights, gradients, the optimiser's
/// state and every activation; the largest batch that fits follows from it.
#[test]
fn admission_uses_the_flops_estimate_and_names_the_largest_batch() {
    let model = compile(
        "network m { input image(3, 32, 32)\n c: conv(16, kernel: 3, padding: 1)\n relu\n global_avgpool\n flatten\n fc: linear(10) }",
    );
    let report = archc::cost::report(&model, archc::cost::Convention::Core, 8, archc::cost::GroupBy::Layer);
    let sgd = Purpose::Train { state_copies: 1 };
    assert_eq!(needed(&model, sgd, 8), report.memory.train_sgd_momentum_bytes);
    let adam = Purpose::Train { state_copies: 2 };
    assert_eq!(needed(&model, adam, 8), report.memory.train_adam_bytes);
    // Room for exactly 5 images above the fixed part: batch 5 fits, 6 is refused.
    let fixed = needed(&model, sgd, 0);
    let per_image = needed(&model, sgd, 1) - fixed;
    let available = Available { bytes: (fixed + 5 * per_image) as u64, source: "a test".into() };
    assert!(admit(&model, sgd, 5, &available).is_ok());
    let refused = admit(&model, sgd, 6, &available).unwrap_err().to_string();
    assert!(refused.contains("the largest batch that fits is 5: give --batch 5 or less"), "{refused}");
    assert!(refused.contains("(a test)"), "{refused}");
    // Inference holds less than training at the same batch.
    assert!(needed(&model, Purpose::Infer, 64) < needed(&model, sgd, 64));
}

/// `--no-memory-check` lets a model past the estimate (here: one that fits anyway, so
/// the flag is seen to be accepted by every command that builds a network).
#[test]
fn no_memory_check_is_accepted_where_networks_are_built() {
    let out =
        archc(&["bench", "models/lenet5.arch", "--batch", "1", "--iters", "1", "--warmup", "0", "--no-memory-check"]);
    ok(&out);
}

/// `train` on the test images for one epoch (unless `extra` says how many).
fn train_args<'a>(dir: &'a Path, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let base = ["train", model, "--data", "mnist", "--data-dir", dir.to_str().unwrap()];
    let epochs: &[&str] = if extra.contains(&"--epochs") { &[] } else { &["--epochs", "1"] };
    [&base[..], extra, epochs].concat()
}

/// Each degenerate setting is a usage error: exit 2, one line, no run directory.
#[test]
fn degenerate_settings_are_refused_with_exit_2() {
    let dir = scratch("degenerate");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let out = run.to_str().unwrap();
    let cases: [(&[&str], &str); 12] = [
        (&["--subset", "0"], "nothing to train on: the training set of `mnist` has no images (--subset 0)"),
        (&["--batch", "0"], "--batch must be at least 1"),
        (&["--epochs", "0"], "--epochs must be at least 1"),
        (&["--val-split", "0"], "--val-split must be between 0 and 1"),
        (&["--val-split", "1"], "--val-split must be between 0 and 1"),
        (&["--lr", "nan"], "--lr must be 0 or more, not NaN"),
        (&["--lr=-0.1"], "--lr must be 0 or more, not -0.1"),
        (&["--momentum", "inf"], "--momentum must be in [0, 1), not inf"),
        (&["--weight-decay=-1"], "--weight-decay must be 0 or more"),
        (&["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (&["--clip-grad-norm", "0"], "--clip-grad-norm must be greater than 0"),
        (&["--schedule", "step", "--step-size", "0"], "--step-size must be at least 1"),
    ];
    for (extra, expected) in cases {
        let args = [train_args(&dir, &model, extra), vec!["--out", out]].concat();
        let result = archc(&args);
        let err = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(!run.exists(), "{extra:?}: a run directory was left");
    }
    // A dataset whose training file holds no images.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write_mnist(&empty, false);
    std::fs::write(empty.join("train-images-idx3-ubyte"), idx(&[0, 8, 8], &[])).unwrap();
    std::fs::write(empty.join("train-labels-idx1-ubyte"), idx(&[0], &[])).unwrap();
    let args = ["train", &model, "--data", "mnist", "--data-dir", empty.to_str().unwrap(), "--out", out];
    let result = archc(&args);
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing to train on"), "{err}");
    assert!(!run.exists());
}

/// Fewer training images than classes trains, with a warning, and says "1 epoch".
#[test]
fn a_subset_smaller_than_the_classes_is_warned_about() {
    let dir = scratch("small-subset");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let args =
        [train_args(&dir, &model, &["--subset", "5", "--batch", "2"]), vec!["--out", run.to_str().unwrap()]].concat();
    let text = ok(&archc(&args));
    assert!(text.contains("warning: the training set has 5 images for 10 classes"), "{text}");
    assert!(!text.contains("1 epochs"), "{text}");
}

/// A run that diverges in its first epoch has no checkpoint, and says so.
#[test]
fn a_run_stopped_in_its_first_epoch_claims_no_checkpoint() {
    let dir = scratch("nan-first");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let args = [train_args(&dir, &model, &["--lr", "1e30"]), vec!["--out", run.to_str().unwrap()]].concat();
    let out = archc(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No epoch was completed, so there is no checkpoint"), "{err}");
    assert!(!err.contains("last good checkpoint"), "{err}");
}

/// Weights of another architecture: tensors the model has with other shapes are
/// reported as reshaped (both shapes), never also as unexpected.
#[test]
fn weights_of_other_shapes_are_reported_as_reshaped() {
    let dir = scratch("reshaped");
    // ImageNet ResNet-18's weights, in torchvision's names.
    let weights = dir.join("resnet18.safetensors");
    write_initial_weights("models/resnet18.arch", &weights);
    let image = dir.join("x.png");
    image::RgbImage::new(32, 32).save(&image).unwrap();
    let out = archc(&[
        "predict",
        "models/se_resnet18_cifar.arch",
        "--weights",
        weights.to_str().unwrap(),
        image.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for name in ["conv1.weight", "fc.weight", "fc.bias"] {
        let line = err.lines().find(|l| l.contains(&format!("`{name}`")) || l.contains(&format!(" {name}:")));
        let line = line.unwrap_or_else(|| panic!("{name} is not reported: {err}"));
        assert!(!line.contains("unexpected"), "{name}: {line}");
    }
    assert!(err.contains("[64, 3, 7, 7]") && err.contains("[64, 3, 3, 3]"), "{err}");
    assert!(err.contains("[1000, 512]") && err.contains("[10, 512]"), "{err}");
}

/// A damaged `.safetensors` is reported by the safetensors reader, whatever its name.
#[test]
fn a_truncated_safetensors_file_is_named_as_one() {
    let dir = scratch("truncated");
    let whole = dir.join("w.safetensors");
    write_initial_weights("models/lenet5.arch", &whole);
    let bytes = std::fs::read(&whole).unwrap();
    for name in ["cut.safetensors", "cut.bin"] {
        let cut = dir.join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let error = archc::lower::weights::StateDict::read(&cut).unwrap_err().to_string();
        assert!(error.contains("is not a valid safetensors file"), "{name}: {error}");
        assert!(!error.to_lowercase().contains("pickle"), "{name}: {error}");
    }
}

/// `predict` with weights that record no normalisation says that the images go in
/// unnormalised; with --mean/--std, or weights that record them, it says nothing.
#[test]
fn predict_warns_when_nothing_normalises_the_images() {
    let dir = scratch("unnormalised");
    let weights = dir.join("w.safetensors");
    write_initial_weights("models/lenet5.arch", &weights);
    let image = dir.join("x.png");
    image::GrayImage::new(28, 28).save(&image).unwrap();
    let base = ["predict", "models/lenet5.arch", "--weights", weights.to_str().unwrap(), image.to_str().unwrap()];
    let text = ok(&archc(&base));
    assert!(text.contains("warning: ") && text.contains("records no mean/std and none was given"), "{text}");
    let text = ok(&archc(&[&base[..], &["--mean", "0.5", "--std", "0.25"]].concat()));
    assert!(!text.contains("warning"), "{text}");
}

/// `eval` reads only the test set: a directory without the training files will do.
#[test]
fn eval_needs_only_the_test_set() {
    let dir = scratch("eval-test-only");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    ok(&archc(&[train_args(&dir, &model, &["--subset", "100"]), vec!["--out", run.to_str().unwrap()]].concat()));
    let test_only = dir.join("test-only");
    std::fs::create_dir_all(&test_only).unwrap();
    for file in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(dir.join(file), test_only.join(file)).unwrap();
    }
    let weights = run.join("best.safetensors");
    let args = ["eval", &model, "--weights", weights.to_str().unwrap(), "--data", "mnist"];
    let text = ok(&archc(&[&args[..], &["--data-dir", test_only.to_str().unwrap()]].concat()));
    assert!(text.contains("50"), "evaluated the 50 test images: {text}");
}

/// `confusion.png` writes each cell's count and names the classes on both axes: here
/// a cell with 0 (white) holds dark ink at its centre, and the picture widens for
/// longer class names.
#[test]
fn the_confusion_matrix_shows_counts_and_class_names() {
    let dir = scratch("confusion");
    let matrix = vec![vec![5, 0, 1], vec![0, 7, 0], vec![2, 0, 4]];
    let short: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let long: Vec<String> = ["T-shirt/top", "Trouser", "Pullover"].iter().map(|s| s.to_string()).collect();
    let (small, wide) = (dir.join("short.png"), dir.join("long.png"));
    archc::plots::confusion(&small, &short, &matrix).unwrap();
    archc::plots::confusion(&wide, &long, &matrix).unwrap();
    let (small, wide) = (image::open(&small).unwrap().to_rgb8(), image::open(&wide).unwrap().to_rgb8());
    assert!(wide.width() > small.width() && wide.height() > small.height(), "room for the names");
    // The layout: cells of 60 px from (20 + label, 20 + 50); the first row's second
    // cell (count 0) is white with a dark "0" in its middle.
    let label = ("T-shirt/top".len() as u32 * 8 + 16).clamp(40, 220);
    let (x0, y0) = (20 + label + 60, 20 + 50);
    let dark = (x0 + 20..x0 + 40)
        .flat_map(|x| (y0 + 20..y0 + 40).map(move |y| (x, y)))
        .filter(|&(x, y)| wide.get_pixel(x, y).0.iter().all(|&c| c < 128))
        .count();
    assert!(dark > 5, "the count is written in the cell ({dark} dark pixels)");
}
