//! The paper's networks as [`Layer`]s: F1, C1, C3, ResNet-44, ResNet-18 and
//! AlexNet with batch norm.
//!
//! A network is a [`Sequential`]: its children run in order, and its
//! [`Layer::specs`], [`Layer::params`] and [`Layer::grads`] list the
//! children's in the same order, with names prefixed as the child was
//! pushed (`layer2.0.conv1.weight`). Every constructor takes a
//! [`NetConfig`]: the seed from which each layer's initialisation seed is
//! drawn, and the ghost batch size of every BatchNorm.
//!
//! | network | constructor | input | parameters | published |
//! |---|---|---|---|---|
//! | F1 (MNIST) | [`f1`] | `[N, 784]` | 1,462,794 | — (computed from the architecture) |
//! | C1 (CIFAR-10) | [`c1`] | `[N, 3, 32, 32]` | 1,388,490 | — (authors' `cifar_shallow.py`, counted) |
//! | C3 (CIFAR-100) | [`c3`] | `[N, 3, 32, 32]` | 1,405,860 | — (as C1) |
//! | ResNet-44 | [`resnet44`] | `[N, 3, 32, 32]` | 661,338 | 0.66M (He et al. 2016, Table 6) |
//! | ResNet-18, 3×3 stem | [`resnet18`] with [`Stem::Cifar`] | `[N, 3, 32, 32]` | 11,173,962 | 11,173,962 (kuangliu/pytorch-cifar) |
//! | ResNet-18, ImageNet | [`resnet18`] with [`Stem::ImageNet`] | `[N, 3, 224, 224]` | 11,689,512 | 11,689,512 (torchvision) |
//! | AlexNet-BN | [`alexnet_bn`] | `[N, 3, 224, 224]` | 61,110,184 | torchvision's 61,100,840, less biases, plus BN |
//!
//! Counts are of parameters only (weights, biases, BatchNorm's γ and β),
//! as PyTorch's `parameters()`: BatchNorm's running mean and variance are
//! buffers, not parameters, and are not counted (nor listed in the specs).
//! `tests/layers/networks_params.rs` checks each figure and where it comes from.
//!
//! Dropout layers keep a step counter that advances after each train-mode
//! forward; [`Sequential::set_dropout_step`] sets it (e.g. on resume).
//!
//! # Example
//!
//! ```
//! use smoothout::Reference;
//! use smoothout_models::layers::{Activation, Layer};
//! use smoothout_models::networks::{f1, NetConfig};
//!
//! let b = Reference::<f32>::new();
//! let mut net = f1(&b, NetConfig::seeded(0).with_ghost_batch(Some(2)))?;
//! let specs = net.specs();
//! assert_eq!(specs.len(), 6 * 2 + 5 * 2);   // six Linears, five BatchNorms
//! assert_eq!((specs[0].name.as_str(), specs[0].shape.as_slice()), ("fc1.weight", &[512, 784][..]));
//! assert_eq!(specs[2].name, "bn1.weight");
//! assert!(specs[0].perturbed && !specs[2].perturbed);   // BN's γ, β not perturbed
//! assert_eq!(net.num_params(), 1_462_794);
//!
//! let x = Activation::new(vec![0.5f32; 4 * 784], [4, 784]);
//! let logits = net.forward(&b, &x, true)?;   // two ghost batches
//! assert_eq!(logits.shape, [4, 10]);
//! net.zero_grad(&b)?;
//! let dx = net.backward(&b, &vec![0.1f32; logits.data.len()])?;
//! assert_eq!(dx.len(), x.data.len());
//! assert_eq!(net.grads().len(), specs.len());
//! # Ok::<(), smoothout::Error>(())
//! ```
//!
//! [`Layer`]: crate::layers::Layer
//! [`Layer::specs`]: crate::layers::Layer::specs
//! [`Layer::params`]: crate::layers::Layer::params
//! [`Layer::grads`]: crate::layers::Layer::grads

mod nets;
mod sequential;

pub use nets::{
    alexnet_bn, alexnet_feature_size, c1, c3, cifar_shallow, f1, mlp, resnet18, resnet44,
    resnet_cifar, NetConfig, Stem,
};
pub use sequential::Sequential;
