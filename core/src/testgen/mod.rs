//! One test suite, every backend: the bodies behind [`backend_tests!`](crate::backend_tests).
//!
//! Each public function here is a test body, generic over a [`Backend`] `B`
//! and a constructor `make: Fn(Vec<B::Elem>) -> B::Buffer`, and told the
//! largest buffer it may use (`max_len`; `usize::MAX` for all). It runs one
//! backend operation on inputs of awkward sizes and compares the result with
//! the plain-slice [`crate::reference`] function (or, for the step, with the
//! [`Reference`] backend), panicking with the first difference. The macro
//! [`backend_tests!`](crate::backend_tests) wraps every body in a `#[test]`
//! for one backend, so a new backend gets the whole suite with one line.
//!
//! Only with the cargo feature `testgen` (which implies `std`); nothing here
//! is compiled otherwise.
//!
//! # What is compared, and how closely
//!
//! Every backend must reproduce the reference bit for bit: noise is a pure
//! function of its key and element index, and the arithmetic is specified
//! down to the rounding (see [`crate::reference`]). Values are compared
//! through their exact widening to `f64` with [`f64::to_bits`], so `-0.0`
//! differs from `+0.0` and NaN never compares equal to a number. Any two NaNs
//! match, whatever their payloads: IEEE 754 leaves the payload of a NaN that
//! arithmetic produces to the machine (x86 passes the operand's on, NVIDIA
//! GPUs return one canonical NaN).
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | `fill_noise` uniform, Gaussian, Bernoulli | bit-identical | pure function of `(key, index)`, one rounding per step |
//! | `perturb`, `denoise` (fixed, per-element, per-row) | bit-identical | same unit draws, same operation order, no FMA |
//! | `drop_out` | bit-identical | integer threshold on the word |
//! | `filter_scales` | bit-identical | each row's norms summed over the 32 fixed `f64` lanes, scale rounded to `Elem` once |
//! | `perturb_filter_norm` | bit-identical | `filter_scales` then `perturb` with those scales, the noise generated once |
//! | `row_norms` | bit-identical | as `filter_scales` (each row is one sequential 32-lane sum); a backend that reduced a row in another order would need a relative bound instead, and would then also break `filter_scales` |
//! | `axpy`, `denoise_sgd` | bit-identical | element-wise, one rounding per operation |
//! | `write_noise` (fixed, per-element, per-row) | bit-identical | the arithmetic of `perturb` without the addition |
//! | the [`SmoothOut`] step, every mode, all-parameter and per-parameter ([`Param`]) | bit-identical | built from the operations above |
//!
//! # Sizes
//!
//! Lengths 1, 3, 63, 64, 65, 127, 128, 129, 1000 and 100 003 (around half
//! and whole 128-element noise tiles; the last a multiple of neither a tile
//! nor a CPU chunk), and row structures with 1, 7 and 75 columns (a bias, a
//! small linear layer, a 3 × 5 × 5 convolution filter), including rows of
//! zeros; those above `max_len` are skipped.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::backend::Reference;
use crate::backend::{Backend, BackendTypes, FilterNoise, NoiseOf};
use crate::error::Error;
use crate::noise::philox::{NoiseKey, TILE};
use crate::noise::unit::Unit;
use crate::noise::Schedule;
use crate::noise::{Noise, Scaling};
use crate::real::Real;
use crate::reference::{self, ParamNoise, Scale};
use crate::step::ParamSpec;
use crate::step::Sgd;
use crate::step::{param_id, Param};
use crate::step::{Config, Denoise, Draw, SmoothOut};
use num_traits::{One, Zero};

pub mod tensor;

/// Instantiates every body of [`smoothout::testgen`](crate::testgen) as a
/// `#[test]` for one backend.
///
/// ```text
/// backend_tests!(module_name, backend_expression, make_buffer_expression);
/// backend_tests!(module_name, backend_expression, make_buffer_expression, max_len = N);
/// ```
///
/// * `module_name`: the module the tests are put in (test names read
///   `module_name::fill_noise_uniform`, …);
/// * `backend_expression`: evaluated afresh in every test, a value of a type
///   that implements [`Backend`];
/// * `make_buffer_expression`: a closure (or function) turning a
///   `Vec<Elem>` into the backend's buffer, e.g. `|v| v` for
///   [`Reference`], `|v| ndarray::ArrayD::from_shape_vec(vec![v.len()], v).unwrap()`
///   for an `ndarray` backend;
/// * `max_len = N` (optional): skip buffers of more than `N` elements, for
///   configurations whose cost grows with the size but whose behaviour does
///   not (e.g. a CPU backend with one-element chunks, where every element
///   regenerates a whole 128-element noise tile). The default runs every size.
///
/// The expressions are resolved in the invoking module (the generated module
/// glob-imports its parent), so they may use its imports.
///
/// Needs the cargo feature `testgen` of `smoothout`, usually as a
/// dev-dependency: `smoothout = { …, features = ["testgen"] }`.
///
/// # Example
///
/// ```no_run
/// use smoothout::Reference;
///
/// smoothout::backend_tests!(reference_f32, Reference::<f32>::new(), |v: Vec<f32>| v);
/// smoothout::backend_tests!(reference_f64, Reference::<f64>::new(), |v: Vec<f64>| v);
/// # fn main() {}
/// ```
///
/// A backend that may be unavailable (no GPU, no driver) is written with
/// `try`: the expression is a `Result<B, E>` with `E: Display`, and every
/// test prints `skipped: <reason>` and passes when it is an `Err`:
///
/// ```text
/// backend_tests!(try cuda_f32, Cuda::new(), |v: Vec<f32>| upload(v));
/// ```
#[macro_export]
macro_rules! backend_tests {
    (try $name:ident, $backend:expr, $make:expr $(,)?) => {
        $crate::backend_tests!(@module $name, (match $backend {
            Ok(b) => b,
            Err(e) => {
                std::eprintln!("skipped: {e}");
                return;
            }
        }), $make, usize::MAX);
    };
    ($name:ident, $backend:expr, $make:expr, max_len = $max:expr $(,)?) => {
        $crate::backend_tests!(@module $name, $backend, $make, $max);
    };
    (@module $name:ident, $backend:expr, $make:expr, $max:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::backend_tests!(@each $backend, $make, $max;
                fill_noise_uniform,
                fill_noise_gaussian,
                fill_noise_bernoulli,
                fill_noise_rejects_invalid_noise,
                perturb_and_denoise_fixed,
                perturb_and_denoise_per_element,
                perturb_and_denoise_rows,
                drop_out,
                filter_scales,
                perturb_filter_norm,
                row_norms,
                row_norms_rejects_bad_shapes,
                axpy,
                denoise_sgd,
                denoise_sgd_rejects_bad_lengths,
                buffers,
                step_fixed,
                step_per_element,
                step_filter_norm,
                step_closure_error_still_denoises,
                write_noise,
                per_parameter_step,
            );
        }
    };
    ($name:ident, $backend:expr, $make:expr $(,)?) => {
        $crate::backend_tests!($name, $backend, $make, max_len = usize::MAX);
    };
    (@each $backend:expr, $make:expr, $max:expr; $($body:ident),* $(,)?) => {
        $(
            #[test]
            fn $body() {
                let backend = $backend;
                let make = $make;
                $crate::testgen::$body(&backend, &make, $max);
            }
        )*
    };
}

