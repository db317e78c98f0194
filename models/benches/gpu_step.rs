//! Time of one ResNet-44 training step on the GPU: baseline and
//! AdaSmoothOut, at batch 128 and 2048.
//!
//! ResNet-44 ([`Network::ResNet44`]: 3×3 stem to 16 channels, three stages
//! of seven basic blocks with 16, 32 and 64 filters, 1×1 projection
//! shortcuts where the shape changes, global average pooling, Linear 10)
//! on CIFAR-shaped synthetic data (3×32×32, 10 classes), trained with
//! softmax cross-entropy and SGD (momentum 0.9, lr 0.1) in `f32` on the
//! CUDA backend. A step is [`Trainer::step_batch`]: uploading the batch,
//! forward, loss, backward and update, plus perturbing and de-noising for
//! AdaSmoothOut; no data loading.
//!
//! ```text
//! cargo bench -p smoothout-models --features cuda --bench gpu_step [-- --json PATH] [-- --quick]
//! ```
//!
//! `step_batch` reads the logits back (for the accuracy) and so waits for
//! the forward pass, but returns with the backward pass and the update
//! still queued: every measurement ends with [`Cuda::synchronize`].
//!
//! * Batch 128: both trainers live side by side; after warm-up each round
//!   runs `K` steps of each method back to back, the order of the methods
//!   alternating from round to round (as `benches/train_step.rs`).
//! * Batch 2048: a trainer keeps every convolution's column matrix for its
//!   backward pass (about 30 GB at this batch, by our count, plus the
//!   BatchNorm inputs), so two may not fit on an 80 GB GPU together. Each round builds the trainer of one method, warms it up
//!   with one step (two in the first round), times `K` steps and drops
//!   it, then does the same for the other method (alternating which goes
//!   first). A step slower than a twentieth of the budget is timed alone.
//!
//! Rounds stop at the round limit or when the batch's time budget (30 s
//! for 128, 60 s for 2048) is spent, whichever comes first; the output
//! says which. Per configuration it prints the median over rounds of
//! ms/step, images/s, and the median of the per-round ratio to the
//! baseline of the same batch. `--json PATH` also writes every per-round
//! figure. Without a GPU it prints `skipped: <reason>` and exits 0.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use smoothout_cuda::Cuda;
use smoothout_models::data::Dataset;
use smoothout_models::train::{Method, Network, TrainConfig, Trainer};
use smoothout_testkit::{
    json_list, json_str, median, timing_cells, write_json, write_skipped, SplitMix64,
};

const METHODS: [Method; 2] = [Method::Baseline, Method::AdaSmoothOut];
const IMAGE: [usize; 3] = [3, 32, 32];
const CLASSES: usize = 10;

/// How one batch size is measured.
#[derive(Clone, Copy, Debug)]
struct Plan {
    batch: usize,
    /// Steps per measurement.
    steps: usize,
    /// Most rounds.
    rounds: usize,
    /// Rounds stop once this much time has gone by.
    budget: Duration,
    /// Whether the trainers of both methods can be alive together.
    side_by_side: bool,
}

/// What the command line asked for.
struct Options {
    plans: Vec<Plan>,
    json: Option<PathBuf>,
    quick: bool,
}

impl Options {
    fn parse() -> Result<Options, Box<dyn Error>> {
        let mut quick = false;
        let mut json = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a path")?)),
                // `cargo bench` passes `--bench`; other harness flags mean
                // nothing here.
                _ => {}
            }
        }
        let (r, s) = if quick { (2, 10) } else { (1, 1) };
        let plans = vec![
            Plan {
                batch: 128,
                steps: 5,
                rounds: 9 / r,
                budget: Duration::from_secs(30 / s),
                side_by_side: true,
            },
            Plan {
                batch: 2048,
                steps: 3,
                rounds: 5 / r,
                budget: Duration::from_secs(60 / s),
                side_by_side: false,
            },
        ];
        Ok(Options { plans, json, quick })
    }
}

fn config(method: Method, batch: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(method, Network::ResNet44)
        .with_batch(batch)
        // Far more steps than the bench takes, so that the learning rate
        // stays at 0.1.
        .with_epochs(1000);
    if method == Method::AdaSmoothOut {
        cfg.a = 0.15;
    }
    cfg.eval_train = false;
    cfg
}

/// One configuration's figures.
struct Case {
    batch: usize,
    method: Method,
    /// ms/step of each round (`NAN` in a round where it did not run).
    ms: Vec<f64>,
    /// The last loss seen (to show that training is sane).
    loss: f64,
    /// Why the configuration stopped early, if it did.
    failed: Option<String>,
}

/// The synthetic data of one batch size.
struct Batch {
    x: Vec<f32>,
    y: Vec<u32>,
}

