//! Builders shared by the data tests: temporary folders and small files in
//! the IDX, CIFAR and gzip formats.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use smoothout_models::data::{DataError, DatasetKind};

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("smoothout-data-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` at `rel` (creating folders) and returns the path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `load` on an empty folder and checks that its error says `dataset`
/// is missing; returns the error's message, for the tests to check what it
/// tells the user.
pub fn missing_text<T: std::fmt::Debug>(
    load: impl FnOnce(&Path) -> Result<T, DataError>,
    dataset: DatasetKind,
) -> String {
    let tmp = TempDir::new("missing");
    let err = load(tmp.path()).unwrap_err();
    assert_matches!(err, DataError::Missing { dataset: d, .. } if *d == dataset);
    err.to_string()
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An IDX header: magic `00 00 08 rank` and the dimensions.
pub fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

/// An IDX image file of `n` images of `rows × cols`; pixel `k` of image `i`
/// is `(i * 31 + k) % 256`.
pub fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = idx_header(&[n, rows, cols]);
    for i in 0..n as usize {
        for k in 0..(rows * cols) as usize {
            v.push(((i * 31 + k) % 256) as u8);
        }
    }
    v
}

/// An IDX label file.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = idx_header(&[labels.len() as u32]);
    v.extend_from_slice(labels);
    v
}

/// One CIFAR record: the label bytes, then red, green, blue planes filled
/// with `seed`, `seed + 1`, `seed + 2` and pixel (0, 0) of red set to 255.
pub fn cifar_record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut v = labels.to_vec();
    for c in 0..3u8 {
        let start = v.len();
        v.extend(std::iter::repeat_n(seed.wrapping_add(c), 1024));
        if c == 0 {
            v[start] = 255;
        }
    }
    v
}

/// Asserts that `err` is [`DataError::LabelOutOfRange`] of `label` against
/// `classes`, at example `index` (at any example when `None`).
pub fn assert_label_out_of_range(
    err: &DataError,
    index: Option<usize>,
    label: u32,
    classes: usize,
) {
    match err {
        DataError::LabelOutOfRange {
            index: i,
            label: l,
            classes: c,
        } => assert!(
            index.is_none_or(|index| *i == index) && (*l, *c) == (label, classes),
            "{err:?}"
        ),
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
}

/// Asserts that `err` is [`DataError::InFile`] naming `path` of `dataset`.
pub fn assert_in_file(err: &DataError, path: &Path, dataset: DatasetKind) {
    match err {
        DataError::InFile {
            path: p,
            dataset: Some(d),
            ..
        } => assert!(p == path && *d == dataset, "{err:?}"),
        other => panic!("expected InFile, got {other:?}"),
    }
}