/// The `make` every body takes: any closure or function turning host values
/// into one of the backend's buffers, `Fn(Vec<B::Elem>) -> B::Buffer`.
pub trait MakeBuffer<B: BackendTypes>: Fn(Vec<B::Elem>) -> B::Buffer {}

impl<B: BackendTypes, F: Fn(Vec<B::Elem>) -> B::Buffer> MakeBuffer<B> for F {}

/// θ for one parameter in terms of host slices (what the reference takes).
type HostNoise<'a, T> = ParamNoise<'a, T, [T]>;

/// Buffer lengths every element-wise body runs over.
pub const LENGTHS: [usize; 10] = [
    1,
    3,
    TILE / 2 - 1,
    TILE / 2,
    TILE / 2 + 1,
    TILE - 1,
    TILE,
    TILE + 1,
    1000,
    100_003,
];

/// `(rows, cols)` structures every per-row body runs over (columns 1, 7, 75;
/// the last of each about 10^5 elements).
pub const ROWS: [(usize, usize); 10] = [
    (1, 1),
    (3, 1),
    (65, 1),
    (100_003, 1),
    (1, 7),
    (9, 7),
    (14_287, 7),
    (1, 75),
    (3, 75),
    (1_334, 75),
];

/// The entries of [`LENGTHS`] up to `max_len`, with their index (which
/// salts the keys, so a length gets the same data whatever the limit).
fn lengths(max_len: usize) -> impl Iterator<Item = (usize, usize)> {
    LENGTHS
        .into_iter()
        .enumerate()
        .filter(move |&(_, n)| n <= max_len)
}

/// The entries of [`ROWS`] of at most `max_len` elements, with their index.
fn rows(max_len: usize) -> impl Iterator<Item = (usize, (usize, usize))> {
    ROWS.into_iter()
        .enumerate()
        .filter(move |&(_, (r, c))| r * c <= max_len)
}

fn key(salt: u64) -> NoiseKey {
    NoiseKey::for_draw(0x5300_7407, 3 + salt, salt % 2, salt)
}

/// Deterministic test weights, N(0, 0.25) with every fifth row (rows of
/// `cols`) set to zero, so that zero rows, zero elements and both signs occur.
fn weights<T: Real>(len: usize, cols: usize, salt: u64) -> Vec<T> {
    let mut w = vec![T::zero(); len];
    reference::fill_noise(
        NoiseKey::from_seed(0x00C0_FFEE).fold_in(salt),
        &Noise::Gaussian { std: 0.5 },
        0,
        &mut w,
    )
    .expect("valid noise");
    for (r, row) in w.chunks_mut(cols.max(1)).enumerate() {
        if r % 5 == 2 {
            row.fill(T::zero());
        }
    }
    w
}

fn nan<T: Real>(len: usize) -> Vec<T> {
    vec![T::nan(); len]
}

fn read<B: Backend>(backend: &B, buf: &B::Buffer) -> Vec<B::Elem> {
    backend.to_vec(buf).expect("to_vec")
}

/// Equal bits, or both NaN (any payloads).
fn same_value<T: Real>(a: T, b: T) -> bool {
    let (a, b) = (a.to_f64(), b.to_f64());
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Panics with the first element whose bits differ (any two NaNs match).
#[track_caller]
pub(crate) fn same_bits<T: Real>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = (0..got.len()).find(|&i| !same_value(got[i], want[i])) {
        panic!(
            "{what}: element {i} of {} differs: backend {:?}, reference {:?}",
            got.len(),
            got[i],
            want[i]
        );
    }
}

#[track_caller]
fn same_bits_f64(what: &str, got: &[f64], want: &[f64]) {
    same_bits(what, got, want);
}

fn fill_noise_case<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    max_len: usize,
    noise: Noise,
) {
    for (i, len) in lengths(max_len) {
        let k = key(i as u64);
        let mut want = nan::<B::Elem>(len);
        reference::fill_noise(k, &noise, 0, &mut want).expect("reference fill_noise");
        let mut out = make(nan(len));
        backend.fill_noise(k, &noise, &mut out).expect("fill_noise");
        same_bits(
            &format!("fill_noise {noise:?} len {len}"),
            &read(backend, &out),
            &want,
        );
    }
}

/// `fill_noise` of `U(−a, a)` for `a ∈ {0, 0.0375, 1}` equals
/// [`reference::fill_noise`] bit for bit, over a NaN-filled buffer.
pub fn fill_noise_uniform<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for a in [0.0, 0.0375, 1.0] {
        fill_noise_case(backend, make, max_len, Noise::Uniform { a });
    }
}

/// `fill_noise` of `N(0, std²)` for `std ∈ {0, 0.01, 1}`, bit for bit.
pub fn fill_noise_gaussian<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for std in [0.0, 0.01, 1.0] {
        fill_noise_case(backend, make, max_len, Noise::Gaussian { std });
    }
}