/// Runs `steps` steps and returns ms/step, waiting for the GPU at the end.
fn timed(
    t: &mut Trainer<Cuda>,
    b: &Batch,
    steps: usize,
    loss: &mut f64,
) -> Result<f64, Box<dyn Error>> {
    t.backend().synchronize()?;
    let t0 = Instant::now();
    for _ in 0..steps {
        *loss = t.step_batch(&b.x, &b.y)?.0;
    }
    t.backend().synchronize()?;
    Ok(t0.elapsed().as_secs_f64() * 1e3 / steps as f64)
}

/// Runs up to `steps` warm-up steps (fewer once one step takes longer than
/// `slow`); returns the time of the last.
fn warm(
    t: &mut Trainer<Cuda>,
    b: &Batch,
    steps: usize,
    slow: Duration,
) -> Result<Duration, Box<dyn Error>> {
    let mut last = Duration::ZERO;
    for _ in 0..steps {
        let t0 = Instant::now();
        t.step_batch(&b.x, &b.y)?;
        t.backend().synchronize()?;
        last = t0.elapsed();
        if last > slow {
            break;
        }
    }
    Ok(last)
}

/// Measures one batch size; returns its cases and how the rounds ended.
fn measure(
    gpu: &Cuda,
    train: &Dataset,
    plan: Plan,
    data: &Batch,
) -> Result<(Vec<Case>, String), Box<dyn Error>> {
    let mut cases: Vec<Case> = METHODS
        .iter()
        .map(|&method| Case {
            batch: plan.batch,
            method,
            ms: Vec::new(),
            loss: f64::NAN,
            failed: None,
        })
        .collect();
    let build = |m: Method| Trainer::new(gpu.clone(), config(m, plan.batch), train);
    let started = Instant::now();
    // Trainers kept alive between rounds (batch 128 only).
    let mut live: Vec<Option<Trainer<Cuda>>> = METHODS.iter().map(|_| None).collect();
    if plan.side_by_side {
        for (i, &m) in METHODS.iter().enumerate() {
            let r = build(m)
                .map_err(Box::<dyn Error>::from)
                .and_then(|mut t| warm(&mut t, data, 3, plan.budget / 10).map(|_| t));
            match r {
                Ok(t) => live[i] = Some(t),
                Err(e) => cases[i].failed = Some(e.to_string()),
            }
        }
    }
    let mut rounds = 0;
    let mut ended = format!("all {} rounds ran", plan.rounds);
    let mut longest = Duration::ZERO;
    while rounds < plan.rounds {
        // A round that would run past the budget is not started.
        let spent = started.elapsed();
        if rounds > 0 && spent + longest > plan.budget {
            ended = format!(
                "stopped after {rounds} of {} rounds: the {:.0} s budget was spent",
                plan.rounds,
                plan.budget.as_secs_f64()
            );
            break;
        }
        if cases.iter().all(|c| c.failed.is_some()) {
            ended = format!("stopped after {rounds} rounds: every configuration failed");
            break;
        }
        let round_start = Instant::now();
        for k in 0..METHODS.len() {
            let i = (k + rounds) % METHODS.len();
            if cases[i].failed.is_some() {
                cases[i].ms.push(f64::NAN);
                continue;
            }
            let mut loss = f64::NAN;
            let r = if plan.side_by_side {
                match live[i].as_mut() {
                    Some(t) => timed(t, data, plan.steps, &mut loss),
                    None => Err("no trainer".into()),
                }
            } else {
                // One step of warm-up per fresh trainer (the kernels are
                // compiled and cuBLAS has planned by the first round). A
                // step slower than a twentieth of the budget is timed alone,
                // so that a slow backend still ends near the budget.
                let warmup = if rounds == 0 { 2 } else { 1 };
                let slow = plan.budget / 20;
                build(METHODS[i])
                    .map_err(Box::<dyn Error>::from)
                    .and_then(|mut t| {
                        let last = warm(&mut t, data, warmup, slow)?;
                        let steps = if last > slow { 1 } else { plan.steps };
                        timed(&mut t, data, steps, &mut loss)
                    })
            };
            match r {
                Ok(ms) => {
                    cases[i].ms.push(ms);
                    cases[i].loss = loss;
                }
                Err(e) => {
                    cases[i].ms.push(f64::NAN);
                    cases[i].failed = Some(e.to_string());
                }
            }
        }
        longest = longest.max(round_start.elapsed());
        rounds += 1;
        eprint!("\rbatch {}: round {rounds}/{}", plan.batch, plan.rounds);
    }
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());
    Ok((cases, ended))
}

