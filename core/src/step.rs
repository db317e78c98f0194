//! The SmoothOut step (Algorithm 1): perturb, gradient, de-noise, update.

use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};

use crate::backend::{Backend, BackendTypes, NoiseOf};
use crate::error::{Error, Result};
use crate::noise::{Noise, Scaling};
use crate::philox::NoiseKey;
use crate::real::Real;
use crate::reference::{ParamNoise, Scale};
use crate::schedule::Schedule;
use crate::sgd::Sgd;
use crate::spec::ParamSpec;

/// The coordinates of one noise draw: the optimiser step and the ghost batch
/// within it. Every `(step, ghost)` pair gets fresh, independent noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Draw {
    /// Index of the optimiser update (also the schedule's `t`).
    pub step: u64,
    /// Index of the ghost batch within the update (0 without ghost batches).
    pub ghost: u64,
}

impl Draw {
    /// Ghost batch `ghost` of update `step`.
    #[must_use]
    pub const fn new(step: u64, ghost: u64) -> Self {
        Draw { step, ghost }
    }
}

/// How the noise is taken out again after the backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Denoise {
    /// Regenerate θ from its key and subtract it: no memory beyond one scale
    /// per row (AdaSmoothOut). `(w + θ) − θ` may differ from `w` by rounding,
    /// and the difference accumulates about linearly over draws (6·10⁻⁵ in
    /// absolute terms after 10⁶ draws at a = 0.0375 in f32; the README has
    /// the table).
    #[default]
    Regenerate,
    /// Keep a copy of every perturbed parameter and restore it: bit-exact,
    /// one extra buffer per parameter. Needed for Bernoulli noise.
    Exact,
    /// The ablation of Table III: leave the noise in (the update is applied
    /// at the perturbed point, and the next draw adds to it).
    Off,
}

/// Everything that defines a SmoothOut run, with the authors' defaults.
///
/// ```
/// use smoothout::{Config, Noise, Scaling, Schedule, Denoise};
/// let ada = Config::new(Noise::uniform(0.0375)?)
///     .with_scaling(Scaling::FilterNorm)
///     .with_schedule(Schedule::Constant, 10_000)
///     .with_seed(42);
/// assert_eq!(ada.denoise, Denoise::Regenerate);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The distribution of θ.
    pub noise: Noise,
    /// Fixed (SmoothOut), per element, or per filter (AdaSmoothOut).
    pub scaling: Scaling,
    /// Strength multiplier over training.
    pub schedule: Schedule,
    /// Total optimiser steps (read by the `Tanh` schedule).
    pub total_steps: u64,
    /// How θ is removed.
    pub denoise: Denoise,
    /// Root of every noise key.
    pub seed: u64,
}

impl Config {
    /// `noise`, fixed scaling, constant schedule, regenerating de-noise, seed 0.
    #[must_use]
    pub fn new(noise: Noise) -> Self {
        Config {
            noise,
            scaling: Scaling::Fixed,
            schedule: Schedule::Constant,
            total_steps: 0,
            denoise: Denoise::Regenerate,
            seed: 0,
        }
    }

    /// With another scaling.
    #[must_use]
    pub fn with_scaling(mut self, scaling: Scaling) -> Self {
        self.scaling = scaling;
        self
    }

    /// With a schedule over `total_steps` optimiser steps.
    #[must_use]
    pub fn with_schedule(mut self, schedule: Schedule, total_steps: u64) -> Self {
        self.schedule = schedule;
        self.total_steps = total_steps;
        self
    }

    /// With another de-noising mode.
    #[must_use]
    pub fn with_denoise(mut self, denoise: Denoise) -> Self {
        self.denoise = denoise;
        self
    }

    /// With another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every value, and that the noise can be removed the chosen way.
    pub fn validate(&self) -> Result<()> {
        self.noise.validate()?;
        self.schedule.validate()?;
        if let Schedule::Tanh { .. } = self.schedule {
            self.schedule.coefficient(0, self.total_steps)?;
        }
        if self.denoise != Denoise::Regenerate {
            return Ok(());
        }
        match (self.noise, self.scaling) {
            (Noise::Bernoulli { .. }, _) => Err(Error::NotRegenerable {
                reason: "Bernoulli noise sets weights to zero, which erases them",
            }),
            (Noise::Gaussian { .. }, Scaling::PerElement) => Err(Error::NotRegenerable {
                reason: "per-element Gaussian noise can flip a weight's sign",
            }),
            (Noise::Uniform { a }, Scaling::PerElement) if a >= 1.0 => Err(Error::NotRegenerable {
                reason: "per-element uniform noise with a >= 1 can flip a weight's sign",
            }),
            _ => Ok(()),
        }
    }
}