/// `fill_noise` of the Bernoulli drop indicator for `p ∈ {0, 0.3, 1}`,
/// bit for bit.
pub fn fill_noise_bernoulli<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for p in [0.0, 0.3, 1.0] {
        fill_noise_case(backend, make, max_len, Noise::Bernoulli { p });
    }
}

/// A hand-built invalid [`Noise`] is refused with the typed error, not used.
pub fn fill_noise_rejects_invalid_noise<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    _max_len: usize,
) {
    let mut out = make(nan(5));
    let r = backend.fill_noise(key(0), &Noise::Uniform { a: -1.0 }, &mut out);
    assert!(
        matches!(r, Err(Error::InvalidStrength { name: "a", .. })),
        "{r:?}"
    );
    let r = backend.fill_noise(key(0), &Noise::Gaussian { std: f64::NAN }, &mut out);
    assert!(
        matches!(r, Err(Error::InvalidStrength { name: "std", .. })),
        "{r:?}"
    );
    let r = backend.fill_noise(key(0), &Noise::Bernoulli { p: 1.5 }, &mut out);
    assert!(matches!(r, Err(Error::InvalidProbability { .. })), "{r:?}");
    let mut w = make(vec![B::Elem::one(); 5]);
    let r = backend.drop_out(&mut w, key(0), -0.5);
    assert!(matches!(r, Err(Error::InvalidProbability { .. })), "{r:?}");
}

/// Runs perturb then denoise on the backend and on the reference with the
/// given noise (scale buffer `scales` for rows), comparing after each.
fn perturb_denoise_case<B: Backend>(
    backend: &B,
    what: &str,
    w0: &[B::Elem],
    mut w: B::Buffer,
    noise: &NoiseOf<'_, B>,
    reference_noise: &ParamNoise<'_, B::Elem, [B::Elem]>,
) {
    let mut want = w0.to_vec();
    reference::perturb(reference_noise, 0, &mut want);
    backend.perturb(&mut w, noise).expect("perturb");
    let got = read(backend, &w);
    same_bits(&format!("perturb {what}"), &got, &want);
    // Not a tautology: the perturbation changed something (unless all zero).
    if w0.iter().any(|x| *x != B::Elem::zero()) {
        assert!(
            got.iter().zip(w0).any(|(a, b)| a != b),
            "perturb {what}: nothing changed"
        );
    }
    reference::denoise(reference_noise, 0, &mut want);
    backend.denoise(&mut w, noise).expect("denoise");
    same_bits(&format!("denoise {what}"), &read(backend, &w), &want);
}

fn scalar_scale<'a, T, S: ?Sized>(per_element: bool, s: T) -> Scale<'a, T, S> {
    if per_element {
        Scale::PerElement(s)
    } else {
        Scale::Fixed(s)
    }
}

/// The same θ for the backend and for the reference: key `key`, draw
/// `unit`, and a scalar scale `s` (per element or fixed).
fn scalar_noise<'a, B: Backend>(
    key: NoiseKey,
    unit: Unit,
    per_element: bool,
    s: B::Elem,
) -> (NoiseOf<'a, B>, HostNoise<'a, B::Elem>) {
    let noise = ParamNoise {
        key,
        unit,
        scale: scalar_scale(per_element, s),
    };
    let rn = ParamNoise {
        key,
        unit,
        scale: scalar_scale(per_element, s),
    };
    (noise, rn)
}

/// The reference's per-row scales of some weights (strength 0.0375), on the
/// host and uploaded to a backend buffer.
struct RowScales<B: Backend> {
    key: NoiseKey,
    unit: Unit,
    cols: usize,
    host: Vec<B::Elem>,
    buf: B::Buffer,
}

impl<B: Backend> RowScales<B> {
    /// The scales of `w0`, rows of `cols`, for `key` and `unit`.
    fn new<F: MakeBuffer<B>>(
        make: &F,
        key: NoiseKey,
        unit: Unit,
        w0: &[B::Elem],
        cols: usize,
    ) -> Self {
        let mut host = vec![B::Elem::zero(); w0.len() / cols];
        reference::filter_scales(key, unit, 0.0375, cols, 0, w0, &mut host)
            .expect("reference filter_scales");
        let buf = make(host.clone());
        RowScales {
            key,
            unit,
            cols,
            host,
            buf,
        }
    }

    /// θ of the draw these rows were scaled for, for the backend and for
    /// the reference.
    fn noise(&self) -> (NoiseOf<'_, B>, HostNoise<'_, B::Elem>) {
        let rn = ParamNoise {
            key: self.key,
            unit: self.unit,
            scale: Scale::Rows {
                cols: self.cols,
                scales: self.host.as_slice(),
            },
        };
        let noise = rn.map_scales(|_| Ok(&self.buf)).expect("the same rows");
        (noise, rn)
    }
}

fn perturb_scalar_case<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    max_len: usize,
    per_element: bool,
) {
    for (i, len) in lengths(max_len) {
        for unit in [Unit::Uniform, Unit::Gaussian] {
            for s in [0.0375, 0.5] {
                let s = B::Elem::from_f64(s);
                let k = key(10 + i as u64);
                let w0 = weights::<B::Elem>(len, 1, i as u64);
                let (noise, rn) = scalar_noise::<B>(k, unit, per_element, s);
                let what = format!("{:?} {unit:?} s {s} len {len}", rn.scale);
                perturb_denoise_case(backend, &what, &w0, make(w0.clone()), &noise, &rn);
            }
        }
    }
}

/// `perturb` then `denoise` with a fixed scale (SmoothOut), uniform and
/// Gaussian, both equal to the reference bit for bit.
pub fn perturb_and_denoise_fixed<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    max_len: usize,
) {
    perturb_scalar_case(backend, make, max_len, false);
}

/// `perturb` then `denoise` with per-element scaling `θ = s·|w|·u`, bit for
/// bit (the de-noise divides, so this also pins the division).
pub fn perturb_and_denoise_per_element<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    max_len: usize,
) {
    perturb_scalar_case(backend, make, max_len, true);
}

