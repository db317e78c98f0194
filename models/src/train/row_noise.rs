//! Random weight perturbation's noise: Gaussian θ whose standard deviation
//! is γ times the norm of the row (filter) it perturbs.

use smoothout::reference::{ParamNoise, Scale};
use smoothout::tensor::{check_len, TensorBackend};
use smoothout::{Draw, Error, NoiseKey, NoiseOf, ParamSpec, Real, Result, Sgd, Unit};

/// RWP's θ (Li et al.; the noise of [`crate::train::Method::Rwp`] and
/// [`crate::train::Method::MixedRwp`]): for each perturbed parameter and
/// each dim-0 row `i` (an output neuron or filter; a 1-D parameter has rows
/// of one element), `θ_ij = γ·‖w_i‖·z_ij` with `z` standard normal, drawn
/// from the core's counter-based generator under the same keys as
/// [`smoothout::SmoothOut`]'s (seed, step, ghost chunk, parameter index).
/// The row norms are taken before the perturbation and kept until the
/// draw is removed, by regenerating it.
///
/// AdaSmoothOut differs: it rescales each row's draw to norm `a·‖w_i‖`,
/// where RWP gives each element the standard deviation `γ·‖w_i‖`.
#[derive(Debug)]
pub struct RowNoise<B: TensorBackend> {
    gamma: f64,
    seed: u64,
    specs: Vec<ParamSpec>,
    /// Per parameter, `γ·‖w_i‖` per row while a draw is applied.
    scales: Vec<Option<B::Buffer>>,
    applied: Option<Draw>,
}

impl<B: TensorBackend> RowNoise<B> {
    /// Noise of strength `gamma` for the parameters `specs` (those marked
    /// perturbed), with the run's `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidStrength`] unless `gamma` is finite and ≥ 0.
    pub fn new(gamma: f64, seed: u64, specs: Vec<ParamSpec>) -> Result<Self> {
        smoothout::Noise::gaussian(gamma)?;
        let scales = specs.iter().map(|_| None).collect();
        Ok(RowNoise {
            gamma,
            seed,
            specs,
            scales,
            applied: None,
        })
    }

    fn check(&self, b: &B, params: &[&mut B::Buffer]) -> Result<()> {
        check_len("parameter buffers", self.specs.len(), params.len())?;
        for (p, s) in params.iter().zip(&self.specs) {
            check_len("parameter buffer", s.len(), b.len(p))?;
        }
        Ok(())
    }

    fn noise<'a>(&self, i: usize, draw: Draw, scales: &'a B::Buffer) -> NoiseOf<'a, B> {
        ParamNoise {
            key: NoiseKey::for_draw(self.seed, draw.step, draw.ghost, i as u64),
            unit: Unit::Gaussian,
            scale: Scale::Rows {
                cols: self.specs[i].cols(),
                scales,
            },
        }
    }

    /// `w ← w + θ` for `draw`.
    ///
    /// # Errors
    /// [`Error::AlreadyPerturbed`] while a draw is applied;
    /// [`Error::LengthMismatch`] when `params` do not fit the specs;
    /// backend errors.
    pub fn perturb(&mut self, b: &B, params: &mut [&mut B::Buffer], draw: Draw) -> Result<()> {
        if self.applied.is_some() {
            return Err(Error::AlreadyPerturbed);
        }
        self.check(b, params)?;
        for (i, p) in params.iter_mut().enumerate() {
            let spec = &self.specs[i];
            if !spec.perturbed {
                continue;
            }
            let mut norms = vec![0.0; spec.rows()];
            b.row_norms(p, spec.cols(), &mut norms)?;
            let host: Vec<B::Elem> = norms
                .iter()
                .map(|n| B::Elem::from_f64(self.gamma * n))
                .collect();
            let scales = b.upload(&host)?;
            b.perturb(p, &self.noise(i, draw, &scales))?;
            self.scales[i] = Some(scales);
        }
        self.applied = Some(draw);
        Ok(())
    }

    /// Checks that `draw` is the one applied.
    fn check_draw(&self, draw: Draw) -> Result<()> {
        match self.applied {
            None => Err(Error::NotPerturbed),
            Some(d) if d != draw => Err(Error::DrawMismatch),
            Some(_) => Ok(()),
        }
    }

    /// Removes θ of `draw` and takes the SGD step with momentum in one pass
    /// per parameter (the backend's fused `denoise_sgd`; the parameters
    /// that are not perturbed get the plain update).
    ///
    /// # Errors
    /// As [`RowNoise::denoise`]; [`Error::LengthMismatch`] for `grads` and
    /// `velocity` that do not match `params`; [`Sgd::validate`]'s.
    pub fn denoise_sgd(
        &mut self,
        b: &B,
        params: &mut [&mut B::Buffer],
        grads: &[&mut B::Buffer],
        velocity: &mut [B::Buffer],
        sgd: &Sgd,
        draw: Draw,
    ) -> Result<()> {
        self.check_draw(draw)?;
        self.check(b, params)?;
        sgd.validate()?;
        check_len("gradient buffers", params.len(), grads.len())?;
        check_len("velocity buffers", params.len(), velocity.len())?;
        for (i, ((p, g), v)) in params.iter_mut().zip(grads).zip(velocity).enumerate() {
            let scales = self.scales[i].take();
            let noise = scales.as_ref().map(|s| self.noise(i, draw, s));
            b.denoise_sgd(p, g, v, noise.as_ref(), sgd)?;
            if let Some(s) = scales {
                b.recycle(s);
            }
        }
        self.applied = None;
        Ok(())
    }

    /// `w ← w − θ` for `draw`, regenerated.
    ///
    /// # Errors
    /// [`Error::NotPerturbed`] or [`Error::DrawMismatch`] unless `draw` is
    /// the one applied; [`Error::LengthMismatch`]; backend errors.
    pub fn denoise(&mut self, b: &B, params: &mut [&mut B::Buffer], draw: Draw) -> Result<()> {
        self.check_draw(draw)?;
        self.check(b, params)?;
        for (i, p) in params.iter_mut().enumerate() {
            if let Some(scales) = self.scales[i].take() {
                b.denoise(p, &self.noise(i, draw, &scales))?;
                b.recycle(scales);
            }
        }
        self.applied = None;
        Ok(())
    }
}
