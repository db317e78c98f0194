//! `smoothout experiment compare`: the flat-minimum methods in one
//! framework — the same data order, initialisation and noise generator per
//! seed — with strengths chosen on a validation split, many seeds, and
//! paired intervals against the baseline.
//!
//! The sweep is a fixed, numbered list of runs: first the strength sweep
//! (each method × each value of its grid, seed 0, trained on the training
//! set less the validation split and scored on it), then the final runs
//! (each method × each seed on the whole training set, with the strength
//! that scored best). A finished run leaves one row in its directory
//! (`result.csv`) and in `runs.csv` under the output folder; either counts
//! as done, so the sweep resumes where it stopped, across invocations,
//! shards and machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use smoothout_cpu::Cpu;
use smoothout_models::analysis::{
    network_sharpness, write_scatter_plot, HessianConfig, LinePlot, Series, SharpnessConfig,
    Snapshot, Summary,
};
use smoothout_models::data::{Augment, DatasetKind, Normalize, Split};
use smoothout_models::optim::{LrRegime, LrScaling};
use smoothout_models::train::{
    write_atomic, Method, Network, RunEnd, RunFiles, TrainConfig, TrainError, Trainer,
};

use crate::args::CompareArgs;
use crate::flatness::{self, first};
use crate::interrupt;
use crate::progress::Progress;

/// The strengths tried when `--grid` does not name the method.
fn default_grid(m: Method) -> Vec<f64> {
    match m {
        Method::Baseline => vec![],
        Method::SmoothOut => vec![0.005, 0.015, 0.0375],
        Method::AdaSmoothOut => vec![0.02, 0.05, 0.15],
        Method::Sam => vec![0.01, 0.05, 0.1],
        Method::Asam => vec![0.1, 0.5, 1.0],
        Method::Rwp => vec![0.002, 0.005, 0.01],
        Method::MixedRwp => vec![0.005, 0.01, 0.02],
    }
}

fn bad(setting: &'static str, reason: String) -> TrainError {
    TrainError::Config { setting, reason }
}

/// Whether a run chooses a strength or measures a method.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Strength sweep: this strength, seed 0, scored on the validation
    /// split.
    Tune(f64),
    /// Final run: this seed, the chosen strength, scored on the test set.
    Final(u64),
}

/// One numbered run of the sweep.
#[derive(Clone, Copy, Debug)]
struct Slot {
    batch: usize,
    method: Method,
    phase: Phase,
}

/// One finished run, as `runs.csv` holds it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    name: String,
    batch: usize,
    method: Method,
    strength: f64,
    tune: bool,
    seed: u64,
    /// Validation accuracy (sweep) or test accuracy (final), in [0, 1].
    accuracy: f64,
    loss: f64,
    train_loss: f64,
    lambda_max: Option<f64>,
    trace: Option<f64>,
    sharpness: Option<f64>,
    sec_per_epoch: f64,
    passes: u32,
}

const HEADER: &str = "name,batch,method,strength,phase,seed,accuracy,loss,train_loss,\
                      lambda_max,trace,sharpness,sec_per_epoch,passes";

impl Row {
    fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:e}"));
        format!(
            "{},{},{},{:e},{},{},{:e},{:e},{:e},{},{},{},{:.3},{}",
            self.name,
            self.batch,
            self.method.name(),
            self.strength,
            if self.tune { "tune" } else { "final" },
            self.seed,
            self.accuracy,
            self.loss,
            self.train_loss,
            opt(self.lambda_max),
            opt(self.trace),
            opt(self.sharpness),
            self.sec_per_epoch,
            self.passes
        )
    }

    fn parse(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.trim_end().split(',').collect();
        if f.len() != HEADER.split(',').count() {
            return None;
        }
        let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
        let opt = |s: &str| {
            if s.is_empty() {
                Some(None)
            } else {
                num(s).map(Some)
            }
        };
        Some(Row {
            name: f[0].to_string(),
            batch: f[1].parse().ok()?,
            method: Method::parse(f[2]).ok()?,
            strength: num(f[3])?,
            tune: match f[4] {
                "tune" => true,
                "final" => false,
                _ => return None,
            },
            seed: f[5].parse().ok()?,
            accuracy: num(f[6])?,
            loss: num(f[7])?,
            train_loss: num(f[8])?,
            lambda_max: opt(f[9])?,
            trace: opt(f[10])?,
            sharpness: opt(f[11])?,
            sec_per_epoch: num(f[12])?,
            passes: f[13].parse().ok()?,
        })
    }
}

