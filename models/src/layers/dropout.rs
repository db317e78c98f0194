//! Dropout with counter-based masks.

use super::layer::{no_cache, reuse, Activation, Layer};
use smoothout::tensor::TensorBackend;
use smoothout::{Noise, NoiseKey, Real, Result};

/// Inverted dropout: in train mode each element is zeroed with probability
/// `p` and the rest scaled by `1 / (1 − p)`; in eval mode the identity.
///
/// ```text
/// key   = NoiseKey::from_seed(seed).fold_in(stream).fold_in(step)
/// d_i   = Bernoulli(p) draw i of key        (the library's Philox noise)
/// y_i   = x_i · (1 − d_i) / (1 − p)         (0 everywhere when p = 1)
/// ```
///
/// The mask is a pure function of `(seed, stream, step, i)`: the same step
/// gives the same mask on every backend and thread count, and a resumed run
/// reproduces it. `step` starts at 0 and advances by one after each
/// train-mode forward ([`Dropout::set_step`] sets it, e.g. to the
/// optimiser step on resume); `stream` tells apart the dropout layers of one
/// network.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, Dropout, Layer};
/// let b = Reference::<f64>::new();
/// let mut d = Dropout::new(0.5, 7)?;
/// let x = Activation::new(vec![1.0; 8], [8]);
/// let y = d.forward(&b, &x, true)?;
/// assert!(y.data.iter().all(|&v| v == 0.0 || v == 2.0));
/// let y = d.forward(&b, &x, false)?;
/// assert_eq!(y.data, vec![1.0; 8]);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Dropout<B: TensorBackend> {
    p: f64,
    seed: u64,
    stream: u64,
    step: u64,
    mask: Option<B::Buffer>,
    identity: bool,
    frozen: bool,
}

impl<B: TensorBackend> Dropout<B> {
    /// Drop probability `p ∈ [0, 1]`, masks keyed by `seed`.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidProbability`] for `p` outside `[0, 1]` or NaN.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        Noise::bernoulli(p)?;
        Ok(Dropout {
            p,
            seed,
            stream: 0,
            step: 0,
            mask: None,
            identity: false,
            frozen: false,
        })
    }

    /// With stream id `stream` (one per dropout layer of a network).
    #[must_use]
    pub fn with_stream(mut self, stream: u64) -> Self {
        self.stream = stream;
        self
    }

    /// Sets the step counter used by the next train-mode forward.
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The step counter the next train-mode forward will use.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The drop probability.
    #[must_use]
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<B: TensorBackend> Dropout<B> {
    /// Drops in place: `y` holds the input and receives the output (`n`
    /// elements).
    fn apply(&mut self, b: &B, y: &mut B::Buffer, n: usize, train: bool) -> Result<()> {
        if !train || self.frozen {
            self.identity = true;
            return Ok(());
        }
        let key = NoiseKey::from_seed(self.seed)
            .fold_in(self.stream)
            .fold_in(self.step);
        self.step = self.step.wrapping_add(1);
        let mut dropped = b.for_overwrite(n)?;
        b.fill_noise(key, &Noise::Bernoulli { p: self.p }, &mut dropped)?;
        let s = if self.p < 1.0 {
            1.0 / (1.0 - self.p)
        } else {
            0.0
        };
        let mut mask = reuse(b, self.mask.take(), n)?;
        b.fill(B::Elem::from_f64(s), &mut mask)?;
        b.axpy(B::Elem::from_f64(-s), &dropped, &mut mask)?;
        b.recycle(dropped);
        b.mul(&mask, y)?;
        self.mask = Some(mask);
        self.identity = false;
        Ok(())
    }
}

impl<B: TensorBackend> Layer<B> for Dropout<B> {
    fn forward(&mut self, b: &B, input: &Activation<B>, train: bool) -> Result<Activation<B>> {
        let n = input.numel(b, "dropout input")?;
        let mut y = b.for_overwrite(n)?;
        b.copy(&input.data, &mut y)?;
        self.apply(b, &mut y, n, train)?;
        Ok(Activation::new(y, input.shape.clone()))
    }

    fn forward_owned(&mut self, b: &B, input: Activation<B>, train: bool) -> Result<Activation<B>> {
        let n = input.numel(b, "dropout input")?;
        let Activation { mut data, shape } = input;
        self.apply(b, &mut data, n, train)?;
        Ok(Activation::new(data, shape))
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let mut dx = b.for_overwrite(b.len(dy))?;
        b.copy(dy, &mut dx)?;
        if self.identity {
            return Ok(dx);
        }
        let mask = self.mask.as_ref().ok_or_else(no_cache)?;
        b.mul(mask, &mut dx)?;
        Ok(dx)
    }
}
