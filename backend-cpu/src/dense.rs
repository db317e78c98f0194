//! The per-channel sums of tensors laid out `[batch, channels]` (`inner =
//! 1`, the BatchNorm of dense layers): a task owns a block of channels and
//! sweeps the rows in order, adding each row's run of the block into one
//! accumulator per channel. Every sum runs over the rows in index order,
//! as the reference's per-channel loops do, so the bits are theirs; the
//! loop over a row's channels is what vectorises.

use smoothout::tensor::reference::wide;
use smoothout::Real;

/// `acc[j] += x[n, c0 + j]` for every row `n`.
#[inline(always)]
pub(crate) fn column_sums<T: Real>(x: &[T], channels: usize, c0: usize, acc: &mut [f64]) {
    let w = acc.len();
    for row in x.chunks_exact(channels) {
        for (a, &v) in acc.iter_mut().zip(&row[c0..c0 + w]) {
            *a += wide(v);
        }
    }
}

/// `acc[j] += (x[n, c0 + j] − mean[j])²` for every row `n`.
#[inline(always)]
pub(crate) fn column_square_deviations<T: Real>(
    x: &[T],
    channels: usize,
    c0: usize,
    mean: &[f64],
    acc: &mut [f64],
) {
    let w = acc.len();
    let mean = &mean[..w];
    for row in x.chunks_exact(channels) {
        for ((a, &v), &mu) in acc.iter_mut().zip(&row[c0..c0 + w]).zip(mean) {
            let d = wide(v) - mu;
            *a += d * d;
        }
    }
}

/// `dγ[j] += dy · x̂` and `dβ[j] += dy` at `[n, c0 + j]` for every row
/// `n`, with `x̂ = (x − μ) · inv_std` from `centres[j] = (μ, inv_std)`.
#[inline(always)]
pub(crate) fn column_norm_grads<T: Real>(
    x: &[T],
    dy: &[T],
    channels: usize,
    c0: usize,
    centres: &[(f64, f64)],
    dgamma: &mut [f64],
    dbeta: &mut [f64],
) {
    let w = dgamma.len();
    let (centres, dbeta) = (&centres[..w], &mut dbeta[..w]);
    for (xr, dr) in x.chunks_exact(channels).zip(dy.chunks_exact(channels)) {
        let (xr, dr) = (&xr[c0..c0 + w], &dr[c0..c0 + w]);
        for j in 0..w {
            let d = wide(dr[j]);
            let (mu, inv) = centres[j];
            dgamma[j] += d * ((wide(xr[j]) - mu) * inv);
            dbeta[j] += d;
        }
    }
}
