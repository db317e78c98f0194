//! The deterministic N-copy objective (Eq. 1, Fig. 1c) and the sensitivity
//! sharpness `s` (Eq. 9), on plain slices.

use crate::error::{check_len, Error, Result};
use crate::noise::philox::NoiseKey;
use crate::noise::Noise;
use crate::real::Real;
use crate::reference;

/// `C̄(w) ≈ (1/N) Σ_{i<N} C(w + θ_i)` with `N` perturbations θ_i fixed by a
/// seed (copy `i` uses the key `NoiseKey::from_seed(seed).fold_in(i)`), and
/// its gradient `(1/N) Σ ∇C(w + θ_i)` (for Bernoulli noise,
/// `(1/N) Σ m_i ∘ ∇C(w ∘ m_i)` with `m_i` the keep mask).
///
/// Needs neither `std` nor `alloc`: the caller lends the scratch buffers.
///
/// ```
/// use smoothout::{Noise, Objective};
/// // C(w) = w², smoothed under U(-a, a): C̄(w) = w² + a²/3.
/// let obj = Objective::new(Noise::uniform(0.3)?, 20_000, 1)?;
/// let mut scratch = [0.0f64];
/// let c = obj.value(&[0.5], &mut scratch, |w| w[0] * w[0])?;
/// assert!((c - (0.25 + 0.03)).abs() < 2e-3);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    noise: Noise,
    copies: usize,
    seed: u64,
}

impl Objective {
    /// `copies ≥ 1` fixed draws of `noise` (fixed scaling).
    pub fn new(noise: Noise, copies: usize, seed: u64) -> Result<Self> {
        noise.validate()?;
        if copies == 0 {
            return Err(Error::InvalidSetting {
                name: "copies",
                value: 0.0,
                expected: ">= 1",
            });
        }
        Ok(Objective {
            noise,
            copies,
            seed,
        })
    }

    /// The noise.
    #[must_use]
    pub fn noise(&self) -> Noise {
        self.noise
    }

    /// The number of copies `N`.
    #[must_use]
    pub fn copies(&self) -> usize {
        self.copies
    }

    /// The key of copy `i`.
    #[must_use]
    pub fn key(&self, i: usize) -> NoiseKey {
        NoiseKey::from_seed(self.seed).fold_in(i as u64)
    }

    /// `out ← w + θ_i` (Bernoulli: `w` with the dropped elements zeroed).
    pub fn perturbed<T: Real>(&self, i: usize, w: &[T], out: &mut [T]) -> Result<()> {
        check_len("scratch buffer", w.len(), out.len())?;
        out.copy_from_slice(w);
        let key = self.key(i);
        if let Noise::Bernoulli { p } = self.noise {
            return reference::drop_out(key, p, 0, out);
        }
        if let Some((unit, s)) = self.noise.additive() {
            let draw = reference::ParamNoise {
                key,
                unit,
                scale: reference::Scale::<T, [T]>::Fixed(T::from_f64(s)),
            };
            reference::perturb(&draw, 0, out);
        }
        Ok(())
    }

    /// `C̄(w)`: the mean of `f` over the `N` perturbed copies.
    pub fn value<T: Real>(
        &self,
        w: &[T],
        scratch: &mut [T],
        mut f: impl FnMut(&[T]) -> f64,
    ) -> Result<f64> {
        let mut sum = 0.0;
        for i in 0..self.copies {
            self.perturbed(i, w, scratch)?;
            sum += f(scratch);
        }
        Ok(sum / self.copies as f64)
    }

    /// `C̄(w)` and `∇C̄(w)` (into `grad`); `f(w, g)` returns `C(w)` and writes
    /// `∇C(w)` into `g`.
    pub fn value_and_grad<T: Real>(
        &self,
        w: &[T],
        scratch: &mut [T],
        grad_scratch: &mut [T],
        grad: &mut [T],
        mut f: impl FnMut(&[T], &mut [T]) -> f64,
    ) -> Result<f64> {
        for (what, n) in [
            ("gradient scratch", grad_scratch.len()),
            ("gradient", grad.len()),
        ] {
            check_len(what, w.len(), n)?;
        }
        grad.fill(T::zero());
        let inv = T::from_f64(1.0 / self.copies as f64);
        let mut sum = 0.0;
        for i in 0..self.copies {
            self.perturbed(i, w, scratch)?;
            grad_scratch.fill(T::zero());
            sum += f(scratch, grad_scratch);
            if let Noise::Bernoulli { p } = self.noise {
                // d/dw C(w ∘ m) = m ∘ ∇C: zero where copy i dropped the weight.
                reference::drop_out(self.key(i), p, 0, grad_scratch)?;
            }
            reference::axpy(inv, grad_scratch, grad)?;
        }
        Ok(sum / self.copies as f64)
    }
}

