//! Batch normalisation (1-D and 2-D), with running statistics and ghost
//! batches.

use super::layer::{bad_shape, keep_copy, no_cache, params_in_fields, Activation, Layer};
use smoothout::tensor::reference::{self as r, wide};
use smoothout::tensor::{BatchNormBackwardPass, BatchNormForwardPass, BatchNormStatsPass};
use smoothout::tensor::{BatchNormGrads, BatchNormStats, TensorBackend};
use smoothout::{ParamSpec, Real, Result};

/// One ghost batch's cached input and statistics.
struct Chunk<B: TensorBackend> {
    start: usize,
    samples: usize,
    x: B::Buffer,
    mean: B::Buffer,
    var: B::Buffer,
}

impl<B: TensorBackend> Chunk<B> {
    /// Hands the chunk's buffers back to `b`.
    fn recycle(self, b: &B) {
        for buf in [self.x, self.mean, self.var] {
            b.recycle(buf);
        }
    }
}

/// Batch normalisation over `[N, C]` (BatchNorm1d) or `[N, C, H, W]`
/// (BatchNorm2d) inputs, per channel, with learnable γ (initially 1) and
/// β (initially 0):
///
/// ```text
/// train:  y = γ · (x − μ_B) / √(σ²_B + ε) + β      μ_B, σ²_B of the batch (biased)
///         running_mean ← (1 − m) · running_mean + m · μ_B
///         running_var  ← (1 − m) · running_var  + m · σ²_B · M / (M − 1)
/// eval:   y = γ · (x − running_mean) / √(running_var + ε) + β
/// ```
///
/// with `M = samples · H · W` per channel: PyTorch's convention (momentum
/// `m = 0.1`, `ε = 1e-5`, unbiased variance in the running estimate; for
/// `M = 1` the biased one).
///
/// **Ghost batches** ([`BatchNorm::with_ghost_batch`], Hoffer et al.): in
/// train mode the batch is cut into chunks of `g` samples (the last may be
/// shorter) and each chunk is normalised with its own statistics; the
/// running statistics are updated once per chunk, in order, as the authors'
/// `GhostBatchNorm` does by calling batch norm on each chunk. The chunks are
/// copied out with `copy_range`, so the batch is processed chunk by chunk.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, BatchNorm, Layer};
/// let b = Reference::<f64>::new();
/// let mut bn = BatchNorm::new(&b, 1)?;
/// let y = bn.forward(&b, &Activation::new(vec![1.0, 3.0], [2, 1]), true)?.data;
/// assert!((y[0] + 1.0).abs() < 1e-5 && (y[1] - 1.0).abs() < 1e-5);
/// // running mean 0.9·0 + 0.1·2, running variance 0.9·1 + 0.1·(1·2/1)
/// let r = bn.running_mean(&b)?;
/// assert!((r[0] - 0.2).abs() < 1e-12);
/// assert!((bn.running_var(&b)?[0] - 1.1).abs() < 1e-12);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct BatchNorm<B: TensorBackend> {
    channels: usize,
    eps: f64,
    momentum: f64,
    ghost: Option<usize>,
    name: String,
    params: [B::Buffer; 2],
    grads: [B::Buffer; 2],
    running_mean: B::Buffer,
    running_var: B::Buffer,
    cache: Option<(Vec<usize>, usize, Vec<Chunk<B>>)>,
    frozen: bool,
    /// The input of the last frozen forward, and its `spatial`.
    frozen_cache: Option<(B::Buffer, usize)>,
}

impl<B: TensorBackend> BatchNorm<B> {
    /// Over `channels` channels: γ = 1, β = 0, running mean 0 and variance
    /// 1, momentum 0.1, ε = 1e-5, no ghost batches.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for `channels == 0`.
    pub fn new(b: &B, channels: usize) -> Result<Self> {
        if channels == 0 {
            return Err(bad_shape("batch norm channels", 0));
        }
        let ones = vec![B::Elem::from_f64(1.0); channels];
        Ok(BatchNorm {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            ghost: None,
            name: "bn".into(),
            params: [b.upload(&ones)?, b.zeros(channels)?],
            grads: [b.zeros(channels)?, b.zeros(channels)?],
            running_mean: b.zeros(channels)?,
            running_var: b.upload(&ones)?,
            cache: None,
            frozen: false,
            frozen_cache: None,
        })
    }

