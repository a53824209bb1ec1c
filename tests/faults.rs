//! Runs that meet faults keep their promises: an interrupted run resumes to the
//! uninterrupted one's weights and trains only what was left; a diverging run stops and
//! leaves the last good checkpoint; a write that fails half-way (a file-size limit, as a
//! full disk would) leaves the previous file whole and nothing temporary behind.

use std::path::Path;
use std::process::{Command, Output};
use support::Scratch;
use support::runs::{archc, metrics_without_timing, ok, tiny_model, write_mnist};

mod support;

fn scratch(name: &str) -> Scratch {
    Scratch::new("faults", name)
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    resumes_to_the_uninterrupted_run("resume", &[]);
}

/// AdamW's state (both moments and the step count) resumes as SGD's momentum does
/// (at the shared learning rate of 0.05, large for AdamW but stable on this tiny net).
#[test]
fn resumed_adamw_run_equals_uninterrupted_run() {
    resumes_to_the_uninterrupted_run("resume-adamw", &["--optimizer", "adamw"]);
}

fn resumes_to_the_uninterrupted_run(name: &str, optimizer: &[&str]) {
    let dir = scratch(name);
    write_mnist(&dir, true);
    let model = tiny_model(&dir);
    let data_dir = dir.display().to_string();
    let common = [
        "train",
        model.as_str(),
        "--data",
        "mnist",
        "--data-dir",
        &data_dir,
        "--epochs",
        "3",
        "--batch",
        "16",
        "--lr",
        "0.05",
        "--seed",
        "7",
        "--crop-padding",
        "1",
        "--flip",
    ];
    let common = [&common[..], optimizer].concat();
    let whole = dir.join("whole");
    ok(&archc(&[&common[..], &["--out", whole.to_str().unwrap()]].concat()));
    let parts = dir.join("parts");
    let first = ok(&archc(&[&common[..], &["--out", parts.to_str().unwrap(), "--stop-after", "1"]].concat()));
    assert_eq!(epoch_lines(&first), ["epoch 1/3"], "{first}");
    let interrupted = std::fs::read_to_string(parts.join("metrics.csv")).unwrap();
    assert_eq!(interrupted.lines().count(), 2, "interrupted after one epoch");
    let resumed = ok(&archc(&["train", "--resume", parts.to_str().unwrap()]));
    // The resumed process trains the two remaining epochs only: its log says so, and
    // the first epoch's row (its time and speed included) is the one the interrupted
    // process measured, not a new one.
    assert_eq!(epoch_lines(&resumed), ["epoch 2/3", "epoch 3/3"], "{resumed}");
    let metrics = std::fs::read_to_string(parts.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().nth(1), interrupted.lines().nth(1), "epoch 1 was not trained again");
    assert_eq!(metrics_without_timing(&whole), metrics_without_timing(&parts));
    let read = |run: &Path, file: &str| archc::lower::weights::StateDict::read(&run.join(file)).unwrap().tensors;
    for file in ["last.safetensors", "best.safetensors"] {
        assert!(read(&whole, file) == read(&parts, file), "the same {file}, bit for bit");
    }
}

/// The `epoch N/M` that start a run's per-epoch lines.
fn epoch_lines(log: &str) -> Vec<String> {
    log.lines().filter(|l| l.starts_with("epoch ")).map(|l| l.split(':').next().unwrap().to_string()).collect()
}