/// `perturb` then `denoise` with per-row scales (AdaSmoothOut), for every
/// row structure of [`ROWS`], bit for bit.
pub fn perturb_and_denoise_rows<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    max_len: usize,
) {
    for (i, (rows, cols)) in rows(max_len) {
        for unit in [Unit::Uniform, Unit::Gaussian] {
            let k = key(20 + i as u64);
            let w0 = weights::<B::Elem>(rows * cols, cols, i as u64);
            let scales = RowScales::new(make, k, unit, &w0, cols);
            let (noise, rn) = scales.noise();
            let what = format!("rows {rows} x {cols} {unit:?}");
            perturb_denoise_case(backend, &what, &w0, make(w0.clone()), &noise, &rn);
        }
    }
}

/// `drop_out` for `p ∈ {0, 0.3, 1}` zeroes the same elements as the
/// reference.
pub fn drop_out<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, len) in lengths(max_len) {
        for p in [0.0, 0.3, 1.0] {
            let k = key(30 + i as u64);
            let mut want = weights::<B::Elem>(len, 1, i as u64);
            let mut w = make(want.clone());
            reference::drop_out(k, p, 0, &mut want).expect("reference drop_out");
            backend.drop_out(&mut w, k, p).expect("drop_out");
            same_bits(
                &format!("drop_out p {p} len {len}"),
                &read(backend, &w),
                &want,
            );
        }
    }
}

/// `filter_scales` for every row structure of [`ROWS`], uniform and
/// Gaussian, equals the reference bit for bit; zero rows get a zero scale.
pub fn filter_scales<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, (rows, cols)) in rows(max_len) {
        for unit in [Unit::Uniform, Unit::Gaussian] {
            for strength in [0.0375, 1.0] {
                let k = key(40 + i as u64);
                let w0 = weights::<B::Elem>(rows * cols, cols, i as u64);
                let mut want = nan::<B::Elem>(rows);
                reference::filter_scales(k, unit, strength, cols, 0, &w0, &mut want)
                    .expect("reference filter_scales");
                let mut out = make(nan(rows));
                let noise = FilterNoise {
                    key: k,
                    unit,
                    strength,
                    cols,
                };
                backend
                    .filter_scales(&make(w0), &noise, &mut out)
                    .expect("filter_scales");
                let got = read(backend, &out);
                same_bits(
                    &format!("filter_scales rows {rows} x {cols} {unit:?} {strength}"),
                    &got,
                    &want,
                );
                for (r, s) in got.iter().enumerate() {
                    if r % 5 == 2 {
                        assert!(*s == B::Elem::zero(), "zero row {r} got scale {s}");
                    }
                }
            }
        }
    }
}

/// The one-pass AdaSmoothOut perturbation, weights and scales, equals
/// [`reference::perturb_filter_norm`] bit for bit for every row structure.
pub fn perturb_filter_norm<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, (rows, cols)) in rows(max_len) {
        for unit in [Unit::Uniform, Unit::Gaussian] {
            let k = key(60 + i as u64);
            let mut want_w = weights::<B::Elem>(rows * cols, cols, i as u64);
            let mut w = make(want_w.clone());
            let mut want_s = nan::<B::Elem>(rows);
            reference::perturb_filter_norm(k, unit, 0.0375, cols, 0, &mut want_w, &mut want_s)
                .expect("reference perturb_filter_norm");
            let mut s = make(nan(rows));
            let noise = FilterNoise {
                key: k,
                unit,
                strength: 0.0375,
                cols,
            };
            backend
                .perturb_filter_norm(&mut w, &noise, &mut s)
                .expect("perturb_filter_norm");
            let what = format!("perturb_filter_norm rows {rows} x {cols} {unit:?}");
            same_bits(&format!("{what} scales"), &read(backend, &s), &want_s);
            same_bits(&format!("{what} weights"), &read(backend, &w), &want_w);
        }
    }
}

/// `row_norms` for every row structure of [`ROWS`] equals
/// [`reference::row_norms`] bit for bit (see the module's tolerance table).
pub fn row_norms<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, (rows, cols)) in rows(max_len) {
        let w0 = weights::<B::Elem>(rows * cols, cols, 50 + i as u64);
        let mut want = vec![f64::NAN; rows];
        reference::row_norms(&w0, cols, &mut want).expect("reference row_norms");
        let mut got = vec![f64::NAN; rows];
        backend
            .row_norms(&make(w0), cols, &mut got)
            .expect("row_norms");
        same_bits_f64(&format!("row_norms rows {rows} x {cols}"), &got, &want);
    }
}

/// `row_norms` refuses zero columns, a length that is not a multiple of the
/// row length, and an output of the wrong length.
pub fn row_norms_rejects_bad_shapes<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    _max_len: usize,
) {
    let w = make(weights(21, 7, 0));
    for (cols, rows) in [(0, 3), (4, 5), (7, 4), (7, 2)] {
        let mut out = vec![0.0; rows];
        let r = backend.row_norms(&w, cols, &mut out);
        assert!(
            matches!(r, Err(Error::LengthMismatch { .. })),
            "cols {cols} rows {rows}: {r:?}"
        );
    }
    let mut scales = make(nan(4));
    let noise = FilterNoise {
        key: key(0),
        unit: Unit::Uniform,
        strength: 0.1,
        cols: 7,
    };
    let r = backend.filter_scales(&w, &noise, &mut scales);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
}

/// `axpy` for several `alpha` (including 0 and −1) equals the reference
/// bit for bit.
pub fn axpy<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, len) in lengths(max_len) {
        for alpha in [0.0, -1.0, 0.3] {
            let alpha = B::Elem::from_f64(alpha);
            let x = weights::<B::Elem>(len, 1, 60 + i as u64);
            let mut want = weights::<B::Elem>(len, 1, 70 + i as u64);
            let mut y = make(want.clone());
            reference::axpy(alpha, &x, &mut want).expect("reference axpy");
            backend.axpy(alpha, &make(x), &mut y).expect("axpy");
            same_bits(
                &format!("axpy alpha {alpha} len {len}"),
                &read(backend, &y),
                &want,
            );
        }
    }
    let mut y = make(nan(4));
    let r = backend.axpy(B::Elem::one(), &make(nan(5)), &mut y);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
}

