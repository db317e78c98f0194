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
//! * [`philox`] and [`mod@unit`]: counter-based noise; the draw for
//!   `(seed, step, ghost, parameter, element)` is a pure function, bit-identical
//!   on every backend and thread count.
//! * [`Noise`], [`Scaling`], [`Schedule`]: what to draw, how to scale it,
//!   how the strength evolves.
//! * [`ParamSpec`]: which buffers are perturbed (all but normalisation
//!   parameters by default).
//! * [`SmoothOut`]: the step, generic over a [`Backend`], with closure,
//!   fused-SGD and guard APIs.
//! * [`Objective`] and [`sensitivity`]: the N-copy objective and the
//!   sharpness `s` of Eq. 9.
//! * [`mod@reference`]: the plain-slice implementation every backend is tested
//!   against; it needs neither `std` nor `alloc`.
//! * [`mod@tensor`]: what layers need besides the step — GEMM, im2col/col2im
//!   convolution, pooling, batch normalisation, softmax cross-entropy and
//!   element-wise maps — as requests ([`Gemm`], [`GemmBatch`], [`Conv2d`],
//!   [`Pool2d`], [`BatchNorm`]) and small ops traits, gathered in
//!   [`TensorBackend`]; [`tensor_reference`] is their plain-loop ground truth.
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
//! * `alloc`: [`SmoothOut`], [`ParamSpec`], the [`Reference`] backend.
//! * neither: the [`mod@reference`] functions, noise, [`Objective`],
//!   [`sensitivity`] and [`PhiloxRng`] on plain slices.
//! * `testgen` (implies `std`; for backend crates' tests): the shared test
//!   bodies in `smoothout::testgen` and the `backend_tests!` macro, and the
//!   tensor-op bodies in `smoothout::testgen_tensor` with
//!   `tensor_backend_tests!`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod backend;
mod error;
#[cfg(feature = "alloc")]
mod host;
mod noise;
mod objective;
#[cfg(feature = "alloc")]
mod param;
pub mod philox;
mod real;
pub mod reference;
mod rng;
mod schedule;
mod sgd;
mod slices;
#[cfg(feature = "alloc")]
mod spec;
#[cfg(feature = "alloc")]
mod step;
pub mod tensor;
pub mod tensor_reference;
#[cfg(feature = "testgen")]
pub mod testgen;
#[cfg(feature = "testgen")]
pub mod testgen_tensor;
pub mod unit;

pub use backend::{
    Backend, BackendTypes, BlasOps, BufferOps, NoiseOf, NoiseOps, NormOps, PerturbOps, StateOps,
    UpdateOps,
};
pub use error::{Error, Result};
#[cfg(feature = "alloc")]
pub use host::Reference;
pub use noise::{Noise, Scaling};
pub use objective::{sensitivity, Objective};
#[cfg(feature = "alloc")]
pub use param::{param_id, Param};
pub use philox::NoiseKey;
pub use real::Real;
pub use rng::PhiloxRng;
pub use schedule::Schedule;
pub use sgd::Sgd;
pub use slices::Slices;
#[cfg(feature = "alloc")]
pub use spec::{ParamSpec, Role};
#[cfg(feature = "alloc")]
pub use step::{Config, Denoise, Draw, Perturbed, SmoothOut};
pub use tensor::{
    BatchNorm, BatchNormOps, Conv2d, ConvOps, Gemm, GemmBatch, LossOps, MapOps, MatmulOps, Pool2d,
    PoolKind, PoolOps, TensorBackend,
};
pub use unit::Unit;
