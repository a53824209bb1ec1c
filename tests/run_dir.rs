//! A run directory is one run's: killed at any instant, a run resumes to the
//! uninterrupted run's exact result; a second archc on a live run is refused; `--out`
//! never reuses a finished run; `--resume` refuses what it would ignore.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::Scratch;
use support::runs::{archc, metrics_without_timing, ok, tiny_model, write_mnist};

mod support;

fn scratch(name: &str) -> Scratch {
    Scratch::new("run_dir", name)
}

/// archc with extra environment variables.
fn archc_env(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_archc"));
    command.args(args).env("RAYON_NUM_THREADS", "2");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("archc runs")
}

/// archc started in the background, its output discarded.
fn spawn_quiet(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A short run: two epochs of the tiny network, with a checkpoint each.
struct ShortRun {
    dir: Scratch,
    model: String,
}

impl ShortRun {
    fn new(name: &str) -> ShortRun {
        let dir = scratch(name);
        write_mnist(&dir, false);
        let model = tiny_model(&dir);
        ShortRun { dir, model }
    }

    fn args<'a>(&'a self, out: &'a Path, epochs: &'a str) -> Vec<&'a str> {
        self.args_seed(out, epochs, "3")
    }

    fn args_seed<'a>(&'a self, out: &'a Path, epochs: &'a str, seed: &'a str) -> Vec<&'a str> {
        let data_dir = self.dir.to_str().unwrap();
        let common = ["train", &self.model, "--data", "mnist", "--data-dir", data_dir, "--batch", "64"];
        let rest = ["--lr", "0.05", "--seed", seed, "--epochs", epochs, "--schedule", "constant", "--flip"];
        [&common[..], &rest[..], &["--out", out.to_str().unwrap()]].concat()
    }
}

/// What a finished run must hold: the uninterrupted run's metrics (less timing) and
/// weights, tensor by tensor with their metadata, one checkpoint directory, and no
/// temporary file anywhere.
fn assert_same_run(run: &Path, whole: &Path, what: &str) {
    assert_eq!(metrics_without_timing(run), metrics_without_timing(whole), "{what}: metrics.csv");
    for file in ["last.safetensors", "best.safetensors"] {
        let read = |run: &Path| archc::lower::weights::StateDict::read(&run.join(file)).unwrap();
        let (got, want) = (read(run), read(whole));
        assert!(got.tensors == want.tensors, "{what}: {file} differs from the uninterrupted run's");
        assert_eq!(got.metadata, want.metadata, "{what}: {file}'s metadata");
    }
    let state = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
    };
    // The same files (not the same bytes: Burn's records carry random parameter ids,
    // and a safetensors header may order its metadata otherwise).
    let names = |run: &Path| state(run)["files"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(run), names(whole), "{what}: state.json's files");
    let checkpoints: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(checkpoints, ["2"], "{what}: only the last epoch's checkpoint is kept");
    for path in walk(run) {
        let name = path.strip_prefix(run).unwrap().to_string_lossy().to_string();
        assert!(!name.contains("tmp"), "{what}: {name} left behind");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths
}

/// Continues a killed run as a user would: `--resume` once the directory is a run
/// (config.json is its mark), the same command again when it never became one.
fn continue_killed(short: &ShortRun, run: &Path) -> String {
    if run.join("config.json").exists() {
        ok(&archc(&["train", "--resume", run.to_str().unwrap()]))
    } else {
        ok(&archc(&short.args(run, "2")))
    }
}

