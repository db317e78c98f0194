//! `smoothout experiment table1`: the paper's Table I on one dataset —
//! small- and large-batch training, baseline and SmoothOut, with test
//! accuracy, (C_ε, A)-sharpness, sensitivity curves and landscapes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use smoothout::Scaling;
use smoothout_cpu::Cpu;
use smoothout_models::analysis::{
    filter_normalized_direction, interpolate, landscape_1d, landscape_2d, network_sharpness,
    sensitivity_curve, slopes, write_line_plot, write_surface_plot, EvalSet, HessianConfig,
    HessianSpectrum, LinePlot, Series, Sharpness, SharpnessConfig, Snapshot, Surface,
};
use smoothout_models::data::{Dataset, DatasetKind, Normalize, Split};
use smoothout_models::layers::Layer;
use smoothout_models::train::{
    write_atomic, Method, Network, RunFiles, TrainConfig, TrainError, Trainer,
};

use crate::args::ExperimentArgs;
use crate::flatness::{self, first};
use crate::progress::Progress;

/// One cell of the paper's Table I: accuracy and sharpness, baseline →
/// SmoothOut, at one batch size.
struct PaperRow {
    batch: usize,
    baseline: f64,
    smoothout: f64,
    sharp_baseline: f64,
    sharp_smoothout: f64,
}

/// The network, small and large batch sizes, and the paper's figures.
fn setup(kind: DatasetKind) -> (Network, &'static str, [usize; 2], Option<[PaperRow; 2]>) {
    let row = |batch, baseline, smoothout, sharp_baseline, sharp_smoothout| PaperRow {
        batch,
        baseline,
        smoothout,
        sharp_baseline,
        sharp_smoothout,
    };
    match kind {
        DatasetKind::Cifar10 => (
            Network::CifarShallow,
            "C1",
            [256, 5000],
            Some([
                row(256, 79.67, 81.72, 27.7448, 0.0003),
                row(5000, 77.30, 80.34, 117.8266, 0.0004),
            ]),
        ),
        DatasetKind::Cifar100 => (
            Network::CifarShallow,
            "C3",
            [256, 5000],
            Some([
                row(256, 47.99, 51.17, 23.5103, 0.0001),
                row(5000, 44.37, 48.43, 62.0682, 10.7303),
            ]),
        ),
        DatasetKind::Mnist => (
            Network::F1,
            "F1",
            [256, 6000],
            Some([
                row(256, 98.49, 98.61, 0.0, 0.0),
                row(6000, 98.01, 98.42, 57.8246, 5.4128),
            ]),
        ),
        _ => (Network::F1, "F1", [256, 6000], None),
    }
}

/// A trained model and what was measured on it.
struct Model {
    batch: usize,
    method: Method,
    trainer: Trainer<Cpu<f32>>,
    test_acc: f64,
    seconds: f64,
    sharpness: Option<Sharpness>,
    hessian: Option<HessianSpectrum>,
}

impl Model {
    fn label(&self) -> String {
        format!("{} {}", title(self.method), self.batch)
    }
}

/// How the table and the pictures name a method.
fn title(method: Method) -> &'static str {
    if method == Method::Baseline {
        "baseline"
    } else {
        "SmoothOut"
    }
}

