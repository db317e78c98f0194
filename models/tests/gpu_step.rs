//! One training step on the CUDA backend against the CPU backend: F1, C1,
//! and an AdaSmoothOut step on F1.
//!
//! Each test builds its network twice, on `Cpu::<f32>::with_threads(1)` and
//! on [`Cuda`], from the same seed, and feeds both the same synthetic batch.
//! Without a GPU (or the CUDA libraries) every test prints
//! `skipped: <reason>` and passes.
//!
//! # Two comparisons
//!
//! **Layer by layer, on the same inputs.** The network is run one layer at
//! a time; each layer of both backends gets the *CPU's* input (forward) and
//! the *CPU's* upstream gradient (backward). Every layer is then compared
//! at exactly the same point, so each output, input gradient and parameter
//! gradient has a bound derived from that one operation alone (table
//! below). This is how every parameter gradient is checked: comparing the
//! gradients of two free-running passes would not work, because a ReLU
//! input or a max-pool window that is within rounding of a tie can go the
//! other way on the other backend, which moves that sample's gradient by
//! its whole size: no rounding bound covers it, and any bound loose enough
//! to would hide real bugs.
//!
//! **End to end, through [`Trainer::step_batch`].** Forward values are
//! continuous in the rounding (a flipped ReLU moves its output by no more
//! than the rounding that flipped it), so the *loss* of two free-running
//! trainers is compared. To first order its difference is
//! `Σ_layers Σ_i g_i e_i`, with `g_i = ∂loss/∂y_i` (the CPU's upstream
//! gradients of the layer-by-layer pass) and `e_i` the rounding difference
//! each layer adds in the free-running pass. These `e_i` are not the ones
//! measured layer by layer (a rounding difference is not a smooth function
//! of the inputs, and the inputs now differ), but they come from the same
//! operations on nearly the same data, so they are modelled as independent
//! and mean-zero, with the spread measured layer by layer:
//!
//! ```text
//! σ_l² = mean_i ((cuda_i − cpu_i) / mag_i)²                    (Linear, Conv2d layer l, same inputs)
//! Var  = Σ_l σ_l² Σ_i (g_i mag_i)²  +  Σ_BatchNorm Σ_i (g_i ε y_i)²
//! |Δloss| ≤ λ √Var + 2 Σ_BatchNorm channels |γ| s (δμ |Σ_i g_i| + ε_v/2 |Σ_i g_i x̂_i|) + bound(loss),   λ = 10
//! ```
//!
//! The second term is BatchNorm's statistics landing one `f32` step apart,
//! a shift shared by a whole channel (so summed in full, not in
//! quadrature). A 10σ margin leaves room for a non-Gaussian sum, a few
//! flipped ReLUs and second-order terms; the worst-case alternative,
//! `Σ |g_i| · bound_i` with the GEMM bounds below, is 10⁵ to 10⁶ times the
//! differences seen and would let a wrong loss through. The CPU trainer's
//! loss must equal the layer-by-layer CPU loss bit for bit, which checks
//! that this file builds the same network, perturbation and dropout masks
//! as `networks::f1` / `networks::c1` and the trainer.
//!
//! # Tolerances
//!
//! `ε = f32::EPSILON = 2⁻²³` (the spacing of `f32` at 1; two correctly
//! rounded results of the same real number differ by at most `ε |x|`).
//! "mag" is the same layer evaluated on absolute values (`|x|`, `|W|`,
//! `|b|`, `|dy|`) in `f64`, i.e. `Σ_p |a_p| |b_p|` for every output.
//!
//! | quantity | bound on `|cuda − cpu|` | why |
//! |---|---|---|
//! | Linear / Conv2d output, input gradient, weight and bias gradient | `2 (k + 2) ε · mag`, `k` the products summed into one output: Linear `in` (forward), `out` (dx), `N` (dW, db); Conv2d `C·k²` (forward), `F·k²` (dx: `F` per column entry, then col2im adds up to `k²` entries), `N·H'·W'` (dW) | cuBLAS sums in another order than the CPU's blocked kernel; each result is within `γ_k · mag` of the exact sum (Higham, *Accuracy and Stability*, §3.1); the bias add or β is one more rounding. The bound of `smoothout::testgen::tensor`'s GEMM row |
//! | BatchNorm output | `2 (ε|y| + |γ| s (δμ + |x − μ| ε_v / 2))` | the statistics are `f64` sums in another order, each rounded once to `f32`: `μ` and `σ²` may land one `f32` step apart, `δμ = ε|μ| + 2⁻⁵² Σ|x|`, relative `ε_v = ε + M·2⁻⁵²` for `σ²` (`M` elements per channel, `s = 1/√(σ² + 10⁻⁵)`); `y` is then one rounding of an `f64` formula |
//! | BatchNorm dx, dγ, dβ | first-order propagation of the same `δμ`, `ε_v` through `dx = γ s / M · (M dy − Σdy − x̂ Σ dy x̂)`, plus `M·2⁻⁵²` of each `f64` sum's absolute terms (summation order) and one `f32` rounding of each result; doubled | as above |
//! | BatchNorm running mean / variance | `2 (0.1 δμ + ε|r|)`, `2 (0.1 M/(M−1) σ² ε_v + ε|r|)` | one `axpy` of the batch statistics |
//! | ReLU, max-pool, dropout: output and input gradient | equal | the same inputs, element-wise or first-maximum rules, the same Philox mask on both backends |
//! | loss (same logits) | `2 (classes + N + 8) 2⁻⁵² (1 + loss)` | each row in `f64` (CUDA's `exp`/`log` are within 1 ulp of libm's), rows summed in another order |
//! | ∂loss/∂logits (same logits) | `ε |d| + 2 (classes + 6) 2⁻⁵² / N` | `f64` per row, one rounding to `f32` |
//! | AdaSmoothOut: perturbed weights | equal | the perturbation is bit-identical on every backend |
//! | AdaSmoothOut: weights after the fused de-noise + SGD step | `2 (lr · bound(g) + ε (lr |g| + |w|))`; velocity `2 (bound(g) + ε|v|)` | de-noising regenerates the same θ; the weights then differ only through the gradients, plus the update's roundings |
//! | end-to-end loss (two trainers) | see above | first-order propagation of the rows above |
//!
//! The same comparison runs without a GPU between the CPU backend and the
//! reference backend (`smoothout::Reference`, plain loops summing in yet
//! another order), so that the bounds and the bookkeeping are exercised
//! on every machine. Each comparison prints its largest `|Δ| / bound`.

