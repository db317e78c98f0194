//! Per-epoch metrics, written as JSON lines and CSV.
//!
//! Both files are rewritten whole from the run's history after every epoch
//! (with [`write_atomic`]), never appended to: a run killed mid-write
//! leaves the previous complete files, and a resumed run rewrites them from
//! the history stored in its checkpoint, so no epoch is lost or repeated.

use std::path::Path;

use serde_json::Value;

use super::checkpoint::write_atomic;
use crate::error::{Result, TrainError};

/// The numbers recorded at the end of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// The epoch just finished, counted from 1.
    pub epoch: u64,
    /// Optimiser steps taken since the start of the run.
    pub step: u64,
    /// The learning rate used in this epoch.
    pub lr: f64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch, in `[0, 1]`.
    pub train_acc: f64,
    /// Loss on the test set.
    pub test_loss: f64,
    /// Accuracy on the test set, in `[0, 1]`.
    pub test_acc: f64,
    /// Wall-clock seconds the epoch took.
    pub seconds: f64,
    /// Training throughput of the epoch.
    pub images_per_sec: f64,
}

/// A float as a JSON number in shortest round-trip form, or `null` when it
/// is NaN or infinite (JSON has no such numbers).
fn json_number(x: f64) -> String {
    serde_json::Number::from_f64(x).map_or_else(|| "null".to_string(), |n| n.to_string())
}

impl EpochMetrics {
    /// The CSV header row matching [`EpochMetrics::to_csv`].
    pub const CSV_HEADER: &'static str =
        "epoch,step,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_sec";

    /// The record as one line of JSON (no trailing newline), keys named and
    /// ordered as the fields:
    ///
    /// ```text
    /// {"epoch":1,"step":469,"lr":0.1,"train_loss":0.31,...,"images_per_sec":5120.5}
    /// ```
    ///
    /// Floats are written in shortest round-trip form; NaN and infinities
    /// are written as `null`.
    #[must_use]
    pub fn to_json(&self) -> String {
        format!(
            "{{\"epoch\":{},\"step\":{},\"lr\":{},\"train_loss\":{},\"train_acc\":{},\"test_loss\":{},\"test_acc\":{},\"seconds\":{},\"images_per_sec\":{}}}",
            self.epoch,
            self.step,
            json_number(self.lr),
            json_number(self.train_loss),
            json_number(self.train_acc),
            json_number(self.test_loss),
            json_number(self.test_acc),
            json_number(self.seconds),
            json_number(self.images_per_sec),
        )
    }

    /// Parses a line written by [`EpochMetrics::to_json`]: a JSON object
    /// with every field (extra keys are ignored). `null` reads as NaN, so
    /// finite values come back exactly and non-finite ones as NaN.
    ///
    /// Returns `None` if the line is not such an object, `epoch` or `step`
    /// is not a non-negative integer, or a float field is neither a number
    /// nor `null`.
    #[must_use]
    pub fn from_json(line: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(line).ok()?;
        let obj = value.as_object()?;
        let int = |key: &str| obj.get(key)?.as_u64();
        let float = |key: &str| match obj.get(key)? {
            Value::Null => Some(f64::NAN),
            v => v.as_f64(),
        };
        Some(Self {
            epoch: int("epoch")?,
            step: int("step")?,
            lr: float("lr")?,
            train_loss: float("train_loss")?,
            train_acc: float("train_acc")?,
            test_loss: float("test_loss")?,
            test_acc: float("test_acc")?,
            seconds: float("seconds")?,
            images_per_sec: float("images_per_sec")?,
        })
    }

    /// The record as one CSV row (no trailing newline), columns in the
    /// order of [`EpochMetrics::CSV_HEADER`]. Floats use Rust's `{}`
    /// formatting, which round-trips exactly (`NaN` and `inf` for the
    /// non-finite values).
    #[must_use]
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.step,
            self.lr,
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc,
            self.seconds,
            self.images_per_sec
        )
    }
}

