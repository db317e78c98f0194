//! scikit-learn's 8×8 handwritten digits: CSV, one image per line.
//!
//! Each line holds 65 comma-separated integers: the 64 pixels of an 8×8
//! image row by row, each `0..=16` (the count of "on" pixels in a 4×4 block of
//! a 32×32 bitmap), then the label `0..=9`. The file is scikit-learn's
//! `sklearn/datasets/data/digits.csv.gz` (1 797 images, BSD-3-Clause), a copy
//! of the test set of the UCI "Optical Recognition of Handwritten Digits"
//! data (E. Alpaydin, C. Kaynak, 1998). It is embedded in this crate, so
//! [`Dataset::digits_embedded`] needs no download.

use std::path::Path;

use super::catalog::read_dataset_file;
use super::dataset::Dataset;
use super::error::{DataError, Result};
use super::gzip::{maybe_gunzip, MAX_DECOMPRESSED};
use super::kind::DatasetKind;

/// Comma-separated fields per line: 64 pixels and the label.
pub const DIGITS_FIELDS: usize = 65;
/// The largest pixel value of the 8×8 digits.
pub const DIGITS_MAX_PIXEL: u8 = 16;

const PIXELS: usize = 64;
const CLASSES: usize = 10;

/// The embedded `digits.csv.gz`, byte for byte as scikit-learn ships it
/// (57 512 bytes; its sha256 is in [`KNOWN_FILES`](super::KNOWN_FILES)).
pub static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

impl Dataset {
    /// The 8×8 digits embedded in the crate: 1 797 images of shape
    /// `[1, 8, 8]`, pixel maximum 16, 10 classes, in scikit-learn's order.
    /// There is no predefined split: use
    /// [`shuffled_split`](Dataset::shuffled_split).
    ///
    /// ```
    /// use smoothout_models::data::Dataset;
    ///
    /// let digits = Dataset::digits_embedded();
    /// assert_eq!(digits.shape(), [1797, 1, 8, 8]);
    /// assert_eq!(digits.max_pixel(), 16);
    /// assert_eq!(digits.label(0), Some(0));
    /// ```
    ///
    /// # Panics
    /// Never: the embedded file is parsed by this crate's tests.
    #[must_use]
    pub fn digits_embedded() -> Dataset {
        parse_digits_csv(DIGITS_CSV_GZ).expect("the embedded digits.csv.gz parses (tested)")
    }
}

/// Parses the 8×8 digits CSV, raw or gzipped, into a [`Dataset`] of shape
/// `[n, 1, 8, 8]` with pixel maximum 16 and 10 classes.
///
/// Blank lines are skipped; `\r\n` line ends and spaces around fields are
/// accepted.
///
/// ```
/// use smoothout_models::data::{parse_digits_csv, DataError};
///
/// let line = format!("{}9\n", "16,".repeat(64));
/// let set = parse_digits_csv(line.as_bytes())?;
/// assert_eq!((set.len(), set.label(0)), (1, Some(9)));
///
/// let bad = format!("{}9\n", "17,".repeat(64));
/// let err = parse_digits_csv(bad.as_bytes()).unwrap_err();
/// assert!(matches!(err.innermost(), DataError::PixelOutOfRange { value: 17, .. }));
/// # Ok::<(), DataError>(())
/// ```
///
/// # Errors
/// Each wrapped in [`DataError::Line`]: [`DataError::FieldCount`],
/// [`DataError::NotANumber`], [`DataError::PixelOutOfRange`],
/// [`DataError::LabelOutOfRange`]. Unwrapped: [`DataError::Empty`] for a
/// file without a line of data, [`DataError::Gzip`],
/// [`DataError::TooLarge`].
pub fn parse_digits_csv(bytes: &[u8]) -> Result<Dataset> {
    let text = maybe_gunzip(bytes, MAX_DECOMPRESSED)?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let index = labels.len();
        parse_line(line, index, &mut pixels, &mut labels).map_err(|e| DataError::Line {
            line: i + 1,
            source: Box::new(e),
        })?;
    }
    if labels.is_empty() {
        return Err(DataError::Empty { what: "digits CSV" });
    }
    Dataset::new(pixels, labels, [1, 8, 8], CLASSES, DIGITS_MAX_PIXEL)
}

/// Loads the fetched copy from `root/digits/digits.csv.gz` (after
/// `scripts/fetch-data.sh digits`); the same data as
/// [`Dataset::digits_embedded`].
///
/// # Errors
/// [`DataError::Missing`] naming the fetch command; the errors of
/// [`parse_digits_csv`], wrapped in [`DataError::InFile`].
pub fn load_digits(root: impl AsRef<Path>) -> Result<Dataset> {
    let root = root.as_ref();
    let kind = DatasetKind::Digits;
    let path = root.join(kind.dir_name()).join("digits.csv.gz");
    let bytes = read_dataset_file(kind, root, &path)?;
    parse_digits_csv(&bytes).map_err(|e| e.in_file(&path, Some(kind)))
}

fn parse_line(line: &[u8], index: usize, pixels: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let found = line.split(|&b| b == b',').count();
    if found != DIGITS_FIELDS {
        return Err(DataError::FieldCount {
            expected: DIGITS_FIELDS,
            found,
        });
    }
    // An error abandons the whole parse, so partly pushed pixels do not matter.
    for (f, field) in line.split(|&b| b == b',').enumerate() {
        let value = parse_field(field, f + 1)?;
        if f < PIXELS {
            if value > u32::from(DIGITS_MAX_PIXEL) {
                return Err(DataError::PixelOutOfRange {
                    index,
                    value,
                    max: DIGITS_MAX_PIXEL,
                });
            }
            pixels.push(value as u8);
        } else if value as usize >= CLASSES {
            return Err(DataError::LabelOutOfRange {
                index,
                label: value,
                classes: CLASSES,
            });
        } else {
            labels.push(value as u8);
        }
    }
    Ok(())
}

/// A non-negative decimal integer, saturating at `u32::MAX` (any value that
/// large is out of range anyway).
fn parse_field(field: &[u8], number: usize) -> Result<u32> {
    let trimmed = field.trim_ascii();
    if trimmed.is_empty() || !trimmed.iter().all(u8::is_ascii_digit) {
        let text = String::from_utf8_lossy(field);
        return Err(DataError::NotANumber {
            field: number,
            text: text.chars().take(32).collect(),
        });
    }
    Ok(trimmed.iter().fold(0u32, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    }))
}
