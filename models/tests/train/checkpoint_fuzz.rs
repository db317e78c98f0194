//! Damaged checkpoints. Random bit flips anywhere in a real checkpoint
//! (header and data) and cuts at random points are each refused with an
//! error that names the problem — never a panic, never a checkpoint loaded
//! with other contents — by the library (`load_checkpoint`, then
//! `network_from_checkpoint` and `Trainer::restore`) and by the `smoothout`
//! program (`eval`, `train --resume`). And what the checksums cannot catch
//! is reported as what it is: NaN or infinite values stored in the file, a
//! test loss that is not finite, a file without checksums, a file that
//! cannot be read.

use std::collections::BTreeSet;
use std::fs;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::checkpoint::{layout, same_checkpoint};
use crate::support::files::Scratch;
use rand_core::RngCore;
use smoothout::Reference;
use smoothout_models::data::{seeded_rng, Dataset, Split};
use smoothout_models::train::{
    load_checkpoint, load_checkpoint_with, network_from_checkpoint, save_checkpoint, Checkpoint,
    LoadOptions, Method, Network, TensorData, TrainConfig, TrainError, Trainer, CHECKPOINT_FILE,
};

/// A fresh directory `smoothout-ckpt-fuzz-<pid>-<tag>-<n>`, removed on drop.
fn scratch(tag: &str) -> Scratch {
    Scratch::new("smoothout-ckpt-fuzz", tag)
}

/// The program's split of the built-in digits (360 test images).
fn digits() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| {
        Dataset::digits_embedded()
            .shuffled_split(360, 0)
            .expect("the embedded digits split")
    })
}

/// The run every test saves: small, with BatchNorm statistics and
/// momentum buffers, one epoch and a few steps in (so the metadata holds a
/// history).
fn config() -> TrainConfig {
    TrainConfig::new(Method::AdaSmoothOut, Network::Mlp(vec![16]))
        .with_batch(128)
        .with_epochs(2)
        .with_seed(3)
}

/// A real checkpoint: its state in memory and the bytes `Trainer::save`
/// wrote (made once per process).
fn real() -> &'static (Checkpoint, Vec<u8>) {
    static REAL: OnceLock<(Checkpoint, Vec<u8>)> = OnceLock::new();
    REAL.get_or_init(|| {
        let data = digits();
        let mut t = Trainer::new(Reference::<f32>::new(), config(), &data.train).unwrap();
        t.annotate("dataset", "digits");
        let steps = t.steps_per_epoch() + 3;
        t.run_until(steps, data, None, &mut |_| {}).unwrap();
        let dir = scratch("real");
        let path = dir.path(CHECKPOINT_FILE);
        t.save(&path).unwrap();
        (t.checkpoint().unwrap(), fs::read(&path).unwrap())
    })
}

/// One damaged file.
struct Case {
    /// What was done, for messages.
    what: String,
    bytes: Vec<u8>,
    /// The tensors whose data were changed, when nothing else was.
    data_only: Option<Vec<String>>,
    /// Only cut short.
    cut_only: bool,
}

/// `n` distinct bit positions in `range` (of bits).
fn positions(rng: &mut impl RngCore, range: Range<usize>, n: usize) -> BTreeSet<usize> {
    let mut set = BTreeSet::new();
    while set.len() < n.min(range.len()) {
        set.insert(range.start + (rng.next_u64() % range.len() as u64) as usize);
    }
    set
}

fn flip(bytes: &[u8], bits: &BTreeSet<usize>) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &bit in bits {
        b[bit / 8] ^= 1 << (bit % 8);
    }
    b
}

