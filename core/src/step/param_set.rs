//! [`SmoothOut`], the step over a whole parameter set, and the
//! [`Perturbed`] guard that de-noises when dropped.

use alloc::vec::Vec;
use core::borrow::{Borrow, BorrowMut};
use core::ops::{Deref, DerefMut};

use crate::backend::{PerturbOps, StateOps, UpdateOps};
use crate::error::{Error, Result};
use crate::noise::NoiseKey;
use crate::step::config::{Config, Draw};
use crate::step::param::Param;
use crate::step::sgd::Sgd;
use crate::step::spec::ParamSpec;

/// The SmoothOut state for one parameter set on one backend: one [`Param`]
/// per parameter, with ids `0, 1, 2, …` in spec order ([`SmoothOut::new`])
/// or ids of your choosing ([`SmoothOut::with_ids`]).
///
/// The all-parameter methods are loops over the [`Param`]s; they take the
/// buffers as any slice of things that borrow as the backend's buffer —
/// `&mut [Vec<f32>]`, or `&mut [&mut Vec<f32>]` gathered from a network's
/// layers — so nothing has to be moved out of its owner. Three ways to use
/// them:
///
/// * [`SmoothOut::step`]: perturb, run your closure, de-noise;
/// * [`SmoothOut::step_sgd`]: the same with de-noise fused into SGD;
/// * [`SmoothOut::perturb`] → a [`Perturbed`] guard, for trainers whose
///   forward and backward cannot live in one closure.
///
/// For one buffer at a time, [`SmoothOut::param_mut`] (or a [`Param`] of
/// your own).
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
pub struct SmoothOut<B: StateOps> {
    config: Config,
    params: Vec<Param<B>>,
}

impl<B: StateOps> core::fmt::Debug for SmoothOut<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SmoothOut")
            .field("config", &self.config)
            .field("params", &self.params)
            .finish()
    }
}

impl<B: StateOps> SmoothOut<B> {
    /// Validates the configuration and specs and allocates the per-row scales
    /// (AdaSmoothOut) or copies (exact mode). Parameter `i` gets id `i`.
    ///
    /// # Errors
    /// The configuration's errors; [`Error::EmptyParameterSet`] when nothing
    /// is perturbed; [`Error::EmptyParameter`] for a zero-sized spec.
    pub fn new(backend: &B, config: Config, specs: Vec<ParamSpec>) -> Result<Self> {
        Self::with_ids(
            backend,
            config,
            specs.into_iter().enumerate().map(|(i, s)| (i as u64, s)),
        )
    }

