//! Evaluation and batch upload, shared by the trainer and the analysis (so
//! that the analysis does not depend on the trainer): a dataset's examples
//! normalised and uploaded as one batch, a network's mean loss and
//! accuracy over a dataset in eval mode, and the correct count of a batch
//! of logits.

use smoothout::tensor::TensorBackend;
use smoothout::Real;

use crate::data::{Dataset, Normalize};
use crate::error::{Result, TrainError};
use crate::layers::{Activation, Layer};
use crate::networks::Sequential;

/// `x` converted to the backend's element type and uploaded.
pub(crate) fn upload_f32<B: TensorBackend>(b: &B, x: &[f32]) -> Result<B::Buffer> {
    let v: Vec<B::Elem> = x.iter().map(|&f| B::Elem::from_f32(f)).collect();
    Ok(b.upload(&v)?)
}

/// The examples `idx` of `data`, normalised by `normalize` and uploaded as
/// one batch of shape `[N, C, H, W]`, and the examples' labels.
pub(crate) fn upload_batch<B: TensorBackend>(
    b: &B,
    data: &Dataset,
    normalize: &Normalize,
    idx: &[usize],
) -> Result<(Activation<B>, Vec<usize>)> {
    let image_shape = data.image_shape();
    let mut x = vec![0.0f32; idx.len() * data.image_len()];
    data.batch_f32(idx, &mut x)?;
    normalize.apply(&mut x, image_shape)?;
    let mut labels = vec![0usize; idx.len()];
    data.batch_labels(idx, &mut labels)?;
    let mut shape = vec![idx.len()];
    shape.extend_from_slice(&image_shape);
    Ok((Activation::new(upload_f32(b, &x)?, shape), labels))
}

/// Mean softmax cross-entropy (`f64`, log-sum-exp) and accuracy of `net`
/// in eval mode over `data`, normalised by `normalize`, in batches of
/// `batch`.
///
/// # Errors
/// Backend and data errors; [`TrainError::Config`] for `batch == 0`.
pub fn evaluate<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    normalize: &Normalize,
    data: &Dataset,
    batch: usize,
) -> Result<(f64, f64)> {
    if batch == 0 {
        return Err(TrainError::config("--eval-batch", "must be at least 1"));
    }
    let classes = data.classes();
    let (mut loss, mut correct) = (0.0, 0u64);
    let all: Vec<usize> = (0..data.len()).collect();
    for idx in all.chunks(batch) {
        let (x, labels) = upload_batch(b, data, normalize, idx)?;
        let logits = net.forward(b, &x, false)?;
        let z = b.to_vec(&logits.data)?;
        for (row, &l) in z.chunks_exact(classes).zip(&labels) {
            let max = row
                .iter()
                .map(|&v| Real::to_f64(v))
                .fold(f64::NEG_INFINITY, f64::max);
            let lse = max
                + row
                    .iter()
                    .map(|&v| (Real::to_f64(v) - max).exp())
                    .sum::<f64>()
                    .ln();
            loss += lse - Real::to_f64(row[l]);
            if argmax(row) == l {
                correct += 1;
            }
        }
    }
    let n = data.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Number of rows of `logits` (`[N, classes]`, host) whose largest entry
/// (the first, on ties) is at the label.
pub(crate) fn count_correct<E: Real>(logits: &[E], classes: usize, labels: &[u32]) -> u64 {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == l as usize)
        .count() as u64
}

fn argmax<E: Real>(row: &[E]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if Real::to_f64(*v) > Real::to_f64(row[best]) {
            best = i;
        }
    }
    best
}
