//! Running every check and writing the table as text, markdown and JSON.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::checks::{Check, ALL};
use crate::{Relation, Row};

/// Every row of a run, with the time each check took.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// All rows, in check order.
    pub rows: Vec<Row>,
    /// `(check, seconds)` for each check.
    pub seconds: Vec<(&'static str, f64)>,
}

impl Report {
    /// Runs `checks`, calling `progress(i, n, name)` before each.
    pub fn run(checks: &[Check], mut progress: impl FnMut(usize, usize, &str)) -> Self {
        let mut rows = Vec::new();
        let mut seconds = Vec::new();
        for (i, c) in checks.iter().enumerate() {
            progress(i, checks.len(), c.name);
            let t = Instant::now();
            rows.extend((c.rows)());
            seconds.push((c.name, t.elapsed().as_secs_f64()));
        }
        Report { rows, seconds }
    }

    /// Runs every check.
    pub fn run_all(progress: impl FnMut(usize, usize, &str)) -> Self {
        Self::run(ALL, progress)
    }

    /// Number of rows that passed.
    #[must_use]
    pub fn passed(&self) -> usize {
        self.rows.iter().filter(|r| r.pass).count()
    }

    /// The table as GitHub markdown, with a header naming the command.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("# SmoothOut theory checks\n\n");
        s.push_str("Written by `cargo run -p smoothout-verify --release -- report`; ");
        s.push_str("each check's bounds are justified in its module docs ");
        s.push_str("(`verify/src/checks/`).\n\n");
        s.push_str(&format!(
            "**{} of {} rows pass.**\n\n",
            self.passed(),
            self.rows.len()
        ));
        for c in ALL {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.check == c.name).collect();
            if rows.is_empty() {
                continue;
            }
            s.push_str(&format!("## {}\n\n{}\n\n", c.name, c.shows));
            s.push_str("| claim | equation | setting | measured | bound | result |\n");
            s.push_str("|---|---|---|---:|---:|---|\n");
            for r in rows {
                let rel = match r.relation {
                    Relation::AtMost => "≤",
                    Relation::AtLeast => "≥",
                };
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {rel} {} | {} |\n",
                    r.claim,
                    r.equation,
                    r.setting,
                    number(r.measured),
                    number(r.bound),
                    if r.pass { "pass" } else { "**FAIL**" }
                ));
            }
            s.push('\n');
        }
        s
    }

    /// The table as plain text for a terminal.
    #[must_use]
    pub fn text(&self) -> String {
        let mut s = String::new();
        for r in &self.rows {
            let rel = match r.relation {
                Relation::AtMost => "<=",
                Relation::AtLeast => ">=",
            };
            s.push_str(&format!(
                "{:<5} {:<34.34} {:<50.50} {:>12} {rel} {:<12} {}\n",
                if r.pass { "pass" } else { "FAIL" },
                r.check,
                format!("{} [{}]", r.claim, r.setting),
                number(r.measured),
                number(r.bound),
                r.equation
            ));
        }
        s.push_str(&format!(
            "{} of {} rows pass\n",
            self.passed(),
            self.rows.len()
        ));
        s
    }

    /// Writes `report.md` and `report.json` into `dir` (created if needed),
    /// each through a temporary file and a rename, so a reader never sees a
    /// half-written report.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        write_atomic(&dir.join("report.json"), json.as_bytes())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A number for the table: plain for moderate magnitudes, scientific
/// otherwise.
fn number(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || (1e-3..1e5).contains(&a) {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.3e}")
    }
}