    /// [`SmoothOut::new`] with each parameter's id given, e.g.
    /// [`crate::param_id`] of its name.
    ///
    /// # Errors
    /// As [`SmoothOut::new`]; [`Error::DuplicateId`] when two parameters
    /// share an id (they would share their noise).
    pub fn with_ids(
        backend: &B,
        config: Config,
        params: impl IntoIterator<Item = (u64, ParamSpec)>,
    ) -> Result<Self> {
        config.validate()?;
        let params: Vec<(u64, ParamSpec)> = params.into_iter().collect();
        if params.iter().all(|(_, s)| !s.perturbed) {
            return Err(Error::EmptyParameterSet);
        }
        if let Some(param) = params.iter().position(|(_, s)| s.is_empty()) {
            return Err(Error::EmptyParameter { param });
        }
        for (i, (id, _)) in params.iter().enumerate() {
            if let Some(j) = params[..i].iter().position(|(other, _)| other == id) {
                return Err(Error::DuplicateId {
                    id: *id,
                    first: j,
                    second: i,
                });
            }
        }
        let params = params
            .into_iter()
            .map(|(id, spec)| Param::new(backend, config, id, spec))
            .collect::<Result<_>>()?;
        Ok(SmoothOut { config, params })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The parameters, in spec order.
    #[must_use]
    pub fn params(&self) -> &[Param<B>] {
        &self.params
    }

    /// Parameter `i`, for the per-parameter calls ([`Param::perturb`],
    /// [`Param::denoise`], [`Param::denoise_sgd`], [`Param::write_noise`]).
    /// Mixing them with the all-parameter methods is fine: each parameter
    /// keeps its own applied draw.
    pub fn param_mut(&mut self, i: usize) -> Option<&mut Param<B>> {
        self.params.get_mut(i)
    }

    /// The draw currently applied, if any (that of the first parameter that
    /// has one).
    #[must_use]
    pub fn applied(&self) -> Option<Draw> {
        self.params.iter().find_map(Param::applied)
    }

    /// The noise key of parameter `param` at `draw`.
    ///
    /// # Panics
    /// When `param` is out of range.
    #[must_use]
    pub fn key(&self, draw: Draw, param: usize) -> NoiseKey {
        self.params[param].key(draw)
    }

    fn check<P: Borrow<B::Buffer>>(&self, backend: &B, params: &[P]) -> Result<()> {
        crate::error::check_len("parameter buffers", self.params.len(), params.len())?;
        for (i, (p, s)) in params.iter().zip(&self.params).enumerate() {
            if backend.len(p.borrow()) != s.spec().len() {
                return Err(Error::ShapeMismatch {
                    param: i,
                    expected: s.spec().len(),
                    actual: backend.len(p.borrow()),
                });
            }
        }
        Ok(())
    }

    /// Adds θ for `draw` to every perturbed parameter. If the backend fails
    /// on one parameter, those already perturbed are restored before the
    /// error is returned, so no call leaves the parameters half perturbed.
    ///
    /// # Errors
    /// [`Error::AlreadyPerturbed`] while a draw is applied; length errors;
    /// backend errors.
    pub fn perturb<P: BorrowMut<B::Buffer>>(
        &mut self,
        backend: &B,
        params: &mut [P],
        draw: Draw,
    ) -> Result<()>
    where
        B: PerturbOps,
    {
        self.check(backend, params)?;
        if self.applied().is_some() {
            return Err(Error::AlreadyPerturbed);
        }
        for i in 0..params.len() {
            if let Err(e) = self.params[i].perturb(backend, params[i].borrow_mut(), draw) {
                for (p, w) in self.params[..i].iter_mut().zip(params.iter_mut()) {
                    // Best effort: the first error is the one to report.
                    let _ = p.roll_back(backend, w.borrow_mut(), draw);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes θ for `draw` (the draw last perturbed), as the configuration's
    /// [`Denoise`](crate::Denoise) mode says.
    ///
    /// # Errors
    /// [`Error::NotPerturbed`], [`Error::DrawMismatch`]; length and backend
    /// errors.
    pub fn denoise<P: BorrowMut<B::Buffer>>(
        &mut self,
        backend: &B,
        params: &mut [P],
        draw: Draw,
    ) -> Result<()>
    where
        B: PerturbOps,
    {
        self.check(backend, params)?;
        for (p, w) in self.params.iter_mut().zip(params) {
            p.denoise(backend, w.borrow_mut(), draw)?;
        }
        Ok(())
    }

    /// Removes θ for `draw` and applies SGD with momentum, fused into one
    /// pass per parameter where the mode allows (regenerating de-noise).
    /// Parameters that are not perturbed get the plain update.
    ///
    /// # Errors
    /// As [`SmoothOut::denoise`]; length errors for `grads` and `velocity`
    /// and [`Sgd::validate`]'s, checked before anything is written.
    pub fn denoise_sgd<P, G, V>(
        &mut self,
        backend: &B,
        params: &mut [P],
        grads: &[G],
        velocity: &mut [V],
        sgd: &Sgd,
        draw: Draw,
    ) -> Result<()>
    where
        B: UpdateOps,
        P: BorrowMut<B::Buffer>,
        G: Borrow<B::Buffer>,
        V: BorrowMut<B::Buffer>,
    {
        self.check(backend, params)?;
        self.check(backend, grads)?;
        self.check(backend, velocity)?;
        sgd.validate()?;
        if let Some(p) = self.params.iter().find(|p| p.applied() != Some(draw)) {
            return Err(match p.applied() {
                None => Error::NotPerturbed,
                Some(_) => Error::DrawMismatch,
            });
        }
        for (((p, w), g), v) in self.params.iter_mut().zip(params).zip(grads).zip(velocity) {
            p.denoise_sgd(
                backend,
                w.borrow_mut(),
                g.borrow(),
                v.borrow_mut(),
                sgd,
                draw,
            )?;
        }
        Ok(())
    }

    /// Perturb, run `f` on the perturbed parameters (it computes the
    /// gradient), de-noise — also when `f` fails, so the parameters are never
    /// left perturbed — and return what `f` returned.
    ///
    /// # Errors
    /// As [`SmoothOut::perturb`] and [`SmoothOut::denoise`], or `f`'s error.
    pub fn step<P, R, E>(
        &mut self,
        backend: &B,
        params: &mut [P],
        draw: Draw,
        f: impl FnOnce(&mut [P]) -> core::result::Result<R, E>,
    ) -> core::result::Result<R, E>
    where
        B: PerturbOps,
        P: BorrowMut<B::Buffer>,
        E: From<Error>,
    {
        self.perturb(backend, params, draw)?;
        let out = f(params);
        self.denoise(backend, params, draw)?;
        out
    }

    /// [`SmoothOut::step`] with the de-noise fused into an SGD-momentum
    /// update: `f` receives the perturbed parameters and writes `grads`.
    /// If `f` fails, the parameters are de-noised and not updated.
    ///
    /// # Errors
    /// As [`SmoothOut::step`] and [`SmoothOut::denoise_sgd`].
    #[allow(clippy::too_many_arguments)]
    pub fn step_sgd<P, G, V, R, E>(
        &mut self,
        backend: &B,
        params: &mut [P],
        grads: &mut [G],
        velocity: &mut [V],
        sgd: &Sgd,
        draw: Draw,
        f: impl FnOnce(&[P], &mut [G]) -> core::result::Result<R, E>,
    ) -> core::result::Result<R, E>
    where
        B: PerturbOps + UpdateOps,
        P: BorrowMut<B::Buffer>,
        G: BorrowMut<B::Buffer>,
        V: BorrowMut<B::Buffer>,
        E: From<Error>,
    {
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
    ///
    /// # Errors
    /// As [`SmoothOut::perturb`].
    pub fn guard<'a, P: BorrowMut<B::Buffer>>(
        &'a mut self,
        backend: &'a B,
        params: &'a mut [P],
        draw: Draw,
    ) -> Result<Perturbed<'a, B, P>>
    where
        B: PerturbOps,
    {
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
pub struct Perturbed<'a, B: StateOps + PerturbOps, P: BorrowMut<B::Buffer>> {
    so: &'a mut SmoothOut<B>,
    backend: &'a B,
    params: &'a mut [P],
    draw: Draw,
    done: bool,
}

impl<B: StateOps + PerturbOps, P: BorrowMut<B::Buffer>> Perturbed<'_, B, P> {
    /// The draw applied.
    #[must_use]
    pub fn draw(&self) -> Draw {
        self.draw
    }

    /// Removes the noise.
    ///
    /// # Errors
    /// As [`SmoothOut::denoise`].
    pub fn denoise(mut self) -> Result<()> {
        self.done = true;
        self.so.denoise(self.backend, self.params, self.draw)
    }

    /// Removes the noise fused with an SGD-momentum update.
    ///
    /// # Errors
    /// As [`SmoothOut::denoise_sgd`].
    pub fn denoise_sgd<G, V>(mut self, grads: &[G], velocity: &mut [V], sgd: &Sgd) -> Result<()>
    where
        B: UpdateOps,
        G: Borrow<B::Buffer>,
        V: BorrowMut<B::Buffer>,
    {
        self.done = true;
        self.so
            .denoise_sgd(self.backend, self.params, grads, velocity, sgd, self.draw)
    }
}

impl<B: StateOps + PerturbOps, P: BorrowMut<B::Buffer>> Deref for Perturbed<'_, B, P> {
    type Target = [P];
    fn deref(&self) -> &[P] {
        self.params
    }
}

impl<B: StateOps + PerturbOps, P: BorrowMut<B::Buffer>> DerefMut for Perturbed<'_, B, P> {
    fn deref_mut(&mut self) -> &mut [P] {
        self.params
    }
}

impl<B: StateOps + PerturbOps, P: BorrowMut<B::Buffer>> Drop for Perturbed<'_, B, P> {
    fn drop(&mut self) {
        if !self.done {
            // Errors cannot leave drop; the explicit methods report them.
            let _ = self.so.denoise(self.backend, self.params, self.draw);
        }
    }
}
