//! candle's F1 training step at batch 256: plain, with the adapter
//! (SmoothOut, AdaSmoothOut), and the naive candle way.
//!
//! ```text
//! cargo bench -p smoothout-candle --bench step [-- --quick] [-- --rounds R]
//! ```
//!
//! A step is forward, softmax cross-entropy, backward and a momentum-SGD
//! update (lr 0.1, momentum 0.9) on a fixed synthetic batch, in `f32` on
//! candle's CPU device. The variants:
//!
//! | variant | noise |
//! |---|---|
//! | plain | none |
//! | SmoothOut | `SmoothOut::perturb` (a = 0.0375, fixed), de-noised in `step` |
//! | AdaSmoothOut | the same with `Scaling::FilterNorm` (a = 0.15) |
//! | naive | per parameter `θ = Tensor::rand(−a, a)` kept until the backward pass is done, `Var::set(w + θ)` before and `Var::set(w − θ)` after |
//!
//! Each variant has its own model. After warm-up the bench runs rounds; in
//! each round every variant runs `K` steps back to back (the order rotating
//! from round to round) and records their mean, then adds and removes each
//! variant's noise alone `K` times. It prints the median over rounds of
//! ms/step and of the per-round ratio to the plain step of the same round,
//! and the median cost of the noise alone relative to the median plain step
//! (steadier on a shared machine than the difference of two step times).
//!
//! Peak memory: each variant then runs alone in a child process (this
//! executable again, `SMOOTHOUT_CANDLE_BENCH_CHILD=<variant>`) for three
//! steps and reports its peak resident set (`VmHWM` of
//! `/proc/self/status`, Linux); the table gives it and the difference to the
//! plain child.

#[path = "../examples/f1/mod.rs"]
mod f1;

use std::error::Error;
use std::process::Command;
use std::time::Instant;

use smoothout_testkit::{median, peak_rss_kib};

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{loss::cross_entropy, Optimizer, VarBuilder, VarMap};
use smoothout::{Config, Draw, Noise, Scaling};
use smoothout_candle::SmoothOut;

use f1::{MomentumConfig, MomentumSgd, F1};

const BATCH: usize = 256;
const SGD: MomentumConfig = MomentumConfig {
    lr: 0.1,
    momentum: 0.9,
};
const A: f64 = 0.0375;
const A_ADA: f64 = 0.15;
const CHILD: &str = "SMOOTHOUT_CANDLE_BENCH_CHILD";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Plain,
    SmoothOut,
    AdaSmoothOut,
    Naive,
}

const VARIANTS: [Variant; 4] = [
    Variant::Plain,
    Variant::SmoothOut,
    Variant::AdaSmoothOut,
    Variant::Naive,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::SmoothOut => "SmoothOut",
            Variant::AdaSmoothOut => "AdaSmoothOut",
            Variant::Naive => "naive",
        }
    }
}

/// One variant's model, optimiser and step counter.
struct Case {
    variant: Variant,
    model: F1,
    opt: SmoothOut<MomentumSgd>,
    vars: Vec<Var>,
    step: u64,
    ms: Vec<f64>,
    ratio: Vec<f64>,
    /// Adding and removing the noise alone, ms per step.
    noise_ms: Vec<f64>,
}

impl Case {
    fn new(variant: Variant) -> Result<Case, Box<dyn Error>> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let model = F1::new(&VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
        // The same initial weights for every variant.
        f1::init_seeded(&varmap, 0)?;
        let config = match variant {
            Variant::AdaSmoothOut => {
                Config::new(Noise::uniform(A_ADA)?).with_scaling(Scaling::FilterNorm)
            }
            _ => Config::new(Noise::uniform(A)?),
        };
        let opt = SmoothOut::<MomentumSgd>::from_varmap(&varmap, config, SGD)?;
        // The naive way perturbs what the adapter does: weights and biases.
        let vars = opt
            .vars()
            .filter(|&(_, _, perturbed)| perturbed)
            .map(|(_, v, _)| v.clone())
            .collect();
        Ok(Case {
            variant,
            model,
            opt,
            vars,
            step: 0,
            ms: Vec::new(),
            ratio: Vec::new(),
            noise_ms: Vec::new(),
        })
    }

    fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<(), Box<dyn Error>> {
        let loss = |model: &F1| cross_entropy(&model.forward_t(x, true)?, y);
        match self.variant {
            Variant::Plain => self.opt.inner_mut().backward_step(&loss(&self.model)?)?,
            Variant::SmoothOut | Variant::AdaSmoothOut => {
                self.opt.perturb(Draw::new(self.step, 0))?;
                self.opt.backward_step(&loss(&self.model)?)?;
            }
            Variant::Naive => {
                let thetas = self.naive_add()?;
                let grads = loss(&self.model)?.backward()?;
                self.naive_remove(&thetas)?;
                self.opt.inner_mut().step(&grads)?;
            }
        }
        self.step += 1;
        Ok(())
    }