    /// With ghost batches of `ghost` samples (`None`: the whole batch).
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for `Some(0)`.
    pub fn with_ghost_batch(mut self, ghost: Option<usize>) -> Result<Self> {
        if ghost == Some(0) {
            return Err(bad_shape("ghost batch size", 0));
        }
        self.ghost = ghost;
        Ok(self)
    }

    /// With another momentum (in `[0, 1]`) and ε (finite, ≥ 0).
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for a value out of range.
    pub fn with_momentum_eps(mut self, momentum: f64, eps: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(smoothout::Error::InvalidSetting {
                name: "batch norm momentum",
                value: momentum,
                expected: "in [0, 1]",
            });
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(smoothout::Error::InvalidSetting {
                name: "batch norm eps",
                value: eps,
                expected: "finite and >= 0",
            });
        }
        self.momentum = momentum;
        self.eps = eps;
        Ok(self)
    }

    /// The same layer with `name` as the prefix of its parameter names.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The running mean, on the host.
    ///
    /// # Errors
    /// As the backend's `to_vec`.
    pub fn running_mean(&self, b: &B) -> Result<Vec<B::Elem>> {
        b.to_vec(&self.running_mean)
    }

    /// Backward of the frozen (running-statistics) normalisation, an affine
    /// map per channel: with `k = 1/√(σ²_run + ε)` and `x̂ = (x − μ_run)·k`,
    /// `dx = γ·k·dy`, `dγ += Σ dy·x̂`, `dβ += Σ dy` — computed on the host in
    /// `f64` (an analysis path, not a training one).
    fn frozen_backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let Some((x, spatial)) = &self.frozen_cache else {
            return Err(no_cache());
        };
        let spatial = *spatial;
        let (x, d) = (b.to_vec(x)?, b.to_vec(dy)?);
        smoothout::tensor::check_len("batch norm dy", x.len(), d.len())?;
        let (mean, var) = (b.to_vec(&self.running_mean)?, b.to_vec(&self.running_var)?);
        let gamma = b.to_vec(&self.params[0])?;
        let bn = self.request(x.len() / (self.channels * spatial), spatial);
        let centres = r::batch_norm_centres(&bn, &mean, &var);
        let (mut dg, mut db) = (vec![0.0f64; self.channels], vec![0.0f64; self.channels]);
        let mut dx = vec![B::Elem::from_f64(0.0); x.len()];
        let per = self.channels * spatial;
        for ((xs, ds), dxs) in x.chunks(per).zip(d.chunks(per)).zip(dx.chunks_mut(per)) {
            for (c, &(mu, k)) in centres.iter().enumerate() {
                let g = wide(gamma[c]);
                let r = c * spatial..(c + 1) * spatial;
                for ((&xv, &dv), o) in xs[r.clone()].iter().zip(&ds[r.clone()]).zip(&mut dxs[r]) {
                    let dv = wide(dv);
                    dg[c] += dv * (wide(xv) - mu) * k;
                    db[c] += dv;
                    *o = B::Elem::from_f64(g * k * dv);
                }
            }
        }
        let to_elems =
            |v: &[f64]| -> Vec<B::Elem> { v.iter().map(|&x| B::Elem::from_f64(x)).collect() };
        b.add(&b.upload(&to_elems(&dg))?, &mut self.grads[0])?;
        b.add(&b.upload(&to_elems(&db))?, &mut self.grads[1])?;
        b.upload(&dx)
    }

    /// The running (unbiased) variance, on the host.
    ///
    /// # Errors
    /// As the backend's `to_vec`.
    pub fn running_var(&self, b: &B) -> Result<Vec<B::Elem>> {
        b.to_vec(&self.running_var)
    }

    fn request(&self, samples: usize, spatial: usize) -> smoothout::tensor::BatchNorm {
        smoothout::tensor::BatchNorm {
            batch: samples,
            channels: self.channels,
            spatial,
            eps: self.eps,
        }
    }

    fn update_running(&mut self, b: &B, mean: &B::Buffer, var: &B::Buffer, m: usize) -> Result<()> {
        let mom = self.momentum;
        let keep = B::Elem::from_f64(1.0 - mom);
        b.scale(keep, &mut self.running_mean)?;
        b.axpy(B::Elem::from_f64(mom), mean, &mut self.running_mean)?;
        let unbias = if m > 1 {
            m as f64 / (m - 1) as f64
        } else {
            1.0
        };
        b.scale(keep, &mut self.running_var)?;
        b.axpy(B::Elem::from_f64(mom * unbias), var, &mut self.running_var)
    }
}

