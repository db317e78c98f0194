//! One optimiser step: the batch of the run's data order, its inputs
//! (augmented, normalised), the ghost chunks with their SmoothOut or RWP
//! draws, the two-pass methods (SAM, ASAM, m-RWP), clipping and the update.

use std::sync::Arc;
use std::time::Instant;

use smoothout::tensor::TensorBackend;
use smoothout::{Draw, Real, Sgd, SmoothOut};

use super::report::StepInfo;
use super::{Opt, Trainer};
use crate::data::Dataset;
use crate::error::{Result, TrainError};
use crate::eval::count_correct;
use crate::layers::{Activation, Layer};
use crate::networks::Sequential;
use crate::optim::{clip_grad_norm, Ascent, SgdMomentum};
use crate::rng::{derive_seed, permutation, seeded_rng, STREAM_AUGMENT, STREAM_ORDER};
use crate::train::config::Method;

impl<B: TensorBackend + 'static> Trainer<B> {
    /// The example indices of step `step_in_epoch` of `epoch` (0-based).
    fn batch_indices(&mut self, epoch: u64, step_in_epoch: u64, out: &mut Vec<usize>) {
        let seed = derive_seed(self.config.seed, STREAM_ORDER, epoch);
        let n = self.train_len;
        if self.order.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.order = Some((epoch, permutation(n, seed)));
        }
        out.clear();
        let Some((_, order)) = &self.order else {
            return;
        };
        let lo = (step_in_epoch as usize)
            .saturating_mul(self.config.batch)
            .min(n);
        let hi = lo.saturating_add(self.config.batch).min(n);
        out.extend_from_slice(&order[lo..hi]);
    }

    /// Normalised and augmented training inputs of `indices` for `step`,
    /// into `x`.
    fn inputs(&self, data: &Dataset, indices: &[usize], step: u64, x: &mut Vec<f32>) -> Result<()> {
        x.clear();
        x.resize(indices.len() * data.image_len(), 0.0);
        data.batch_f32(indices, x)?;
        let mut rng = seeded_rng(derive_seed(self.config.seed, STREAM_AUGMENT, step));
        self.config.augment.apply(x, self.image_shape, &mut rng)?;
        self.normalize.apply(x, self.image_shape)?;
        Ok(())
    }

    /// Runs a SmoothOut operation on the network's parameters (nothing for
    /// the baseline).
    fn with_smoothout(
        &mut self,
        op: impl FnOnce(&mut SmoothOut<B>, &B, &mut [&mut B::Buffer]) -> smoothout::Result<()>,
    ) -> Result<()> {
        let Some(so) = self.smoothout.as_mut() else {
            return Ok(());
        };
        let b = &*self.backend;
        self.lists.on_params(&mut self.net, |p| op(so, b, p))
    }

    /// Adds θ of `draw` to the network's parameters (the methods that
    /// draw noise).
    fn perturb(&mut self, draw: Draw) -> Result<()> {
        if let Some(r) = self.rows.as_mut() {
            let b = &*self.backend;
            return self
                .lists
                .on_params(&mut self.net, |p| r.perturb(b, p, draw));
        }
        self.with_smoothout(|so, b, p| so.perturb(b, p, draw))
    }

    /// Takes θ of `draw` out again (the methods that draw noise).
    fn denoise(&mut self, draw: Draw) -> Result<()> {
        if let Some(r) = self.rows.as_mut() {
            let b = &*self.backend;
            return self
                .lists
                .on_params(&mut self.net, |p| r.denoise(b, p, draw));
        }
        self.with_smoothout(|so, b, p| so.denoise(b, p, draw))
    }

    /// Forward and backward of one ghost chunk; gradients are added in,
    /// scaled by `weight` (the chunk's share of the batch). Returns the
    /// chunk's mean loss and correct count.
    fn chunk_pass(&mut self, x: &[f32], labels: &[u32], weight: f64) -> Result<(f64, u64)> {
        let b = &*self.backend;
        // Every buffer of the pass goes back to the backend when done with,
        // and the host memory is the last step's: a steady loop allocates
        // nothing here.
        self.host.clear();
        self.host.extend(x.iter().map(|&f| B::Elem::from_f32(f)));
        let [c, h, w] = self.image_shape;
        let xs = Activation::new(b.upload(&self.host)?, [labels.len(), c, h, w]);
        let logits = self.net.forward_owned(b, xs, true)?;
        let (loss, mut dz) = self.loss.forward(b, &logits, labels)?;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step: self.step });
        }
        self.host
            .resize(b.len(&logits.data), B::Elem::from_f64(0.0));
        b.download(&logits.data, &mut self.host)?;
        b.recycle(logits.data);
        let correct = count_correct(&self.host, self.classes, labels);
        if weight != 1.0 {
            b.scale(B::Elem::from_f64(weight), &mut dz)?;
        }
        self.net.backward_params(b, &dz)?;
        b.recycle(dz);
        Ok((loss, correct))
    }

    /// One optimiser step on a batch the caller prepared: `x` holds
    /// `labels.len()` images of the training set's shape, normalised and
    /// augmented as wanted. Ghost chunks, each perturbed with its own draw
    /// and de-noised after its backward (the last one fused into the SGD
    /// update), clipping, the update; the step counter advances (the
    /// learning rate follows it). SAM, ASAM and m-RWP run the chunks twice,
    /// as [`Method`] describes, with the BatchNorm statistics of the first
    /// pass. Returns the batch's mean loss and how many examples the
    /// network got right (at the point [`StepInfo::loss`] says). [`Trainer::step`]
    /// does the same on the next batch of the run's data order.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an empty batch, `x` of the wrong length,
    /// or a ghost chunk of one example for a network with BatchNorm over
    /// features; [`TrainError::NonFinite`] when the loss or SAM's
    /// gradient norm diverges (the parameters are then de-noised or put
    /// back at `w`, and not updated); backend errors.
    pub fn step_batch(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let backend = Arc::clone(&self.backend);
        backend.run(|| self.step_here(x, labels))
    }

    /// [`Trainer::step_batch`] on the calling thread.
    fn step_here(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let image_len: usize = self.image_shape.iter().product();
        if labels.is_empty() || x.len() != labels.len() * image_len {
            return Err(TrainError::config(
                "batch",
                format!(
                    "{} inputs for {} labels of {image_len} values each",
                    x.len(),
                    labels.len()
                ),
            ));
        }
        let n = labels.len();
        if self.config.one_example_chunk(n) {
            return Err(TrainError::config(
                "batch",
                format!(
                    "a batch of {n} in chunks of {} has a chunk of 1 example: {}",
                    self.config.chunk(),
                    self.config.one_example_why()
                ),
            ));
        }
        let chunks = n.div_ceil(self.config.chunk());
        self.net.zero_grad(&*self.backend)?;
        let (loss_sum, correct) = match self.config.method {
            Method::Sam | Method::Asam => self.ascent_passes(x, labels)?,
            Method::MixedRwp => self.mixed_passes(x, labels)?,
            _ => self.passes(x, labels, 1.0, true)?,
        };
        let last = Draw::new(self.step, chunks as u64 - 1);
        let epoch = self.step / self.steps_per_epoch;
        let lr = self.config.regime.lr(epoch, self.step)?;
        self.update(last, lr)?;
        self.step += 1;
        Ok((loss_sum / n as f64, correct))
    }

    /// Forward and backward of every ghost chunk of the batch (`x`,
    /// `labels` checked by [`Trainer::step_batch`]), gradients added in,
    /// each chunk's scaled by `weight` times its share of the batch. With
    /// `noisy`, each chunk is perturbed with its own draw and de-noised
    /// after its backward, except the last, which [`Trainer::update`]
    /// de-noises (nothing happens for methods without noise). Returns the
    /// summed loss over the examples and the correct count.
    fn passes(
        &mut self,
        x: &[f32],
        labels: &[u32],
        weight: f64,
        noisy: bool,
    ) -> Result<(f64, u64)> {
        let image_len: usize = self.image_shape.iter().product();
        let n = labels.len();
        let chunk = self.config.chunk();
        let chunks = n.div_ceil(chunk);
        let (mut loss_sum, mut correct) = (0.0, 0);
        for g in 0..chunks {
            let (lo, hi) = (g * chunk, ((g + 1) * chunk).min(n));
            let draw = Draw::new(self.step, g as u64);
            self.net
                .set_dropout_step(self.step.wrapping_mul(chunks as u64) + g as u64);
            if noisy {
                self.perturb(draw)?;
            }
            let share = weight * ((hi - lo) as f64 / n as f64);
            let pass = self.chunk_pass(&x[lo * image_len..hi * image_len], &labels[lo..hi], share);
            let (loss, c) = match pass {
                Ok(v) => v,
                Err(e) => {
                    if noisy {
                        self.denoise(draw)?;
                    }
                    return Err(e);
                }
            };
            loss_sum += loss * (hi - lo) as f64;
            correct += c;
            if noisy && g + 1 < chunks {
                self.denoise(draw)?;
            }
        }
        Ok((loss_sum, correct))
    }

    /// Runs `pass`, the second pass of a two-pass method, and then puts
    /// back the BatchNorm statistics as the first pass left them, whatever
    /// `pass` returned: the running statistics come from the first pass
    /// only (a second pass at `w + ε` would count each batch twice, and at a
    /// point the network never takes).
    fn second_pass<T>(&mut self, pass: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let stats: Vec<&B::Buffer> = self.net.buffers().into_iter().map(|(_, s)| s).collect();
        hold(&*self.backend, &mut self.held_stats, &stats)?;
        let result = pass(self);
        let b = &*self.backend;
        for ((_, s), h) in self.net.buffers_mut().into_iter().zip(&self.held_stats) {
            b.copy(h, s)?;
        }
        result
    }

    /// m-RWP's passes: the gradient at `w` (BatchNorm statistics
    /// updated), held, then the gradient at `w + θ` (θ of the last chunk
    /// left for [`Trainer::update`] to remove), and the mix `β·g(w) +
    /// (1 − β)·g(w + θ)` in the network's gradient buffers. Each pass sums
    /// its chunks as a one-pass step does, so at γ = 0 and β = ½ the mix is
    /// the baseline's gradient bit for bit. Returns the first pass's summed
    /// loss and correct count.
    fn mixed_passes(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let clean = self.passes(x, labels, 1.0, false)?;
        hold(&*self.backend, &mut self.held, &self.net.grads())?;
        self.net.zero_grad(&*self.backend)?;
        self.second_pass(|t| t.passes(x, labels, 1.0, true))?;
        let b = &*self.backend;
        let beta = self.config.beta;
        for (g, h) in lists(&mut self.net, self.specs.len())
            .1
            .into_iter()
            .zip(&self.held)
        {
            b.scale(B::Elem::from_f64(1.0 - beta), g)?;
            b.axpy(B::Elem::from_f64(beta), h, g)?;
        }
        Ok(clean)
    }

    /// SAM's and ASAM's passes: the gradient at `w` (BatchNorm statistics
    /// updated), ε from it on the perturbed parameters, the gradient at
    /// `w + ε` in the network's gradient buffers, and the parameters back
    /// at `w` exactly (restored from a copy, not by subtracting ε). Returns
    /// the first pass's summed loss and correct count.
    fn ascent_passes(&mut self, x: &[f32], labels: &[u32]) -> Result<(f64, u64)> {
        let clean = self.passes(x, labels, 1.0, false)?;
        let ascent = match self.config.method {
            Method::Asam => Ascent::Asam {
                rho: self.config.a,
                eta: self.config.eta,
            },
            _ => Ascent::Sam { rho: self.config.a },
        };
        let b = &*self.backend;
        let (params, grads) = lists(&mut self.net, self.specs.len());
        let (mut ps, mut gs) = (Vec::new(), Vec::new());
        for ((p, g), spec) in params.into_iter().zip(grads).zip(&self.specs) {
            if spec.perturbed {
                ps.push(p);
                gs.push(&*g);
            }
        }
        hold(
            b,
            &mut self.held,
            &ps.iter().map(|p| &**p).collect::<Vec<_>>(),
        )?;
        let norm = ascent.perturb(b, &mut ps, &gs)?;
        if !norm.is_finite() {
            return Err(TrainError::NonFinite { step: self.step });
        }
        self.net.zero_grad(&*self.backend)?;
        let second = self.second_pass(|t| t.passes(x, labels, 1.0, false));
        let b = &*self.backend;
        let (params, _) = lists(&mut self.net, self.specs.len());
        let perturbed = params
            .into_iter()
            .zip(&self.specs)
            .filter_map(|(p, spec)| spec.perturbed.then_some(p));
        for (p, h) in perturbed.zip(&self.held) {
            b.copy(h, p)?;
        }
        second?;
        Ok(clean)
    }

    /// Clipping, de-noising of `last` and the update at rate `lr`, in
    /// place on the network's own buffers.
    fn update(&mut self, last: Draw, lr: f64) -> Result<()> {
        let b = &*self.backend;
        let (mut params, mut grads) = self.lists.lists(&mut self.net);
        if let Some(max) = self.config.clip {
            clip_grad_norm(b, &mut grads, max)?;
        }
        self.opt.get_mut().set_lr(lr)?;
        let sgd_step = |sgd: &SgdMomentum<B>| Sgd {
            lr,
            ..*sgd.config()
        };
        match (&mut self.smoothout, &mut self.rows, &mut self.opt) {
            (Some(so), _, Opt::SgdMomentum(sgd)) if !sgd.nesterov() => {
                let cfg = sgd_step(sgd);
                so.denoise_sgd(b, &mut params, &grads, sgd.velocity_mut(), &cfg, last)?;
                sgd.count_step();
            }
            (None, Some(r), Opt::SgdMomentum(sgd)) if !sgd.nesterov() => {
                let cfg = sgd_step(sgd);
                r.denoise_sgd(b, &mut params, &grads, sgd.velocity_mut(), &cfg, last)?;
                sgd.count_step();
            }
            (so, rows, opt) => {
                if let Some(so) = so {
                    so.denoise(b, &mut params, last)?;
                }
                if let Some(r) = rows {
                    r.denoise(b, &mut params, last)?;
                }
                let read = self.lists.read_only(&grads);
                opt.get_mut().step(b, &mut params, &read)?;
                self.lists.keep_read(read);
            }
        }
        self.lists.keep(params, grads);
        Ok(())
    }

    /// Runs the next step of the run on `train` (the set given to
    /// [`Trainer::new`]). Returns the step's figures.
    ///
    /// # Errors
    /// [`TrainError::Config`] when the run is finished; backend and data
    /// errors; [`TrainError::NonFinite`] when the loss diverges (the
    /// parameters are then de-noised and not updated).
    pub fn step(&mut self, train: &Dataset) -> Result<StepInfo> {
        if self.finished() {
            return Err(TrainError::config(
                "--epochs",
                "the run has finished every epoch; raise --epochs to continue it",
            ));
        }
        if train.len() != self.train_len {
            return Err(TrainError::config(
                "--dataset",
                "the training set differs from the one the trainer was built for",
            ));
        }
        let start = Instant::now();
        let epoch = self.step / self.steps_per_epoch;
        let in_epoch = self.step % self.steps_per_epoch;
        // The batch's memory is the last step's; it is put back whatever
        // happens.
        let mut batch = core::mem::take(&mut self.batch);
        let done = self.step_on(train, (epoch, in_epoch), &mut batch);
        self.batch = batch;
        let (loss, correct, lr, n) = done?;
        self.sums.loss += loss * n as f64;
        self.sums.correct += correct;
        self.sums.seen += n as u64;
        self.sums.seconds += start.elapsed().as_secs_f64();
        Ok(StepInfo {
            epoch: epoch + 1,
            epochs: self.total_epochs,
            step_in_epoch: in_epoch + 1,
            steps_per_epoch: self.steps_per_epoch,
            global_step: self.step,
            loss,
            lr,
            images_per_sec: self.sums.seen as f64 / self.sums.seconds.max(1e-9),
        })
    }

    /// [`Trainer::step`]'s batch, read into `batch`, and its step. Returns
    /// the loss, the correct count, the learning rate and the batch size.
    fn step_on(
        &mut self,
        train: &Dataset,
        (epoch, in_epoch): (u64, u64),
        batch: &mut BatchMemory,
    ) -> Result<(f64, u64, f64, usize)> {
        let BatchMemory {
            indices,
            labels,
            labels_u32,
            x,
        } = batch;
        self.batch_indices(epoch, in_epoch, indices);
        self.inputs(train, indices, self.step, x)?;
        labels.clear();
        labels.resize(indices.len(), 0);
        train.batch_labels(indices, labels)?;
        labels_u32.clear();
        labels_u32.extend(labels.iter().map(|&l| l as u32));
        let lr = self.config.regime.lr(epoch, self.step)?;
        let (loss, correct) = self.step_batch(x, labels_u32)?;
        Ok((loss, correct, lr, indices.len()))
    }
}

