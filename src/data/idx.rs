//! IDX files (MNIST, Fashion-MNIST), gzipped or not: big-endian magic
//! 0x0000_08_NN (unsigned bytes, NN dimensions), NN big-endian u32 sizes, then the bytes.

use crate::error::{Error, FileKind, IoReason};
use std::io::Read;
use std::path::Path;

#[derive(Debug)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads `path`, or `path.gz` when only the gzipped file exists.
pub fn read(path: &Path) -> Result<Idx, Error> {
    let gz = path.with_extension(match path.extension() {
        Some(ext) => format!("{}.gz", ext.to_string_lossy()),
        None => "gz".into(),
    });
    let (file, gzipped) = if path.exists() {
        (path.to_path_buf(), path.extension().is_some_and(|e| e == "gz"))
    } else if gz.exists() {
        (gz, true)
    } else {
        return Err(Error::ReadEither { path: path.to_path_buf(), gz });
    };
    let raw = std::fs::read(&file).map_err(|e| Error::Read { path: file.clone(), reason: IoReason::os(&e) })?;
    let malformed = |kind, problem| Error::Malformed { path: file.clone(), kind, problem };
    let bytes = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| malformed(FileKind::Gzip, e.to_string()))?;
        out
    } else {
        raw
    };
    parse(&bytes).map_err(|problem| malformed(FileKind::Idx, problem))
}

/// The bytes of an IDX file; the error says what is wrong with them.
pub(crate) fn parse(bytes: &[u8]) -> Result<Idx, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (bad magic number)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!("IDX type 0x{:02x} is not unsigned bytes", bytes[2]));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err("truncated IDX header".into());
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes([bytes[4 + 4 * i], bytes[5 + 4 * i], bytes[6 + 4 * i], bytes[7 + 4 * i]]) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("IDX sizes overflow")?;
    let data = &bytes[header..];
    if data.len() < count {
        return Err(format!("truncated: the header promises {count} bytes of data, the file has {}", data.len()));
    }
    Ok(Idx { dims, data: data[..count].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_truncation() {
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        bytes.extend([1, 2, 3, 4]);
        let idx = parse(&bytes).unwrap();
        assert_eq!(idx.dims, vec![2, 1, 2]);
        assert_eq!(idx.data, vec![1, 2, 3, 4]);
        assert!(parse(&bytes[..18]).unwrap_err().contains("truncated"));
        assert!(parse(b"PK\x03\x04").unwrap_err().contains("magic"));
    }
}
