//! Time, allocations and memory of one training step of F1, C1 or
//! ResNet-44: baseline, SmoothOut and AdaSmoothOut.
//!
//! The networks (`--net`, one per process, so that the peak memory is the
//! network's):
//!
//! * `f1` (default): the paper's MNIST network, `784 → [Linear 512 →
//!   BatchNorm → ReLU]×5 → Linear 10`, on 1×28×28 inputs, at batch 256 and
//!   4096;
//! * `c1`: the shallow CIFAR network (`networks::cifar_shallow`, two 5×5
//!   convolutions with max-pool and BatchNorm, then `3136 → 384 → 192 →
//!   10` with BatchNorm and dropout), on 3×32×32 inputs, at batch 128;
//! * `resnet44`: ResNet-44 with 1×1-projection shortcuts
//!   (`networks::resnet_cifar`), on 3×32×32 inputs, at batch 128.
//!
//! `--batch N` times batch `N` alone instead. Ten classes, softmax
//! cross-entropy, SGD (momentum 0.9, lr 0.1, no weight decay) in `f32` on
//! a two-thread CPU backend. A step is [`Trainer::step_batch`]: forward,
//! loss, backward and update, plus perturbing and de-noising for the
//! SmoothOut methods; no data loading.
//!
//! ```text
//! cargo bench -p smoothout-models --bench train_step [-- --net f1|c1|resnet44] [-- --batch N]
//!     [-- --quick] [-- --rounds R] [-- --json PATH]
//! ```
//!
//! Each configuration (batch × three methods) gets its own trainer, all of
//! them alive for the whole run. After warm-up (two steps at least) the
//! bench counts the heap allocations of one more step of each
//! configuration (a counting global
//! allocator around `System`: calls to `alloc`, `alloc_zeroed` and
//! `realloc`, on every thread, and the bytes they ask for, `realloc`
//! counting its new size), then runs rounds: in every round each
//! configuration runs `K` steps back to back and records their mean. The
//! order of the methods rotates from round to round, so that a neighbour
//! who slows the machine down for a while hurts every method alike. Per
//! configuration it prints the median over rounds of ms/step, images/s,
//! the median over rounds of the per-round ratio to the baseline of the
//! same batch (both timed in the same round, seconds apart), and the
//! allocations and allocated MiB of the counted step. Last, the process's
//! peak resident memory (VmHWM of `/proc/self/status`; "n/a" off Linux):
//! every configuration's trainer included, as the PyTorch side
//! (`step_torch.py`) keeps every configuration's model.
//!
//! The counting costs two relaxed atomic additions per allocation, in
//! every method alike.
//!
//! Rounds: 9 (`--quick` or `STEP_BENCH_QUICK=1`: 3), 2 warm-up steps (quick:
//! 1); `--rounds R` sets the rounds. `--json PATH` (default
//! `target/bench-step/rust.json` at the workspace root) receives every
//! per-round figure, the allocation counts and the peak memory, for
//! `scripts/bench-step.sh` to pool with the PyTorch runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use smoothout_cpu::Cpu;
use smoothout_models::data::Dataset;
use smoothout_models::train::{Method, Network, TrainConfig, Trainer};
use smoothout_testkit::{json_list, peak_rss_kib, timing_cells, write_json, SplitMix64};

const METHODS: [Method; 3] = [Method::Baseline, Method::SmoothOut, Method::AdaSmoothOut];
const THREADS: usize = 2;
const CLASSES: usize = 10;

/// Heap allocations and the bytes they asked for, over every thread.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocations into [`ALLOCS`] and
/// [`ALLOC_BYTES`].
struct Counting;

fn count(bytes: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    ALLOC_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// (allocations, bytes) so far.
fn allocated() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    )
}

/// The process's peak resident memory in MiB (VmHWM), on Linux.
fn max_rss_mib() -> Option<f64> {
    peak_rss_kib().map(|kib| kib as f64 / 1024.0)
}

/// The network under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    F1,
    C1,
    ResNet44,
}

