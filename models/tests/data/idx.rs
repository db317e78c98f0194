//! IDX (MNIST, Fashion-MNIST): parsing, loading, and one test per malformed
//! case.

use crate::support::data::{
    assert_in_file, assert_label_out_of_range, gz, idx_header, idx_images, idx_labels,
    missing_text, TempDir,
};
use smoothout_models::data::{
    load_fashion_mnist, load_idx_files, load_mnist, parse_idx, DataError, DatasetKind,
};

#[test]
fn parses_raw_and_gzip_alike() {
    let images = idx_images(3, 4, 5);
    let labels = idx_labels(&[2, 0, 9]);
    let raw = parse_idx(&images, &labels, 10).unwrap();
    assert_eq!(raw.shape(), [3, 1, 4, 5]);
    assert_eq!(raw.labels(), &[2, 0, 9]);
    assert_eq!(raw.max_pixel(), 255);
    assert_eq!(raw.image(1).unwrap()[..3], [31, 32, 33]);
    let zipped = parse_idx(&gz(&images), &gz(&labels), 10).unwrap();
    assert_eq!(raw, zipped);
    let mixed = parse_idx(&images, &gz(&labels), 10).unwrap();
    assert_eq!(raw, mixed);
}

#[test]
fn bad_magic() {
    let labels = idx_labels(&[1]);
    let mut images = idx_images(1, 2, 2);
    images[0] = 0x1e;
    let err = parse_idx(&images, &labels, 10).unwrap_err();
    assert_matches!(
        err,
        DataError::BadMagic {
            what: "IDX images",
            expected: 0x0803,
            found: 0x1e00_0803
        }
    );
    assert!(err.to_string().contains("magic number 0x1e000803"), "{err}");
}

#[test]
fn non_byte_idx_type_is_bad_magic() {
    // type 0x0D: 4-byte floats
    let mut images = idx_images(1, 2, 2);
    images[2] = 0x0d;
    let err = parse_idx(&images, &idx_labels(&[1]), 10).unwrap_err();
    assert_matches!(err, DataError::BadMagic { .. });
}

#[test]
fn labels_with_bad_magic() {
    let mut labels = idx_labels(&[1]);
    labels[1] = 1;
    let err = parse_idx(&idx_images(1, 2, 2), &labels, 10).unwrap_err();
    assert_matches!(
        err,
        DataError::BadMagic {
            what: "IDX labels",
            ..
        }
    );
}

#[test]
fn wrong_dims_images_of_rank_two() {
    let mut images = idx_header(&[1, 4]);
    images.extend_from_slice(&[0; 4]);
    let err = parse_idx(&images, &idx_labels(&[1]), 10).unwrap_err();
    assert_matches!(
        err,
        DataError::WrongRank {
            what: "IDX images",
            expected: 3,
            found: 2
        }
    );
}

#[test]
fn swapped_files_are_wrong_rank() {
    let images = idx_images(1, 2, 2);
    let labels = idx_labels(&[1]);
    let err = parse_idx(&labels, &images, 10).unwrap_err();
    assert_matches!(
        err,
        DataError::WrongRank {
            expected: 3,
            found: 1,
            ..
        }
    );
    assert!(err.to_string().contains("swapped"), "{err}");
}

#[test]
fn truncated_header() {
    let images = idx_images(1, 2, 2);
    for cut in [0, 2, 3, 7, 15] {
        let err = parse_idx(&images[..cut], &idx_labels(&[1]), 10).unwrap_err();
        assert_matches!(
            err,
            DataError::Truncated {
                what: "IDX images",
                ..
            },
            "cut {cut}: {err:?}"
        );
    }
}

