//! Making a run's directory ready before training: created, proven
//! writable, cleared of temporaries that a killed write left behind, and
//! its contents reported so that the caller can refuse to overwrite them.
//!
//! Checking all of this up front means that an unwritable output directory
//! or a directory holding another run is reported before any training, not
//! at the first checkpoint minutes later.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::trainer::{RunFiles, CHECKPOINT_FILE};
use crate::error::{Result, TrainError};

/// The files a run writes with [`write_atomic`](super::write_atomic), whose
/// temporaries [`RunFiles::prepare`] removes.
const RUN_FILES: [&str; 3] = [CHECKPOINT_FILE, "metrics.jsonl", "metrics.csv"];

/// What a run's directory held when [`RunFiles::prepare`] made it ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunDirState {
    /// `checkpoint.safetensors` is there: the run can be resumed from it.
    pub checkpoint: bool,
    /// Every other entry of the directory (file names, sorted): metrics
    /// files of a run, or anything else. A fresh run would overwrite some
    /// of them.
    pub others: Vec<String>,
    /// Temporary files of writes that were killed before their rename
    /// (`.checkpoint.safetensors.tmp-<pid>-<n>` and the like), which were
    /// deleted.
    pub removed: Vec<PathBuf>,
}

impl RunDirState {
    /// The directory holds nothing of a run: a fresh run overwrites
    /// nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.checkpoint && self.others.is_empty()
    }
}

impl RunFiles {
    /// Makes the run's directory ready, before any training: creates it
    /// (and its parents), proves that files can be created in it by
    /// writing and deleting a probe file `.smoothout-probe-<pid>`, deletes
    /// stale temporaries of this run's own files (the
    /// `.<file>.tmp-<pid>-<n>` files that [`write_atomic`](super::write_atomic)
    /// leaves when the process is killed mid-write, for `checkpoint.safetensors`,
    /// `metrics.jsonl` and `metrics.csv` only), and reports what else the
    /// directory holds.
    ///
    /// Call it before a run writes into the directory, not while another
    /// process trains in it: a temporary being written would be deleted.
    ///
    /// # Errors
    ///
    /// * [`TrainError::Unwritable`] naming the directory and the operating
    ///   system's error, when the directory cannot be
    ///   created (a parent is a regular file, a read-only or virtual file
    ///   system such as `/proc`) or a file cannot be created in it.
    /// * [`TrainError::Io`] when the directory cannot be listed or a stale
    ///   temporary cannot be deleted.
    ///
    /// # Example
    ///
    /// ```
    /// use smoothout_models::train::RunFiles;
    ///
    /// let dir = std::env::temp_dir().join(format!("smoothout-doc-prepare-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join(".checkpoint.safetensors.tmp-4242-0"), b"half a checkpoint").unwrap();
    /// std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    ///
    /// let state = RunFiles { dir: dir.clone(), every: None }.prepare()?;
    /// assert!(!state.checkpoint);
    /// assert_eq!(state.others, ["notes.txt"]);
    /// assert_eq!(state.removed, [dir.join(".checkpoint.safetensors.tmp-4242-0")]);
    ///
    /// // Under a regular file no directory can be made.
    /// let under_file = RunFiles { dir: dir.join("notes.txt").join("run"), every: None };
    /// assert!(under_file.prepare().unwrap_err().to_string().contains("notes.txt"));
    ///
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), smoothout_models::train::TrainError>(())
    /// ```
    pub fn prepare(&self) -> Result<RunDirState> {
        let dir = &self.dir;
        let unwritable = |dir: &Path, source| TrainError::Unwritable {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| unwritable(dir, e))?;
        let probe = dir.join(format!(".smoothout-probe-{}", std::process::id()));
        write_probe(&probe).map_err(|e| unwritable(dir, e))?;
        fs::remove_file(&probe).map_err(|e| unwritable(dir, e))?;

        let mut state = RunDirState::default();
        for entry in fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
            let entry = entry.map_err(|e| TrainError::io(dir, e))?;
            let name = entry.file_name();
            let path = entry.path();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && is_stale_temporary(&name) {
                fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
                state.removed.push(path);
            } else if name == CHECKPOINT_FILE {
                state.checkpoint = true;
            } else {
                state.others.push(name.to_string_lossy().into_owned());
            }
        }
        state.others.sort();
        state.removed.sort();
        Ok(state)
    }
}

/// Creates `probe` (which must not exist), writes a byte and syncs it.
fn write_probe(probe: &Path) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(probe)?;
    f.write_all(b"0")?;
    f.sync_all()
}

/// Whether `name` is `.<run file>.tmp-<digits>-<digits>`, the name
/// [`write_atomic`](super::write_atomic) gives its temporary for one of
/// [`RUN_FILES`].
fn is_stale_temporary(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    RUN_FILES.iter().any(|file| {
        name.strip_prefix('.')
            .and_then(|rest| rest.strip_prefix(file))
            .and_then(|rest| rest.strip_prefix(".tmp-"))
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(pid, n)| digits(pid) && digits(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporaries_of_run_files_are_stale() {
        for name in [
            ".checkpoint.safetensors.tmp-123-0",
            ".metrics.csv.tmp-1-99",
            ".metrics.jsonl.tmp-4294967295-18446744073709551615",
        ] {
            assert!(is_stale_temporary(OsStr::new(name)), "{name}");
        }
        for name in [
            "checkpoint.safetensors",
            "checkpoint.safetensors.tmp-1-2",
            ".checkpoint.safetensors.tmp-1",
            ".checkpoint.safetensors.tmp-1-",
            ".checkpoint.safetensors.tmp--2",
            ".checkpoint.safetensors.tmp-1-2-3",
            ".checkpoint.safetensors.tmp-x-2",
            ".checkpoint.safetensors.tmp-1-2.bak",
            ".digits-flatness.csv.tmp-1-2",
            ".metrics.csv.tmp-1-2 ",
            ".smoothout-probe-1",
            "notes.txt",
        ] {
            assert!(!is_stale_temporary(OsStr::new(name)), "{name}");
        }
    }
}
