//! The progress bar (on a terminal) or one line per epoch and checkpoint
//! (otherwise, e.g. in logs and tests).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use smoothout::tensor::TensorBackend;
use smoothout_models::train::{Event, Trainer};

pub struct Progress {
    bar: Option<ProgressBar>,
    name: String,
    steps_per_epoch: u64,
}

impl Progress {
    pub fn new<B: TensorBackend + 'static>(name: &str, t: &Trainer<B>, quiet: bool) -> Self {
        let total = t.total_epochs() * t.steps_per_epoch();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} steps {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(name.to_string());
            bar.set_position(t.steps_done());
            bar
        });
        Progress {
            bar,
            name: name.to_string(),
            steps_per_epoch: t.steps_per_epoch(),
        }
    }

    pub fn event(&mut self, e: &Event<'_>) {
        match (e, &self.bar) {
            (Event::Step(s), Some(bar)) => {
                bar.set_position(s.global_step);
                bar.set_message(format!(
                    "epoch {}/{} step {}/{} loss {:.4} {:.0} img/s",
                    s.epoch, s.epochs, s.step_in_epoch, s.steps_per_epoch, s.loss, s.images_per_sec
                ));
            }
            (Event::Evaluating { epoch }, Some(bar)) => {
                bar.set_message(format!("epoch {epoch}: evaluating"));
            }
            (Event::Epoch(m), bar) => {
                let line = format!(
                    "{}: epoch {:>3}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  {:.1} s  {:.0} img/s",
                    self.name,
                    m.epoch,
                    m.train_loss,
                    100.0 * m.train_acc,
                    m.test_loss,
                    100.0 * m.test_acc,
                    m.seconds,
                    m.images_per_sec
                );
                match bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
            // Epoch lines already say that a checkpoint follows each epoch.
            (Event::Saved { path, step }, None) if step % self.steps_per_epoch != 0 => {
                eprintln!(
                    "{}: checkpoint at step {step}: {}",
                    self.name,
                    path.display()
                );
            }
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