use std::sync::OnceLock;

use smoothout::tensor::TensorBackend;
use smoothout::{BufferOps, Draw, ParamSpec, Real, Reference, Sgd, SmoothOut};
use smoothout_cpu::Cpu;
use smoothout_cuda::Cuda;
use smoothout_models::data::{seeded_rng, Dataset};
use smoothout_models::layers::{
    Activation, BatchNorm, Conv2d, Dropout, Layer, Linear, MaxPool2d, Relu, SoftmaxCrossEntropy,
};
use smoothout_models::train::{Method, Network, PerturbSet, TrainConfig, Trainer};
use smoothout_testkit::SplitMix64;

use rand_core::RngCore;

type C32 = Cpu<f32>;
type C64 = Cpu<f64>;

const EPS: f64 = f32::EPSILON as f64;
/// 2⁻⁵², the unit of an `f64` sum's order dependence.
const EPS64: f64 = f64::EPSILON;
/// BatchNorm's ε and momentum (the layer's defaults).
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;
const SEED: u64 = 20_240_611;
const CLASSES: usize = 10;
const LR: f64 = 0.1;
/// Standard deviations in the end-to-end loss bound.
const LAMBDA: f64 = 10.0;

/// The backend under test (created once per process: compiling the kernels
/// takes a moment), or `None` after printing why there is none.
fn gpu() -> Option<Cuda> {
    static GPU: OnceLock<Result<Cuda, String>> = OnceLock::new();
    match GPU.get_or_init(|| {
        smoothout_cuda::standin::test_backend(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    }) {
        Ok(g) => Some(g.clone()),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

// ------------------------------------------------------------ networks ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    F1,
    C1,
}

impl Net {
    fn network(self) -> Network {
        match self {
            Net::F1 => Network::F1,
            Net::C1 => Network::CifarShallow,
        }
    }
    fn image(self) -> [usize; 3] {
        match self {
            Net::F1 => [1, 28, 28],
            Net::C1 => [3, 32, 32],
        }
    }
}

/// How a layer's results are compared.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Linear {
        inputs: usize,
        outputs: usize,
        /// A Linear before a BatchNorm: bias zero and not a parameter (the
        /// networks' `LinearNoBias`).
        hidden_bias: bool,
    },
    Conv {
        channels: usize,
        filters: usize,
        kernel: usize,
    },
    BatchNorm,
    /// ReLU, max-pool, dropout.
    Exact,
}

struct Built<B: TensorBackend> {
    name: String,
    kind: Kind,
    layer: Box<dyn Layer<B>>,
}

fn push<B: TensorBackend>(
    v: &mut Vec<Built<B>>,
    name: impl Into<String>,
    kind: Kind,
    layer: impl Layer<B> + 'static,
) {
    v.push(Built {
        name: name.into(),
        kind,
        layer: Box::new(layer),
    });
}

fn linear<B: TensorBackend + 'static>(
    b: &B,
    v: &mut Vec<Built<B>>,
    name: String,
    (inputs, outputs, seed): (usize, usize, u64),
    hidden_bias: bool,
) -> smoothout::Result<()> {
    let mut l = Linear::new(b, inputs, outputs, seed)?.named(name.clone());
    if hidden_bias {
        *l.params_mut()[1] = b.zeros(outputs)?;
    }
    let kind = Kind::Linear {
        inputs,
        outputs,
        hidden_bias,
    };
    push(v, name, kind, l);
    Ok(())
}

/// A BatchNorm over `channels` and a ReLU, named `bn` and `relu`.
fn bn_relu<B: TensorBackend + 'static>(
    b: &B,
    v: &mut Vec<Built<B>>,
    [bn, relu]: [String; 2],
    channels: usize,
) -> smoothout::Result<()> {
    let layer = BatchNorm::new(b, channels)?.named(bn.clone());
    push(v, bn, Kind::BatchNorm, layer);
    push(v, relu, Kind::Exact, Relu::<B>::new());
    Ok(())
}

