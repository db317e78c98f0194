//! What defines a SmoothOut run ([`Config`]), how the noise leaves the
//! weights again ([`Denoise`]) and the coordinates of one draw ([`Draw`]).

use crate::error::{Error, Result};
use crate::noise::{Noise, Scaling, Schedule};

/// The coordinates of one noise draw: the optimiser step and the ghost batch
/// within it. Every `(step, ghost)` pair gets fresh, independent noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Draw {
    /// Index of the optimiser update (also the schedule's `t`).
    pub step: u64,
    /// Index of the ghost batch within the update (0 without ghost batches).
    pub ghost: u64,
}

impl Draw {
    /// Ghost batch `ghost` of update `step`.
    #[must_use]
    pub const fn new(step: u64, ghost: u64) -> Self {
        Draw { step, ghost }
    }
}

/// How the noise is taken out again after the backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Denoise {
    /// Regenerate θ from its key and subtract it: no memory beyond one scale
    /// per row (AdaSmoothOut). `(w + θ) − θ` may differ from `w` by rounding,
    /// and the difference accumulates about linearly over draws (6·10⁻⁵ in
    /// absolute terms after 10⁶ draws at a = 0.0375 in f32; the README has
    /// the table).
    #[default]
    Regenerate,
    /// Keep a copy of every perturbed parameter and restore it: bit-exact,
    /// one extra buffer per parameter. Needed for Bernoulli noise.
    Exact,
    /// The ablation of Table III: leave the noise in (the update is applied
    /// at the perturbed point, and the next draw adds to it).
    Off,
}

/// Everything that defines a SmoothOut run, with the authors' defaults.
///
/// ```
/// use smoothout::{Config, Noise, Scaling, Schedule, Denoise};
/// let ada = Config::new(Noise::uniform(0.0375)?)
///     .with_scaling(Scaling::FilterNorm)
///     .with_schedule(Schedule::Constant, 10_000)
///     .with_seed(42);
/// assert_eq!(ada.denoise, Denoise::Regenerate);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The distribution of θ.
    pub noise: Noise,
    /// Fixed (SmoothOut), per element, or per filter (AdaSmoothOut).
    pub scaling: Scaling,
    /// Strength multiplier over training.
    pub schedule: Schedule,
    /// Total optimiser steps (read by the `Tanh` schedule).
    pub total_steps: u64,
    /// How θ is removed.
    pub denoise: Denoise,
    /// Root of every noise key.
    pub seed: u64,
}

impl Config {
    /// `noise`, fixed scaling, constant schedule, regenerating de-noise, seed 0.
    #[must_use]
    pub fn new(noise: Noise) -> Self {
        Config {
            noise,
            scaling: Scaling::Fixed,
            schedule: Schedule::Constant,
            total_steps: 0,
            denoise: Denoise::Regenerate,
            seed: 0,
        }
    }

    /// With another scaling.
    #[must_use]
    pub fn with_scaling(mut self, scaling: Scaling) -> Self {
        self.scaling = scaling;
        self
    }

    /// With a schedule over `total_steps` optimiser steps.
    #[must_use]
    pub fn with_schedule(mut self, schedule: Schedule, total_steps: u64) -> Self {
        self.schedule = schedule;
        self.total_steps = total_steps;
        self
    }

    /// With another de-noising mode.
    #[must_use]
    pub fn with_denoise(mut self, denoise: Denoise) -> Self {
        self.denoise = denoise;
        self
    }

    /// With another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every value, and that the noise can be removed the chosen way.
    pub fn validate(&self) -> Result<()> {
        self.noise.validate()?;
        self.schedule.validate()?;
        if let Schedule::Tanh { .. } = self.schedule {
            self.schedule.coefficient(0, self.total_steps)?;
        }
        if self.denoise != Denoise::Regenerate {
            return Ok(());
        }
        match (self.noise, self.scaling) {
            (Noise::Bernoulli { .. }, _) => Err(Error::NotRegenerable {
                reason: "Bernoulli noise sets weights to zero, which erases them",
            }),
            (Noise::Gaussian { .. }, Scaling::PerElement) => Err(Error::NotRegenerable {
                reason: "per-element Gaussian noise can flip a weight's sign",
            }),
            (Noise::Uniform { a }, Scaling::PerElement) if a >= 1.0 => Err(Error::NotRegenerable {
                reason: "per-element uniform noise with a >= 1 can flip a weight's sign",
            }),
            _ => Ok(()),
        }
    }
}
