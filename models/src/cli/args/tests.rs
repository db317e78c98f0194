//! `smoothout train`'s learning-rate options: the defaults give today's
//! regime, each option the regime it documents, and bad input a typed
//! `TrainError::Config` naming the flag and the rule.

use clap::Parser;
use smoothout_models::optim::{LrRegime, LrScaling};
use smoothout_models::train::{TrainConfig, TrainError};

use super::{Cli, Command, MethodArg, TrainArgs};

fn args(extra: &[&str]) -> TrainArgs {
    let cli = Cli::try_parse_from(["smoothout", "train"].iter().chain(extra))
        .unwrap_or_else(|e| panic!("{extra:?}: {e}"));
    match cli.command {
        Command::Train(a) => *a,
        other => panic!("not train: {other:?}"),
    }
}

fn config(extra: &[&str]) -> TrainConfig {
    args(extra)
        .config(MethodArg::Adasmoothout, 0)
        .unwrap_or_else(|e| panic!("{extra:?}: {e}"))
}

/// The regime of `extra`.
fn regime(extra: &[&str]) -> LrRegime {
    config(extra).regime
}

/// `extra` is refused as `setting`, with a reason that contains `rule`.
fn refused(extra: &[&str], setting: &str, rule: &str) {
    match args(extra).config(MethodArg::Baseline, 0) {
        Err(TrainError::Config { setting: s, reason }) => {
            assert_eq!(s, setting, "{extra:?}: {reason}");
            assert!(
                reason.contains(rule),
                "{extra:?}: `{reason}` lacks `{rule}`"
            );
        }
        other => panic!("{extra:?}: expected Config({setting}), got {other:?}"),
    }
}

#[test]
fn the_defaults_give_todays_regime() {
    // the dataset defaults: digits 100 epochs at batch 512, else 10 at 256
    for (extra, epochs) in [
        (&[][..], 100),
        (&["--dataset", "mnist"][..], 10),
        (&["--dataset", "cifar10"][..], 10),
    ] {
        let c = config(extra);
        assert_eq!(c.regime, LrRegime::decay(0.1, epochs).unwrap(), "{extra:?}");
        assert_eq!((c.epochs, c.total_epochs().unwrap()), (epochs, epochs));
    }
    for epochs in [1u64, 2, 3, 4, 5, 7, 10, 11, 30, 99, 200, 1001] {
        for lr in [0.1, 0.05, 0.3, 1e-3] {
            let e = epochs.to_string();
            let l = lr.to_string();
            let c = config(&["--epochs", &e, "--lr", &l, "--ghost", "8"]);
            assert_eq!(
                c.regime,
                LrRegime::decay(lr, epochs).unwrap(),
                "{epochs} epochs, lr {lr}"
            );
            // and so the same fingerprint, which checkpoints compare
            let mut today = c.clone();
            today.regime = LrRegime::decay(lr, epochs).unwrap();
            assert_eq!(c.fingerprint(), today.fingerprint());
        }
    }
    // spelling the default out changes nothing
    assert_eq!(
        config(&[
            "--milestones",
            "0.5,0.75",
            "--lr-scaling",
            "none",
            "--warmup",
            "0"
        ]),
        config(&[])
    );
}

#[test]
fn milestones_in_epochs_and_fractions() {
    let r = regime(&["--epochs", "90", "--milestones", "30,60"]);
    assert_eq!(
        r,
        LrRegime::steps(&[(0, 0.1), (30, 0.01), (60, 0.001)]).unwrap()
    );
    let r = regime(&["--epochs", "200", "--milestones", "81,122,164"]);
    assert_eq!(r.points()[3], (164, 0.1 / 1000.0));
    let r = regime(&[
        "--epochs",
        "8",
        "--milestones",
        "0.25, 0.5,0.75",
        "--lr",
        "1",
    ]);
    assert_eq!(
        r,
        LrRegime::steps(&[(0, 1.0), (2, 0.1), (4, 0.01), (6, 0.001)]).unwrap()
    );
    // exact decimals: 0.29 of 100 epochs is epoch 29 (0.29 * 100.0 < 29 in f64)
    let r = regime(&["--epochs", "100", "--milestones", "0.29"]);
    assert_eq!(r.points(), [(0, 0.1), (29, 0.01)]);
    // `.5` is a fraction too; fractions that meet count once
    assert_eq!(
        regime(&["--epochs", "3", "--milestones", ".5,0.6"]).points(),
        [(0, 0.1), (1, 0.01)]
    );
    // one epoch: nothing to drop
    assert_eq!(
        regime(&["--epochs", "1", "--milestones", "0.1,0.9"]).points(),
        [(0, 0.1)]
    );
}

