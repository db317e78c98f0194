//! One parameter at a time: [`Param`], the SmoothOut step for a single
//! buffer, keyed by a stable id.

use core::borrow::{Borrow, BorrowMut};

use crate::backend::{FilterNoise, NoiseOf, NoiseOps, NormOps, PerturbOps, StateOps, UpdateOps};
use crate::error::{Error, Result};
use crate::noise::philox::NoiseKey;
use crate::noise::{Noise, Scaling};
use crate::real::Real;
use crate::reference::{ParamNoise, Scale};
use crate::step::config::{Config, Denoise, Draw};
use crate::step::sgd::Sgd;
use crate::step::spec::ParamSpec;

/// A stable parameter id from its name: 64-bit FNV-1a over the name's UTF-8
/// bytes (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
///
/// Ids key the noise: the draw for (seed, step, ghost, id, element) is a
/// pure function, so a parameter keeps its noise when others are added,
/// removed or reordered. [`crate::SmoothOut::new`] uses the index in the
/// spec list instead (0, 1, 2, …), which is stable as long as the list is;
/// frameworks that hold parameters by name (a candle `VarMap`) use this hash.
///
/// ```
/// assert_eq!(smoothout::param_id(""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(smoothout::param_id("a"), 0xaf63_dc4c_8601_ec8c);
/// assert_ne!(smoothout::param_id("fc1.weight"), smoothout::param_id("fc1.bias"));
/// ```
#[must_use]
pub const fn param_id(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// One parameter's SmoothOut state: its id, spec and configuration, and
/// what de-noising needs — one scale per row for AdaSmoothOut, a copy of
/// the parameter in exact mode, nothing otherwise.
///
/// The buffer itself stays with its owner and is lent to each call, so a
/// framework perturbs its own memory in place: a `&mut [f32]` through
/// [`crate::Slices`], a device buffer through a device backend. Each method
/// asks only for the ops it uses.
///
/// The protocol per draw: [`Param::perturb`], your forward and backward,
/// then [`Param::denoise`] or [`Param::denoise_sgd`] with the same
/// [`Draw`]. A parameter whose spec is not perturbed goes through the same
/// calls, which then leave it alone (and `denoise_sgd` updates it plainly).
///
/// ```
/// use smoothout::{Config, Draw, Noise, Param, ParamSpec, Sgd, Slices, param_id};
///
/// let b = Slices::<f64>::new();
/// let config = Config::new(Noise::uniform(0.05)?).with_seed(3);
/// let id = param_id("fc.bias");
/// let mut p = Param::new(&b, config, id, ParamSpec::bias("fc.bias", 4))?;
/// let (mut w, mut v) = ([1.0; 4], [0.0; 4]);
/// let draw = Draw::new(0, 0);
/// p.perturb(&b, &mut w, draw)?;
/// let g: Vec<f64> = w.iter().map(|w| 2.0 * w).collect(); // ∇ of ‖w‖² at w + θ
/// p.denoise_sgd(&b, &mut w, &g, &mut v, &Sgd::new(0.1, 0.9, 0.0)?, draw)?;
/// assert!(w.iter().all(|&w| (w - 0.8).abs() < 0.02));
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Param<B: StateOps> {
    id: u64,
    spec: ParamSpec,
    config: Config,
    scales: Option<B::State>,
    saved: Option<B::State>,
    /// The draw applied and the schedule's multiplier at it.
    applied: Option<(Draw, f64)>,
}

impl<B: StateOps> core::fmt::Debug for Param<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Param")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .field("applied", &self.applied.map(|(d, _)| d))
            .finish_non_exhaustive()
    }
}

impl<B: StateOps> Param<B> {
    /// Validates `config` and `spec` and allocates what de-noising will
    /// need: `spec.rows()` scales for AdaSmoothOut ([`Scaling::FilterNorm`]),
    /// a copy of `spec.len()` elements in [`Denoise::Exact`] mode.
    ///
    /// # Errors
    /// The configuration's errors ([`Config::validate`]);
    /// [`Error::EmptyParameter`] (with `param` 0: a lone parameter has no
    /// index in a set) for a spec with a zero-sized dimension;
    /// allocation errors of the backend.
    pub fn new(backend: &B, config: Config, id: u64, spec: ParamSpec) -> Result<Self> {
        config.validate()?;
        if spec.is_empty() {
            return Err(Error::EmptyParameter { param: 0 });
        }
        let rows = spec.perturbed && config.scaling == Scaling::FilterNorm;
        let scales = if rows {
            Some(backend.state(spec.rows())?)
        } else {
            None
        };
        let keep = spec.perturbed && config.denoise == Denoise::Exact;
        let saved = if keep {
            Some(backend.state(spec.len())?)
        } else {
            None
        };
        Ok(Param {
            id,
            spec,
            config,
            scales,
            saved,
            applied: None,
        })
    }

