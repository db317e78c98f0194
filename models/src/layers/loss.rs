//! Softmax cross-entropy loss.

use super::layer::bad_shape;
use smoothout::tensor::{CrossEntropy, TensorBackend};
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
/// use smoothout_models::layers::SoftmaxCrossEntropy;
/// let b = Reference::<f64>::new();
/// let (loss, dz) = SoftmaxCrossEntropy::new(2).forward(&b, &vec![0.0, 0.0], &[1, 2], &[1])?;
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

    /// The loss and `∂loss/∂logits` for `logits` of `shape = [N, classes]`.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for a shape that is not
    /// `[labels.len(), classes]` or a label `≥ classes`;
    /// [`smoothout::Error::LengthMismatch`] when `logits` does not match
    /// `shape`.
    pub fn forward<B: TensorBackend>(
        &self,
        b: &B,
        logits: &B::Buffer,
        shape: &[usize],
        labels: &[u32],
    ) -> Result<(f64, B::Buffer)> {
        super::layer::numel("loss logits", shape, b.len(logits))?;
        if shape.len() != 2 || shape[1] != self.classes {
            return Err(bad_shape(
                "loss logits shape (must be [N, classes])",
                shape.len(),
            ));
        }
        if shape[0] != labels.len() {
            return Err(smoothout::Error::LengthMismatch {
                what: "loss labels (one per row of logits)",
                expected: shape[0],
                actual: labels.len(),
            });
        }
        let mut d = b.zeros(b.len(logits))?;
        let loss =
            b.softmax_cross_entropy(CrossEntropy::new(self.classes, logits, labels, &mut d))?;
        Ok((loss, d))
    }
}