/// The network as a list of layers, drawing the layers' seeds in the order
/// of `networks::mlp` (F1) and `networks::cifar_shallow` (C1).
fn build<B: TensorBackend + 'static>(b: &B, net: Net) -> smoothout::Result<Vec<Built<B>>> {
    let mut rng = seeded_rng(SEED);
    let mut v = Vec::new();
    match net {
        Net::F1 => {
            let mut fan_in = 784;
            for i in 1..=5 {
                linear(
                    b,
                    &mut v,
                    format!("fc{i}"),
                    (fan_in, 512, rng.next_u64()),
                    false,
                )?;
                bn_relu(b, &mut v, [format!("bn{i}"), format!("relu{i}")], 512)?;
                fan_in = 512;
            }
            linear(
                b,
                &mut v,
                "fc6".into(),
                (512, CLASSES, rng.next_u64()),
                false,
            )?;
        }
        Net::C1 => {
            for (i, channels) in [(0, 3), (4, 64)] {
                let conv = Conv2d::new(b, channels, 64, 5, 1, 2, rng.next_u64())?
                    .without_bias()
                    .named(format!("features.{i}"));
                let kind = Kind::Conv {
                    channels,
                    filters: 64,
                    kernel: 5,
                };
                push(&mut v, format!("features.{i}"), kind, conv);
                push(
                    &mut v,
                    format!("features.{}", i + 1),
                    Kind::Exact,
                    MaxPool2d::<B>::new(3, 2, 0),
                );
                let names = [i + 2, i + 3].map(|k| format!("features.{k}"));
                bn_relu(b, &mut v, names, 64)?;
            }
            for (stream, (fan_in, width, i)) in
                [(3136, 384, 0), (384, 192, 4)].into_iter().enumerate()
            {
                linear(
                    b,
                    &mut v,
                    format!("classifier.{i}"),
                    (fan_in, width, rng.next_u64()),
                    true,
                )?;
                let names = [i + 1, i + 2].map(|k| format!("classifier.{k}"));
                bn_relu(b, &mut v, names, width)?;
                let drop = Dropout::new(0.5, rng.next_u64())?.with_stream(stream as u64);
                push(&mut v, format!("classifier.{}", i + 3), Kind::Exact, drop);
            }
            linear(
                b,
                &mut v,
                "classifier.8".into(),
                (192, CLASSES, rng.next_u64()),
                false,
            )?;
        }
    }
    Ok(v)
}

/// One layer on the CPU, on the backend under test, and (Linear and
/// Conv2d) on absolute values in `f64`.
struct Stage<G: TensorBackend<Elem = f32>> {
    name: String,
    kind: Kind,
    cpu: Box<dyn Layer<C32>>,
    dev: Box<dyn Layer<G>>,
    mag: Option<Box<dyn Layer<C64>>>,
}

impl<G: TensorBackend<Elem = f32>> Stage<G> {
    /// Whether parameter `j` of this layer is one of the network's.
    fn visible(&self, j: usize) -> bool {
        !matches!(self.kind, Kind::Linear { hidden_bias: true, .. } if j == 1)
    }
}

/// The three backends of a comparison.
struct Backends<'a, G> {
    cpu: &'a C32,
    dev: &'a G,
    mag: &'a C64,
}

fn host<B: TensorBackend>(b: &B, buf: &B::Buffer) -> Vec<f64> {
    b.to_vec(buf)
        .expect("read back")
        .into_iter()
        .map(Real::to_f64)
        .collect()
}

/// `v` of `shape` uploaded to `b`: a layer's input.
fn input<B: TensorBackend>(b: &B, v: &[B::Elem], shape: &[usize]) -> Activation<B> {
    Activation::new(b.upload(v).expect("upload"), shape)
}

fn host32<B: TensorBackend<Elem = f32>>(b: &B, buf: &B::Buffer) -> Vec<f32> {
    b.to_vec(buf).expect("read back")
}

/// A layer's buffers (running statistics) on the host.
fn buffers32<B: TensorBackend<Elem = f32>>(b: &B, layer: &dyn Layer<B>) -> Vec<Vec<f32>> {
    layer
        .buffers()
        .into_iter()
        .map(|(_, v)| host32(b, v))
        .collect()
}

fn abs64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x).abs()).collect()
}

fn stages<G: TensorBackend<Elem = f32> + 'static>(bk: &Backends<'_, G>, net: Net) -> Vec<Stage<G>> {
    let cpu = build(bk.cpu, net).expect("cpu network");
    let dev = build(bk.dev, net).expect("device network");
    let mag = build(bk.mag, net).expect("f64 network");
    cpu.into_iter()
        .zip(dev)
        .zip(mag)
        .map(|((c, d), m)| {
            let mag = match c.kind {
                Kind::Linear { .. } | Kind::Conv { .. } => {
                    let mut m = m.layer;
                    for (p, q) in m.params_mut().into_iter().zip(c.layer.params()) {
                        *p = bk.mag.upload(&abs64(&host32(bk.cpu, q))).expect("upload");
                    }
                    Some(m)
                }
                _ => None,
            };
            Stage {
                name: c.name,
                kind: c.kind,
                cpu: c.layer,
                dev: d.layer,
                mag,
            }
        })
        .collect()
}

/// The network's parameters of the CPU layers, in spec order, on the host.
fn cpu_params<G: TensorBackend<Elem = f32>>(cpu: &C32, st: &[Stage<G>]) -> Vec<Vec<f32>> {
    st.iter()
        .flat_map(|s| {
            s.cpu
                .params()
                .into_iter()
                .enumerate()
                .filter(|(j, _)| s.visible(*j))
                .map(|(_, p)| host32(cpu, p))
                .collect::<Vec<_>>()
        })
        .collect()
}

// -------------------------------------------------------------- report ----

/// Every comparison of a test, printed as a table row as it is made (so
/// that a panic half-way leaves the rows before it); the test fails at the
/// end if any element was out of bounds, listing every offender.
struct Report {
    title: String,
    failures: Vec<String>,
}

impl Report {
    fn new(title: &str) -> Report {
        eprintln!(
            "\n{title}\n| quantity | elements | max |Δ|/bound | max |Δ| | out of bounds |\n|---|---:|---:|---:|---:|"
        );
        Report {
            title: title.to_string(),
            failures: Vec::new(),
        }
    }

