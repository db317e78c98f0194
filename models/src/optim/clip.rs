//! Gradient clipping by global norm.

use core::borrow::{Borrow, BorrowMut};

use smoothout::tensor::TensorBackend;
use smoothout::{Real, Result};

use super::optimizer::invalid;

/// The L2 norm of all buffers together, `√(Σᵢ ‖bᵢ‖²)`, each buffer's norm
/// computed by the backend in `f64` ([`smoothout::NormOps::row_norms`]).
/// Empty buffers count as zero. The buffers may be owned (`&[B::Buffer]`)
/// or borrowed (`&[&B::Buffer]`, `&[&mut B::Buffer]`, as
/// [`crate::layers::Layer::params_and_grads_mut`] lends them).
///
/// # Errors
/// Backend errors.
pub fn global_norm<B: TensorBackend, G: Borrow<B::Buffer>>(backend: &B, bufs: &[G]) -> Result<f64> {
    let mut sq = 0.0;
    for buf in bufs {
        let buf = buf.borrow();
        let n = backend.len(buf);
        if n == 0 {
            continue;
        }
        let mut norm = [0.0];
        backend.row_norms(buf, n, &mut norm)?;
        sq += norm[0] * norm[0];
    }
    Ok(sq.sqrt())
}

/// Clips gradients by their global L2 norm, like
/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: with
/// `total = global_norm(grads)` and `coef = max_norm / (total + 1e-6)`,
/// every gradient is multiplied by `coef` when `coef < 1`, and left as it is
/// otherwise. Returns `total`, the norm before clipping.
///
/// The gradients are scaled in place, wherever they live: `grads` holds
/// the buffers themselves (`&mut [B::Buffer]`) or mutable references to
/// them (`&mut [&mut B::Buffer]`, e.g. a network's gradients as
/// [`crate::layers::Layer::params_and_grads_mut`] lends them).
///
/// A non-finite total (an overflowing or NaN gradient) is returned as it is
/// and the gradients are not touched, so the caller can skip the step
/// (PyTorch would multiply them by NaN).
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::optim::clip_grad_norm;
/// let b = Reference::<f64>::new();
/// let mut g = vec![vec![3.0], vec![4.0]];
/// assert_eq!(clip_grad_norm(&b, &mut g, 10.0)?, 5.0);   // below: unchanged
/// assert_eq!(g, [[3.0], [4.0]]);
/// clip_grad_norm(&b, &mut g, 1.0)?;
/// assert!((g[0][0] - 0.6).abs() < 1e-6 && (g[1][0] - 0.8).abs() < 1e-6);
/// assert!(clip_grad_norm(&b, &mut g, 0.0).is_err());
/// # Ok::<(), smoothout::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) unless `max_norm` is finite and > 0; backend
/// errors.
pub fn clip_grad_norm<B: TensorBackend, G: BorrowMut<B::Buffer>>(
    backend: &B,
    grads: &mut [G],
    max_norm: f64,
) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return invalid("max gradient norm", max_norm, "finite and > 0");
    }
    let total = global_norm(backend, grads)?;
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = B::Elem::from_f64(coef);
        for g in grads.iter_mut() {
            backend.scale(c, g.borrow_mut())?;
        }
    }
    Ok(total)
}
