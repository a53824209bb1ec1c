//! Writing files so that a reader never sees half of one: each is written under a
//! temporary name beside it and renamed into place, and a failed write removes its
//! temporary file and leaves the old file as it was.

use crate::error::{Error, IoReason, RunError};
use std::path::{Path, PathBuf};

/// The temporary name a file is written under: `report.md` → `report.md.tmp`, so
/// files that differ only in extension get their own.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    PathBuf::from(temp)
}

/// Writes bytes atomically and durably (the file is on disk before it is renamed into
/// place). A failure names the file with the operating system's words.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), Error> {
    // A symbolic link keeps being one: its target is what gets replaced.
    let resolved = resolve_link(path);
    let path = resolved.as_path();
    // A device or a pipe (`--out /dev/stdout`) cannot be renamed over: it is written
    // to, as `>` would.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::write(path, contents.as_ref())
            .map_err(|e| Error::Write { path: path.to_path_buf(), reason: IoReason::os(&e) });
    }
    let write = |temp: &Path| {
        std::fs::write(temp, contents.as_ref()).map_err(|e| IoReason::os(&e))?;
        fault_step("write", temp);
        sync_file(temp).map_err(|e| IoReason::os(&e))
    };
    write_atomic_with(path, &temp_path(path), write, IoReason::os)
}

/// The file a path names, through symbolic links (a dangling link names its target).
fn resolve_link(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // A bounded walk: a loop of links ends as the last link read.
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => path = path.parent().map_or(target.clone(), |dir| dir.join(&target)),
            Err(_) => break,
        }
    }
    path
}

/// Lets `write` fill the temporary file `temp`, then renames it to `path`; `reason`
/// words a failed rename. On failure the temporary file is removed.
pub fn write_atomic_with(
    path: &Path,
    temp: &Path,
    write: impl FnOnce(&Path) -> Result<(), IoReason>,
    reason: fn(&std::io::Error) -> IoReason,
) -> Result<(), Error> {
    let written = write(temp).and_then(|()| {
        std::fs::rename(temp, path).map_err(|e| reason(&e))?;
        fault_step("rename", path);
        Ok(())
    });
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

/// An advisory lock on a directory (`DIR/.lock`), held while this value lives. The
/// kernel releases it when the process ends however it ends, so a killed run never
/// leaves a stale lock behind.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes `dir`'s lock, or says which process holds it. The holder's pid is written
/// into the lock file, for that message.
pub fn lock_dir(dir: &Path) -> Result<DirLock, Error> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(".lock");
    let unusable = |e: std::io::Error| Error::Write { path: path.clone(), reason: IoReason::os(&e) };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(unusable)?;
    // std's lock is flock(2) on Unix: per open file, released when the process ends.
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(RunError::InUse { dir: dir.to_path_buf(), pid: holder.trim().parse().ok() }.into());
    }
    file.set_len(0).and_then(|()| file.rewind()).map_err(unusable)?;
    write!(file, "{}", std::process::id()).and_then(|()| file.flush()).map_err(unusable)?;
    Ok(DirLock { _file: file })
}

/// Flushes a file's contents to the disk.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    fault_step("fsync", path);
    Ok(())
}

/// Flushes a directory's entries (the names created, renamed or removed in it) to the
/// disk, so that a rename survives a power cut and not only a killed process.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    // Windows cannot open a directory as a file; its renames are journalled anyway.
    if cfg!(unix) {
        let synced = std::fs::File::open(dir).and_then(|d| d.sync_all());
        synced.map_err(|e| Error::Write { path: dir.to_path_buf(), reason: IoReason::os(&e) })?;
        fault_step("fsync", dir);
    }
    Ok(())
}

/// Renames a file or directory, as one atomic step.
pub fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::rename(from, to).map_err(|e| Error::Write { path: to.to_path_buf(), reason: IoReason::os(&e) })?;
    fault_step("rename", to);
    Ok(())
}

/// Removes a directory and everything in it; one that is not there is fine.
pub fn remove_dir(dir: &Path) -> Result<(), Error> {
    remove(dir, |p| std::fs::remove_dir_all(p))
}

/// Removes a file; one that is not there is fine.
pub fn remove_file(path: &Path) -> Result<(), Error> {
    remove(path, |p| std::fs::remove_file(p))
}

fn remove(path: &Path, remover: fn(&Path) -> std::io::Result<()>) -> Result<(), Error> {
    match remover(path) {
        Ok(()) => fault_step("remove", path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Write { path: path.to_path_buf(), reason: IoReason::os(&e) }),
    }
    Ok(())
}

/// Makes `to` hold `from`'s contents, atomically: a hard link (no copy, no extra
/// space) where the file system has them, a copy otherwise, renamed into place.
pub fn publish(from: &Path, to: &Path) -> Result<(), Error> {
    // Already linked (rename(2) between two links of one file does nothing and would
    // leave the temporary name behind).
    if same_file(from, to) {
        return Ok(());
    }
    let temp = temp_path(to);
    let _ = std::fs::remove_file(&temp);
    let placed = std::fs::hard_link(from, &temp)
        .or_else(|_| std::fs::copy(from, &temp).and_then(|_| sync_file(&temp)))
        .map_err(|e| Error::Write { path: to.to_path_buf(), reason: IoReason::os(&e) });
    placed.inspect(|()| fault_step("link", &temp)).and_then(|()| rename(&temp, to)).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &Path, _: &Path) -> bool {
    false
}

/// Test-only fault injection, for the tests that prove a run survives being killed at
/// any instant: with `ARCHC_KILL_AFTER_STEP=N` the process kills itself (SIGKILL: no
/// destructor runs, nothing is flushed) right after its N-th file-system step (a file
/// written, fsynced, renamed, linked or removed); with `ARCHC_TRACE_STEPS=FILE` it
/// appends a line per step to FILE.
pub fn fault_step(what: &str, path: &Path) {
    use std::io::Write;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STEPS: AtomicUsize = AtomicUsize::new(0);
    static KILL_AFTER: OnceLock<Option<usize>> = OnceLock::new();
    static TRACE: OnceLock<Option<std::ffi::OsString>> = OnceLock::new();
    let step = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(trace) = TRACE.get_or_init(|| std::env::var_os("ARCHC_TRACE_STEPS")) {
        let line = format!("step {step}: {what} {}\n", path.display());
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
    let kill_after =
        KILL_AFTER.get_or_init(|| std::env::var("ARCHC_KILL_AFTER_STEP").ok().and_then(|n| n.parse().ok()));
    if *kill_after == Some(step) {
        #[cfg(unix)]
        // SAFETY: kill(2) on this process's own pid; it takes no pointers.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}