    fn row(&self, what: &str, n: usize, worst: f64, max_abs: f64, bad: usize) {
        eprintln!("| {what} | {n} | {worst:.3e} | {max_abs:.3e} | {bad} |");
    }

    /// `|got − want| ≤ tol` element by element (`tol = 0`: equal).
    fn within(&mut self, what: &str, got: &[f32], want: &[f32], tol: &[f64]) {
        if got.len() != want.len() || tol.len() != want.len() {
            self.failures.push(format!(
                "{what}: lengths differ (got {}, want {}, bounds {})",
                got.len(),
                want.len(),
                tol.len()
            ));
            self.row(what, got.len(), f64::NAN, f64::NAN, got.len());
            return;
        }
        let (mut worst, mut max_abs, mut bad) = (0.0f64, 0.0f64, 0usize);
        let mut first = None;
        for (i, ((&g, &w), &t)) in got.iter().zip(want).zip(tol).enumerate() {
            let d = (f64::from(g) - f64::from(w)).abs();
            let ok = g == w || (d.is_finite() && d <= t);
            let ratio = if d == 0.0 || g == w {
                0.0
            } else if t > 0.0 {
                d / t
            } else {
                f64::INFINITY
            };
            worst = worst.max(ratio);
            if d.is_finite() {
                max_abs = max_abs.max(d);
            }
            if !ok {
                bad += 1;
                first.get_or_insert(format!(
                    "[{i}] got {g:e}, want {w:e}, |Δ| {d:e}, bound {t:e}"
                ));
            }
        }
        if let Some(f) = first {
            self.failures.push(format!(
                "{what}: {bad} of {} out of bounds, first {f}",
                got.len()
            ));
        }
        self.row(what, got.len(), worst, max_abs, bad);
    }

    fn exact(&mut self, what: &str, got: &[f32], want: &[f32]) {
        self.within(what, got, want, &vec![0.0; want.len()]);
    }

    fn scalar(&mut self, what: &str, got: f64, want: f64, tol: f64) {
        let d = (got - want).abs();
        let ok = got == want || d <= tol;
        if !ok {
            self.failures.push(format!(
                "{what}: got {got:e}, want {want:e}, |Δ| {d:e}, bound {tol:e}"
            ));
        }
        let ratio = if d == 0.0 { 0.0 } else { d / tol };
        self.row(what, 1, ratio, d, usize::from(!ok));
    }

    /// A step that could not run at all.
    fn error(&mut self, what: &str, e: impl std::fmt::Display) {
        self.failures.push(format!("{what}: {e}"));
        eprintln!("| {what} | failed: {e} | | | |");
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} comparison(s) out of bounds or failed:\n{}",
            self.title,
            self.failures.len(),
            self.failures.join("\n")
        );
        eprintln!("{}: every comparison within its bound", self.title);
    }
}

// -------------------------------------------------------------- bounds ----

/// The GEMM bound `2 (k + 2) ε · mag`.
fn gemm_tol(k: usize, mag: &[f64]) -> Vec<f64> {
    let c = 2.0 * (k as f64 + 2.0) * EPS;
    mag.iter().map(|m| c * m).collect()
}

/// Per-channel statistics of a BatchNorm input, in `f64`, and how far the
/// two backends' `f32` statistics may lie apart.
struct BnStats {
    channels: usize,
    spatial: usize,
    /// Elements per channel.
    m: f64,
    mu: Vec<f64>,
    var: Vec<f64>,
    /// `1 / √(σ² + ε_bn)`.
    inv: Vec<f64>,
    /// `δμ = ε|μ| + 2⁻⁵² Σ|x|`.
    dmu: Vec<f64>,
    /// Relative distance of the two `σ²`: `ε + M·2⁻⁵²`.
    evar: f64,
}

impl BnStats {
    fn new(x: &[f32], shape: &[usize]) -> BnStats {
        let channels = shape[1];
        let spatial: usize = shape[2..].iter().product();
        let m = (x.len() / channels) as f64;
        let ch = |e: usize| (e / spatial) % channels;
        let (mut sum, mut abs) = (vec![0.0; channels], vec![0.0; channels]);
        for (e, &v) in x.iter().enumerate() {
            sum[ch(e)] += f64::from(v);
            abs[ch(e)] += f64::from(v).abs();
        }
        let mu: Vec<f64> = sum.iter().map(|s| s / m).collect();
        let mut var = vec![0.0; channels];
        for (e, &v) in x.iter().enumerate() {
            let d = f64::from(v) - mu[ch(e)];
            var[ch(e)] += d * d;
        }
        var.iter_mut().for_each(|v| *v /= m);
        BnStats {
            channels,
            spatial,
            m,
            inv: var.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect(),
            dmu: mu
                .iter()
                .zip(&abs)
                .map(|(u, a)| EPS * u.abs() + EPS64 * a)
                .collect(),
            evar: EPS + m * EPS64,
            mu,
            var,
        }
    }

    fn ch(&self, e: usize) -> usize {
        (e / self.spatial) % self.channels
    }

    fn forward_tol(&self, x: &[f32], gamma: &[f64], y: &[f32]) -> Vec<f64> {
        x.iter()
            .zip(y)
            .enumerate()
            .map(|(e, (&xv, &yv))| {
                let c = self.ch(e);
                let centred = (f64::from(xv) - self.mu[c]).abs();
                2.0 * (EPS * f64::from(yv).abs()
                    + gamma[c].abs() * self.inv[c] * (self.dmu[c] + centred * self.evar / 2.0))
            })
            .collect()
    }