impl Net {
    fn parse(s: &str) -> Result<Net, String> {
        match s {
            "f1" => Ok(Net::F1),
            "c1" => Ok(Net::C1),
            "resnet44" => Ok(Net::ResNet44),
            _ => Err(format!("--net {s}: use f1, c1 or resnet44")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Net::F1 => "f1",
            Net::C1 => "c1",
            Net::ResNet44 => "resnet44",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Net::F1 => "F1",
            Net::C1 => "C1",
            Net::ResNet44 => "ResNet-44",
        }
    }

    fn network(self) -> Network {
        match self {
            Net::F1 => Network::F1,
            Net::C1 => Network::CifarShallow,
            Net::ResNet44 => Network::ResNet44,
        }
    }

    fn image_shape(self) -> [usize; 3] {
        match self {
            Net::F1 => [1, 28, 28],
            Net::C1 | Net::ResNet44 => [3, 32, 32],
        }
    }

    fn default_batches(self) -> Vec<usize> {
        match self {
            Net::F1 => vec![256, 4096],
            Net::C1 | Net::ResNet44 => vec![128],
        }
    }

    /// Steps per measurement. F1: a few tenths of a second at batch 256; a
    /// single step at 4096 (16× the work), so that the three methods of a
    /// round run close together in time. The convolutional networks take
    /// a few tenths of a second to seconds a step at batch 128: one.
    fn steps_per_measurement(self, batch: usize, quick: bool) -> usize {
        match (self, batch, quick) {
            (Net::F1, 256, false) => 8,
            (Net::F1, 256, true) => 4,
            _ => 1,
        }
    }

    /// The configuration of `method` at `batch`: the default
    /// [`TrainConfig`] of the network (SmoothOut's and AdaSmoothOut's
    /// `a = 0.0375`), except F1's AdaSmoothOut at the paper's `a = 0.15`.
    fn config(self, method: Method, batch: usize) -> TrainConfig {
        let mut cfg = TrainConfig::new(method, self.network())
            .with_batch(batch)
            // Far more steps than the bench takes, so the run never
            // finishes and the learning rate stays at 0.1.
            .with_epochs(1000);
        if self == Net::F1 && method == Method::AdaSmoothOut {
            cfg.a = 0.15;
        }
        cfg.eval_train = false;
        cfg
    }
}

/// What the command line asked for.
struct Options {
    net: Net,
    batches: Vec<usize>,
    rounds: usize,
    warmup: usize,
    json: PathBuf,
    quick: bool,
}

impl Options {
    fn parse() -> Result<Options, Box<dyn Error>> {
        let mut quick = std::env::var("STEP_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut net = Net::F1;
        let mut batch = None;
        let mut rounds = None;
        let mut json = None;
        let number = |flag: &str, v: Option<String>| -> Result<usize, String> {
            let v = v.ok_or_else(|| format!("{flag} needs a number"))?;
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} {v}: not a number > 0"))
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--net" => net = Net::parse(&args.next().ok_or("--net needs a name")?)?,
                "--batch" => batch = Some(number("--batch", args.next())?),
                "--rounds" => rounds = Some(number("--rounds", args.next())?),
                "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a path")?)),
                // cargo bench passes `--bench`; other harness flags are
                // meaningless here and ignored as well.
                _ => {}
            }
        }
        let json = json.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-step/rust.json")
        });
        Ok(Options {
            net,
            batches: batch.map_or_else(|| net.default_batches(), |b| vec![b]),
            rounds: rounds.unwrap_or(if quick { 3 } else { 9 }),
            warmup: if quick { 1 } else { 2 },
            json,
            quick,
        })
    }
}

/// One configuration under test, its per-round timings and the
/// allocations of its counted step.
struct Case {
    batch: usize,
    method: Method,
    trainer: Trainer<Cpu<f32>>,
    ms: Vec<f64>,
    allocs: u64,
    alloc_bytes: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Steps run before the step whose allocations are counted.
const STEADY_AFTER: usize = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let opts = Options::parse()?;
    let net = opts.net;
    let shape = net.image_shape();
    let image: usize = shape.iter().product();

