//! 9. Backend agreement: the CPU backend gives the core reference's bits.
//!
//! The library promises that noise, perturbation, de-noising and the fused
//! update are the same bits on every backend and thread count
//! ([`smoothout::backend`]): noise is a pure function of `(key, element)`,
//! and the arithmetic is specified down to each rounding. The shared suite
//! `smoothout::testgen` tests this operation by operation on awkward sizes;
//! this check is the report-level summary at scale: each operation on
//! 10⁶ elements (rows of 75) and 3·10⁵ (rows of 10 007), in `f32` and `f64`, on [`Cpu`] with one thread
//! (kernels compiled for the baseline instruction set) and with two
//! threads (the widest instruction set the CPU has, chunks of 4099
//! elements, so that chunks split noise tiles and rows), compared with
//! [`smoothout::reference`] on the host; and a whole SmoothOut training run
//! of a small MLP on [`Cpu`] against the [`Reference`] backend. (Checks 1
//! (online form), 4, 5, 6 and 7 also run their step-based bodies on the CPU
//! backend through [`crate::harness`], each with a row asserting that it
//! measured the reference's bits.)
//!
//! Results are compared through their bit patterns: the number of
//! differing bits (popcount of the XOR), the number of differing elements,
//! and the largest distance in units in the last place (the ordered
//! integer distance of the two values; `−0` and `+0` are 0 ulp apart but
//! differ in one bit, so the bit count catches them).
//!
//! # Tolerances
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | `fill_noise` (uniform, Gaussian, Bernoulli indicator) | 0 differing bits | pure function of `(key, index)`, one rounding per step |
//! | `perturb` and `denoise` (fixed, per-row, per-element), `drop_out` | 0 differing bits | same unit draws, same operation order, no FMA contraction |
//! | `row_norms`, `filter_scales` | 0 ulp | each row's sum of squares runs over the same 32 fixed `f64` lanes in the same combining order; the scale is rounded to the element type once |
//! | `perturb_filter_norm` (weights and scales) | 0 differing bits | the scales above, then the per-row perturbation |
//! | `denoise_sgd` (fused de-noise and SGD momentum; weights and velocity) | 0 differing bits | element-wise, one rounding per operation |
//! | a full SmoothOut run (parameters and velocity after 20 steps) | 0 differing bits | built from the operations above; the MLP's gradient is the same function of the same bits |
//!
//! Bit identity is what the code promises, so every bound is 0; a
//! tolerance would hide exactly the bugs (a chunk boundary off by one, a
//! reordered sum) this check exists for. [`Tamper`] gives the deliberately
//! broken comparisons the tests run: the CPU side with another key (about
//! half of all bits differ) or with one bit of its result flipped (exactly
//! one bit differs).

use ndarray::{ArrayD, IxDyn};
use smoothout::reference::{self, ParamNoise, Scale};
use smoothout::{
    Backend, Config, Denoise, Draw, FilterNoise, Noise, NoiseKey, NoiseOps, NormOps, PerturbOps,
    Real, Reference, Scaling, Schedule, Sgd, SmoothOut, Unit, UpdateOps,
};
use smoothout_cpu::{Cpu, Isa};

use crate::mlp::{Data, Mlp};
use crate::Row;

/// Title in the report.
pub const NAME: &str = "9. Backend agreement";
/// What passing shows, in one sentence.
pub const SHOWS: &str = "The CPU backend with one and two threads reproduces the core reference \
     bit for bit: noise, perturbation, de-noising, row norms and AdaSmoothOut scales, the fused \
     SGD update, and a whole SmoothOut training run of an MLP.";

/// A floating-point element whose bits can be compared.
pub trait Elem: Real {
    /// The bit pattern, widened to `u64`.
    fn bits(self) -> u64;
    /// An integer that orders like the value, one step per ulp (`±0` → 0).
    fn ordered(self) -> i64;
    /// The value with its lowest mantissa bit flipped.
    #[must_use]
    fn flip_low_bit(self) -> Self;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
}

