//! Running the host's C or C++ compiler, for the tests that compile kernel
//! code for the host (`host_device_functions.rs`, the emulation drivers of
//! `emu/build.rs`).

use std::process::Command;

/// Runs `compiler`, a command line of the host's `language` compiler; `Err`
/// with the reason to skip when that compiler is not installed. A compiler
/// that runs but rejects the code is a failure, not a skip: this panics
/// with `rejected` and the compiler's messages.
pub fn compile(compiler: &mut Command, language: &str, rejected: &str) -> Result<(), String> {
    let out = compiler.output().map_err(|e| {
        let program = compiler.get_program().to_string_lossy();
        format!("no {language} compiler `{program}` ({e})")
    })?;
    if !out.status.success() {
        panic!("{rejected}:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
