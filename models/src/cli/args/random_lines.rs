//! Random command lines (issue 11's acceptance): numbers from the whole
//! i64/u64/f64 range with NaN and ±∞, random `--net` strings, random
//! batch, ghost, epochs, threads, lr, a, … go through the program's
//! parsing (`Cli::try_parse_from`), validation (`--threads`,
//! `TrainArgs::config`) and network construction (`Trainer::new`, whose
//! memory check runs before anything is allocated), without training.
//! Nothing may panic or abort; every rejection is a typed error. Networks
//! are only built when they are small, so the cases stay fast in debug
//! builds.

use clap::Parser;
use proptest::prelude::*;
use smoothout::Reference;
use smoothout_models::data::Dataset;
use smoothout_models::train::{available_memory, TrainError, Trainer, FALLBACK_MEMORY_LIMIT};

use super::{Cli, Command};

/// Examples of the synthetic training set of each case.
const EXAMPLES: usize = 8;
/// Networks of at most this many bytes (as estimated) are built.
const BUILD_LIMIT: u64 = 16 << 20;

/// A number as a user might type one: small, huge, negative, fractional,
/// not finite, or not a number at all.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..5).prop_map(|n| n.to_string()),
        (0u64..2000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        (-2.0f64..2.0).prop_map(|x| x.to_string()),
        prop::sample::select(vec![
            "NaN",
            "nan",
            "inf",
            "-inf",
            "infinity",
            "-0",
            "1e308",
            "1e-320",
            "",
            " ",
            "0x10",
            "18446744073709551616",
            "-9223372036854775809",
        ])
        .prop_map(String::from),
        "[0-9a-z.+-]{0,8}",
    ]
}

/// A count (`--batch`, `--epochs`, …): mostly one that parses, small or
/// at the ends of the range, sometimes anything.
fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u64..5).prop_map(|n| n.to_string()),
        4 => (0u64..600).prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![u64::MAX, usize::MAX as u64 / 2, 1 << 32, 1 << 40])
            .prop_map(|n| n.to_string()),
        1 => number(),
    ]
}

/// A real number (`--lr`, `--a`, …): mostly plausible, sometimes at the
/// ends of the f64 range or not finite, sometimes anything.
fn real() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (0.0f64..0.9).prop_map(|x| x.to_string()),
        2 => (-0.5f64..1.5).prop_map(|x| x.to_string()),
        2 => any::<f64>().prop_map(|x| x.to_string()),
        2 => prop::sample::select(vec![
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, f64::MIN_POSITIVE,
            5e-324, -0.0, 0.0, 1.0,
        ])
        .prop_map(|x| x.to_string()),
        1 => number(),
    ]
}

/// A `--net` value: a real name, an MLP of any widths, or anything.
fn net() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::collection::vec(
            prop_oneof![1u64..64, Just(999_999_999), Just(1 << 20), Just(1 << 31), Just(1 << 33)],
            1..4,
        )
        .prop_map(|w| {
            let w: Vec<String> = w.iter().map(ToString::to_string).collect();
            format!("mlp-{}", w.join("-"))
        }),
        1 => prop::sample::select(vec![
            "mlp",
            "f1",
            "cifar-shallow",
            "c1",
            "c3",
            "resnet44",
            "resnet18",
            "mlp-",
            "mlp--",
            "mlp-0",
            "mlp-999999999",
            "mlp-18446744073709551615",
            "mlp-18446744073709551616",
            "mlp-4294967296-4294967296",
        ])
        .prop_map(String::from),
        1 => prop::collection::vec(1usize..40, 1..4).prop_map(|w| {
            let w: Vec<String> = w.iter().map(ToString::to_string).collect();
            format!("mlp-{}", w.join("-"))
        }),
        1 => prop::collection::vec(count(), 1..4).prop_map(|w| format!("mlp-{}", w.join("-"))),
        1 => "\\PC{0,24}",
    ]
}