/// The host memory of [`Trainer::step`]'s batch, kept from step to step.
#[derive(Debug, Default)]
pub(super) struct BatchMemory {
    indices: Vec<usize>,
    labels: Vec<usize>,
    labels_u32: Vec<u32>,
    x: Vec<f32>,
}

/// Copies `from` into `held`, allocating `held` anew unless it already
/// holds buffers of the same lengths (so a trainer allocates once, at its
/// first step).
fn hold<B: TensorBackend>(b: &B, held: &mut Vec<B::Buffer>, from: &[&B::Buffer]) -> Result<()> {
    let fits = held.len() == from.len() && held.iter().zip(from).all(|(h, f)| b.len(h) == b.len(f));
    if !fits {
        *held = from
            .iter()
            .map(|f| b.zeros(b.len(f)))
            .collect::<smoothout::Result<_>>()?;
    }
    for (f, h) in from.iter().zip(held.iter_mut()) {
        b.copy(f, h)?;
    }
    Ok(())
}

/// The network's parameters and gradients in spec order (`n` of each), each
/// list made at its full size at once.
fn lists<B: TensorBackend>(
    net: &mut Sequential<B>,
    n: usize,
) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
    let (mut params, mut grads) = (Vec::with_capacity(n), Vec::with_capacity(n));
    net.append_params_and_grads(&mut params, &mut grads);
    (params, grads)
}

