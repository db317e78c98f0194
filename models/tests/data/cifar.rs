//! CIFAR-10/100 binary batches: no registry ships them, so these tests write
//! small files in the format and load them; one test per malformed case.

use crate::support::data::{
    assert_in_file, assert_label_out_of_range, cifar_record, missing_text, TempDir,
};
use smoothout_models::data::{
    load_cifar10, load_cifar100, load_cifar100_coarse, parse_cifar, CifarLayout, DataError,
    DatasetKind, CIFAR_IMAGE_LEN,
};

fn records(labels: &[&[u8]]) -> Vec<u8> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, l)| cifar_record(l, i as u8 * 10))
        .collect()
}

#[test]
fn record_lengths() {
    assert_eq!(CIFAR_IMAGE_LEN, 3072);
    assert_eq!(CifarLayout::Cifar10.record_len(), 3073);
    assert_eq!(CifarLayout::Cifar100Fine.record_len(), 3074);
    assert_eq!(CifarLayout::Cifar100Coarse.classes(), 20);
}

#[test]
fn cifar10_pixels_are_channel_planes() {
    let set = parse_cifar(&records(&[&[3], &[9]]), CifarLayout::Cifar10).unwrap();
    assert_eq!(set.shape(), [2, 3, 32, 32]);
    assert_eq!(set.labels(), &[3, 9]);
    let second = set.image(1).unwrap();
    assert_eq!(second[0], 255); // red (0, 0)
    assert_eq!(second[1], 10); // red (0, 1)
    assert_eq!(second[1024], 11); // green plane
    assert_eq!(second[2048 + 1023], 12); // last blue pixel
}

#[test]
fn cifar100_fine_and_coarse() {
    let bytes = records(&[&[4, 99], &[19, 0]]);
    let fine = parse_cifar(&bytes, CifarLayout::Cifar100Fine).unwrap();
    assert_eq!((fine.labels(), fine.classes()), (&[99u8, 0][..], 100));
    let coarse = parse_cifar(&bytes, CifarLayout::Cifar100Coarse).unwrap();
    assert_eq!((coarse.labels(), coarse.classes()), (&[4u8, 19][..], 20));
    assert_eq!(fine.pixels(), coarse.pixels());
}

#[test]
fn length_not_a_multiple_of_the_record() {
    let mut bytes = records(&[&[1], &[2]]);
    bytes.pop();
    let err = parse_cifar(&bytes, CifarLayout::Cifar10).unwrap_err();
    assert_matches!(
        err,
        DataError::RecordSize {
            len: 6145,
            record: 3073,
            ..
        }
    );
}

#[test]
fn cifar100_file_read_as_cifar10() {
    let err = parse_cifar(&records(&[&[1, 2]]), CifarLayout::Cifar10).unwrap_err();
    assert_matches!(err, DataError::RecordSize { .. });
    assert!(err.to_string().contains("or a CIFAR-100 file"), "{err}");
}

#[test]
fn cifar10_label_out_of_range() {
    let err = parse_cifar(&records(&[&[1], &[10]]), CifarLayout::Cifar10).unwrap_err();
    assert_label_out_of_range(&err, Some(1), 10, 10);
}

#[test]
fn cifar100_fine_label_out_of_range() {
    let err = parse_cifar(&records(&[&[1, 100]]), CifarLayout::Cifar100Fine).unwrap_err();
    assert_label_out_of_range(&err, None, 100, 100);
}

#[test]
fn cifar100_coarse_label_checked_even_when_fine_is_kept() {
    let err = parse_cifar(&records(&[&[20, 5]]), CifarLayout::Cifar100Fine).unwrap_err();
    assert_label_out_of_range(&err, None, 20, 20);
}

#[test]
fn empty_file() {
    let err = parse_cifar(&[], CifarLayout::Cifar100Fine).unwrap_err();
    assert_matches!(err, DataError::Empty { .. });
}

fn write_cifar10(tmp: &TempDir) {
    for b in 1..=5u8 {
        tmp.write(
            &format!("cifar-10-batches-bin/data_batch_{b}.bin"),
            &records(&[&[b], &[b + 1]]),
        );
    }
    tmp.write(
        "cifar-10-batches-bin/test_batch.bin",
        &records(&[&[0], &[9], &[5]]),
    );
}

#[test]
fn loads_cifar10_batches_in_order() {
    let tmp = TempDir::new("cifar10");
    write_cifar10(&tmp);
    let split = load_cifar10(tmp.path()).unwrap();
    assert_eq!(split.train.shape(), [10, 3, 32, 32]);
    assert_eq!(split.train.labels(), &[1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    assert_eq!(split.test.labels(), &[0, 9, 5]);
    assert_eq!(split.train.classes(), 10);
}

#[test]
fn loads_cifar100_fine_and_coarse() {
    let tmp = TempDir::new("cifar100");
    tmp.write(
        "cifar-100-binary/train.bin",
        &records(&[&[0, 50], &[19, 99], &[7, 7]]),
    );
    tmp.write("cifar-100-binary/test.bin", &records(&[&[3, 30]]));
    let fine = load_cifar100(tmp.path()).unwrap();
    assert_eq!(fine.train.labels(), &[50, 99, 7]);
    assert_eq!(fine.test.labels(), &[30]);
    assert_eq!(fine.train.classes(), 100);
    let coarse = load_cifar100_coarse(tmp.path()).unwrap();
    assert_eq!(coarse.train.labels(), &[0, 19, 7]);
    assert_eq!(coarse.test.classes(), 20);
}

#[test]
fn error_in_one_batch_names_that_file() {
    let tmp = TempDir::new("cifar10-bad");
    write_cifar10(&tmp);
    let bad = tmp.write(
        "cifar-10-batches-bin/data_batch_3.bin",
        &records(&[&[1], &[200]]),
    );
    let err = load_cifar10(tmp.path()).unwrap_err();
    assert_in_file(&err, &bad, DatasetKind::Cifar10);
    assert_matches!(
        err.innermost(),
        DataError::LabelOutOfRange { label: 200, .. }
    );
}

#[test]
fn missing_cifar_says_where_to_get_it() {
    let text = missing_text(|root| load_cifar10(root), DatasetKind::Cifar10);
    assert!(text.contains("data_batch_1.bin"), "{text}");
    assert!(text.contains("no package registry"), "{text}");
    assert!(text.contains("cifar-10-binary.tar.gz"), "{text}");
    assert!(text.contains("cifar-10-batches-bin"), "{text}");

    let tmp = TempDir::new("cifar-missing");
    let err = load_cifar100(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("cifar-100-binary.tar.gz"), "{err}");
}
