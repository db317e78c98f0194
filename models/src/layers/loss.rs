//! Softmax cross-entropy loss.

use super::layer::{bad_shape, Activation};
use smoothout::tensor::{check_len, CrossEntropy, TensorBackend};
use smoothout::Result;

/// The mean softmax cross-entropy of `[N, classes]` logits against `N`
/// labels, and its gradient (see [`smoothout::tensor::LossOps`]):
///
/// ```text
/// p_ij = softmax(z_i)_j      loss = −Σ_i ln p_{i, y_i} / N      dz_ij = (p_ij − [j = y_i]) / N
/// ```
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, SoftmaxCrossEntropy};
/// let b = Reference::<f64>::new();
/// let logits = Activation::new(vec![0.0, 0.0], [1, 2]);
/// let (loss, dz) = SoftmaxCrossEntropy::new(2).forward(&b, &logits, &[1])?;
/// assert!((loss - 2f64.ln()).abs() < 1e-15);
/// assert_eq!(dz, [0.5, -0.5]);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxCrossEntropy {
    classes: usize,
}

impl SoftmaxCrossEntropy {
    /// Over `classes` classes.
    #[must_use]
    pub fn new(classes: usize) -> Self {
        SoftmaxCrossEntropy { classes }
    }

    /// The loss and `∂loss/∂logits` for `logits` of shape `[N, classes]`.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for a shape that is not
    /// `[labels.len(), classes]` or a label `≥ classes`;
    /// [`smoothout::Error::LengthMismatch`] when the logits' buffer does not
    /// match their shape.
    pub fn forward<B: TensorBackend>(
        &self,
        b: &B,
        logits: &Activation<B>,
        labels: &[u32],
    ) -> Result<(f64, B::Buffer)> {
        logits.numel(b, "loss logits")?;
        let (logits, shape) = (&logits.data, &logits.shape);
        if shape.len() != 2 || shape[1] != self.classes {
            return Err(bad_shape(
                "loss logits shape (must be [N, classes])",
                shape.len(),
            ));
        }
        check_len(
            "loss labels (one per row of logits)",
            shape[0],
            labels.len(),
        )?;
        let mut d = b.for_overwrite(b.len(logits))?;
        let loss =
            b.softmax_cross_entropy(CrossEntropy::new(self.classes, logits, labels, &mut d))?;
        Ok((loss, d))
    }
}
