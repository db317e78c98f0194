//! Transparent gzip: data files may be stored raw or gzipped.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::error::{DataError, Result};

/// The largest decompressed size accepted (1 GiB). The largest file this
/// crate reads, MNIST's training images, is 47 MB; the cap keeps a
/// malicious or corrupt gzip stream from exhausting memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Whether `bytes` start with the gzip magic number `1f 8b`.
#[must_use]
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// `bytes` decompressed if they are gzip, unchanged otherwise.
///
/// Memory grows with the data actually decompressed (never with a size a
/// header claims) and stops at `limit`.
pub(crate) fn maybe_gunzip(bytes: &[u8], limit: u64) -> Result<Cow<'_, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip { source })?;
    if out.len() as u64 > limit {
        return Err(DataError::TooLarge { limit });
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn raw_passes_through_borrowed() {
        let raw = [0u8, 0, 8, 1, 2, 3];
        assert!(matches!(maybe_gunzip(&raw, 10).unwrap(), Cow::Borrowed(b) if b == raw));
    }

    #[test]
    fn gzip_round_trips() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(&*maybe_gunzip(&gz(&data), 1 << 20).unwrap(), &data[..]);
    }

    #[test]
    fn limit_is_enforced() {
        // 1 MiB of zeros compresses to about 1 KiB: a tiny bomb.
        let bomb = gz(&vec![0u8; 1 << 20]);
        assert!(matches!(
            maybe_gunzip(&bomb, 1000),
            Err(DataError::TooLarge { limit: 1000 })
        ));
        assert_eq!(maybe_gunzip(&bomb, 1 << 20).unwrap().len(), 1 << 20);
    }

    #[test]
    fn corrupt_stream_is_an_error() {
        let mut bad = gz(b"hello world, hello world");
        let n = bad.len();
        bad.truncate(n - 6); // cut into the CRC trailer
        assert!(matches!(
            maybe_gunzip(&bad, 1 << 20),
            Err(DataError::Gzip { .. })
        ));
        assert!(matches!(
            maybe_gunzip(&[0x1f, 0x8b, 0xff, 0xff], 1 << 20),
            Err(DataError::Gzip { .. })
        ));
    }
}
