//! Every run's directory is checked before the first run trains: it must
//! be writable, and it must not hold files that a fresh run would
//! overwrite.

use smoothout_models::train::{RunFiles, TrainError, CHECKPOINT_FILE};

/// Makes run `name`'s directory ready ([`RunFiles::prepare`]: created,
/// proven writable, stale temporaries of killed checkpoint writes deleted)
/// and refuses what would lose work:
///
/// * a checkpoint without `--resume` (continue it, or start elsewhere);
/// * other files without a checkpoint, with or without `--resume`: they
///   are not a run that can be continued, and a fresh run would overwrite
///   them.
///
/// An empty or new directory starts afresh, with `--resume` too (so one
/// command line continues every run of a set, started or not).
pub fn prepare(name: &str, files: &RunFiles, resume: bool) -> Result<(), TrainError> {
    let dir = &files.dir;
    let state = files.prepare()?;
    for path in &state.removed {
        eprintln!(
            "{name}: removed {}, left by a write that was killed",
            path.display()
        );
    }
    if state.checkpoint && !resume {
        return Err(TrainError::Config {
            setting: "--resume",
            reason: format!(
                "{} already holds a run: pass --resume to continue it, or choose another --out (or delete the directory) to start afresh",
                dir.display()
            ),
        });
    }
    if !state.checkpoint && !state.is_empty() {
        let what = if resume {
            "there is nothing to resume"
        } else {
            "starting afresh would overwrite them"
        };
        return Err(TrainError::Config {
            setting: "--out",
            reason: format!(
                "{} holds {} but no {CHECKPOINT_FILE}, so {what}: move those files away or delete the directory, or choose another --out",
                dir.display(),
                state.others.join(", ")
            ),
        });
    }
    Ok(())
}
