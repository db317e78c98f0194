//! MNIST and Fashion-MNIST: the IDX format, raw or gzipped.
//!
//! An IDX file is a big-endian header followed by the data:
//!
//! ```text
//! 00 00 08 r          magic: two zero bytes, type 0x08 (unsigned byte), rank r
//! d_1 … d_r           r big-endian u32 dimensions
//! d_1 · … · d_r bytes the data, row-major
//! ```
//!
//! Images have rank 3 (`n, rows, cols`, magic `0x00000803`), labels rank 1
//! (`n`, magic `0x00000801`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::dataset::{Dataset, Split};
use super::error::{DataError, Result};
use super::gzip::{maybe_gunzip, MAX_DECOMPRESSED};
use super::kind::DatasetKind;

const IMAGES: &str = "IDX images";
const LABELS: &str = "IDX labels";

/// Parses an IDX image file and an IDX label file (each raw or gzipped) into
/// a [`Dataset`] of shape `[n, 1, rows, cols]` with pixel maximum 255.
///
/// Sizes in the headers are checked against the bytes present before
/// anything is allocated, so a forged header cannot cause a huge allocation.
///
/// ```
/// use smoothout_models::data::parse_idx;
///
/// // two 2×2 images and their labels
/// let images = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2,
///               0, 64, 128, 255, 1, 2, 3, 4];
/// let labels = [0, 0, 8, 1, 0, 0, 0, 2, 7, 1];
/// let set = parse_idx(&images, &labels, 10)?;
/// assert_eq!(set.shape(), [2, 1, 2, 2]);
/// assert_eq!(set.labels(), &[7, 1]);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::BadMagic`], [`DataError::WrongRank`],
/// [`DataError::Truncated`], [`DataError::TrailingBytes`],
/// [`DataError::Gzip`], [`DataError::TooLarge`],
/// [`DataError::CountMismatch`], [`DataError::LabelOutOfRange`],
/// [`DataError::Empty`], or [`DataError::InvalidSetting`] for `classes`
/// outside `1..=256`.
pub fn parse_idx(images: &[u8], labels: &[u8], classes: usize) -> Result<Dataset> {
    let (pixels, shape) = parse_images(images)?;
    let labels = parse_labels(labels)?;
    Dataset::new(pixels, labels, shape, classes, u8::MAX)
}