impl Elem for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn ordered(self) -> i64 {
        let b = self.to_bits();
        let m = i64::from(b & 0x7fff_ffff);
        if b >> 31 == 1 {
            -m
        } else {
            m
        }
    }
    fn flip_low_bit(self) -> Self {
        f32::from_bits(self.to_bits() ^ 1)
    }
    const NAME: &'static str = "f32";
}

impl Elem for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn ordered(self) -> i64 {
        let b = self.to_bits();
        let m = (b & 0x7fff_ffff_ffff_ffff) as i64;
        if b >> 63 == 1 {
            -m
        } else {
            m
        }
    }
    fn flip_low_bit(self) -> Self {
        f64::from_bits(self.to_bits() ^ 1)
    }
    const NAME: &'static str = "f64";
}

/// How two results differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Elements compared.
    pub elements: u64,
    /// Elements whose bits differ.
    pub differing_elements: u64,
    /// Total differing bits.
    pub differing_bits: u64,
    /// Largest distance in ulps.
    pub max_ulps: u64,
}

impl Diff {
    /// Adds the comparison of `got` with `want`.
    ///
    /// # Panics
    ///
    /// If the lengths differ.
    pub fn add<T: Elem>(&mut self, got: &[T], want: &[T]) {
        assert_eq!(got.len(), want.len(), "compared lengths");
        self.elements += got.len() as u64;
        for (g, w) in got.iter().zip(want) {
            let x = g.bits() ^ w.bits();
            if x != 0 {
                self.differing_elements += 1;
                self.differing_bits += u64::from(x.count_ones());
                let d = g.ordered().abs_diff(w.ordered());
                self.max_ulps = self.max_ulps.max(d);
            }
        }
    }

    /// Both comparisons together.
    #[must_use]
    pub fn merge(self, o: Diff) -> Diff {
        Diff {
            elements: self.elements + o.elements,
            differing_elements: self.differing_elements + o.differing_elements,
            differing_bits: self.differing_bits + o.differing_bits,
            max_ulps: self.max_ulps.max(o.max_ulps),
        }
    }
}

/// A deliberate difference on the CPU side, to show the check can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// None: the real comparison.
    None,
    /// The CPU side uses another key (another seed for a training run).
    OtherKey,
    /// The lowest bit of one element of the CPU result (the first result
    /// compared; the final parameters of a training run) is flipped, at
    /// this index modulo the length.
    FlipBit {
        /// Element index.
        index: usize,
    },
    /// One initial weight of a training run on the CPU side is multiplied
    /// by `1 + 2⁻⁸` (at this index of the first buffer, modulo its
    /// length); operations ignore it.
    Nudge {
        /// Element index.
        index: usize,
    },
}

impl Tamper {
    fn key(self, key: NoiseKey) -> NoiseKey {
        match self {
            Tamper::OtherKey => key.fold_in(1),
            _ => key,
        }
    }

    fn result<T: Elem>(self, v: &mut [T]) {
        if let Tamper::FlipBit { index } = self {
            if !v.is_empty() {
                let i = index % v.len();
                v[i] = v[i].flip_low_bit();
            }
        }
    }

    fn initial<T: Elem>(self, v: &mut [T]) {
        if let Tamper::Nudge { index } = self {
            if !v.is_empty() {
                let i = index % v.len();
                v[i] = v[i] * T::from_f64(1.0 + 1.0 / 256.0);
            }
        }
    }
}

