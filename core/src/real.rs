//! The scalar types a parameter buffer may hold.

use core::fmt::{Debug, Display};
use num_traits::float::FloatCore;

/// A floating-point element type for parameters: `f32` or `f64`.
///
/// Bounded on [`FloatCore`] (no transcendental functions); the one extra
/// operation the step needs, `sqrt`, goes through `libm` so that the bits do
/// not depend on whether `std` is linked.
pub trait Real: FloatCore + Default + Debug + Display + Send + Sync + 'static {
    /// Exact widening (f32) or identity conversion from an `f32`.
    #[must_use]
    fn from_f32(x: f32) -> Self;
    /// Round-to-nearest conversion from an `f64`.
    #[must_use]
    fn from_f64(x: f64) -> Self;
    /// Exact widening to `f64`.
    #[must_use]
    fn to_f64(self) -> f64;
    /// Correctly rounded square root.
    #[must_use]
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f64::from(x)
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrt(self)
    }
}
