//! Noise schedules: how the strength changes over training.

use crate::error::{Error, Result};

/// A multiplier `c(t) ∈ [0, 1]` on the noise strength at update step `t` of
/// `T` total steps, with the formulas of the authors' `--smoothing-type`:
///
/// ```text
/// Constant          c(t) = 1
/// Anneal { index }  c(t) = (1 + t)^(−index / 2)                (authors' default index 0.55)
/// Tanh { scale }    c(t) = (tanh(scale · (t / T − 1/2)) + 1) / 2  (authors' default scale 10)
/// ```
///
/// ```
/// use smoothout::Schedule;
/// let s = Schedule::tanh(10.0)?;
/// assert!(s.coefficient(0, 1000)? < 0.01);
/// assert!((s.coefficient(500, 1000)? - 0.5).abs() < 1e-12);
/// assert_eq!(Schedule::Constant.coefficient(7, 10)?, 1.0);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Schedule {
    /// Full strength throughout.
    #[default]
    Constant,
    /// Decays as a power of the step.
    Anneal {
        /// Exponent (before the square root); finite and ≥ 0.
        index: f64,
    },
    /// Rises from ~0 to ~1 around the middle of training.
    Tanh {
        /// Sharpness of the transition; finite and > 0.
        scale: f64,
    },
}

impl Schedule {
    /// `Anneal { index }`, validated.
    pub fn anneal(index: f64) -> Result<Self> {
        let s = Schedule::Anneal { index };
        s.validate().map(|()| s)
    }

    /// `Tanh { scale }`, validated.
    pub fn tanh(scale: f64) -> Result<Self> {
        let s = Schedule::Tanh { scale };
        s.validate().map(|()| s)
    }

    /// Checks a value that may have been built by hand.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Anneal { index } if index.is_finite() && index >= 0.0 => Ok(()),
            Schedule::Anneal { index } => Err(Error::InvalidSetting {
                name: "anneal index",
                value: index,
                expected: "finite and >= 0",
            }),
            Schedule::Tanh { scale } if scale.is_finite() && scale > 0.0 => Ok(()),
            Schedule::Tanh { scale } => Err(Error::InvalidSetting {
                name: "tanh scale",
                value: scale,
                expected: "finite and > 0",
            }),
        }
    }

    /// The multiplier at `step` of `total_steps` (only `Tanh` reads the total,
    /// which must then be ≥ 1).
    pub fn coefficient(&self, step: u64, total_steps: u64) -> Result<f64> {
        self.validate()?;
        Ok(match *self {
            Schedule::Constant => 1.0,
            Schedule::Anneal { index } => libm::pow(1.0 + step as f64, -0.5 * index),
            Schedule::Tanh { scale } => {
                if total_steps == 0 {
                    return Err(Error::InvalidSetting {
                        name: "total steps (tanh schedule)",
                        value: 0.0,
                        expected: ">= 1",
                    });
                }
                let x = scale * (step as f64 / total_steps as f64 - 0.5);
                (libm::tanh(x) + 1.0) / 2.0
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anneal_matches_the_authors_formula() {
        // Authors: coef = (1 / (1 + t)^ai) ** 0.5
        for t in [0u64, 1, 10, 12345] {
            let want = (1.0 / (1.0 + t as f64).powf(0.55)).powf(0.5);
            let got = Schedule::anneal(0.55).unwrap().coefficient(t, 0).unwrap();
            assert!((got - want).abs() <= 1e-15 * want, "t = {t}");
        }
    }

    #[test]
    fn invalid_schedules_are_errors() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Schedule::anneal(bad),
                Err(Error::InvalidSetting { .. })
            ));
        }
        for bad in [0.0, -2.0, f64::NAN, f64::NEG_INFINITY] {
            assert!(matches!(
                Schedule::tanh(bad),
                Err(Error::InvalidSetting { .. })
            ));
        }
        let hand_made = Schedule::Anneal { index: f64::NAN };
        assert!(hand_made.coefficient(1, 1).is_err());
        assert!(matches!(
            Schedule::tanh(10.0).unwrap().coefficient(1, 0),
            Err(Error::InvalidSetting { .. })
        ));
    }
}