/// Fused de-noise + SGD momentum, with no noise, fixed, per-element and
/// per-row noise, two optimiser settings: `w` and the velocity equal the
/// reference bit for bit.
pub fn denoise_sgd<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    let sgds = [
        Sgd::new(0.1, 0.9, 5e-4).expect("valid sgd"),
        Sgd::new(0.05, 0.0, 0.0).expect("valid sgd"),
    ];
    let shapes = lengths(max_len).map(|(i, n)| (i, n, 1)).chain(
        rows(max_len)
            .filter(|&(_, (_, c))| c > 1)
            .map(|(i, (r, c))| (LENGTHS.len() + i, r * c, c)),
    );
    for (i, len, cols) in shapes {
        let i = i as u64;
        let w0 = weights::<B::Elem>(len, cols, 80 + i);
        let g = weights::<B::Elem>(len, cols, 90 + i);
        let v0 = weights::<B::Elem>(len, cols, 100 + i);
        let k = key(110 + i);
        let scales = RowScales::new(make, k, Unit::Uniform, &w0, cols);
        let s = B::Elem::from_f64(0.0375);
        for (n, sgd) in sgds.iter().enumerate() {
            for kind in 0..4 {
                let (noise, rn) = match kind {
                    1 => scalar_noise::<B>(k, Unit::Uniform, false, s),
                    2 => scalar_noise::<B>(k, Unit::Gaussian, true, s),
                    _ => scales.noise(),
                };
                let (mut want_w, mut want_v) = (w0.clone(), v0.clone());
                let (mut w, mut v) = (make(w0.clone()), make(v0.clone()));
                let gb = make(g.clone());
                let (rn, noise) = if kind == 0 {
                    (None, None)
                } else {
                    (Some(&rn), Some(&noise))
                };
                reference::denoise_sgd(rn, 0, &mut want_w, &g, &mut want_v, sgd)
                    .expect("reference denoise_sgd");
                backend
                    .denoise_sgd(&mut w, &gb, &mut v, noise, sgd)
                    .expect("denoise_sgd");
                let what = format!("denoise_sgd len {len} cols {cols} noise kind {kind} sgd {n}");
                same_bits(&format!("{what}: w"), &read(backend, &w), &want_w);
                same_bits(&format!("{what}: velocity"), &read(backend, &v), &want_v);
            }
        }
    }
}

/// `denoise_sgd` refuses a gradient or velocity of another length, and an
/// invalid hand-built [`Sgd`].
pub fn denoise_sgd_rejects_bad_lengths<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    _max_len: usize,
) {
    let sgd = Sgd::new(0.1, 0.9, 0.0).expect("valid sgd");
    let mut w = make(weights(10, 1, 0));
    let mut v = make(vec![B::Elem::zero(); 10]);
    let r = backend.denoise_sgd(&mut w, &make(nan(9)), &mut v, None, &sgd);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    let mut short_v = make(vec![B::Elem::zero(); 11]);
    let r = backend.denoise_sgd(&mut w, &make(nan(10)), &mut short_v, None, &sgd);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    let bad = Sgd {
        lr: f64::NAN,
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let r = backend.denoise_sgd(&mut w, &make(nan(10)), &mut v, None, &bad);
    assert!(matches!(r, Err(Error::InvalidSetting { .. })), "{r:?}");
}

/// `zeros`, `copy` and `to_vec`: zeros are `+0.0`, a copy is exact, a copy
/// between different lengths is refused.
pub fn buffers<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, len) in lengths(max_len) {
        let z = backend.zeros(len).expect("zeros");
        assert_eq!(backend.len(&z), len);
        same_bits("zeros", &read(backend, &z), &vec![B::Elem::zero(); len]);
        let src = weights::<B::Elem>(len, 1, 120 + i as u64);
        let mut dst = make(nan(len));
        backend.copy(&make(src.clone()), &mut dst).expect("copy");
        same_bits(&format!("copy len {len}"), &read(backend, &dst), &src);
    }
    let mut dst = make(nan(3));
    let r = backend.copy(&make(nan(4)), &mut dst);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
}

/// The parameter set of the step bodies: a 5 × 3 × 5 × 5 convolution
/// (75 columns), its bias, an unperturbed normalisation scale, a 9 × 7
/// linear layer, an odd 65-element bias and a 500 × 75 layer (37 500
/// elements: more than one default CPU chunk of 2^15, split inside a row),
/// fewer rows if `max_len` says so.
fn step_specs(max_len: usize) -> Vec<ParamSpec> {
    let big_rows = (max_len / 75).clamp(1, 500);
    vec![
        ParamSpec::weight("conv.weight", [5, 3, 5, 5]),
        ParamSpec::bias("conv.bias", 5),
        ParamSpec::normalization("bn.weight", 5),
        ParamSpec::weight("fc.weight", [9, 7]),
        ParamSpec::bias("fc.bias", 65),
        ParamSpec::weight("big.weight", [big_rows, 75]),
    ]
}

fn step_params<T: Real>(specs: &[ParamSpec]) -> Vec<Vec<T>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| weights(s.len(), s.cols(), 200 + i as u64))
        .collect()
}

/// The backend's parameters next to the reference's, for comparison.
struct Pair<'a, B: Backend> {
    backend: &'a B,
    reference: Reference<B::Elem>,
    params: Vec<B::Buffer>,
    ref_params: Vec<Vec<B::Elem>>,
}

impl<B: Backend> Pair<'_, B> {
    #[track_caller]
    fn same(&self, what: &str) {
        for (i, (p, r)) in self.params.iter().zip(&self.ref_params).enumerate() {
            same_bits(&format!("{what}, param {i}"), &read(self.backend, p), r);
        }
    }
}

fn snapshot<B: Backend>(backend: &B, params: &[B::Buffer]) -> Vec<Vec<B::Elem>> {
    params.iter().map(|p| read(backend, p)).collect()
}

