//! The [`Optimizer`] trait, an optimiser's exported state ([`OptimState`]),
//! and the buffer and argument checks the optimisers share.

use core::borrow::Borrow;

use smoothout::tensor::TensorBackend;
use smoothout::{Error, Result};

/// An optimiser's state as plain host data: what a checkpoint stores to
/// resume bit-exactly.
///
/// `buffers` holds, per kind, one host copy of each per-parameter buffer in
/// parameter order: [`SgdMomentum`](super::SgdMomentum) the velocities (`n` buffers), [`Adam`](super::Adam)
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
    /// Sets the learning rate (from an [`LrRegime`](super::LrRegime)).
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

/// The error for a setting `name` whose `value` is not what `expected`
/// says.
pub(crate) fn invalid<T>(name: &'static str, value: f64, expected: &'static str) -> Result<T> {
    Err(Error::InvalidSetting {
        name,
        value,
        expected,
    })
}

pub(crate) fn check_lr(lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        invalid("learning rate", lr, "finite and >= 0")
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
        return invalid(
            "optimiser state kind",
            f64::NAN,
            "the kind of the optimiser it is loaded into",
        );
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