fn main() -> Result<(), Box<dyn Error>> {
    let opts = Options::parse()?;
    let gpu = match Cuda::new() {
        Ok(g) => g,
        Err(e) => return Ok(write_skipped(opts.json.as_deref(), &e.to_string())?),
    };
    let device = gpu.device_name()?;
    let image_len: usize = IMAGE.iter().product();
    let biggest = opts.plans.iter().map(|p| p.batch).max().unwrap_or(1);

    // A synthetic CIFAR-shaped training set: it fixes the input shape, the
    // class count and the steps per epoch; `step_batch` never reads its
    // pixels.
    let mut rng = SplitMix64(0x5EED);
    let pixels = rng.bytes(biggest * image_len);
    let labels: Vec<u8> = (0..biggest).map(|i| (i % CLASSES) as u8).collect();
    let train = Dataset::new(pixels, labels, IMAGE, CLASSES, 255)?;

    println!(
        "ResNet-44 train step on {device} ({}), f32, SGD momentum 0.9, lr 0.1; AdaSmoothOut a = 0.15{}",
        gpu.arch(),
        if opts.quick { " (quick)" } else { "" }
    );
    let mut all = Vec::new();
    let mut endings = Vec::new();
    for &plan in &opts.plans {
        // One fixed batch per size, already "normalised" (zero mean, unit-ish
        // spread), shared by the methods.
        let (x, y) = rng.batch(plan.batch, image_len, CLASSES);
        let data = Batch { x, y };
        let (cases, ended) = measure(&gpu, &train, plan, &data)?;
        println!(
            "batch {}: {} steps per measurement; {ended}",
            plan.batch, plan.steps
        );
        endings.push((plan, ended));
        all.extend(cases);
    }

    // Per-round ratios to the baseline of the same batch (rounds where both
    // ran).
    let ratios = |c: &Case| -> Vec<f64> {
        let base = all
            .iter()
            .find(|b| b.batch == c.batch && b.method == Method::Baseline)
            .map_or(&c.ms, |b| &b.ms);
        c.ms.iter()
            .zip(base)
            .map(|(m, b)| m / b)
            .filter(|r| r.is_finite())
            .collect()
    };

    println!();
    println!("| batch | method | ms/step (median) | min–max | images/s | × baseline (median of per-round ratios) | rounds |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut json = format!(
        "{{\"device\": {}, \"arch\": {}, \"quick\": {}, \"batches\": [",
        json_str(&device),
        json_str(gpu.arch()),
        opts.quick
    );
    for (i, (plan, ended)) in endings.iter().enumerate() {
        let _ = write!(
            json,
            "{}{{\"batch\": {}, \"steps_per_measurement\": {}, \"rounds_max\": {}, \"budget_s\": {}, \"ended\": {}}}",
            if i == 0 { "" } else { ", " },
            plan.batch,
            plan.steps,
            plan.rounds,
            plan.budget.as_secs(),
            json_str(ended)
        );
    }
    json.push_str("], \"results\": [");
    for (i, c) in all.iter().enumerate() {
        let ok: Vec<f64> = c.ms.iter().copied().filter(|m| m.is_finite()).collect();
        let med = median(&ok);
        let r = ratios(c);
        if ok.is_empty() {
            println!("| {} | {} | failed | | | | 0 |", c.batch, c.method.name());
        } else {
            let cells = timing_cells(c.batch, c.method.name(), &ok, &r);
            println!("{cells} {} |", ok.len());
        }
        let _ = write!(
            json,
            "{}\n  {{\"batch\": {}, \"method\": \"{}\", \"ms\": {}, \"ms_median\": {}, \"images_per_s\": {}, \"ratio_to_baseline\": {}, \"ratio_median\": {}, \"last_loss\": {}, \"failed\": {}}}",
            if i == 0 { "" } else { "," },
            c.batch,
            c.method.name(),
            json_list(&ok),
            if med.is_finite() { format!("{med:.6}") } else { "null".into() },
            if med.is_finite() { format!("{:.3}", c.batch as f64 * 1e3 / med) } else { "null".into() },
            json_list(&r),
            if r.is_empty() { "null".into() } else { format!("{:.6}", median(&r)) },
            if c.loss.is_finite() { format!("{:.6}", c.loss) } else { "null".into() },
            c.failed.as_deref().map_or("null".into(), json_str)
        );
    }
    json.push_str("\n]}\n");
    for c in &all {
        if let Some(e) = &c.failed {
            println!("\nbatch {} {} failed: {e}", c.batch, c.method.name());
        }
    }
    let losses: Vec<String> = all
        .iter()
        .map(|c| format!("{} {} {:.3}", c.batch, c.method.name(), c.loss))
        .collect();
    println!(
        "\nlast losses (ln 10 = 2.303 at chance): {}",
        losses.join(", ")
    );
    write_json(opts.json.as_deref(), &json)?;
    if let Some(p) = &opts.json {
        println!("figures: {}", p.display());
    }
    if all.iter().any(|c| c.failed.is_some()) {
        return Err("a configuration failed (see above)".into());
    }
    Ok(())
}
