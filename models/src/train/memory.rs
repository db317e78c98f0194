//! How much memory a run needs, counted from the sizes alone before
//! anything is allocated, and how much the machine has.
//!
//! Every size that reaches a network comes from the user (`--net`,
//! `--batch`, `--ghost`) or from a file (a dataset's image shape and
//! classes, a checkpoint's metadata). [`Network::footprint`] walks the
//! architecture with overflow-checked arithmetic and counts, per example,
//! what each layer keeps for the backward pass; [`TrainConfig::memory`]
//! adds the parameters' companions (gradients, optimiser state, SmoothOut's
//! copies), the batch and the checkpoint; [`check_memory`] compares the
//! total with [`available_memory`] and refuses with
//! [`TrainError::Memory`], which states both figures and what to reduce.
//! So `--net mlp-999999999` or a checkpoint claiming a million × a million
//! images is an error, never an allocation failure that aborts the
//! process.
//!
//! # Accuracy
//!
//! | quantity | how exact |
//! |---|---|
//! | parameters, BatchNorm buffers | exact (`tests/train_memory.rs` compares with the built networks) |
//! | activations of a training step | the peak a training step allocates lies within 25% of the estimate, either way (same test, with a counting allocator on the reference backend; within 7% for the MLPs, F1, C1/C3 and ResNet-44) |
//! | batches, permutation, checkpoint copies | from the sizes the trainer allocates |
//!
//! The figure is of host memory: on `--device cuda` the activations live on
//! the GPU, whose own allocator reports a shortage as an error.

use super::config::{Method, Network, OptimizerKind, TrainConfig};
use crate::bytes::Bytes;
use crate::error::{Result, TrainError};
use smoothout::Denoise;

/// The memory limit where the available memory cannot be read (not Linux,
/// or `/proc` not mounted): 1 TiB, more than a single machine of today
/// holds, so that only sizes that cannot be meant are refused; below it,
/// allocation failures surface as the backends report them.
pub const FALLBACK_MEMORY_LIMIT: u64 = 1 << 40;

/// Examples per evaluation batch that [`Network::memory`] assumes (what
/// `smoothout eval` uses).
pub const EVAL_BATCH: usize = 1000;

/// The sizes of one network for one input shape, counted without building
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Parameters: weights, biases, BatchNorm's γ and β (as
    /// [`crate::networks::Sequential::num_params`] counts them; exact).
    pub parameters: u64,
    /// BatchNorm's running means and variances (exact).
    pub buffers: u64,
    /// Elements the layers keep per example from a training forward for
    /// the backward (inputs, masks).
    pub cached_per_example: u64,
    /// The most elements one layer holds at once per example beyond the
    /// cache (its input, output and scratch, or their gradients).
    pub working_per_example: u64,
}

/// What a run needs, in bytes, by part (see [`TrainConfig::memory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The network's sizes.
    pub footprint: Footprint,
    /// Parameters, their gradients and the BatchNorm buffers.
    pub model: u64,
    /// Optimiser state and SmoothOut's saved copies.
    pub optimizer: u64,
    /// The activations of one training chunk or evaluation batch.
    pub activations: u64,
    /// The batch's inputs on the host and on the device, and the data
    /// order.
    pub data: u64,
    /// The host copies a checkpoint is written from.
    pub checkpoint: u64,
}

impl MemoryEstimate {
    /// The peak: model, optimiser and data order always, plus the larger
    /// of a step (activations and batch) and a checkpoint write. `None`
    /// when it does not fit in 64 bits.
    #[must_use]
    pub fn total(&self) -> Option<u64> {
        let step = self.activations.checked_add(self.data)?;
        self.model
            .checked_add(self.optimizer)?
            .checked_add(step.max(self.checkpoint))
    }

    /// [`MemoryEstimate::total`] without the activations: what no batch
    /// size can reduce.
    #[must_use]
    pub fn without_activations(&self) -> Option<u64> {
        MemoryEstimate {
            activations: 0,
            ..*self
        }
        .total()
    }
}

