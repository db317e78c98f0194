//! The `smoothout` program's errors fit the command that printed them: a
//! batch size that leaves a one-example chunk is refused before anything
//! trains, naming the sizes; `eval` of a bad checkpoint names the file and
//! says what `eval` can do, not what `train --resume` can.

use crate::support::program::{scratch, smoothout, SMALL};

use std::path::{Path, PathBuf};

use smoothout_models::train::{load_checkpoint, save_checkpoint, TensorData, CHECKPOINT_FILE};

/// `train --method baseline` of [`SMALL`], without the training-set
/// evaluation.
fn tiny() -> Vec<&'static str> {
    [
        &["train", "--method", "baseline"][..],
        &SMALL,
        &["--no-train-eval"],
    ]
    .concat()
}

/// The built-in digits hold 1 437 training images: batches of 4 leave one
/// image for the last batch of each epoch, and batches of 64 in ghost
/// chunks of 28 leave a last batch of 29, i.e. chunks of 28 and 1. A
/// one-example chunk has zero variance under BatchNorm over features, so
/// both are refused before any run trains, naming the sizes and a batch
/// size that works.
#[test]
fn a_last_batch_with_a_one_example_chunk_is_refused_before_training() {
    for (extra, words) in [
        (
            &["--batch", "4"][..],
            &[
                "invalid --batch",
                "1437 training examples in batches of 4 leave a last batch of 1 each epoch",
                "the variance is zero",
                "e.g. --batch 5",
            ][..],
        ),
        (
            &["--batch", "64", "--ghost", "28"][..],
            &[
                "invalid --batch",
                "leave a last batch of 29 each epoch, cut into chunks of 28 (--ghost) ending in one of 1",
                "e.g. --batch 65",
            ][..],
        ),
    ] {
        let out = scratch("program-errors-last-batch");
        let (ok, _, err) = smoothout(&[&tiny()[..], extra, &["--out", out.to_str().unwrap()]].concat());
        assert!(!ok, "{extra:?} was accepted");
        for w in words {
            assert!(err.contains(w), "{extra:?}: `{err}` lacks `{w}`");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !out.join("digits-mlp-16-baseline-seed0").join(CHECKPOINT_FILE).exists(),
            "{extra:?}: a run trained before the refusal"
        );
        let _ = std::fs::remove_dir_all(out);
    }
    // the batch size the message suggests trains
    let out = scratch("program-errors-last-batch-ok");
    let (ok, _, err) = smoothout(
        &[
            &tiny()[..],
            &["--batch", "5", "--out", out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(out);
}

/// A copy of `ckpt` at `dir/name`, changed by `edit`.
fn edited(
    ckpt: &Path,
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut smoothout_models::train::Checkpoint),
) -> PathBuf {
    let mut c = load_checkpoint(ckpt).unwrap();
    edit(&mut c);
    let path = dir.join(name);
    save_checkpoint(&path, &c).unwrap();
    path
}

/// `eval` of a checkpoint with bad metadata or statistics says that the
/// checkpoint file (named) is at fault and what `eval` can do about it;
/// nothing about `--resume` or `--out`, which `eval` does not have. `train
/// --resume` of the same file keeps its own advice.
#[test]
fn eval_errors_name_the_checkpoint_and_fit_eval() {
    let out = scratch("program-errors-eval");
    let (ok, _, err) = smoothout(&[&tiny()[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    let run = out.join("digits-mlp-16-baseline-seed0");
    let ckpt = run.join(CHECKPOINT_FILE);
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            edited(&ckpt, &out, "classes0.safetensors", |c| {
                c.metadata.insert("classes".into(), "0".into());
            }),
            "metadata `classes` is 0",
        ),
        (
            edited(&ckpt, &out, "std0.safetensors", |c| {
                for (name, _, data) in &mut c.tensors {
                    if name == "normalize.std" {
                        *data = TensorData::F32(vec![0.0; data.len()]);
                    }
                }
            }),
            "tensors `normalize.mean`/`normalize.std`: std = 0 is invalid",
        ),
        (
            edited(&ckpt, &out, "net.safetensors", |c| {
                c.metadata.insert("network".into(), "vgg".into());
            }),
            "metadata `network` = `vgg` is not a network",
        ),
        (
            edited(&ckpt, &out, "shape.safetensors", |c| {
                c.metadata.insert("image_shape".into(), "[1, 0, 8]".into());
            }),
            // (caught by the parameter count the metadata implies, before
            // any network is built)
            "its metadata (network = mlp-16, image_shape = [1, 0, 8], classes = 10) describes",
        ),
        (
            edited(&ckpt, &out, "format.safetensors", |c| {
                c.metadata.insert("format".into(), "other".into());
            }),
            "format is not smoothout-checkpoint-1",
        ),
    ];
    for (path, what) in &cases {
        let (ok, said, err) = smoothout(&["eval", path.to_str().unwrap()]);
        assert!(!ok, "{} was evaluated: {said}", path.display());
        let want = format!("error: checkpoint {}: {what}", path.display());
        assert!(err.starts_with(&want), "`{err}` does not start `{want}`");
        assert!(err.contains("evaluate another run's checkpoint"), "{err}");
        for not in ["--resume", "--out", "invalid --net", "panicked"] {
            assert!(!err.contains(not), "eval's error mentions `{not}`: {err}");
        }
    }
    // the same damage met by `train --resume`: train's advice
    std::fs::copy(&cases[4].0, &ckpt).unwrap();
    let (ok, _, err) =
        smoothout(&[&tiny()[..], &["--out", out.to_str().unwrap(), "--resume"]].concat());
    assert!(!ok);
    assert!(
        err.contains("format is not smoothout-checkpoint-1 (start afresh without --resume"),
        "{err}"
    );
    assert!(!err.contains("evaluate another run"), "{err}");
    let _ = std::fs::remove_dir_all(out);
}
