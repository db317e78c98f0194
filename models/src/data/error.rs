//! Typed data errors: what was wrong, and what to do about it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::kind::DatasetKind;

/// Every way loading, parsing or transforming a dataset can fail.
///
/// The `Display` text names the offending file or value and the fix. Errors
/// about the contents of a file on disk come wrapped in [`DataError::InFile`]
/// (and CSV errors in [`DataError::Line`]); [`DataError::innermost`] strips
/// the wrappers.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// A file of a dataset is not where the loader looks.
    Missing {
        /// The dataset it belongs to.
        dataset: DatasetKind,
        /// The data root the loader was given (`data/` by convention).
        root: PathBuf,
        /// The file that was looked for.
        path: PathBuf,
    },
    /// Reading a file failed for another reason than its absence.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A parse error inside a file on disk.
    InFile {
        /// The file.
        path: PathBuf,
        /// The dataset it belongs to, when known (to say how to re-fetch it).
        dataset: Option<DatasetKind>,
        /// What was wrong with its contents.
        source: Box<DataError>,
    },
    /// A parse error on one line of a CSV file.
    Line {
        /// 1-based line number.
        line: usize,
        /// What was wrong with the line.
        source: Box<DataError>,
    },
    /// The first bytes are not the format's magic number.
    BadMagic {
        /// The format and part, e.g. `"IDX images"`.
        what: &'static str,
        /// The magic number expected (big-endian).
        expected: u32,
        /// The first four bytes found (big-endian), or fewer bytes padded
        /// with zeros.
        found: u32,
    },
    /// An IDX file has another number of dimensions than the format needs
    /// (3 for images, 1 for labels).
    WrongRank {
        /// The format and part, e.g. `"IDX labels"`.
        what: &'static str,
        /// Dimensions required.
        expected: usize,
        /// Dimensions found in the header.
        found: usize,
    },
    /// Images of another size than the dataset's (e.g. not 28×28 for MNIST).
    WrongImageShape {
        /// `[channels, height, width]` required.
        expected: [usize; 3],
        /// `[channels, height, width]` found.
        found: [usize; 3],
    },
    /// Fewer bytes than the header (or the record layout) requires.
    Truncated {
        /// The format and part, e.g. `"IDX images"`.
        what: &'static str,
        /// Bytes required.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// More bytes than the header says the file holds.
    TrailingBytes {
        /// The format and part, e.g. `"IDX images"`.
        what: &'static str,
        /// Bytes the header accounts for.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A CIFAR file whose length is not a whole number of records.
    RecordSize {
        /// The layout, `"CIFAR-10"` or `"CIFAR-100"`.
        what: &'static str,
        /// File length in bytes.
        len: u64,
        /// Bytes per record (label bytes plus 3072 pixels).
        record: usize,
    },
    /// Images and labels of different counts.
    CountMismatch {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label not below the number of classes.
    LabelOutOfRange {
        /// Index of the example (0-based).
        index: usize,
        /// The label found.
        label: u32,
        /// The number of classes: labels must be below it.
        classes: usize,
    },
    /// A pixel above the dataset's maximum value (16 for the 8×8 digits).
    PixelOutOfRange {
        /// Index of the image (0-based).
        index: usize,
        /// The value found.
        value: u32,
        /// The largest value allowed.
        max: u8,
    },
    /// A CSV line with another number of fields than the format has.
    FieldCount {
        /// Fields required.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// A CSV field that is not a non-negative integer.
    NotANumber {
        /// 1-based field number.
        field: usize,
        /// The field's text (cut to 32 characters).
        text: String,
    },
    /// A gzip stream that does not decompress.
    Gzip {
        /// What the decoder said.
        source: io::Error,
    },
    /// A gzip stream that decompresses to more than the loader accepts.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// No examples, or an image shape with a zero dimension.
    Empty {
        /// What is empty, e.g. `"dataset"`.
        what: &'static str,
    },
    /// A file whose sha256 is not the recorded one.
    Checksum {
        /// The file.
        path: PathBuf,
        /// The recorded sum (hex).
        expected: &'static str,
        /// The sum of the file found (hex).
        actual: String,
    },
    /// Two lengths that must agree do not (buffers, batches).
    LengthMismatch {
        /// What was compared, e.g. `"output buffer"`.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// An example index past the end of the dataset.
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of examples.
        len: usize,
    },
    /// A setting outside its domain (classes, split sizes, padding,
    /// normalisation statistics).
    InvalidSetting {
        /// The setting, e.g. `"test_len"`.
        name: &'static str,
        /// The value given, printed.
        value: String,
        /// The domain it must lie in, in words.
        expected: &'static str,
    },
}

impl DataError {
    /// [`DataError::LengthMismatch`] unless a batch of `batch_len` values
    /// is a whole number of images of `image_len` values (`image_len > 0`).
    pub(crate) fn check_whole_images(batch_len: usize, image_len: usize) -> Result<(), Self> {
        if batch_len.is_multiple_of(image_len) {
            return Ok(());
        }
        Err(DataError::LengthMismatch {
            what: "batch (a whole number of images)",
            expected: batch_len / image_len * image_len,
            actual: batch_len,
        })
    }

    /// The error under any [`InFile`](DataError::InFile) and
    /// [`Line`](DataError::Line) wrappers.
    ///
    /// ```
    /// use smoothout_models::data::{parse_digits_csv, DataError};
    ///
    /// let err = parse_digits_csv(b"1,2,3\n").unwrap_err();
    /// assert!(matches!(err, DataError::Line { line: 1, .. }));
    /// assert!(matches!(err.innermost(), DataError::FieldCount { expected: 65, found: 3 }));
    /// ```
    #[must_use]
    pub fn innermost(&self) -> &DataError {
        match self {
            DataError::InFile { source, .. } | DataError::Line { source, .. } => source.innermost(),
            other => other,
        }
    }

    /// Wraps a content error with the file it came from.
    pub(crate) fn in_file(self, path: &Path, dataset: Option<DatasetKind>) -> DataError {
        DataError::InFile {
            path: path.to_path_buf(),
            dataset,
            source: Box::new(self),
        }
    }
}

/// The command (or step) that puts `dataset` under `root`.
fn how_to_get(dataset: DatasetKind, root: &Path) -> String {
    match dataset.fetch_command() {
        Some(cmd) if root == Path::new("data") || root == Path::new("data/") => {
            format!("run `{cmd}`")
        }
        Some(cmd) => format!("run `{cmd} --dir {}`", root.display()),
        None => format!(
            "{} is in no package registry: download its binary version ({}) from \
             the CIFAR authors' page and unpack it into {} so that {} exists",
            dataset.title(),
            dataset.archive_name().unwrap_or("the binary archive"),
            root.display(),
            root.join(dataset.dir_name()).display()
        ),
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Missing {
                dataset,
                root,
                path,
            } => write!(
                f,
                "{} not found at {}: {}",
                dataset.title(),
                path.display(),
                how_to_get(*dataset, root)
            ),
            DataError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            DataError::InFile {
                path,
                dataset,
                source,
            } => {
                write!(f, "{}: {source}", path.display())?;
                match dataset.and_then(|d| d.fetch_command()) {
                    Some(cmd) => write!(
                        f,
                        "; the file is damaged or not in the expected format: \
                         delete it and run `{cmd}` again"
                    ),
                    None => write!(
                        f,
                        "; the file is damaged or not in the expected format: \
                         unpack a fresh copy"
                    ),
                }
            }
            DataError::Line { line, source } => write!(f, "line {line}: {source}"),
            DataError::BadMagic {
                what,
                expected,
                found,
            } => write!(
                f,
                "not {what}: magic number 0x{found:08x}, expected 0x{expected:08x} \
                 (only unsigned-byte IDX files are supported)"
            ),
            DataError::WrongRank {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} with {found} dimensions, expected {expected}: \
                 images and labels may be swapped"
            ),
            DataError::WrongImageShape { expected, found } => write!(
                f,
                "images of shape {found:?} (channels, height, width), expected {expected:?}: \
                 this is a different dataset"
            ),
            DataError::Truncated {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what} truncated: {actual} bytes, the header needs {expected}"
            ),
            DataError::TrailingBytes {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what} has {actual} bytes, the header accounts for only {expected}"
            ),
            DataError::RecordSize { what, len, record } => write!(
                f,
                "{what} file of {len} bytes is not a whole number of {record}-byte records: \
                 truncated, or a {} file",
                if *what == "CIFAR-10" {
                    "CIFAR-100"
                } else {
                    "CIFAR-10"
                }
            ),
            DataError::CountMismatch { images, labels } => write!(
                f,
                "{images} images but {labels} labels: the image and label files \
                 are from different splits"
            ),
            DataError::LabelOutOfRange {
                index,
                label,
                classes,
            } => write!(
                f,
                "label {label} of example {index} is not below the {classes} classes"
            ),
            DataError::PixelOutOfRange { index, value, max } => write!(
                f,
                "pixel value {value} in image {index} is above the maximum {max}"
            ),
            DataError::FieldCount { expected, found } => write!(
                f,
                "{found} comma-separated fields, expected {expected} \
                 (64 pixel values and the label)"
            ),
            DataError::NotANumber { field, text } => {
                write!(f, "field {field} ({text:?}) is not a non-negative integer")
            }
            DataError::Gzip { source } => write!(f, "corrupt gzip data: {source}"),
            DataError::TooLarge { limit } => write!(
                f,
                "gzip data decompresses to more than {limit} bytes, larger than any \
                 dataset file this crate reads"
            ),
            DataError::Empty { what } => write!(f, "empty {what}"),
            DataError::Checksum {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{}: sha256 {actual}, expected {expected}: the file is damaged or from \
                 another source; delete it and fetch it again",
                path.display()
            ),
            DataError::LengthMismatch {
                what,
                expected,
                actual,
            } => write!(f, "{what} has length {actual}, expected {expected}"),
            DataError::IndexOutOfRange { index, len } => write!(
                f,
                "example index {index} is out of range for a dataset of {len}"
            ),
            DataError::InvalidSetting {
                name,
                value,
                expected,
            } => write!(f, "{name} = {value} is invalid: expected {expected}"),
        }
    }
}

// `Display` already prints the whole chain (wrapped errors, I/O causes), so
// `source` returns nothing: reporters that walk the chain would repeat it.
impl std::error::Error for DataError {}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;