/// One backend operation, compared on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `fill_noise` of `U(−0.0375, 0.0375)`.
    NoiseUniform,
    /// `fill_noise` of `N(0, 0.01²)`.
    NoiseGaussian,
    /// `fill_noise` of the Bernoulli(0.3) drop indicator.
    NoiseBernoulli,
    /// `perturb` then `denoise` with a fixed scale (both results compared).
    PerturbFixed,
    /// `perturb` then `denoise` with per-row scales.
    PerturbRows,
    /// `perturb` then `denoise`, per element.
    PerturbPerElement,
    /// `drop_out` with `p = 0.3`.
    DropOut,
    /// `row_norms` (`f64` output).
    RowNorms,
    /// `filter_scales`.
    FilterScales,
    /// `perturb_filter_norm` (weights and scales compared).
    PerturbFilterNorm,
    /// `denoise_sgd` with fixed and with per-row noise (weights and
    /// velocity compared).
    DenoiseSgd,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 11] = [
        Op::NoiseUniform,
        Op::NoiseGaussian,
        Op::NoiseBernoulli,
        Op::PerturbFixed,
        Op::PerturbRows,
        Op::PerturbPerElement,
        Op::DropOut,
        Op::RowNorms,
        Op::FilterScales,
        Op::PerturbFilterNorm,
        Op::DenoiseSgd,
    ];

    /// Whether the report bounds the largest ulp distance (norms and
    /// scales) rather than the count of differing bits.
    #[must_use]
    pub fn in_ulps(self) -> bool {
        matches!(self, Op::RowNorms | Op::FilterScales)
    }
}

/// A 1-D array holding `v`.
fn array<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("a 1-D shape always fits")
}

fn host<T: Copy>(a: &ArrayD<T>) -> Vec<T> {
    a.as_slice().expect("standard layout").to_vec()
}

/// The same noise as `rn` on the CPU: the CPU's key, the CPU copy of the
/// scales.
fn cpu_noise<'a, T: Copy>(
    rn: ParamNoise<'a, T, [T]>,
    ckey: NoiseKey,
    scales_cpu: &'a ArrayD<T>,
) -> ParamNoise<'a, T, ArrayD<T>> {
    ParamNoise {
        key: ckey,
        ..rn.map_scales(|_| Ok(scales_cpu)).expect("scales")
    }
}

/// Test data: `U(−half_width, half_width)` from the library's noise
/// (uniform rather than Gaussian only because it is cheaper to draw).
fn data<T: Real>(len: usize, half_width: f64, key: NoiseKey) -> Vec<T> {
    let mut v = vec![T::zero(); len];
    reference::fill_noise(key, &Noise::Uniform { a: half_width }, 0, &mut v).expect("valid noise");
    v
}

/// The CPU backends the report compares: one thread with the baseline
/// kernels, and two threads with the detected kernels and chunks of 4099.
///
/// # Panics
///
/// If a thread pool cannot be started.
#[must_use]
pub fn report_backends<T: Real>() -> Vec<Cpu<T>> {
    vec![
        Cpu::with_threads(1)
            .and_then(|c| c.with_isa(Isa::Baseline))
            .expect("one-thread CPU backend"),
        Cpu::with_threads(2)
            .and_then(|c| c.with_chunk(4099))
            .expect("two-thread CPU backend"),
    ]
}