pub fn table1(a: &ExperimentArgs) -> Result<(), TrainError> {
    crate::setup::check_threads(a.threads)?;
    let start = Instant::now();
    let kind = a.dataset.kind();
    let (network, net_name, batches, paper) = setup(kind);
    let data: Split = crate::setup::load(a.dataset, &a.data_dir)?;
    let out = a.out.join(format!("table1-{}", kind.name()));
    let runs_dir = a.runs.join(format!("table1-{}", kind.name()));
    eprintln!(
        "Table I on {}: {net_name} at batch {} and {}, baseline and SmoothOut (a = {}), {} epochs; results in {}",
        kind.title(),
        batches[0],
        batches[1],
        a.a,
        a.epochs,
        out.display()
    );
    let mut models = Vec::new();
    for batch in batches {
        for method in [Method::Baseline, Method::SmoothOut] {
            models.push(train_one(
                a, &network, kind, &data, batch, method, &runs_dir,
            )?);
        }
    }

    // Everything below evaluates on fixed subsets of the training and test
    // sets, normalised as in training (each model's own statistics are the
    // same: fitted on the same training set).
    let train_sub = first(&data.train, a.examples)?;
    let test_sub = first(&data.test, a.examples)?;
    let normalize = Normalize::fit(&data.train)?;
    let sets = [
        EvalSet {
            name: "train",
            data: &train_sub,
            normalize: &normalize,
            batch: 1000,
        },
        EvalSet {
            name: "test",
            data: &test_sub,
            normalize: &normalize,
            batch: 1000,
        },
    ];

    // One backend for all the measurements (each works on its own copy of
    // a trained network).
    let b = crate::setup::backend(a.threads)?;
    let cfg = SharpnessConfig {
        seed: a.seed,
        ..SharpnessConfig::default()
    };
    for m in &mut models {
        let t = Instant::now();
        let mut net = clone_net(&b, &m.trainer, &network, &data.train)?;
        let s = network_sharpness(&b, &mut net, &train_sub, &normalize, 1000, &cfg)?;
        eprintln!(
            "{}: sharpness {:.4} (f0 {:.5}, max {:.5}; {} runs, {:.0} s)",
            m.label(),
            s.value,
            s.f0,
            s.f_max,
            s.runs.len(),
            t.elapsed().as_secs_f64()
        );
        m.sharpness = Some(s);
    }

    // Hessian: top eigenvalues and trace (f64 copies, BatchNorm frozen).
    let hessian_sub = first(&data.train, a.hessian_examples)?;
    let hcfg = HessianConfig {
        top: 3,
        seed: a.seed,
        ..HessianConfig::default()
    };
    for m in &mut models {
        let t = Instant::now();
        let h = flatness::hessian(
            m.trainer.backend(),
            m.trainer.network(),
            &network,
            &hessian_sub,
            &normalize,
            &hcfg,
            a.threads,
        )?;
        eprintln!(
            "{}: λ_max {:.3}, trace {:.1} ± {:.1} ({} Hessian-vector products, {:.0} s)",
            m.label(),
            h.eigenvalues[0],
            h.trace,
            h.trace_se,
            h.hvps,
            t.elapsed().as_secs_f64()
        );
        m.hessian = Some(h);
    }

    // Sensitivity (Fig. 2b): C̄(w; a) and accuracy against a.
    let grid = [0.0, 0.0125, 0.025, 0.0375, 0.05, 0.075, 0.1, 0.15];
    let mut loss_series = Vec::new();
    let mut acc_series = Vec::new();
    let mut slope_lines = Vec::new();
    for m in &mut models {
        let t = Instant::now();
        let specs = m.trainer.network().specs();
        let mut net = clone_net(&b, &m.trainer, &network, &data.train)?;
        let curve = sensitivity_curve(
            &b,
            &mut net,
            &specs,
            &grid,
            a.copies,
            a.seed,
            Scaling::Fixed,
            &sets,
        )?;
        for (k, set) in ["train", "test"].iter().enumerate() {
            loss_series.push(Series {
                label: format!("{} ({set})", m.label()),
                points: curve.iter().map(|p| (p.a, p.sets[k].loss)).collect(),
            });
            acc_series.push(Series {
                label: format!("{} ({set})", m.label()),
                points: curve
                    .iter()
                    .map(|p| (p.a, 100.0 * p.sets[k].accuracy))
                    .collect(),
            });
        }
        let s = slopes(&curve, 0)?;
        slope_lines.push((m.label(), s));
        eprintln!(
            "{}: sensitivity curve ({:.0} s)",
            m.label(),
            t.elapsed().as_secs_f64()
        );
    }
    write_line_plot(
        &out.join("sensitivity-loss"),
        &LinePlot {
            title: format!(
                "{net_name} on {}: mean loss under U(−a, a) weight noise",
                kind.title()
            ),
            x_label: "a".into(),
            y_label: "loss".into(),
            series: loss_series,
            log_y: true,
        },
    )?;
    write_line_plot(
        &out.join("sensitivity-accuracy"),
        &LinePlot {
            title: format!(
                "{net_name} on {}: accuracy under U(−a, a) noise",
                kind.title()
            ),
            x_label: "a".into(),
            y_label: "accuracy (%)".into(),
            series: acc_series,
            log_y: false,
        },
    )?;

    // Interpolation (Fig. 2a) from the small-batch to the large-batch
    // solution, for each method.
    let alphas: Vec<f64> = (0..=30).map(|i| -1.0 + 0.1 * f64::from(i)).collect();
    let mut interp_series = Vec::new();
    for method in [Method::Baseline, Method::SmoothOut] {
        let pair: Vec<&Model> = models.iter().filter(|m| m.method == method).collect();
        let mut net = clone_net(&b, &pair[0].trainer, &network, &data.train)?;
        let from = Snapshot::of(&b, &net)?;
        let to = Snapshot::of(pair[1].trainer.backend(), pair[1].trainer.network())?;
        let points = interpolate(&b, &mut net, &from, &to, &alphas, &sets)?;
        for (k, set) in ["train", "test"].iter().enumerate() {
            interp_series.push(Series {
                label: format!("{} {}→{} ({set})", title(method), batches[0], batches[1]),
                points: points.iter().map(|p| (p.alpha, p.sets[k].loss)).collect(),
            });
        }
    }
    write_line_plot(
        &out.join("interpolation"),
        &LinePlot {
            title: format!(
                "{net_name} on {}: loss along (1−α)·w_{} + α·w_{}",
                kind.title(),
                batches[0],
                batches[1]
            ),
            x_label: "α".into(),
            y_label: "loss".into(),
            series: interp_series,
            log_y: true,
        },
    )?;
    eprintln!(
        "interpolation done ({:.0} s so far)",
        start.elapsed().as_secs_f64()
    );

    // Filter-normalised landscapes (Li et al.; the paper's Fig. 5): 1-D
    // for every model, 2-D for the two large-batch models.
    let small_train = first(&data.train, a.examples.min(2000))?;
    let small = EvalSet {
        name: "train",
        data: &small_train,
        normalize: &normalize,
        batch: 1000,
    };
    let ts: Vec<f64> = (0..=20).map(|i| -1.0 + 0.1 * f64::from(i)).collect();
    let mut land_series = Vec::new();
    for m in &models {
        let mut net = clone_net(&b, &m.trainer, &network, &data.train)?;
        let d = filter_normalized_direction(&b, &net, a.seed)?;
        let points = landscape_1d(&b, &mut net, &d, &ts, std::slice::from_ref(&small))?;
        land_series.push(Series {
            label: m.label(),
            points: points.iter().map(|p| (p.t, p.sets[0].loss)).collect(),
        });
        if m.batch == batches[1] {
            let d2 = filter_normalized_direction(&b, &net, a.seed + 1)?;
            let xs: Vec<f64> = (0..=10).map(|i| -1.0 + 0.2 * f64::from(i)).collect();
            let z = landscape_2d(&b, &mut net, &d, &d2, &xs, &xs, &small)?;
            let stem = format!("landscape-2d-{}-{}", m.method.name(), m.batch);
            write_surface_plot(
                &out.join(stem),
                &Surface {
                    title: format!("{}: training loss, filter-normalised directions", m.label()),
                    x_label: "direction 1".into(),
                    y_label: "direction 2".into(),
                    xs: xs.clone(),
                    ys: xs,
                    z,
                },
            )?;
        }
    }
    write_line_plot(
        &out.join("landscape-1d"),
        &LinePlot {
            title: format!(
                "{net_name} on {}: training loss along a filter-normalised direction",
                kind.title()
            ),
            x_label: "t".into(),
            y_label: "loss".into(),
            series: land_series,
            log_y: true,
        },
    )?;

    let table = markdown(
        a,
        kind,
        net_name,
        &models,
        paper.as_ref(),
        &slope_lines,
        &grid,
        start,
    );
    write_atomic(&out.join("table1.md"), table.as_bytes())?;
    println!("{table}");
    eprintln!(
        "wrote {} ({:.0} s in all)",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A second copy of a trainer's network on another backend handle (the
/// analysis functions need the network mutably and restore it afterwards;
/// a copy keeps the trained one untouched in any case).
fn clone_net(
    b: &Cpu<f32>,
    t: &Trainer<Cpu<f32>>,
    network: &Network,
    train: &Dataset,
) -> Result<smoothout_models::networks::Sequential<Cpu<f32>>, TrainError> {
    let mut net = network.build(b, 0, train.image_shape(), train.classes())?;
    Snapshot::of(t.backend(), t.network())?.apply(b, &mut net)?;
    Ok(net)
}

fn train_one(
    a: &ExperimentArgs,
    network: &Network,
    kind: DatasetKind,
    data: &Split,
    batch: usize,
    method: Method,
    runs_dir: &Path,
) -> Result<Model, TrainError> {
    let mut cfg = TrainConfig::new(method, network.clone())
        .with_batch(batch)
        .with_epochs(a.epochs)
        .with_seed(a.seed);
    if method != Method::Baseline {
        // The baseline keeps the default strength it ignores, so that its
        // runs are shared by experiments with different `--a`.
        cfg.a = a.a;
    }
    cfg.eval_train = false;
    if matches!(kind, DatasetKind::Cifar10 | DatasetKind::Cifar100) {
        cfg.augment = smoothout_models::data::Augment::cifar();
    }
    // Everything that changes the run is in its name, so that runs of
    // other settings are never resumed into each other.
    let strength = if method == Method::Baseline {
        String::new()
    } else {
        format!("-a{}", a.a)
    };
    let name = format!(
        "{}-{}{strength}-b{batch}-e{}-seed{}",
        kind.name(),
        method.name(),
        a.epochs,
        a.seed
    );
    let dir: PathBuf = runs_dir.join(&name);
    let mut trainer = crate::setup::resume_or_start(
        a.threads,
        a.accept_unchecked_checkpoint,
        cfg,
        &data.train,
        &dir,
    )?;
    trainer.annotate("dataset", kind.name());
    let t = Instant::now();
    let files = RunFiles {
        dir,
        every: Some(crate::setup::DEFAULT_CHECKPOINT_EVERY),
    };
    let mut progress = Progress::new(&name, &trainer, false);
    trainer.run(data, Some(&files), &mut |e| progress.event(&e))?;
    progress.finish();
    let (_, test_acc) = trainer.evaluate(&data.test)?;
    let seconds = trainer.history().iter().map(|m| m.seconds).sum::<f64>();
    eprintln!(
        "{name}: test accuracy {:.2}% ({:.0} s of training; {:.0} s now)",
        100.0 * test_acc,
        seconds,
        t.elapsed().as_secs_f64()
    );
    Ok(Model {
        batch,
        method,
        trainer,
        test_acc,
        seconds,
        sharpness: None,
        hessian: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn markdown(
    a: &ExperimentArgs,
    kind: DatasetKind,
    net_name: &str,
    models: &[Model],
    paper: Option<&[PaperRow; 2]>,
    slope_lines: &[(String, Vec<f64>)],
    grid: &[f64],
    start: Instant,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Table I on {} ({net_name})\n", kind.title());
    let _ = writeln!(
        s,
        "`smoothout experiment table1 --dataset {}` — {} epochs per run, SGD momentum 0.9, lr 0.1 ÷10 at 50% and 75% of the epochs, SmoothOut a = {}, seed {}; sharpness: ε = 5·10⁻⁴, full space, L-BFGS-B 10 iterations, max over 5 runs, on the first {} training images; Hessian of the mean training loss over all parameters (BatchNorm frozen, f64 copies of the networks) on the first {} training images: λ_max by Lanczos ({} steps), trace by Hutchinson ({} Rademacher vectors, ± standard error); f32 training on the CPU backend, {:.0} min in all.\n",
        kind.name(),
        a.epochs,
        a.a,
        a.seed,
        a.examples,
        a.hessian_examples,
        HessianConfig::default().lanczos_steps,
        HessianConfig::default().trace_samples,
        start.elapsed().as_secs_f64() / 60.0
    );
    let _ = writeln!(
        s,
        "| DNN | batch | baseline | SmoothOut | improvement | (C_ε, A)-sharpness baseline → SmoothOut | λ_max baseline → SmoothOut | Hessian trace baseline → SmoothOut | paper: baseline | paper: SmoothOut | paper: sharpness |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|---|---|---:|---:|---|");
    for (i, pair) in models.chunks(2).enumerate() {
        let (base, so) = (&pair[0], &pair[1]);
        let sh = |m: &Model| m.sharpness.as_ref().map_or(f64::NAN, |x| x.value);
        let lam = |m: &Model| m.hessian.as_ref().map_or(f64::NAN, |h| h.eigenvalues[0]);
        let tr = |m: &Model| m.hessian.as_ref().map_or(f64::NAN, |h| h.trace);
        let (pb, ps, psh) = match paper {
            Some(p) => (
                format!("{:.2}%", p[i].baseline),
                format!("{:.2}%", p[i].smoothout),
                format!("{:.4} → {:.4}", p[i].sharp_baseline, p[i].sharp_smoothout),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let _ = writeln!(
            s,
            "| {net_name} | {} | {:.2}% | {:.2}% | {:+.2}% | {:.4} → {:.4} | {:.3} → {:.3} | {:.1} → {:.1} | {pb} | {ps} | {psh} |",
            base.batch,
            100.0 * base.test_acc,
            100.0 * so.test_acc,
            100.0 * (so.test_acc - base.test_acc),
            sh(base),
            sh(so),
            lam(base),
            lam(so),
            tr(base),
            tr(so)
        );
        debug_assert_eq!(paper.map_or(base.batch, |p| p[i].batch), base.batch);
    }
    let _ = writeln!(
        s,
        "\nPer run (training time, each sharpness search's maximum, the top three Hessian eigenvalues with their Lanczos residual bounds, the trace ± its standard error):\n"
    );
    let _ = writeln!(
        s,
        "| run | training s | f0 | max per run | λ₁, λ₂, λ₃ | trace |"
    );
    let _ = writeln!(s, "|---|---:|---:|---|---|---:|");
    for m in models {
        if let Some(sh) = &m.sharpness {
            let runs: Vec<String> = sh.runs.iter().map(|r| format!("{:.5}", r.f_max)).collect();
            let (eig, trace) = m.hessian.as_ref().map_or_else(
                || ("—".to_string(), "—".to_string()),
                |h| {
                    let e: Vec<String> = h
                        .eigenvalues
                        .iter()
                        .zip(&h.residuals)
                        .map(|(l, r)| format!("{l:.3} (±{r:.0e})"))
                        .collect();
                    (e.join(", "), format!("{:.1} ± {:.1}", h.trace, h.trace_se))
                },
            );
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.5} | {} | {eig} | {trace} |",
                m.label(),
                m.seconds,
                sh.f0,
                runs.join(", ")
            );
        }
    }
    let _ = writeln!(s, "\nSensitivity s = ΔC̄/Δa on the training subset (Eq. 9), between the grid points a = {grid:?}:\n");
    for (label, sl) in slope_lines {
        let v: Vec<String> = sl.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(s, "- {label}: {}", v.join(", "));
    }
    let _ = writeln!(
        s,
        "\nPictures (PNG and SVG, numbers in CSV beside each): `sensitivity-loss`, `sensitivity-accuracy`, `interpolation`, `landscape-1d`, `landscape-2d-baseline-{b}`, `landscape-2d-smoothout-{b}`.",
        b = models.last().map_or(0, |m| m.batch)
    );
    s
}