    /// Bounds of the running mean and variance after one update from the
    /// initial (0, 1).
    fn running_tol(&self, mean: &[f32], var: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let unbias = if self.m > 1.0 {
            self.m / (self.m - 1.0)
        } else {
            1.0
        };
        let tm = (0..self.channels)
            .map(|c| 2.0 * (BN_MOMENTUM * self.dmu[c] + EPS * f64::from(mean[c]).abs()))
            .collect();
        let tv = (0..self.channels)
            .map(|c| {
                2.0 * (BN_MOMENTUM * unbias * self.var[c] * self.evar
                    + EPS * f64::from(var[c]).abs())
            })
            .collect();
        (tm, tv)
    }

    /// `Σ_c |γ_c| s_c (δμ_c |Σ_i g_i| + ε_v/2 |Σ_i g_i x̂_i|)`: how far the
    /// loss moves when the statistics land one `f32` step apart (the same
    /// shift for every element of a channel), to first order.
    fn shared_loss_bound(&self, x: &[f32], g: &[f32], gamma: &[f64]) -> f64 {
        let (mut sg, mut sgx) = (vec![0.0; self.channels], vec![0.0; self.channels]);
        for (e, (&xv, &gv)) in x.iter().zip(g).enumerate() {
            let c = self.ch(e);
            sg[c] += f64::from(gv);
            sgx[c] += f64::from(gv) * (f64::from(xv) - self.mu[c]) * self.inv[c];
        }
        (0..self.channels)
            .map(|c| {
                gamma[c].abs()
                    * (self.inv[c] * self.dmu[c] * sg[c].abs() + self.evar / 2.0 * sgx[c].abs())
            })
            .sum()
    }

    /// Bounds of dx, dγ, dβ (see the module's table).
    fn backward_tol(
        &self,
        x: &[f32],
        dy: &[f32],
        gamma: &[f64],
        (dx, dgamma, dbeta): (&[f32], &[f32], &[f32]),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = self.channels;
        let xhat = |e: usize| (f64::from(x[e]) - self.mu[self.ch(e)]) * self.inv[self.ch(e)];
        let ex = |e: usize| {
            let c = self.ch(e);
            self.inv[c] * self.dmu[c] + xhat(e).abs() * self.evar / 2.0
        };
        let (mut dg, mut db) = (vec![0.0; n], vec![0.0; n]);
        let (mut s1, mut sx, mut sex) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for (e, &d) in dy.iter().enumerate() {
            let (c, d) = (self.ch(e), f64::from(d));
            dg[c] += d * xhat(e);
            db[c] += d;
            s1[c] += d.abs();
            sx[c] += (d * xhat(e)).abs();
            sex[c] += d.abs() * ex(e);
        }
        let ddb: Vec<f64> = s1.iter().map(|s| EPS64 * self.m * s).collect();
        let ddg: Vec<f64> = (0..n).map(|c| sex[c] + EPS64 * self.m * sx[c]).collect();
        let tdx = dy
            .iter()
            .enumerate()
            .map(|(e, &d)| {
                let c = self.ch(e);
                let k = gamma[c].abs() * self.inv[c] / self.m;
                let xh = xhat(e).abs();
                let first = self.evar / 2.0
                    * (self.m * f64::from(d).abs() + db[c].abs() + xh * dg[c].abs())
                    + ddb[c]
                    + ex(e) * dg[c].abs()
                    + xh * ddg[c];
                2.0 * (EPS * f64::from(dx[e]).abs() + k * first)
            })
            .collect();
        let tdg = (0..n)
            .map(|c| 2.0 * (EPS * f64::from(dgamma[c]).abs() + ddg[c]))
            .collect();
        let tdb = (0..n)
            .map(|c| 2.0 * (EPS * f64::from(dbeta[c]).abs() + ddb[c]))
            .collect();
        (tdx, tdg, tdb)
    }
}

fn loss_tol(classes: usize, n: usize, loss: f64) -> f64 {
    2.0 * (classes + n + 8) as f64 * EPS64 * (1.0 + loss.abs())
}

// ------------------------------------------------ layer-by-layer step ----

/// What a layer-by-layer step leaves for the later comparisons.
struct Forced {
    /// The CPU's loss.
    loss: f64,
    /// The end-to-end bound on the loss (see the module docs).
    loss_bound: f64,
    /// The CPU's gradients of the network's parameters, in spec order, and
    /// their bounds.
    grads: Vec<Vec<f32>>,
    grad_tol: Vec<Vec<f64>>,
}

/// What the end-to-end bound needs of one layer's forward pass.
enum Spread {
    /// A Linear or Conv2d: the mean square of `(cuda − cpu) / mag` over
    /// the outputs, and `mag`.
    Gemm { sigma2: f64, mag: Vec<f64> },
    /// A BatchNorm: γ, the input's statistics and the CPU's output.
    Norm {
        gamma: Vec<f64>,
        stats: BnStats,
        y: Vec<f32>,
    },
    /// Equal on both backends.
    None,
}

/// One layer's forward pass as the backward pass needs it.
struct Saved {
    x: Vec<f32>,
    out_shape: Vec<usize>,
    spread: Spread,
}

