//! Whole runs: epochs of steps, evaluation after each, checkpoints and
//! metrics files, and stopping between two steps when asked.

use std::sync::atomic::{AtomicBool, Ordering};

use smoothout::tensor::TensorBackend;

use super::report::{Event, RunEnd, RunFiles, CHECKPOINT_FILE};
use super::{EpochSums, Trainer};
use crate::data::{Dataset, Split};
use crate::error::{Result, TrainError};
use crate::eval::evaluate;
use crate::train::files::{write_metrics, EpochMetrics};

impl<B: TensorBackend + 'static> Trainer<B> {
    /// Mean loss and accuracy of the network in eval mode over `data`.
    ///
    /// # Errors
    /// [`TrainError::Config`] when `data`'s images or classes differ from
    /// the training set's; backend errors.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<(f64, f64)> {
        if data.image_shape() != self.image_shape || data.classes() != self.classes {
            return Err(TrainError::config(
                "--dataset",
                "the evaluation set's image shape or classes differ from the training set's",
            ));
        }
        let (b, net, normalize) = (&*self.backend, &mut self.net, &self.normalize);
        b.run(|| evaluate(b, net, normalize, data, self.config.eval_batch))
    }

    /// Trains until every epoch has run (continuing from the current step),
    /// evaluating after each epoch, reporting through `on_event`, and —
    /// with `files` — checkpointing after each epoch (and every
    /// `files.every` steps) and rewriting the metrics files. Returns the
    /// history of every epoch.
    ///
    /// # Errors
    /// As [`Trainer::step`] and [`Trainer::evaluate`]; [`TrainError::Io`]
    /// when a file cannot be written (the previous checkpoint is kept).
    pub fn run(
        &mut self,
        data: &Split,
        files: Option<&RunFiles>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<EpochMetrics>> {
        self.run_until(self.total_steps(), data, files, on_event)
    }

    /// [`Trainer::run`], stopping once `step` optimiser steps are done (or
    /// the run is finished, whichever comes first).
    ///
    /// # Errors
    /// As [`Trainer::run`].
    pub fn run_until(
        &mut self,
        step: u64,
        data: &Split,
        files: Option<&RunFiles>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<EpochMetrics>> {
        self.run_until_stopped(step, data, files, on_event, &AtomicBool::new(false))?;
        Ok(self.history.clone())
    }

    /// [`Trainer::run_until`] that also stops, between two steps, once
    /// `stop` is set — by a signal handler, another thread, or `on_event`'s
    /// owner. The step under way when `stop` is set finishes (with its
    /// epoch's evaluation if it ends one); then, with `files`, a checkpoint
    /// of the step reached is written (unless one was just written), so
    /// that [`Trainer::resume`] continues bit-identically. `stop` is only
    /// read, never reset.
    ///
    /// A `stop` already set when this is called takes no step and writes
    /// nothing.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use smoothout::Reference;
    /// use smoothout_models::data::Dataset;
    /// use smoothout_models::train::{Event, Method, Network, RunEnd, TrainConfig, Trainer};
    ///
    /// let data = Dataset::digits_embedded().shuffled_split(300, 0)?;
    /// let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16])).with_batch(128);
    /// let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data.train)?;
    /// let stop = AtomicBool::new(false);
    /// let end = t.run_until_stopped(u64::MAX, &data, None, &mut |e| {
    ///     if let Event::Step(s) = e {
    ///         if s.global_step == 5 {
    ///             stop.store(true, Ordering::Relaxed); // e.g. from a Ctrl-C handler
    ///         }
    ///     }
    /// }, &stop)?;
    /// assert_eq!(end, RunEnd::Stopped { step: 5 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::run`].
    pub fn run_until_stopped(
        &mut self,
        step: u64,
        data: &Split,
        files: Option<&RunFiles>,
        on_event: &mut dyn FnMut(Event<'_>),
        stop: &AtomicBool,
    ) -> Result<RunEnd> {
        if files.and_then(|f| f.every) == Some(0) {
            return Err(TrainError::config(
                "--checkpoint-every",
                "must be at least 1",
            ));
        }
        // The step of the last checkpoint this call wrote, if any.
        let mut saved = None;
        let start = self.step;
        while !self.finished() && self.step < step {
            if stop.load(Ordering::Relaxed) {
                if let Some(f) = files.filter(|_| saved != Some(self.step) && self.step > start) {
                    let path = f.dir.join(CHECKPOINT_FILE);
                    self.save(&path)?;
                    on_event(Event::Saved {
                        path: &path,
                        step: self.step,
                    });
                }
                return Ok(RunEnd::Stopped { step: self.step });
            }
            let info = self.step(&data.train)?;
            on_event(Event::Step(&info));
            let at_epoch_end = info.step_in_epoch == info.steps_per_epoch;
            if at_epoch_end {
                on_event(Event::Evaluating { epoch: info.epoch });
                let m = self.finish_epoch(data, info.epoch, info.lr)?;
                on_event(Event::Epoch(&m));
            }
            if let Some(f) = files {
                let due = f.every.is_some_and(|k| self.step.is_multiple_of(k));
                if at_epoch_end || due {
                    let path = f.dir.join(CHECKPOINT_FILE);
                    self.save(&path)?;
                    if at_epoch_end {
                        write_metrics(&f.dir, &self.history)?;
                    }
                    saved = Some(self.step);
                    on_event(Event::Saved {
                        path: &path,
                        step: self.step,
                    });
                }
            }
        }
        Ok(RunEnd::Done)
    }

    /// Evaluates after epoch `epoch` (1-based) and appends its metrics.
    fn finish_epoch(&mut self, data: &Split, epoch: u64, lr: f64) -> Result<EpochMetrics> {
        let (train_loss, train_acc) = if self.config.eval_train {
            self.evaluate(&data.train)?
        } else {
            let seen = self.sums.seen.max(1) as f64;
            (self.sums.loss / seen, self.sums.correct as f64 / seen)
        };
        let (test_loss, test_acc) = self.evaluate(&data.test)?;
        let m = EpochMetrics {
            epoch,
            step: self.step,
            lr,
            train_loss,
            train_acc,
            test_loss,
            test_acc,
            seconds: self.sums.seconds,
            images_per_sec: self.sums.seen as f64 / self.sums.seconds.max(1e-9),
        };
        self.history.push(m.clone());
        self.sums = EpochSums::default();
        Ok(m)
    }
}