/// The rows of a `runs.csv`-shaped file, by run name (none if the file
/// does not exist).
///
/// # Errors
/// [`TrainError::Io`] when the file cannot be read; [`TrainError::Config`]
/// naming the file and line when a row cannot be read.
fn read_rows(path: &Path) -> Result<Vec<Row>, TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(TrainError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(bad(
            "--out",
            format!(
                "{} does not start with the header `{HEADER}`: move it away, and the runs \
                 under --runs rebuild it",
                path.display()
            ),
        ));
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            Row::parse(l).ok_or_else(|| {
                bad(
                    "--out",
                    format!(
                        "line {} of {} is not a result row: `{l}`; delete the line to train \
                         that run again",
                        i + 2,
                        path.display()
                    ),
                )
            })
        })
        .collect()
}

fn write_rows(path: &Path, rows: &[&Row]) -> Result<(), TrainError> {
    let mut s = format!("{HEADER}\n");
    for r in rows {
        s.push_str(&r.csv());
        s.push('\n');
    }
    write_atomic(path, s.as_bytes())
}

/// `--grid` on top of the defaults, for the methods compared.
fn grids(
    a: &CompareArgs,
    methods: &[Method],
) -> Result<BTreeMap<&'static str, Vec<f64>>, TrainError> {
    let mut g: BTreeMap<&'static str, Vec<f64>> = methods
        .iter()
        .map(|&m| (m.name(), default_grid(m)))
        .collect();
    for item in &a.grid {
        let (name, list) = item.split_once('=').ok_or_else(|| {
            bad(
                "--grid",
                format!("`{item}` is not METHOD=V1,V2,… (e.g. sam=0.02,0.05,0.1)"),
            )
        })?;
        let m = Method::parse(name)
            .map_err(|_| bad("--grid", format!("`{name}` in `{item}` is not a method")))?;
        if m == Method::Baseline || !methods.contains(&m) {
            return Err(bad(
                "--grid",
                format!("`{item}`: {name} has no strength here (it is the baseline or not in --methods)"),
            ));
        }
        let values: Vec<f64> = list
            .split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        bad(
                            "--grid",
                            format!("`{v}` in `{item}` is not a finite strength >= 0"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        if values
            .iter()
            .enumerate()
            .any(|(i, v)| values[..i].contains(v))
        {
            return Err(bad("--grid", format!("`{item}` lists a value twice")));
        }
        g.insert(m.name(), values);
    }
    Ok(g)
}

/// `--shard K/N` as (K − 1, N).
fn shard(a: &CompareArgs) -> Result<(usize, usize), TrainError> {
    let Some(s) = &a.shard else { return Ok((0, 1)) };
    let parsed = s
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|&(k, n)| k >= 1 && k <= n);
    parsed.map(|(k, n)| (k - 1, n)).ok_or_else(|| {
        bad(
            "--shard",
            format!("`{s}` is not K/N with 1 ≤ K ≤ N (e.g. 2/4: the second of four shares)"),
        )
    })
}

/// Everything one sweep needs.
struct Sweep<'a> {
    a: &'a CompareArgs,
    kind: DatasetKind,
    network: Network,
    methods: Vec<Method>,
    grids: BTreeMap<&'static str, Vec<f64>>,
    rows: BTreeMap<String, Row>,
}

