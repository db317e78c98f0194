//! CIFAR-10 and CIFAR-100: the binary versions.
//!
//! A file is a sequence of fixed-size records, one per image:
//!
//! ```text
//! CIFAR-10    label (1 byte, 0..10)                        3072 pixel bytes
//! CIFAR-100   coarse label (0..20), fine label (0..100)    3072 pixel bytes
//! ```
//!
//! The 3072 pixels are the red, green and blue 32×32 planes, each row-major:
//! already the `[3, 32, 32]` layout of a [`Dataset`] image.
//!
//! No package registry ships CIFAR; download the binary archives
//! (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`) from the CIFAR
//! authors' page and unpack them into `data/`, which gives
//! `data/cifar-10-batches-bin/` and `data/cifar-100-binary/`.

use std::path::Path;

use super::catalog::read_dataset_file;
use super::dataset::{Dataset, Split};
use super::error::{DataError, Result};
use super::kind::DatasetKind;

/// Pixel bytes per CIFAR image: 3 × 32 × 32.
pub const CIFAR_IMAGE_LEN: usize = 3 * 32 * 32;

const CIFAR_SHAPE: [usize; 3] = [3, 32, 32];
const COARSE_CLASSES: usize = 20;

/// Which CIFAR record layout, and for CIFAR-100 which label to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CifarLayout {
    /// 1 label byte (10 classes) + 3072 pixels.
    Cifar10,
    /// 2 label bytes + 3072 pixels; keep the fine label (100 classes).
    Cifar100Fine,
    /// 2 label bytes + 3072 pixels; keep the coarse label (20 superclasses).
    Cifar100Coarse,
}

impl CifarLayout {
    /// Label bytes before each image.
    #[must_use]
    pub fn label_bytes(self) -> usize {
        match self {
            CifarLayout::Cifar10 => 1,
            CifarLayout::Cifar100Fine | CifarLayout::Cifar100Coarse => 2,
        }
    }

    /// Bytes per record: label bytes + 3072.
    #[must_use]
    pub fn record_len(self) -> usize {
        self.label_bytes() + CIFAR_IMAGE_LEN
    }

    /// Classes of the label kept.
    #[must_use]
    pub fn classes(self) -> usize {
        match self {
            CifarLayout::Cifar10 => 10,
            CifarLayout::Cifar100Fine => 100,
            CifarLayout::Cifar100Coarse => COARSE_CLASSES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CifarLayout::Cifar10 => "CIFAR-10",
            CifarLayout::Cifar100Fine | CifarLayout::Cifar100Coarse => "CIFAR-100",
        }
    }

    fn kind(self) -> DatasetKind {
        match self {
            CifarLayout::Cifar10 => DatasetKind::Cifar10,
            CifarLayout::Cifar100Fine | CifarLayout::Cifar100Coarse => DatasetKind::Cifar100,
        }
    }
}

/// Parses one CIFAR binary file into a [`Dataset`] of shape
/// `[n, 3, 32, 32]`, pixel maximum 255.
///
/// For CIFAR-100 both labels are checked (coarse below 20, fine below 100)
/// whichever one is kept.
///
/// ```
/// use smoothout_models::data::{parse_cifar, CifarLayout, CIFAR_IMAGE_LEN};
///
/// let mut file = vec![7u8];                     // label
/// file.extend(std::iter::repeat_n(128u8, CIFAR_IMAGE_LEN));
/// let set = parse_cifar(&file, CifarLayout::Cifar10)?;
/// assert_eq!(set.shape(), [1, 3, 32, 32]);
/// assert_eq!(set.labels(), &[7]);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::Empty`] for no bytes, [`DataError::RecordSize`] when the
/// length is not a multiple of [`CifarLayout::record_len`],
/// [`DataError::LabelOutOfRange`].
pub fn parse_cifar(bytes: &[u8], layout: CifarLayout) -> Result<Dataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    parse_into(bytes, layout, &mut pixels, &mut labels)?;
    Dataset::new(pixels, labels, CIFAR_SHAPE, layout.classes(), u8::MAX)
}

