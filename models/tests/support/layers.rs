//! Shared helpers of the layer tests: deterministic data and the
//! finite-difference gradient check (tolerances in `layers/gradcheck.rs`),
//! and `per_backend!` (also used by `optim/update.rs`).

/// Instantiates test bodies `fn(&B)` for one backend as a module of `#[test]`s.
macro_rules! per_backend {
    ($backend:ident => $make:expr; $($test:ident),*) => {
        mod $backend {
            use super::*;
            $(#[test]
            fn $test() {
                let b = $make;
                super::$test(&b);
            })*
        }
    };
}

use rand_core::RngCore;
use smoothout::tensor::TensorBackend;
use smoothout::Result;
use smoothout_models::data::seeded_rng;
use smoothout_models::layers::{Activation, Layer};

/// `len` values uniform in `[-1, 1)`, from `seed`.
pub fn data(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = seeded_rng(seed);
    (0..len)
        .map(|_| 2.0 * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
        .collect()
}

/// Central-difference step.
pub const H: f64 = 1e-5;
/// Relative part of the bound `|a − n| ≤ REL · max(|a|, |n|) + ABS`.
pub const REL: f64 = 1e-6;
/// Absolute part of the bound.
pub const ABS: f64 = 1e-8;

fn close(what: &str, i: usize, analytic: f64, numeric: f64) {
    let bound = REL * analytic.abs().max(numeric.abs()) + ABS;
    assert!(
        (analytic - numeric).abs() <= bound,
        "{what}[{i}]: analytic {analytic:e}, numeric {numeric:e}, |diff| {:e} > bound {bound:e}",
        (analytic - numeric).abs()
    );
}

/// `L = Σ r_i y_i` with `y = layer(x)` in train mode; `reset` runs before
/// every forward (e.g. to pin dropout's step).
fn loss<B, L>(
    b: &B,
    layer: &mut L,
    x: &[f64],
    shape: &[usize],
    r: &[f64],
    reset: &impl Fn(&mut L),
) -> Result<f64>
where
    B: TensorBackend<Elem = f64>,
    L: Layer<B>,
{
    reset(layer);
    let Activation { data: y, .. } =
        layer.forward(b, &Activation::new(b.upload(x)?, shape), true)?;
    let y = b.to_vec(&y)?;
    assert_eq!(y.len(), r.len());
    Ok(y.iter().zip(r).map(|(y, r)| y * r).sum())
}

/// Checks `∂L/∂x` and every `∂L/∂θ` of `layer` at `x` against central
/// differences; returns the number of entries checked.
pub fn grad_check<B, L>(
    b: &B,
    layer: &mut L,
    x: &[f64],
    shape: &[usize],
    reset: impl Fn(&mut L),
) -> usize
where
    B: TensorBackend<Elem = f64>,
    L: Layer<B>,
{
    reset(layer);
    let Activation { data: y, .. } = layer
        .forward(b, &Activation::new(b.upload(x).unwrap(), shape), true)
        .unwrap();
    let r = data(b.len(&y), 99);
    layer.zero_grad(b).unwrap();
    let dx = layer.backward(b, &b.upload(&r).unwrap()).unwrap();
    let dx = b.to_vec(&dx).unwrap();
    let grads: Vec<Vec<f64>> = layer.grads().iter().map(|g| b.to_vec(g).unwrap()).collect();
    let specs = layer.specs();
    assert_eq!(specs.len(), grads.len());
    assert_eq!(layer.params().len(), grads.len());
    let mut checked = 0;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + H;
        let lp = loss(b, layer, &xp, shape, &r, &reset).unwrap();
        xp[i] = x[i] - H;
        let lm = loss(b, layer, &xp, shape, &r, &reset).unwrap();
        xp[i] = x[i];
        close("dx", i, dx[i], (lp - lm) / (2.0 * H));
        checked += 1;
    }
    for (k, g) in grads.iter().enumerate() {
        assert_eq!(g.len(), specs[k].len(), "{}", specs[k].name);
        let p0 = b.to_vec(layer.params()[k]).unwrap();
        for i in 0..p0.len() {
            let mut p = p0.clone();
            p[i] = p0[i] + H;
            *layer.params_mut()[k] = b.upload(&p).unwrap();
            let lp = loss(b, layer, x, shape, &r, &reset).unwrap();
            p[i] = p0[i] - H;
            *layer.params_mut()[k] = b.upload(&p).unwrap();
            let lm = loss(b, layer, x, shape, &r, &reset).unwrap();
            close(&specs[k].name, i, g[i], (lp - lm) / (2.0 * H));
            checked += 1;
        }
        *layer.params_mut()[k] = b.upload(&p0).unwrap();
    }
    checked
}