impl Sweep<'_> {
    /// Every run of the sweep in its fixed order: the strength sweep, then
    /// the final runs.
    fn plan(&self) -> Vec<Slot> {
        let mut slots = Vec::new();
        for &batch in &self.a.batch {
            for &method in &self.methods {
                for &s in &self.grids[method.name()] {
                    slots.push(Slot {
                        batch,
                        method,
                        phase: Phase::Tune(s),
                    });
                }
            }
        }
        for &batch in &self.a.batch {
            for &method in &self.methods {
                for &seed in &self.a.seeds {
                    slots.push(Slot {
                        batch,
                        method,
                        phase: Phase::Final(seed),
                    });
                }
            }
        }
        slots
    }

    /// The directory name of a run: everything that changes it.
    fn name(&self, batch: usize, method: Method, strength: Option<f64>, phase: Phase) -> String {
        let a = self.a;
        let mut n = format!(
            "{}-{}-{}",
            self.kind.name(),
            self.network.name(),
            method.name()
        );
        if let Some(s) = strength {
            let _ = write!(n, "-s{s}");
        }
        match method {
            Method::Asam => {
                let _ = write!(n, "-eta{}", a.eta);
            }
            Method::MixedRwp => {
                let _ = write!(n, "-beta{}", a.beta);
            }
            _ => {}
        }
        let _ = write!(n, "-b{batch}");
        if batch > a.ghost {
            let _ = write!(n, "-g{}", a.ghost);
        }
        let _ = write!(n, "-lr{}-e{}", a.lr, a.epochs);
        match phase {
            Phase::Tune(_) => {
                let _ = write!(n, "-tune-v{}", a.validation);
            }
            Phase::Final(seed) => {
                let _ = write!(n, "-seed{seed}");
            }
        }
        n
    }

    /// The strength the sweep chose for `method` at `batch` (the best
    /// validation accuracy; the smaller value on a tie), or the runs of the
    /// sweep still missing.
    fn chosen(&self, batch: usize, method: Method) -> Result<Option<f64>, Vec<String>> {
        if method == Method::Baseline {
            return Ok(None);
        }
        let mut best: Option<(f64, f64)> = None;
        let mut missing = Vec::new();
        for &s in &self.grids[method.name()] {
            let name = self.name(batch, method, Some(s), Phase::Tune(s));
            match self.rows.get(&name) {
                Some(r) => {
                    if best
                        .is_none_or(|(acc, bs)| r.accuracy > acc || (r.accuracy == acc && s < bs))
                    {
                        best = Some((r.accuracy, s));
                    }
                }
                None => missing.push(name),
            }
        }
        match best {
            Some((_, s)) if missing.is_empty() => Ok(Some(s)),
            _ => Err(missing),
        }
    }

    /// Adds the rows that finished runs left in their directories under
    /// `--runs` and `runs.csv` lacks (another shard's, or one whose
    /// `runs.csv` update was overwritten): the strength sweep's first, so
    /// that the final runs' names are known.
    fn gather(&mut self) -> Result<(), TrainError> {
        for tune in [true, false] {
            for slot in self.plan() {
                let strength = match (slot.phase, tune) {
                    (Phase::Tune(s), true) => Some(s),
                    (Phase::Final(_), false) => match self.chosen(slot.batch, slot.method) {
                        Ok(s) => s,
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                let name = self.name(slot.batch, slot.method, strength, slot.phase);
                if self.rows.contains_key(&name) {
                    continue;
                }
                if let Some(r) = read_rows(&self.a.runs.join(&name).join("result.csv"))?.pop() {
                    self.rows.insert(name, r);
                }
            }
        }
        Ok(())
    }

    fn config(
        &self,
        batch: usize,
        method: Method,
        strength: Option<f64>,
        seed: u64,
    ) -> Result<TrainConfig, TrainError> {
        let a = self.a;
        let mut c = TrainConfig::new(method, self.network.clone())
            .with_batch(batch)
            .with_epochs(a.epochs)
            .with_seed(seed);
        let mut regime = LrRegime::decay(a.lr, a.epochs).map_err(|e| bad("--lr", e.to_string()))?;
        if batch > a.ghost {
            c.ghost = Some(a.ghost);
            regime = regime
                .scaled(LrScaling::Sqrt, batch, a.ghost)
                .map_err(|e| bad("--ghost", e.to_string()))?;
        }
        c.regime = regime;
        if let Some(s) = strength {
            c.a = s;
        }
        c.eta = a.eta;
        c.beta = a.beta;
        c.eval_train = false;
        if matches!(self.kind, DatasetKind::Cifar10 | DatasetKind::Cifar100) {
            c.augment = Augment::cifar();
        }
        c.validate()?;
        Ok(c)
    }
}

/// What one final run measured beyond its accuracy.
struct Measured {
    lambda_max: f64,
    trace: f64,
    sharpness: f64,
}

pub fn compare(a: &CompareArgs) -> Result<(), TrainError> {
    crate::setup::check_threads(a.threads)?;
    let kind = a.dataset.kind();
    let network = match &a.net {
        Some(s) => Network::parse(s)?,
        None => match kind {
            DatasetKind::Digits => Network::Mlp(vec![64, 64]),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => Network::CifarShallow,
            _ => Network::F1,
        },
    };
    let mut methods = vec![Method::Baseline];
    for m in &a.methods {
        if !methods.contains(&m.method()) {
            methods.push(m.method());
        }
    }
    let unique = |v: &[u64]| v.iter().enumerate().all(|(i, x)| !v[..i].contains(x));
    if a.seeds.is_empty() || !unique(&a.seeds) {
        return Err(bad("--seeds", "give at least one seed, each once".into()));
    }
    let batches: Vec<u64> = a.batch.iter().map(|&b| b as u64).collect();
    if a.batch.is_empty() || a.batch.contains(&0) || !unique(&batches) {
        return Err(bad(
            "--batch",
            "give batch sizes of at least 1, each once".into(),
        ));
    }
    for (setting, value) in [
        ("--epochs", a.epochs),
        ("--ghost", a.ghost as u64),
        ("--validation", a.validation as u64),
        ("--measure-examples", a.measure_examples as u64),
    ] {
        if value == 0 {
            return Err(bad(setting, "must be at least 1".into()));
        }
    }
    let (k, n) = shard(a)?;
    let grids = grids(a, &methods)?;
    let out = a.out.join(kind.name());
    let runs_csv = out.join("runs.csv");
    let mut sweep = Sweep {
        a,
        kind,
        network,
        methods,
        grids,
        rows: BTreeMap::new(),
    };
    // Every configuration is checked before anything trains.
    for slot in sweep.plan() {
        let strength = match slot.phase {
            Phase::Tune(s) => Some(s),
            Phase::Final(_) => None,
        };
        sweep.config(slot.batch, slot.method, strength, 0)?;
    }
    for r in read_rows(&runs_csv)? {
        sweep.rows.insert(r.name.clone(), r);
    }
    sweep.gather()?;
    interrupt::install()?;
    let start = Instant::now();
    if !a.report_only {
        let data = crate::setup::load(a.dataset, &a.data_dir)?;
        if a.validation >= data.train.len() {
            return Err(bad(
                "--validation",
                format!(
                    "{} of {} training images leaves none to train on",
                    a.validation,
                    data.train.len()
                ),
            ));
        }
        let tune_data = data.train.split_at(data.train.len() - a.validation)?;
        let plan = sweep.plan();
        let mine: Vec<(usize, Slot)> = plan
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| i % n == k)
            .collect();
        eprintln!(
            "{} on {}: {} runs in the sweep ({} of them this share's), {} epochs each; results in {}",
            sweep.network.name(),
            kind.title(),
            plan.len(),
            mine.len(),
            a.epochs,
            out.display()
        );
        let mut waiting = Vec::new();
        for (i, slot) in mine {
            let (strength, data, seed) = match slot.phase {
                Phase::Tune(s) => (Some(s), &tune_data, 0),
                Phase::Final(seed) => match sweep.chosen(slot.batch, slot.method) {
                    Ok(s) => (s, &data, seed),
                    Err(missing) => {
                        waiting.push((i, missing));
                        continue;
                    }
                },
            };
            let name = sweep.name(slot.batch, slot.method, strength, slot.phase);
            let dir = a.runs.join(&name);
            if sweep.rows.contains_key(&name) {
                continue;
            }
            let cfg = sweep.config(slot.batch, slot.method, strength, seed)?;
            eprintln!("run {} of {}: {name}", i + 1, plan.len());
            let Some(row) = run(&sweep, cfg, slot, strength, data, &dir, &name)? else {
                eprintln!(
                    "\n{} stopped the sweep; run the same command again to continue \
                     (finished runs are kept)",
                    interrupt::received().map_or("a signal", interrupt::name)
                );
                break;
            };
            write_rows(&dir.join("result.csv"), &[&row])?;
            sweep.rows.insert(name, row);
            // Rows other processes wrote meanwhile are kept.
            for r in read_rows(&runs_csv)? {
                sweep.rows.entry(r.name.clone()).or_insert(r);
            }
            write_rows(&runs_csv, &sweep.rows.values().collect::<Vec<_>>())?;
        }
        for (i, missing) in &waiting {
            eprintln!(
                "run {} waits for the strength sweep ({} runs missing, e.g. {}): run the command \
                 again once they are done",
                i + 1,
                missing.len(),
                missing[0]
            );
        }
    }
    let files = report(&sweep, &out)?;
    eprintln!(
        "{} ({:.0} s); table: {}",
        if a.report_only {
            "report written"
        } else {
            "sweep done"
        },
        start.elapsed().as_secs_f64(),
        files.display()
    );
    Ok(())
}