/// A random `smoothout train` command line (after `smoothout train`).
fn train_line() -> impl Strategy<Value = Vec<String>> {
    let flag = |name: &'static str, value: BoxedStrategy<String>| {
        prop::option::weighted(0.25, value)
            .prop_map(move |v| v.map(|v| vec![name.to_string(), v]).unwrap_or_default())
    };
    let choice = |items: Vec<&'static str>| prop::sample::select(items).prop_map(String::from);
    (
        (
            prop::option::weighted(0.8, net())
                .prop_map(|v| v.map(|v| vec!["--net".to_string(), v]).unwrap_or_default()),
            flag("--batch", count().boxed()),
            flag("--ghost", count().boxed()),
            flag("--epochs", count().boxed()),
            flag("--threads", count().boxed()),
            flag("--lr", real().boxed()),
            flag("--a", real().boxed()),
            flag("--momentum", real().boxed()),
        ),
        (
            flag("--weight-decay", real().boxed()),
            flag("--clip", real().boxed()),
            flag("--warmup", count().boxed()),
            flag(
                "--milestones",
                prop_oneof![number(), "[0-9.,]{0,12}".boxed()].boxed(),
            ),
            flag(
                "--schedule",
                prop_oneof![
                    number(),
                    real().prop_map(|n| format!("anneal:{n}")),
                    real().prop_map(|n| format!("tanh:{n}")),
                ]
                .boxed(),
            ),
            flag(
                "--noise",
                choice(vec!["uniform", "gaussian", "bernoulli"]).boxed(),
            ),
            flag(
                "--method",
                choice(vec![
                    "baseline",
                    "smoothout",
                    "adasmoothout",
                    "baseline,adasmoothout",
                ])
                .boxed(),
            ),
            flag(
                "--dataset",
                choice(vec!["digits", "mnist", "cifar10", "cifar100"]).boxed(),
            ),
        ),
        (
            flag(
                "--seed",
                prop_oneof![count(), Just("0,1".to_string())].boxed(),
            ),
            flag(
                "--optimizer",
                choice(vec!["sgd", "nesterov", "adam"]).boxed(),
            ),
            flag(
                "--lr-scaling",
                choice(vec!["none", "linear", "sqrt"]).boxed(),
            ),
            flag("--perturb", choice(vec!["weights", "all"]).boxed()),
            prop::sample::subsequence(
                vec![
                    "--exact-denoise",
                    "--no-denoise",
                    "--train-longer",
                    "--no-train-eval",
                ],
                0..3,
            ),
        ),
    )
        .prop_map(
            |((a, b, c, d, e, f, g, h), (i, j, k, l, m, n, o, p), (q, r, s, t, u))| {
                let mut line: Vec<String> =
                    [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t]
                        .into_iter()
                        .flatten()
                        .collect();
                line.extend(u.into_iter().map(String::from));
                line
            },
        )
}

/// A synthetic training set of the dataset's shape and classes.
fn synthetic(image_shape: [usize; 3], classes: usize) -> Dataset {
    let len: usize = image_shape.iter().product();
    let pixels: Vec<u8> = (0..EXAMPLES * len).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..EXAMPLES).map(|i| (i % classes) as u8).collect();
    Dataset::new(pixels, labels, image_shape, classes, 255).unwrap()
}

/// Parses, validates and builds `line`. Panics (the property's failure)
/// on an untyped rejection, a refusal the memory estimate does not
/// predict, or a panic anywhere below. (In a sample of 300 lines, about
/// 120 networks were built, 60 refused as too large for memory and 40 as
/// not countable in 64 bits; the rest were rejected by clap or by the
/// configuration's checks.)
fn check(line: &[String]) {
    let argv = ["smoothout", "train"]
        .into_iter()
        .map(String::from)
        .chain(line.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(_) => return, // clap's typed error, with its message and exit code 2
    };
    let Command::Train(a) = cli.command else {
        panic!("{line:?} parsed as another command")
    };
    if crate::setup::check_threads(a.threads).is_err() {
        assert!(a.threads > smoothout_cpu::max_threads(), "{line:?}");
        return;
    }
    let kind = a.dataset.kind();
    let (shape, classes) = (kind.image_shape(), kind.classes());
    let limit = available_memory().unwrap_or(FALLBACK_MEMORY_LIMIT);
    for seed in a.seeds() {
        for &method in &a.method {
            let cfg = match a.config(method, seed) {
                Ok(c) => c,
                Err(TrainError::Config { .. } | TrainError::Core(_)) => continue,
                Err(e) => panic!("{line:?}: untyped rejection {e:?}"),
            };
            let total = cfg
                .memory(shape, classes, EXAMPLES, 4)
                .and_then(|m| m.total());
            let data = synthetic(shape, classes);
            match total {
                // Too large for this machine, or not even countable: the
                // trainer must refuse before allocating anything.
                None => assert!(
                    matches!(
                        Trainer::new(Reference::<f32>::new(), cfg, &data),
                        Err(TrainError::Memory { needed: None, .. })
                    ),
                    "{line:?}"
                ),
                Some(t) if t > limit => assert!(
                    matches!(
                        Trainer::new(Reference::<f32>::new(), cfg, &data),
                        Err(TrainError::Memory {
                            needed: Some(_),
                            ..
                        })
                    ),
                    "{line:?}"
                ),
                Some(t) if t <= BUILD_LIMIT => {
                    match Trainer::new(Reference::<f32>::new(), cfg, &data) {
                        Ok(_) | Err(TrainError::Config { .. } | TrainError::Core(_)) => {}
                        Err(e) => panic!("{line:?}: {e:?}"),
                    }
                }
                // Fits, but too large to build in a unit test.
                Some(_) => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_command_lines_are_parsed_or_refused_with_typed_errors(line in train_line()) {
        check(&line);
    }
}

#[test]
fn the_sizes_of_issue_11_are_refused_before_allocating() {
    for line in [
        &["--net", "mlp-999999999"][..],
        &["--net", "mlp-18446744073709551615"],
        &["--net", "mlp-4294967296-4294967296"],
        &["--net", "mlp-16", "--batch", "18446744073709551615"],
        &["--threads", "100000"],
    ] {
        let line: Vec<String> = line.iter().map(|s| s.to_string()).collect();
        check(&line);
    }
}