/// Runs forward, loss and backward layer by layer, every layer of both
/// backends on the CPU's input and upstream gradient, comparing as it goes.
fn forced_step<G: TensorBackend<Elem = f32> + 'static>(
    bk: &Backends<'_, G>,
    st: &mut [Stage<G>],
    (x, shape, labels): (&[f32], &[usize], &[u32]),
    rep: &mut Report,
) -> Forced {
    let (cpu, dev, mag) = (bk.cpu, bk.dev, bk.mag);
    let n = shape[0];
    let mut act = x.to_vec();
    let mut shp = shape.to_vec();
    let mut saved = Vec::with_capacity(st.len());
    for s in st.iter_mut() {
        let yc = s
            .cpu
            .forward(cpu, &input(cpu, &act, &shp), true)
            .expect("cpu forward");
        let yd = s
            .dev
            .forward(dev, &input(dev, &act, &shp), true)
            .expect("device forward");
        assert_eq!(yc.shape, yd.shape, "{}: output shapes differ", s.name);
        let out = yc.shape;
        let (yc, yd) = (host32(cpu, &yc.data), host32(dev, &yd.data));
        let (tol, spread) = match s.kind {
            Kind::Linear { inputs: k, .. } | Kind::Conv { channels: k, .. } => {
                let k = match s.kind {
                    Kind::Conv { kernel, .. } => k * kernel * kernel,
                    _ => k,
                };
                let m = s.mag.as_mut().expect("magnitude layer");
                let my = m.forward(mag, &input(mag, &abs64(&act), &shp), true);
                let my = host(mag, &my.expect("f64 forward").data);
                let sigma2 = yd
                    .iter()
                    .zip(&yc)
                    .zip(&my)
                    .filter(|(_, m)| **m > 0.0)
                    .map(|((d, c), m)| ((f64::from(*d) - f64::from(*c)) / m).powi(2))
                    .sum::<f64>()
                    / my.len().max(1) as f64;
                (gemm_tol(k, &my), Spread::Gemm { sigma2, mag: my })
            }
            Kind::BatchNorm => {
                let b = BnStats::new(&act, &shp);
                let gamma = host(cpu, s.cpu.params()[0]);
                let tol = b.forward_tol(&act, &gamma, &yc);
                let (rc, rd) = (buffers32(cpu, &*s.cpu), buffers32(dev, &*s.dev));
                let (tm, tv) = b.running_tol(&rc[0], &rc[1]);
                rep.within(&format!("{} running mean", s.name), &rd[0], &rc[0], &tm);
                rep.within(&format!("{} running var", s.name), &rd[1], &rc[1], &tv);
                let y = yc.clone();
                (tol, Spread::Norm { gamma, stats: b, y })
            }
            Kind::Exact => (vec![0.0; yc.len()], Spread::None),
        };
        rep.within(&format!("{} output", s.name), &yd, &yc, &tol);
        let x_in = std::mem::replace(&mut act, yc);
        shp.clone_from(&out.to_vec());
        saved.push(Saved {
            x: x_in,
            out_shape: out.to_vec(),
            spread,
        });
    }

    let xent = SoftmaxCrossEntropy::new(CLASSES);
    let (loss, dc) = xent
        .forward(cpu, &input(cpu, &act, &shp), labels)
        .expect("cpu loss");
    let (loss_d, dd) = xent
        .forward(dev, &input(dev, &act, &shp), labels)
        .expect("device loss");
    let lt = loss_tol(CLASSES, n, loss);
    rep.scalar("loss (same logits)", loss_d, loss, lt);
    let mut dy = host32(cpu, &dc);
    let dtol: Vec<f64> = dy
        .iter()
        .map(|d| EPS * f64::from(*d).abs() + 2.0 * (CLASSES + 6) as f64 * EPS64 / n as f64)
        .collect();
    rep.within("∂loss/∂logits (same logits)", &host32(dev, &dd), &dy, &dtol);

    // The end-to-end bound: the variance of the independent parts, and the
    // parts shared by a BatchNorm channel.
    let (mut variance, mut shared) = (0.0, 0.0);
    let mut grads = vec![Vec::new(); st.len()];
    for (i, s) in st.iter_mut().enumerate().rev() {
        let sv = &saved[i];
        match &sv.spread {
            Spread::Gemm { sigma2, mag: m } => {
                variance += sigma2
                    * dy.iter()
                        .zip(m)
                        .map(|(g, m)| (f64::from(*g) * m).powi(2))
                        .sum::<f64>();
            }
            Spread::Norm { gamma, stats, y } => {
                variance += dy
                    .iter()
                    .zip(y)
                    .map(|(g, y)| (f64::from(*g) * EPS * f64::from(*y)).powi(2))
                    .sum::<f64>();
                shared += stats.shared_loss_bound(&sv.x, &dy, gamma);
            }
            Spread::None => {}
        }
        let dxc = s
            .cpu
            .backward(cpu, &cpu.upload(&dy).expect("upload"))
            .expect("cpu backward");
        let dxd = s
            .dev
            .backward(dev, &dev.upload(&dy).expect("upload"))
            .expect("device backward");
        let dxc = host32(cpu, &dxc);
        let gc: Vec<Vec<f32>> = s.cpu.grads().into_iter().map(|g| host32(cpu, g)).collect();
        let gd: Vec<Vec<f32>> = s.dev.grads().into_iter().map(|g| host32(dev, g)).collect();
        let (tdx, tg): (Vec<f64>, Vec<Vec<f64>>) = match (s.kind, &sv.spread) {
            (
                Kind::Linear { outputs, .. }
                | Kind::Conv {
                    filters: outputs, ..
                },
                _,
            ) => {
                let m = s.mag.as_mut().expect("magnitude layer");
                let dy_abs = mag.upload(&abs64(&dy)).expect("upload");
                let mdx = host(mag, &m.backward(mag, &dy_abs).expect("f64 backward"));
                let mg: Vec<Vec<f64>> = m.grads().into_iter().map(|g| host(mag, g)).collect();
                let (k_dx, k_dw) = match s.kind {
                    Kind::Conv { kernel, .. } => {
                        let positions: usize = sv.out_shape[2..].iter().product();
                        (outputs * kernel * kernel, n * positions)
                    }
                    _ => (outputs, n),
                };
                let tg = mg.iter().map(|g| gemm_tol(k_dw, g)).collect();
                (gemm_tol(k_dx, &mdx), tg)
            }
            (Kind::BatchNorm, Spread::Norm { gamma, stats, .. }) => {
                let (tdx, tdg, tdb) = stats.backward_tol(&sv.x, &dy, gamma, (&dxc, &gc[0], &gc[1]));
                (tdx, vec![tdg, tdb])
            }
            _ => (vec![0.0; dxc.len()], Vec::new()),
        };
        rep.within(
            &format!("{} input gradient", s.name),
            &host32(dev, &dxd),
            &dxc,
            &tdx,
        );
        let specs = s.cpu.specs();
        let mut mine = Vec::new();
        for (j, ((c, d), t)) in gc.iter().zip(&gd).zip(&tg).enumerate() {
            let name = specs
                .get(j)
                .map_or_else(|| format!("{}.bias (hidden)", s.name), |p| p.name.clone());
            rep.within(&format!("{name} gradient"), d, c, t);
            if s.visible(j) {
                mine.push((c.clone(), t.clone()));
            }
        }
        grads[i] = mine;
        dy = dxc;
    }
    let (grads, grad_tol) = grads.into_iter().flatten().unzip();
    let loss_bound = LAMBDA * variance.sqrt() + 2.0 * shared + lt;
    eprintln!(
        "end-to-end loss bound {loss_bound:.3e} = {LAMBDA} × σ {:.3e} + 2 × BatchNorm channels {shared:.3e} + loss {lt:.3e}",
        variance.sqrt()
    );
    Forced {
        loss,
        loss_bound,
        grads,
        grad_tol,
    }
}