/// The SmoothOut state for one parameter set on one backend.
///
/// Holds the specs, one scale per row for AdaSmoothOut, and, in exact mode,
/// a copy of each perturbed parameter. Three ways to use it:
///
/// * [`SmoothOut::step`]: perturb, run your closure, de-noise;
/// * [`SmoothOut::step_sgd`]: the same with de-noise fused into SGD;
/// * [`SmoothOut::perturb`] → a [`Perturbed`] guard, for trainers whose
///   forward and backward cannot live in one closure.
///
/// ```
/// use smoothout::{Config, Draw, Noise, ParamSpec, Reference, SmoothOut};
/// let b = Reference::<f32>::new();
/// let specs = vec![ParamSpec::weight("w", [2, 3])];
/// let mut so = SmoothOut::new(&b, Config::new(Noise::uniform(0.1)?), specs)?;
/// let mut params = vec![vec![0.5f32; 6]];
/// let loss = so.step(&b, &mut params, Draw::new(0, 0), |p| {
///     Ok::<f32, smoothout::Error>(p[0].iter().map(|x| x * x).sum())
/// })?;
/// assert!((loss - 1.5).abs() < 0.5);
/// assert!(params[0].iter().all(|x| (x - 0.5).abs() < 1e-6)); // de-noised
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct SmoothOut<B: BackendTypes> {
    config: Config,
    specs: Vec<ParamSpec>,
    scales: Vec<Option<B::Buffer>>,
    saved: Vec<Option<B::Buffer>>,
    applied: Option<(Draw, f64)>,
}

