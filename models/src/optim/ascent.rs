//! The ascent step of SAM and ASAM: the point `w + ε` whose gradient the
//! update uses.

use core::borrow::{Borrow, BorrowMut};

use smoothout::tensor::{check_len, TensorBackend};
use smoothout::{Real, Result};

use super::clip::global_norm;
use super::optimizer::invalid;

/// How a sharpness-aware method picks its perturbation ε from the gradient
/// `g` at `w`.
///
/// * [`Ascent::Sam`] (Foret et al., 2021): `ε = ρ·g/‖g‖`, the steepest
///   ascent of the linearised loss in a ball of radius ρ.
/// * [`Ascent::Asam`] (Kwon et al., 2021): `ε = ρ·T²g/‖Tg‖` with
///   `T = |w| + η` element-wise: the ball is measured relative to each
///   weight's size, so the perturbation scales with the weights.
///
/// The norm runs over all the buffers given together (the parameters a
/// step perturbs). A zero gradient gives ε = 0.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::optim::Ascent;
/// let b = Reference::<f64>::new();
/// let (mut w, g) = (vec![vec![1.0, -2.0]], vec![vec![3.0, 4.0]]);
/// let norm = Ascent::Sam { rho: 0.5 }.perturb(&b, &mut w, &g)?;
/// assert_eq!(norm, 5.0);                       // ‖(3, 4)‖
/// assert_eq!(w[0], [1.0 + 0.5 * 0.6, -2.0 + 0.5 * 0.8]);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ascent {
    /// SAM with radius `rho`.
    Sam {
        /// ρ, finite and ≥ 0.
        rho: f64,
    },
    /// ASAM with radius `rho` and `T = |w| + eta`.
    Asam {
        /// ρ, finite and ≥ 0.
        rho: f64,
        /// η, finite and ≥ 0.
        eta: f64,
    },
}

impl Ascent {
    fn check(&self) -> Result<()> {
        let (rho, eta) = match *self {
            Ascent::Sam { rho } => (rho, 0.0),
            Ascent::Asam { rho, eta } => (rho, eta),
        };
        for (name, value) in [("SAM radius rho", rho), ("ASAM eta", eta)] {
            if !(value.is_finite() && value >= 0.0) {
                return invalid(name, value, "finite and >= 0");
            }
        }
        Ok(())
    }

    /// Adds ε to every buffer of `params`, computed from the gradients
    /// `grads` (equal lengths, in the same order), and returns the norm ε
    /// was divided by: `‖g‖` (SAM) or `‖Tg‖` (ASAM), over all buffers
    /// together. A non-finite norm (an overflowing gradient) is returned
    /// with `params` untouched.
    ///
    /// SAM needs no memory beyond the buffers; ASAM computes `T` for one
    /// parameter at a time, in two scratch buffers of that parameter's
    /// size.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) for a negative or non-finite ρ or η;
    /// [`Error::LengthMismatch`](smoothout::Error::LengthMismatch) when the lists or a pair of buffers differ
    /// in length; backend errors.
    pub fn perturb<B, P, G>(&self, b: &B, params: &mut [P], grads: &[G]) -> Result<f64>
    where
        B: TensorBackend,
        P: BorrowMut<B::Buffer>,
        G: Borrow<B::Buffer>,
    {
        self.check()?;
        check_len("gradient buffers", params.len(), grads.len())?;
        for (p, g) in params.iter().zip(grads) {
            check_len("gradient buffer", b.len(p.borrow()), b.len(g.borrow()))?;
        }
        match *self {
            Ascent::Sam { rho } => {
                let norm = global_norm(b, grads)?;
                if !norm.is_finite() {
                    return Ok(norm);
                }
                let scale = B::Elem::from_f64(if norm > 0.0 { rho / norm } else { 0.0 });
                for (p, g) in params.iter_mut().zip(grads) {
                    b.axpy(scale, g.borrow(), p.borrow_mut())?;
                }
                Ok(norm)
            }
            Ascent::Asam { rho, eta } => {
                let mut sq = 0.0;
                for (p, g) in params.iter().zip(grads) {
                    let tg = t_times(b, p.borrow(), eta, g.borrow(), 1)?;
                    let n = global_norm(b, core::slice::from_ref(&tg))?;
                    b.recycle(tg);
                    sq += n * n;
                }
                let norm = sq.sqrt();
                if !norm.is_finite() {
                    return Ok(norm);
                }
                let scale = B::Elem::from_f64(if norm > 0.0 { rho / norm } else { 0.0 });
                for (p, g) in params.iter_mut().zip(grads) {
                    let t2g = t_times(b, (*p).borrow(), eta, g.borrow(), 2)?;
                    b.axpy(scale, &t2g, p.borrow_mut())?;
                    b.recycle(t2g);
                }
                Ok(norm)
            }
        }
    }
}

/// `Tᵏ ⊙ g` with `T = |w| + η`, for `k` ≥ 1, in a new buffer (|w| as
/// `relu(w) + relu(−w)`, exact).
fn t_times<B: TensorBackend>(
    b: &B,
    w: &B::Buffer,
    eta: f64,
    g: &B::Buffer,
    k: u32,
) -> Result<B::Buffer> {
    let n = b.len(w);
    let (mut t, mut tmp) = (b.for_overwrite(n)?, b.for_overwrite(n)?);
    b.copy(w, &mut tmp)?;
    b.scale(B::Elem::from_f64(-1.0), &mut tmp)?;
    b.relu(&tmp, &mut t)?;
    b.relu(w, &mut tmp)?;
    b.add(&tmp, &mut t)?;
    b.fill(B::Elem::from_f64(eta), &mut tmp)?;
    b.add(&tmp, &mut t)?;
    b.copy(g, &mut tmp)?;
    for _ in 0..k {
        b.mul(&t, &mut tmp)?;
    }
    b.recycle(t);
    Ok(tmp)
}