/// Trains (or resumes, or reuses) one run and measures it. `None` when a
/// signal stopped it (its checkpoint holds where).
fn run(
    sweep: &Sweep<'_>,
    cfg: TrainConfig,
    slot: Slot,
    strength: Option<f64>,
    data: &Split,
    dir: &Path,
    name: &str,
) -> Result<Option<Row>, TrainError> {
    let a = sweep.a;
    let mut t = crate::setup::resume_or_start(
        a.threads,
        a.accept_unchecked_checkpoint,
        cfg,
        &data.train,
        dir,
    )?;
    t.annotate("dataset", sweep.kind.name());
    let files = RunFiles {
        dir: dir.to_path_buf(),
        every: Some(crate::setup::DEFAULT_CHECKPOINT_EVERY),
    };
    let mut progress = Progress::new(name, &t, false);
    let end = t.run_until_stopped(
        u64::MAX,
        data,
        Some(&files),
        &mut |e| progress.event(&e),
        interrupt::flag(),
    )?;
    progress.finish();
    if let RunEnd::Stopped { .. } = end {
        return Ok(None);
    }
    let history = t.history();
    let last = history
        .last()
        .cloned()
        .ok_or_else(|| bad("--epochs", "no epoch was trained".into()))?;
    let sec_per_epoch = history.iter().map(|m| m.seconds).sum::<f64>() / history.len() as f64;
    // Kept to the millisecond, as runs.csv keeps it, so that the report made
    // now equals the one `--report-only` rebuilds from runs.csv.
    let sec_per_epoch = (sec_per_epoch * 1000.0).round() / 1000.0;
    let (tune, seed) = match slot.phase {
        Phase::Tune(_) => (true, 0),
        Phase::Final(seed) => (false, seed),
    };
    let measured = if tune {
        None
    } else {
        Some(measure(sweep, &t, data)?)
    };
    let row = Row {
        name: name.to_string(),
        batch: slot.batch,
        method: slot.method,
        strength: strength.unwrap_or(0.0),
        tune,
        seed,
        accuracy: last.test_acc,
        loss: last.test_loss,
        train_loss: last.train_loss,
        lambda_max: measured.as_ref().map(|m| m.lambda_max),
        trace: measured.as_ref().map(|m| m.trace),
        sharpness: measured.as_ref().map(|m| m.sharpness),
        sec_per_epoch,
        passes: slot.method.passes(),
    };
    eprintln!(
        "{name}: {} accuracy {:.2}%{}",
        if tune { "validation" } else { "test" },
        100.0 * row.accuracy,
        measured.map_or_else(String::new, |m| format!(
            ", λ_max {:.3}, trace {:.1}, sharpness {:.3}",
            m.lambda_max, m.trace, m.sharpness
        ))
    );
    Ok(Some(row))
}

