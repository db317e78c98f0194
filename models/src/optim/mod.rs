//! Optimisers, gradient clipping and learning-rate regimes, generic over any
//! [`smoothout::tensor::TensorBackend`].
//!
//! Every optimiser works on the parameter and gradient buffer lists in
//! [`smoothout::ParamSpec`] order (the order a network lists its specs in),
//! **in place**: it takes the buffers by reference, so a network's own
//! buffers — both lists lent at once by
//! [`crate::layers::Layer::params_and_grads_mut`] — are updated where they
//! live, with no copy and no moving out. It follows PyTorch's formulas,
//! and exports its state — momentum buffers, Adam moments, the step count —
//! as plain host buffers and scalars
//! ([`OptimState`]) so that a checkpoint can resume bit-exactly.
//!
//! * [`SgdMomentum`]: SGD with heavy-ball or Nesterov momentum and coupled
//!   weight decay, configured by [`smoothout::Sgd`]. Its plain (non-Nesterov)
//!   step *is* the backend's fused [`smoothout::UpdateOps::denoise_sgd`]
//!   without noise, so it gives the same bits as
//!   [`smoothout::SmoothOut::denoise_sgd`] on unperturbed parameters, and its
//!   velocity buffers can be handed to the fused SmoothOut step
//!   ([`SgdMomentum::velocity_mut`]).
//! * [`Adam`] with [`AdamConfig`]: bias-corrected Adam with optional coupled
//!   (L2) weight decay.
//! * [`clip_grad_norm`]: scales the gradients so that their global L2 norm is
//!   at most `max_norm` and returns the norm before clipping, like
//!   `torch.nn.utils.clip_grad_norm_` (the reference code clips at 5).
//! * [`Ascent`]: the perturbation ε of SAM and ASAM, added to the
//!   parameters in place from their gradients.
//! * [`LrRegime`]: the learning rate as data — step regimes "from epoch `e`:
//!   lr `x`" as in the authors' `main_gbn.py`, scaled linearly or by the
//!   square root of batch over ghost-batch size ([`LrScaling`]), linear
//!   warm-up over `k` steps, and train-longer (epoch multiplier);
//!   [`Milestones`] says where a step regime drops ÷10 (whole epochs or
//!   fractions of the run).
//!
//! Invalid settings are [`smoothout::Error::InvalidSetting`] (naming the
//! setting); buffer lists of the wrong length or shape are
//! [`smoothout::Error::LengthMismatch`].
//!
//! ```
//! use smoothout::{Reference, Sgd};
//! use smoothout_models::optim::{clip_grad_norm, LrRegime, Optimizer, SgdMomentum};
//!
//! let b = Reference::<f64>::new();
//! let (mut w0, mut w1) = (vec![1.0, -2.0], vec![0.5]);
//! let (mut g0, mut g1) = (vec![3.0, 0.0], vec![4.0]);
//! let regime = LrRegime::steps(&[(0, 0.1), (2, 0.01)])?;
//! let mut opt = SgdMomentum::new(&b, &[2, 1], Sgd::new(0.1, 0.9, 0.0)?, false)?;
//!
//! // wherever the buffers live (a network lends its own by
//! // `params_and_grads_mut`), the lists hold references to them
//! let norm = clip_grad_norm(&b, &mut [&mut g0, &mut g1], 2.5)?; // ‖(3, 0, 4)‖ = 5 → halved
//! assert_eq!(norm, 5.0);
//! opt.set_lr(regime.lr(0, 0)?)?;
//! opt.step(&b, &mut [&mut w0, &mut w1], &[&g0, &g1])?;
//! assert!((w1[0] - (0.5 - 0.1 * 2.0)).abs() < 1e-6);
//! assert_eq!(opt.state(&b)?.step, 1);
//! # Ok::<(), smoothout::Error>(())
//! ```

mod adam;
mod ascent;
mod clip;
mod milestones;
mod regime;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use ascent::Ascent;
pub use clip::{clip_grad_norm, global_norm};
pub use milestones::Milestones;
pub use regime::{LrRegime, LrScaling};
pub use sgd::SgdMomentum;

use core::borrow::Borrow;

use smoothout::tensor::TensorBackend;
use smoothout::{Error, Result};

/// An optimiser's state as plain host data: what a checkpoint stores to
/// resume bit-exactly.
///
/// `buffers` holds, per kind, one host copy of each per-parameter buffer in
/// parameter order: [`SgdMomentum`] the velocities (`n` buffers), [`Adam`]
/// the first moments then the second moments (`2n` buffers). The learning
/// rate is not state: it comes from the regime.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState<E> {
    /// Which optimiser wrote it: `"sgd"`, `"nesterov"` or `"adam"`.
    pub kind: &'static str,
    /// Updates taken so far (Adam's bias correction reads it).
    pub step: u64,
    /// The per-parameter buffers, as described above.
    pub buffers: Vec<Vec<E>>,
}