impl<B: TensorBackend> BatchNorm<B> {
    /// `(N, spatial)` of an input, after checking its rank, channels and
    /// buffer.
    fn input_dims(&self, b: &B, input: &Activation<B>) -> Result<(usize, usize)> {
        input.numel(b, "batch norm input")?;
        let shape = &input.shape;
        if !(shape.len() == 2 || shape.len() == 4) {
            return Err(bad_shape(
                "batch norm input rank (must be 2 or 4)",
                shape.len(),
            ));
        }
        if shape[1] != self.channels {
            return Err(bad_shape("batch norm input channels", shape[1]));
        }
        Ok((shape[0], shape[2..].iter().product()))
    }

    /// Normalises `x` (`n` samples) with the running statistics; in train
    /// mode (frozen), keeps a copy of `x` for the backward pass.
    fn forward_running(
        &mut self,
        b: &B,
        x: &B::Buffer,
        (n, spatial): (usize, usize),
        train: bool,
    ) -> Result<B::Buffer> {
        let mut y = b.for_overwrite(b.len(x))?;
        let bn = self.request(n, spatial);
        let [g, be] = &self.params;
        b.batch_norm_forward(BatchNormForwardPass {
            bn,
            x,
            y: &mut y,
            gamma: g,
            beta: be,
            stats: BatchNormStats::new(&self.running_mean, &self.running_var),
        })?;
        if let Some((_, _, chunks)) = self.cache.take() {
            chunks.into_iter().for_each(|c| c.recycle(b));
        }
        let old = self.frozen_cache.take().map(|(kept, _)| kept);
        if train {
            self.frozen_cache = Some((keep_copy(b, x, old)?, spatial));
        } else if let Some(old) = old {
            b.recycle(old);
        }
        Ok(y)
    }

    /// Normalises a batch of `n` samples of `shape` with its own (ghost
    /// batches') statistics, updating the running ones. `fill(b, start,
    /// len, kept)` puts the chunk of the input from element `start` into
    /// `kept`, the chunk's buffer (its length whatever the last step left),
    /// which the backward pass reads.
    fn forward_batch(
        &mut self,
        b: &B,
        shape: &[usize],
        (n, spatial): (usize, usize),
        mut fill: impl FnMut(&B, usize, usize, &mut B::Buffer) -> Result<()>,
    ) -> Result<B::Buffer> {
        let per_sample = self.channels * spatial;
        let mut y = b.for_overwrite(n * per_sample)?;
        if let Some((old, _)) = self.frozen_cache.take() {
            b.recycle(old);
        }
        let ghost = self.ghost.unwrap_or(n).max(1);
        // The last step's chunks, their buffers overwritten where their
        // sizes fit (the statistics always do).
        let (mut kept_shape, mut chunks) = self
            .cache
            .take()
            .map(|(s, _, c)| (s, c))
            .unwrap_or_default();
        let (mut start, mut used) = (0, 0);
        while start < n {
            let samples = ghost.min(n - start);
            let bn = self.request(samples, spatial);
            let len = samples * per_sample;
            if used == chunks.len() {
                chunks.push(Chunk {
                    start,
                    samples,
                    x: b.for_overwrite(len)?,
                    mean: b.for_overwrite(self.channels)?,
                    var: b.for_overwrite(self.channels)?,
                });
            }
            let c = &mut chunks[used];
            (c.start, c.samples) = (start, samples);
            fill(b, start * per_sample, len, &mut c.x)?;
            b.batch_norm_stats(BatchNormStatsPass {
                bn,
                x: &c.x,
                mean: &mut c.mean,
                var: &mut c.var,
            })?;
            let [g, be] = &self.params;
            let normalise = |y: &mut B::Buffer| {
                b.batch_norm_forward(BatchNormForwardPass {
                    bn,
                    x: &c.x,
                    y,
                    gamma: g,
                    beta: be,
                    stats: BatchNormStats::new(&c.mean, &c.var),
                })
            };
            if samples == n {
                // One chunk, the whole batch: normalised straight into `y`.
                normalise(&mut y)?;
            } else {
                let mut yc = b.for_overwrite(len)?;
                normalise(&mut yc)?;
                b.copy_range(&yc, 0, &mut y, start * per_sample, len)?;
                b.recycle(yc);
            }
            self.update_running(b, &c.mean, &c.var, samples * spatial)?;
            used += 1;
            start += samples;
        }
        chunks.drain(used..).for_each(|c| c.recycle(b));
        kept_shape.clear();
        kept_shape.extend_from_slice(shape);
        self.cache = Some((kept_shape, spatial, chunks));
        Ok(y)
    }
}