/// `op` on `cpu` against [`smoothout::reference`] over `rows × cols`
/// elements (element-wise operations ignore the row structure), the CPU
/// side tampered with as `tamper` says.
///
/// # Panics
///
/// If a backend call fails (it does not for these inputs).
#[must_use]
pub fn op_diff<T: Elem>(
    cpu: &Cpu<T>,
    op: Op,
    rows: usize,
    cols: usize,
    seed: u64,
    tamper: Tamper,
) -> Diff {
    let len = rows * cols;
    let root = NoiseKey::from_seed(seed);
    let key = root.fold_in(1);
    let ckey = tamper.key(key);
    let w0: Vec<T> = data(len, 1.0, root.fold_in(2));
    let mut diff = Diff::default();
    let mut compare = |mut got: Vec<T>, want: &[T]| {
        if diff.elements == 0 {
            tamper.result(&mut got);
        }
        diff.add(&got, want);
    };
    let (a, p) = (T::from_f64(0.0375), 0.3);
    match op {
        Op::NoiseUniform | Op::NoiseGaussian | Op::NoiseBernoulli => {
            let noise = match op {
                Op::NoiseUniform => Noise::Uniform { a: 0.0375 },
                Op::NoiseGaussian => Noise::Gaussian { std: 0.01 },
                _ => Noise::Bernoulli { p },
            };
            let mut want = vec![T::zero(); len];
            reference::fill_noise(key, &noise, 0, &mut want).expect("reference noise");
            let mut out = array(vec![T::zero(); len]);
            cpu.fill_noise(ckey, &noise, &mut out).expect("cpu noise");
            compare(host(&out), &want);
        }
        Op::PerturbFixed | Op::PerturbRows | Op::PerturbPerElement => {
            let mut scales = vec![T::zero(); rows];
            reference::filter_scales(key, Unit::Uniform, 0.05, cols, 0, &w0, &mut scales)
                .expect("scales");
            let scales_cpu = array(scales.clone());
            let scale = match op {
                Op::PerturbFixed => Scale::Fixed(a),
                Op::PerturbPerElement => Scale::PerElement(a),
                _ => Scale::Rows {
                    cols,
                    scales: &scales[..],
                },
            };
            let rn = ParamNoise {
                key,
                unit: Unit::Uniform,
                scale,
            };
            let cn = cpu_noise(rn, ckey, &scales_cpu);
            let mut want = w0.clone();
            let mut w = array(w0.clone());
            reference::perturb(&rn, 0, &mut want);
            cpu.perturb(&mut w, &cn).expect("cpu perturb");
            compare(host(&w), &want);
            reference::denoise(&rn, 0, &mut want);
            cpu.denoise(&mut w, &cn).expect("cpu denoise");
            compare(host(&w), &want);
        }
        Op::DropOut => {
            let mut want = w0.clone();
            reference::drop_out(key, p, 0, &mut want).expect("reference drop_out");
            let mut w = array(w0.clone());
            cpu.drop_out(&mut w, ckey, p).expect("cpu drop_out");
            compare(host(&w), &want);
        }
        Op::RowNorms => {
            let mut want = vec![0.0; rows];
            reference::row_norms(&w0, cols, &mut want).expect("reference norms");
            let mut got = vec![0.0; rows];
            cpu.row_norms(&array(w0.clone()), cols, &mut got)
                .expect("cpu norms");
            tamper.result(&mut got);
            diff.add(&got, &want);
        }
        Op::FilterScales | Op::PerturbFilterNorm => {
            let unit = Unit::Uniform;
            let mut want = vec![T::zero(); rows];
            let mut got = array(vec![T::zero(); rows]);
            let noise = FilterNoise {
                key: ckey,
                unit,
                strength: 0.05,
                cols,
            };
            if op == Op::FilterScales {
                reference::filter_scales(key, unit, 0.05, cols, 0, &w0, &mut want)
                    .expect("reference scales");
                cpu.filter_scales(&array(w0.clone()), &noise, &mut got)
                    .expect("cpu scales");
                compare(host(&got), &want);
            } else {
                let mut want_w = w0.clone();
                reference::perturb_filter_norm(key, unit, 0.05, cols, 0, &mut want_w, &mut want)
                    .expect("reference perturb_filter_norm");
                let mut w = array(w0.clone());
                cpu.perturb_filter_norm(&mut w, &noise, &mut got)
                    .expect("cpu perturb_filter_norm");
                compare(host(&w), &want_w);
                compare(host(&got), &want);
            }
        }
        Op::DenoiseSgd => {
            let sgd = Sgd::new(0.1, 0.9, 5e-4).expect("valid SGD");
            let g: Vec<T> = data(len, 1.0, root.fold_in(3));
            let v0: Vec<T> = data(len, 0.1, root.fold_in(4));
            let mut scales = vec![T::zero(); rows];
            reference::filter_scales(key, Unit::Gaussian, 0.05, cols, 0, &w0, &mut scales)
                .expect("scales");
            let scales_cpu = array(scales.clone());
            for rows_scaled in [false, true] {
                let scale = if rows_scaled {
                    Scale::Rows {
                        cols,
                        scales: &scales[..],
                    }
                } else {
                    Scale::Fixed(a)
                };
                let rn = ParamNoise {
                    key,
                    unit: Unit::Gaussian,
                    scale,
                };
                let cn = cpu_noise(rn, ckey, &scales_cpu);
                let (mut want_w, mut want_v) = (w0.clone(), v0.clone());
                reference::denoise_sgd(Some(&rn), 0, &mut want_w, &g, &mut want_v, &sgd)
                    .expect("reference denoise_sgd");
                let (mut w, mut v) = (array(w0.clone()), array(v0.clone()));
                cpu.denoise_sgd(&mut w, &array(g.clone()), &mut v, Some(&cn), &sgd)
                    .expect("cpu denoise_sgd");
                compare(host(&w), &want_w);
                compare(host(&v), &want_v);
            }
        }
    }
    diff
}

