//! Where a step regime divides the learning rate by 10.

use smoothout::Result;

use super::optimizer::invalid;

/// The epochs at which [`crate::optim::LrRegime::milestones`] divides the
/// rate by 10: whole epochs, or fractions of the run.
///
/// A fraction `n / d` of a run of `epochs` epochs is the epoch
///
/// ```text
/// ⌊epochs · n / d⌋      (integer arithmetic, exact)
/// ```
///
/// so `0.75` of 10 epochs is epoch 7 and `0.29` of 100 is 29 (no floating
/// point rounding). In a short run two fractions can land on the same
/// epoch, or one on epoch 0: such a milestone is dropped, so the rate
/// falls once at each distinct epoch above 0 ([`LrRegime::decay`]'s rule;
/// the default reproduces it).
///
/// ```
/// use smoothout_models::optim::Milestones;
/// assert_eq!(Milestones::default().epochs(10)?, [5, 7]);
/// assert_eq!(Milestones::default().epochs(2)?, [1]);   // 1 and 1 merge
/// assert_eq!(Milestones::Fractions(vec![(29, 100)]).epochs(100)?, [29]);
/// assert_eq!(Milestones::Epochs(vec![30, 60]).epochs(90)?, [30, 60]);
/// assert!(Milestones::Epochs(vec![30, 60]).epochs(60).is_err()); // 60 is never reached
/// # Ok::<(), smoothout::Error>(())
/// ```
///
/// [`LrRegime::decay`]: crate::optim::LrRegime::decay
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Milestones {
    /// At these epochs (0-based: epoch `e` is the `e + 1`-th), strictly
    /// increasing, each at least 1 and below the run's epochs.
    Epochs(Vec<u64>),
    /// At these fractions `(n, d)` = `n / d` of the run, strictly
    /// increasing, each strictly between 0 and 1.
    Fractions(Vec<(u64, u64)>),
}

impl Default for Milestones {
    /// Half and three quarters of the run ([`LrRegime::decay`]'s).
    ///
    /// [`LrRegime::decay`]: crate::optim::LrRegime::decay
    fn default() -> Self {
        Milestones::Fractions(vec![(1, 2), (3, 4)])
    }
}

impl Milestones {
    /// The distinct epochs, in a run of `epochs` epochs, where the rate
    /// drops (fractions that land on epoch 0 or on the epoch before them
    /// are left out; the list may then be empty).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) when the list is empty, not strictly
    /// increasing, or a milestone is out of range: an epoch of 0 or of at
    /// least `epochs`, a fraction of 0 or at least 1 (or a zero
    /// denominator).
    pub fn epochs(&self, epochs: u64) -> Result<Vec<u64>> {
        match self {
            Milestones::Epochs(list) => {
                if list.is_empty() {
                    return invalid("milestones", 0.0, "at least one epoch or fraction");
                }
                for &e in list {
                    if e == 0 || e >= epochs {
                        return invalid(
                            "milestone epoch",
                            e as f64,
                            "at least 1 and below the number of epochs",
                        );
                    }
                }
                for w in list.windows(2) {
                    if w[1] <= w[0] {
                        return invalid("milestone epoch", w[1] as f64, "strictly increasing");
                    }
                }
                Ok(list.clone())
            }
            Milestones::Fractions(list) => {
                if list.is_empty() {
                    return invalid("milestones", 0.0, "at least one epoch or fraction");
                }
                for &(n, d) in list {
                    if n == 0 || n >= d {
                        return invalid(
                            "milestone fraction",
                            n as f64 / d as f64,
                            "strictly between 0 and 1",
                        );
                    }
                }
                for w in list.windows(2) {
                    let ((n0, d0), (n1, d1)) = (w[0], w[1]);
                    if u128::from(n1) * u128::from(d0) <= u128::from(n0) * u128::from(d1) {
                        return invalid(
                            "milestone fraction",
                            n1 as f64 / d1 as f64,
                            "strictly increasing",
                        );
                    }
                }
                let mut out: Vec<u64> = Vec::with_capacity(list.len());
                for &(n, d) in list {
                    // n < d, so the quotient is below `epochs` and fits
                    let e = (u128::from(epochs) * u128::from(n) / u128::from(d)) as u64;
                    if e > out.last().copied().unwrap_or(0) {
                        out.push(e);
                    }
                }
                Ok(out)
            }
        }
    }
}