/// Runs four draws (steps 2 to 5 of 4, so the tanh schedule is at
/// strength 0.5 and above) of the SmoothOut step in every API (closure, fused SGD,
/// guard with explicit and with dropped de-noise) on the backend and on
/// [`Reference`], comparing the perturbed parameters inside each draw and the
/// parameters after it.
fn step_case<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize, config: Config) {
    let specs = step_specs(max_len);
    let init = step_params::<B::Elem>(&specs);
    let reference = Reference::<B::Elem>::new();
    let mut so = SmoothOut::new(backend, config, specs.clone()).expect("SmoothOut::new");
    let mut so_ref = SmoothOut::new(&reference, config, specs.clone()).expect("reference new");
    let mut pair = Pair {
        backend,
        reference,
        params: init.iter().cloned().map(make).collect(),
        ref_params: init.clone(),
    };
    let zeros = |n: usize| vec![B::Elem::zero(); n];
    let mut grads: Vec<B::Buffer> = specs.iter().map(|s| make(zeros(s.len()))).collect();
    let mut velocity: Vec<B::Buffer> = specs.iter().map(|s| make(zeros(s.len()))).collect();
    let mut ref_grads: Vec<Vec<B::Elem>> = specs.iter().map(|s| zeros(s.len())).collect();
    let mut ref_velocity = ref_grads.clone();
    let sgd = Sgd::new(0.05, 0.9, 5e-4).expect("valid sgd");
    let name = format!("{config:?}");

    // 1. The closure API.
    let draw = Draw::new(2, 0);
    let before = snapshot(backend, &pair.params);
    let inside = so
        .step(backend, &mut pair.params, draw, |p| {
            Ok::<_, Error>(snapshot(backend, p))
        })
        .expect("step");
    let ref_inside = so_ref
        .step(&pair.reference, &mut pair.ref_params, draw, |p| {
            Ok::<_, Error>(p.to_vec())
        })
        .expect("reference step");
    for (i, (got, want)) in inside.iter().zip(&ref_inside).enumerate() {
        same_bits(&format!("{name}: step, perturbed param {i}"), got, want);
        // Not a tautology: unperturbed parameters are untouched, perturbed
        // ones moved (for Bernoulli, those of more than 50 elements).
        let changed = got.iter().zip(&before[i]).any(|(a, b)| a != b);
        let must_change = specs[i].perturbed
            && (!matches!(config.noise, Noise::Bernoulli { .. }) || specs[i].len() > 50);
        assert!(
            specs[i].perturbed || !changed,
            "{name}: unperturbed param {i} changed"
        );
        assert!(!must_change || changed, "{name}: param {i} not perturbed");
    }
    pair.same(&format!("{name}: after step"));
    assert_eq!(so.applied(), None);

    // 2. Fused SGD; the "gradient" is the perturbed parameters themselves.
    let draw = Draw::new(3, 0);
    let inside = so
        .step_sgd(
            backend,
            &mut pair.params,
            &mut grads,
            &mut velocity,
            &sgd,
            draw,
            |p, g| {
                for (p, g) in p.iter().zip(g.iter_mut()) {
                    backend.copy(p, g)?;
                }
                Ok::<_, Error>(snapshot(backend, p))
            },
        )
        .expect("step_sgd");
    let ref_inside = so_ref
        .step_sgd(
            &pair.reference,
            &mut pair.ref_params,
            &mut ref_grads,
            &mut ref_velocity,
            &sgd,
            draw,
            |p, g| {
                for (p, g) in p.iter().zip(g.iter_mut()) {
                    g.copy_from_slice(p);
                }
                Ok::<_, Error>(p.to_vec())
            },
        )
        .expect("reference step_sgd");
    for (i, (got, want)) in inside.iter().zip(&ref_inside).enumerate() {
        same_bits(&format!("{name}: step_sgd, perturbed param {i}"), got, want);
    }
    pair.same(&format!("{name}: after step_sgd"));
    for (i, (v, r)) in velocity.iter().zip(&ref_velocity).enumerate() {
        same_bits(
            &format!("{name}: velocity {i} after step_sgd"),
            &read(backend, v),
            r,
        );
    }

    // 3. The guard, explicit fused de-noise, on a ghost batch.
    let draw = Draw::new(4, 1);
    {
        let guard = so.guard(backend, &mut pair.params, draw).expect("guard");
        let got = snapshot(backend, &guard);
        let ref_guard = so_ref
            .guard(&pair.reference, &mut pair.ref_params, draw)
            .expect("reference guard");
        for (i, (got, want)) in got.iter().zip(ref_guard.iter()).enumerate() {
            same_bits(&format!("{name}: guard, perturbed param {i}"), got, want);
        }
        guard
            .denoise_sgd(&grads, &mut velocity, &sgd)
            .expect("guard denoise_sgd");
        ref_guard
            .denoise_sgd(&ref_grads, &mut ref_velocity, &sgd)
            .expect("reference guard denoise_sgd");
    }
    pair.same(&format!("{name}: after guard denoise_sgd"));

    // 4. A guard dropped without an explicit de-noise de-noises on drop.
    let draw = Draw::new(5, 0);
    drop(so.guard(backend, &mut pair.params, draw).expect("guard"));
    drop(
        so_ref
            .guard(&pair.reference, &mut pair.ref_params, draw)
            .expect("reference guard"),
    );
    assert_eq!(so.applied(), None, "{name}: the dropped guard de-noised");
    pair.same(&format!("{name}: after dropped guard"));
}

fn step_configs(scaling: Scaling) -> Vec<Config> {
    let mut noises = [
        Noise::uniform(0.0375).expect("valid"),
        Noise::gaussian(0.01).expect("valid"),
        Noise::bernoulli(0.3).expect("valid"),
    ];
    if scaling == Scaling::PerElement {
        // The per-element strength multiplies |w|; 0.5 exercises the division.
        noises[0] = Noise::uniform(0.5).expect("valid");
    }
    let schedule = match scaling {
        Scaling::Fixed => Schedule::anneal(0.55).expect("valid"),
        Scaling::PerElement => Schedule::Constant,
        Scaling::FilterNorm => Schedule::tanh(10.0).expect("valid"),
    };
    let mut out = Vec::new();
    for denoise in [Denoise::Regenerate, Denoise::Exact, Denoise::Off] {
        for noise in noises.iter().copied() {
            let config = Config::new(noise)
                .with_scaling(scaling)
                .with_schedule(schedule, 4)
                .with_denoise(denoise)
                .with_seed(0xABCD);
            if config.validate().is_ok() {
                out.push(config);
            }
        }
    }
    out
}

