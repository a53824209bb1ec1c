//! CIFAR-10 / CIFAR-100 binary versions: records of label byte(s) and 3×32×32 pixels
//! (the `cifar-10-batches-bin` and `cifar-100-binary` layouts).

use crate::error::{DataError, Error, FileKind, IoReason};
use std::path::Path;

pub const PIXELS: usize = 3 * 32 * 32;

/// Reads one binary batch. CIFAR-100 records start with a coarse and a fine label;
/// archc uses the fine one (100 classes).
pub fn read(path: &Path, hundred: bool) -> Result<(Vec<u8>, Vec<u32>), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Read { path: path.to_path_buf(), reason: IoReason::os(&e) })?;
    let classes = if hundred { 100 } else { 10 };
    let label_bytes = if hundred { 2 } else { 1 };
    let record = label_bytes + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            kind: FileKind::Cifar { classes },
            problem: format!("{} bytes is not a whole number of {record}-byte records", bytes.len()),
        });
    }
    let mut pixels = Vec::with_capacity(bytes.len() / record * PIXELS);
    let mut labels = Vec::with_capacity(bytes.len() / record);
    for (i, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = chunk[label_bytes - 1];
        if u32::from(label) >= classes {
            let path = path.to_path_buf();
            return Err(DataError::CifarLabelOutOfRange { path, record: i, label, classes }.into());
        }
        labels.push(u32::from(label));
        pixels.extend_from_slice(&chunk[label_bytes..]);
    }
    Ok((pixels, labels))
}
