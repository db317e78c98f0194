//! Layers with forward and backward passes, generic over a
//! [`smoothout::TensorBackend`].
//!
//! Every layer implements [`Layer`]: `forward` maps an input buffer and its
//! shape to an output buffer and shape, caching what `backward` needs;
//! `backward` maps `∂L/∂y` to `∂L/∂x` and **adds** the parameter gradients
//! into the layer's gradient buffers (call [`Layer::zero_grad`] between
//! steps). Parameters and gradients are listed in the order of
//! [`Layer::specs`], whose [`ParamSpec`]s tell SmoothOut what to perturb
//! (weights and biases by default, BatchNorm's γ and β not).
//!
//! | layer | input shape | output shape | parameters |
//! |---|---|---|---|
//! | [`Linear`] | `[N, …]` (flattened to `[N, in]`) | `[N, out]` | weight `[out, in]`, bias `[out]` |
//! | [`Conv2d`] | `[N, C, H, W]` | `[N, F, H', W']` | weight `[F, C, k, k]`, bias `[F]` |
//! | [`BatchNorm`] | `[N, C]` or `[N, C, H, W]` | same | γ `[C]`, β `[C]` |
//! | [`Relu`] | any | same | — |
//! | [`MaxPool2d`], [`AvgPool2d`] | `[N, C, H, W]` | `[N, C, H', W']` | — |
//! | [`Dropout`] | any | same | — |
//! | [`BasicBlock`] | `[N, C, H, W]` | `[N, F, H/s, W/s]` | two convs, two BNs, optional projection |
//!
//! [`SoftmaxCrossEntropy`] is the loss: logits and labels in, the mean loss
//! and `∂L/∂logits` out.
//!
//! Initialisation follows PyTorch's defaults (Kaiming-uniform with
//! `a = √5`, so weights and biases are `U(−1/√fan_in, 1/√fan_in)`), drawn
//! from a seeded xoshiro256++ ([`crate::rng::seeded_rng`]).
//!
//! # Design notes
//!
//! * Parameters and gradients are returned as vectors of references rather
//!   than slices, so that a composite layer ([`BasicBlock`]) can list its
//!   sub-layers' buffers without owning them in one array.
//!   [`Layer::params_and_grads_mut`] lends both lists at once, so that the
//!   optimisers ([`crate::optim`]) and gradient clipping update a network's
//!   own buffers in place, in spec order (issue 4 point 3).
//! * `backward` needs a train-mode `forward` first (eval mode caches
//!   nothing, except that Dropout in eval mode passes gradients through).
//!   Called without one it returns [`Error::InvalidSetting`] named
//!   `"backward before forward"`.
//! * [`Conv2d`] runs each product over the images as one batched GEMM
//!   ([`smoothout::GemmBatch`]: strided for `y` and `dcol`, summed for
//!   `dW`); [`BatchNorm`]'s ghost batches are cut out with
//!   [`smoothout::BufferOps::copy_range`].
//!
//! # Example
//!
//! ```
//! use smoothout::Reference;
//! use smoothout_models::layers::{Layer, Linear, Relu, SoftmaxCrossEntropy};
//!
//! let b = Reference::<f64>::new();
//! let mut fc = Linear::new(&b, 4, 3, 0)?;
//! let mut relu = Relu::new();
//! let x = vec![0.5; 2 * 4];
//! let (h, shape) = fc.forward(&b, &x, &[2, 4], true)?;
//! let (z, shape) = relu.forward(&b, &h, &shape, true)?;
//! assert_eq!(shape, [2, 3]);
//! let (loss, dz) = SoftmaxCrossEntropy::new(3).forward(&b, &z, &shape, &[0, 2])?;
//! assert!(loss > 0.0);
//! fc.zero_grad(&b)?;
//! let dx = fc.backward(&b, &relu.backward(&b, &dz)?)?;
//! assert_eq!(dx.len(), 8);
//! # Ok::<(), smoothout::Error>(())
//! ```

mod batch_norm;
mod conv2d;
mod dropout;
mod linear;
mod loss;
mod pool;
mod relu;
mod residual;

pub use batch_norm::BatchNorm;
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use linear::Linear;
pub use loss::SoftmaxCrossEntropy;
pub use pool::{AvgPool2d, MaxPool2d};
pub use relu::Relu;
pub use residual::BasicBlock;

use rand_core::RngCore;
use smoothout::{Error, ParamSpec, Real, Result, TensorBackend};

/// A layer: forward, backward, and its parameters in spec order.
pub trait Layer<B: TensorBackend> {
    /// `y = f(x)` for `x` of `shape`; returns `y` and its shape. In train
    /// mode the layer caches what [`Layer::backward`] needs (and BatchNorm
    /// uses batch statistics, Dropout drops).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] or [`Error::InvalidSetting`] when `shape`
    /// does not fit the layer or `x`.
    fn forward(
        &mut self,
        b: &B,
        x: &B::Buffer,
        shape: &[usize],
        train: bool,
    ) -> Result<(B::Buffer, Vec<usize>)>;

    /// `∂L/∂x` from `dy = ∂L/∂y` of the last forward, adding `∂L/∂θ` into
    /// the gradient buffers.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] named `"backward before forward"` when no
    /// forward was cached; [`Error::LengthMismatch`] for a `dy` of the wrong
    /// length.
    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer>;