#[test]
fn lr_scaling_uses_the_ghost_size() {
    let base = LrRegime::decay(0.1, 10).unwrap();
    let on = |scaling| {
        regime(&[
            "--epochs",
            "10",
            "--batch",
            "2048",
            "--ghost",
            "128",
            "--lr-scaling",
            scaling,
        ])
    };
    assert_eq!(on("none"), base);
    assert_eq!(
        on("sqrt"),
        base.clone().scaled(LrScaling::Sqrt, 2048, 128).unwrap()
    );
    assert_eq!(on("sqrt").lr(0, 0).unwrap(), 0.1 * 4.0);
    assert_eq!(on("linear").lr(0, 0).unwrap(), 0.1 * 16.0);
    assert_eq!(on("linear").points()[2], (7, 0.001 * 16.0));
    // a ghost larger than the batch is refused, not scaled down
    refused(
        &["--batch", "64", "--ghost", "256", "--lr-scaling", "sqrt"],
        "--ghost",
        "at most 64",
    );
}

#[test]
fn warmup_is_in_steps() {
    let r = regime(&["--epochs", "10", "--warmup", "4"]);
    assert_eq!(r, LrRegime::decay(0.1, 10).unwrap().with_warmup(4));
    assert_eq!(r.lr(0, 0).unwrap(), 0.1 / 4.0);
    assert_eq!(r.lr(0, 3).unwrap(), 0.1);
}

#[test]
fn train_longer_stretches_epochs_and_milestones() {
    // ⌈1000 / 128⌉ = 8
    let c = config(&[
        "--epochs",
        "10",
        "--batch",
        "1000",
        "--ghost",
        "128",
        "--train-longer",
    ]);
    assert_eq!(c.regime.epoch_multiplier(), 8);
    assert_eq!(c.regime.points(), [(0, 0.1), (40, 0.01), (56, 0.001)]);
    assert_eq!((c.epochs, c.total_epochs().unwrap()), (10, 80));
    let c = config(&[
        "--epochs",
        "90",
        "--milestones",
        "30,60",
        "--batch",
        "512",
        "--ghost",
        "128",
        "--train-longer",
        "--lr-scaling",
        "sqrt",
        "--warmup",
        "50",
    ]);
    let want = LrRegime::steps(&[(0, 0.1), (30, 0.01), (60, 0.001)])
        .unwrap()
        .scaled(LrScaling::Sqrt, 512, 128)
        .unwrap()
        .train_longer(LrRegime::batch_multiplier(512, 128).unwrap())
        .unwrap()
        .with_warmup(50);
    assert_eq!(c.regime, want);
    assert_eq!(c.regime.points()[1], (120, 0.01 * 2.0));
    assert_eq!(c.total_epochs().unwrap(), 360);
}

#[test]
fn bad_milestones_are_refused_naming_the_rule() {
    let m = "--milestones";
    for (list, rule) in [
        ("60,30", "strictly increasing"),
        ("30,30", "strictly increasing"),
        ("0.75,0.5", "strictly increasing"),
        ("0.5,0.50", "strictly increasing"),
        ("0", "below the number of epochs"),
        ("30,90", "below the number of epochs"),
        ("0.0", "strictly between 0 and 1"),
        ("1.0", "strictly between 0 and 1"),
        ("0.5,1.5", "strictly between 0 and 1"),
        ("30,0.5", "mixes whole epochs and fractions"),
        ("NaN", "neither a whole epoch"),
        ("inf", "neither a whole epoch"),
        ("-0.5", "neither a whole epoch"),
        ("1e-1", "neither a whole epoch"),
        ("+30", "neither a whole epoch"),
        ("5.", "neither a whole epoch"),
        ("thirty", "neither a whole epoch"),
        ("99999999999999999999", "neither a whole epoch"),
        ("0.1234567890123456789", "neither a whole epoch"),
        ("", "empty item"),
        ("30,,60", "empty item"),
    ] {
        refused(&["--epochs", "90", m, list], m, rule);
    }
    // the message says what --epochs is
    refused(&["--epochs", "50", m, "30,60"], m, "--epochs is 50");
}