/// A parameter buffer whose elements the MLP can read and write.
pub trait HostBuffer<T> {
    /// The elements.
    fn elems(&self) -> &[T];
    /// The elements, mutably.
    fn elems_mut(&mut self) -> &mut [T];
    /// A buffer holding `v`.
    fn from_vec(v: Vec<T>) -> Self;
}

impl<T> HostBuffer<T> for Vec<T> {
    fn elems(&self) -> &[T] {
        self
    }
    fn elems_mut(&mut self) -> &mut [T] {
        self
    }
    fn from_vec(v: Vec<T>) -> Self {
        v
    }
}

impl<T> HostBuffer<T> for ArrayD<T> {
    fn elems(&self) -> &[T] {
        self.as_slice().expect("standard layout")
    }
    fn elems_mut(&mut self) -> &mut [T] {
        self.as_slice_mut().expect("standard layout")
    }
    fn from_vec(v: Vec<T>) -> Self {
        array(v)
    }
}

/// The configurations the report trains with: AdaSmoothOut (uniform,
/// per-row, regenerating de-noise fused into SGD), SmoothOut with Gaussian
/// noise and the anneal schedule, per-element uniform noise, and Bernoulli
/// noise with exact de-noising.
#[must_use]
pub fn report_configs() -> Vec<(&'static str, Config)> {
    let u = Noise::uniform(0.05).expect("valid strength");
    vec![
        (
            "AdaSmoothOut U(−0.05, 0.05)",
            Config::new(u).with_scaling(Scaling::FilterNorm),
        ),
        (
            "SmoothOut N(0, 0.01²), anneal",
            Config::new(Noise::gaussian(0.01).expect("valid std"))
                .with_schedule(Schedule::anneal(0.55).expect("valid index"), 20),
        ),
        (
            "per-element U(−0.05, 0.05)",
            Config::new(u).with_scaling(Scaling::PerElement),
        ),
        (
            "Bernoulli p = 0.1, exact de-noise",
            Config::new(Noise::bernoulli(0.1).expect("valid p")).with_denoise(Denoise::Exact),
        ),
    ]
}

/// The network and data of the training runs: `[8, 16, 16, 4]`, 16 samples.
#[must_use]
pub fn report_network() -> (Mlp, Data) {
    let mlp = Mlp::new(&[8, 16, 16, 4]);
    let data = mlp.data(16, 91);
    (mlp, data)
}

/// `steps` SmoothOut steps with fused SGD on `backend`, from the MLP's
/// initial parameters (seed 92), tampered with as `tamper` says (a
/// [`Tamper::Nudge`] of an initial weight, a [`Tamper::FlipBit`] of the
/// final parameters): the final parameters and velocities, buffer by
/// buffer.
///
/// # Panics
///
/// If the library refuses the configuration or a step fails.
#[must_use]
pub fn train<T: Elem, B: Backend<Elem = T>>(
    backend: &B,
    mlp: &Mlp,
    data: &Data,
    config: Config,
    steps: u64,
    tamper: Tamper,
) -> Vec<Vec<T>>
where
    B::Buffer: HostBuffer<T>,
{
    let init = mlp.init(92, 0.1);
    let mut params: Vec<B::Buffer> = init
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v: Vec<T> = p.iter().map(|&x| T::from_f64(x)).collect();
            if i == 0 {
                tamper.initial(&mut v);
            }
            B::Buffer::from_vec(v)
        })
        .collect();
    let zeros = || -> Vec<B::Buffer> {
        mlp.lens()
            .iter()
            .map(|&n| B::Buffer::from_vec(vec![T::zero(); n]))
            .collect()
    };
    let (mut grads, mut velocity) = (zeros(), zeros());
    let sgd = Sgd::new(0.05, 0.9, 5e-4).expect("valid SGD");
    let mut so = SmoothOut::new(backend, config, mlp.specs()).expect("a valid configuration");
    for step in 0..steps {
        so.step_sgd(
            backend,
            &mut params,
            &mut grads,
            &mut velocity,
            &sgd,
            Draw::new(step, 0),
            |w, g| {
                let views: Vec<&[T]> = w.iter().map(HostBuffer::elems).collect();
                let mut gv: Vec<&mut [T]> = g.iter_mut().map(HostBuffer::elems_mut).collect();
                Ok::<f64, smoothout::Error>(mlp.loss_and_grad(&views, data, &mut gv))
            },
        )
        .expect("a SmoothOut step");
    }
    let mut out: Vec<Vec<T>> = params
        .iter()
        .chain(&velocity)
        .map(|b| b.elems().to_vec())
        .collect();
    tamper.result(&mut out[0]);
    out
}

