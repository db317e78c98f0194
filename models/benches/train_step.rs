//! Time of one F1 training step: baseline, SmoothOut and AdaSmoothOut.
//!
//! F1 is the paper's MNIST network, `784 → [Linear 512 → BatchNorm → ReLU]×5
//! → Linear 10`, trained with softmax cross-entropy and SGD (momentum 0.9,
//! lr 0.1) in `f32` on a two-thread CPU backend. A step is
//! [`Trainer::step_batch`]: forward, loss, backward and update, plus
//! perturbing and de-noising for the SmoothOut methods; no data loading.
//!
//! ```text
//! cargo bench -p smoothout-models --bench train_step [-- --quick] [-- --json PATH]
//! ```
//!
//! Six configurations (batch 256 and 4096 × three methods) each get their
//! own trainer. After warm-up the bench runs rounds; in every round each
//! configuration runs `K` steps back to back and records their mean. The
//! order of the methods rotates from round to round, so that a neighbour
//! who slows the machine down for a while hurts every method alike. Per
//! configuration it prints the median over rounds of ms/step, images/s,
//! and the median over rounds of the per-round ratio to the baseline of
//! the same batch (both timed in the same round, seconds apart).
//!
//! `--quick` (or `F1_BENCH_QUICK=1`) runs fewer rounds; `--rounds R` sets
//! them. `--json PATH` (default `target/bench-f1/rust.json` at the
//! workspace root) receives every per-round figure, for
//! `scripts/bench-f1.sh` to pool with the PyTorch runs.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use smoothout_cpu::Cpu;
use smoothout_models::data::Dataset;
use smoothout_models::train::{Method, Network, TrainConfig, Trainer};

const BATCHES: [usize; 2] = [256, 4096];
const METHODS: [Method; 3] = [Method::Baseline, Method::SmoothOut, Method::AdaSmoothOut];
const THREADS: usize = 2;
const IMAGE: usize = 784;
const CLASSES: usize = 10;

/// What the command line asked for.
struct Options {
    rounds: usize,
    warmup: usize,
    json: PathBuf,
    quick: bool,
}

impl Options {
    fn parse() -> Result<Options, Box<dyn Error>> {
        let mut quick = std::env::var("F1_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut rounds = None;
        let mut json = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--rounds" => {
                    let v = args.next().ok_or("--rounds needs a number")?;
                    rounds = Some(
                        v.parse::<usize>()
                            .map_err(|e| format!("--rounds {v}: {e}"))?,
                    );
                }
                "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a path")?)),
                // cargo bench passes `--bench`; other harness flags are
                // meaningless here and ignored as well.
                _ => {}
            }
        }
        let rounds = rounds.unwrap_or(if quick { 3 } else { 9 }).max(1);
        let json = json.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-f1/rust.json")
        });
        Ok(Options {
            rounds,
            warmup: if quick { 1 } else { 2 },
            json,
            quick,
        })
    }
}

/// Steps per measurement: a few tenths of a second at batch 256; a single
/// step at 4096 (16× the work), so that the three methods of a round run
/// close together in time.
fn steps_per_measurement(batch: usize, quick: bool) -> usize {
    match (batch, quick) {
        (256, false) => 8,
        (256, true) => 4,
        _ => 1,
    }
}

/// SplitMix64: a tiny fixed-seed generator for the synthetic inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// One configuration under test and its per-round timings.
struct Case {
    batch: usize,
    method: Method,
    trainer: Trainer<Cpu<f32>>,
    ms: Vec<f64>,
}

fn config(method: Method, batch: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(method, Network::F1)
        .with_batch(batch)
        // Far more steps than the bench takes, so the run never finishes
        // and the learning rate stays at 0.1.
        .with_epochs(1000);
    if method == Method::AdaSmoothOut {
        cfg.a = 0.15;
    }
    cfg.eval_train = false;
    cfg
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn json_list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
    format!("[{}]", items.join(", "))
}