/// The damaged files: seeded, so every run checks the same ones.
fn cases(bytes: &[u8]) -> Vec<Case> {
    let (data_start, tensors) = layout(bytes);
    let len = bytes.len();
    let mut rng = seeded_rng(0xc0ff_ee11);
    let mut out = Vec::new();
    let tensors_hit = |bits: &BTreeSet<usize>| -> Option<Vec<String>> {
        bits.iter()
            .map(|&bit| {
                tensors
                    .iter()
                    .find(|(_, r)| r.contains(&(bit / 8)))
                    .map(|(n, _)| n.clone())
            })
            .collect()
    };
    // (label, bits of the file, most bits per case, cases)
    let kinds = [
        ("one bit anywhere", 0..8 * len, 1, 120),
        ("bits in the header", 0..8 * data_start, 3, 100),
        ("bits in the length prefix", 0..64, 2, 10),
        ("bits in the data", 8 * data_start..8 * len, 3, 60),
    ];
    for (label, range, most, count) in kinds {
        for _ in 0..count {
            let n = 1 + (rng.next_u64() % most) as usize;
            let bits = positions(&mut rng, range.clone(), n);
            out.push(Case {
                what: format!("{label}: bits {bits:?}"),
                bytes: flip(bytes, &bits),
                data_only: tensors_hit(&bits),
                cut_only: false,
            });
        }
    }
    let cut = |at: usize| Case {
        what: format!("cut at {at} of {len}"),
        bytes: bytes[..at].to_vec(),
        data_only: None,
        cut_only: true,
    };
    for _ in 0..80 {
        out.push(cut((rng.next_u64() % len as u64) as usize));
    }
    // The edges: inside the length prefix, around the header's end, at
    // every tensor's boundary, one byte short.
    let mut edges: BTreeSet<usize> = (0..=8).collect();
    edges.extend([data_start - 1, data_start, data_start + 1, len - 1]);
    edges.extend(tensors.iter().map(|(_, r)| r.start).filter(|&s| s < len));
    for at in edges {
        out.push(cut(at));
    }
    for _ in 0..30 {
        let n = 1 + (rng.next_u64() % 2) as usize;
        let bits = positions(&mut rng, 0..8 * len, n);
        let at = (rng.next_u64() % len as u64) as usize;
        let mut b = flip(bytes, &bits);
        b.truncate(at);
        out.push(Case {
            what: format!("bits {bits:?}, then cut at {at} of {len}"),
            bytes: b,
            data_only: None,
            cut_only: false,
        });
    }
    for _ in 0..10 {
        let extra = 1 + (rng.next_u64() % 16) as usize;
        let mut b = bytes.to_vec();
        b.extend((0..extra).map(|_| rng.next_u64() as u8));
        out.push(Case {
            what: format!("{extra} bytes appended"),
            bytes: b,
            data_only: None,
            cut_only: false,
        });
    }
    out
}

/// What the library makes of the file at `path`: the checkpoint, after it
/// went through every loader the program uses.
fn pipeline(path: &Path, options: LoadOptions) -> Result<Checkpoint, TrainError> {
    let c = load_checkpoint_with(path, options)?;
    network_from_checkpoint(&Reference::<f32>::new(), &c, path)?;
    let mut t = Trainer::new(Reference::<f32>::new(), config(), &digits().train)?;
    t.restore(&c, path)?;
    Ok(c)
}