/// What every optimiser here does.
pub trait Optimizer<B: TensorBackend> {
    /// One update, in place: `*params[i]` moves along `*grads[i]` (equal
    /// lengths, in spec order). The gradients are not modified. Nothing is
    /// changed when the lists do not fit.
    ///
    /// A network's lists come from
    /// [`crate::layers::Layer::params_and_grads_mut`]; owned buffers are
    /// lent as `v.iter_mut().collect::<Vec<_>>()` and
    /// `g.iter().collect::<Vec<_>>()`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when the lists or a buffer do not match the
    /// sizes the optimiser was built for; backend errors.
    fn step(
        &mut self,
        backend: &B,
        params: &mut [&mut B::Buffer],
        grads: &[&B::Buffer],
    ) -> Result<()>;
    /// The learning rate of the next step.
    fn lr(&self) -> f64;
    /// Sets the learning rate (from an [`LrRegime`]).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a negative, NaN or infinite rate.
    fn set_lr(&mut self, lr: f64) -> Result<()>;
    /// Updates taken so far.
    fn steps(&self) -> u64;
    /// The state, copied to the host.
    ///
    /// # Errors
    /// Backend errors.
    fn state(&self, backend: &B) -> Result<OptimState<B::Elem>>;
    /// Restores a state written by [`Optimizer::state`] of the same kind and
    /// sizes.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for another kind; [`Error::LengthMismatch`]
    /// for other sizes (nothing is changed then).
    fn load_state(&mut self, backend: &B, state: &OptimState<B::Elem>) -> Result<()>;
}

pub(crate) fn check_lr(lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidSetting {
            name: "learning rate",
            value: lr,
            expected: "finite and >= 0",
        })
    }
}

/// Checks that `bufs` has one buffer per entry of `sizes`, each that long.
pub(crate) fn check_bufs<B: TensorBackend, T: Borrow<B::Buffer>>(
    b: &B,
    what: &'static str,
    sizes: &[usize],
    bufs: &[T],
) -> Result<()> {
    smoothout::tensor::check_len(what, sizes.len(), bufs.len())?;
    for (&n, buf) in sizes.iter().zip(bufs) {
        smoothout::tensor::check_len(what, n, b.len(buf.borrow()))?;
    }
    Ok(())
}

/// Checks a state's kind and buffer sizes against `sizes` (repeated
/// `copies` times) before anything is written.
pub(crate) fn check_state<E>(
    state: &OptimState<E>,
    kind: &'static str,
    sizes: &[usize],
    copies: usize,
) -> Result<()> {
    if state.kind != kind {
        return Err(Error::InvalidSetting {
            name: "optimiser state kind",
            value: f64::NAN,
            expected: "the kind of the optimiser it is loaded into",
        });
    }
    smoothout::tensor::check_len(
        "optimiser state buffers",
        sizes.len() * copies,
        state.buffers.len(),
    )?;
    for (i, buf) in state.buffers.iter().enumerate() {
        smoothout::tensor::check_len("optimiser state buffer", sizes[i % sizes.len()], buf.len())?;
    }
    Ok(())
}

/// Zeroed buffers, one per size.
pub(crate) fn zeros<B: TensorBackend>(b: &B, sizes: &[usize]) -> Result<Vec<B::Buffer>> {
    sizes.iter().map(|&n| b.zeros(n)).collect()
}

/// Host copies of buffers.
pub(crate) fn download<B: TensorBackend>(b: &B, bufs: &[B::Buffer]) -> Result<Vec<Vec<B::Elem>>> {
    bufs.iter().map(|x| b.to_vec(x)).collect()
}

/// Copies host data into existing buffers (keeps their shapes).
pub(crate) fn upload_into<B: TensorBackend>(
    b: &B,
    data: &[Vec<B::Elem>],
    bufs: &mut [B::Buffer],
) -> Result<()> {
    for (d, buf) in data.iter().zip(bufs) {
        upload_to(b, d, buf)?;
    }
    Ok(())
}

/// Copies host data into one existing buffer (keeps its shape).
pub(crate) fn upload_to<B: TensorBackend>(
    b: &B,
    data: &[B::Elem],
    buf: &mut B::Buffer,
) -> Result<()> {
    let tmp = b.upload(data)?;
    b.copy(&tmp, buf)
}