/// The test-only hook `ARCHC_KILL_AFTER_STEP=N` kills archc (SIGKILL) right after its
/// N-th file-system step: every file written, flushed, renamed, linked or removed. For
/// every N of a two-epoch run, the killed run resumes to the uninterrupted one's result.
#[test]
fn a_run_killed_after_any_file_step_resumes_to_the_same_result() {
    let short = ShortRun::new("every-step");
    let whole = short.dir.join("whole");
    let trace = short.dir.join("steps.txt");
    ok(&archc_env(&short.args(&whole, "2"), &[("ARCHC_TRACE_STEPS", trace.display().to_string())]));
    let steps = std::fs::read_to_string(&trace).unwrap().lines().filter(|l| l.starts_with("step ")).count();
    // Two epochs of writes, flushes, renames and links: the hook must see them all.
    assert!(steps > 40, "only {steps} file-system steps seen");
    for n in 1..=steps {
        let run = short.dir.join(format!("killed-{n}"));
        let killed = archc_env(&short.args(&run, "2"), &[("ARCHC_KILL_AFTER_STEP", n.to_string())]);
        assert_eq!(killed.status.signal(), Some(9), "step {n}: {}", String::from_utf8_lossy(&killed.stderr));
        continue_killed(&short, &run);
        assert_same_run(&run, &whole, &format!("killed after step {n}"));
        std::fs::remove_dir_all(&run).unwrap();
    }
}

/// Real kills at moments spread over the run, not chosen by the writer.
#[test]
fn a_run_killed_at_any_moment_resumes_to_the_same_result() {
    let short = ShortRun::new("sigkill");
    let whole = short.dir.join("whole");
    let started = std::time::Instant::now();
    ok(&archc(&short.args(&whole, "2")));
    let duration = started.elapsed();
    for (i, fraction) in [0.2, 0.45, 0.6, 0.75, 0.9, 0.97].into_iter().enumerate() {
        let run = short.dir.join(format!("killed-{i}"));
        let mut child = spawn_quiet(&short.args(&run, "2"));
        std::thread::sleep(duration.mul_f64(fraction));
        let _ = child.kill();
        let _ = child.wait();
        continue_killed(&short, &run);
        assert_same_run(&run, &whole, &format!("killed at {fraction} of the run"));
    }
}