/// Bytes of memory available to this process: on Linux `MemAvailable` of
/// `/proc/meminfo`, lowered to what the cgroup (v2) limit leaves when one
/// is set; `None` elsewhere (then [`FALLBACK_MEMORY_LIMIT`] applies).
#[must_use]
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut bytes = kib.saturating_mul(1024);
    let cgroup = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let (Some(max), Some(current)) = (cgroup("memory.max"), cgroup("memory.current")) {
        bytes = bytes.min(max.saturating_sub(current));
    }
    Some(bytes)
}

/// The limit [`check_memory`] applies and where it comes from.
fn limit() -> (u64, &'static str) {
    match available_memory() {
        Some(b) => (b, "available (MemAvailable in /proc/meminfo)"),
        None => (
            FALLBACK_MEMORY_LIMIT,
            "allowed where the available memory cannot be read",
        ),
    }
}

/// Refuses `estimate` when its total (or its arithmetic) exceeds the
/// available memory ([`available_memory`], or [`FALLBACK_MEMORY_LIMIT`]
/// where it cannot be read). `what` says what needs it ("training
/// mlp-64-64 on [1, 8, 8] images"); `advice` what to reduce, given the
/// bytes available.
///
/// # Errors
/// [`TrainError::Memory`].
pub fn check_memory(
    what: impl FnOnce() -> String,
    estimate: Option<&MemoryEstimate>,
    advice: impl FnOnce(u64) -> String,
) -> Result<()> {
    let (available, source) = limit();
    let needed = estimate.and_then(MemoryEstimate::total);
    if needed.is_some_and(|n| n <= available) {
        return Ok(());
    }
    Err(TrainError::Memory {
        what: what(),
        needed,
        parts: estimate.filter(|_| needed.is_some()).map(describe_parts),
        available,
        source,
        advice: advice(available),
    })
}

fn describe_parts(e: &MemoryEstimate) -> String {
    format!(
        "{} parameters: model {}, optimiser {}, activations {}, data {}, checkpoint {}",
        e.footprint.parameters,
        Bytes(e.model),
        Bytes(e.optimizer),
        Bytes(e.activations),
        Bytes(e.data),
        Bytes(e.checkpoint)
    )
}

/// A walk through an architecture, tracking the shape of one example and
/// counting as the constructors in [`crate::networks`] allocate. Every
/// operation is checked: `None` is an overflow or a shape no layer takes.
struct Walk {
    shape: [u64; 3],
    parameters: u64,
    buffers: u64,
    cached: u64,
    working: u64,
    /// Elements held by an enclosing block (its input, for the shortcut).
    held: u64,
}

fn add(a: &mut u64, b: u64) -> Option<()> {
    *a = a.checked_add(b)?;
    Some(())
}

fn mul(a: u64, b: u64) -> Option<u64> {
    a.checked_mul(b)
}

fn len(shape: [u64; 3]) -> Option<u64> {
    mul(mul(shape[0], shape[1])?, shape[2])
}

/// The output size of a convolution or pooling window.
fn out_size(n: u64, k: u64, s: u64, p: u64) -> Option<u64> {
    Some(n.checked_add(mul(2, p)?)?.checked_sub(k)? / s + 1)
}

impl Walk {
    fn new(shape: [usize; 3]) -> Self {
        Walk {
            shape: shape.map(|d| d as u64),
            parameters: 0,
            buffers: 0,
            cached: 0,
            working: 0,
            held: 0,
        }
    }

    fn len(&self) -> Option<u64> {
        len(self.shape)
    }

    /// A layer from `input` to `output` elements with `scratch` more held
    /// at once (forward, or the gradients in backward).
    fn working(&mut self, input: u64, output: u64, scratch: u64) -> Option<()> {
        let w = input
            .checked_add(output)?
            .checked_add(scratch)?
            .checked_add(self.held)?;
        self.working = self.working.max(w);
        Some(())
    }