impl<B: TensorBackend> Layer<B> for BatchNorm<B> {
    fn forward(&mut self, b: &B, input: &Activation<B>, train: bool) -> Result<Activation<B>> {
        let dims = self.input_dims(b, input)?;
        let x = &input.data;
        let y = if !train || self.frozen {
            self.forward_running(b, x, dims, train)?
        } else {
            self.forward_batch(b, &input.shape, dims, |b, start, len, kept| {
                if b.len(kept) != len {
                    let fresh = b.for_overwrite(len)?;
                    b.recycle(core::mem::replace(kept, fresh));
                }
                b.copy_range(x, start, kept, 0, len)
            })?
        };
        Ok(Activation::new(y, input.shape.clone()))
    }

    /// Keeps the input itself when the batch is one chunk (no ghost
    /// batches smaller than it) in train mode, not frozen; otherwise as
    /// [`Layer::forward`].
    fn forward_owned(&mut self, b: &B, input: Activation<B>, train: bool) -> Result<Activation<B>> {
        let dims = self.input_dims(b, &input)?;
        if !train || self.frozen || self.ghost.is_some_and(|g| g < dims.0) {
            let y = self.forward(b, &input, train)?;
            b.recycle(input.data);
            return Ok(y);
        }
        let Activation { data, shape } = input;
        let mut given = Some(data);
        let y = self.forward_batch(b, &shape, dims, |b, _, _, kept| {
            if let Some(x) = given.take() {
                b.recycle(core::mem::replace(kept, x));
            }
            Ok(())
        })?;
        Ok(Activation::new(y, shape))
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        if self.frozen_cache.is_some() {
            return self.frozen_backward(b, dy);
        }
        let (shape, spatial, chunks) = self.cache.as_ref().ok_or_else(no_cache)?;
        let total: usize = shape.iter().product();
        smoothout::tensor::check_len("batch norm dy", total, b.len(dy))?;
        let per_sample = self.channels * spatial;
        let mut dx = b.for_overwrite(total)?;
        let mut dg = b.for_overwrite(self.channels)?;
        let mut dbeta = b.for_overwrite(self.channels)?;
        for c in chunks {
            let bn = self.request(c.samples, *spatial);
            let len = c.samples * per_sample;
            let mut run = |dy: &B::Buffer, dx: &mut B::Buffer| {
                b.batch_norm_backward(BatchNormBackwardPass {
                    bn,
                    x: &c.x,
                    dy,
                    gamma: &self.params[0],
                    stats: BatchNormStats::new(&c.mean, &c.var),
                    grads: BatchNormGrads::new(dx, &mut dg, &mut dbeta),
                })
            };
            if len == total {
                // One chunk, the whole batch: `dy` and `dx` as they are.
                run(dy, &mut dx)?;
            } else {
                let mut dyc = b.for_overwrite(len)?;
                b.copy_range(dy, c.start * per_sample, &mut dyc, 0, len)?;
                let mut dxc = b.for_overwrite(len)?;
                run(&dyc, &mut dxc)?;
                b.copy_range(&dxc, 0, &mut dx, c.start * per_sample, len)?;
                b.recycle(dyc);
                b.recycle(dxc);
            }
            b.add(&dg, &mut self.grads[0])?;
            b.add(&dbeta, &mut self.grads[1])?;
        }
        b.recycle(dg);
        b.recycle(dbeta);
        Ok(dx)
    }

    fn buffers(&self) -> Vec<(String, &B::Buffer)> {
        vec![
            (format!("{}.running_mean", self.name), &self.running_mean),
            (format!("{}.running_var", self.name), &self.running_var),
        ]
    }
    fn buffers_mut(&mut self) -> Vec<(String, &mut B::Buffer)> {
        vec![
            (
                format!("{}.running_mean", self.name),
                &mut self.running_mean,
            ),
            (format!("{}.running_var", self.name), &mut self.running_var),
        ]
    }
    fn specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::normalization(format!("{}.weight", self.name), self.channels),
            ParamSpec::normalization(format!("{}.bias", self.name), self.channels),
        ]
    }
    params_in_fields!();
}
