//! A trainer's state as a checkpoint and back: resuming, saving, and
//! restoring through the one checkpoint reader of `train/checkpoint.rs`.

use std::path::Path;

use smoothout::tensor::TensorBackend;

use super::{EpochSums, Trainer};
use crate::data::Dataset;
use crate::error::{Result, TrainError};
use crate::layers::Layer;
use crate::optim::OptimState;
use crate::train::checkpoint::{
    load_checkpoint_with, save_checkpoint, Checkpoint, CheckpointReader, LoadOptions, TensorData,
    CHECKPOINT_FORMAT,
};
use crate::train::config::TrainConfig;
use crate::train::files::{history_from_str, history_to_string};

/// What to do when a checkpoint belongs to another run.
const RESUME_HINT: &str = "start afresh without --resume, or point --out at the run that wrote it";

impl<B: TensorBackend + 'static> Trainer<B> {
    /// [`Trainer::new`], then the state of the checkpoint at `path`, whose
    /// checksums must be present and intact.
    ///
    /// # Errors
    /// As [`Trainer::resume_with`].
    pub fn resume(backend: B, config: TrainConfig, train: &Dataset, path: &Path) -> Result<Self> {
        Self::resume_with(backend, config, train, path, LoadOptions::default())
    }

    /// [`Trainer::new`], then the state of the checkpoint at `path`, read
    /// by [`load_checkpoint_with`] with
    /// `options` (whether a file without checksums is accepted).
    ///
    /// # Errors
    /// As [`Trainer::new`] and [`Trainer::restore`]; as
    /// [`load_checkpoint_with`] when the file
    /// cannot be read, is damaged or carries no checksums.
    pub fn resume_with(
        backend: B,
        config: TrainConfig,
        train: &Dataset,
        path: &Path,
        options: LoadOptions,
    ) -> Result<Self> {
        let mut t = Trainer::new(backend, config, train)?;
        let ckpt = load_checkpoint_with(path, options)?;
        t.restore(&ckpt, path)?;
        Ok(t)
    }

    /// The run's state as a checkpoint: parameters (`param.<name>`),
    /// BatchNorm statistics (`buffer.<name>`), optimiser buffers
    /// (`optim.<i>`), the normalisation (`normalize.mean`/`.std`), and in
    /// the metadata the format, the configuration's fingerprint, the
    /// network, the step, the epoch's running sums and the history.
    ///
    /// # Errors
    /// Backend errors.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let b = &*self.backend;
        let mut c = Checkpoint::new();
        for (spec, p) in self.specs.iter().zip(self.net.params()) {
            let v = b.to_vec(p)?;
            c.push(
                format!("param.{}", spec.name),
                &spec.shape,
                TensorData::from_slice(&v),
            );
        }
        for (name, buf) in self.net.buffers() {
            let v = b.to_vec(buf)?;
            c.push(
                format!("buffer.{name}"),
                &[v.len()],
                TensorData::from_slice(&v),
            );
        }
        let state = self.opt.get().state(b)?;
        for (i, v) in state.buffers.iter().enumerate() {
            c.push(format!("optim.{i}"), &[v.len()], TensorData::from_slice(v));
        }
        let (mean, std) = (self.normalize.mean(), self.normalize.std());
        c.push(
            "normalize.mean",
            &[mean.len()],
            TensorData::F32(mean.to_vec()),
        );
        c.push("normalize.std", &[std.len()], TensorData::F32(std.to_vec()));
        let meta = [
            ("format", CHECKPOINT_FORMAT.to_string()),
            ("fingerprint", self.config.fingerprint()),
            ("network", self.config.network.name()),
            ("image_shape", format!("{:?}", self.image_shape)),
            ("classes", self.classes.to_string()),
            ("step", self.step.to_string()),
            ("optim_kind", state.kind.to_string()),
            ("optim_step", state.step.to_string()),
            ("epoch_loss", format!("{:e}", self.sums.loss)),
            ("epoch_correct", self.sums.correct.to_string()),
            ("epoch_seen", self.sums.seen.to_string()),
            ("epoch_seconds", format!("{:e}", self.sums.seconds)),
            ("history", history_to_string(&self.history)),
        ];
        for (k, v) in &self.notes {
            c.metadata.insert(format!("note.{k}"), v.clone());
        }
        for (k, v) in meta {
            c.metadata.insert(k.to_string(), v);
        }
        Ok(c)
    }

    /// Adds a note that every later checkpoint carries in its metadata as
    /// `note.<key>` (e.g. the dataset's name, so that `smoothout eval` can
    /// find it); notes do not affect training.
    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.notes.retain(|(k, _)| *k != key);
        self.notes.push((key, value.into()));
    }

    /// Writes [`Trainer::checkpoint`] to `path` atomically.
    ///
    /// # Errors
    /// [`TrainError::Io`]; backend errors. The previous file is kept on
    /// error.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_checkpoint(path, &self.checkpoint()?)
    }

    /// Loads the state of a checkpoint written by a run of the same
    /// configuration (epochs aside) on the same data.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when the checkpoint is of another format,
    /// configuration, network or element type, lacks a tensor, or holds a
    /// NaN or infinity in any tensor (named) or in its epoch's running
    /// sums — values that came from the file, refused before any training
    /// could be blamed for them; nothing is changed then.
    pub fn restore(&mut self, c: &Checkpoint, path: &Path) -> Result<()> {
        let r = CheckpointReader::new(c, path);
        r.check_format().map_err(|e| match e {
            TrainError::Checkpoint { path, reason } => TrainError::Checkpoint {
                path,
                reason: format!("{reason} ({RESUME_HINT})"),
            },
            e => e,
        })?;
        let fp = self.config.fingerprint();
        let stored = r.meta("fingerprint")?;
        if stored != fp {
            return Err(r.bad(format!(
                "it was written by another configuration ({RESUME_HINT}):\n  checkpoint: {stored}\n  this run:   {fp}"
            )));
        }
        let step: u64 = r.number("step")?;
        if step > self.total_steps() {
            return Err(r.bad(format!(
                "it holds {step} steps, more than this run's {} epochs of {} steps ({RESUME_HINT})",
                self.total_epochs, self.steps_per_epoch
            )));
        }
        r.check_finite()?;
        // Read and check everything before changing anything.
        let params: Vec<Vec<B::Elem>> = self
            .specs
            .iter()
            .map(|s| r.tensor(&format!("param.{}", s.name), s.len()))
            .collect::<Result<_>>()?;
        let buffers: Vec<Vec<B::Elem>> = self
            .net
            .buffers()
            .into_iter()
            .map(|(n, buf)| r.tensor(&format!("buffer.{n}"), self.backend.len(buf)))
            .collect::<Result<_>>()?;
        let current = self.opt.get().state(&*self.backend)?;
        let optim = OptimState {
            kind: current.kind,
            step: r.number("optim_step")?,
            buffers: current
                .buffers
                .iter()
                .enumerate()
                .map(|(i, v)| r.tensor(&format!("optim.{i}"), v.len()))
                .collect::<Result<_>>()?,
        };
        let stored = r.meta("optim_kind")?;
        if stored != current.kind {
            return Err(r.bad(format!(
                "its optimiser is {stored}, this run's is {} ({RESUME_HINT})",
                current.kind
            )));
        }
        let history = history_from_str(path, r.meta("history")?)?;
        let sums = EpochSums {
            loss: r.finite("epoch_loss")?,
            correct: r.number("epoch_correct")?,
            seen: r.number("epoch_seen")?,
            seconds: r.finite("epoch_seconds")?,
        };
        let b = &*self.backend;
        for (p, v) in self.net.params_mut().into_iter().zip(&params) {
            *p = b.upload(v)?;
        }
        for ((_, buf), v) in self.net.buffers_mut().into_iter().zip(&buffers) {
            *buf = b.upload(v)?;
        }
        self.opt.get_mut().load_state(b, &optim)?;
        self.step = step;
        self.history = history;
        self.sums = sums;
        self.order = None;
        Ok(())
    }
}