// ------------------------------------------------------------ the step ----

/// Swaps the CPU (or device) layers' parameters with `store`.
fn swap_params<B: TensorBackend>(layers: Vec<&mut Box<dyn Layer<B>>>, store: &mut [B::Buffer]) {
    let mut it = store.iter_mut();
    for l in layers {
        for p in l.params_mut() {
            std::mem::swap(p, it.next().expect("one buffer per parameter"));
        }
    }
}

/// One step of `method` on `net`: the layer-by-layer comparison, then two
/// trainers' losses. `make_dev` makes another backend under test (for the
/// trainer).
fn compare_step<G, F>(dev: &G, make_dev: F, (net, n): (Net, usize), method: Method, title: &str)
where
    G: TensorBackend<Elem = f32> + 'static,
    F: Fn() -> G,
{
    let cpu = C32::with_threads(1).expect("cpu backend");
    let mag = C64::with_threads(1).expect("f64 cpu backend");
    let bk = Backends {
        cpu: &cpu,
        dev,
        mag: &mag,
    };
    let image = net.image();
    let image_len: usize = image.iter().product();
    let mut rng = SplitMix64(SEED ^ 0xDA7A);
    let (x, labels) = rng.batch(n, image_len, CLASSES);
    let mut shape = vec![n];
    shape.extend_from_slice(&image);

    // The trainers, for the end-to-end loss; their (unread) training set
    // fixes the input shape and the classes.
    let mut cfg = TrainConfig::new(method, net.network())
        .with_batch(n)
        .with_seed(SEED);
    if method == Method::AdaSmoothOut {
        cfg.a = 0.15;
    }
    let pixels: Vec<u8> = (0..n * image_len).map(|i| (i % 251) as u8).collect();
    let classes: Vec<u8> = (0..n).map(|i| (i % CLASSES) as u8).collect();
    let data = Dataset::new(pixels, classes, image, CLASSES, 255).expect("dataset");
    let mut tc =
        Trainer::new(C32::with_threads(1).expect("cpu"), cfg.clone(), &data).expect("cpu trainer");
    let mut td = Trainer::new(make_dev(), cfg.clone(), &data).expect("device trainer");

    let mut st = stages(&bk, net);
    let trainer_params: Vec<Vec<f32>> = tc
        .network()
        .params()
        .into_iter()
        .map(|p| host32(&cpu, p))
        .collect();
    assert!(
        trainer_params == cpu_params(&cpu, &st),
        "this test's {net:?} differs from the trainer's network (initial parameters)"
    );

    let mut rep = Report::new(title);
    // AdaSmoothOut: perturb both copies (bit-identical), keep the per-filter
    // scales for the de-noise.
    let mut smooth = None;
    if let Some(so_cfg) = cfg.smoothout(1).expect("smoothout config") {
        let specs: Vec<ParamSpec> = st
            .iter()
            .flat_map(|s| s.cpu.specs())
            .map(|p| PerturbSet::WeightsAndBiases.apply(p))
            .collect();
        assert!(st.iter().all(|s| !matches!(
            s.kind,
            Kind::Linear {
                hidden_bias: true,
                ..
            }
        )));
        let mut so_c = SmoothOut::new(&cpu, so_cfg, specs.clone()).expect("smoothout");
        let mut so_d = SmoothOut::new(dev, so_cfg, specs.clone()).expect("smoothout");
        let mut pc: Vec<_> = specs.iter().map(|_| cpu.zeros(0).expect("zeros")).collect();
        let mut pd: Vec<_> = specs.iter().map(|_| dev.zeros(0).expect("zeros")).collect();
        swap_params(st.iter_mut().map(|s| &mut s.cpu).collect(), &mut pc);
        swap_params(st.iter_mut().map(|s| &mut s.dev).collect(), &mut pd);
        let draw = Draw::new(0, 0);
        so_c.perturb(&cpu, &mut pc, draw).expect("cpu perturb");
        so_d.perturb(dev, &mut pd, draw).expect("device perturb");
        for (i, (c, d)) in pc.iter().zip(&pd).enumerate() {
            rep.exact(
                &format!("{} perturbed", specs[i].name),
                &host32(dev, d),
                &host32(&cpu, c),
            );
        }
        swap_params(st.iter_mut().map(|s| &mut s.cpu).collect(), &mut pc);
        swap_params(st.iter_mut().map(|s| &mut s.dev).collect(), &mut pd);
        smooth = Some((so_c, so_d, specs, draw));
    }

    let forced = forced_step(&bk, &mut st, (&x, &shape, &labels), &mut rep);

    let (loss_c, _) = tc.step_batch(&x, &labels).expect("cpu trainer step");
    assert!(
        loss_c.to_bits() == forced.loss.to_bits(),
        "the CPU trainer's loss {loss_c:e} is not the layer-by-layer CPU loss {:e}: \
         this test does not build the trainer's network",
        forced.loss
    );
    match td.step_batch(&x, &labels) {
        Ok((loss_d, _)) => rep.scalar(
            "end-to-end loss (two trainers)",
            loss_d,
            loss_c,
            forced.loss_bound,
        ),
        Err(e) => rep.error("device trainer step", e),
    }

    if let Some((mut so_c, mut so_d, specs, draw)) = smooth {
        let sgd = Sgd::new(LR, 0.9, 0.0).expect("sgd");
        let mut pc: Vec<_> = specs.iter().map(|_| cpu.zeros(0).expect("zeros")).collect();
        let mut pd: Vec<_> = specs.iter().map(|_| dev.zeros(0).expect("zeros")).collect();
        swap_params(st.iter_mut().map(|s| &mut s.cpu).collect(), &mut pc);
        swap_params(st.iter_mut().map(|s| &mut s.dev).collect(), &mut pd);
        let gc: Vec<_> = st
            .iter()
            .flat_map(|s| s.cpu.grads())
            .map(|g| cpu.upload(&host32(&cpu, g)).expect("upload"))
            .collect();
        let gd: Vec<_> = st
            .iter()
            .flat_map(|s| s.dev.grads())
            .map(|g| dev.upload(&host32(dev, g)).expect("upload"))
            .collect();
        let mut vc: Vec<_> = specs
            .iter()
            .map(|p| cpu.zeros(p.len()).expect("zeros"))
            .collect();
        let mut vd: Vec<_> = specs
            .iter()
            .map(|p| dev.zeros(p.len()).expect("zeros"))
            .collect();
        so_c.denoise_sgd(&cpu, &mut pc, &gc, &mut vc, &sgd, draw)
            .expect("cpu de-noise + sgd");
        so_d.denoise_sgd(dev, &mut pd, &gd, &mut vd, &sgd, draw)
            .expect("device de-noise + sgd");
        for (i, spec) in specs.iter().enumerate() {
            let (w, g, tg) = (host32(&cpu, &pc[i]), &forced.grads[i], &forced.grad_tol[i]);
            let tw: Vec<f64> = w
                .iter()
                .zip(g)
                .zip(tg)
                .map(|((w, g), t)| {
                    2.0 * (LR * t + EPS * (LR * f64::from(*g).abs() + f64::from(*w).abs()))
                })
                .collect();
            let v = host32(&cpu, &vc[i]);
            let tv: Vec<f64> = v
                .iter()
                .zip(tg)
                .map(|(v, t)| 2.0 * (t + EPS * f64::from(*v).abs()))
                .collect();
            for (what, got, want, tol) in [
                ("after de-noise + SGD", &pd[i], &w, &tw),
                ("velocity", &vd[i], &v, &tv),
            ] {
                rep.within(
                    &format!("{} {what}", spec.name),
                    &host32(dev, got),
                    want,
                    tol,
                );
            }
        }
    }
    rep.finish();
}

