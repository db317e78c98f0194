//! [`SmoothOut`]: any candle optimiser, with noise added before the forward
//! pass and taken out before the update.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{Optimizer, VarMap};
use rayon::prelude::*;
use smoothout::{param_id, Config, Draw, ParamSpec};

use crate::error::{Error, Result};
use crate::params::Params;
use crate::state::{Backends, Entry};

/// A variable to perturb or de-noise, with its index in name order.
type Task<'a> = (usize, &'a mut Entry);

/// SmoothOut (or AdaSmoothOut, with [`smoothout::Scaling::FilterNorm`])
/// around the optimiser `O`.
///
/// ```text
/// perturb(draw)   every perturbed variable  w ← w + θ(seed, draw, id)    in place
/// forward, loss.backward()                  gradients at w + θ
/// step(grads)     w ← w − θ (θ regenerated, in place), then O::step(grads)
/// ```
///
/// `id = smoothout::param_id(name)`; θ is the same, bit for bit, as
/// `smoothout::reference` gives for `(seed, draw, id)`. Nothing
/// parameter-sized is allocated: θ is regenerated from its key, only
/// AdaSmoothOut keeps one scale per row.
///
/// `SmoothOut<O>` is itself a [`candle_nn::Optimizer`], so it drops into a
/// loop written for `O`: [`Optimizer::step`] and
/// [`Optimizer::backward_step`] de-noise first when a draw is applied and
/// step plainly otherwise.
///
/// Built through the trait ([`Optimizer::new`]), variables are named by
/// their position (`"0"`, `"1"`, …) and their specs inferred from shapes;
/// prefer [`from_varmap`](Self::from_varmap) or
/// [`from_params`](Self::from_params), whose names do not depend on order.
#[derive(Debug)]
pub struct SmoothOut<O> {
    inner: O,
    config: Config,
    entries: Vec<Entry>,
    applied: Option<Draw>,
}

/// The configuration of [`SmoothOut`] as an [`Optimizer`]: the inner
/// optimiser's and SmoothOut's.
#[derive(Clone, Debug)]
pub struct SmoothOutConfig<C> {
    /// The inner optimiser's configuration (`ParamsAdamW`, a learning rate…).
    pub inner: C,
    /// Noise, scaling, schedule, seed.
    pub smoothout: Config,
}

impl<O: Optimizer> SmoothOut<O> {
    /// Builds the inner optimiser on every variable of `varmap` (in name
    /// order) and SmoothOut around it, with specs inferred from names and
    /// shapes ([`crate::infer_spec`]).
    ///
    /// # Errors
    /// As [`from_params`](Self::from_params).
    pub fn from_varmap(varmap: &VarMap, config: Config, inner: O::Config) -> Result<Self> {
        Self::from_params(Params::from_varmap(varmap)?, config, inner)
    }

    /// Builds the inner optimiser on `params`' variables (in name order) and
    /// SmoothOut around it.
    ///
    /// # Errors
    /// The inner optimiser's constructor's error, or as [`wrap`](Self::wrap).
    pub fn from_params(params: Params, config: Config, inner: O::Config) -> Result<Self> {
        let inner = O::new(params.vars(), inner)?;
        Self::wrap(inner, params, config)
    }

