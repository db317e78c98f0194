//! Adam, bias-corrected, with optional coupled weight decay.

use smoothout::tensor::TensorBackend;
use smoothout::{Real, Result};

use super::optimizer::{
    check_bufs, check_lr, check_state, download, invalid, upload_into, upload_to, zeros,
    OptimState, Optimizer,
};

/// Adam's settings, PyTorch's defaults by [`AdamConfig::new`]
/// (`β = (0.9, 0.999)`, `ε = 1e-8`, no weight decay).
///
/// ```
/// use smoothout_models::optim::AdamConfig;
/// let c = AdamConfig::new(1e-3)?.with_weight_decay(5e-4)?;
/// assert_eq!(c.betas, (0.9, 0.999));
/// assert!(AdamConfig::new(1e-3)?.with_betas(0.9, 1.0).is_err());
/// assert!(AdamConfig::new(1e-3)?.with_eps(0.0).is_err());
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate, finite and ≥ 0.
    pub lr: f64,
    /// `(β₁, β₂)`, each in `[0, 1)`.
    pub betas: (f64, f64),
    /// ε added to the denominator, finite and > 0.
    pub eps: f64,
    /// Coupled L2 weight decay (added to the gradient), finite and ≥ 0.
    pub weight_decay: f64,
}

impl AdamConfig {
    /// PyTorch's defaults with this learning rate.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for a negative, NaN or infinite `lr`.
    pub fn new(lr: f64) -> Result<Self> {
        let c = AdamConfig {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        };
        c.validate().map(|()| c)
    }

    /// With other betas.
    ///
    /// # Errors
    /// As [`AdamConfig::validate`].
    pub fn with_betas(self, beta1: f64, beta2: f64) -> Result<Self> {
        let c = AdamConfig {
            betas: (beta1, beta2),
            ..self
        };
        c.validate().map(|()| c)
    }

    /// With another ε.
    ///
    /// # Errors
    /// As [`AdamConfig::validate`].
    pub fn with_eps(self, eps: f64) -> Result<Self> {
        let c = AdamConfig { eps, ..self };
        c.validate().map(|()| c)
    }

    /// With coupled weight decay.
    ///
    /// # Errors
    /// As [`AdamConfig::validate`].
    pub fn with_weight_decay(self, weight_decay: f64) -> Result<Self> {
        let c = AdamConfig {
            weight_decay,
            ..self
        };
        c.validate().map(|()| c)
    }

    /// Checks every field (for values built by hand).
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        check_lr(self.lr)?;
        if !(0.0..1.0).contains(&self.betas.0) {
            return invalid("Adam beta1", self.betas.0, "in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.betas.1) {
            return invalid("Adam beta2", self.betas.1, "in [0, 1)");
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return invalid("Adam eps", self.eps, "finite and > 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return invalid("weight decay", self.weight_decay, "finite and >= 0");
        }
        Ok(())
    }
}

/// Adam as `torch.optim.Adam` (single-tensor path, `amsgrad = false`); at
/// step `t` (from 1), per element, in the element type:
///
/// ```text
/// g ← g + weight_decay · w
/// m ← m + (1 − β₁) · (g − m)                (torch's lerp; for β₁ ≤ ½
///                                            g − (g − m) · (1 − (1 − β₁)))
/// v ← β₂ · v + (1 − β₂) · g · g
/// w ← w − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// with the bias corrections `1 − βᵗ`, their square root and
/// `lr / (1 − β₁ᵗ)` computed in `f64`, as PyTorch computes them in Python
/// floats.
///
/// The element-wise update runs on the host (the buffers are copied down,
/// updated and copied back), so it is the same on every backend; the
/// backends have no fused Adam kernel yet.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::optim::{Adam, AdamConfig, Optimizer};
/// let b = Reference::<f64>::new();
/// let mut adam = Adam::new(&b, &[1], AdamConfig::new(0.1)?)?;
/// let mut w = vec![1.0];
/// adam.step(&b, &mut [&mut w], &[&vec![4.0]])?;
/// // the first step moves every element by about lr, whatever the gradient
/// assert!((w[0] - 0.9).abs() < 1e-8);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Adam<B: TensorBackend> {
    config: AdamConfig,
    sizes: Vec<usize>,
    m: Vec<B::Buffer>,
    v: Vec<B::Buffer>,
    steps: u64,
}

