//! scikit-learn's 8×8 digits: the embedded copy pinned against known
//! answers, and one test per malformed CSV case.

use crate::support::data::{assert_label_out_of_range, gz, missing_text, TempDir};
use smoothout_models::data::{
    load_digits, parse_digits_csv, sha256_hex, DataError, Dataset, DatasetKind, DIGITS_CSV_GZ,
    KNOWN_FILES,
};

fn line(pixels: &str, label: &str) -> String {
    format!("{pixels},{label}\n")
}

fn zeros() -> String {
    vec!["0"; 64].join(",")
}

/// The 64 pixels of [`zeros`], but field `index` holds `value`.
fn zeros_but(index: usize, value: &str) -> String {
    let mut fields = vec!["0"; 64];
    fields[index] = value;
    fields.join(",")
}

#[test]
fn embedded_file_is_sklearns() {
    let known = KNOWN_FILES
        .iter()
        .find(|f| f.dataset == DatasetKind::Digits)
        .unwrap();
    assert_eq!(DIGITS_CSV_GZ.len() as u64, known.size);
    assert_eq!(sha256_hex(DIGITS_CSV_GZ), known.sha256);
}

// Known answers from the file itself (zcat | awk) and scikit-learn's
// documentation: 1797 images, these class counts, this first and last row.
#[test]
fn embedded_known_answers() {
    let d = Dataset::digits_embedded();
    assert_eq!(d.shape(), [1797, 1, 8, 8]);
    assert_eq!((d.classes(), d.max_pixel()), (10, 16));
    assert_eq!(
        d.class_counts(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(
        d.image(0).unwrap()[..16],
        [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    );
    assert_eq!(d.label(0), Some(0));
    assert_eq!(d.label(1796), Some(8));
    assert_eq!(d.image(1796).unwrap()[..8], [0, 0, 10, 14, 8, 1, 0, 0]);
    let total: u64 = d.pixels().iter().map(|&p| u64::from(p)).sum();
    assert_eq!(total, 561_718);
}

#[test]
fn raw_and_gzip_alike_with_blank_lines_and_crlf() {
    let text = format!(
        "{}\n  \n{}",
        line(&zeros(), "3").trim_end(),
        line(&vec!["16"; 64].join(", "), " 7").replace('\n', "\r\n")
    );
    let raw = parse_digits_csv(text.as_bytes()).unwrap();
    assert_eq!(raw.labels(), &[3, 7]);
    assert_eq!(raw.image(1).unwrap(), &[16u8; 64][..]);
    assert_eq!(parse_digits_csv(&gz(text.as_bytes())).unwrap(), raw);
}

/// The error of a file whose first line is good and whose second holds
/// `pixels`: it names line 2.
fn error_in_line_2(pixels: &str) -> DataError {
    let text = format!("{}{}", line(&zeros(), "1"), line(pixels, "1"));
    let err = parse_digits_csv(text.as_bytes()).unwrap_err();
    assert_matches!(err, DataError::Line { line: 2, .. });
    err
}

#[test]
fn wrong_field_count() {
    let err = error_in_line_2(&vec!["0"; 63].join(","));
    assert_matches!(
        err.innermost(),
        DataError::FieldCount {
            expected: 65,
            found: 64
        },
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("line 2: 64 comma-separated fields"),
        "{err}"
    );
}

#[test]
fn non_numeric_field() {
    let err = parse_digits_csv(line(&zeros_but(9, "x1"), "1").as_bytes()).unwrap_err();
    assert_matches!(err.innermost(), DataError::NotANumber { field: 10, text } if text == "x1", "{err:?}");
}

#[test]
fn negative_and_empty_fields_are_not_numbers() {
    for bad in ["-1", "", "1.5", "+2"] {
        let err = parse_digits_csv(line(&zeros_but(0, bad), "1").as_bytes()).unwrap_err();
        assert_matches!(
            err.innermost(),
            DataError::NotANumber { field: 1, .. },
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn pixel_out_of_range() {
    let err = error_in_line_2(&zeros_but(63, "17"));
    assert_matches!(
        err.innermost(),
        DataError::PixelOutOfRange {
            index: 1,
            value: 17,
            max: 16
        },
        "{err:?}"
    );
}

#[test]
fn huge_number_saturates_and_is_out_of_range() {
    let err = parse_digits_csv(line(&zeros_but(0, "99999999999999999999999"), "1").as_bytes())
        .unwrap_err();
    assert_matches!(
        err.innermost(),
        DataError::PixelOutOfRange {
            value: u32::MAX,
            ..
        },
        "{err:?}"
    );
}

#[test]
fn label_out_of_range() {
    let err = parse_digits_csv(line(&zeros(), "10").as_bytes()).unwrap_err();
    assert_label_out_of_range(err.innermost(), Some(0), 10, 10);
}

#[test]
fn empty_file() {
    for text in ["", "\n\n", "  \r\n"] {
        let err = parse_digits_csv(text.as_bytes()).unwrap_err();
        assert_matches!(err, DataError::Empty { .. }, "{text:?}: {err:?}");
    }
}

#[test]
fn truncated_gzip() {
    let n = DIGITS_CSV_GZ.len();
    let err = parse_digits_csv(&DIGITS_CSV_GZ[..n / 2]).unwrap_err();
    assert_matches!(err, DataError::Gzip { .. });
}

#[test]
fn truncated_plain_text_cuts_a_line() {
    let text = line(&zeros(), "1");
    let err = parse_digits_csv(&text.as_bytes()[..40]).unwrap_err();
    assert_matches!(err.innermost(), DataError::FieldCount { .. }, "{err:?}");
}

#[test]
fn load_from_data_root() {
    let text = missing_text(|root| load_digits(root), DatasetKind::Digits);
    assert!(
        text.contains("scripts/fetch-data.sh digits --dir"),
        "{text}"
    );

    let tmp = TempDir::new("digits");
    tmp.write("digits/digits.csv.gz", DIGITS_CSV_GZ);
    assert_eq!(load_digits(tmp.path()).unwrap(), Dataset::digits_embedded());

    tmp.write("digits/digits.csv.gz", b"1,2\n");
    let err = load_digits(tmp.path()).unwrap_err();
    assert_matches!(err, DataError::InFile { .. });
    assert!(
        err.to_string()
            .contains("digits.csv.gz: line 1: 2 comma-separated"),
        "{err}"
    );
}