/// λ_max and the trace (f64 copy, BatchNorm frozen) and the (C_ε,
/// A)-sharpness (ε = 5·10⁻⁴, 5 L-BFGS-B runs of 10 iterations) on the first
/// `--measure-examples` training images.
fn measure(sweep: &Sweep<'_>, t: &Trainer<Cpu<f32>>, data: &Split) -> Result<Measured, TrainError> {
    let a = sweep.a;
    let subset = first(&data.train, a.measure_examples)?;
    let normalize = Normalize::fit(&data.train)?;
    let hessian = HessianConfig {
        top: 1,
        ..HessianConfig::default()
    };
    let spectrum = flatness::hessian(
        t.backend(),
        t.network(),
        &sweep.network,
        &subset,
        &normalize,
        &hessian,
        a.threads,
    )?;
    let b = crate::setup::backend(a.threads)?;
    let mut net = sweep
        .network
        .build(&b, 0, data.train.image_shape(), data.train.classes())?;
    Snapshot::of(t.backend(), t.network())?.apply(&b, &mut net)?;
    let sharp = network_sharpness(
        &b,
        &mut net,
        &subset,
        &normalize,
        1000,
        &SharpnessConfig::default(),
    )?;
    Ok(Measured {
        lambda_max: spectrum.eigenvalues[0],
        trace: spectrum.trace,
        sharpness: sharp.value,
    })
}