/// The sensitivity sharpness of Eq. 9 over a grid of strengths.
///
/// For each `a_k` of the increasing `grid`, `values[k] = C̄(w; a_k)` with `N`
/// copies of `unit` noise of strength `a_k` — the same draws for every `a_k`
/// (common random numbers), so the differences measure the landscape and not
/// the sampling — and `slopes[k] = (values[k+1] − values[k]) / (a_{k+1} − a_k)`,
/// the paper's `s = ΔC̄/Δa`. A sharper minimum has larger slopes.
///
/// ```
/// use smoothout::{sensitivity, Unit};
/// // Quadratics: C̄(0; a) = a²·h/6 for C = h·w²/2 under U(-a, a).
/// let grid = [0.0, 0.1, 0.2];
/// let (mut flat, mut sharp) = ([0.0; 3], [0.0; 3]);
/// let (mut s_flat, mut s_sharp) = ([0.0; 2], [0.0; 2]);
/// let mut scratch = [0.0f64];
/// sensitivity(&grid, Unit::Uniform, 4000, 3, &[0.0], &mut scratch, &mut flat, &mut s_flat,
///             |w| 0.5 * w[0] * w[0])?;
/// sensitivity(&grid, Unit::Uniform, 4000, 3, &[0.0], &mut scratch, &mut sharp, &mut s_sharp,
///             |w| 50.0 * w[0] * w[0])?;
/// assert!(s_sharp[1] > 10.0 * s_flat[1]);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn sensitivity<T: Real>(
    grid: &[f64],
    unit: crate::Unit,
    copies: usize,
    seed: u64,
    w: &[T],
    scratch: &mut [T],
    values: &mut [f64],
    slopes: &mut [f64],
    mut f: impl FnMut(&[T]) -> f64,
) -> Result<()> {
    check_len("values (one per grid point)", grid.len(), values.len())?;
    if slopes.len() + 1 != grid.len().max(1) {
        return Err(Error::LengthMismatch {
            what: "slopes (one per grid interval)",
            expected: grid.len().saturating_sub(1),
            actual: slopes.len(),
        });
    }
    if let Some(k) = grid
        .windows(2)
        .position(|p| p[1].partial_cmp(&p[0]) != Some(core::cmp::Ordering::Greater))
    {
        return Err(Error::InvalidSetting {
            name: "sharpness grid",
            value: grid[k + 1],
            expected: "strictly increasing",
        });
    }
    for (a, v) in grid.iter().zip(values.iter_mut()) {
        let noise = match unit {
            crate::Unit::Uniform => Noise::uniform(*a)?,
            crate::Unit::Gaussian => Noise::gaussian(*a)?,
        };
        *v = Objective::new(noise, copies, seed)?.value(w, scratch, &mut f)?;
    }
    for (k, s) in slopes.iter_mut().enumerate() {
        *s = (values[k + 1] - values[k]) / (grid[k + 1] - grid[k]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under Bernoulli noise the gradient of `C(w ∘ m)` is `m ∘ ∇C`, also for
    /// weights that are zero (whose dropping cannot be seen in `w ∘ m`). For
    /// `C(x) = x₀ + x₁` every component of `∇C̄` is the keep rate `1 − p`;
    /// with N = 4000 copies its standard error is √(p(1−p)/N) ≈ 0.0079, and
    /// the bound is five of them.
    #[test]
    fn bernoulli_gradient_masks_zero_weights_too() {
        let obj = Objective::new(Noise::bernoulli(0.5).unwrap(), 4000, 11).unwrap();
        let (w, mut s, mut gs, mut g) = ([0.0f64, 1.0], [0.0; 2], [0.0; 2], [0.0; 2]);
        obj.value_and_grad(&w, &mut s, &mut gs, &mut g, |x, gx| {
            gx.fill(1.0);
            x[0] + x[1]
        })
        .unwrap();
        let bound = 5.0 * (0.25f64 / 4000.0).sqrt();
        for (i, gi) in g.iter().enumerate() {
            assert!((gi - 0.5).abs() < bound, "component {i}: {gi}");
        }
    }
}
