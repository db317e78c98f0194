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
mod optimizer;
mod regime;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use ascent::Ascent;
pub use clip::{clip_grad_norm, global_norm};
pub use milestones::Milestones;
pub use regime::{LrRegime, LrScaling};
pub use sgd::SgdMomentum;

pub use optimizer::{OptimState, Optimizer};
