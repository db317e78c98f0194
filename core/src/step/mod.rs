//! The SmoothOut step (Algorithm 1): perturb, gradient, de-noise, update —
//! for one parameter buffer ([`Param`]) or a whole set ([`SmoothOut`]).

#[cfg(feature = "alloc")]
mod config;
#[cfg(feature = "alloc")]
mod param;
#[cfg(feature = "alloc")]
mod param_set;
mod sgd;
#[cfg(feature = "alloc")]
mod spec;

#[cfg(feature = "alloc")]
pub use config::{Config, Denoise, Draw};
#[cfg(feature = "alloc")]
pub use param::{param_id, Param};
#[cfg(feature = "alloc")]
pub use param_set::{Perturbed, SmoothOut};
pub use sgd::Sgd;
#[cfg(feature = "alloc")]
pub use spec::{ParamSpec, Role};