#[test]
fn diverging_loss_stops_with_a_message() {
    let dir = scratch("nan");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let out = archc(&[
        "train",
        &model,
        "--data",
        "mnist",
        "--data-dir",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
        "--lr",
        "1e30",
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the loss became") && err.contains("--lr"), "{err}");
}

/// A run that trains well for an epoch and then diverges stops in the second epoch,
/// leaving the first epoch's checkpoint exactly as a run of one epoch leaves it.
#[test]
fn divergence_keeps_the_last_good_checkpoint() {
    let dir = scratch("nan-later");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let data_dir = dir.display().to_string();
    // StepLR multiplies the learning rate by 1e33 after the first epoch: epoch 2's
    // first step throws the weights far out, and a later batch's loss is not finite.
    let common = [
        "train",
        &model,
        "--data",
        "mnist",
        "--data-dir",
        &data_dir,
        "--batch",
        "32",
        "--lr",
        "0.05",
        "--schedule",
        "step",
        "--step-size",
        "1",
        "--gamma",
        "1e33",
        "--seed",
        "4",
    ];
    let good = dir.join("good");
    ok(&archc(&[&common[..], &["--epochs", "1", "--out", good.to_str().unwrap()]].concat()));
    let run = dir.join("run");
    let out = archc(&[&common[..], &["--epochs", "3", "--out", run.to_str().unwrap()]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the loss became") && err.contains("in epoch 2"), "{err}");
    assert!(err.contains(&format!("last good checkpoint (epoch 1) is in `{}`", run.display())), "{err}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["completed_epochs"], 1);
    assert_eq!(metrics_without_timing(&run), metrics_without_timing(&good));
    let read = |run: &Path, file: &str| archc::lower::weights::StateDict::read(&run.join(file)).unwrap().tensors;
    for file in ["last.safetensors", "best.safetensors"] {
        assert!(read(&run, file) == read(&good, file), "{file} is epoch 1's");
    }
    // No file is left half-written, and none under a temporary name.
    for entry in std::fs::read_dir(&run).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains("tmp"), "{name} left behind");
    }
}

/// Runs archc under a file-size limit (bash's `ulimit -f`, in KiB), with SIGXFSZ
/// ignored, so that a write past the limit fails with EFBIG in the middle of a file,
/// as a full disk would make it fail.
fn archc_with_file_limit(kib: u32, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("bash runs")
}

/// Every file archc writes goes to a temporary name first: a write that fails half-way
/// (here: a file-size limit) leaves the previous file whole, no temporary file behind,
/// and one line naming the file.
#[test]
fn a_write_that_fails_midway_leaves_the_old_file() {
    let dir = scratch("atomic");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let data_dir = dir.display().to_string();
    // width 64: last.safetensors is about 5.6 KiB, larger than the 4 KiB limit below.
    let args = ["train", &model, "--data", "mnist", "--data-dir", &data_dir, "--epochs", "2", "--set", "width=64"];
    ok(&archc(&[&args[..], &["--stop-after", "1", "--out", run.to_str().unwrap()]].concat()));
    let before: Vec<(String, Vec<u8>)> = files(&run);
    let out = archc_with_file_limit(4, &["train", "--resume", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("last.safetensors") && err.contains("File too large"), "{err}");
    assert_eq!(files(&run), before, "the checkpoint files are as they were, and nothing else is there");
    let checkpoints: Vec<_> =
        std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(checkpoints, ["1"], "the failed epoch's checkpoint directory is removed");

    // A picture that fails (curves.png is over 100 KiB, every other file under 8) costs
    // the picture, not the run: a warning, the old picture whole, no temporary file.
    let out = archc_with_file_limit(64, &["train", "--resume", run.to_str().unwrap()]);
    let text = ok(&out);
    assert!(text.contains("warning: no learning-curve plot") && text.contains("curves.png"), "{text}");
    assert!(text.contains("curves.png`: File too large"), "in the system's words: {text}");
    let after = files(&run);
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "no temporary file is left");
    let curves = |files: &[(String, Vec<u8>)]| files.iter().find(|(n, _)| n == "curves.png").unwrap().1.clone();
    assert_eq!(curves(&after), curves(&before), "the previous picture is whole");
    assert_eq!(metrics_without_timing(&run).len(), 3, "the second epoch was trained and saved");

    // The same for a text file: a bench report over an older one.
    let report = dir.join("report.json");
    std::fs::write(&report, "the previous report").unwrap();
    let bench = ["bench", "models/lenet5.arch", "--batch", "1,2,3,4", "--iters", "1", "--warmup", "0"];
    let out = archc_with_file_limit(1, &[&bench[..], &["--threads", "1", "--out", report.to_str().unwrap()]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("report.json") && err.trim().lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "the previous report");
    assert!(!dir.join("report.json.tmp").exists(), "the temporary file is removed");
}

/// A directory's files by name, with their bytes; not the run's lock file, which holds
/// the pid of the last archc that used the run, nor its checkpoint directories (their
/// files are published in the run directory itself).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".lock"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// Burn's file recorder drops the error of its buffered writer's last flush, so a
/// record cut short by a full disk used to be committed as whole; archc writes records
/// itself. AdamW's optimiser record (two moments, about 12 KiB here) passes a limit of
/// 8 KiB that the weights files stay under: the run must stop, naming the file, and
/// commit nothing.
#[test]
fn a_record_cut_short_is_an_error_not_a_checkpoint() {
    let dir = scratch("record-cut");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let data_dir = dir.display().to_string();
    let args = ["train", &model, "--data", "mnist", "--data-dir", &data_dir, "--epochs", "1", "--set", "width=64"];
    let out =
        archc_with_file_limit(8, &[&args[..], &["--optimizer", "adamw", "--out", run.to_str().unwrap()]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("optimizer.mpk") && err.contains("File too large"), "{err}");
    assert!(!run.join("state.json").exists(), "nothing is committed");
    let left: Vec<_> = std::fs::read_dir(run.join("checkpoints")).unwrap().collect();
    assert!(left.is_empty(), "no checkpoint directory is left: {left:?}");
}
