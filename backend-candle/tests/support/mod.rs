//! The reference's noise for the adapter's tests on the CPU and on CUDA:
//! the seed and strength they use, and a variable's θ at a draw.
#![allow(dead_code)]

use smoothout::reference::{self, ParamNoise, Scale};
use smoothout::{param_id, Draw, Noise, NoiseKey, Real, Scaling, Unit};

/// The adapter's seed in these tests.
pub const SEED: u64 = 11;
/// The strength `a` of the tests' `U(−a, a)` noise.
pub const A: f64 = 0.05;

/// The key of `name`'s noise at `draw`.
pub fn key(name: &str, draw: Draw) -> NoiseKey {
    NoiseKey::for_draw(SEED, draw.step, draw.ghost, param_id(name))
}

/// The columns of one row of a variable of shape `dims` holding `len`
/// values (a vector is rows of one).
pub fn row_cols(dims: &[usize], len: usize) -> usize {
    if dims.len() >= 2 {
        len / dims[0]
    } else {
        1
    }
}

/// The reference's noise under key `k`: uniform, and under
/// [`Scaling::FilterNorm`] scaled by `scales` over rows of `cols` columns,
/// otherwise by the fixed strength [`A`].
pub fn param_noise<T: Real>(
    scaling: Scaling,
    k: NoiseKey,
    cols: usize,
    scales: &[T],
) -> ParamNoise<'_, T, [T]> {
    let scale = match scaling {
        Scaling::FilterNorm => Scale::Rows { cols, scales },
        _ => Scale::Fixed(<T as Real>::from_f64(A)),
    };
    ParamNoise {
        key: k,
        unit: Unit::Uniform,
        scale,
    }
}

/// θ of the variable `name` (shape `dims`, values `w`) at `draw`, as the
/// reference draws it, and under [`Scaling::FilterNorm`] its row scales
/// (empty otherwise). Under `FilterNorm` the reference's own in-place
/// perturbation must come out as `w + θ` bit for bit: a check of the
/// scales.
pub fn reference_theta<T: Real>(
    scaling: Scaling,
    name: &str,
    dims: &[usize],
    w: &[T],
    draw: Draw,
) -> (Vec<T>, Vec<T>) {
    let k = key(name, draw);
    match scaling {
        Scaling::FilterNorm => {
            let cols = row_cols(dims, w.len());
            let mut p = w.to_vec();
            let mut scales = vec![T::zero(); w.len() / cols];
            reference::perturb_filter_norm(k, Unit::Uniform, A, cols, 0, &mut p, &mut scales)
                .unwrap();
            let mut theta = vec![T::zero(); w.len()];
            reference::write_noise(&param_noise(scaling, k, cols, &scales), 0, w, &mut theta)
                .unwrap();
            let bits =
                |v: &[T]| -> Vec<u64> { v.iter().map(|x| Real::to_f64(*x).to_bits()).collect() };
            let sum: Vec<T> = w.iter().zip(&theta).map(|(&w, &t)| w + t).collect();
            assert_eq!(bits(&p), bits(&sum), "{name}: perturb_filter_norm vs w + θ");
            (theta, scales)
        }
        _ => {
            let mut theta = vec![T::zero(); w.len()];
            reference::fill_noise(k, &Noise::uniform(A).unwrap(), 0, &mut theta).unwrap();
            (theta, Vec::new())
        }
    }
}