impl<B: BackendTypes> core::fmt::Debug for SmoothOut<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SmoothOut")
            .field("config", &self.config)
            .field("specs", &self.specs)
            .field("applied", &self.applied.map(|(d, _)| d))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> SmoothOut<B> {
    /// Validates the configuration and specs and allocates the per-row scales
    /// (AdaSmoothOut) or copies (exact mode).
    pub fn new(backend: &B, config: Config, specs: Vec<ParamSpec>) -> Result<Self> {
        config.validate()?;
        if specs.iter().all(|s| !s.perturbed) {
            return Err(Error::EmptyParameterSet);
        }
        if let Some(param) = specs.iter().position(ParamSpec::is_empty) {
            return Err(Error::EmptyParameter { param });
        }
        let mut scales = Vec::with_capacity(specs.len());
        let mut saved = Vec::with_capacity(specs.len());
        for s in &specs {
            let rows = s.perturbed && config.scaling == Scaling::FilterNorm;
            scales.push(if rows {
                Some(backend.zeros(s.rows())?)
            } else {
                None
            });
            let keep = s.perturbed && config.denoise == Denoise::Exact;
            saved.push(if keep {
                Some(backend.zeros(s.len())?)
            } else {
                None
            });
        }
        Ok(SmoothOut {
            config,
            specs,
            scales,
            saved,
            applied: None,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The parameter specs, in buffer order.
    #[must_use]
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// The draw currently applied, if any.
    #[must_use]
    pub fn applied(&self) -> Option<Draw> {
        self.applied.map(|(d, _)| d)
    }

    /// The noise key of parameter `param` at `draw`.
    #[must_use]
    pub fn key(&self, draw: Draw, param: usize) -> NoiseKey {
        NoiseKey::for_draw(self.config.seed, draw.step, draw.ghost, param as u64)
    }

    fn check(&self, backend: &B, params: &[B::Buffer]) -> Result<()> {
        if params.len() != self.specs.len() {
            return Err(Error::LengthMismatch {
                what: "parameter buffers",
                expected: self.specs.len(),
                actual: params.len(),
            });
        }
        for (i, (p, s)) in params.iter().zip(&self.specs).enumerate() {
            if backend.len(p) != s.len() {
                return Err(Error::ShapeMismatch {
                    param: i,
                    expected: s.len(),
                    actual: backend.len(p),
                });
            }
        }
        Ok(())
    }

    fn param_noise(&self, i: usize, draw: Draw, strength: f64) -> Option<NoiseOf<'_, B>> {
        let (unit, _) = self.config.noise.additive()?;
        let scale = match self.config.scaling {
            Scaling::Fixed => Scale::Fixed(B::Elem::from_f64(strength)),
            Scaling::PerElement => Scale::PerElement(B::Elem::from_f64(strength)),
            Scaling::FilterNorm => Scale::Rows {
                cols: self.specs[i].cols(),
                scales: self.scales[i].as_ref()?,
            },
        };
        Some(ParamNoise {
            key: self.key(draw, i),
            unit,
            scale,
        })
    }

    /// Adds θ for `draw` to every perturbed parameter. If the backend fails
    /// on one parameter, those already perturbed are restored before the
    /// error is returned, so no call leaves the parameters half perturbed.
    pub fn perturb(&mut self, backend: &B, params: &mut [B::Buffer], draw: Draw) -> Result<()> {
        self.check(backend, params)?;
        if self.applied.is_some() {
            return Err(Error::AlreadyPerturbed);
        }
        let coef = self
            .config
            .schedule
            .coefficient(draw.step, self.config.total_steps)?;
        for i in 0..params.len() {
            if !self.specs[i].perturbed {
                continue;
            }
            if let Err(e) = self.apply_one(backend, &mut params[i], i, draw, coef) {
                for j in (0..i).filter(|&j| self.specs[j].perturbed) {
                    // Best effort: the first error is the one to report.
                    let _ = self.undo_one(backend, &mut params[j], j, draw, coef);
                }
                return Err(e);
            }
        }
        self.applied = Some((draw, coef));
        Ok(())
    }

    /// The strength after the schedule's multiplier `coef`.
    fn strength(&self, coef: f64) -> f64 {
        match self.config.noise {
            Noise::Uniform { a } => a * coef,
            Noise::Gaussian { std } => std * coef,
            Noise::Bernoulli { p } => p * coef,
        }
    }

    /// Perturbs parameter `i` (keeping its copy first in exact mode).
    fn apply_one(
        &mut self,
        b: &B,
        w: &mut B::Buffer,
        i: usize,
        draw: Draw,
        coef: f64,
    ) -> Result<()> {
        if let Some(copy) = self.saved[i].as_mut() {
            b.copy(w, copy)?;
        }
        let key = self.key(draw, i);
        let strength = self.strength(coef);
        let cols = self.specs[i].cols();
        match (self.config.noise.additive(), self.scales[i].as_mut()) {
            (None, _) => b.drop_out(w, key, strength),
            (Some((unit, _)), Some(scales)) => {
                b.perturb_filter_norm(w, key, unit, strength, cols, scales)
            }
            (Some(_), None) => match self.param_noise(i, draw, strength) {
                Some(noise) => b.perturb(w, &noise),
                None => Ok(()),
            },
        }
    }

    /// Takes parameter `i`'s noise out: restores the copy where one is kept,
    /// regenerates θ otherwise.
    fn undo_one(&self, b: &B, w: &mut B::Buffer, i: usize, draw: Draw, coef: f64) -> Result<()> {
        if let Some(copy) = self.saved[i].as_ref() {
            return b.copy(copy, w);
        }
        match self.param_noise(i, draw, self.strength(coef)) {
            Some(noise) => b.denoise(w, &noise),
            None => Ok(()),
        }
    }

    fn take_applied(&mut self, draw: Draw) -> Result<f64> {
        match self.applied {
            None => Err(Error::NotPerturbed),
            Some((d, _)) if d != draw => Err(Error::DrawMismatch),
            Some((_, coef)) => {
                self.applied = None;
                Ok(coef)
            }
        }
    }

    /// Removes θ for `draw` (the draw last perturbed), as the configuration's
    /// [`Denoise`] mode says.
    pub fn denoise(&mut self, backend: &B, params: &mut [B::Buffer], draw: Draw) -> Result<()> {
        self.check(backend, params)?;
        let coef = self.take_applied(draw)?;
        if self.config.denoise == Denoise::Off {
            return Ok(());
        }
        for (i, w) in params.iter_mut().enumerate() {
            if self.specs[i].perturbed {
                self.undo_one(backend, w, i, draw, coef)?;
            }
        }
        Ok(())
    }

    /// Removes θ for `draw` and applies SGD with momentum, fused into one
    /// pass per parameter where the mode allows (regenerating de-noise).
    /// Parameters that are not perturbed get the plain update.
    pub fn denoise_sgd(
        &mut self,
        backend: &B,
        params: &mut [B::Buffer],
        grads: &[B::Buffer],
        velocity: &mut [B::Buffer],
        sgd: &Sgd,
        draw: Draw,
    ) -> Result<()> {
        self.check(backend, params)?;
        self.check(backend, grads)?;
        self.check(backend, velocity)?;
        sgd.validate()?;
        let coef = self.take_applied(draw)?;
        let strength = self.strength(coef);
        for (i, ((w, g), v)) in params.iter_mut().zip(grads).zip(velocity).enumerate() {
            let mut fused = None;
            if self.specs[i].perturbed {
                match (self.config.denoise, self.saved[i].as_ref()) {
                    (Denoise::Off, _) => {}
                    (_, Some(copy)) => backend.copy(copy, w)?,
                    (_, None) => fused = self.param_noise(i, draw, strength),
                }
            }
            backend.denoise_sgd(w, g, v, fused.as_ref(), sgd)?;
        }
        Ok(())
    }

    /// Perturb, run `f` on the perturbed parameters (it computes the
    /// gradient), de-noise — also when `f` fails, so the parameters are never
    /// left perturbed — and return what `f` returned.
    pub fn step<R, E: From<Error>>(
        &mut self,
        backend: &B,
        params: &mut [B::Buffer],
        draw: Draw,
        f: impl FnOnce(&mut [B::Buffer]) -> core::result::Result<R, E>,
    ) -> core::result::Result<R, E> {
        self.perturb(backend, params, draw)?;
        let out = f(params);
        self.denoise(backend, params, draw)?;
        out
    }

    /// [`SmoothOut::step`] with the de-noise fused into an SGD-momentum
    /// update: `f` receives the perturbed parameters and writes `grads`.
    /// If `f` fails, the parameters are de-noised and not updated.
    #[allow(clippy::too_many_arguments)]
    pub fn step_sgd<R, E: From<Error>>(
        &mut self,
        backend: &B,
        params: &mut [B::Buffer],
        grads: &mut [B::Buffer],
        velocity: &mut [B::Buffer],
        sgd: &Sgd,
        draw: Draw,
        f: impl FnOnce(&[B::Buffer], &mut [B::Buffer]) -> core::result::Result<R, E>,
    ) -> core::result::Result<R, E> {
        // Checked before perturbing, so that the update cannot fail on them
        // and leave the parameters perturbed.
        self.check(backend, grads)?;
        self.check(backend, velocity)?;
        sgd.validate()?;
        self.perturb(backend, params, draw)?;
        match f(params, grads) {
            Ok(r) => {
                self.denoise_sgd(backend, params, grads, velocity, sgd, draw)?;
                Ok(r)
            }
            Err(e) => {
                self.denoise(backend, params, draw)?;
                Err(e)
            }
        }
    }

    /// Perturbs and returns a guard that derefs to the perturbed parameters.
    /// Finish with [`Perturbed::denoise`] or [`Perturbed::denoise_sgd`]; a
    /// guard dropped without either de-noises on drop (ignoring errors, which
    /// the explicit methods report).
    ///
    /// ```
    /// use smoothout::{Config, Draw, Noise, ParamSpec, Reference, SmoothOut};
    /// let b = Reference::<f64>::new();
    /// let mut so = SmoothOut::new(&b, Config::new(Noise::uniform(0.1)?),
    ///                             vec![ParamSpec::bias("b", 3)])?;
    /// let mut params = vec![vec![1.0; 3]];
    /// let guard = so.guard(&b, &mut params, Draw::new(7, 1))?;
    /// assert!(guard[0].iter().all(|&x| x != 1.0));   // perturbed
    /// guard.denoise()?;
    /// assert!(params[0].iter().all(|&x| (x - 1.0).abs() < 1e-15));
    /// # Ok::<(), smoothout::Error>(())
    /// ```
    pub fn guard<'a>(
        &'a mut self,
        backend: &'a B,
        params: &'a mut [B::Buffer],
        draw: Draw,
    ) -> Result<Perturbed<'a, B>> {
        self.perturb(backend, params, draw)?;
        Ok(Perturbed {
            so: self,
            backend,
            params,
            draw,
            done: false,
        })
    }
}