    fn linear(&mut self, outputs: u64, bias: bool) -> Option<()> {
        let inputs = self.len()?;
        // Linear::new allocates the bias (and its gradient) even without
        // one; LinearNoBias only leaves it out of the parameters.
        add(&mut self.parameters, mul(inputs, outputs)?)?;
        if bias {
            add(&mut self.parameters, outputs)?;
        }
        add(&mut self.cached, inputs)?;
        self.working(inputs, outputs, 0)?;
        self.shape = [outputs, 1, 1];
        Some(())
    }

    fn conv(&mut self, filters: u64, k: u64, stride: u64, padding: u64) -> Option<()> {
        let [c, h, w] = self.shape;
        let (oh, ow) = (
            out_size(h, k, stride, padding)?,
            out_size(w, k, stride, padding)?,
        );
        let rows = mul(mul(c, k)?, k)?;
        let col = mul(rows, mul(oh, ow)?)?;
        let out = mul(filters, mul(oh, ow)?)?;
        add(&mut self.parameters, mul(filters, rows)?)?;
        // The layer keeps its input and unfolds it again in the backward
        // pass; the columns are scratch (the whole batch's with the
        // provided `ConvOps` methods, one image's per thread on the CPU).
        let input = self.len()?;
        add(&mut self.cached, input)?;
        self.working(input, out, col)?;
        self.shape = [filters, oh, ow];
        Some(())
    }

    fn batch_norm(&mut self) -> Option<()> {
        let n = self.len()?;
        add(&mut self.parameters, mul(2, self.shape[0])?)?;
        add(&mut self.buffers, mul(2, self.shape[0])?)?;
        add(&mut self.cached, n)?;
        // Each ghost chunk is copied in and normalised out.
        self.working(n, n, mul(2, n)?)
    }

    fn relu(&mut self) -> Option<()> {
        let n = self.len()?;
        add(&mut self.cached, n)?;
        self.working(n, n, 0)
    }

    fn dropout(&mut self) -> Option<()> {
        let n = self.len()?;
        add(&mut self.cached, n)?;
        self.working(n, n, n)
    }

    fn pool(&mut self, k: u64, stride: u64, padding: u64) -> Option<()> {
        let [c, h, w] = self.shape;
        let input = self.len()?;
        self.shape = [
            c,
            out_size(h, k, stride, padding)?,
            out_size(w, k, stride, padding)?,
        ];
        add(&mut self.cached, input)?;
        self.working(input, self.len()?, 0)
    }

    fn global_avg_pool(&mut self) -> Option<()> {
        let h = self.shape[1];
        self.pool(h, h, 0)
    }

    /// [`crate::layers::BasicBlock`]: its input is held for the shortcut
    /// while the main path runs.
    fn block(&mut self, filters: u64, stride: u64) -> Option<()> {
        let input = self.shape;
        let outer = self.held;
        self.held = outer.checked_add(len(input)?)?;
        self.conv(filters, 3, stride, 1)?;
        self.batch_norm()?;
        self.relu()?;
        self.conv(filters, 3, 1, 1)?;
        self.batch_norm()?;
        let main = self.shape;
        if stride != 1 || input[0] != filters {
            self.shape = input;
            self.conv(filters, 1, stride, 0)?;
            self.batch_norm()?;
            self.shape = main;
        }
        self.held = outer;
        self.relu()
    }

    fn stages(&mut self, plan: &[(u64, u64, u64)]) -> Option<()> {
        for &(filters, blocks, stride) in plan {
            for i in 0..blocks {
                self.block(filters, if i == 0 { stride } else { 1 })?;
            }
        }
        Some(())
    }

    fn mlp(&mut self, hidden: &[u64], classes: u64) -> Option<()> {
        for &w in hidden {
            self.linear(w, true)?;
            self.batch_norm()?;
            self.relu()?;
        }
        self.linear(classes, true)
    }

