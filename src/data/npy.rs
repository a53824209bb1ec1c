//! NumPy `.npy` files (format 1.0–3.0) holding little-endian float32 arrays in C order,
//! the layout `np.save` writes for `np.float32` arrays.

use crate::error::{Error, FileKind, IoReason};
use std::path::Path;

#[derive(Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub fn read(path: &Path) -> Result<Array, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Read { path: path.to_path_buf(), reason: IoReason::os(&e) })?;
    parse(&bytes).map_err(|problem| Error::Malformed { path: path.to_path_buf(), kind: FileKind::Npy, problem })
}

/// The bytes of a `.npy` file; the error says what is wrong with them.
pub(crate) fn parse(bytes: &[u8]) -> Result<Array, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + header_len).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr").ok_or("the .npy header has no dtype")?;
    if !descr.starts_with("'<f4'") && !descr.starts_with("'=f4'") {
        let dtype: String = descr.chars().take_while(|c| *c != ',').collect();
        return Err(format!("the array is {dtype}, archc needs float32 ('<f4'): use arr.astype(np.float32)"));
    }
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("the array is in Fortran order; save it with np.ascontiguousarray".into());
    }
    let shape_text = field("shape").ok_or("the .npy header has no shape")?;
    let inner = shape_text.trim_start_matches('(').split(')').next().unwrap_or("");
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape `{shape_text}`")))
        .collect::<Result<_, _>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("the shape is too large")?;
    let data = &bytes[start + header_len..];
    if data.len() != count * 4 {
        return Err(format!("holds {} bytes of data, but shape {shape:?} needs {}", data.len(), count * 4));
    }
    let data = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Array { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(payload);
        bytes
    }

    #[test]
    fn reads_float32_arrays() {
        let payload: Vec<u8> = [1.0f32, -2.5, 3.0, 0.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        let array = parse(&npy("<f4", "(1, 1, 2, 2)", &payload)).unwrap();
        assert_eq!(array.shape, vec![1, 1, 2, 2]);
        assert_eq!(array.data, vec![1.0, -2.5, 3.0, 0.25]);
    }

    #[test]
    fn refuses_other_dtypes_and_truncation() {
        assert!(parse(&npy("<f8", "(2,)", &[0; 16])).unwrap_err().contains("float32"));
        assert!(parse(&npy("<f4", "(3,)", &[0; 8])).unwrap_err().contains("needs 12"));
        assert!(parse(b"hello").unwrap_err().contains("magic"));
    }
}
