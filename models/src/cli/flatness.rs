//! What `smoothout train` and `smoothout eval --hessian` measure on a
//! trained network: the top Hessian eigenvalues and the Hessian trace of the
//! training loss, and the loss under U(−a, a) weight noise of growing
//! strength with its slope s (the paper's Eq. 9) — and the table that puts
//! the methods and seeds side by side.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use smoothout::tensor::TensorBackend;
use smoothout::Scaling;
use smoothout_cpu::Cpu;
use smoothout_models::analysis::{
    network_hessian, sensitivity_curve, write_line_plot, EvalSet, HessianConfig, HessianSpectrum,
    LinePlot, PlotFiles, Series, Snapshot, Summary,
};
use smoothout_models::data::{Dataset, Normalize};
use smoothout_models::layers::Layer;
use smoothout_models::networks::Sequential;
use smoothout_models::train::{check_memory, Network, TrainError};

/// The measurements' settings.
#[derive(Clone, Debug)]
pub struct MeasureConfig {
    /// The first this many training images are the measurement set.
    pub examples: usize,
    /// Eigenvalues, Lanczos steps, trace samples, seed, difference step.
    pub hessian: HessianConfig,
    /// The noise strengths of the sensitivity curve (first 0, increasing).
    pub grid: Vec<f64>,
    /// Noise draws averaged per strength.
    pub copies: usize,
    /// Threads of the f64 backend the measurements run on (0: all cores).
    pub threads: usize,
}

impl MeasureConfig {
    /// The settings with the defaults the program states in `--help`.
    pub fn new(examples: usize, top: usize, threads: usize) -> Self {
        MeasureConfig {
            examples,
            hessian: HessianConfig {
                top,
                ..HessianConfig::default()
            },
            grid: vec![0.0, 0.01, 0.02, 0.03, 0.04, 0.05],
            copies: 4,
            threads,
        }
    }

    /// The strength over which the slope s is taken (the grid's last).
    pub fn a_max(&self) -> f64 {
        self.grid.last().copied().unwrap_or(0.0)
    }

    /// One line saying what was measured and how.
    pub fn describe(&self, measured_on: usize) -> String {
        format!(
            "Hessian of the mean training loss over all parameters (BatchNorm frozen, f64) on the \
             first {measured_on} training images: top eigenvalues by Lanczos ({} steps), trace by \
             Hutchinson ({} Rademacher vectors, ± its standard error); s = (C̄(w; a) − C(w))/a at \
             a = {} (U(−a, a) noise on weights and biases, {} draws; the paper's Eq. 9)",
            self.hessian.lanczos_steps,
            self.hessian.trace_samples,
            self.a_max(),
            self.copies
        )
    }
}

/// What was measured on one network.
#[derive(Clone, Debug)]
pub struct Flatness {
    /// Top eigenvalues and trace.
    pub spectrum: HessianSpectrum,
    /// `(a, C̄(w; a))` on the measurement set.
    pub curve: Vec<(f64, f64)>,
    /// `(C̄(w; a_max) − C(w)) / a_max`.
    pub slope: f64,
    /// Images the measurements used.
    pub examples: usize,
    /// Wall time of the measurements.
    pub seconds: f64,
}

/// An f64 copy of `net` (an instance of `network` for `train`'s images and
/// classes, on any backend) on the CPU, with `threads` threads (0: all
/// cores): the copy the measurements work on, so that the finite
/// differences of Hessian-vector products are taken in f64 and `net`
/// itself is never touched.
fn f64_copy<B: TensorBackend + 'static>(
    b: &B,
    net: &Sequential<B>,
    network: &Network,
    train: &Dataset,
    threads: usize,
) -> Result<(Cpu<f64>, Sequential<Cpu<f64>>), TrainError> {
    // The same constructor, and so the same thread limit, as the f32
    // backend (`crate::setup::backend`).
    let c64 = Cpu::<f64>::with_threads(threads).map_err(crate::setup::threads_error)?;
    check_memory(
        || format!("the f64 copy of {} for the measurements", network.name()),
        network
            .memory(train.image_shape(), train.classes(), 8)
            .as_ref(),
        |_| "skip the measurements (train: --no-measure; eval: leave out --hessian)".into(),
    )?;
    let mut net64 = network.build(&c64, 0, train.image_shape(), train.classes())?;
    Snapshot::of(b, net)?.apply(&c64, &mut net64)?;
    Ok((c64, net64))
}