/// Rewrites `dir/metrics.jsonl` (one [`EpochMetrics::to_json`] line per
/// epoch) and `dir/metrics.csv` (the header, then one row per epoch) from
/// the whole `history`, each file replaced atomically with
/// [`write_atomic`]. Every line ends with `\n`. `dir` is created if missing.
///
/// # Errors
///
/// [`TrainError::Io`] if a file cannot be written.
///
/// # Example
///
/// ```
/// use smoothout_models::train::{write_metrics, EpochMetrics};
///
/// let dir = std::env::temp_dir().join(format!("smoothout-doc-metrics-{}", std::process::id()));
/// let epoch = EpochMetrics {
///     epoch: 1, step: 100, lr: 0.1, train_loss: 0.5, train_acc: 0.8,
///     test_loss: 0.6, test_acc: 0.75, seconds: 2.0, images_per_sec: 3200.0,
/// };
/// write_metrics(&dir, &[epoch.clone()])?;
///
/// let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
/// assert_eq!(csv, format!("{}\n1,100,0.1,0.5,0.8,0.6,0.75,2,3200\n", EpochMetrics::CSV_HEADER));
/// let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
/// assert_eq!(EpochMetrics::from_json(jsonl.trim_end()), Some(epoch));
///
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut jsonl = String::new();
    let mut csv = String::from(EpochMetrics::CSV_HEADER);
    csv.push('\n');
    for m in history {
        jsonl.push_str(&m.to_json());
        jsonl.push('\n');
        csv.push_str(&m.to_csv());
        csv.push('\n');
    }
    write_atomic(&dir.join("metrics.jsonl"), jsonl.as_bytes())?;
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())
}

/// Encodes a history as JSON lines joined by `'\n'` (no trailing newline;
/// the empty history is the empty string), for a checkpoint's metadata.
#[must_use]
pub fn history_to_string(history: &[EpochMetrics]) -> String {
    history
        .iter()
        .map(EpochMetrics::to_json)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes a history written by [`history_to_string`]. Blank lines are
/// skipped, so a trailing newline is harmless.
///
/// # Errors
///
/// [`TrainError::Checkpoint`] naming `path` (the checkpoint the string came
/// from) and the 1-based line number of the first line that is not an
/// epoch record.
pub fn history_from_str(path: &Path, s: &str) -> Result<Vec<EpochMetrics>> {
    s.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            EpochMetrics::from_json(line).ok_or_else(|| {
                TrainError::checkpoint(
                    path,
                    format!(
                        "line {} of the stored metrics history is not an epoch record: {line:?}",
                        i + 1
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(epoch: u64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            step: epoch * 391,
            lr: 0.1 / 3.0,
            train_loss: 1.0e-7,
            train_acc: 0.987_654_321,
            test_loss: f64::NAN,
            test_acc: 0.5,
            seconds: 12.25,
            images_per_sec: 4.0e5,
        }
    }

    #[test]
    fn json_keeps_field_order_and_writes_null() {
        let line = sample(3).to_json();
        assert!(line.starts_with("{\"epoch\":3,\"step\":1173,\"lr\":"));
        assert!(line.contains("\"test_loss\":null"));
        assert!(!line.contains('\n'));
        let keys: Vec<&str> = EpochMetrics::CSV_HEADER.split(',').collect();
        let mut last = 0;
        for k in keys {
            let at = line.find(&format!("\"{k}\":")).unwrap();
            assert!(at >= last, "{k} out of order");
            last = at;
        }
    }

    #[test]
    fn json_round_trip_is_exact_for_finite_values() {
        let m = EpochMetrics {
            test_loss: 2.0f64.powi(-1074),
            ..sample(1)
        };
        let back = EpochMetrics::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        for (a, b) in [(back.lr, m.lr), (back.test_loss, m.test_loss)] {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn json_round_trip_is_exact_where_a_fast_parser_is_not() {
        // Values that serde_json's default float parser reads one ulp off;
        // they come back exactly only with its `float_roundtrip` feature.
        for x in [
            1.0715660391465826e-75,
            -1.81996730402717e-179,
            -1.603964615428183e143,
            -9.643915712060552e-234,
        ] {
            let m = EpochMetrics { lr: x, ..sample(1) };
            let back = EpochMetrics::from_json(&m.to_json()).unwrap();
            assert_eq!(back.lr.to_bits(), x.to_bits(), "{x:e}");
        }
    }

    #[test]
    fn infinities_come_back_as_nan() {
        let m = EpochMetrics {
            train_loss: f64::INFINITY,
            ..sample(1)
        };
        assert!(EpochMetrics::from_json(&m.to_json())
            .unwrap()
            .train_loss
            .is_nan());
    }

    #[test]
    fn from_json_rejects_malformed_records() {
        let good = sample(2).to_json();
        for bad in [
            String::new(),
            "[]".to_string(),
            "{\"epoch\":1}".to_string(),
            good.replace("\"epoch\":2", "\"epoch\":-2"),
            good.replace("\"epoch\":2", "\"epoch\":2.5"),
            good.replace("\"lr\":", "\"lr\":\"x\",\"_\":"),
            good[..good.len() - 1].to_string(),
        ] {
            assert_eq!(EpochMetrics::from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_row_matches_header() {
        let row = sample(1).to_csv();
        assert_eq!(
            row.split(',').count(),
            EpochMetrics::CSV_HEADER.split(',').count()
        );
        assert!(row.starts_with("1,391,"));
        assert!(row.contains(",NaN,"));
        assert!(row.contains(",0.0000001,"));
    }
}
