//! ReLU.

use super::layer::{keep_copy, keep_given, no_cache, Activation, Layer};
use smoothout::tensor::TensorBackend;
use smoothout::Result;

/// `y = max(x, 0)`; the gradient passes where `x > 0`.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, Layer, Relu};
/// let b = Reference::<f32>::new();
/// let y = Relu::new().forward(&b, &Activation::new(vec![-1.0, 2.0], [2]), false)?;
/// assert_eq!(y.data, [0.0, 2.0]);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Relu<B: TensorBackend> {
    x: Option<B::Buffer>,
}

impl<B: TensorBackend> Relu<B> {
    /// A ReLU.
    #[must_use]
    pub fn new() -> Self {
        Relu { x: None }
    }
}

impl<B: TensorBackend> Default for Relu<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: TensorBackend> Layer<B> for Relu<B> {
    fn forward(&mut self, b: &B, input: &Activation<B>, train: bool) -> Result<Activation<B>> {
        input.numel(b, "relu input")?;
        let Activation { data: x, shape } = input;
        let mut y = b.for_overwrite(b.len(x))?;
        b.relu(x, &mut y)?;
        if train {
            self.x = Some(keep_copy(b, x, self.x.take())?);
        }
        Ok(Activation::new(y, shape.clone()))
    }

    fn forward_owned(&mut self, b: &B, input: Activation<B>, train: bool) -> Result<Activation<B>> {
        input.numel(b, "relu input")?;
        let Activation { data: x, shape } = input;
        let mut y = b.for_overwrite(b.len(&x))?;
        b.relu(&x, &mut y)?;
        keep_given(b, &mut self.x, x, train, |x| x);
        Ok(Activation::new(y, shape))
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let x = self.x.as_ref().ok_or_else(no_cache)?;
        let mut dx = b.for_overwrite(b.len(x))?;
        b.relu_backward(x, dy, &mut dx)?;
        Ok(dx)
    }
}
