//! Shared helpers of the tests that run the `smoothout` program as a user
//! does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `smoothout` program cargo built for these tests: the one place that
/// names it.
pub const BIN: &str = env!("CARGO_BIN_EXE_smoothout-cli");

/// The flags of the smallest run the tests train: `mlp-16`, one epoch,
/// seed 0, no flatness measurements, quiet.
pub const SMALL: [&str; 8] = [
    "--net",
    "mlp-16",
    "--epochs",
    "1",
    "--seed",
    "0",
    "--no-measure",
    "--quiet",
];

/// A command that runs the program.
pub fn command() -> Command {
    Command::new(BIN)
}

/// A command that runs `smoothout train` of `method` and `net` on the
/// digits, seed 0, without flatness measurements, quiet; the caller adds
/// the rest (batch, epochs, threads, `--out`).
pub fn train_digits(method: &str, net: &str) -> Command {
    let mut c = command();
    c.args([
        "train",
        "--dataset",
        "digits",
        "--method",
        method,
        "--net",
        net,
    ]);
    c.args(["--seed", "0", "--no-measure", "--quiet"]);
    c
}

/// Runs the program with `args`: whether it succeeded, its stdout and its
/// stderr.
pub fn smoothout(args: &[&str]) -> (bool, String, String) {
    let out = command().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `smoothout train --method baseline --net mlp-16 --epochs 1 --quiet`
/// with `flags` added, writing under `out`: what [`smoothout`] returns.
/// Dataset and seeds are the program's defaults unless `flags` name them.
pub fn train_baseline_one_epoch(flags: &[&str], out: &Path) -> (bool, String, String) {
    let mut args = vec![
        "train", "--method", "baseline", "--net", "mlp-16", "--epochs", "1", "--quiet",
    ];
    args.extend_from_slice(flags);
    args.extend(["--out", out.to_str().unwrap()]);
    smoothout(&args)
}

/// An empty directory `smoothout-<name>-<pid>` under the system's
/// temporary one (whatever a previous run left there is removed).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smoothout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