    fn classifier(&mut self, widths: [u64; 2], classes: u64) -> Option<()> {
        for w in widths {
            self.linear(w, false)?;
            self.batch_norm()?;
            self.relu()?;
            self.dropout()?;
        }
        self.linear(classes, true)
    }

    fn footprint(self) -> Footprint {
        Footprint {
            parameters: self.parameters,
            buffers: self.buffers,
            cached_per_example: self.cached,
            working_per_example: self.working,
        }
    }
}

impl Network {
    /// The sizes of this network for `image_shape` (`[C, H, W]`) and
    /// `classes`, counted without allocating (see [`Footprint`]).
    ///
    /// ```
    /// use smoothout_models::train::Network;
    /// let f = Network::Mlp(vec![32]).footprint([1, 8, 8], 10).unwrap();
    /// assert_eq!(f.parameters, 64 * 32 + 32 + 2 * 32 + 32 * 10 + 10);
    /// assert_eq!(f.buffers, 2 * 32);
    /// assert!(Network::Mlp(vec![usize::MAX]).footprint([1, 8, 8], 10).is_none());
    /// ```
    ///
    /// The networks other than the MLP take one input shape, and are
    /// counted for it (as [`Network::build`] allocates them only for it).
    /// Sizes the layers refuse (a zero width or class count) count as
    /// zero: [`Network::build`] reports them. `None` when a count
    /// overflows 64 bits: more memory than any machine has.
    #[must_use]
    pub fn footprint(&self, image_shape: [usize; 3], classes: usize) -> Option<Footprint> {
        let mut w = Walk::new(match self {
            Network::Mlp(_) => image_shape,
            Network::F1 => [1, 28, 28],
            Network::CifarShallow | Network::ResNet44 | Network::ResNet18 => [3, 32, 32],
        });
        let classes = classes as u64;
        match self {
            Network::Mlp(hidden) => {
                let hidden: Vec<u64> = hidden.iter().map(|&h| h as u64).collect();
                w.mlp(&hidden, classes)?;
            }
            Network::F1 => w.mlp(&[512; 5], classes)?,
            Network::CifarShallow => {
                w.conv(64, 5, 1, 2)?;
                w.pool(3, 2, 0)?;
                w.batch_norm()?;
                w.relu()?;
                w.conv(64, 5, 1, 2)?;
                w.pool(3, 2, 0)?;
                w.batch_norm()?;
                w.relu()?;
                w.classifier([384, 192], classes)?;
            }
            Network::ResNet44 => {
                w.conv(16, 3, 1, 1)?;
                w.batch_norm()?;
                w.relu()?;
                w.stages(&[(16, 7, 1), (32, 7, 2), (64, 7, 2)])?;
                w.global_avg_pool()?;
                w.linear(classes, true)?;
            }
            Network::ResNet18 => {
                w.conv(64, 3, 1, 1)?;
                w.batch_norm()?;
                w.relu()?;
                w.stages(&[(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)])?;
                w.global_avg_pool()?;
                w.linear(classes, true)?;
            }
        }
        Some(w.footprint())
    }

    /// What this network needs to be built and evaluated in batches of
    /// [`EVAL_BATCH`] with elements of `elem_bytes` bytes: parameters,
    /// gradients and buffers, and one evaluation batch. `None` on overflow
    /// (see [`Network::footprint`]).
    #[must_use]
    pub fn memory(
        &self,
        image_shape: [usize; 3],
        classes: usize,
        elem_bytes: usize,
    ) -> Option<MemoryEstimate> {
        let f = self.footprint(image_shape, classes)?;
        let e = elem_bytes as u64;
        let image_len = len(image_shape.map(|d| d as u64))?;
        let eval = EVAL_BATCH as u64;
        Some(MemoryEstimate {
            footprint: f,
            model: model_bytes(&f, e)?,
            optimizer: 0,
            activations: mul(mul(eval, f.working_per_example)?, e)?,
            data: batch_bytes(eval, image_len, e)?,
            checkpoint: 0,
        })
    }
}