/// The batches on the GPU: large enough for BatchNorm statistics over
/// several samples and for a few thousand ReLU and max-pool decisions per
/// layer.
const F1_BATCH: usize = 32;
const C1_BATCH: usize = 8;

/// [`compare_step`] of the GPU (when there is one) against the CPU backend.
fn gpu_against_cpu(net: (Net, usize), method: Method, title: &str) {
    let Some(gpu) = gpu() else { return };
    compare_step(&gpu, || gpu.clone(), net, method, title);
}

#[test]
fn f1_step_matches_the_cpu_backend() {
    gpu_against_cpu(
        (Net::F1, F1_BATCH),
        Method::Baseline,
        "F1, CUDA against CPU",
    );
}

#[test]
fn c1_step_matches_the_cpu_backend() {
    gpu_against_cpu(
        (Net::C1, C1_BATCH),
        Method::Baseline,
        "C1, CUDA against CPU",
    );
}

#[test]
fn f1_adasmoothout_step_matches_the_cpu_backend() {
    gpu_against_cpu(
        (Net::F1, F1_BATCH),
        Method::AdaSmoothOut,
        "F1 AdaSmoothOut, CUDA against CPU",
    );
}

/// The comparison itself, without a GPU: the CPU backend against the
/// plain-loop reference (another summation order, no FMA), so that the
/// bounds and the bookkeeping run on every machine. Smaller batches keep
/// the reference's loops short in a debug build.
#[test]
fn the_bounds_hold_between_two_cpu_summation_orders() {
    let r = Reference::<f32>::new();
    let make = Reference::<f32>::new;
    let title = "F1 AdaSmoothOut, reference against CPU";
    compare_step(&r, make, (Net::F1, 16), Method::AdaSmoothOut, title);
    compare_step(
        &r,
        make,
        (Net::C1, 2),
        Method::Baseline,
        "C1, reference against CPU",
    );
}