/// While a run trains, a second `train --out`, a `--resume` and a `compare --out` on
/// its directory are refused at once, naming the process that holds it; the first run
/// finishes with its own records.
#[test]
fn a_live_run_directory_is_refused_to_a_second_archc() {
    let short = ShortRun::new("locked");
    let run = short.dir.join("run");
    let mut first = spawn_quiet(&short.args(&run, "2"));
    // Wait until the run holds its directory, then freeze it there.
    let lock = run.join(".lock");
    let pid = first.id();
    let holds = || std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid.to_string());
    while !(holds() && run.join("config.json").exists()) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (data_dir, run_arg) = (short.dir.to_str().unwrap(), run.to_str().unwrap());
    let stop =
        |signal: &str| assert!(Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
    stop("-STOP");
    let config = std::fs::read(run.join("config.json")).unwrap();

    let second = short.args_seed(&run, "2", "11");
    let tries: [(&str, Vec<&str>); 3] = [
        ("train --out", second),
        ("train --resume", vec!["train", "--resume", run.to_str().unwrap()]),
        ("compare --out", vec!["compare", &short.model, "--data", "mnist", "--data-dir", data_dir, "--out", run_arg]),
    ];
    for (what, args) in tries {
        let out = archc(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        let expected = format!("run directory `{}` is in use by another archc (pid {pid})", run.display());
        assert!(err.contains(&expected), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
    }
    stop("-CONT");
    assert!(first.wait().unwrap().success());
    assert_eq!(std::fs::read(run.join("config.json")).unwrap(), config, "config.json is the first run's");
    let alone = short.dir.join("alone");
    ok(&archc(&short.args(&alone, "2")));
    assert_same_run(&run, &alone, "the first run");
}

/// `--out` naming a finished run is refused and changes nothing; without `--out`,
/// two runs started in the same second get directories of their own.
#[test]
fn out_never_reuses_a_run() {
    let short = ShortRun::new("reuse");
    let run = short.dir.join("run");
    ok(&archc(&short.args(&run, "2")));
    let before: Vec<(PathBuf, Vec<u8>)> = walk(&run)
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with(".lock"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let tries = [
        short.args_seed(&run, "2", "9"),
        [short.args(&run, "2"), vec!["--set", "width=4"]].concat(),
        short.args(&run, "2"),
    ];
    for args in tries {
        let out = archc(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("already holds a run") && err.contains("--resume"), "{err}");
        for (path, bytes) in &before {
            assert_eq!(&std::fs::read(path).unwrap(), bytes, "{} changed", path.display());
        }
    }
}

/// `--resume` continues the run as it started: a model or a flag that differs from the
/// run's is refused, with both values; the same ones are accepted; `--epochs` extends
/// the run (and only the new epochs train), but not below what it has trained.
#[test]
fn resume_refuses_what_differs_and_extends_with_epochs() {
    let short = ShortRun::new("resume-flags");
    let run = short.dir.join("run");
    ok(&archc(&short.args(&run, "2")));
    let run_arg = run.to_str().unwrap();
    let refused: [(&[&str], &[&str]); 3] = [
        (&["train", "models/lenet5.arch", "--resume", run_arg], &["MODEL models/lenet5.arch (the run's: "]),
        (
            &["train", "--resume", run_arg, "--lr", "0.1", "--batch", "8"],
            &["--batch 8 (the run's: 64)", "--lr 0.1 (the run's: 0.05)"],
        ),
        (&["train", "--resume", run_arg, "--seed", "1"], &["--seed 1 (the run's: 3)"]),
    ];
    for (args, named) in refused {
        let out = archc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("as it started; drop what differs: "), "{err}");
        for difference in named {
            assert!(err.contains(difference), "{difference}: {err}");
        }
    }
    let out = archc(&["train", "--resume", run_arg, "--epochs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("has already trained 2 epochs: --epochs 1 would not extend it"), "{err}");

    // Extended to 3: one more epoch, the same as a run of 3 from the start (the
    // schedule is constant, so the length does not change the first two). The command
    // that started the run, with --resume added and --epochs changed, says the same
    // as the run, so it is accepted.
    let resumed = ok(&archc(&[short.args(&run, "3"), vec!["--resume", run_arg]].concat()));
    let epochs: Vec<&str> = resumed.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(epochs.len(), 1, "{resumed}");
    assert!(epochs[0].starts_with("epoch 3/3"), "{resumed}");
    let three = short.dir.join("three");
    ok(&archc(&short.args(&three, "3")));
    assert_eq!(metrics_without_timing(&run), metrics_without_timing(&three));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["args"]["epochs"], 3, "a later resume keeps the new length");
}

/// A checkpoint file changed or lost after its epoch was committed is refused by name:
/// resuming from it would mix epochs.
#[test]
fn a_checkpoint_file_that_is_not_its_states_is_refused_by_name() {
    let short = ShortRun::new("tampered");
    let run = short.dir.join("run");
    ok(&archc(&[short.args(&run, "2"), vec!["--stop-after", "1"]].concat()));
    let optimizer = run.join("checkpoints/1/optimizer.mpk");
    let mut bytes = std::fs::read(&optimizer).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&optimizer, &bytes).unwrap();
    let out = archc(&["train", "--resume", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let expected = format!("`{}` is not the file epoch 1's checkpoint was saved with", optimizer.display());
    assert!(err.contains(&expected), "{err}");
    let last = run.join("checkpoints/1/last.mpk");
    std::fs::remove_file(&last).unwrap();
    let out = archc(&["train", "--resume", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("`{}` is missing from epoch 1's checkpoint", last.display())), "{err}");
    // An edited model.arch (here: wider, so Burn's record would not even load) is
    // refused before any checkpoint is read, not a panic.
    let kept = run.join("model.arch");
    let text = std::fs::read_to_string(&kept).unwrap();
    std::fs::write(&kept, text.replace("width: int = 8", "width: int = 16")).unwrap();
    let out = archc(&["train", "--resume", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("`{}` was changed since the run started", kept.display())), "{err}");
}

/// `--data-dir` on `--resume` is where the data is now (the run's own is recorded as
/// an absolute path, so a resume from another directory finds it too); a refused
/// `--epochs` leaves config.json as it was; a run whose state.json is lost while a
/// later epoch's checkpoint is there is refused, not silently restarted.
#[test]
fn resume_finds_moved_data_and_keeps_what_it_refuses() {
    let short = ShortRun::new("moved");
    let run = short.dir.join("run");
    ok(&archc(&[short.args(&run, "3"), vec!["--stop-after", "1"]].concat()));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert!(Path::new(config["args"]["data_dir"].as_str().unwrap()).is_absolute(), "{config}");
    // The data moves; the run follows it with --data-dir.
    let moved = short.dir.join("moved-data");
    std::fs::create_dir_all(&moved).unwrap();
    for name in
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        std::fs::rename(short.dir.join(name), moved.join(name)).unwrap();
    }
    let run_arg = run.to_str().unwrap();
    let out = archc(&["train", "--resume", run_arg]);
    assert_eq!(out.status.code(), Some(1), "the recorded data is gone");
    let before = std::fs::read(run.join("config.json")).unwrap();
    for epochs in ["0", "5"] {
        // Refused (0 epochs; a missing data directory) before anything is rewritten.
        let out = archc(&["train", "--resume", run_arg, "--epochs", epochs]);
        assert_ne!(out.status.code(), Some(0));
        assert_eq!(
            std::fs::read(run.join("config.json")).unwrap(),
            before,
            "--epochs {epochs} refused: config.json kept"
        );
    }
    let text = ok(&archc(&["train", "--resume", run_arg, "--data-dir", moved.to_str().unwrap(), "--stop-after", "2"]));
    assert!(text.contains("epoch 2/3"), "{text}");

    // state.json lost beside epoch 2's checkpoint: refused by name, nothing removed.
    std::fs::remove_file(run.join("state.json")).unwrap();
    let out = archc(&["train", "--resume", run_arg, "--data-dir", moved.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("its state.json is missing") && err.contains("checkpoints/2"), "{err}");
    assert!(run.join("checkpoints/2/last.mpk").exists(), "the checkpoint is kept");
}

/// Runs without `--out`, started together in one working directory, each claim a
/// directory of their own (`runs/MODEL-DATA-TIME`, then `-2`, `-3`, …) and all finish.
#[test]
fn runs_started_together_without_out_get_their_own_directories() {
    let short = ShortRun::new("together");
    let data_dir = short.dir.to_str().unwrap();
    let args = ["train", &short.model, "--data", "mnist", "--data-dir", data_dir, "--epochs", "1", "--subset", "50"];
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_archc"))
                .args(args)
                .current_dir(&*short.dir)
                .env("RAYON_NUM_THREADS", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let runs: Vec<PathBuf> = std::fs::read_dir(short.dir.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 6, "{runs:?}");
    for run in runs {
        assert!(run.join("state.json").exists(), "{} finished", run.display());
    }
}

/// The command that started a run on an ImageFolder given by a relative path, repeated
/// with `--resume` added, says the same as the run (which records the absolute path).
#[test]
fn resume_with_the_starting_command_and_a_relative_folder() {
    let dir = scratch("relative-folder");
    for (class, blue) in [("cats", 0u8), ("dogs", 255)] {
        std::fs::create_dir_all(dir.join("flowers").join(class)).unwrap();
        for i in 0..6u8 {
            let image = image::RgbImage::from_fn(8, 8, |x, _| image::Rgb([x as u8 * 30 + i, 0, blue]));
            image.save(dir.join("flowers").join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let model = "network two(classes: int = 2) { input image(3, 8, 8)\n c: conv(4, kernel: 3)\n global_avgpool\n flatten\n fc: linear(classes) }\n";
    std::fs::write(dir.join("two.arch"), model).unwrap();
    let train = |extra: &[&str]| {
        let base = ["train", "two.arch", "--data", "flowers", "--val-split", "0.25", "--out", "run"];
        Command::new(env!("CARGO_BIN_EXE_archc"))
            .args(base)
            .args(extra)
            .current_dir(&*dir)
            .env("RAYON_NUM_THREADS", "2")
            .output()
            .unwrap()
    };
    ok(&train(&["--epochs", "1"]));
    let text = ok(&train(&["--epochs", "2", "--resume", "run"]));
    assert!(text.contains("epoch 2/2"), "{text}");
}