/// The memory of the parameter lists of the steps' hot paths (perturb,
/// de-noise, update), kept from step to step so that a steady step
/// allocates none: the lists borrow the network, so they cannot be kept
/// themselves; their memory is kept empty, as a list of `usize`s, which
/// have the size and alignment of a reference.
#[derive(Debug, Default)]
pub(super) struct ListMemory {
    params: Vec<usize>,
    grads: Vec<usize>,
    read: Vec<usize>,
}

impl ListMemory {
    /// The network's parameters and gradients in spec order, in this
    /// memory (allocated at the first call).
    fn lists<'a, B: TensorBackend>(
        &mut self,
        net: &'a mut Sequential<B>,
    ) -> (Vec<&'a mut B::Buffer>, Vec<&'a mut B::Buffer>) {
        let mut params = recast(core::mem::take(&mut self.params));
        let mut grads = recast(core::mem::take(&mut self.grads));
        net.append_params_and_grads(&mut params, &mut grads);
        (params, grads)
    }

    /// `f` on the network's parameters, listed in this memory.
    fn on_params<B: TensorBackend>(
        &mut self,
        net: &mut Sequential<B>,
        f: impl FnOnce(&mut [&mut B::Buffer]) -> smoothout::Result<()>,
    ) -> Result<()> {
        let (mut params, grads) = self.lists(net);
        f(&mut params)?;
        self.keep(params, grads);
        Ok(())
    }

    /// Takes the memory of lists made by [`ListMemory::lists`] back.
    fn keep<T>(&mut self, params: Vec<T>, grads: Vec<T>) {
        (self.params, self.grads) = (recast(params), recast(grads));
    }

    /// `list` read-only, in this memory.
    fn read_only<'b, T>(&mut self, list: &'b [&mut T]) -> Vec<&'b T> {
        let mut read = recast(core::mem::take(&mut self.read));
        read.extend(list.iter().map(|x| &**x));
        read
    }

    /// Takes the memory of a list made by [`ListMemory::read_only`] back.
    fn keep_read<T>(&mut self, read: Vec<T>) {
        self.read = recast(read);
    }
}

/// An empty list of `U` in `v`'s memory: `collect` reuses a vector's memory
/// for elements of the same size and alignment (std's in-place iteration),
/// which holds for the references and `usize`s of [`ListMemory`]; for any
/// other pair it allocates anew, which is only slower.
fn recast<T, U>(v: Vec<T>) -> Vec<U> {
    v.into_iter().filter_map(|_| None).collect()
}
