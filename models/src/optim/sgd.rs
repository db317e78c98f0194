//! SGD with heavy-ball or Nesterov momentum.

use smoothout::tensor::TensorBackend;
use smoothout::{Real, Result, Sgd};

use super::optimizer::{
    check_bufs, check_lr, check_state, download, invalid, upload_into, zeros, OptimState, Optimizer,
};

/// SGD with momentum and coupled weight decay, as `torch.optim.SGD` with
/// `dampening = 0`:
///
/// ```text
/// g ← g + weight_decay · w
/// v ← momentum · v + g
/// w ← w − lr · v                      (heavy ball)
/// w ← w − lr · (g + momentum · v)     (Nesterov)
/// ```
///
/// each line rounded in the element type in this order.
///
/// Three names, three things: core's [`Sgd`] is the *settings* of one SGD
/// update (rate, momentum, weight decay: what `denoise_sgd` takes);
/// `SgdMomentum` is the *optimiser* that holds those settings with the
/// momentum buffers and step count, heavy ball or Nesterov (as [`Adam`]
/// holds an [`AdamConfig`]); `OptimizerKind::Sgd` (`--optimizer sgd`) is
/// the *choice* of its heavy-ball form, beside `Nesterov` and `Adam`.
///
/// [`Adam`]: super::Adam
/// [`AdamConfig`]: super::AdamConfig
///
/// The heavy-ball step
/// is [`smoothout::UpdateOps::denoise_sgd`] with no noise, so it is
/// bit-identical to SmoothOut's fused update; with `momentum = 0` it is plain
/// SGD. Nesterov needs `momentum > 0` (as in PyTorch) and one scratch buffer
/// per parameter.
///
/// ```
/// use smoothout::{Reference, Sgd};
/// use smoothout_models::optim::{Optimizer, SgdMomentum};
/// let b = Reference::<f32>::new();
/// let mut opt = SgdMomentum::new(&b, &[2], Sgd::new(0.5, 0.9, 0.0)?, true)?;
/// let mut w = vec![1.0f32, 2.0];
/// opt.step(&b, &mut [&mut w], &[&vec![1.0, 1.0]])?;
/// // v = 1, w ← w − 0.5 · (1 + 0.9 · 1)
/// assert_eq!(w, [1.0 - 0.5 * 1.9, 2.0 - 0.5 * 1.9]);
/// assert!(SgdMomentum::new(&b, &[2], Sgd::new(0.5, 0.0, 0.0)?, true).is_err());
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct SgdMomentum<B: TensorBackend> {
    sgd: Sgd,
    nesterov: bool,
    sizes: Vec<usize>,
    velocity: Vec<B::Buffer>,
    scratch: Vec<B::Buffer>,
    steps: u64,
}

impl<B: TensorBackend> core::fmt::Debug for SgdMomentum<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SgdMomentum")
            .field("sgd", &self.sgd)
            .field("nesterov", &self.nesterov)
            .field("sizes", &self.sizes)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<B: TensorBackend> SgdMomentum<B> {
    /// Zero velocities for parameters of `sizes` elements (spec order).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) for an invalid `sgd` (see
    /// [`Sgd::validate`]) or Nesterov with `momentum == 0`.
    pub fn new(backend: &B, sizes: &[usize], sgd: Sgd, nesterov: bool) -> Result<Self> {
        sgd.validate()?;
        if nesterov && sgd.momentum <= 0.0 {
            return invalid(
                "momentum (Nesterov)",
                sgd.momentum,
                "> 0 with Nesterov momentum",
            );
        }
        Ok(SgdMomentum {
            sgd,
            nesterov,
            sizes: sizes.to_vec(),
            velocity: zeros(backend, sizes)?,
            scratch: if nesterov {
                zeros(backend, sizes)?
            } else {
                Vec::new()
            },
            steps: 0,
        })
    }

    /// The configuration (with the current learning rate).
    #[must_use]
    pub fn config(&self) -> &Sgd {
        &self.sgd
    }

    /// Whether the momentum is Nesterov's.
    #[must_use]
    pub fn nesterov(&self) -> bool {
        self.nesterov
    }

    /// The velocity buffers, in parameter order.
    #[must_use]
    pub fn velocity(&self) -> &[B::Buffer] {
        &self.velocity
    }

    /// The velocity buffers, to pass to
    /// [`smoothout::SmoothOut::denoise_sgd`] (with [`SgdMomentum::config`])
    /// for the fused de-noise + update; call [`SgdMomentum::count_step`]
    /// afterwards so that the step count stays right.
    pub fn velocity_mut(&mut self) -> &mut [B::Buffer] {
        &mut self.velocity
    }

    /// Counts an update taken outside [`Optimizer::step`] (the fused
    /// SmoothOut path).
    pub fn count_step(&mut self) {
        self.steps += 1;
    }
}

impl<B: TensorBackend> Optimizer<B> for SgdMomentum<B> {
    fn step(
        &mut self,
        backend: &B,
        params: &mut [&mut B::Buffer],
        grads: &[&B::Buffer],
    ) -> Result<()> {
        check_bufs(backend, "parameter buffers", &self.sizes, params)?;
        check_bufs(backend, "gradient buffers", &self.sizes, grads)?;
        let s = self.sgd;
        if !self.nesterov {
            for ((w, &g), v) in params.iter_mut().zip(grads).zip(&mut self.velocity) {
                backend.denoise_sgd(w, g, v, None, &s)?;
            }
        } else {
            let wd = B::Elem::from_f64(s.weight_decay);
            let mu = B::Elem::from_f64(s.momentum);
            let lr = B::Elem::from_f64(s.lr);
            for (((w, &g), v), d) in params
                .iter_mut()
                .zip(grads)
                .zip(&mut self.velocity)
                .zip(&mut self.scratch)
            {
                backend.copy(g, d)?; // d = g
                if s.weight_decay != 0.0 {
                    backend.axpy(wd, w, d)?; // d = g + wd·w
                }
                backend.scale(mu, v)?; // v = μ·v
                backend.add(d, v)?; // v = μ·v + d
                backend.axpy(mu, v, d)?; // d = d + μ·v
                backend.axpy(-lr, d, w)?; // w = w − lr·d
            }
        }
        self.steps += 1;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.sgd.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.sgd.lr = lr;
        Ok(())
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self, backend: &B) -> Result<OptimState<B::Elem>> {
        Ok(OptimState {
            kind: self.kind(),
            step: self.steps,
            buffers: download(backend, &self.velocity)?,
        })
    }

    fn load_state(&mut self, backend: &B, state: &OptimState<B::Elem>) -> Result<()> {
        check_state(state, self.kind(), &self.sizes, 1)?;
        upload_into(backend, &state.buffers, &mut self.velocity)?;
        self.steps = state.step;
        Ok(())
    }
}

impl<B: TensorBackend> SgdMomentum<B> {
    fn kind(&self) -> &'static str {
        if self.nesterov {
            "nesterov"
        } else {
            "sgd"
        }
    }
}