/// Loads an IDX image file and an IDX label file from disk (raw or
/// gzipped), for IDX datasets beyond MNIST and Fashion-MNIST.
///
/// # Errors
/// [`DataError::Io`] when a file cannot be read; the errors of
/// [`parse_idx`], wrapped in [`DataError::InFile`].
pub fn load_idx_files(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    classes: usize,
) -> Result<Dataset> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let read = |p: &Path| {
        fs::read(p).map_err(|source| DataError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    build(
        (images, &read(images)?),
        (labels, &read(labels)?),
        classes,
        None,
    )
}

/// Loads MNIST from `root/mnist/` (`root` is `data/` after
/// `scripts/fetch-data.sh mnist`): 60 000 training and 10 000 test images
/// of 28×28, 10 classes. Each file may be raw or `.gz`.
///
/// ```no_run
/// let mnist = smoothout_models::data::load_mnist("data")?;
/// assert_eq!(mnist.train.shape(), [60_000, 1, 28, 28]);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::Missing`] (naming the fetch command) when a file is absent;
/// [`DataError::WrongImageShape`] for images that are not 28×28; any parse
/// error of [`parse_idx`], wrapped in [`DataError::InFile`].
pub fn load_mnist(root: impl AsRef<Path>) -> Result<Split> {
    load_split(root.as_ref(), DatasetKind::Mnist)
}

/// Loads Fashion-MNIST from `root/fashion-mnist/` (after
/// `scripts/fetch-data.sh fashion-mnist`): 60 000 training and 10 000 test
/// images of 28×28, 10 classes. Each file may be raw or `.gz`.
///
/// # Errors
/// As [`load_mnist`].
pub fn load_fashion_mnist(root: impl AsRef<Path>) -> Result<Split> {
    load_split(root.as_ref(), DatasetKind::FashionMnist)
}

fn load_split(root: &Path, kind: DatasetKind) -> Result<Split> {
    Ok(Split {
        train: load_part(root, kind, "train")?,
        test: load_part(root, kind, "t10k")?,
    })
}

fn load_part(root: &Path, kind: DatasetKind, prefix: &str) -> Result<Dataset> {
    let (images_path, images) = read_raw_or_gz(root, kind, &format!("{prefix}-images-idx3-ubyte"))?;
    let (labels_path, labels) = read_raw_or_gz(root, kind, &format!("{prefix}-labels-idx1-ubyte"))?;
    let set = build(
        (&images_path, &images),
        (&labels_path, &labels),
        kind.classes(),
        Some(kind),
    )?;
    if set.image_shape() != kind.image_shape() {
        return Err(DataError::WrongImageShape {
            expected: kind.image_shape(),
            found: set.image_shape(),
        }
        .in_file(&images_path, Some(kind)));
    }
    Ok(set)
}

/// Reads `root/<dir>/name`, or else `root/<dir>/name.gz`.
fn read_raw_or_gz(root: &Path, kind: DatasetKind, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let dir = root.join(kind.dir_name());
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    for path in [raw.clone(), gz] {
        match fs::read(&path) {
            Ok(bytes) => return Ok((path, bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(DataError::Io { path, source }),
        }
    }
    Err(DataError::Missing {
        dataset: kind,
        root: root.to_path_buf(),
        path: raw,
    })
}

/// Parses both files, attributing each error to the file it is about
/// (count and label errors to the label file).
fn build(
    images: (&Path, &[u8]),
    labels: (&Path, &[u8]),
    classes: usize,
    kind: Option<DatasetKind>,
) -> Result<Dataset> {
    let (pixels, shape) = parse_images(images.1).map_err(|e| e.in_file(images.0, kind))?;
    let label_bytes = parse_labels(labels.1).map_err(|e| e.in_file(labels.0, kind))?;
    Dataset::new(pixels, label_bytes, shape, classes, u8::MAX)
        .map_err(|e| e.in_file(labels.0, kind))
}

/// Pixels and `[1, rows, cols]` of an IDX image file.
fn parse_images(bytes: &[u8]) -> Result<(Vec<u8>, [usize; 3])> {
    let bytes = maybe_gunzip(bytes, MAX_DECOMPRESSED)?;
    let (dims, data) = parse_header(&bytes, IMAGES, 3)?;
    Ok((data.to_vec(), [1, dims[1], dims[2]]))
}

/// Labels of an IDX label file.
fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>> {
    let bytes = maybe_gunzip(bytes, MAX_DECOMPRESSED)?;
    let (_, data) = parse_header(&bytes, LABELS, 1)?;
    Ok(data.to_vec())
}

/// Checks the magic number and rank, reads the dimensions and returns them
/// with the data, whose length must be exactly their product.
fn parse_header<'a>(
    bytes: &'a [u8],
    what: &'static str,
    rank: u8,
) -> Result<(Vec<usize>, &'a [u8])> {
    let expected_magic = u32::from_be_bytes([0, 0, 8, rank]);
    let mut head = [0u8; 4];
    let n = bytes.len().min(4);
    head[..n].copy_from_slice(&bytes[..n]);
    if head[..n.min(3)] != [0, 0, 8][..n.min(3)] {
        return Err(DataError::BadMagic {
            what,
            expected: expected_magic,
            found: u32::from_be_bytes(head),
        });
    }
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            what,
            expected: 4,
            actual: bytes.len() as u64,
        });
    }
    if bytes[3] != rank {
        return Err(DataError::WrongRank {
            what,
            expected: usize::from(rank),
            found: usize::from(bytes[3]),
        });
    }
    let header_len = 4 + 4 * usize::from(rank);
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            what,
            expected: header_len as u64,
            actual: bytes.len() as u64,
        });
    }
    let dims: Vec<u64> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    // At most 3 factors below 2^32: saturation only marks "more than any file".
    let data_len = dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d));
    let expected = (header_len as u64).saturating_add(data_len);
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(DataError::Truncated {
            what,
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(DataError::TrailingBytes {
            what,
            expected,
            actual,
        });
    }
    // A dimension can only exceed usize (32-bit targets) when another is zero;
    // the saturated value is then rejected by `Dataset::new`.
    let dims = dims
        .into_iter()
        .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    Ok((dims, &bytes[header_len..]))
}
