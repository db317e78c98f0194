//! Sizes a hostile user can reach through the `smoothout` program (issue
//! 11, points 1, 2 and 5): thread counts, network widths and a checkpoint's
//! hand-edited metadata. Each command runs as a child process and must end
//! with exit status 1 and a message — not 134 (abort), not a hang.

use crate::support::program::{scratch, SMALL};

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use smoothout::Reference;
use smoothout_models::data::Dataset;
use smoothout_models::train::{save_checkpoint, Method, Network, TrainConfig, Trainer};

/// Runs the program with `args`, killing it after `limit`: its exit code
/// (`None`: killed by a signal or by the limit) and its stderr.
fn smoothout(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = crate::support::program::command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `args` ends with exit status 1 and a message holding every `want`.
fn refused(args: &[&str], want: &[&str]) {
    let (code, err) = smoothout(args, Duration::from_secs(60));
    assert_eq!(
        code,
        Some(1),
        "{args:?} (134 is an abort, None a signal or a hang): {err}"
    );
    for w in want {
        assert!(err.contains(w), "{args:?}: `{w}` not in: {err}");
    }
}

/// Point 1: `--threads 100000` spawned threads until killed. Now every
/// command refuses more than the limit at once, also with `--device cuda`
/// (whose measurements run on the CPU).
#[test]
fn too_many_threads_are_refused_by_every_command() {
    let out = scratch("sizes-threads");
    let o = out.to_str().unwrap();
    let over = (smoothout_cpu::max_threads() + 1).to_string();
    for threads in [over.as_str(), "100000"] {
        let mut train = vec!["train", "--threads", threads, "--out", o];
        train.extend(SMALL);
        refused(&train, &["--threads", "at most", "0 for one per core"]);
        train.extend(["--device", "cuda"]);
        let (code, err) = smoothout(&train, Duration::from_secs(60));
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("--threads") || err.contains("--device"),
            "{err}"
        );
        refused(
            &["eval", o, "--threads", threads],
            &["--threads", "at most"],
        );
        refused(
            &[
                "experiment",
                "table1",
                "--data-dir",
                o,
                "--threads",
                threads,
            ],
            &["--threads", "at most"],
        );
    }
    assert!(!out.join("digits-mlp-16-baseline-seed0").exists());
}

/// Point 2: `--net mlp-999999999` aborted with "memory allocation of
/// 255999999744 bytes failed" (exit 134).
#[test]
fn a_network_too_large_for_memory_is_refused() {
    let out = scratch("sizes-net");
    let o = out.to_str().unwrap();
    for (net, want) in [
        ("mlp-999999999", "needs about"),
        ("mlp-18446744073709551615", "more than 2^64 bytes"),
        ("mlp-4294967296-4294967296", "more than 2^64 bytes"),
    ] {
        // SMALL with another `--net`
        let mut train = vec!["train", "--net", net, "--out", o];
        train.extend(&SMALL[2..]);
        refused(&train, &[want, "available", "--net"]);
    }
}

/// A real checkpoint of a small digits run, with `note.dataset`.
fn write_checkpoint(path: &Path, edit: &[(&str, &str)]) {
    let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16])).with_batch(128);
    let data = Dataset::digits_embedded().shuffled_split(360, 0).unwrap();
    let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data.train).unwrap();
    t.annotate("dataset", "digits");
    t.step(&data.train).unwrap();
    let mut c = t.checkpoint().unwrap();
    for (k, v) in edit {
        c.metadata.insert((*k).into(), (*v).into());
    }
    save_checkpoint(path, &c).unwrap();
}

/// Point 5: hand-edited metadata aborted `eval` through the same
/// unbounded allocation.
#[test]
fn eval_refuses_a_checkpoint_with_edited_sizes() {
    let dir = scratch("sizes-eval");
    let good = dir.join("good.safetensors");
    write_checkpoint(&good, &[]);
    let (code, err) = smoothout(&["eval", good.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(code, Some(0), "the unedited checkpoint: {err}");
    for (i, edit) in [
        &[("image_shape", "[1000000, 1000000, 1]")][..],
        &[("network", "mlp-999999999")],
        &[
            ("image_shape", "[1000000, 1000000, 1]"),
            ("network", "mlp-999999999"),
        ],
        &[("classes", "18446744073709551615")],
        &[("network", "mlp-100000")],
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("edited-{i}.safetensors"));
        write_checkpoint(&path, edit);
        let p = path.to_str().unwrap();
        refused(&["eval", p], &[p, "metadata"]);
    }
}
