//! The noise θ: what to draw ([`Noise`], [`Scaling`]), how its strength
//! changes over training ([`Schedule`]) and where its bits come from — a
//! counter-based generator ([`philox`], keyed by [`NoiseKey`]) turned into
//! floats ([`mod@unit`]), so that every draw is a pure function of its
//! coordinates.

mod distribution;
pub mod philox;
mod rng;
mod schedule;
pub mod unit;

pub use distribution::{Noise, Scaling};
pub use philox::NoiseKey;
pub use rng::PhiloxRng;
pub use schedule::Schedule;
pub use unit::Unit;