    /// SmoothOut around an optimiser already built on (at least) `params`'
    /// variables. Variables in `params` that `inner` does not update are
    /// still perturbed and de-noised.
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] or [`Error::UnsupportedDevice`] for a
    /// perturbed variable the adapter cannot reach (f32 and f64 on the CPU;
    /// f32 on CUDA with the feature `cuda`); [`Error::SmoothOut`] when the
    /// core refuses the configuration.
    pub fn wrap(inner: O, params: Params, config: Config) -> Result<Self> {
        config.validate()?;
        // One device backend per CUDA device, shared by its variables.
        let mut backends = Backends::default();
        let entries = params
            .into_entries()
            .into_iter()
            .map(|(var, spec)| {
                let id = param_id(&spec.name);
                Entry::new(var, spec, &config, id, &mut backends)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SmoothOut {
            inner,
            config,
            entries,
            applied: None,
        })
    }

    /// Adds θ for `draw` to every perturbed variable, in place: one rayon
    /// task per CPU variable, largest first (θ depends on the variable's key
    /// only, so the bits do not depend on the thread count); CUDA variables
    /// queued on candle's stream from the calling thread. If one variable fails, those
    /// perturbed are de-noised again and the error of the first failing
    /// variable in name order is returned.
    ///
    /// # Errors
    /// [`smoothout::Error::AlreadyPerturbed`] (in [`Error::SmoothOut`]) when
    /// a draw is still applied; a variable the adapter cannot reach (its
    /// storage became strided, its dtype changed).
    pub fn perturb(&mut self, draw: Draw) -> Result<()> {
        if self.applied.is_some() {
            return Err(smoothout::Error::AlreadyPerturbed.into());
        }
        let results = self.each_perturbed(|e| e.perturb(draw));
        if results.iter().any(|(_, r)| r.is_err()) {
            let mut first = None;
            for (i, r) in results {
                match r {
                    // Best effort: the first error is the one to report.
                    Ok(()) => drop(self.entries[i].denoise(draw)),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            return Err(first.unwrap_or_else(|| smoothout::Error::NotPerturbed.into()));
        }
        self.applied = Some(draw);
        Ok(())
    }

    /// Takes the applied draw's θ out of every perturbed variable (without
    /// stepping): for evaluating, or after a failed forward pass.
    ///
    /// # Errors
    /// [`smoothout::Error::NotPerturbed`] (in [`Error::SmoothOut`]) when no
    /// draw is applied. If one variable fails, the others are still
    /// de-noised and the first error in name order is returned.
    pub fn denoise(&mut self) -> Result<()> {
        let draw = self.applied.take().ok_or(smoothout::Error::NotPerturbed)?;
        let results = self.each_perturbed(|e| e.denoise(draw));
        results.into_iter().try_for_each(|(_, r)| r)
    }

    /// Runs `f` on every perturbed variable and returns `(index, result)`
    /// in name order. CUDA variables first, in order on the calling thread
    /// (candle's default CUDA stream is per thread, so our kernels must be
    /// queued from the thread that runs candle's ops; queuing is
    /// asynchronous anyway); then the CPU variables, one rayon task each,
    /// the largest first (so that two threads finish close together).
    fn each_perturbed(
        &mut self,
        f: impl Fn(&mut Entry) -> Result<()> + Sync,
    ) -> Vec<(usize, Result<()>)> {
        let (device, mut host): (Vec<Task<'_>>, Vec<Task<'_>>) = self
            .entries
            .iter_mut()
            .enumerate()
            .filter(|(_, e)| e.is_perturbed())
            .partition(|(_, e)| e.is_cuda());
        let mut results: Vec<(usize, Result<()>)> =
            device.into_iter().map(|(i, e)| (i, f(e))).collect();
        host.sort_by_key(|(_, e)| std::cmp::Reverse(e.var.elem_count()));
        results.extend(
            host.into_par_iter()
                .with_max_len(1)
                .map(|(i, e)| (i, f(e)))
                .collect::<Vec<_>>(),
        );
        results.sort_by_key(|&(i, _)| i);
        results
    }

    /// The draw whose noise is in the variables now, if any.
    #[must_use]
    pub fn applied(&self) -> Option<Draw> {
        self.applied
    }

    /// Runs `f` with θ for `draw` added, then takes it out, whatever `f`
    /// returns: the closure form of [`perturb`](Self::perturb) and
    /// [`denoise`](Self::denoise). Gradients computed inside are those at
    /// `w + θ`; pass them to [`Optimizer::step`] of the inner optimiser
    /// ([`inner_mut`](Self::inner_mut)), or use
    /// [`train_step`](Self::train_step).
    ///
    /// # Errors
    /// As [`perturb`](Self::perturb); `f`'s own error; de-noising's error.
    pub fn with_perturbed<R, E>(
        &mut self,
        draw: Draw,
        f: impl FnOnce() -> Result<R, E>,
    ) -> Result<R>
    where
        Error: From<E>,
    {
        self.perturb(draw)?;
        let r = f();
        let d = self.denoise();
        let r = r?;
        d?;
        Ok(r)
    }

    /// One SmoothOut training step: perturb for `draw`, compute the loss with
    /// `loss` (the forward pass), backward, de-noise, step the inner
    /// optimiser. Returns the loss (computed at `w + θ`).
    ///
    /// # Errors
    /// As [`perturb`](Self::perturb); the closure's, backward's or the inner
    /// step's error (after de-noising, so the variables never keep θ).
    pub fn train_step(
        &mut self,
        draw: Draw,
        loss: impl FnOnce() -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        let (loss, grads) = self.with_perturbed(draw, || {
            let loss = loss()?;
            let grads = loss.backward()?;
            Ok::<_, candle_core::Error>((loss, grads))
        })?;
        self.inner.step(&grads)?;
        Ok(loss)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every variable's spec, in name order.
    pub fn specs(&self) -> impl Iterator<Item = &ParamSpec> {
        self.entries.iter().map(|e| &e.spec)
    }

    /// The variables, in name order, with whether noise touches them.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var, bool)> {
        self.entries
            .iter()
            .map(|e| (e.spec.name.as_str(), &e.var, e.is_perturbed()))
    }

    /// The inner optimiser.
    #[must_use]
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The inner optimiser, mutably (stepping it directly skips de-noising).
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// The inner optimiser, after taking out any applied noise.
    ///
    /// # Errors
    /// As [`denoise`](Self::denoise) when a draw is applied.
    pub fn into_inner(mut self) -> Result<O> {
        if self.applied.is_some() {
            self.denoise()?;
        }
        Ok(self.inner)
    }
}

impl<O: Optimizer> Optimizer for SmoothOut<O> {
    type Config = SmoothOutConfig<O::Config>;

    /// Variables named by position (`"0"`, `"1"`, …), specs from shapes.
    fn new(vars: Vec<Var>, config: Self::Config) -> candle_core::Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v));
        let params = Params::from_named(named)?;
        Ok(Self::from_params(params, config.smoothout, config.inner)?)
    }

    /// De-noises when a draw is applied, then steps the inner optimiser.
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        if self.applied.is_some() {
            self.denoise()?;
        }
        self.inner.step(grads)
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr);
    }
}
