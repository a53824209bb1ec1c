//! Tells the test suite whether Debian's Fashion-MNIST is installed, and whether a
//! Python with onnxruntime is there for the ONNX tests. Without it, the
//! tests that train on it are marked ignored (`cfg(not(fashion_mnist))`), so the
//! summary counts them as such instead of as passes; in CI (`CI` set: `.ci/run`
//! installs the dataset) they always run, and fail if it is missing.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fashion_mnist)");
    println!("cargo::rustc-check-cfg=cfg(onnxruntime)");
    println!("cargo::rustc-check-cfg=cfg(chromium)");
    println!("cargo::rerun-if-changed=tests/browser/node_modules");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=ARCHC_ONNX_PYTHON");
    // The ONNX tests run the exported files in onnxruntime, from the Python that
    // ARCHC_ONNX_PYTHON names (`.ci/run` makes one); without it they are ignored, and in
    // CI they always run.
    if std::env::var_os("CI").is_some() || std::env::var_os("ARCHC_ONNX_PYTHON").is_some() {
        println!("cargo::rustc-cfg=onnxruntime");
    }
    // dpkg rewrites its status file whenever a package is installed or removed.
    let status = std::path::Path::new("/var/lib/dpkg/status");
    if status.exists() {
        println!("cargo::rerun-if-changed={}", status.display());
    } else {
        println!("cargo::rerun-if-changed=build.rs");
    }
    if std::env::var_os("CI").is_some() || std::path::Path::new("/usr/share/datasets/fashion-mnist").exists() {
        println!("cargo::rustc-cfg=fashion_mnist");
    }
    // The graph page's browser test drives Debian's Chromium with playwright-core
    // (`npm ci` in tests/browser); without both it is ignored, and in CI it always runs.
    let browser = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("tests/browser/node_modules/playwright-core").exists();
    if std::env::var_os("CI").is_some() || browser {
        println!("cargo::rustc-cfg=chromium");
    }
}
