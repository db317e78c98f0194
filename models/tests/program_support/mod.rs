//! Shared helpers of the tests that run the `smoothout` program as a user
//! does.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Runs the program with `args`: whether it succeeded, its stdout and its
/// stderr.
pub fn smoothout(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smoothout-cli"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An empty directory `smoothout-<name>-<pid>` under the system's
/// temporary one (whatever a previous run left there is removed).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smoothout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
