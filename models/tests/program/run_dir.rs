//! `smoothout train` checks every run's directory before any run trains:
//! an unwritable `--out`, a directory holding another run or stray files,
//! are errors up front; temporaries left by a killed checkpoint write are
//! removed, and nothing else is.

use crate::support::program::{scratch, SMALL};

use std::path::Path;
use std::process::{Command, Output};

use smoothout_models::train::CHECKPOINT_FILE;

const BASELINE: &str = "digits-mlp-16-baseline-seed0";
const ADA: &str = "digits-mlp-16-adasmoothout-seed0";

/// One epoch of a small network on the digits into `out`.
fn train(out: &Path, extra: &[&str]) -> Output {
    crate::support::program::command()
        .args(["train", "--dataset", "digits", "--threads", "1"])
        .args(SMALL)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run smoothout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run failed before its first training step.
fn refused_before_training(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "succeeded: {err}");
    assert!(!err.contains("epoch "), "trained first: {err}");
    err
}

#[test]
fn files_without_a_checkpoint_are_not_overwritten() {
    let out = scratch("rundir-stray");
    let run = out.join(BASELINE);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("metrics.csv"), "mine\n").unwrap();
    for extra in [&[][..], &["--resume"][..]] {
        let err = refused_before_training(&train(&out, extra));
        assert!(err.contains(&run.display().to_string()), "{err}");
        assert!(err.contains("metrics.csv"), "{err}");
        assert!(err.contains(CHECKPOINT_FILE), "{err}");
        assert_eq!(
            std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
            "mine\n"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_later_run_that_exists_is_refused_before_the_first_trains() {
    let out = scratch("rundir-later");
    std::fs::create_dir_all(out.join(ADA)).unwrap();
    // Only its presence matters: the refusal comes before it is read.
    std::fs::write(out.join(ADA).join(CHECKPOINT_FILE), "a run").unwrap();
    let o = train(&out, &["--method", "baseline,adasmoothout"]);
    let err = refused_before_training(&o);
    assert!(err.contains(ADA) && err.contains("--resume"), "{err}");
    assert!(!out.join(BASELINE).join(CHECKPOINT_FILE).exists());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn stale_temporaries_of_the_run_are_removed_and_nothing_else() {
    let out = scratch("rundir-stale");
    let run = out.join(BASELINE);
    let stale = [
        ".checkpoint.safetensors.tmp-4194305-0",
        ".metrics.csv.tmp-12-3",
    ];
    // A fresh run into a directory holding only temporaries.
    std::fs::create_dir_all(&run).unwrap();
    for s in stale {
        std::fs::write(run.join(s), "half written").unwrap();
    }
    let o = train(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("removed"), "{}", stderr(&o));
    for s in stale {
        assert!(!run.join(s).exists(), "{s} is still there");
    }
    // A resumed run: the temporaries go, look-alikes and other files stay.
    let keep = [
        ".checkpoint.safetensors.tmp-1-2.keep",
        "checkpoint.safetensors.tmp-1-2",
        ".other.safetensors.tmp-1-2",
        "notes.txt",
    ];
    for s in stale.iter().chain(&keep) {
        std::fs::write(run.join(s), "x").unwrap();
    }
    let o = train(&out, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for s in stale {
        assert!(!run.join(s).exists(), "{s} is still there");
    }
    for k in keep {
        assert!(run.join(k).exists(), "{k} was removed");
    }
    // Another directory's temporaries are not this run's.
    std::fs::write(out.join(stale[0]), "x").unwrap();
    assert!(train(&out, &["--resume"]).status.success());
    assert!(out.join(stale[0]).exists());
    let _ = std::fs::remove_dir_all(out);
}

/// `--out` that cannot be written is an error naming the path and the
/// operating system's reason, before any training.
fn assert_unwritable(out: &Path) {
    let err = refused_before_training(&train(out, &[]));
    assert!(err.contains("cannot create or write"), "{err}");
    assert!(err.contains(&out.display().to_string()), "{err}");
}

#[test]
fn an_out_under_a_regular_file_is_found_at_the_start() {
    let dir = scratch("rundir-under-file");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file"), "").unwrap();
    assert_unwritable(&dir.join("file").join("runs"));
    assert!(
        refused_before_training(&train(&dir.join("file").join("runs"), &[]))
            .contains("Not a directory")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(target_os = "linux")]
#[test]
fn an_out_under_proc_is_found_at_the_start() {
    assert_unwritable(Path::new("/proc/smoothout-runs"));
    assert_unwritable(&Path::new("/proc/self").join("smoothout-runs"));
}

#[cfg(unix)]
#[test]
fn a_read_only_out_is_found_at_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        eprintln!("skipped: running as root, for whom a read-only directory is writable");
        return;
    }
    let out = scratch("rundir-read-only");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
    assert_unwritable(&out);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_dir_all(out);
}