/// A training run on `cpu` against the same run on the [`Reference`]
/// backend; `tamper` changes the CPU run (another seed, a nudged initial
/// weight, or a flipped bit in its result).
///
/// # Panics
///
/// As [`train`].
#[must_use]
pub fn train_diff<T: Elem>(cpu: &Cpu<T>, config: Config, steps: u64, tamper: Tamper) -> Diff {
    let (mlp, data) = report_network();
    let want = train(
        &Reference::<T>::new(),
        &mlp,
        &data,
        config,
        steps,
        Tamper::None,
    );
    let cpu_config = match tamper {
        Tamper::OtherKey => config.with_seed(config.seed.wrapping_add(1)),
        _ => config,
    };
    let got = train(cpu, &mlp, &data, cpu_config, steps, tamper);
    let mut diff = Diff::default();
    for (g, w) in got.iter().zip(&want) {
        diff.add(g, w);
    }
    diff
}

/// Row structures of the report: rows of 75 (a 3 × 5 × 5 filter) and of
/// 10 007 (longer than the reference's one-pass row buffer).
pub const REPORT_SHAPES: [(usize, usize); 2] = [(13_334, 75), (30, 10_007)];

/// `op` on every report backend and shape, in `T`.
fn op_total<T: Elem>(op: Op) -> Diff {
    let mut d = Diff::default();
    for cpu in report_backends::<T>() {
        for (i, &(r, c)) in REPORT_SHAPES.iter().enumerate() {
            d = d.merge(op_diff(&cpu, op, r, c, 0x9000 + i as u64, Tamper::None));
        }
    }
    d
}

/// The report rows.
pub fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let cpus = "Cpu: 1 thread (baseline ISA) and 2 threads (detected ISA, chunks of 4099)";
    for op in Op::ALL {
        let d = op_total::<f32>(op).merge(op_total::<f64>(op));
        let setting = format!(
            "{cpus}; f32 and f64; rows × cols {REPORT_SHAPES:?}; {} elements compared, {} differ",
            d.elements, d.differing_elements
        );
        rows.push(if op.in_ulps() {
            Row::at_most(
                NAME,
                format!("{op:?} = reference: largest difference (ulp)"),
                "backend contract",
                setting,
                d.max_ulps as f64,
                0.0,
            )
        } else {
            Row::at_most(
                NAME,
                format!("{op:?} = reference: differing bits"),
                "backend contract",
                setting,
                d.differing_bits as f64,
                0.0,
            )
        });
    }
    let (mlp, data) = report_network();
    let steps = 20;
    for (label, config) in report_configs() {
        let mut d = Diff::default();
        for cpu in report_backends::<f32>() {
            d = d.merge(train_diff(&cpu, config, steps, Tamper::None));
        }
        rows.push(Row::at_most(
            NAME,
            format!("SmoothOut training run, Cpu = Reference backend: differing bits ({label})"),
            "Alg. 1",
            format!(
                "MLP {:?}, n = {}, {steps} steps of fused SGD, f32; {cpus}; {} parameters and velocities compared",
                mlp.sizes(),
                data.n,
                d.elements
            ),
            d.differing_bits as f64,
            0.0,
        ));
    }
    rows
}