#[test]
fn truncated_data() {
    let images = idx_images(3, 4, 4);
    let err = parse_idx(&images[..images.len() - 1], &idx_labels(&[1, 2, 3]), 10).unwrap_err();
    assert_matches!(
        err,
        DataError::Truncated {
            expected: 64,
            actual: 63,
            ..
        }
    );
    let labels = idx_labels(&[1, 2, 3]);
    let err = parse_idx(&images, &labels[..labels.len() - 2], 10).unwrap_err();
    assert_matches!(
        err,
        DataError::Truncated {
            what: "IDX labels",
            ..
        }
    );
}

#[test]
fn trailing_bytes() {
    let mut images = idx_images(1, 2, 2);
    images.push(0);
    let err = parse_idx(&images, &idx_labels(&[1]), 10).unwrap_err();
    assert_matches!(
        err,
        DataError::TrailingBytes {
            expected: 20,
            actual: 21,
            ..
        }
    );
}

#[test]
fn huge_header_is_rejected_without_allocating() {
    // 2^32-1 images of (2^32-1)² pixels: saturates, so the claim is
    // compared with the 16 bytes present before anything is allocated.
    let images = idx_header(&[u32::MAX, u32::MAX, u32::MAX]);
    let err = parse_idx(&images, &idx_labels(&[1]), 10).unwrap_err();
    assert_matches!(
        err,
        DataError::Truncated {
            expected: u64::MAX,
            actual: 16,
            ..
        }
    );
    let labels = idx_header(&[u32::MAX]);
    let err = parse_idx(&idx_images(1, 1, 1), &labels, 10).unwrap_err();
    assert_matches!(
        err,
        DataError::Truncated {
            what: "IDX labels",
            ..
        }
    );
}

#[test]
fn label_out_of_range() {
    let err = parse_idx(&idx_images(3, 2, 2), &idx_labels(&[1, 10, 2]), 10).unwrap_err();
    assert_label_out_of_range(&err, Some(1), 10, 10);
}

#[test]
fn image_label_count_mismatch() {
    let err = parse_idx(&idx_images(3, 2, 2), &idx_labels(&[1, 2]), 10).unwrap_err();
    assert_matches!(
        err,
        DataError::CountMismatch {
            images: 3,
            labels: 2
        }
    );
}

#[test]
fn zero_images_is_empty() {
    let err = parse_idx(&idx_images(0, 2, 2), &idx_labels(&[]), 10).unwrap_err();
    assert_matches!(err, DataError::Empty { what: "dataset" });
    let err = parse_idx(&idx_images(1, 0, 2), &idx_labels(&[1]), 10).unwrap_err();
    assert_matches!(
        err,
        DataError::Empty {
            what: "image shape"
        }
    );
}

#[test]
fn corrupt_gzip() {
    let mut bad = gz(&idx_images(2, 3, 3));
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    bad.truncate(n - 3);
    let err = parse_idx(&bad, &idx_labels(&[1, 1]), 10).unwrap_err();
    assert_matches!(err, DataError::Gzip { .. });
}

#[test]
fn invalid_class_count() {
    let err = parse_idx(&idx_images(1, 1, 1), &idx_labels(&[0]), 0).unwrap_err();
    assert_matches!(
        err,
        DataError::InvalidSetting {
            name: "classes",
            ..
        }
    );
}

/// Writes a tiny MNIST-format set (28×28) under `root/<dir>/`.
fn write_mnist_like(tmp: &TempDir, dir: &str, gzipped: bool) {
    let files = [
        ("train-images-idx3-ubyte", idx_images(5, 28, 28)),
        ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3, 9])),
        ("t10k-images-idx3-ubyte", idx_images(2, 28, 28)),
        ("t10k-labels-idx1-ubyte", idx_labels(&[7, 2])),
    ];
    for (name, bytes) in files {
        if gzipped {
            tmp.write(&format!("{dir}/{name}.gz"), &gz(&bytes));
        } else {
            tmp.write(&format!("{dir}/{name}"), &bytes);
        }
    }
}