    // A synthetic training set of one batch of the largest size (4096 for
    // F1's default sizes, which every size divides): it fixes the input
    // shape, the class count, the normalisation and the steps per epoch;
    // its pixels are never read by `step_batch`.
    let n = opts.batches.iter().copied().max().unwrap_or(1);
    let mut rng = SplitMix64(0x5EED);
    let pixels = rng.bytes(n * image);
    let labels: Vec<u8> = (0..n).map(|i| (i % CLASSES) as u8).collect();
    let train = Dataset::new(pixels, labels, shape, CLASSES, 255)?;

    // One fixed batch per size, already "normalised" (zero mean, unit-ish
    // spread), shared by the three methods.
    let inputs: Vec<(Vec<f32>, Vec<u32>)> = opts
        .batches
        .iter()
        .map(|&b| rng.batch(b, image, CLASSES))
        .collect();

    let mut cases = Vec::new();
    for &batch in &opts.batches {
        for &method in &METHODS {
            let cpu = Cpu::<f32>::with_threads(THREADS)?;
            let trainer = Trainer::new(cpu, net.config(method, batch), &train)?;
            cases.push(Case {
                batch,
                method,
                trainer,
                ms: Vec::new(),
                allocs: 0,
                alloc_bytes: 0,
            });
        }
    }
    drop(train);
    let isa = format!("{:?}", cases[0].trainer.backend().isa());
    let params = cases[0].trainer.network().num_params();
    println!(
        "{} train step ({params} parameters), f32, {THREADS} threads, kernels {isa}; {} rounds, {} warm-up steps per configuration{}",
        net.title(),
        opts.rounds,
        opts.warmup,
        if opts.quick { " (quick)" } else { "" }
    );

    let input = |batch: usize| &inputs[opts.batches.iter().position(|&b| b == batch).unwrap_or(0)];
    for c in &mut cases {
        let (x, y) = input(c.batch);
        // Two steps at least before the counted one: a step's input
        // buffer is handed back only when the next step's forward pass
        // replaces it in the first layer's cache, so the second step still
        // takes a new one.
        for _ in 0..opts.warmup.max(STEADY_AFTER) {
            c.trainer.step_batch(x, y)?;
        }
        let (a0, b0) = allocated();
        c.trainer.step_batch(x, y)?;
        let (a1, b1) = allocated();
        (c.allocs, c.alloc_bytes) = (a1 - a0, b1 - b0);
    }

    let started = Instant::now();
    for round in 0..opts.rounds {
        for (bi, &batch) in opts.batches.iter().enumerate() {
            let (x, y) = input(batch);
            let k = net.steps_per_measurement(batch, opts.quick);
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
    println!("| batch | method | ms/step (median) | min–max | images/s | × baseline (median of per-round ratios) | allocations/step | MiB allocated/step |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let rss = max_rss_mib();
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\"net\": \"{}\", \"params\": {params}, \"threads\": {THREADS}, \"isa\": \"{isa}\", \"rounds\": {}, \"warmup\": {}, \"quick\": {}, \"max_rss_mib\": {}, \"results\": [",
        net.name(),
        opts.rounds,
        opts.warmup,
        opts.quick,
        rss.map_or_else(|| "null".to_string(), |m| format!("{m:.1}"))
    );
    for (i, c) in cases.iter().enumerate() {
        let r = ratios(c);
        let mib = c.alloc_bytes as f64 / MIB;
        let cells = timing_cells(c.batch, c.method.name(), &c.ms, &r);
        println!("{cells} {} | {mib:.1} |", c.allocs);
        let _ = write!(
            json,
            "{}\n  {{\"batch\": {}, \"method\": \"{}\", \"a\": {}, \"steps_per_measurement\": {}, \"ms\": {}, \"ratio_to_baseline\": {}, \"allocs_per_step\": {}, \"alloc_mib_per_step\": {mib:.3}}}",
            if i == 0 { "" } else { "," },
            c.batch,
            c.method.name(),
            c.trainer.config().a,
            net.steps_per_measurement(c.batch, opts.quick),
            json_list(&c.ms),
            json_list(&r),
            c.allocs,
        );
    }
    json.push_str("\n]}\n");
    println!(
        "\nmax RSS: {}",
        rss.map_or_else(|| "n/a".to_string(), |m| format!("{m:.1} MiB"))
    );
    write_json(Some(&opts.json), &json)?;
    println!("per-round figures: {}", opts.json.display());
    Ok(())
}
