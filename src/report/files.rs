//! Writing files so that a reader never sees half of one: each is written under a
//! temporary name beside it and renamed into place, and a failed write removes its
//! temporary file and leaves the old file as it was.

use crate::error::{Error, IoReason};
use std::path::{Path, PathBuf};

/// The temporary name a file is written under: `report.md` → `report.md.tmp`, so
/// files that differ only in extension get their own.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    PathBuf::from(temp)
}

/// Writes bytes atomically. A failure names the file with the operating system's words.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), Error> {
    let write = |temp: &Path| std::fs::write(temp, contents.as_ref()).map_err(|e| IoReason::os(&e));
    write_atomic_with(path, &temp_path(path), write, IoReason::os)
}

/// Lets `write` fill the temporary file `temp`, then renames it to `path`; `reason`
/// words a failed rename. On failure the temporary file is removed.
pub fn write_atomic_with(
    path: &Path,
    temp: &Path,
    write: impl FnOnce(&Path) -> Result<(), IoReason>,
    reason: fn(&std::io::Error) -> IoReason,
) -> Result<(), Error> {
    let written = write(temp).and_then(|()| std::fs::rename(temp, path).map_err(|e| reason(&e)));
    written.map_err(|reason| {
        let _ = std::fs::remove_file(temp);
        Error::Write { path: path.to_path_buf(), reason }
    })
}

/// Reads a text file; an unreadable one is an error naming it.
pub fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::Read { path: path.to_path_buf(), reason: e.into() })
}

/// Reads a file's bytes; an unreadable one is an error naming it.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Read { path: path.to_path_buf(), reason: e.into() })
}

/// Creates a directory and its parents. A failure names it with the operating system's
/// words.
pub fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Create { path: dir.to_path_buf(), reason: IoReason::os(&e) })
}

/// The output directory: `out`, or `runs/WHAT-SECONDS`; created.
pub fn out_dir(out: Option<&Path>, what: &str) -> Result<PathBuf, Error> {
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| {
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("{what}-{seconds}"))
    });
    create_dir(&dir)?;
    Ok(dir)
}
