//! The `smoothout` program's learning-rate options end to end: `--help`
//! explains them, bad input stops before training with the flag's name,
//! `--train-longer` runs (and counts) the stretched epochs, and a resume
//! with other learning-rate options is refused while a whole-epoch regime
//! can be extended.

use crate::support::program::scratch;

use std::path::Path;

use smoothout_models::train::{load_checkpoint, CHECKPOINT_FILE};

/// The run directory `smoothout train` names for these runs.
const RUN: &str = "digits-mlp-16-baseline-seed0";

/// `smoothout train` on the digits (a small baseline run) into `out`:
/// success, stderr.
fn train(out: &Path, extra: &[&str]) -> (bool, String) {
    let o = crate::support::program::train_digits("baseline", "mlp-16")
        .args([
            "--batch",
            "64",
            "--threads",
            "1",
            "--no-train-eval",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .expect("run smoothout");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The lr column of the run's metrics.csv, one entry per epoch.
fn lrs(out: &Path) -> Vec<f64> {
    let csv = std::fs::read_to_string(out.join(RUN).join("metrics.csv")).expect("metrics.csv");
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_help_explains_the_learning_rate_options() {
    let o = crate::support::program::command()
        .args(["train", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for s in [
        "--milestones <LIST>",
        "[default: 0.5,0.75]",
        "--lr-scaling <LR_SCALING>",
        "--warmup <N>",
        "--train-longer",
        "--lr_bb_fix",
        "--regime_bb_fix",
        "linear and sqrt need --ghost",
        "Needs --ghost",
    ] {
        assert!(help.contains(s), "help lacks {s}");
    }
}

#[test]
fn bad_learning_rate_options_stop_before_training() {
    let out = scratch("regime-bad");
    for (extra, want) in [
        (
            &["--milestones", "60,30", "--epochs", "90"][..],
            "invalid --milestones",
        ),
        (
            &["--milestones", "60,30", "--epochs", "90"][..],
            "strictly increasing",
        ),
        (
            &["--milestones", "30,0.5"][..],
            "mixes whole epochs and fractions",
        ),
        (&["--milestones", "NaN"][..], "invalid --milestones"),
        (
            &["--milestones", "30", "--epochs", "30"][..],
            "below the number of epochs",
        ),
        (
            &["--lr-scaling", "sqrt"][..],
            "invalid --lr-scaling: needs --ghost",
        ),
        (
            &["--train-longer"][..],
            "invalid --train-longer: needs --ghost",
        ),
    ] {
        let (ok, err) = train(&out, extra);
        assert!(!ok, "{extra:?} was accepted");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    assert!(!out.exists(), "a refused run left files");
}

/// Two epochs with a drop after the first, in ghost batches of 32,
/// stretched by `--train-longer`.
const LONGER: [&str; 7] = [
    "--epochs",
    "2",
    "--milestones",
    "1",
    "--ghost",
    "32",
    "--train-longer",
];

#[test]
fn train_longer_runs_the_stretched_epochs() {
    // batch 64 in ghost batches of 32: twice the epochs, the drop at base
    // epoch 1 moves to epoch 2
    let out = scratch("regime-longer");
    let (ok, err) = train(&out, &LONGER);
    assert!(ok, "{err}");
    assert_eq!(lrs(&out), [0.1, 0.1, 0.01, 0.01]);
    assert!(err.contains("epoch   4"), "{err}");
    assert!(!err.contains("epoch   5"), "{err}");
    let ckpt = load_checkpoint(&out.join(RUN).join(CHECKPOINT_FILE)).unwrap();
    let steps_per_epoch = (1797 - 360u64).div_ceil(64);
    assert_eq!(ckpt.meta("step"), Some(&*(4 * steps_per_epoch).to_string()));
    // the checkpoint records the stretched regime
    let fp = ckpt.meta("fingerprint").unwrap();
    assert!(
        fp.contains("(2, 0.01)") && fp.contains("epoch_multiplier: 2"),
        "{fp}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn resume_with_other_learning_rate_options_is_refused() {
    let out = scratch("regime-resume");
    let (ok, err) = train(&out, &["--epochs", "2", "--milestones", "1"]);
    assert!(ok, "{err}");
    assert_eq!(lrs(&out), [0.1, 0.01]);
    for other in [
        &["--epochs", "2", "--milestones", "1", "--warmup", "5"][..],
        &LONGER[..],
        &["--epochs", "2", "--milestones", "1", "--lr", "0.2"][..],
        // fractions move with --epochs: 3 epochs at 0.5,0.75 is another regime
        &["--epochs", "3", "--resume"][..],
    ] {
        let mut args = other.to_vec();
        if !args.contains(&"--resume") {
            args.push("--resume");
        }
        let (ok, err) = train(&out, &args);
        assert!(!ok, "{other:?} was resumed");
        assert!(err.contains("another configuration"), "{other:?}: {err}");
    }
    // whole-epoch milestones do not move: the run is extended
    let (ok, err) = train(&out, &["--epochs", "3", "--milestones", "1", "--resume"]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming from"), "{err}");
    assert_eq!(lrs(&out), [0.1, 0.01, 0.01]);
    let _ = std::fs::remove_dir_all(out);
}