    /// The id that keys this parameter's noise.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The spec.
    #[must_use]
    pub fn spec(&self) -> &ParamSpec {
        &self.spec
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The draw currently applied, if any.
    #[must_use]
    pub fn applied(&self) -> Option<Draw> {
        self.applied.map(|(d, _)| d)
    }

    /// The noise key of this parameter at `draw`:
    /// `NoiseKey::for_draw(seed, step, ghost, id)`.
    #[must_use]
    pub fn key(&self, draw: Draw) -> NoiseKey {
        NoiseKey::for_draw(self.config.seed, draw.step, draw.ghost, self.id)
    }

    fn check_len(&self, backend: &B, what: &'static str, buf: &B::Buffer) -> Result<()> {
        crate::error::check_len(what, self.spec.len(), backend.len(buf))
    }

    /// The strength after the schedule's multiplier `coef`.
    fn strength(&self, coef: f64) -> f64 {
        coef * match self.config.noise {
            Noise::Uniform { a } => a,
            Noise::Gaussian { std } => std,
            Noise::Bernoulli { p } => p,
        }
    }

    /// θ's description for additive noise with the scales as they stand
    /// (`None` for Bernoulli noise, which is not additive).
    fn noise(&self, draw: Draw, strength: f64) -> Option<NoiseOf<'_, B>> {
        let (unit, _) = self.config.noise.additive()?;
        let scale = match self.config.scaling {
            Scaling::Fixed => Scale::Fixed(B::Elem::from_f64(strength)),
            Scaling::PerElement => Scale::PerElement(B::Elem::from_f64(strength)),
            Scaling::FilterNorm => Scale::Rows {
                cols: self.spec.cols(),
                scales: self.scales.as_ref()?.borrow(),
            },
        };
        Some(ParamNoise {
            key: self.key(draw),
            unit,
            scale,
        })
    }

    /// `w ← w + θ` for `draw` (in exact mode after keeping a copy of `w`).
    ///
    /// # Errors
    /// [`Error::AlreadyPerturbed`] while a draw is applied;
    /// [`Error::LengthMismatch`] when `w` does not hold `spec.len()`
    /// elements; a schedule error for `draw.step`; backend errors (then `w`
    /// is as the backend left it, and no draw counts as applied).
    pub fn perturb(&mut self, backend: &B, w: &mut B::Buffer, draw: Draw) -> Result<()>
    where
        B: PerturbOps,
    {
        if self.applied.is_some() {
            return Err(Error::AlreadyPerturbed);
        }
        self.check_len(backend, "parameter buffer", w)?;
        let coef = self
            .config
            .schedule
            .coefficient(draw.step, self.config.total_steps)?;
        if self.spec.perturbed {
            self.add(backend, w, draw, coef)?;
        }
        self.applied = Some((draw, coef));
        Ok(())
    }

    fn add(&mut self, b: &B, w: &mut B::Buffer, draw: Draw, coef: f64) -> Result<()>
    where
        B: PerturbOps,
    {
        if let Some(copy) = self.saved.as_mut() {
            b.copy(w, copy.borrow_mut())?;
        }
        let key = self.key(draw);
        let strength = self.strength(coef);
        let cols = self.spec.cols();
        match (self.config.noise.additive(), self.scales.as_mut()) {
            (None, _) => b.drop_out(w, key, strength),
            (Some((unit, _)), Some(scales)) => {
                let noise = FilterNoise {
                    key,
                    unit,
                    strength,
                    cols,
                };
                b.perturb_filter_norm(w, &noise, scales.borrow_mut())
            }
            (Some(_), None) => match self.noise(draw, strength) {
                Some(noise) => b.perturb(w, &noise),
                None => Ok(()),
            },
        }
    }

    /// Checks that `draw` is the one applied and clears it; returns the
    /// schedule multiplier it was applied with.
    fn take(&mut self, draw: Draw) -> Result<f64> {
        match self.applied {
            None => Err(Error::NotPerturbed),
            Some((d, _)) if d != draw => Err(Error::DrawMismatch),
            Some((_, coef)) => {
                self.applied = None;
                Ok(coef)
            }
        }
    }

    /// `w ← w − θ` for `draw`, the draw applied: regenerating θ, restoring
    /// the copy in exact mode, or nothing when de-noising is off.
    ///
    /// # Errors
    /// [`Error::NotPerturbed`] or [`Error::DrawMismatch`] when `draw` is not
    /// the draw applied; [`Error::LengthMismatch`]; backend errors.
    pub fn denoise(&mut self, backend: &B, w: &mut B::Buffer, draw: Draw) -> Result<()>
    where
        B: PerturbOps,
    {
        self.check_len(backend, "parameter buffer", w)?;
        let coef = self.take(draw)?;
        if self.config.denoise == Denoise::Off {
            return Ok(());
        }
        self.remove(backend, w, draw, coef)
    }