/// Parameters with their gradients, and the buffers.
fn model_bytes(f: &Footprint, e: u64) -> Option<u64> {
    mul(mul(2, f.parameters)?.checked_add(f.buffers)?, e)
}

/// `n` images of `image_len` values as the trainer holds them: `f32` on
/// the host, converted, and uploaded; their labels.
fn batch_bytes(n: u64, image_len: u64, e: u64) -> Option<u64> {
    let per_value = 4u64.checked_add(mul(2, e)?)?;
    mul(mul(n, image_len)?, per_value)?.checked_add(mul(n, 16)?)
}

impl TrainConfig {
    /// What training this configuration needs on `train_len` examples of
    /// `image_shape` in `classes` classes, with elements of `elem_bytes`
    /// bytes (see [`MemoryEstimate`]): the model, the optimiser's buffers
    /// (one per parameter for SGD, two for Adam, one more for
    /// `Denoise::Exact`), what the two-pass methods hold during a step (SAM
    /// and ASAM a copy of the parameters, m-RWP one of the gradients, ASAM
    /// two scratch buffers of one
    /// parameter each, counted here as all parameters; SAM, ASAM and m-RWP
    /// a copy of the BatchNorm buffers), the activations of one ghost chunk (at most the
    /// batch, at most the data) or one evaluation batch, whichever is
    /// larger, the batch itself and the data order, and the host copies of
    /// a checkpoint. `None` on overflow.
    ///
    /// ```
    /// use smoothout_models::train::{Method, Network, TrainConfig};
    /// let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![64, 64]));
    /// let m = cfg.memory([1, 8, 8], 10, 1437, 4).unwrap();
    /// assert!(m.total().unwrap() < 64 << 20);
    /// let huge = TrainConfig::new(Method::Baseline, Network::Mlp(vec![999_999_999]));
    /// assert!(huge.memory([1, 8, 8], 10, 1437, 4).unwrap().total().unwrap() > 500 << 30);
    /// ```
    #[must_use]
    pub fn memory(
        &self,
        image_shape: [usize; 3],
        classes: usize,
        train_len: usize,
        elem_bytes: usize,
    ) -> Option<MemoryEstimate> {
        let f = self.network.footprint(image_shape, classes)?;
        let e = elem_bytes as u64;
        let image_len = len(image_shape.map(|d| d as u64))?;
        let n = train_len as u64;
        let batch = (self.batch as u64).min(n);
        let chunk = (self.chunk() as u64).min(batch);
        let eval = (self.eval_batch as u64).min(n);
        let mut copies = match self.optimizer {
            OptimizerKind::Sgd | OptimizerKind::Nesterov => 1,
            OptimizerKind::Adam => 2,
        };
        if self.denoise == Denoise::Exact {
            copies += 1;
        }
        let held = match self.method {
            Method::Sam | Method::MixedRwp => 1,
            Method::Asam => 3,
            _ => 0,
        };
        let bn_held = if self.method.passes() > 1 {
            f.buffers
        } else {
            0
        };
        let optimizer = mul(mul(copies + held, f.parameters)?.checked_add(bn_held)?, e)?;
        let per_example = f.cached_per_example.checked_add(f.working_per_example)?;
        let activations =
            mul(mul(chunk, per_example)?, e)?.max(mul(mul(eval, f.working_per_example)?, e)?);
        let data = batch_bytes(batch.max(eval), image_len, e)?.checked_add(mul(n, 8)?)?;
        // Parameters, buffers and optimiser state downloaded, then
        // serialised.
        let stored = f
            .parameters
            .checked_add(f.buffers)?
            .checked_add(mul(copies, f.parameters)?)?;
        let checkpoint = mul(mul(2, stored)?, e)?;
        Some(MemoryEstimate {
            footprint: f,
            model: model_bytes(&f, e)?,
            optimizer,
            activations,
            data,
            checkpoint,
        })
    }
}
