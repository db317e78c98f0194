//! The parsers never panic: arbitrary bytes, and bytes that start like a
//! valid file and go wrong anywhere after, give `Ok` or a typed error.

use crate::support::data::{cifar_record, gz, idx_header, idx_images, idx_labels};
use crate::support::files::mutate;
use proptest::prelude::*;
use smoothout_models::data::{
    parse_cifar, parse_digits_csv, parse_idx, seeded_rng, Augment, CifarLayout, Dataset,
};

const LAYOUTS: [CifarLayout; 3] = [
    CifarLayout::Cifar10,
    CifarLayout::Cifar100Fine,
    CifarLayout::Cifar100Coarse,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(a in proptest::collection::vec(any::<u8>(), 0..4000),
                       b in proptest::collection::vec(any::<u8>(), 0..200),
                       classes in 0usize..300) {
        let _ = parse_idx(&a, &b, classes);
        let _ = parse_idx(&b, &a, classes);
        for layout in LAYOUTS {
            let _ = parse_cifar(&a, layout);
        }
        let _ = parse_digits_csv(&a);
    }

    #[test]
    fn arbitrary_gzip(a in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let z = gz(&a);
        let _ = parse_idx(&z, &z, 10);
        let _ = parse_digits_csv(&z);
        // A gzip header followed by garbage.
        let mut g = vec![0x1f, 0x8b];
        g.extend_from_slice(&a);
        let _ = parse_idx(&g, &g, 10);
        let _ = parse_digits_csv(&g);
    }

    #[test]
    fn forged_idx_headers(dims in proptest::collection::vec(any::<u32>(), 0..5),
                          payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut images = idx_header(&dims);
        images.extend_from_slice(&payload);
        let labels = idx_labels(&payload[..payload.len().min(20)]);
        if let Ok(set) = parse_idx(&images, &labels, 256) {
            prop_assert_eq!(set.pixels().len(), set.len() * set.image_len());
        }
    }

    #[test]
    fn mutated_valid_idx(n in 1u32..6, rows in 1u32..6, cols in 1u32..6,
                         edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
                         cut in 0usize..300, zip in any::<bool>()) {
        let images = mutate(idx_images(n, rows, cols), &edits, cut);
        let labels = mutate(idx_labels(&vec![3; n as usize]), &edits, cut);
        let (images, labels) = if zip { (gz(&images), gz(&labels)) } else { (images, labels) };
        let _ = parse_idx(&images, &labels, 10);
    }

    #[test]
    fn mutated_valid_cifar(records in 1usize..4,
                           edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
                           cut in 0usize..13_000) {
        for layout in LAYOUTS {
            let bytes: Vec<u8> = (0..records)
                .flat_map(|i| cifar_record(&vec![1u8; layout.label_bytes()], i as u8))
                .collect();
            let bytes = mutate(bytes, &edits, cut);
            if let Ok(set) = parse_cifar(&bytes, layout) {
                prop_assert_eq!(set.len() * layout.record_len(), bytes.len());
            }
        }
    }

    #[test]
    fn csv_like_text(tokens in proptest::collection::vec((0u8..8, any::<u64>()), 0..300)) {
        // Tokens drawn as (kind, value) pairs: plain tuples generate far
        // faster than string strategies in debug builds.
        let mut text = String::new();
        for (kind, v) in tokens {
            match kind {
                0 => text.push('0'),
                1 => text.push_str("16"),
                2 | 3 => text.push(','),
                4 => text.push('\n'),
                5 => text.push_str([" ", "\r", "-", "\u{e9}", "x"][(v % 5) as usize]),
                6 => text.push_str(&(v % 20).to_string()),
                _ => text.push_str(&v.to_string()),
            }
        }
        let _ = parse_digits_csv(text.as_bytes());
        let _ = parse_digits_csv(&gz(text.as_bytes()));
    }

    #[test]
    fn valid_digits_lines_roundtrip(rows in proptest::collection::vec(
                                        (proptest::collection::vec(0u8..=16, 64), 0u8..10), 1..20)) {
        let text: String = rows
            .iter()
            .map(|(p, l)| {
                let mut f: Vec<String> = p.iter().map(u8::to_string).collect();
                f.push(l.to_string());
                f.join(",") + "\n"
            })
            .collect();
        let set = parse_digits_csv(text.as_bytes()).unwrap();
        prop_assert_eq!(set.len(), rows.len());
        for (i, (p, l)) in rows.iter().enumerate() {
            prop_assert_eq!(set.image(i).unwrap(), &p[..]);
            prop_assert_eq!(set.label(i), Some(*l));
        }
    }

    #[test]
    fn augment_any_shape(c in 0usize..4, h in 0usize..9, w in 0usize..9,
                         padding in 0usize..12, flip in any::<bool>(),
                         extra in 0usize..3, seed in any::<u64>()) {
        let mut batch = vec![1.0f32; c * h * w * 2 + extra];
        let _ = Augment::none().with_crop(padding).with_flip(flip)
            .apply(&mut batch, [c, h, w], &mut seeded_rng(seed));
    }

    #[test]
    fn dataset_new_any_parts(pixels in proptest::collection::vec(any::<u8>(), 0..64),
                             labels in proptest::collection::vec(any::<u8>(), 0..8),
                             shape in proptest::array::uniform3(0usize..5),
                             classes in 0usize..300, max in any::<u8>()) {
        if let Ok(set) = Dataset::new(pixels, labels, shape, classes, max) {
            prop_assert!(set.labels().iter().all(|&l| usize::from(l) < set.classes()));
            prop_assert!(set.pixels().iter().all(|&p| p <= set.max_pixel()));
            let _ = set.shuffled_split(1, 0);
        }
    }
}