#[test]
fn scaling_and_train_longer_need_a_ghost_size() {
    refused(&["--lr-scaling", "sqrt"], "--lr-scaling", "needs --ghost");
    refused(&["--lr-scaling", "linear"], "--lr-scaling", "needs --ghost");
    refused(&["--train-longer"], "--train-longer", "needs --ghost");
    refused(&["--train-longer", "--ghost", "0"], "--ghost", "at least 1");
    refused(
        &["--lr-scaling", "sqrt", "--ghost", "4", "--batch", "0"],
        "--batch",
        "at least 1",
    );
    refused(
        &["--epochs", "0", "--milestones", "1"],
        "--epochs",
        "at least 1",
    );
    // a rate that overflows once scaled, a stretch that overflows
    refused(
        &[
            "--lr",
            "1e308",
            "--lr-scaling",
            "linear",
            "--batch",
            "64",
            "--ghost",
            "1",
        ],
        "--lr-scaling",
        "finite",
    );
    refused(
        &[
            "--epochs",
            "9223372036854775807",
            "--batch",
            "4",
            "--ghost",
            "1",
            "--train-longer",
        ],
        "--train-longer",
        "small enough",
    );
    // the rate is still checked first, as --lr
    refused(&["--lr", "NaN", "--milestones", "x"], "--lr", "finite");
    // --warmup takes a step count: clap refuses the rest before config()
    for bad in ["-1", "0.5", "x"] {
        assert!(Cli::try_parse_from(["smoothout", "train", "--warmup", bad]).is_err());
    }
    assert!(Cli::try_parse_from(["smoothout", "train", "--lr-scaling", "cube"]).is_err());
}

/// `--lr 0` trains nothing: refused like a negative rate, with the same
/// words; the library's regimes still take 0, and the default regime (and
/// so the checkpoints' fingerprint) is today's.
#[test]
fn the_learning_rate_must_be_positive() {
    let reason = |lr: &str| match args(&[&format!("--lr={lr}")]).config(MethodArg::Baseline, 0) {
        Err(TrainError::Config {
            setting: "--lr",
            reason,
        }) => reason,
        other => panic!("--lr {lr}: expected Config(--lr), got {other:?}"),
    };
    assert_eq!(
        reason("0"),
        "0 is not a finite value > 0 (a rate of 0 trains nothing)"
    );
    for lr in ["-0", "-0.1", "-1e308", "NaN", "inf", "-inf", "5e-324"] {
        let r = reason(lr);
        if lr == "5e-324" {
            // positive, but its milestones ÷10 round to 0
            assert!(r.contains("from epoch 50"), "{lr}: {r}");
        }
        assert!(r.contains("is not a finite value > 0"), "{lr}: {r}");
    }
    // the text is the same for 0 and a negative rate, the value aside
    assert_eq!(
        reason("0").replacen('0', "", 1),
        reason("-1").replacen("-1", "", 1)
    );
    // the library keeps 0 as a rate (a frozen step), but no run trains at it
    let mut c = config(&[]);
    c.regime = LrRegime::constant(0.0).unwrap();
    assert!(matches!(
        c.validate(),
        Err(TrainError::Config {
            setting: "--lr",
            ..
        })
    ));
    assert_eq!(config(&[]).regime, LrRegime::decay(0.1, 100).unwrap());
}

/// A ghost batch larger than the batch, and any ghost chunk of one
/// example for a network with BatchNorm over features, are refused naming
/// the rule; uneven chunks are allowed (and documented in `--help`).
#[test]
fn ghost_chunks_follow_the_documented_rules() {
    refused(
        &["--batch", "64", "--ghost", "65"],
        "--ghost",
        "larger than --batch 64",
    );
    refused(&["--ghost", "1"], "--ghost", "chunks of 1 example");
    refused(&["--ghost", "1"], "--ghost", "the variance is zero");
    refused(&["--batch", "1"], "--batch", "batches of 1 example");
    refused(
        &["--batch", "65", "--ghost", "16"],
        "--ghost",
        "--batch 65 in chunks of 16 leaves a last chunk of 1 example",
    );
    refused(
        &[
            "--net",
            "f1",
            "--dataset",
            "mnist",
            "--batch",
            "33",
            "--ghost",
            "2",
        ],
        "--ghost",
        "f1 normalises each feature",
    );
    // uneven chunks: 64 in 24, 24 and 16
    assert_eq!(config(&["--batch", "64", "--ghost", "24"]).chunk(), 24);
    // the ResNets' BatchNorms also average over pixels: one example is fine
    let c = config(&[
        "--dataset",
        "cifar10",
        "--net",
        "resnet44",
        "--batch",
        "8",
        "--ghost",
        "1",
    ]);
    assert_eq!(c.chunk(), 1);
    // `--help` says what happens to uneven chunks and one-example chunks
    let help = {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.find_subcommand_mut("train")
            .unwrap()
            .render_long_help()
            .to_string()
    };
    let ghost = help.split("--ghost <GHOST>").nth(1).unwrap();
    let ghost = &ghost[..ghost.find("\n\n").unwrap()];
    for words in ["at most --batch", "last chunk", "is shorter", "chunk of 1"] {
        assert!(
            ghost.contains(words),
            "--ghost help lacks `{words}`: {ghost}"
        );
    }
}