/// Loads CIFAR-10 from `root/cifar-10-batches-bin/`: `data_batch_1.bin` …
/// `data_batch_5.bin` (50 000 training images) and `test_batch.bin`
/// (10 000 test images), 10 classes.
///
/// ```no_run
/// let cifar = smoothout_models::data::load_cifar10("data")?;
/// assert_eq!(cifar.train.shape(), [50_000, 3, 32, 32]);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::Missing`] (saying where to get CIFAR) when a file is absent;
/// the errors of [`parse_cifar`], wrapped in [`DataError::InFile`].
pub fn load_cifar10(root: impl AsRef<Path>) -> Result<Split> {
    let train: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    load_split(
        root.as_ref(),
        CifarLayout::Cifar10,
        &train,
        "test_batch.bin",
    )
}

/// Loads CIFAR-100 with its fine labels (100 classes) from
/// `root/cifar-100-binary/`: `train.bin` (50 000 images) and `test.bin`
/// (10 000).
///
/// # Errors
/// As [`load_cifar10`].
pub fn load_cifar100(root: impl AsRef<Path>) -> Result<Split> {
    load_split(
        root.as_ref(),
        CifarLayout::Cifar100Fine,
        &["train.bin".into()],
        "test.bin",
    )
}

/// Loads CIFAR-100 with its coarse labels (20 superclasses); otherwise as
/// [`load_cifar100`].
///
/// # Errors
/// As [`load_cifar10`].
pub fn load_cifar100_coarse(root: impl AsRef<Path>) -> Result<Split> {
    load_split(
        root.as_ref(),
        CifarLayout::Cifar100Coarse,
        &["train.bin".into()],
        "test.bin",
    )
}

fn load_split(root: &Path, layout: CifarLayout, train: &[String], test: &str) -> Result<Split> {
    Ok(Split {
        train: load_files(root, layout, train)?,
        test: load_files(root, layout, &[test.to_string()])?,
    })
}

/// Parses the files one after another into shared buffers (no second copy
/// of the whole set).
fn load_files(root: &Path, layout: CifarLayout, names: &[String]) -> Result<Dataset> {
    let kind = layout.kind();
    let dir = root.join(kind.dir_name());
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for name in names {
        let path = dir.join(name);
        let bytes = read_dataset_file(kind, root, &path)?;
        parse_into(&bytes, layout, &mut pixels, &mut labels)
            .map_err(|e| e.in_file(&path, Some(kind)))?;
    }
    Dataset::new(pixels, labels, CIFAR_SHAPE, layout.classes(), u8::MAX)
}

/// Appends the records of `bytes` to `pixels` and `labels`.
fn parse_into(
    bytes: &[u8],
    layout: CifarLayout,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<()> {
    if bytes.is_empty() {
        return Err(DataError::Empty { what: "CIFAR file" });
    }
    let record = layout.record_len();
    if !bytes.len().is_multiple_of(record) {
        return Err(DataError::RecordSize {
            what: layout.name(),
            len: bytes.len() as u64,
            record,
        });
    }
    let n = bytes.len() / record;
    // Bounded by the bytes present: n · 3072 < bytes.len().
    pixels.reserve(n * CIFAR_IMAGE_LEN);
    labels.reserve(n);
    for (index, rec) in bytes.chunks_exact(record).enumerate() {
        let (head, image) = rec.split_at(layout.label_bytes());
        let label = match layout {
            CifarLayout::Cifar10 => check_label(index, head[0], 10)?,
            CifarLayout::Cifar100Fine | CifarLayout::Cifar100Coarse => {
                let coarse = check_label(index, head[0], COARSE_CLASSES)?;
                let fine = check_label(index, head[1], 100)?;
                if layout == CifarLayout::Cifar100Fine {
                    fine
                } else {
                    coarse
                }
            }
        };
        labels.push(label);
        pixels.extend_from_slice(image);
    }
    Ok(())
}

fn check_label(index: usize, label: u8, classes: usize) -> Result<u8> {
    if usize::from(label) < classes {
        Ok(label)
    } else {
        Err(DataError::LabelOutOfRange {
            index,
            label: u32::from(label),
            classes,
        })
    }
}
