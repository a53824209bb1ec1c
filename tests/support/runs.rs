//! Training runs the tests make: small labelled image sets written as IDX files (plain
//! or gzipped), a tiny network for them, and reading what a run directory holds.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the archc binary on two threads.
pub fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).env("RAYON_NUM_THREADS", "2").output().expect("archc runs")
}

/// Images whose brightness pattern depends on the label, so a small net can learn them.
pub fn images(count: usize, size: usize, channels: usize) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..count {
        let label = (i * 7 + i / 3) % 10;
        labels.push(label as u8);
        for c in 0..channels {
            for y in 0..size {
                for x in 0..size {
                    let v = ((x * (label + 1) + y * 3 + c * 11 + i) % 17) as u8 * 15;
                    pixels.push(v);
                }
            }
        }
    }
    (pixels, labels)
}

pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

pub fn write_mnist(dir: &Path, gzip: bool) {
    for (prefix, count) in [("train", 200), ("t10k", 50)] {
        let (pixels, labels) = images(count, 8, 1);
        let files = [
            (format!("{prefix}-images-idx3-ubyte"), idx(&[count as u32, 8, 8], &pixels)),
            (format!("{prefix}-labels-idx1-ubyte"), idx(&[count as u32], &labels)),
        ];
        for (name, bytes) in files {
            if gzip {
                let file = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
                encoder.write_all(&bytes).unwrap();
                encoder.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

pub const TINY: &str = "network tiny(classes: int = 10, width: int = 8) {
    input image(1, 8, 8)
    conv1:   conv(width, kernel: 3, padding: 1, bias: false)
    bn1:     batchnorm
             relu
    avgpool: global_avgpool
             flatten
    drop:    dropout(0.2)
    fc:      linear(classes)
}
";

pub fn tiny_model(dir: &Path) -> String {
    let path = dir.join("tiny.arch");
    std::fs::write(&path, TINY).unwrap();
    path.display().to_string()
}

pub fn metrics_without_timing(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|line| line.split(',').take(7).collect::<Vec<_>>().join(","))
        .collect()
}

pub fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    text
}

/// metrics.csv as numbers: per epoch, train loss, train accuracy, val loss, val top-1.
pub fn metric_values(run: &Path) -> Vec<[f64; 4]> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let row = |line: &str| {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        [v[1], v[2], v[3], v[4]]
    };
    text.lines().skip(1).map(row).collect()
}
