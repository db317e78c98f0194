//! Layers with forward and backward passes, generic over a
//! [`smoothout::tensor::TensorBackend`].
//!
//! Every layer implements [`Layer`]: `forward` maps an [`Activation`] (a
//! buffer and its shape) to another, caching what `backward` needs;
//! `backward` maps `∂L/∂y` to `∂L/∂x` and **adds** the parameter gradients
//! into the layer's gradient buffers (call [`Layer::zero_grad`] between
//! steps). Parameters and gradients are listed in the order of
//! [`Layer::specs`], whose [`ParamSpec`](smoothout::ParamSpec)s tell SmoothOut what to perturb
//! (weights and biases by default, BatchNorm's γ and β not).
//!
//! | layer | input shape | output shape | parameters |
//! |---|---|---|---|
//! | [`Linear`] | `[N, …]` (flattened to `[N, in]`) | `[N, out]` | weight `[out, in]`, bias `[out]` |
//! | [`Conv2d`] | `[N, C, H, W]` | `[N, F, H', W']` | weight `[F, C, k, k]`, bias `[F]` |
//! | [`BatchNorm`] | `[N, C]` or `[N, C, H, W]` | same | γ `[C]`, β `[C]` |
//! | [`Relu`] | any | same | — |
//! | [`MaxPool2d`], [`AvgPool2d`] | `[N, C, H, W]` | `[N, C, H', W']` | — |
//! | [`Dropout`] | any | same | — |
//! | [`BasicBlock`] | `[N, C, H, W]` | `[N, F, H/s, W/s]` | two convs, two BNs, optional projection |
//!
//! [`SoftmaxCrossEntropy`] is the loss: logits and labels in, the mean loss
//! and `∂L/∂logits` out.
//!
//! Initialisation follows PyTorch's defaults (Kaiming-uniform with
//! `a = √5`, so weights and biases are `U(−1/√fan_in, 1/√fan_in)`), drawn
//! from a seeded xoshiro256++ ([`crate::rng::seeded_rng`]).
//!
//! # Design notes
//!
//! * Parameters and gradients are returned as vectors of references rather
//!   than slices, so that a composite layer ([`BasicBlock`]) can list its
//!   sub-layers' buffers without owning them in one array.
//!   [`Layer::params_and_grads_mut`] lends both lists at once, so that the
//!   optimisers ([`crate::optim`]) and gradient clipping update a network's
//!   own buffers in place, in spec order (issue 4 point 3).
//! * `backward` needs a train-mode `forward` first (eval mode caches
//!   nothing, except that Dropout in eval mode passes gradients through).
//!   Called without one it returns [`Error::InvalidSetting`](smoothout::Error::InvalidSetting) named
//!   `"backward before forward"`.
//! * [`Conv2d`] runs each product over the images as one batched GEMM
//!   ([`smoothout::tensor::GemmBatch`]: strided for `y` and `dcol`, summed for
//!   `dW`); [`BatchNorm`]'s ghost batches are cut out with
//!   [`smoothout::BufferOps::copy_range`].
//!
//! # Example
//!
//! ```
//! use smoothout::Reference;
//! use smoothout_models::layers::{Activation, Layer, Linear, Relu, SoftmaxCrossEntropy};
//!
//! let b = Reference::<f64>::new();
//! let mut fc = Linear::new(&b, 4, 3, 0)?;
//! let mut relu = Relu::new();
//! let x = Activation::new(vec![0.5; 2 * 4], [2, 4]);
//! let h = fc.forward(&b, &x, true)?;
//! let z = relu.forward(&b, &h, true)?;
//! assert_eq!(z.shape, [2, 3]);
//! let (loss, dz) = SoftmaxCrossEntropy::new(3).forward(&b, &z, &[0, 2])?;
//! assert!(loss > 0.0);
//! fc.zero_grad(&b)?;
//! let dx = fc.backward(&b, &relu.backward(&b, &dz)?)?;
//! assert_eq!(dx.len(), 8);
//! # Ok::<(), smoothout::Error>(())
//! ```

mod batch_norm;
mod conv2d;
mod dropout;
mod layer;
mod linear;
mod loss;
mod pool;
mod relu;
mod residual;

pub use batch_norm::BatchNorm;
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use linear::Linear;
pub use loss::SoftmaxCrossEntropy;
pub use pool::{AvgPool2d, MaxPool2d};
pub use relu::Relu;
pub use residual::BasicBlock;

pub(crate) use layer::{no_cache, params_and_grads_of};
pub use layer::{Activation, Dims, Layer};
