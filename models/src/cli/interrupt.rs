//! Ctrl-C and SIGTERM during `smoothout train`: the first signal asks the
//! trainer to stop after its current step and checkpoint; a second one
//! ends the process at once.
//!
//! The handlers only store to atomics (all that is safe in a signal
//! handler); the trainer reads the flag between steps
//! (`Trainer::run_until_stopped`).

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use smoothout_models::train::TrainError;

/// Set by the first SIGINT or SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);
/// The number of the last signal received (0: none).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

use signal_hook::consts::{SIGINT, SIGTERM};

/// The signals that stop training gracefully.
const SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// Installs the handlers: the first SIGINT/SIGTERM sets the stop flag; one
/// arriving after that exits at once with status 128 + its number.
pub fn install() -> Result<(), TrainError> {
    for sig in SIGNALS {
        let register = || -> std::io::Result<()> {
            // Order matters: the shutdown sees the flag as it was before
            // this signal, so only a second signal ends the process.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &STOP)?;
            signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize)?;
            signal_hook::flag::register(sig, &STOP)?;
            Ok(())
        };
        register().map_err(|e| TrainError::Config {
            setting: "train",
            reason: format!("cannot install the handler of signal {sig}: {e}"),
        })?;
    }
    Ok(())
}

/// The flag the trainer polls between steps.
pub fn flag() -> &'static AtomicBool {
    &STOP
}

/// The signal that asked to stop, if one did.
pub fn received() -> Option<i32> {
    STOP.load(Ordering::SeqCst)
        .then(|| i32::try_from(SIGNAL.load(Ordering::SeqCst)).unwrap_or(0))
}

/// The conventional exit status after signal `sig`: 128 + its number
/// (130 for SIGINT, 143 for SIGTERM).
pub fn exit_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(1)
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The command line this process was started with, `--resume` added if it
/// was not there, quoted for a POSIX shell.
pub fn resume_command() -> String {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args.iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` as one word for a POSIX shell: unchanged when it holds only
/// characters no shell treats specially, else in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./,=:@%+".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--out"), "--out");
        assert_eq!(shell_quote("runs/a-1,b=2"), "runs/a-1,b=2");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("my runs"), "'my runs'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn statuses_are_conventional() {
        assert_eq!(exit_status(SIGINT), 130);
        assert_eq!(exit_status(SIGTERM), 143);
    }
}