/// The reason of `e` when it is a checkpoint error that names `path`.
fn reason_of(e: &TrainError, path: &Path) -> Result<String, String> {
    match e {
        TrainError::Checkpoint { path: p, reason } if p == path && !reason.trim().is_empty() => {
            assert!(e.to_string().contains(&path.display().to_string()));
            Ok(reason.clone())
        }
        other => Err(format!("not a checkpoint error naming the file: {other:?}")),
    }
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_problem() {
    let (state, bytes) = real();
    let dir = scratch("lib");
    let path = dir.path(CHECKPOINT_FILE);
    // The intact file goes through.
    fs::write(&path, bytes).unwrap();
    let intact = pipeline(&path, LoadOptions::default()).unwrap();
    assert!(same_checkpoint(&intact, state));

    let cases = cases(bytes);
    assert!(cases.len() >= 400, "{}", cases.len());
    let mut failures = Vec::new();
    let mut identical = 0;
    for case in &cases {
        fs::write(&path, &case.bytes).unwrap();
        for options in [
            LoadOptions::default(),
            LoadOptions {
                accept_unchecked: true,
            },
        ] {
            let outcome = catch_unwind(AssertUnwindSafe(|| pipeline(&path, options)));
            let problem = match outcome {
                Err(_) => Some("panicked".to_string()),
                // Some changes leave the contents as they were (none are
                // expected here, but they would not be garbage).
                Ok(Ok(c)) if same_checkpoint(&c, state) => {
                    identical += 1;
                    None
                }
                Ok(Ok(_)) => Some("loaded with other contents".to_string()),
                Ok(Err(e)) => match reason_of(&e, &path) {
                    Err(why) => Some(why),
                    Ok(reason) => {
                        let named = match (&case.data_only, case.cut_only) {
                            (Some(names), _) => {
                                reason.contains("checksum")
                                    && names
                                        .iter()
                                        .any(|n| reason.contains(&format!("tensor '{n}'")))
                            }
                            (None, true) => {
                                reason.contains("truncated")
                                    || reason.contains("fewer than the 8-byte")
                            }
                            (None, false) => true,
                        };
                        (!named).then(|| format!("the reason does not name the problem: {reason}"))
                    }
                },
            };
            if let Some(p) = problem {
                failures.push(format!("{} ({options:?}): {p}", case.what));
            }
        }
    }
    eprintln!(
        "{} damaged files, {} loads with the contents unchanged",
        cases.len(),
        identical
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn smoothout() -> Command {
    crate::support::program::command()
}

/// `smoothout eval <path>` (the dataset from the checkpoint's note).
fn eval(path: &Path, extra: &[&str]) -> Output {
    smoothout()
        .arg("eval")
        .arg(path)
        .args(["--threads", "1"])
        .args(extra)
        .output()
        .expect("run smoothout eval")
}

/// The run directory name `train` gives the arguments of [`train`].
const RUN: &str = "digits-mlp-16-adasmoothout-seed0";

/// `smoothout train` of a small run of `epochs` epochs into `out`, with
/// `extra` arguments.
fn train(out: &Path, epochs: u64, extra: &[&str]) -> Output {
    crate::support::program::train_digits("adasmoothout", "mlp-16")
        .args([
            "--batch",
            "128",
            "--milestones",
            "1",
            "--threads",
            "1",
            "--out",
        ])
        .arg(out)
        .args(["--epochs", &epochs.to_string()])
        .args(extra)
        .output()
        .expect("run smoothout train")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The program failed cleanly: a non-zero status, an `error:` line that
/// contains every one of `wanted`, no panic.
fn assert_refused(out: &Output, wanted: &[&str]) -> String {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("error:"), "{err}");
    for w in wanted {
        assert!(err.contains(w), "`{w}` missing from: {err}");
    }
    err
}

#[test]
fn the_program_refuses_damaged_checkpoints() {
    let (_, bytes) = real();
    let (data_start, tensors) = layout(bytes);
    let (first, range) = &tensors[0];
    let mut data_flip = bytes.clone();
    data_flip[range.start + 1] ^= 0x10;
    let mut header_flip = bytes.clone();
    header_flip[data_start / 2] ^= 0x04;
    let mut prefix_flip = bytes.clone();
    prefix_flip[2] ^= 0x01;
    let wanted = format!("tensor '{first}'");
    let files: [(&str, Vec<u8>, &[&str]); 6] = [
        ("a bit of data", data_flip, &[&wanted, "checksum"]),
        ("a bit of the header", header_flip, &[]),
        ("a bit of the length", prefix_flip, &[]),
        (
            "cut in the header",
            bytes[..data_start - 3].to_vec(),
            &["truncated"],
        ),
        (
            "cut in the data",
            bytes[..bytes.len() - 5].to_vec(),
            &["truncated"],
        ),
        ("empty", Vec::new(), &["fewer than the 8-byte"]),
    ];
    let dir = scratch("program");
    for (what, damaged, wanted) in &files {
        let path = dir.path(&format!("{}.safetensors", what.replace(' ', "-")));
        fs::write(&path, damaged).unwrap();
        let out = eval(&path, &[]);
        let err = assert_refused(&out, wanted);
        assert!(err.contains(&path.display().to_string()), "{what}: {err}");
        assert!(!text(&out.stdout).contains("test accuracy"), "{what}");
    }
    // `train --resume` refuses them too, and leaves the file as it was.
    for (what, damaged, wanted) in &files[..2] {
        let out_dir = dir.path(&format!("runs-{}", what.replace(' ', "-")));
        let ckpt = out_dir.join(RUN).join(CHECKPOINT_FILE);
        fs::create_dir_all(ckpt.parent().unwrap()).unwrap();
        fs::write(&ckpt, damaged).unwrap();
        let err = assert_refused(&train(&out_dir, 2, &["--resume"]), wanted);
        assert!(!err.contains("training loss"), "{what}: {err}");
        assert_eq!(&fs::read(&ckpt).unwrap(), damaged, "{what}");
    }
}

/// `state` with `edit` applied, saved (with checksums that fit) to `path`.
fn save_edited(path: &Path, edit: impl FnOnce(&mut Checkpoint)) {
    let mut c = real().0.clone();
    edit(&mut c);
    save_checkpoint(path, &c).unwrap();
}

/// Sets element `at` of tensor `name` to `value`.
fn set(c: &mut Checkpoint, name: &str, at: usize, value: f64) {
    let t = c.tensors.iter_mut().find(|t| t.0 == name).expect(name);
    match &mut t.2 {
        TensorData::F32(v) => v[at] = value as f32,
        TensorData::F64(v) => v[at] = value,
    }
}

#[test]
fn non_finite_values_in_the_file_are_named() {
    let dir = scratch("nonfinite");
    let data = digits();
    let cases: [(&str, usize, f64, &str); 4] = [
        ("param.fc1.weight", 5, f64::NAN, "NaN at element 5 of 1024"),
        (
            "buffer.bn1.running_var",
            0,
            f64::INFINITY,
            "inf at element 0 of 16",
        ),
        ("optim.0", 7, f64::NEG_INFINITY, "-inf at element 7"),
        ("normalize.std", 0, f64::NAN, "NaN at element 0"),
    ];
    for (name, at, value, wanted) in cases {
        let path = dir.path(&format!("{name}.safetensors"));
        save_edited(&path, |c| set(c, name, at, value));
        // The file itself is intact: it loads, and keeps the value.
        let c = load_checkpoint(&path).unwrap();
        let e = network_from_checkpoint(&Reference::<f32>::new(), &c, &path)
            .err()
            .expect("refused");
        let r = reason_of(&e, &path).unwrap();
        assert!(
            r.contains(&format!("tensor '{name}'")) && r.contains(wanted),
            "{r}"
        );
        let e = Trainer::resume(Reference::<f32>::new(), config(), &data.train, &path)
            .expect_err("refused");
        // Blamed on the file, not on training.
        assert!(!matches!(e, TrainError::NonFinite { .. }), "{e}");
        let r = reason_of(&e, &path).unwrap();
        assert!(
            r.contains(&format!("tensor '{name}'")) && r.contains(wanted),
            "{r}"
        );
    }
    // Two at once: the count of the others is given.
    let path = dir.path("two.safetensors");
    save_edited(&path, |c| {
        set(c, "param.fc2.bias", 2, f64::NAN);
        set(c, "param.fc2.bias", 9, f64::INFINITY);
    });
    let e = network_from_checkpoint(
        &Reference::<f32>::new(),
        &load_checkpoint(&path).unwrap(),
        &path,
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("1 more after it"), "{e}");
    // The epoch's running sums in the metadata.
    for key in ["epoch_loss", "epoch_seconds"] {
        let path = dir.path(&format!("{key}.safetensors"));
        save_edited(&path, |c| {
            c.metadata.insert(key.into(), "NaN".into());
        });
        let e = Trainer::resume(Reference::<f32>::new(), config(), &data.train, &path)
            .expect_err("refused");
        let r = reason_of(&e, &path).unwrap();
        assert!(
            r.contains(&format!("`{key}`")) && r.contains("not a finite number"),
            "{r}"
        );
    }
}

#[test]
fn the_program_refuses_non_finite_checkpoints() {
    let dir = scratch("nonfinite-program");
    let path = dir.path("nan.safetensors");
    save_edited(&path, |c| set(c, "param.fc2.weight", 3, f64::NAN));
    assert_refused(
        &eval(&path, &[]),
        &["tensor 'param.fc2.weight'", "NaN at element 3"],
    );

    // `train --resume` names the tensor in the file and does not blame
    // training (the checkpoint need not be of this configuration: the
    // values are checked before anything runs).
    let out_dir = dir.path("runs");
    let first = train(&out_dir, 2, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let ckpt = out_dir.join(RUN).join(CHECKPOINT_FILE);
    let mut c = load_checkpoint(&ckpt).unwrap();
    set(&mut c, "param.fc1.bias", 0, f64::INFINITY);
    save_checkpoint(&ckpt, &c).unwrap();
    let before = fs::read(&ckpt).unwrap();
    let err = assert_refused(
        &train(&out_dir, 3, &["--resume"]),
        &["tensor 'param.fc1.bias'", "inf at element 0"],
    );
    assert!(
        !err.contains("training loss") && !err.contains("--lr"),
        "{err}"
    );
    assert_eq!(fs::read(&ckpt).unwrap(), before);
}

#[test]
fn eval_fails_on_a_non_finite_test_loss() {
    // Finite weights whose outputs overflow: BatchNorm gives 1e30 to every
    // hidden unit, the last layer's weights are f32::MAX, so every logit
    // is +inf and the loss NaN.
    let dir = scratch("overflow");
    let path = dir.path("overflow.safetensors");
    save_edited(&path, |c| {
        for (name, _, data) in &mut c.tensors {
            let TensorData::F32(v) = data else {
                panic!("f32 run")
            };
            let fill = match name.as_str() {
                "param.bn1.weight" => 0.0,
                "param.bn1.bias" => 1e30,
                "param.fc2.weight" => f32::MAX,
                _ => continue,
            };
            v.fill(fill);
        }
    });
    let out = eval(&path, &[]);
    assert_refused(&out, &["test loss", "not a finite number"]);
    assert!(
        text(&out.stdout).contains("test loss NaN"),
        "{}",
        text(&out.stdout)
    );
    // The intact checkpoint evaluates.
    let good = dir.path("good.safetensors");
    save_edited(&good, |_| {});
    let out = eval(&good, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("test accuracy"));
}

/// `bytes` without its checksums: a file as smoothout wrote it before it
/// stored them.
fn strip_checksums(bytes: &[u8]) -> Vec<u8> {
    let (data_start, _) = layout(bytes);
    let mut header: serde_json::Value =
        serde_json::from_str(std::str::from_utf8(&bytes[8..data_start]).unwrap()).unwrap();
    header["__metadata__"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("checksum."));
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[data_start..]);
    out
}

#[test]
fn checkpoints_without_checksums_need_the_flag() {
    let (state, bytes) = real();
    let dir = scratch("unchecked");
    let path = dir.path("old.safetensors");
    fs::write(&path, strip_checksums(bytes)).unwrap();
    let data = digits();

    // The library: refused by default, accepted when asked, as saved.
    assert_matches!(
        load_checkpoint(&path),
        Err(TrainError::UncheckedCheckpoint { .. })
    );
    assert_matches!(
        Trainer::resume(Reference::<f32>::new(), config(), &data.train, &path),
        Err(TrainError::UncheckedCheckpoint { .. })
    );
    let accept = LoadOptions {
        accept_unchecked: true,
    };
    assert!(same_checkpoint(
        &load_checkpoint_with(&path, accept).unwrap(),
        state
    ));
    let t = Trainer::resume_with(
        Reference::<f32>::new(),
        config(),
        &data.train,
        &path,
        accept,
    )
    .unwrap();
    assert_eq!(t.steps_done(), t.steps_per_epoch() + 3);

    // `smoothout eval`.
    assert_refused(
        &eval(&path, &[]),
        &["no checksums", "--accept-unchecked-checkpoint"],
    );
    let out = eval(&path, &["--accept-unchecked-checkpoint"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("test accuracy"));

    // `smoothout train --resume`: a run of 2 epochs, its checkpoint made
    // old, extended to 3 epochs.
    let out_dir = dir.path("runs");
    let first = train(&out_dir, 2, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let ckpt = out_dir.join(RUN).join(CHECKPOINT_FILE);
    let old = strip_checksums(&fs::read(&ckpt).unwrap());
    fs::write(&ckpt, &old).unwrap();
    assert_refused(
        &train(&out_dir, 3, &["--resume"]),
        &["no checksums", "--accept-unchecked-checkpoint"],
    );
    assert_eq!(fs::read(&ckpt).unwrap(), old);
    let out = train(&out_dir, 3, &["--resume", "--accept-unchecked-checkpoint"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("resuming from"));
    // The run's new checkpoint carries checksums.
    let now = load_checkpoint(&ckpt).unwrap();
    assert_eq!(now.meta("step"), Some((3 * 12u64).to_string().as_str()));
    // The flag is for --resume only.
    let out = train(&dir.path("other"), 2, &["--accept-unchecked-checkpoint"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unreadable_checkpoints_are_not_missing() {
    let dir = scratch("unreadable");
    // A missing file is still reported as missing.
    assert_refused(&eval(&dir.path("nowhere"), &[]), &["does not exist"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::{symlink, PermissionsExt};
        // A loop of symbolic links cannot be read, by root either.
        let a = dir.path("a.safetensors");
        let b = dir.path("b.safetensors");
        symlink(&b, &a).unwrap();
        symlink(&a, &b).unwrap();
        let err = assert_refused(&eval(&a, &[]), &["cannot be read", "os error"]);
        assert!(!err.contains("does not exist"), "{err}");

        // `train --resume` neither starts afresh nor overwrites it.
        let out_dir = dir.path("runs");
        let run = out_dir.join(RUN);
        fs::create_dir_all(&run).unwrap();
        let ckpt = run.join(CHECKPOINT_FILE);
        symlink(&ckpt, &ckpt).unwrap();
        let err = assert_refused(
            &train(&out_dir, 2, &["--resume"]),
            &["cannot be read", "os error"],
        );
        assert!(!err.contains("does not exist"), "{err}");
        assert!(fs::symlink_metadata(&ckpt)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!run.join("metrics.csv").exists());

        // A run directory without permissions (only when this process
        // cannot bypass them, i.e. not as root).
        let locked = dir.path("locked");
        fs::create_dir_all(&locked).unwrap();
        save_edited(&locked.join(CHECKPOINT_FILE), |_| {});
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read_dir(&locked).is_ok() {
            eprintln!("skipping the permission case: this process bypasses permissions (root)");
        } else {
            let err = assert_refused(
                &eval(&locked.join(CHECKPOINT_FILE), &[]),
                &["cannot be read", "Permission denied"],
            );
            assert!(!err.contains("does not exist"), "{err}");
        }
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    }
}
