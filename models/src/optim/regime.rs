//! Learning-rate regimes as data.

use smoothout::Result;

use super::milestones::Milestones;
use super::optimizer::invalid;

/// How the learning rate grows with the batch when ghost batches of size
/// `ghost` make up a batch of size `batch` (the reference code's
/// `lr_bb_fix` is [`LrScaling::Sqrt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LrScaling {
    /// Unchanged.
    #[default]
    None,
    /// `lr · batch / ghost`.
    Linear,
    /// `lr · (batch / ghost)^0.5`.
    Sqrt,
}

impl LrScaling {
    /// The factor for `batch` over `ghost` (ratio in `f64`, the square root
    /// as Python's `** 0.5`).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) when either size is 0.
    pub fn factor(self, batch: usize, ghost: usize) -> Result<f64> {
        if batch == 0 {
            return invalid("batch size", 0.0, "at least 1");
        }
        if ghost == 0 {
            return invalid("ghost batch size", 0.0, "at least 1");
        }
        let ratio = batch as f64 / ghost as f64;
        Ok(match self {
            LrScaling::None => 1.0,
            LrScaling::Linear => ratio,
            LrScaling::Sqrt => ratio.powf(0.5),
        })
    }
}

/// A learning-rate regime: piecewise constant in epochs ("from epoch `e`:
/// lr `x`", the reference code's `regime` dictionary), optionally scaled by
/// the batch size, stretched in epochs (train longer), with a linear
/// warm-up over the first optimiser steps:
///
/// ```text
/// lr(epoch, step) = x_e · min(1, (step + 1) / warmup_steps)
/// x_e = the rate of the last point whose epoch ≤ epoch
/// ```
///
/// (`step` counts optimiser updates from 0 across epochs; without warm-up
/// the factor is 1.)
///
/// ```
/// use smoothout_models::optim::{LrRegime, LrScaling};
/// // ResNet-style: 0.1, then ÷10 at epochs 81 and 122
/// let r = LrRegime::steps(&[(0, 0.1), (81, 0.01), (122, 0.001)])?;
/// assert_eq!(r.lr(80, 0)?, 0.1);
/// assert_eq!(r.lr(81, 0)?, 0.01);
/// // batch 2048 in ghost batches of 128: lr_bb_fix and regime_bb_fix
/// let big = r.scaled(LrScaling::Sqrt, 2048, 128)?
///     .train_longer(LrRegime::batch_multiplier(2048, 128)?)?;
/// assert_eq!(big.lr(0, 0)?, 0.1 * 4.0);
/// assert_eq!(big.points()[1].0, 81 * 16);
/// assert_eq!(big.total_epochs(200)?, 3200);
/// // linear warm-up over 4 steps
/// let w = LrRegime::constant(0.4)?.with_warmup(4);
/// assert_eq!(w.lr(0, 0)?, 0.1);
/// assert_eq!(w.lr(0, 3)?, 0.4);
/// assert!(LrRegime::steps(&[(1, 0.1)]).is_err());   // must start at epoch 0
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LrRegime {
    points: Vec<(u64, f64)>,
    warmup_steps: u64,
    epoch_multiplier: u64,
}

impl LrRegime {
    /// One rate throughout.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) for a negative, NaN or infinite rate.
    pub fn constant(lr: f64) -> Result<Self> {
        Self::steps(&[(0, lr)])
    }

    /// A step regime: `(from_epoch, lr)` pairs.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) when there are no points, the first is not
    /// at epoch 0, the epochs do not strictly increase, or a rate is
    /// negative, NaN or infinite.
    pub fn steps(points: &[(u64, f64)]) -> Result<Self> {
        match points.first() {
            None => return invalid("regime points", 0.0, "at least one (epoch, lr) pair"),
            Some(&(e, _)) if e != 0 => {
                return invalid("regime first epoch", e as f64, "0");
            }
            Some(_) => {}
        }
        for w in points.windows(2) {
            if w[1].0 <= w[0].0 {
                return invalid("regime epoch", w[1].0 as f64, "strictly increasing");
            }
        }
        for &(_, lr) in points {
            super::optimizer::check_lr(lr)?;
        }
        Ok(LrRegime {
            points: points.to_vec(),
            warmup_steps: 0,
            epoch_multiplier: 1,
        })
    }

    /// `lr`, divided by 10 at half of `epochs` and again at three quarters
    /// (points that coincide are merged; for one epoch, a constant rate).
    ///
    /// ```
    /// use smoothout_models::optim::LrRegime;
    /// assert_eq!(LrRegime::decay(0.1, 10)?.points(), [(0, 0.1), (5, 0.01), (7, 0.001)]);
    /// assert_eq!(LrRegime::decay(0.1, 1)?.points(), [(0, 0.1)]);
    /// # Ok::<(), smoothout::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) for a negative, NaN or infinite rate.
    pub fn decay(lr: f64, epochs: u64) -> Result<Self> {
        super::optimizer::check_lr(lr)?;
        Ok(Self::decay_points(lr, epochs))
    }