fn step_all<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize, scaling: Scaling) {
    let configs = step_configs(scaling);
    // Regenerate refuses Bernoulli, and per-element Gaussian; the rest run.
    let expected = if scaling == Scaling::PerElement { 7 } else { 8 };
    assert_eq!(configs.len(), expected, "{scaling:?}: {configs:?}");
    for config in configs {
        step_case(backend, make, max_len, config);
    }
}

/// The SmoothOut step with fixed scaling (anneal schedule), uniform,
/// Gaussian and Bernoulli noise, de-noise `Regenerate`, `Exact` and `Off`:
/// the same bits as on [`Reference`] at every stage.
pub fn step_fixed<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    step_all(backend, make, max_len, Scaling::Fixed);
}

/// The SmoothOut step with per-element scaling, every valid noise and
/// de-noise mode: the same bits as on [`Reference`].
pub fn step_per_element<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    step_all(backend, make, max_len, Scaling::PerElement);
}

/// The AdaSmoothOut step (per-filter scaling, tanh schedule), every valid
/// noise and de-noise mode: the same bits as on [`Reference`].
pub fn step_filter_norm<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    step_all(backend, make, max_len, Scaling::FilterNorm);
}

/// A caller's own error type for the step closures.
#[derive(Debug, PartialEq)]
enum StepFailure {
    Backward,
    SmoothOut(Error),
}

impl From<Error> for StepFailure {
    fn from(e: Error) -> Self {
        StepFailure::SmoothOut(e)
    }
}

/// When the closure of [`SmoothOut::step`] or [`SmoothOut::step_sgd`] fails,
/// the parameters are still de-noised (as on [`Reference`]), not updated,
/// and the next draw can be applied.
pub fn step_closure_error_still_denoises<B: Backend, F: MakeBuffer<B>>(
    backend: &B,
    make: &F,
    max_len: usize,
) {
    for denoise in [Denoise::Regenerate, Denoise::Exact] {
        let config = Config::new(Noise::uniform(0.1).expect("valid"))
            .with_scaling(Scaling::FilterNorm)
            .with_denoise(denoise);
        let specs = step_specs(max_len);
        let init = step_params::<B::Elem>(&specs);
        let reference = Reference::<B::Elem>::new();
        let mut so = SmoothOut::new(backend, config, specs.clone()).expect("new");
        let mut so_ref = SmoothOut::new(&reference, config, specs.clone()).expect("new");
        let mut params: Vec<B::Buffer> = init.iter().cloned().map(make).collect();
        let mut ref_params = init.clone();
        // After a failed step at `draw`, the parameters hold the bits of the
        // reference's perturb then de-noise at that draw.
        let mut expect_reference_denoised = |params: &[B::Buffer], draw: u64, what: &str| {
            so_ref
                .perturb(&reference, &mut ref_params, Draw::new(draw, 0))
                .expect("perturb");
            so_ref
                .denoise(&reference, &mut ref_params, Draw::new(draw, 0))
                .expect("denoise");
            for (i, (p, r)) in params.iter().zip(&ref_params).enumerate() {
                same_bits(
                    &format!("{denoise:?}: param {i} after failed {what}"),
                    &read(backend, p),
                    r,
                );
            }
        };
        let r = so.step(backend, &mut params, Draw::new(0, 0), |_| {
            Err::<(), StepFailure>(StepFailure::Backward)
        });
        assert_eq!(r, Err(StepFailure::Backward));
        assert_eq!(so.applied(), None, "{denoise:?}: still perturbed after Err");
        expect_reference_denoised(&params, 0, "step");
        if denoise == Denoise::Exact {
            for (i, (p, w)) in params.iter().zip(&init).enumerate() {
                same_bits(&format!("exact restore of param {i}"), &read(backend, p), w);
            }
        }

        // The fused path: de-noised, not updated, velocity untouched.
        let mut grads: Vec<B::Buffer> = init.iter().cloned().map(make).collect();
        let mut velocity: Vec<B::Buffer> = init.iter().cloned().map(make).collect();
        let sgd = Sgd::new(0.5, 0.9, 0.0).expect("valid");
        let r = so.step_sgd(
            backend,
            &mut params,
            &mut grads,
            &mut velocity,
            &sgd,
            Draw::new(1, 0),
            |_, _| Err::<(), StepFailure>(StepFailure::Backward),
        );
        assert_eq!(r, Err(StepFailure::Backward));
        assert_eq!(so.applied(), None);
        expect_reference_denoised(&params, 1, "step_sgd");
        for (i, (v, w)) in velocity.iter().zip(&init).enumerate() {
            same_bits(&format!("velocity {i} untouched"), &read(backend, v), w);
        }
        // And the next draw goes through.
        so.perturb(backend, &mut params, Draw::new(2, 0))
            .expect("perturb after failures");
        so.denoise(backend, &mut params, Draw::new(2, 0))
            .expect("denoise");
    }
}

fn write_noise_case<B: Backend>(
    backend: &B,
    what: &str,
    w0: &[B::Elem],
    w: &B::Buffer,
    out: B::Buffer,
    noise: &NoiseOf<'_, B>,
    reference_noise: &HostNoise<'_, B::Elem>,
) {
    let mut want = nan::<B::Elem>(w0.len());
    reference::write_noise(reference_noise, 0, w0, &mut want).expect("reference write_noise");
    // The reference's θ is what its perturb adds: w + θ has the perturbed bits.
    let mut perturbed = w0.to_vec();
    reference::perturb(reference_noise, 0, &mut perturbed);
    let added: Vec<B::Elem> = w0.iter().zip(&want).map(|(&w, &t)| w + t).collect();
    same_bits(
        &format!("w + θ against perturb, {what}"),
        &added,
        &perturbed,
    );
    let mut out = out;
    backend
        .write_noise(noise, w, &mut out)
        .expect("write_noise");
    same_bits(&format!("write_noise {what}"), &read(backend, &out), &want);
    assert_eq!(read(backend, w), w0, "write_noise {what}: w was written");
}

