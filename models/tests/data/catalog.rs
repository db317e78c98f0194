//! The dataset catalogue: names, the recorded sums (equal to those in
//! `scripts/fetch-data.sh`), and `verify`.

use crate::support::data::TempDir;
use smoothout_models::data::{verify, DataError, DatasetKind, DIGITS_CSV_GZ, KNOWN_FILES};

#[test]
fn names_round_trip() {
    for kind in DatasetKind::ALL {
        assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
        assert_eq!(kind.to_string(), kind.name());
    }
    assert_eq!(
        "CIFAR-10".parse::<DatasetKind>().unwrap(),
        DatasetKind::Cifar10
    );
    assert_eq!(
        "fashion_mnist".parse::<DatasetKind>().unwrap(),
        DatasetKind::FashionMnist
    );
    let err = "imagenet".parse::<DatasetKind>().unwrap_err();
    assert_matches!(
        err,
        DataError::InvalidSetting {
            name: "dataset",
            ..
        }
    );
    assert!(
        err.to_string().contains("one of mnist, fashion-mnist"),
        "{err}"
    );
}

#[test]
fn every_fetchable_dataset_has_known_files() {
    for kind in DatasetKind::ALL {
        assert_eq!(
            kind.fetch_command().is_some(),
            kind.known_files().count() > 0,
            "{kind}"
        );
        assert_eq!(
            kind.fetch_command().is_none(),
            kind.archive_name().is_some(),
            "{kind}"
        );
    }
}

/// The sums are written twice, in the script (which checks the download)
/// and in `KNOWN_FILES` (which `verify` uses): they must agree.
#[test]
fn script_and_table_agree() {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/fetch-data.sh"
    ))
    .unwrap();
    let mut from_script: Vec<(String, String, u64)> = Vec::new();
    let mut section = None;
    for line in script.lines() {
        if let Some(rest) = line.strip_prefix("SUMS_") {
            section = Some(rest.split('=').next().unwrap().replace('_', "-"));
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [sum, size, name] = fields[..] {
            if sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                let section = section.clone().expect("sums inside a SUMS_ block");
                from_script.push((
                    format!("{section}/{name}"),
                    sum.to_string(),
                    size.parse().unwrap(),
                ));
            }
        }
    }
    let mut from_table: Vec<(String, String, u64)> = KNOWN_FILES
        .iter()
        .map(|f| {
            (
                format!("{}/{}", f.dataset.dir_name(), f.name),
                f.sha256.to_string(),
                f.size,
            )
        })
        .collect();
    from_script.sort();
    from_table.sort();
    assert_eq!(from_script, from_table);
}

#[test]
fn verify_checks_presence_and_sum() {
    let tmp = TempDir::new("verify");
    let err = verify(tmp.path(), DatasetKind::Digits).unwrap_err();
    assert_matches!(err, DataError::Missing { .. });

    tmp.write("digits/digits.csv.gz", DIGITS_CSV_GZ);
    verify(tmp.path(), DatasetKind::Digits).unwrap();

    let mut changed = DIGITS_CSV_GZ.to_vec();
    changed[100] ^= 1;
    tmp.write("digits/digits.csv.gz", &changed);
    let err = verify(tmp.path(), DatasetKind::Digits).unwrap_err();
    assert_matches!(err, DataError::Checksum { .. });
    assert!(err.to_string().contains("expected 46abec6b"), "{err}");

    // Nothing is recorded for CIFAR.
    verify(tmp.path(), DatasetKind::Cifar10).unwrap();
}