fn mean_sd(values: &[f64], digits: usize) -> String {
    match Summary::of(values) {
        Ok(s) if s.n > 1 => format!("{:.digits$} ± {:.digits$}", s.mean, s.sd),
        Ok(s) => format!("{:.digits$}", s.mean),
        Err(_) => "—".into(),
    }
}

/// Writes `compare.md`, `summary.csv`, `runs.csv` and one picture per
/// batch size under `out`; returns the Markdown file's path.
fn report(sweep: &Sweep<'_>, out: &Path) -> Result<PathBuf, TrainError> {
    let a = sweep.a;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Flat-minimum methods on {}, {}\n",
        sweep.kind.title(),
        sweep.network.name()
    );
    let _ = writeln!(
        md,
        "{} epochs, SGD momentum 0.9, lr {} ÷10 at half and three quarters of the run; \
         batches above {} in ghost chunks of {} with the rates × √(batch/{}). Strengths chosen on \
         the last {} training images (seed 0, trained on the rest); final runs on the whole \
         training set, seeds {}. Sharpness, λ_max and trace on the first {} training images.\n",
        a.epochs,
        a.lr,
        a.ghost,
        a.ghost,
        a.ghost,
        a.validation,
        a.seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        a.measure_examples
    );
    let mut summary = String::from(
        "batch,method,strength,seeds,acc_mean,acc_sd,diff_mean,diff_lo,diff_hi,sharpness,lambda_max,trace,sec_per_epoch,passes\n",
    );
    let mut missing = Vec::new();
    let mut plots = Vec::new();
    for &batch in &a.batch {
        let _ = writeln!(md, "## Batch {batch}\n");
        let _ = writeln!(md, "Strength sweep (validation accuracy %):\n");
        let _ = writeln!(md, "| method | values tried | chosen |\n|---|---|---|");
        for &m in sweep.methods.iter().skip(1) {
            let tried: Vec<String> = sweep.grids[m.name()]
                .iter()
                .map(|&s| {
                    let name = sweep.name(batch, m, Some(s), Phase::Tune(s));
                    match sweep.rows.get(&name) {
                        Some(r) => format!("{s}: {:.2}", 100.0 * r.accuracy),
                        None => {
                            missing.push(name);
                            format!("{s}: —")
                        }
                    }
                })
                .collect();
            let chosen = sweep.chosen(batch, m).ok().flatten().map_or_else(
                || "—".to_string(),
                |s| format!("{} = {s}", m.strength_flag()),
            );
            let _ = writeln!(md, "| {} | {} | {chosen} |", m.name(), tried.join("; "));
        }
        let _ = writeln!(
            md,
            "\n| method | strength | test accuracy % (mean ± sd) | seeds | − baseline, paired (95% interval) | sharpness | λ_max | trace | s / epoch | passes |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        let finals = |m: Method| -> Vec<&Row> {
            let Ok(s) = sweep.chosen(batch, m) else {
                return vec![];
            };
            a.seeds
                .iter()
                .filter_map(|&seed| sweep.rows.get(&sweep.name(batch, m, s, Phase::Final(seed))))
                .collect()
        };
        let base = finals(Method::Baseline);
        let mut series = Vec::new();
        for &m in &sweep.methods {
            let chosen = sweep.chosen(batch, m);
            let rows = finals(m);
            for &seed in &a.seeds {
                match &chosen {
                    Ok(s) => {
                        let name = sweep.name(batch, m, *s, Phase::Final(seed));
                        if !sweep.rows.contains_key(&name) {
                            missing.push(name);
                        }
                    }
                    Err(_) => missing.push(format!(
                        "{}-b{batch} seed {seed} (after its sweep)",
                        m.name()
                    )),
                }
            }
            let acc: Vec<f64> = rows.iter().map(|r| 100.0 * r.accuracy).collect();
            let diffs: Vec<f64> = rows
                .iter()
                .filter_map(|r| {
                    base.iter()
                        .find(|b| b.seed == r.seed)
                        .map(|b| 100.0 * (r.accuracy - b.accuracy))
                })
                .collect();
            let diff = if m == Method::Baseline {
                (String::from("—"), None)
            } else {
                match Summary::of(&diffs) {
                    Ok(d) => match d.ci95() {
                        Ok((lo, hi)) => {
                            let out = lo > 0.0 || hi < 0.0;
                            let text = format!(
                                "{:+.2} ({lo:+.2} … {hi:+.2}){}",
                                d.mean,
                                if out { " **outside 0**" } else { "" }
                            );
                            (text, Some((d.mean, lo, hi)))
                        }
                        Err(_) => (format!("{:+.2} (one seed)", d.mean), None),
                    },
                    Err(_) => ("—".into(), None),
                }
            };
            let col = |f: fn(&Row) -> Option<f64>| -> Vec<f64> {
                rows.iter().filter_map(|r| f(r)).collect()
            };
            let sharp = col(|r| r.sharpness);
            let lam = col(|r| r.lambda_max);
            let tr = col(|r| r.trace);
            let secs = col(|r| Some(r.sec_per_epoch));
            let strength = chosen.as_ref().ok().copied().flatten().map_or_else(
                || "—".to_string(),
                |s| format!("{} = {s}", m.strength_flag()),
            );
            let _ = writeln!(
                md,
                "| {} | {strength} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.name(),
                mean_sd(&acc, 2),
                rows.len(),
                diff.0,
                mean_sd(&sharp, 3),
                mean_sd(&lam, 3),
                mean_sd(&tr, 1),
                mean_sd(&secs, 1),
                m.passes()
            );
            let stat = |v: &[f64]| {
                Summary::of(v).map_or_else(|_| String::new(), |s| format!("{:e}", s.mean))
            };
            let acc_s = Summary::of(&acc).ok();
            let _ = writeln!(
                summary,
                "{batch},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                m.name(),
                chosen
                    .ok()
                    .flatten()
                    .map_or_else(String::new, |s| s.to_string()),
                rows.len(),
                acc_s.map_or_else(String::new, |s| format!("{:.4}", s.mean)),
                acc_s.map_or_else(String::new, |s| format!("{:.4}", s.sd)),
                diff.1.map_or_else(String::new, |d| format!("{:.4}", d.0)),
                diff.1.map_or_else(String::new, |d| format!("{:.4}", d.1)),
                diff.1.map_or_else(String::new, |d| format!("{:.4}", d.2)),
                stat(&sharp),
                stat(&lam),
                stat(&tr),
                stat(&secs),
                m.passes()
            );
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| {
                    r.lambda_max
                        .filter(|l| *l > 0.0)
                        .map(|l| (l, 100.0 * r.accuracy))
                })
                .collect();
            if !points.is_empty() {
                series.push(Series {
                    label: m.name().to_string(),
                    points,
                });
            }
        }
        if !series.is_empty() {
            let stem = out.join(format!("accuracy-lambda-b{batch}"));
            let files = write_scatter_plot(
                &stem,
                &LinePlot {
                    title: format!(
                        "{}, batch {batch}: test accuracy against λ_max",
                        sweep.kind.title()
                    ),
                    x_label: "λ_max of the training loss".into(),
                    y_label: "test accuracy %".into(),
                    series,
                    log_y: false,
                },
            )?;
            let file = files
                .png
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "\n![Test accuracy against λ_max, batch {batch}]({file})"
            );
            plots.push(files.png);
        }
        md.push('\n');
    }
    if missing.is_empty() {
        let _ = writeln!(md, "Every run of the sweep is here.");
    } else {
        let _ = writeln!(
            md,
            "{} runs are missing (the table shows the others):\n",
            missing.len()
        );
        for m in &missing {
            let _ = writeln!(md, "- {m}");
        }
    }
    let path = out.join("compare.md");
    write_atomic(&path, md.as_bytes())?;
    write_atomic(&out.join("summary.csv"), summary.as_bytes())?;
    write_rows(
        &out.join("runs.csv"),
        &sweep.rows.values().collect::<Vec<_>>(),
    )?;
    Ok(path)
}