/// Perturbed parameters, borrowed until de-noised (see [`SmoothOut::guard`]).
pub struct Perturbed<'a, B: Backend> {
    so: &'a mut SmoothOut<B>,
    backend: &'a B,
    params: &'a mut [B::Buffer],
    draw: Draw,
    done: bool,
}

impl<B: Backend> Perturbed<'_, B> {
    /// The draw applied.
    #[must_use]
    pub fn draw(&self) -> Draw {
        self.draw
    }

    /// Removes the noise.
    pub fn denoise(mut self) -> Result<()> {
        self.done = true;
        self.so.denoise(self.backend, self.params, self.draw)
    }

    /// Removes the noise fused with an SGD-momentum update.
    pub fn denoise_sgd(
        mut self,
        grads: &[B::Buffer],
        velocity: &mut [B::Buffer],
        sgd: &Sgd,
    ) -> Result<()> {
        self.done = true;
        self.so
            .denoise_sgd(self.backend, self.params, grads, velocity, sgd, self.draw)
    }
}

impl<B: Backend> Deref for Perturbed<'_, B> {
    type Target = [B::Buffer];
    fn deref(&self) -> &[B::Buffer] {
        self.params
    }
}

impl<B: Backend> DerefMut for Perturbed<'_, B> {
    fn deref_mut(&mut self) -> &mut [B::Buffer] {
        self.params
    }
}

impl<B: Backend> Drop for Perturbed<'_, B> {
    fn drop(&mut self) {
        if !self.done {
            // Errors cannot leave drop; the explicit methods report them.
            let _ = self.so.denoise(self.backend, self.params, self.draw);
        }
    }
}