#[test]
fn loads_mnist_layout_raw() {
    let tmp = TempDir::new("mnist-raw");
    write_mnist_like(&tmp, "mnist", false);
    let split = load_mnist(tmp.path()).unwrap();
    assert_eq!(split.train.shape(), [5, 1, 28, 28]);
    assert_eq!(split.test.shape(), [2, 1, 28, 28]);
    assert_eq!(split.test.labels(), &[7, 2]);
}

#[test]
fn loads_fashion_layout_gzipped() {
    let tmp = TempDir::new("fashion-gz");
    write_mnist_like(&tmp, "fashion-mnist", true);
    let split = load_fashion_mnist(tmp.path()).unwrap();
    assert_eq!(split.train.len(), 5);
    assert_eq!(split.train.labels(), &[0, 1, 2, 3, 9]);
}

#[test]
fn missing_file_names_the_fetch_command() {
    let text = missing_text(|root| load_mnist(root), DatasetKind::Mnist);
    assert!(text.starts_with("MNIST not found at "), "{text}");
    assert!(text.contains("train-images-idx3-ubyte"), "{text}");
    assert!(
        text.contains("run `scripts/fetch-data.sh mnist --dir "),
        "{text}"
    );

    // With the conventional root the hint is the bare command.
    let missing = DataError::Missing {
        dataset: DatasetKind::Mnist,
        root: "data".into(),
        path: "data/mnist/train-images-idx3-ubyte".into(),
    };
    assert_eq!(
        missing.to_string(),
        "MNIST not found at data/mnist/train-images-idx3-ubyte: run `scripts/fetch-data.sh mnist`"
    );
}

#[test]
fn missing_label_file_only() {
    let tmp = TempDir::new("mnist-half");
    write_mnist_like(&tmp, "mnist", false);
    std::fs::remove_file(tmp.path().join("mnist/t10k-labels-idx1-ubyte")).unwrap();
    let err = load_mnist(tmp.path()).unwrap_err();
    match &err {
        DataError::Missing { path, .. } => assert!(path.ends_with("mnist/t10k-labels-idx1-ubyte")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_file_on_disk_is_named() {
    let tmp = TempDir::new("mnist-corrupt");
    write_mnist_like(&tmp, "mnist", false);
    let path = tmp.path().join("mnist/train-labels-idx1-ubyte");
    std::fs::write(&path, idx_labels(&[0, 1, 2, 3, 42])).unwrap();
    let err = load_mnist(tmp.path()).unwrap_err();
    assert_in_file(&err, &path, DatasetKind::Mnist);
    assert_matches!(
        err.innermost(),
        DataError::LabelOutOfRange { label: 42, .. }
    );
    let text = err.to_string();
    assert!(text.contains("train-labels-idx1-ubyte: label 42"), "{text}");
    assert!(
        text.contains("run `scripts/fetch-data.sh mnist` again"),
        "{text}"
    );
}

#[test]
fn wrong_image_size_for_mnist() {
    let tmp = TempDir::new("mnist-8x8");
    write_mnist_like(&tmp, "mnist", false);
    tmp.write("mnist/train-images-idx3-ubyte", &idx_images(5, 8, 8));
    let err = load_mnist(tmp.path()).unwrap_err();
    assert_matches!(
        err.innermost(),
        DataError::WrongImageShape {
            expected: [1, 28, 28],
            found: [1, 8, 8]
        },
        "{err:?}"
    );
}

#[test]
fn load_idx_files_reads_any_shape() {
    let tmp = TempDir::new("idx-files");
    let images = tmp.write("a.idx", &gz(&idx_images(4, 3, 3)));
    let labels = tmp.write("b.idx", &idx_labels(&[0, 1, 0, 1]));
    let set = load_idx_files(&images, &labels, 2).unwrap();
    assert_eq!(set.shape(), [4, 1, 3, 3]);
    let err = load_idx_files(tmp.path().join("nope"), &labels, 2).unwrap_err();
    assert_matches!(err, DataError::Io { .. });
    let err = load_idx_files(&labels, &images, 2).unwrap_err();
    assert_matches!(err, DataError::InFile { dataset: None, .. });
}