    /// `lr`, divided by 10 at each of `milestones` in a run of `epochs`
    /// epochs (see [`Milestones::epochs`]):
    ///
    /// ```text
    /// points = (0, lr), (m_1, lr / 10), (m_2, lr / 100), …
    /// ```
    ///
    /// [`Milestones::default`] gives [`LrRegime::decay`] exactly.
    ///
    /// ```
    /// use smoothout_models::optim::{LrRegime, Milestones};
    /// let r = LrRegime::milestones(0.1, 200, &Milestones::Epochs(vec![81, 122]))?;
    /// assert_eq!(r.points(), [(0, 0.1), (81, 0.01), (122, 0.001)]);
    /// assert_eq!(
    ///     LrRegime::milestones(0.1, 10, &Milestones::default())?,
    ///     LrRegime::decay(0.1, 10)?
    /// );
    /// # Ok::<(), smoothout::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) for a negative, NaN or infinite rate, and
    /// as [`Milestones::epochs`].
    pub fn milestones(lr: f64, epochs: u64, milestones: &Milestones) -> Result<Self> {
        super::optimizer::check_lr(lr)?;
        let mut points = vec![(0, lr)];
        // 10^k is exact in f64 up to k = 22, so the k-th rate is lr / 10^k
        // rounded once, as `decay` computes it
        let mut divisor = 1.0;
        for e in milestones.epochs(epochs)? {
            divisor *= 10.0;
            points.push((e, lr / divisor));
        }
        Self::steps(&points)
    }

    /// [`LrRegime::decay`] for a rate already checked.
    pub(crate) fn decay_points(lr: f64, epochs: u64) -> Self {
        let half = epochs / 2;
        // ⌊3·epochs / 4⌋ without overflow for any epochs
        let three_quarters = (u128::from(epochs) * 3 / 4) as u64;
        let mut points = vec![(0, lr)];
        if half > 0 {
            points.push((half, lr / 10.0));
        }
        if three_quarters > half {
            points.push((three_quarters, lr / 100.0));
        }
        LrRegime {
            points,
            warmup_steps: 0,
            epoch_multiplier: 1,
        }
    }

    /// Every rate multiplied by `scaling`'s factor for `batch` over `ghost`.
    ///
    /// # Errors
    /// As [`LrScaling::factor`]; [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) when a scaled
    /// rate overflows.
    pub fn scaled(mut self, scaling: LrScaling, batch: usize, ghost: usize) -> Result<Self> {
        let f = scaling.factor(batch, ghost)?;
        for p in &mut self.points {
            p.1 *= f;
            super::optimizer::check_lr(p.1)?;
        }
        Ok(self)
    }

    /// Train longer: every epoch boundary (and [`LrRegime::total_epochs`])
    /// multiplied by `multiplier`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) for `multiplier == 0` or an epoch that
    /// overflows.
    pub fn train_longer(mut self, multiplier: u64) -> Result<Self> {
        if multiplier == 0 {
            return invalid("epoch multiplier", 0.0, "at least 1");
        }
        for p in &mut self.points {
            p.0 = match p.0.checked_mul(multiplier) {
                Some(e) => e,
                None => return invalid("epoch multiplier", multiplier as f64, "small enough"),
            };
        }
        self.epoch_multiplier = match self.epoch_multiplier.checked_mul(multiplier) {
            Some(m) => m,
            None => return invalid("epoch multiplier", multiplier as f64, "small enough"),
        };
        Ok(self)
    }

    /// The reference code's `regime_bb_fix` multiplier: `⌈batch / ghost⌉`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) when either size is 0.
    pub fn batch_multiplier(batch: usize, ghost: usize) -> Result<u64> {
        LrScaling::None.factor(batch, ghost)?;
        Ok(batch.div_ceil(ghost) as u64)
    }

    /// With a linear warm-up over the first `steps` optimiser updates (0: none).
    #[must_use]
    pub fn with_warmup(mut self, steps: u64) -> Self {
        self.warmup_steps = steps;
        self
    }

    /// The `(from_epoch, lr)` points after scaling and stretching.
    #[must_use]
    pub fn points(&self) -> &[(u64, f64)] {
        &self.points
    }

    /// Warm-up length in steps.
    #[must_use]
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }

    /// The product of every [`LrRegime::train_longer`] multiplier.
    #[must_use]
    pub fn epoch_multiplier(&self) -> u64 {
        self.epoch_multiplier
    }

    /// `base_epochs` × the epoch multiplier.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) on overflow.
    pub fn total_epochs(&self, base_epochs: u64) -> Result<u64> {
        match base_epochs.checked_mul(self.epoch_multiplier) {
            Some(e) => Ok(e),
            None => invalid("epochs", base_epochs as f64, "small enough"),
        }
    }

    /// The step regime's rate at `epoch` (no warm-up).
    #[must_use]
    pub fn epoch_lr(&self, epoch: u64) -> f64 {
        self.points
            .iter()
            .take_while(|p| p.0 <= epoch)
            .last()
            .map_or(self.points[0].1, |p| p.1)
    }

    /// The rate for optimiser step `step` (from 0) in `epoch`.
    ///
    /// # Errors
    /// None for a regime built by this type's constructors; `Result` so
    /// that callers can pass the rate straight on.
    pub fn lr(&self, epoch: u64, step: u64) -> Result<f64> {
        let lr = self.epoch_lr(epoch);
        if self.warmup_steps == 0 || step >= self.warmup_steps {
            return Ok(lr);
        }
        Ok(lr * ((step + 1) as f64 / self.warmup_steps as f64))
    }
}