/// The first `n` examples of `data` (all of them if it has fewer).
pub fn first(data: &Dataset, n: usize) -> Result<Dataset, TrainError> {
    let idx: Vec<usize> = (0..n.min(data.len())).collect();
    Ok(data.subset(&idx)?)
}

/// The top eigenvalues and the trace of the Hessian of `net`'s mean loss
/// on `set` (normalised by `normalize`), on an f64 copy.
pub fn hessian<B: TensorBackend + 'static>(
    b: &B,
    net: &Sequential<B>,
    network: &Network,
    set: &Dataset,
    normalize: &Normalize,
    config: &HessianConfig,
    threads: usize,
) -> Result<HessianSpectrum, TrainError> {
    let (c64, mut net64) = f64_copy(b, net, network, set, threads)?;
    network_hessian(&c64, &mut net64, set, normalize, 1000, config)
}

/// Measures `net` (an instance of `network`, on any backend) on the first
/// `cfg.examples` images of `train`, normalised by `normalize`, on an f64
/// copy; `net` itself is not changed.
pub fn measure<B: TensorBackend + 'static>(
    b: &B,
    net: &Sequential<B>,
    network: &Network,
    train: &Dataset,
    normalize: &Normalize,
    cfg: &MeasureConfig,
) -> Result<Flatness, TrainError> {
    if cfg.examples == 0 {
        return Err(TrainError::Config {
            setting: "--measure-examples",
            reason: "must be at least 1".into(),
        });
    }
    let start = Instant::now();
    let subset = first(train, cfg.examples)?;
    let (c64, mut net64) = f64_copy(b, net, network, &subset, cfg.threads)?;
    let spectrum = network_hessian(&c64, &mut net64, &subset, normalize, 1000, &cfg.hessian)?;
    let specs = net64.specs();
    let set = EvalSet {
        name: "train",
        data: &subset,
        normalize,
        batch: 1000,
    };
    let points = sensitivity_curve(
        &c64,
        &mut net64,
        &specs,
        &cfg.grid,
        cfg.copies,
        cfg.hessian.seed,
        Scaling::Fixed,
        std::slice::from_ref(&set),
    )?;
    let curve: Vec<(f64, f64)> = points.iter().map(|p| (p.a, p.sets[0].loss)).collect();
    let (a0, c0) = curve[0];
    let (a1, c1) = curve[curve.len() - 1];
    Ok(Flatness {
        spectrum,
        slope: (c1 - c0) / (a1 - a0),
        curve,
        examples: subset.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One trained run as the summary table sees it.
pub struct RunResult {
    /// The method's name as on the command line.
    pub method: String,
    /// The run's seed.
    pub seed: u64,
    /// Final test accuracy in `[0, 1]`.
    pub test_acc: f64,
    /// The flatness measurements, unless they were switched off.
    pub flatness: Option<Flatness>,
}

fn summary(values: &[f64]) -> Option<Summary> {
    Summary::of(values).ok()
}

/// `mean ± sd` (or the one value) with `digits` decimals.
fn mean_sd(values: &[f64], digits: usize) -> String {
    match summary(values) {
        Some(s) if s.n > 1 => format!("{:.digits$} ± {:.digits$}", s.mean, s.sd),
        Some(s) => format!("{:.digits$}", s.mean),
        None => "—".into(),
    }
}

/// The table of methods over seeds: test accuracy (mean ± sd and each
/// seed), λ_max, the trace and s, then each method's paired difference
/// to the first method with its 95% interval when there are several seeds.
pub fn table(runs: &[RunResult], methods: &[String]) -> String {
    let mut s = String::new();
    let measured = runs.iter().any(|r| r.flatness.is_some());
    let _ = write!(
        s,
        "{:<14} {:>6} {:>17}  {:<26}",
        "method", "seeds", "test acc %", "per seed"
    );
    if measured {
        let _ = write!(s, " {:>15} {:>19} {:>15}", "λ_max", "trace", "s");
    }
    s.push('\n');
    for m in methods {
        let mine: Vec<&RunResult> = runs.iter().filter(|r| &r.method == m).collect();
        let acc: Vec<f64> = mine.iter().map(|r| 100.0 * r.test_acc).collect();
        let each: Vec<String> = acc.iter().map(|a| format!("{a:.2}")).collect();
        let _ = write!(
            s,
            "{:<14} {:>6} {:>17}  {:<26}",
            m,
            mine.len(),
            mean_sd(&acc, 2),
            each.join(" ")
        );
        if measured {
            let f: Vec<&Flatness> = mine.iter().filter_map(|r| r.flatness.as_ref()).collect();
            let lam: Vec<f64> = f.iter().map(|f| f.spectrum.eigenvalues[0]).collect();
            let tr: Vec<f64> = f.iter().map(|f| f.spectrum.trace).collect();
            let sl: Vec<f64> = f.iter().map(|f| f.slope).collect();
            let _ = write!(
                s,
                " {:>15} {:>19} {:>15}",
                mean_sd(&lam, 2),
                mean_sd(&tr, 1),
                mean_sd(&sl, 3)
            );
        }
        s.push('\n');
    }
    // Paired by seed against the first method.
    let Some(base) = methods.first() else {
        return s;
    };
    for m in &methods[1..] {
        let pairs: Vec<(&RunResult, &RunResult)> = runs
            .iter()
            .filter(|r| &r.method == m)
            .filter_map(|r| {
                runs.iter()
                    .find(|b| &b.method == base && b.seed == r.seed)
                    .map(|b| (r, b))
            })
            .collect();
        let diffs: Vec<f64> = pairs
            .iter()
            .map(|(r, b)| 100.0 * (r.test_acc - b.test_acc))
            .collect();
        let Some(d) = summary(&diffs) else { continue };
        s.push('\n');
        let flat: Vec<(&Flatness, &Flatness)> = pairs
            .iter()
            .filter_map(|(r, b)| r.flatness.as_ref().zip(b.flatness.as_ref()))
            .collect();
        if !flat.is_empty() {
            let lower = |value: fn(&Flatness) -> f64| {
                let n = flat.iter().filter(|(r, b)| value(r) < value(b)).count();
                let ratios: Vec<f64> = flat.iter().map(|(r, b)| value(r) / value(b)).collect();
                format!(
                    "{n} of {} (mean ratio {:.2})",
                    flat.len(),
                    ratios.iter().sum::<f64>() / ratios.len() as f64
                )
            };
            let _ = writeln!(
                s,
                "{m} below {base} on the same seed — λ_max: {}; trace: {}; s: {}",
                lower(|f| f.spectrum.eigenvalues[0]),
                lower(|f| f.spectrum.trace),
                lower(|f| f.slope)
            );
        }
        match d.ci95() {
            Ok((lo, hi)) => {
                let verdict = if lo > 0.0 || hi < 0.0 {
                    "the interval excludes 0: larger than the seed spread"
                } else {
                    "the interval holds 0: not distinguishable from the seed spread"
                };
                let _ = writeln!(
                    s,
                    "{m} − {base} test accuracy, paired by seed: {:+.2} points (95% interval {lo:+.2} … {hi:+.2}, {} seeds); {verdict}",
                    d.mean, d.n
                );
            }
            Err(_) => {
                let _ = writeln!(
                    s,
                    "{m} − {base} test accuracy: {:+.2} points on one seed (more seeds, e.g. --seed 0,1,2, tell a difference from seed noise)",
                    d.mean
                );
            }
        }
    }
    s
}

/// Draws each method's sensitivity curve C̄(w; a), averaged over its
/// measured seeds, into `<stem>.png` (with `.svg` and `.csv` beside it).
pub fn plot(
    stem: &Path,
    runs: &[RunResult],
    methods: &[String],
    title: &str,
) -> Result<Option<PlotFiles>, TrainError> {
    let mut series = Vec::new();
    for m in methods {
        let curves: Vec<&[(f64, f64)]> = runs
            .iter()
            .filter(|r| &r.method == m)
            .filter_map(|r| r.flatness.as_ref().map(|f| f.curve.as_slice()))
            .collect();
        let Some(first) = curves.first() else {
            continue;
        };
        let points = first
            .iter()
            .enumerate()
            .map(|(i, &(a, _))| {
                let sum: f64 = curves.iter().map(|c| c[i].1).sum();
                (a, sum / curves.len() as f64)
            })
            .collect();
        let seeds = if curves.len() == 1 {
            "1 seed".to_string()
        } else {
            format!("mean of {} seeds", curves.len())
        };
        series.push(Series {
            label: format!("{m} ({seeds})"),
            points,
        });
    }
    if series.is_empty() {
        return Ok(None);
    }
    let files = write_line_plot(
        stem,
        &LinePlot {
            title: title.into(),
            x_label: "noise strength a (U(−a, a) on weights and biases)".into(),
            y_label: "mean training loss C̄(w; a)".into(),
            series,
            log_y: true,
        },
    )?;
    Ok(Some(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: &str, seed: u64, acc: f64) -> RunResult {
        RunResult {
            method: method.into(),
            seed,
            test_acc: acc / 100.0,
            flatness: None,
        }
    }

    fn methods() -> Vec<String> {
        vec!["baseline".into(), "adasmoothout".into()]
    }

    #[test]
    fn the_paired_difference_and_its_verdict() {
        // Differences +1.0, +1.2, +0.8 points: mean 1.0, sd 0.2, interval
        // 1.0 ± 4.303·0.2/√3 = 1.0 ± 0.50: excludes 0.
        let runs = [
            run("baseline", 0, 97.0),
            run("adasmoothout", 0, 98.0),
            run("baseline", 1, 97.5),
            run("adasmoothout", 1, 98.7),
            run("baseline", 2, 96.0),
            run("adasmoothout", 2, 96.8),
        ];
        let t = table(&runs, &methods());
        assert!(
            t.contains("+1.00 points (95% interval +0.50 … +1.50, 3 seeds)"),
            "{t}"
        );
        assert!(t.contains("excludes 0"), "{t}");
        assert!(t.contains("96.83 ± 0.76  97.00 97.50 96.00"), "{t}");
        assert!(!t.contains("λ_max"), "nothing was measured: {t}");

        // Pairs are matched by seed, not by order: +1, −1, +1 holds 0.
        let runs = [
            run("adasmoothout", 2, 98.0),
            run("baseline", 0, 97.0),
            run("baseline", 1, 97.0),
            run("baseline", 2, 97.0),
            run("adasmoothout", 0, 98.0),
            run("adasmoothout", 1, 96.0),
        ];
        let t = table(&runs, &methods());
        assert!(t.contains("+0.33 points"), "{t}");
        assert!(t.contains("holds 0"), "{t}");

        // One seed: no interval, and the table says how to get one.
        let t = table(
            &[run("baseline", 0, 97.0), run("adasmoothout", 0, 98.0)],
            &methods(),
        );
        assert!(t.contains("+1.00 points on one seed"), "{t}");
    }
}
