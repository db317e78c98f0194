//! SmoothOut and AdaSmoothOut: noise injection with de-noising that smooths
//! out sharp minima (Wen et al., *SmoothOut: Smoothing Out Sharp Minima to
//! Improve Generalization in Deep Learning*).
//!
//! Training with SmoothOut minimises the smoothed loss
//! `C̄(w) = E[C(w + θ)]` instead of `C(w)`. Each step perturbs the weights by
//! a fresh θ, takes the gradient at `w + θ`, removes θ again, and updates
//! (Algorithm 1):
//!
//! ```text
//! w ← w + θ_t            θ_t ~ U(−a, a)  (or AdaSmoothOut's per-filter scaling)
//! g ← ∇C(w)              your forward and backward
//! w ← w − θ_t            de-noise: θ_t is regenerated from its key, not stored
//! w ← update(w, g)       your optimiser (or the fused SGD here)
//! ```
//!
//! # Overview
//!
//! The crate's folders follow the algorithm:
//!
//! * [`mod@noise`]: what θ is. [`Noise`] (uniform, Gaussian, Bernoulli) and
//!   [`Scaling`] (fixed, per element, AdaSmoothOut's per filter) are requests
//!   as data; [`Schedule`] changes the strength over training. The bits come
//!   from a counter-based generator ([`philox`], [`mod@unit`]): the draw for
//!   `(seed, step, ghost, parameter, element)` is a pure function,
//!   bit-identical on every backend and thread count.
//! * [`mod@step`]: Algorithm 1. [`ParamSpec`] says which buffers are perturbed
//!   (all but normalisation parameters by default); [`Param`] is the step for
//!   one buffer, keyed by a stable id ([`param_id`]), on memory its owner
//!   lends to each call — through [`Slices`], any `&mut [f32]` or
//!   `&mut [f64]`, in place; [`SmoothOut`] is the step for a whole parameter
//!   set, generic over the backend, with closure, fused-SGD ([`Sgd`]) and
//!   guard APIs.
//! * [`Objective`] and [`sensitivity`]: the N-copy objective and the
//!   sharpness `s` of Eq. 9.
//! * [`mod@backend`]: the ops a backend provides, as small traits (each
//!   method of the step asks only for the ones it uses), and the
//!   [`Reference`] backend; [`mod@reference`] is the plain-slice
//!   implementation every backend is tested against, needing neither `std`
//!   nor `alloc`.
//!
//! Beside the step, [`mod@tensor`] holds what a network's layers need from a
//! backend — GEMM, convolution, pooling, batch normalisation, softmax
//! cross-entropy, element-wise maps — so that the same backends can train
//! whole networks; it is not part of SmoothOut itself.
//!
//! # Example
//!
//! ```
//! use smoothout::{Config, Draw, Noise, ParamSpec, Reference, Scaling, Sgd, SmoothOut};
//!
//! let backend = Reference::<f32>::new();
//! let specs = vec![ParamSpec::weight("fc.weight", [4, 8]), ParamSpec::bias("fc.bias", 4)];
//! let config = Config::new(Noise::uniform(0.0375)?).with_scaling(Scaling::FilterNorm);
//! let mut so = SmoothOut::new(&backend, config, specs)?;
//!
//! let mut params = vec![vec![0.1f32; 32], vec![0.0; 4]];
//! let mut grads = vec![vec![0.0f32; 32], vec![0.0; 4]];
//! let mut velocity = grads.clone();
//! let sgd = Sgd::new(0.1, 0.9, 0.0)?;
//! for step in 0..3 {
//!     so.step_sgd(&backend, &mut params, &mut grads, &mut velocity, &sgd,
//!                 Draw::new(step, 0), |w, g| {
//!         // gradient of ½‖w‖² at the perturbed point
//!         for (g, w) in g.iter_mut().zip(w) { g.copy_from_slice(w); }
//!         Ok::<(), smoothout::Error>(())
//!     })?;
//! }
//! assert!(params[0][0] < 0.1);
//! # Ok::<(), smoothout::Error>(())
//! ```
//!
//! # Feature flags
//!
//! * `std` (default): implies `alloc`; nothing else changes (maths goes
//!   through `libm` either way, so bits do not depend on it).
//! * `alloc`: [`SmoothOut`], [`Param`], [`ParamSpec`], the [`Reference`]
//!   backend, the state [`Slices`] keeps for AdaSmoothOut and exact mode.
//! * neither: the [`mod@reference`] functions, noise, [`Objective`],
//!   [`sensitivity`] and [`PhiloxRng`] on plain slices.
//! * `testgen` (implies `std`; for backend crates' tests): the shared test
//!   bodies in `smoothout::testgen` and the `backend_tests!` macro, and the
//!   tensor-op bodies in `smoothout::testgen::tensor` with
//!   `tensor_backend_tests!`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod backend;
mod error;
pub mod noise;
mod objective;
mod real;
pub mod reference;
pub mod step;
pub mod tensor;
#[cfg(feature = "testgen")]
pub mod testgen;

#[cfg(feature = "alloc")]
pub use backend::Reference;
pub use backend::{
    Backend, BackendTypes, BlasOps, BufferOps, FilterNoise, NoiseOf, NoiseOps, NormOps, PerturbOps,
    Slices, StateOps, UpdateOps,
};
pub use error::{Error, Result};
pub use noise::{philox, unit, Noise, NoiseKey, PhiloxRng, Scaling, Schedule, Unit};
pub use objective::{sensitivity, Objective};
pub use real::Real;
pub use step::Sgd;
#[cfg(feature = "alloc")]
pub use step::{param_id, Config, Denoise, Draw, Param, ParamSpec, Perturbed, Role, SmoothOut};
