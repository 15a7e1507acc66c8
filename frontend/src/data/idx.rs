//! The IDX format (as used by MNIST): a big-endian header `0 0 type ndim`, `ndim` u32
//! dimensions, then the elements in row-major order. Only unsigned-byte data (type 0x08) is
//! read, which is what image/label datasets use. Files may be gzip-compressed.

use super::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// IDX element type code of unsigned bytes.
const IDX_U8: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The elements in row-major order.
    pub data: Vec<u8>,
}

/// Reads an IDX file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, &path.display().to_string())
}

/// Decodes IDX bytes; `what` names the source in errors.
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<IdxArray, DataError> {
    let bad = |reason: String| DataError::BadHeader {
        what: what.to_string(),
        reason,
    };
    let Some(&[z0, z1, kind, ndim]) = bytes.first_chunk::<4>() else {
        return Err(bad(format!(
            "{} bytes is too short for a header",
            bytes.len()
        )));
    };
    if z0 != 0 || z1 != 0 {
        return Err(bad(format!(
            "magic number starts with {z0:#04x} {z1:#04x}, not 0x00 0x00"
        )));
    }
    if kind != IDX_U8 {
        return Err(bad(format!(
            "element type {kind:#04x} is not unsigned bytes (0x08)"
        )));
    }
    if ndim == 0 {
        return Err(bad("zero dimensions".to_string()));
    }
    let header = 4 + 4 * ndim as usize;
    if bytes.len() < header {
        return Err(bad(format!(
            "{ndim} dimensions need a {header}-byte header; the file has {} bytes",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found != expected {
        return Err(DataError::WrongSize {
            what: what.to_string(),
            expected,
            found,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, IDX_U8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_dims_and_data() {
        let a = parse_idx(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6]), "t").unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_bad_magic_type_and_sizes() {
        let err = |b: &[u8]| parse_idx(b, "t").unwrap_err().to_string();
        assert!(err(&[0, 0]).contains("too short"));
        assert!(err(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("magic"));
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("element type"));
        assert!(err(&[0, 0, 8, 0]).contains("zero dimensions"));
        assert!(err(&[0, 0, 8, 2, 0, 0, 0, 1]).contains("header"));
        let truncated = idx(&[2, 3], &[1, 2, 3]);
        assert!(err(&truncated).contains("promises 6 bytes of data, the file holds 3"));
        let long = idx(&[1], &[1, 2]);
        assert!(err(&long).contains("promises 1 bytes"));
    }
}
