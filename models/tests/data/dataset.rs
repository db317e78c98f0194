//! `Dataset`: validation, batches, subsets and seeded splits.

use smoothout_models::data::{permutation, DataError, Dataset};

fn tiny() -> Dataset {
    // 6 images of 1×1×2, image i = [i, 10 + i], label i % 3
    let pixels = (0..6u8).flat_map(|i| [i, 10 + i]).collect();
    Dataset::new(pixels, vec![0, 1, 2, 0, 1, 2], [1, 1, 2], 3, 20).unwrap()
}

#[test]
fn new_validates() {
    let ok = |p: Vec<u8>, l: Vec<u8>| Dataset::new(p, l, [1, 1, 2], 3, 20);
    assert_matches!(
        ok(vec![0; 3], vec![0]),
        Err(DataError::LengthMismatch { .. })
    );
    assert_matches!(
        ok(vec![0; 4], vec![0]),
        Err(DataError::CountMismatch {
            images: 2,
            labels: 1
        })
    );
    assert_matches!(
        ok(vec![0, 21], vec![0]),
        Err(DataError::PixelOutOfRange {
            index: 0,
            value: 21,
            max: 20
        })
    );
    assert_matches!(
        ok(vec![0, 0], vec![3]),
        Err(DataError::LabelOutOfRange {
            label: 3,
            classes: 3,
            ..
        })
    );
    assert_matches!(
        ok(vec![], vec![]),
        Err(DataError::Empty { what: "dataset" })
    );
    assert_matches!(
        Dataset::new(vec![0], vec![0], [1, 1, 1], 257, 255),
        Err(DataError::InvalidSetting {
            name: "classes",
            ..
        })
    );
    assert_matches!(
        Dataset::new(vec![0], vec![0], [1, 1, 1], 2, 0),
        Err(DataError::InvalidSetting {
            name: "max_pixel",
            ..
        })
    );
    assert_matches!(
        Dataset::new(vec![0], vec![0], [usize::MAX, 2, 2], 2, 255),
        Err(DataError::InvalidSetting {
            name: "image_shape",
            ..
        })
    );
}

#[test]
fn accessors() {
    let d = tiny();
    assert_eq!(d.shape(), [6, 1, 1, 2]);
    assert_eq!((d.len(), d.is_empty(), d.image_len()), (6, false, 2));
    assert_eq!(d.image(5), Some(&[5u8, 15][..]));
    assert_eq!(d.image(6), None);
    assert_eq!(d.image(usize::MAX), None);
    assert_eq!(d.label(2), Some(2));
    assert_eq!(d.label(6), None);
    assert_eq!(d.class_counts(), [2, 2, 2]);
}

#[test]
fn batch_f32_scales_by_max_pixel() {
    let d = tiny();
    let mut out = vec![0.0; 4];
    d.batch_f32(&[5, 0], &mut out).unwrap();
    assert_eq!(out, [5.0 / 20.0, 15.0 / 20.0, 0.0, 0.5]);
    assert_eq!(d.to_f32()[..2], [0.0, 0.5]);
    let mut labels = [0usize; 2];
    d.batch_labels(&[5, 1], &mut labels).unwrap();
    assert_eq!(labels, [2, 1]);

    assert_matches!(
        d.batch_f32(&[0], &mut out),
        Err(DataError::LengthMismatch {
            expected: 2,
            actual: 4,
            ..
        })
    );
    assert_matches!(
        d.batch_f32(&[0, 6], &mut out),
        Err(DataError::IndexOutOfRange { index: 6, len: 6 })
    );
    assert_matches!(
        d.batch_labels(&[0], &mut labels),
        Err(DataError::LengthMismatch { .. })
    );
    assert_matches!(
        d.batch_labels(&[9, 0], &mut labels),
        Err(DataError::IndexOutOfRange { .. })
    );
}

#[test]
fn subset_and_concat() {
    let d = tiny();
    let s = d.subset(&[4, 4, 1]).unwrap();
    assert_eq!(s.pixels(), &[4, 14, 4, 14, 1, 11]);
    assert_eq!(s.labels(), &[1, 1, 1]);
    assert_matches!(d.subset(&[]), Err(DataError::Empty { .. }));
    assert_matches!(d.subset(&[6]), Err(DataError::IndexOutOfRange { .. }));

    let both = Dataset::concat(&[d.clone(), s.clone()]).unwrap();
    assert_eq!(both.len(), 9);
    assert_eq!(both.subset(&[6, 7, 8]).unwrap(), s);
    let other = Dataset::new(vec![1, 2], vec![0], [1, 2, 1], 3, 20).unwrap();
    assert_matches!(
        Dataset::concat(&[d, other]),
        Err(DataError::InvalidSetting { .. })
    );
    assert_matches!(Dataset::concat(&[]), Err(DataError::Empty { .. }));
}

#[test]
fn split_at_and_errors() {
    let d = tiny();
    let s = d.split_at(4).unwrap();
    assert_eq!(s.train.labels(), &[0, 1, 2, 0]);
    assert_eq!(s.test.pixels(), &[4, 14, 5, 15]);
    assert!(d.split_at(0).is_err());
    assert!(d.split_at(6).is_err());
}

#[test]
fn shuffled_split_is_a_seeded_partition() {
    let d = Dataset::digits_embedded();
    let a = d.shuffled_split(360, 7).unwrap();
    assert_eq!(a, d.shuffled_split(360, 7).unwrap());
    assert_ne!(a.test, d.shuffled_split(360, 8).unwrap().test);
    assert_eq!((a.train.len(), a.test.len()), (1437, 360));

    // The test set is the first 360 of the permutation, in original order.
    let mut test_idx = permutation(d.len(), 7)[..360].to_vec();
    test_idx.sort_unstable();
    assert_eq!(a.test, d.subset(&test_idx).unwrap());

    // Together the two halves have exactly the class counts of the whole.
    let counts: Vec<usize> = a
        .train
        .class_counts()
        .iter()
        .zip(a.test.class_counts())
        .map(|(x, y)| x + y)
        .collect();
    assert_eq!(counts, d.class_counts());

    assert_matches!(
        d.shuffled_split(0, 1),
        Err(DataError::InvalidSetting {
            name: "test_len",
            ..
        })
    );
    assert!(d.shuffled_split(1797, 1).is_err());
}