impl<B: TensorBackend> core::fmt::Debug for Adam<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Adam")
            .field("config", &self.config)
            .field("sizes", &self.sizes)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<B: TensorBackend> Adam<B> {
    /// Zero moments for parameters of `sizes` elements (spec order).
    ///
    /// # Errors
    /// As [`AdamConfig::validate`].
    pub fn new(backend: &B, sizes: &[usize], config: AdamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Adam {
            config,
            sizes: sizes.to_vec(),
            m: zeros(backend, sizes)?,
            v: zeros(backend, sizes)?,
            steps: 0,
        })
    }

    /// The configuration (with the current learning rate).
    #[must_use]
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// The first moments, in parameter order.
    #[must_use]
    pub fn first_moments(&self) -> &[B::Buffer] {
        &self.m
    }

    /// The second moments, in parameter order.
    #[must_use]
    pub fn second_moments(&self) -> &[B::Buffer] {
        &self.v
    }
}

impl<B: TensorBackend> Optimizer<B> for Adam<B> {
    fn step(
        &mut self,
        backend: &B,
        params: &mut [&mut B::Buffer],
        grads: &[&B::Buffer],
    ) -> Result<()> {
        check_bufs(backend, "parameter buffers", &self.sizes, params)?;
        check_bufs(backend, "gradient buffers", &self.sizes, grads)?;
        let c = self.config;
        let t = self.steps + 1;
        // Python's `beta ** step` is C's pow, as is `powf`.
        let bc1 = 1.0 - c.betas.0.powf(t as f64);
        let bc2 = 1.0 - c.betas.1.powf(t as f64);
        let step_size = B::Elem::from_f64(c.lr / bc1);
        let bc2_sqrt = B::Elem::from_f64(bc2.sqrt());
        let e = B::Elem::from_f64;
        let (wd, w1, b2, w2, eps) = (
            e(c.weight_decay),
            e(1.0 - c.betas.0),
            e(c.betas.1),
            e(1.0 - c.betas.1),
            e(c.eps),
        );
        for i in 0..self.sizes.len() {
            let mut w = backend.to_vec(params[i])?;
            let g = backend.to_vec(grads[i])?;
            let mut m = backend.to_vec(&self.m[i])?;
            let mut v = backend.to_vec(&self.v[i])?;
            for (((w, &g), m), v) in w.iter_mut().zip(&g).zip(&mut m).zip(&mut v) {
                let g = if c.weight_decay != 0.0 {
                    g + wd * *w
                } else {
                    g
                };
                // torch.lerp(m, g, w1), both of its branches
                *m = if c.betas.0 > 0.5 {
                    *m + w1 * (g - *m)
                } else {
                    g - (g - *m) * (B::Elem::from_f64(1.0) - w1)
                };
                *v = b2 * *v + w2 * g * g;
                let denom = v.sqrt() / bc2_sqrt + eps;
                *w = *w - step_size * (*m / denom);
            }
            upload_to(backend, &w, params[i])?;
            upload_to(backend, &m, &mut self.m[i])?;
            upload_to(backend, &v, &mut self.v[i])?;
        }
        self.steps = t;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.config.lr = lr;
        Ok(())
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self, backend: &B) -> Result<OptimState<B::Elem>> {
        let mut buffers = download(backend, &self.m)?;
        buffers.extend(download(backend, &self.v)?);
        Ok(OptimState {
            kind: "adam",
            step: self.steps,
            buffers,
        })
    }

    fn load_state(&mut self, backend: &B, state: &OptimState<B::Elem>) -> Result<()> {
        check_state(state, "adam", &self.sizes, 2)?;
        let n = self.sizes.len();
        upload_into(backend, &state.buffers[..n], &mut self.m)?;
        upload_into(backend, &state.buffers[n..], &mut self.v)?;
        self.steps = state.step;
        Ok(())
    }
}