fn main() -> Result<(), Box<dyn Error>> {
    let opts = Options::parse()?;

    // A synthetic MNIST-shaped training set: it fixes the input shape, the
    // class count and the steps per epoch; its pixels are never read by
    // `step_batch`.
    let n = 4096;
    let mut rng = SplitMix(0x5EED);
    let pixels: Vec<u8> = (0..n * IMAGE).map(|_| (rng.next() >> 56) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % CLASSES) as u8).collect();
    let train = Dataset::new(pixels, labels, [1, 28, 28], CLASSES, 255)?;

    // One fixed batch per size, already "normalised" (zero mean, unit-ish
    // spread), shared by the three methods.
    let inputs: Vec<(Vec<f32>, Vec<u32>)> = BATCHES
        .iter()
        .map(|&b| {
            let x = (0..b * IMAGE).map(|_| rng.unit() * 1.7).collect();
            let y = (0..b)
                .map(|_| (rng.next() % CLASSES as u64) as u32)
                .collect();
            (x, y)
        })
        .collect();

    let mut cases = Vec::new();
    for &batch in &BATCHES {
        for &method in &METHODS {
            let cpu = Cpu::<f32>::with_threads(THREADS)?;
            let trainer = Trainer::new(cpu, config(method, batch), &train)?;
            cases.push(Case {
                batch,
                method,
                trainer,
                ms: Vec::new(),
            });
        }
    }
    let isa = format!("{:?}", cases[0].trainer.backend().isa());
    println!(
        "F1 train step, f32, {THREADS} threads, kernels {isa}; {} rounds, {} warm-up steps per configuration{}",
        opts.rounds,
        opts.warmup,
        if opts.quick { " (quick)" } else { "" }
    );

    let input = |batch: usize| &inputs[BATCHES.iter().position(|&b| b == batch).unwrap_or(0)];
    for c in &mut cases {
        let (x, y) = input(c.batch);
        for _ in 0..opts.warmup {
            c.trainer.step_batch(x, y)?;
        }
    }

    let started = Instant::now();
    for round in 0..opts.rounds {
        for (bi, &batch) in BATCHES.iter().enumerate() {
            let (x, y) = input(batch);
            let k = steps_per_measurement(batch, opts.quick);
            for m in 0..METHODS.len() {
                let c = &mut cases[bi * METHODS.len() + (m + round) % METHODS.len()];
                let t0 = Instant::now();
                for _ in 0..k {
                    c.trainer.step_batch(x, y)?;
                }
                c.ms.push(t0.elapsed().as_secs_f64() * 1e3 / k as f64);
            }
        }
        eprint!("\rround {}/{}", round + 1, opts.rounds);
    }
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());

    // Per-round ratios to the baseline of the same batch.
    let ratios = |c: &Case| -> Vec<f64> {
        let base = cases
            .iter()
            .find(|b| b.batch == c.batch && b.method == Method::Baseline)
            .map_or(&c.ms, |b| &b.ms);
        c.ms.iter().zip(base).map(|(m, b)| m / b).collect()
    };

    println!();
    println!("| batch | method | ms/step (median) | min–max | images/s | × baseline (median of per-round ratios) |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\"threads\": {THREADS}, \"isa\": \"{isa}\", \"rounds\": {}, \"quick\": {}, \"results\": [",
        opts.rounds, opts.quick
    );
    for (i, c) in cases.iter().enumerate() {
        let med = median(&c.ms);
        let r = ratios(c);
        let lo = c.ms.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.ms.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {} | {med:.2} | {lo:.2}–{hi:.2} | {:.0} | {:.3} |",
            c.batch,
            c.method.name(),
            c.batch as f64 * 1e3 / med,
            median(&r)
        );
        let _ = write!(
            json,
            "{}\n  {{\"batch\": {}, \"method\": \"{}\", \"steps_per_measurement\": {}, \"ms\": {}, \"ratio_to_baseline\": {}}}",
            if i == 0 { "" } else { "," },
            c.batch,
            c.method.name(),
            steps_per_measurement(c.batch, opts.quick),
            json_list(&c.ms),
            json_list(&r)
        );
    }
    json.push_str("\n]}\n");
    if let Some(dir) = opts.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.json, json)?;
    println!("\nper-round figures: {}", opts.json.display());
    Ok(())
}