    /// [`Layer::backward`] for a caller with no use for `∂L/∂x` (the first
    /// layer of a network: the data takes no gradient). It adds the same
    /// `∂L/∂θ`, bit for bit, and may skip the input gradient's work; the
    /// default computes it and drops it.
    ///
    /// # Errors
    /// As [`Layer::backward`].
    fn backward_params(&mut self, b: &B, dy: &B::Buffer) -> Result<()> {
        self.backward(b, dy).map(drop)
    }

    /// What each parameter is, in the order of [`Layer::params`].
    fn specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    /// The parameters, in spec order.
    fn params(&self) -> Vec<&B::Buffer> {
        Vec::new()
    }
    /// The parameters, mutably, in spec order: the first list of
    /// [`Layer::params_and_grads_mut`].
    fn params_mut(&mut self) -> Vec<&mut B::Buffer> {
        self.params_and_grads_mut().0
    }
    /// The accumulated gradients, in spec order.
    fn grads(&self) -> Vec<&B::Buffer> {
        Vec::new()
    }
    /// The gradients, mutably, in spec order: the second list of
    /// [`Layer::params_and_grads_mut`].
    fn grads_mut(&mut self) -> Vec<&mut B::Buffer> {
        self.params_and_grads_mut().1
    }
    /// Every parameter and every gradient, mutably at once (a split
    /// borrow), both in spec order: `i`-th gradient belongs to the `i`-th
    /// parameter, as in [`Layer::params`] and [`Layer::grads`]. This is what
    /// the optimisers, gradient clipping and SmoothOut's step work on in
    /// place. A layer with parameters implements this one method;
    /// [`Layer::params_mut`] and [`Layer::grads_mut`] are its halves.
    fn params_and_grads_mut(&mut self) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
        (Vec::new(), Vec::new())
    }
    /// State that is not a parameter but must survive a checkpoint
    /// (BatchNorm's running mean and variance), named like the specs
    /// (`bn1.running_mean`).
    fn buffers(&self) -> Vec<(String, &B::Buffer)> {
        Vec::new()
    }
    /// [`Layer::buffers`], mutably (to load a checkpoint).
    fn buffers_mut(&mut self) -> Vec<(String, &mut B::Buffer)> {
        Vec::new()
    }
    /// Freezes (or thaws) the layer's inference behaviour: while frozen, a
    /// train-mode forward normalises with BatchNorm's running statistics
    /// (leaving them unchanged) and lets Dropout pass everything, yet still
    /// caches what [`Layer::backward`] needs — so the gradient is that of
    /// the eval-mode loss with respect to the parameters (for sharpness and
    /// loss landscapes). Layers without such behaviour ignore it.
    fn set_frozen(&mut self, _frozen: bool) {}
    /// Sets every gradient to zero.
    ///
    /// # Errors
    /// As the backend's `fill`.
    fn zero_grad(&mut self, b: &B) -> Result<()> {
        for g in self.grads_mut() {
            b.fill(B::Elem::from_f64(0.0), g)?;
        }
        Ok(())
    }
}

/// [`Layer::params_and_grads_mut`] of a container: its children's lists,
/// concatenated in the children's order.
pub(crate) fn concat_params_and_grads<'a, B: TensorBackend + 'a>(
    children: impl IntoIterator<Item = &'a mut (dyn Layer<B> + 'a)>,
) -> (Vec<&'a mut B::Buffer>, Vec<&'a mut B::Buffer>) {
    let (mut params, mut grads) = (Vec::new(), Vec::new());
    for child in children {
        let (p, g) = child.params_and_grads_mut();
        params.extend(p);
        grads.extend(g);
    }
    (params, grads)
}

/// A copy of `x` for the backward pass, written over `old` (the last
/// step's copy) when its length fits, so that a steady training loop does
/// not allocate and fault it in again.
pub(crate) fn keep_copy<B: TensorBackend>(
    b: &B,
    x: &B::Buffer,
    old: Option<B::Buffer>,
) -> Result<B::Buffer> {
    let mut kept = reuse(b, old, b.len(x))?;
    b.copy(x, &mut kept)?;
    Ok(kept)
}

/// `old` when it holds `len` elements (its contents to be overwritten), a
/// new buffer of zeros otherwise.
pub(crate) fn reuse<B: TensorBackend>(
    b: &B,
    old: Option<B::Buffer>,
    len: usize,
) -> Result<B::Buffer> {
    match old {
        Some(old) if b.len(&old) == len => Ok(old),
        _ => b.zeros(len),
    }
}

pub(crate) fn no_cache() -> Error {
    Error::InvalidSetting {
        name: "backward before forward",
        value: 0.0,
        expected: "preceded by a forward pass in train mode",
    }
}

pub(crate) fn bad_shape(what: &'static str, got: usize) -> Error {
    Error::InvalidSetting {
        name: what,
        value: got as f64,
        expected: "the dimensions the layer was built for",
    }
}

/// Product of `shape`, checked against `len`.
pub(crate) fn numel(what: &'static str, shape: &[usize], len: usize) -> Result<usize> {
    let n = shape
        .iter()
        .try_fold(1usize, |p, &d| p.checked_mul(d))
        .ok_or_else(|| bad_shape(what, usize::MAX))?;
    smoothout::tensor::check_len(what, n, len)?;
    Ok(n)
}

/// Uniform in `[−bound, bound)` from the top 53 bits of a draw.
pub(crate) fn uniform_init<B: TensorBackend>(
    b: &B,
    len: usize,
    bound: f64,
    rng: &mut impl RngCore,
) -> Result<B::Buffer> {
    let v: Vec<B::Elem> = (0..len)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            B::Elem::from_f64((2.0 * u - 1.0) * bound)
        })
        .collect();
    b.upload(&v)
}