/// `write_noise` — θ for fixed, per-element and per-row scaling, uniform and
/// Gaussian — equals [`reference::write_noise`] bit for bit, over a
/// NaN-filled output, and `w + θ` is the perturbed `w`; an output of another
/// length is an error.
pub fn write_noise<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    for (i, len) in lengths(max_len) {
        for unit in [Unit::Uniform, Unit::Gaussian] {
            for per_element in [false, true] {
                let s = B::Elem::from_f64(0.0375);
                let k = key(30 + i as u64);
                let w0 = weights::<B::Elem>(len, 1, i as u64);
                let (noise, rn) = scalar_noise::<B>(k, unit, per_element, s);
                let what = format!("{:?} {unit:?} len {len}", rn.scale);
                let w = make(w0.clone());
                write_noise_case(backend, &what, &w0, &w, make(nan(len)), &noise, &rn);
            }
        }
    }
    for (i, (rows, cols)) in rows(max_len) {
        let (k, unit) = (key(40 + i as u64), Unit::Gaussian);
        let w0 = weights::<B::Elem>(rows * cols, cols, i as u64);
        let scales = RowScales::new(make, k, unit, &w0, cols);
        let (noise, rn) = scales.noise();
        let what = format!("rows {rows} x {cols}");
        let w = make(w0.clone());
        write_noise_case(backend, &what, &w0, &w, make(nan(rows * cols)), &noise, &rn);
    }
    let noise: NoiseOf<'_, B> = ParamNoise {
        key: key(0),
        unit: Unit::Uniform,
        scale: Scale::Fixed(B::Elem::one()),
    };
    let r = backend.write_noise(&noise, &make(vec![B::Elem::one(); 4]), &mut make(nan(3)));
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
}

/// One [`Param`] per buffer, keyed by [`param_id`] of its name and called in
/// reverse order, gives the same bits as [`SmoothOut::with_ids`] with those
/// ids on [`Reference`] over three draws of perturb and fused de-noise +
/// SGD, for every scaling, noise and de-noise mode; and [`Param::write_noise`]
/// writes the θ that [`Param::perturb`] then adds.
pub fn per_parameter_step<B: Backend, F: MakeBuffer<B>>(backend: &B, make: &F, max_len: usize) {
    let specs = step_specs(max_len);
    let ids: Vec<u64> = specs.iter().map(|s| param_id(&s.name)).collect();
    let init = step_params::<B::Elem>(&specs);
    let sgd = Sgd::new(0.1, 0.9, 1e-4).expect("valid");
    let reference = Reference::<B::Elem>::new();
    for scaling in [Scaling::Fixed, Scaling::PerElement, Scaling::FilterNorm] {
        for config in step_configs(scaling) {
            let name = format!("{config:?}");
            let pairs = ids.iter().copied().zip(specs.iter().cloned());
            let mut so_ref = SmoothOut::with_ids(&reference, config, pairs).expect("with_ids");
            let mut params: Vec<Param<B>> = ids
                .iter()
                .zip(&specs)
                .map(|(&id, s)| Param::new(backend, config, id, s.clone()).expect("Param::new"))
                .collect();
            let mut pair = Pair {
                backend,
                reference: Reference::new(),
                params: init.iter().cloned().map(make).collect(),
                ref_params: init.clone(),
            };
            let grads: Vec<B::Buffer> = init.iter().cloned().map(make).collect();
            let mut velocity: Vec<B::Buffer> = init
                .iter()
                .map(|w| make(vec![B::Elem::zero(); w.len()]))
                .collect();
            let mut ref_velocity: Vec<Vec<B::Elem>> = init
                .iter()
                .map(|w| vec![B::Elem::zero(); w.len()])
                .collect();
            for step in 0..3 {
                let draw = Draw::new(step + 1, step % 2);
                for i in (0..params.len()).rev() {
                    params[i]
                        .perturb(backend, &mut pair.params[i], draw)
                        .expect("Param::perturb");
                }
                so_ref
                    .perturb(&reference, &mut pair.ref_params, draw)
                    .expect("reference perturb");
                pair.same(&format!("{name}: perturbed at {draw:?}"));
                for i in (0..params.len()).rev() {
                    params[i]
                        .denoise_sgd(
                            backend,
                            &mut pair.params[i],
                            &grads[i],
                            &mut velocity[i],
                            &sgd,
                            draw,
                        )
                        .expect("Param::denoise_sgd");
                    assert_eq!(params[i].applied(), None, "{name}: param {i} still applied");
                }
                so_ref
                    .denoise_sgd(
                        &reference,
                        &mut pair.ref_params,
                        &init,
                        &mut ref_velocity,
                        &sgd,
                        draw,
                    )
                    .expect("reference denoise_sgd");
                pair.same(&format!("{name}: updated at {draw:?}"));
                for (i, (v, r)) in velocity.iter().zip(&ref_velocity).enumerate() {
                    same_bits(&format!("{name}: velocity {i}"), &read(backend, v), r);
                }
            }
            if config.noise.additive().is_none() {
                continue;
            }
            // θ written out, then the perturbation: w + θ is the perturbed w.
            let draw = Draw::new(4, 0);
            for (i, (p, w)) in params.iter_mut().zip(&mut pair.params).enumerate() {
                let mut theta = make(nan(backend.len(w)));
                p.write_noise(backend, w, draw, &mut theta)
                    .expect("write_noise");
                let mut sum = make(read(backend, w));
                backend
                    .axpy(B::Elem::one(), &theta, &mut sum)
                    .expect("axpy");
                p.perturb(backend, w, draw).expect("perturb");
                same_bits(
                    &format!("{name}: param {i}, w + write_noise against perturb"),
                    &read(backend, &sum),
                    &read(backend, w),
                );
                p.denoise(backend, w, draw).expect("denoise");
            }
            let _ = (&mut ref_velocity, &sgd);
        }
    }
}
