//! Noise requests and scaling modes, as data.

use crate::error::{Error, Result};
use crate::noise::unit::Unit;

/// What to draw: the distribution of θ before any adaptive scaling.
///
/// Constructed through [`Noise::uniform`], [`Noise::gaussian`] and
/// [`Noise::bernoulli`], which validate; a value built by hand is validated
/// again ([`Noise::validate`]) wherever it is used.
///
/// ```
/// use smoothout::{Noise, Error};
/// let n = Noise::uniform(0.0375)?;
/// assert_eq!(n, Noise::Uniform { a: 0.0375 });
/// assert!(matches!(Noise::uniform(-1.0), Err(Error::InvalidStrength { .. })));
/// assert!(matches!(Noise::bernoulli(1.5), Err(Error::InvalidProbability { .. })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    /// θ_i ~ U(−a, a), i.i.d. (the paper's Uniform Perturbation, Eq. 5).
    Uniform {
        /// Half-width `a ≥ 0`.
        a: f64,
    },
    /// θ_i ~ N(0, std²), i.i.d.
    Gaussian {
        /// Standard deviation `std ≥ 0`.
        std: f64,
    },
    /// The dropout view of §III-B: θ_i = −w_i with probability `p`, else 0
    /// (DropConnect on the weights).
    Bernoulli {
        /// Drop probability `p ∈ [0, 1]`.
        p: f64,
    },
}

fn strength(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidStrength { name, value })
    }
}

impl Noise {
    /// U(−a, a); `a` must be finite and ≥ 0.
    pub fn uniform(a: f64) -> Result<Self> {
        strength("a", a).map(|a| Noise::Uniform { a })
    }

    /// N(0, std²); `std` must be finite and ≥ 0.
    pub fn gaussian(std: f64) -> Result<Self> {
        strength("std", std).map(|std| Noise::Gaussian { std })
    }

    /// Drop each weight with probability `p ∈ [0, 1]`.
    pub fn bernoulli(p: f64) -> Result<Self> {
        if (0.0..=1.0).contains(&p) {
            Ok(Noise::Bernoulli { p })
        } else {
            Err(Error::InvalidProbability { p })
        }
    }

    /// Checks a value that may have been built by hand.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Noise::Uniform { a } => Noise::uniform(a).map(drop),
            Noise::Gaussian { std } => Noise::gaussian(std).map(drop),
            Noise::Bernoulli { p } => Noise::bernoulli(p).map(drop),
        }
    }

    /// The unit draw and the strength multiplying it, for the additive kinds;
    /// `None` for Bernoulli.
    #[must_use]
    pub fn additive(&self) -> Option<(Unit, f64)> {
        match *self {
            Noise::Uniform { a } => Some((Unit::Uniform, a)),
            Noise::Gaussian { std } => Some((Unit::Gaussian, std)),
            Noise::Bernoulli { .. } => None,
        }
    }
}

/// How the strength is adapted to the weights it perturbs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scaling {
    /// SmoothOut: θ = s·u with the same strength `s` everywhere.
    #[default]
    Fixed,
    /// θ_i = s·|w_i|·u_i, the authors' `--adapt-type weight`.
    PerElement,
    /// AdaSmoothOut (Eq. 12, with the authors' `+1e-6`): for each dim-0 row
    /// `i` (an output filter of a convolution, an output neuron of a linear
    /// layer), `θ̂_i = s · ‖w_i‖ / (‖u_i‖ + 1e-6) · u_i`, so `‖θ̂_i‖ ≈ s‖w_i‖`.
    /// 1-D parameters are rows of length one (per element). A zero row gets
    /// zero noise.
    FilterNorm,
}
