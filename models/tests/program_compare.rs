//! `smoothout experiment compare` as a user runs it, on the built-in
//! digits: the sweep chooses each strength on the validation split, the
//! table holds the paired differences the rows give, a second invocation
//! trains nothing, shards together give the same results as one process,
//! the tables can be rebuilt from the run directories alone, an interrupted
//! sweep continues to the same results, and bad input names its flag.

mod program_support;
use program_support::{scratch, smoothout};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A small sweep: SAM against the baseline, two strengths, two seeds, one
/// epoch.
fn sweep(runs: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    smoothout(&sweep_args(runs, out, extra))
}

fn sweep_args<'a>(runs: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let (runs, out) = (runs.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec![
        "experiment",
        "compare",
        "--dataset",
        "digits",
        "--methods",
        "sam",
        "--grid",
        "sam=0.01,0.3",
        "--batch",
        "64",
        "--seeds",
        "0,1",
        "--epochs",
        "1",
        "--validation",
        "300",
        "--measure-examples",
        "100",
        "--threads",
        "1",
        "--runs",
        runs,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// `runs.csv`'s rows, each split into its fields, by run name, without the
/// wall-time column (which no two runs share).
fn rows(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("digits/runs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let secs = header.iter().position(|h| *h == "sec_per_epoch").unwrap();
    lines
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != secs)
                .map(|(_, f)| f.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn a_sweep_chooses_on_validation_and_reports_paired_differences() {
    let dir = scratch("compare");
    let (runs, out) = (dir.join("runs"), dir.join("out"));
    let (ok, _, err) = sweep(&runs, &out, &[]);
    assert!(ok, "{err}");
    let all = rows(&out);
    // 2 strengths to choose from, then 2 seeds each of baseline and SAM
    assert_eq!(all.len(), 6, "{all:?}");
    let field = |r: &Vec<String>, i: usize| r[i].clone();
    let (method, strength, phase, seed, acc) = (2, 3, 4, 5, 6);
    let tune: Vec<&Vec<String>> = all.iter().filter(|r| r[phase] == "tune").collect();
    assert_eq!(tune.len(), 2);
    let best = tune
        .iter()
        .max_by(|a, b| {
            let (x, y): (f64, f64) = (a[acc].parse().unwrap(), b[acc].parse().unwrap());
            x.total_cmp(&y).then(
                b[strength]
                    .parse::<f64>()
                    .unwrap()
                    .total_cmp(&a[strength].parse().unwrap()),
            )
        })
        .unwrap();
    let chosen: f64 = best[strength].parse().unwrap();
    let finals = |m: &str| -> Vec<&Vec<String>> {
        all.iter()
            .filter(|r| r[phase] == "final" && r[method] == m)
            .collect()
    };
    for r in finals("sam") {
        assert_eq!(r[strength].parse::<f64>().unwrap(), chosen, "{r:?}");
    }
    let acc_of = |m: &str, s: &str| -> f64 {
        let r = finals(m).into_iter().find(|r| field(r, seed) == s).unwrap();
        r[acc].parse::<f64>().unwrap()
    };
    let diff = 100.0
        * ((acc_of("sam", "0") - acc_of("baseline", "0"))
            + (acc_of("sam", "1") - acc_of("baseline", "1")))
        / 2.0;
    let md = std::fs::read_to_string(out.join("digits/compare.md")).unwrap();
    let sam_row = md
        .lines()
        .find(|l| l.starts_with("| sam | --rho = "))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(sam_row.contains(&format!("--rho = {chosen}")), "{sam_row}");
    assert!(
        sam_row.contains(&format!("{diff:+.2} (")),
        "{diff:+.2} not in {sam_row}"
    );
    assert!(md.contains("Every run of the sweep is here."), "{md}");
    assert!(out.join("digits/accuracy-lambda-b64.png").exists());

    // Again: nothing trains, nothing changes.
    let (ok, _, err) = sweep(&runs, &out, &[]);
    assert!(ok, "{err}");
    assert!(!err.contains("run 1 of"), "{err}");
    assert_eq!(rows(&out), all);

    // The run directories alone rebuild runs.csv.
    std::fs::remove_file(out.join("digits/runs.csv")).unwrap();
    let (ok, _, err) = sweep(&runs, &out, &["--report-only"]);
    assert!(ok, "{err}");
    assert_eq!(rows(&out), all);

    // Two shards sharing the directories: the same results, bit for bit.
    let (runs2, out2) = (dir.join("runs2"), dir.join("out2"));
    let (ok, _, err) = sweep(&runs2, &out2, &["--shard", "1/2"]);
    assert!(ok, "{err}");
    let (ok, _, err) = sweep(&runs2, &out2, &["--shard", "2/2"]);
    assert!(ok, "{err}");
    let md = std::fs::read_to_string(out2.join("digits/compare.md")).unwrap();
    if md.contains("missing") {
        // a final run of shard 1 waited for the sweep of shard 2
        let (ok, _, err) = sweep(&runs2, &out2, &["--shard", "1/2"]);
        assert!(ok, "{err}");
    }
    assert_eq!(rows(&out2), all);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_sweeps_name_their_flag() {
    let dir = scratch("compare-bad");
    let (runs, out) = (dir.join("runs"), dir.join("out"));
    for (extra, flag) in [
        (&["--shard", "3/2"][..], "--shard"),
        (&["--shard", "0/2"][..], "--shard"),
        (&["--grid", "sgd=0.1"][..], "--grid"),
        (&["--grid", "asam=0.1"][..], "--grid"),
        (&["--grid", "sam=-1"][..], "--grid"),
        (&["--grid", "sam=0.1,0.1"][..], "--grid"),
        (&["--seeds", "1,1"][..], "--seeds"),
        (&["--validation", "5000"][..], "--validation"),
        (&["--ghost", "0"][..], "--ghost"),
    ] {
        let (ok, _, err) = sweep(&runs, &out, extra);
        assert!(!ok, "{extra:?} was accepted");
        assert!(err.contains(flag), "{extra:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_sweep_continues_to_the_same_results() {
    let dir = scratch("compare-signal");
    let (ok, _, err) = sweep(&dir.join("runs-whole"), &dir.join("out-whole"), &[]);
    assert!(ok, "{err}");
    let (runs, out) = (dir.join("runs"), dir.join("out"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_smoothout-cli"))
        .args(sweep_args(&runs, &out, &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut sent = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        // the second run starts: the first is done
        if !sent && line.starts_with("run 2 of") {
            let kill = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(kill.success());
            sent = true;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    let seen = seen.join("\n");
    assert!(sent, "{seen}");
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("run the same command again"), "{seen}");
    let (ok, _, err) = sweep(&runs, &out, &[]);
    assert!(ok, "{err}");
    assert!(
        !err.contains("run 1 of"),
        "the finished run trained again: {err}"
    );
    assert_eq!(rows(&out), rows(&dir.join("out-whole")));
    let _ = std::fs::remove_dir_all(&dir);
}
