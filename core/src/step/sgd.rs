//! The SGD-with-momentum update that de-noising can be fused into.

use crate::error::{Error, Result};

/// SGD with (heavy-ball) momentum and coupled weight decay, as PyTorch's
/// `torch.optim.SGD` without dampening or Nesterov:
///
/// ```text
/// g ← g + weight_decay · w
/// v ← momentum · v + g
/// w ← w − lr · v
/// ```
///
/// ```
/// use smoothout::Sgd;
/// let sgd = Sgd::new(0.1, 0.9, 5e-4)?;
/// assert!(Sgd::new(f64::NAN, 0.9, 0.0).is_err());
/// assert!(Sgd::new(0.1, 1.0, 0.0).is_err()); // momentum must be < 1
/// # let _ = sgd; Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate, finite and ≥ 0.
    pub lr: f64,
    /// Momentum in `[0, 1)`.
    pub momentum: f64,
    /// Coupled L2 weight decay, finite and ≥ 0.
    pub weight_decay: f64,
}

impl Sgd {
    /// A validated configuration.
    pub fn new(lr: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
        let s = Sgd {
            lr,
            momentum,
            weight_decay,
        };
        s.validate().map(|()| s)
    }

    /// Checks a value that may have been built by hand.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value, expected| {
            Err(Error::InvalidSetting {
                name,
                value,
                expected,
            })
        };
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("learning rate", self.lr, "finite and >= 0");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", self.momentum, "in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay", self.weight_decay, "finite and >= 0");
        }
        Ok(())
    }
}
