//! The real fetched datasets, when `scripts/fetch-data.sh` has put them in
//! `data/` (or `$SMOOTHOUT_DATA`). Where one is missing the test prints why
//! it skipped and passes, unless `SMOOTHOUT_REQUIRE_DATA` is set: CI fetches
//! MNIST, Fashion-MNIST and the digits and sets it, so a dataset that did
//! not arrive fails CI. CIFAR-10/100 are in no package registry and always
//! skip when absent.

use std::path::PathBuf;

use smoothout_models::data::{
    load_cifar10, load_cifar100, load_digits, load_fashion_mnist, load_mnist, verify, DataError,
    Dataset, DatasetKind, Split,
};

fn root() -> PathBuf {
    std::env::var_os("SMOOTHOUT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data")))
}

/// The data root if `kind`'s folder exists, else prints the reason.
fn present(kind: DatasetKind) -> Option<PathBuf> {
    let root = root();
    let dir = root.join(kind.dir_name());
    if dir.is_dir() {
        Some(root)
    } else {
        let how = match kind.fetch_command() {
            Some(c) if std::env::var_os("SMOOTHOUT_REQUIRE_DATA").is_some() => panic!(
                "SMOOTHOUT_REQUIRE_DATA is set but {} is missing ({}); run {c}",
                dir.display(),
                kind.title()
            ),
            Some(c) => format!("run {c}"),
            None => "fetch it by hand (see load_cifar10's docs)".to_string(),
        };
        eprintln!(
            "skipped: {} not found ({}); {how}",
            dir.display(),
            kind.title()
        );
        None
    }
}

/// An MNIST-like dataset (`kind`, read by `load`) if fetched: verified
/// against its checksums, with 60 000 training and 10 000 test images of
/// 28 × 28.
fn mnist_like(kind: DatasetKind, load: fn(PathBuf) -> Result<Split, DataError>) -> Option<Split> {
    let root = present(kind)?;
    verify(&root, kind).unwrap();
    let split = load(root).unwrap();
    assert_eq!(split.train.shape(), [60_000, 1, 28, 28]);
    assert_eq!(split.test.shape(), [10_000, 1, 28, 28]);
    Some(split)
}

#[test]
fn mnist() {
    let Some(m) = mnist_like(DatasetKind::Mnist, load_mnist) else {
        return;
    };
    // Known class counts of the MNIST training and test sets.
    assert_eq!(
        m.train.class_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        m.test.class_counts(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!((m.train.label(0), m.test.label(0)), (Some(5), Some(7)));
    eprintln!("MNIST: {} train, {} test", m.train.len(), m.test.len());
}

#[test]
fn fashion_mnist() {
    let Some(f) = mnist_like(DatasetKind::FashionMnist, load_fashion_mnist) else {
        return;
    };
    assert_eq!(f.train.class_counts(), [6000; 10]);
    assert_eq!(f.test.class_counts(), [1000; 10]);
    // The first training image is an ankle boot (class 9), the first test
    // image too.
    assert_eq!((f.train.label(0), f.test.label(0)), (Some(9), Some(9)));
    eprintln!(
        "Fashion-MNIST: {} train, {} test",
        f.train.len(),
        f.test.len()
    );
}

#[test]
fn digits() {
    let Some(root) = present(DatasetKind::Digits) else {
        return;
    };
    verify(&root, DatasetKind::Digits).unwrap();
    assert_eq!(load_digits(&root).unwrap(), Dataset::digits_embedded());
    eprintln!("digits: 1797 images, equal to the embedded copy");
}

/// A dataset without checksums (`kind`, read by `load`) if fetched.
fn fetched(kind: DatasetKind, load: fn(PathBuf) -> Result<Split, DataError>) -> Option<Split> {
    Some(load(present(kind)?).unwrap())
}

#[test]
fn cifar10() {
    let Some(c) = fetched(DatasetKind::Cifar10, load_cifar10) else {
        return;
    };
    assert_eq!(c.train.shape(), [50_000, 3, 32, 32]);
    assert_eq!(c.test.shape(), [10_000, 3, 32, 32]);
    assert_eq!(c.train.class_counts(), [5000; 10]);
    assert_eq!(c.test.class_counts(), [1000; 10]);
}

#[test]
fn cifar100() {
    let Some(c) = fetched(DatasetKind::Cifar100, load_cifar100) else {
        return;
    };
    assert_eq!(c.train.shape(), [50_000, 3, 32, 32]);
    assert_eq!(c.train.class_counts(), [500; 100]);
    assert_eq!(c.test.class_counts(), [100; 100]);
}