/// Bernoulli noise without `--exact-denoise` names the flag, not the
/// library's type.
#[test]
fn bernoulli_noise_names_the_exact_denoise_flag() {
    for method in [MethodArg::Smoothout, MethodArg::Adasmoothout] {
        match args(&["--noise", "bernoulli", "--a", "0.1"]).config(method, 0) {
            Err(TrainError::Config {
                setting: "--noise",
                reason,
            }) => {
                assert!(reason.contains("add --exact-denoise"), "{reason}");
                assert!(reason.starts_with("bernoulli noise"), "{reason}");
                assert!(!reason.contains("Denoise::"), "{reason}");
            }
            other => panic!("{method:?}: expected Config(--noise), got {other:?}"),
        }
        let ok = |extra: &[&str]| {
            let a = args(&[&["--noise", "bernoulli", "--a", "0.1"][..], extra].concat());
            a.config(method, 0)
                .map(|_| ())
                .unwrap_or_else(|e| panic!("{e}"));
        };
        ok(&["--exact-denoise"]);
        ok(&["--no-denoise"]);
    }
    // the baseline draws no noise, so it needs no de-noising
    assert!(args(&["--noise", "bernoulli"])
        .config(MethodArg::Baseline, 0)
        .is_ok());
}

#[test]
fn each_method_reads_its_own_strength_flag() {
    use smoothout_models::train::{Method, NoiseKind};
    let of = |extra: &[&str], m: MethodArg| args(extra).config(m, 0).unwrap();
    // the defaults
    for (m, a) in [
        (MethodArg::Smoothout, 0.0375),
        (MethodArg::Adasmoothout, 0.15),
        (MethodArg::Sam, 0.05),
        (MethodArg::Asam, 0.5),
        (MethodArg::Rwp, 0.01),
        (MethodArg::Mrwp, 0.01),
    ] {
        let c = of(&[], m);
        assert_eq!((c.method, c.a), (m.method(), a), "{m:?}");
    }
    let flags = [
        "--a", "0.02", "--rho", "0.1", "--gamma", "0.03", "--eta", "0.2",
    ];
    let flags = [&flags[..], &["--beta", "0.7"]].concat();
    assert_eq!(of(&flags, MethodArg::Smoothout).a, 0.02);
    assert_eq!(of(&flags, MethodArg::Sam).a, 0.1);
    let asam = of(&flags, MethodArg::Asam);
    assert_eq!((asam.a, asam.eta), (0.1, 0.2));
    let mrwp = of(&flags, MethodArg::Mrwp);
    assert_eq!(
        (mrwp.method, mrwp.a, mrwp.beta),
        (Method::MixedRwp, 0.03, 0.7)
    );
    assert_eq!(mrwp.noise, NoiseKind::Gaussian);
    // RWP draws Gaussian noise and says so when asked for another
    match args(&["--noise", "uniform"]).config(MethodArg::Rwp, 0) {
        Err(TrainError::Config { setting, .. }) => assert_eq!(setting, "--noise"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_method_flag_without_its_method_is_refused() {
    let refused = |extra: &[&str], flag: &str| match args(extra).check_method_flags() {
        Err(TrainError::Config { setting, reason }) => {
            assert_eq!(setting, flag, "{reason}");
            assert!(reason.contains("--method"), "{reason}");
        }
        other => panic!("{extra:?}: {other:?}"),
    };
    refused(&["--rho", "0.1"], "--rho");
    refused(&["--method", "sam", "--eta", "0.1"], "--eta");
    refused(&["--method", "sam", "--gamma", "0.1"], "--gamma");
    refused(&["--method", "rwp", "--beta", "0.1"], "--beta");
    let fine = [
        "--method",
        "asam,mrwp",
        "--rho",
        "1",
        "--eta",
        "0",
        "--gamma",
        "0.1",
        "--beta",
        "0",
    ];
    assert!(args(&fine).check_method_flags().is_ok());
}
