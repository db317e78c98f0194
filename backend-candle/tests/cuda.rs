//! The adapter on candle's CUDA device (feature `cuda`) against
//! `smoothout::reference` and against its own CPU path.
//!
//! Every test needs CUDA device 0; where `Device::new_cuda(0)` fails (no
//! GPU, no driver, the toolkit's stub libcuda) it prints
//! `skipped: <reason>` and passes. Everything is compared bit for bit:
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | perturbed `w + θ` on CUDA against the reference | 0 bits | smoothout-cuda's θ is the reference's (same Philox words, same roundings; row norms with the same 32-lane sums) |
//! | de-noise + SGD step on CUDA against the same on the CPU | 0 bits | both de-noise bit-identically to the reference; the loss `Σ c ⊙ w` has the exact gradient `c` on both devices; SGD's `w − lr·g` is elementwise, one rounding each |
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use smoothout::{Config, Draw, Noise, Scaling};
use smoothout_candle::{Error, Params, SmoothOut};

mod support;

use support::{reference_theta, A, SEED};

/// CUDA device 0, or `None` after printing why the test is skipped.
fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            // candle's message may carry a backtrace: its first line says why.
            let e = e.to_string();
            let why = e.lines().next().unwrap_or_default();
            eprintln!("skipped: no CUDA device 0 for candle: {why}");
            None
        }
    }
}

/// `(name, dims)` of the variables: two perturbed layers and a
/// normalisation weight (not perturbed).
const SHAPES: [(&str, &[usize]); 4] = [
    ("bn1.weight", &[6]),
    ("fc1.bias", &[6]),
    ("fc1.weight", &[6, 5]),
    ("fc2.weight", &[3, 6]),
];

/// Deterministic starting values, the same on every device.
fn init(k: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + k * 13) as f32 * 0.37).sin() * 0.5)
        .collect()
}

/// The variables on `device`, in name order.
fn vars(device: &Device) -> Vec<(String, Var)> {
    SHAPES
        .iter()
        .enumerate()
        .map(|(k, (name, dims))| {
            let n = dims.iter().product();
            let t = Tensor::from_vec(init(k, n), *dims, &Device::Cpu)
                .unwrap()
                .to_device(device)
                .unwrap();
            ((*name).to_owned(), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

fn host(v: &Var) -> Vec<f32> {
    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
}

fn config(scaling: Scaling) -> Config {
    Config::new(Noise::uniform(A).unwrap())
        .with_scaling(scaling)
        .with_seed(SEED)
}

fn smoothout(vars: &[(String, Var)], scaling: Scaling, lr: f64) -> SmoothOut<SGD> {
    let params = Params::from_named(vars.iter().cloned()).unwrap();
    SmoothOut::<SGD>::from_params(params, config(scaling), lr).unwrap()
}

/// The reference's `w + θ` for one variable.
fn reference_perturbed(
    scaling: Scaling,
    name: &str,
    dims: &[usize],
    w: &[f32],
    draw: Draw,
) -> Vec<f32> {
    let (theta, _) = reference_theta(scaling, name, dims, w, draw);
    w.iter().zip(&theta).map(|(w, t)| w + t).collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn check_against_reference(device: &Device, scaling: Scaling) {
    let vars = vars(device);
    let before: Vec<Vec<f32>> = vars.iter().map(|(_, v)| host(v)).collect();
    let mut so = smoothout(&vars, scaling, 0.1);
    let draw = Draw::new(5, 1);
    so.perturb(draw).unwrap();
    for (((name, v), w), (_, dims)) in vars.iter().zip(&before).zip(SHAPES) {
        let got = host(v);
        if name.starts_with("bn") {
            assert!(same_bits(&got, w), "{name} is not perturbed");
            continue;
        }
        let want = reference_perturbed(scaling, name, dims, w, draw);
        assert!(
            same_bits(&got, &want),
            "{name} ({scaling:?}): {got:?} vs {want:?}"
        );
    }
    so.denoise().unwrap();
}

#[test]
fn fixed_matches_reference() {
    let Some(device) = gpu() else { return };
    check_against_reference(&device, Scaling::Fixed);
}

#[test]
fn filter_norm_matches_reference() {
    let Some(device) = gpu() else { return };
    check_against_reference(&device, Scaling::FilterNorm);
}

/// perturb, loss `Σ c ⊙ w` and its gradients, de-noise + SGD step.
fn step(device: &Device, scaling: Scaling) -> Vec<Vec<f32>> {
    let vars = vars(device);
    let mut so = smoothout(&vars, scaling, 0.1);
    so.perturb(Draw::new(2, 0)).unwrap();
    let mut loss = Tensor::zeros((), DType::F32, device).unwrap();
    for (k, (_, v)) in vars.iter().enumerate() {
        let c = v
            .as_tensor()
            .ones_like()
            .unwrap()
            .affine(0.25, k as f64 * 0.5)
            .unwrap();
        loss = (loss + (v.as_tensor() * c).unwrap().sum_all().unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();
    so.step(&grads).unwrap();
    assert_eq!(so.applied(), None);
    vars.iter().map(|(_, v)| host(v)).collect()
}

#[test]
fn denoise_and_sgd_step_match_the_cpu_path() {
    let Some(device) = gpu() else { return };
    for scaling in [Scaling::Fixed, Scaling::FilterNorm] {
        let cpu = step(&Device::Cpu, scaling);
        let cuda = step(&device, scaling);
        for (((name, _), c), g) in SHAPES.iter().zip(&cpu).zip(&cuda) {
            assert!(same_bits(c, g), "{name} ({scaling:?}): {g:?} vs {c:?}");
        }
    }
}

#[test]
fn other_dtypes_on_cuda_are_typed_errors() {
    let Some(device) = gpu() else { return };
    let v = Var::zeros((4, 3), DType::F64, &device).unwrap();
    let params = Params::from_named([("fc.weight", v)]).unwrap();
    let e = SmoothOut::<SGD>::from_params(params, config(Scaling::Fixed), 0.1).unwrap_err();
    assert!(matches!(e, Error::UnsupportedDtype { .. }), "{e}");
}