    /// Takes the noise of `draw` (applied with multiplier `coef`) out of
    /// `w`: restores the copy where one is kept, regenerates θ otherwise.
    fn remove(&self, b: &B, w: &mut B::Buffer, draw: Draw, coef: f64) -> Result<()>
    where
        B: PerturbOps,
    {
        if !self.spec.perturbed {
            return Ok(());
        }
        if let Some(copy) = self.saved.as_ref() {
            return b.copy(copy.borrow(), w);
        }
        match self.noise(draw, self.strength(coef)) {
            Some(noise) => b.denoise(w, &noise),
            None => Ok(()),
        }
    }

    /// Undoes a [`Param::perturb`] of `draw` after a failure elsewhere
    /// (another parameter's perturbation), as if it had not happened: the
    /// noise comes out even when de-noising is off.
    pub(crate) fn roll_back(&mut self, backend: &B, w: &mut B::Buffer, draw: Draw) -> Result<()>
    where
        B: PerturbOps,
    {
        let coef = self.take(draw)?;
        self.remove(backend, w, draw, coef)
    }

    /// Removes θ of `draw` and applies SGD with momentum, in one pass where
    /// the mode allows (regenerating de-noise); a parameter that is not
    /// perturbed gets the plain update.
    ///
    /// # Errors
    /// As [`Param::denoise`]; [`Error::LengthMismatch`] for `grad` or
    /// `velocity`; [`Sgd::validate`]'s errors. Everything is checked before
    /// anything is written.
    pub fn denoise_sgd(
        &mut self,
        backend: &B,
        w: &mut B::Buffer,
        grad: &B::Buffer,
        velocity: &mut B::Buffer,
        sgd: &Sgd,
        draw: Draw,
    ) -> Result<()>
    where
        B: UpdateOps,
    {
        self.check_len(backend, "parameter buffer", w)?;
        self.check_len(backend, "gradient buffer", grad)?;
        self.check_len(backend, "velocity buffer", velocity)?;
        sgd.validate()?;
        let coef = self.take(draw)?;
        let mut fused = None;
        if self.spec.perturbed {
            match (self.config.denoise, self.saved.as_ref()) {
                (Denoise::Off, _) => {}
                (_, Some(copy)) => backend.copy(copy.borrow(), w)?,
                (_, None) => fused = self.noise(draw, self.strength(coef)),
            }
        }
        backend.denoise_sgd(w, grad, velocity, fused.as_ref(), sgd)
    }

    /// `out ← θ` for `draw` as [`Param::perturb`] would add it to `w` now,
    /// for frameworks that add θ with their own ops (`w + out` has the
    /// perturbed bits; remove it by subtracting the same `out`, which
    /// rounds like regenerating). Any scaling: for AdaSmoothOut the row
    /// scales are computed from `w` first. Applies nothing: `w` is only
    /// read and [`Param::applied`] does not change. A parameter that is
    /// not perturbed gets zeros (±0).
    ///
    /// # Errors
    /// [`Error::NotRegenerable`] for Bernoulli noise (it replaces weights,
    /// θ is not added); [`Error::LengthMismatch`] for `w` or `out`; a
    /// schedule error; backend errors.
    pub fn write_noise(
        &mut self,
        backend: &B,
        w: &B::Buffer,
        draw: Draw,
        out: &mut B::Buffer,
    ) -> Result<()>
    where
        B: NoiseOps + NormOps,
    {
        self.check_len(backend, "parameter buffer", w)?;
        self.check_len(backend, "noise output", out)?;
        let Some((unit, _)) = self.config.noise.additive() else {
            return Err(Error::NotRegenerable {
                reason: "Bernoulli noise sets weights to zero instead of adding θ",
            });
        };
        let coef = self
            .config
            .schedule
            .coefficient(draw.step, self.config.total_steps)?;
        if !self.spec.perturbed {
            return backend.fill_noise(self.key(draw), &Noise::Uniform { a: 0.0 }, out);
        }
        let strength = self.strength(coef);
        let (key, cols) = (self.key(draw), self.spec.cols());
        if let Some(scales) = self.scales.as_mut() {
            let noise = FilterNoise {
                key,
                unit,
                strength,
                cols,
            };
            backend.filter_scales(w, &noise, scales.borrow_mut())?;
        }
        match self.noise(draw, strength) {
            Some(noise) => backend.write_noise(&noise, w, out),
            None => Ok(()),
        }
    }
}
