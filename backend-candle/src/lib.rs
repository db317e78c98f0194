//! SmoothOut and AdaSmoothOut for trainers written with
//! [candle](https://github.com/huggingface/candle).
//!
//! [`SmoothOut<O>`](SmoothOut) wraps any [`candle_nn::Optimizer`] — candle's
//! `SGD` and `AdamW`, or one of your own — and is itself an `Optimizer`.
//! Before the forward pass, [`SmoothOut::perturb`] adds noise θ to the
//! weights, in candle's own memory; after the backward pass,
//! [`Optimizer::step`](candle_nn::Optimizer::step) takes θ out again
//! (regenerating it from its counter-based key, never storing it) and steps
//! the inner optimiser. Training then minimises the smoothed loss
//! `E[C(w + θ)]` (Wen et al., *SmoothOut*).
//!
//! ```text
//! perturb(draw)     w ← w + θ          θ = a·u, u ~ U(−1, 1)          (SmoothOut)
//!                                      θ_i = a·‖w_i‖/(‖u_i‖ + 1e-6)·u_i per row (AdaSmoothOut)
//! loss.backward()   gradients at w + θ
//! step(grads)       w ← w − θ, then the inner optimiser's update
//! ```
//!
//! # Example
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{linear, AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
//! use smoothout::{Config, Draw, Noise, Scaling};
//! use smoothout_candle::SmoothOut;
//!
//! let dev = Device::Cpu;
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
//! let model = linear(4, 2, vb.pp("fc"))?;
//!
//! let config = Config::new(Noise::uniform(0.15)?).with_scaling(Scaling::FilterNorm).with_seed(7);
//! let mut opt = SmoothOut::<AdamW>::from_varmap(&varmap, config, ParamsAdamW::default())?;
//!
//! let x = Tensor::ones((8, 4), DType::F32, &dev)?;
//! for step in 0..3 {
//!     opt.perturb(Draw::new(step, 0))?;          // w ← w + θ
//!     let loss = model.forward(&x)?.sqr()?.mean_all()?;
//!     opt.backward_step(&loss)?;                 // w ← w − θ, then AdamW
//! }
//! assert_eq!(opt.applied(), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The closure form, [`SmoothOut::train_step`], does all four in one call
//! and takes the noise out even when the forward pass fails.
//!
//! # Parameters
//!
//! Variables come from a [`candle_nn::VarMap`] ([`SmoothOut::from_varmap`])
//! or a list of named variables ([`Params::from_named`]). The name keys the
//! noise: `id = smoothout::param_id(name)`, so θ for `(seed, draw, name)` is
//! the same whatever order variables were created or listed in, and the same
//! bits as `smoothout::reference` and every smoothout backend give. Specs are
//! inferred from names and shapes ([`infer_spec`]: rank ≥ 2 weights with
//! rows on dim 0, rank 1 biases, `bn`/`norm`/`running_*` names normalisation,
//! not perturbed) and can be overridden ([`Params::with_spec`],
//! [`Params::with_normalization`], [`Params::with_perturbed`]).
//!
//! # Memory and devices
//!
//! Perturbing and de-noising run in place through candle's
//! [`InplaceOp1`](candle_core::InplaceOp1): on the CPU the variable's
//! contiguous `f32` or `f64` storage is handed to the core's
//! [`Param`](smoothout::Param) on [`smoothout_cpu::Host`], the CPU
//! backend's kernels over borrowed slices (compiled for AVX2 or AVX-512
//! when the CPU has them, the same bits); other dtypes are refused
//! with [`Error::UnsupportedDtype`]. No parameter-sized buffer is allocated;
//! AdaSmoothOut keeps one scale per row. CPU variables are perturbed in
//! parallel, one rayon task each; θ depends only on each variable's key, so
//! the bits do not depend on the thread count.
//!
//! # Features
//!
//! - `cuda`: `f32` variables on candle's CUDA device, perturbed in place by
//!   smoothout-cuda's NVRTC kernels on candle's own stream (candle-core's
//!   `cuda` feature, which needs nvcc at build time:
//!   `scripts/fetch-nvcc.sh`). One smoothout-cuda backend per CUDA device,
//!   shared by its variables; CUDA variables are perturbed from the calling
//!   thread (candle's default CUDA stream is per thread), CPU ones in rayon
//!   tasks. Other dtypes on CUDA are refused with
//!   [`Error::UnsupportedDtype`]. Built and linted in CI without a GPU; not
//!   yet run on one. Without the feature the crate never touches CUDA, and
//!   CUDA variables are refused with [`Error::UnsupportedDevice`].
//!
//! # Errors
//!
//! Every fallible call returns [`Error`]; inside the
//! [`Optimizer`](candle_nn::Optimizer) trait it arrives as a
//! [`candle_core::Error`] carrying the same message.
#![deny(missing_docs)]

mod action;
#[cfg(feature = "cuda")]
mod cuda;
mod error;
mod inplace;
mod optimizer;
mod params;
mod spec;
mod state;

pub use error::{Error, Result};
pub use optimizer::{SmoothOut, SmoothOutConfig};
pub use params::Params;
pub use spec::{infer_spec, is_normalization_name};
