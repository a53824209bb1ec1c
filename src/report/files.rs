//! Writing files so that a reader never sees half of one: each is written under a
//! temporary name beside it and renamed into place, and a failed write removes its
//! temporary file and leaves the old file as it was.

use std::path::{Path, PathBuf};

/// The temporary name a file is written under: `report.md` → `report.md.tmp`, so
/// files that differ only in extension get their own.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    PathBuf::from(temp)
}

/// Writes bytes atomically.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    write_atomic_with(path, &temp_path(path), |temp| std::fs::write(temp, contents.as_ref()).map_err(|e| io_reason(&e)))
}

/// Lets `write` fill the temporary file `temp`, then renames it to `path`. On failure
/// the temporary file is removed.
pub fn write_atomic_with(
    path: &Path,
    temp: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let written = write(temp).and_then(|()| std::fs::rename(temp, path).map_err(|e| io_reason(&e)));
    written.map_err(|reason| {
        let _ = std::fs::remove_file(temp);
        format!("cannot write `{}`: {reason}", path.display())
    })
}

/// A short reason for an I/O error, for one-line messages that name the file.
pub fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
        _ => error.to_string(),
    }
}

/// The output directory: `--out`, or `runs/WHAT-SECONDS`; created.
pub fn out_dir(out: &Option<PathBuf>, what: &str) -> Result<PathBuf, String> {
    let dir = out.clone().unwrap_or_else(|| {
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("{what}-{seconds}"))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    Ok(dir)
}