    /// The naive way's noise: a fresh `θ` per parameter, kept, and `w + θ`.
    fn naive_add(&self) -> candle_core::Result<Vec<Tensor>> {
        let mut thetas = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let theta = Tensor::rand(-A as f32, A as f32, v.shape(), v.device())?;
            v.set(&v.as_tensor().add(&theta)?)?;
            thetas.push(theta);
        }
        Ok(thetas)
    }

    /// `w − θ` for the naive way's kept `θ`.
    fn naive_remove(&self, thetas: &[Tensor]) -> candle_core::Result<()> {
        for (v, theta) in self.vars.iter().zip(thetas) {
            v.set(&v.as_tensor().sub(theta)?)?;
        }
        Ok(())
    }

    /// Adding and removing the noise once, without the training step.
    fn noise_only(&mut self) -> Result<(), Box<dyn Error>> {
        match self.variant {
            Variant::Plain => {}
            Variant::SmoothOut | Variant::AdaSmoothOut => {
                self.opt.perturb(Draw::new(self.step, 0))?;
                self.opt.denoise()?;
            }
            Variant::Naive => {
                let thetas = self.naive_add()?;
                self.naive_remove(&thetas)?;
            }
        }
        self.step += 1;
        Ok(())
    }
}

/// A fixed synthetic batch: standard-normal images, cycling labels.
fn batch() -> candle_core::Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (BATCH, f1::F1::SHAPE.0), &dev)?;
    let y: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    Ok((x, Tensor::new(y, &dev)?))
}

/// Child mode: a few steps of one variant, then its peak RSS on stdout.
fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let variant = VARIANTS
        .into_iter()
        .find(|v| v.name() == name)
        .ok_or_else(|| format!("unknown variant {name}"))?;
    let (x, y) = batch()?;
    let mut case = Case::new(variant)?;
    for _ in 0..3 {
        case.step(&x, &y)?;
    }
    println!("{}", peak_rss_kib().ok_or("no VmHWM in /proc/self/status")?);
    Ok(())
}

fn child_rss(variant: Variant) -> Result<Option<u64>, Box<dyn Error>> {
    let out = Command::new(std::env::current_exe()?)
        .env(CHILD, variant.name())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "child {} failed: {}",
            variant.name(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(name) = std::env::var(CHILD) {
        return child(&name);
    }
    let mut quick = false;
    let mut rounds = None;
    let mut bench = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--rounds" => {
                rounds = Some(
                    args.next()
                        .ok_or("--rounds needs a number")?
                        .parse::<usize>()?,
                )
            }
            "--bench" => bench = true,
            // Other harness flags mean nothing here.
            _ => {}
        }
    }
    // Under `cargo test --all-targets` (no `--bench`): one step per variant
    // and no memory children, so that the test run checks the bench works
    // without timing anything.
    let smoke = !bench && rounds.is_none() && !quick;
    let rounds = rounds
        .unwrap_or(if smoke {
            1
        } else if quick {
            3
        } else {
            15
        })
        .max(1);
    let (steps, warmup) = if smoke {
        (1, 0)
    } else if quick {
        (3, 1)
    } else {
        (5, 2)
    };

    let (x, y) = batch()?;
    let mut cases = VARIANTS
        .into_iter()
        .map(Case::new)
        .collect::<Result<Vec<_>, _>>()?;
    for case in &mut cases {
        for _ in 0..warmup {
            case.step(&x, &y)?;
        }
    }
    for round in 0..rounds {
        let mut ms = [0.0; VARIANTS.len()];
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let t = Instant::now();
            for _ in 0..steps {
                cases[i].step(&x, &y)?;
            }
            ms[i] = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
        }
        for (case, &m) in cases.iter_mut().zip(&ms) {
            case.ms.push(m);
            case.ratio.push(m / ms[0]);
        }
        for case in &mut cases {
            let t = Instant::now();
            for _ in 0..steps {
                case.noise_only()?;
            }
            case.noise_ms
                .push(t.elapsed().as_secs_f64() * 1e3 / steps as f64);
        }
    }

    println!(
        "candle 0.11 F1 step, batch {BATCH}, f32 CPU, {rounds} rounds × {steps} steps (medians)"
    );
    println!(
        "| variant | ms/step | ratio to plain | noise alone (ms) | noise / plain step | peak RSS (MiB) | Δ RSS (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let plain_ms = median(&cases[0].ms);
    // The smoke run skips the children (four more processes in a debug build).
    let rss_of = |v: Variant| if smoke { Ok(None) } else { child_rss(v) };
    let plain_rss = rss_of(Variant::Plain)?;
    for case in &cases {
        let rss = if case.variant == Variant::Plain {
            plain_rss
        } else {
            rss_of(case.variant)?
        };
        let mib = |k: u64| k as f64 / 1024.0;
        let (rss_s, delta_s) = match (rss, plain_rss) {
            (Some(r), Some(p)) => (format!("{:.1}", mib(r)), format!("{:+.1}", mib(r) - mib(p))),
            _ => ("n/a".into(), "n/a".into()),
        };
        let noise = median(&case.noise_ms);
        println!(
            "| {} | {:.2} | {:.3} | {noise:.2} | {:.3} | {rss_s} | {delta_s} |",
            case.variant.name(),
            median(&case.ms),
            median(&case.ratio),
            noise / plain_ms,
        );
    }
    Ok(())
}
