//! Buffers handed back with `BufferOps::recycle`, kept for `zeros` and
//! `upload` to give out again, so that a training loop that hands back
//! what it drops stops allocating (and faulting in fresh pages) after its
//! first step.

use std::sync::Mutex;

use ndarray::ArrayD;

/// At most this many spare buffers are kept; handing back one more drops
/// the one kept longest. A ResNet-44 step at batch 128 has far fewer spare
/// at any moment; the bound only stops a loop whose lengths never repeat
/// (evaluation at ever-new batch sizes, say) from keeping memory forever.
pub(crate) const SPARE_LIMIT: usize = 256;

/// The spare buffers, oldest first. Every one is one-dimensional and
/// contiguous, so that handing it out as a buffer of its length needs no
/// reshaping.
pub(crate) struct Spare<T>(Mutex<Vec<ArrayD<T>>>);

impl<T> Spare<T> {
    pub(crate) fn new() -> Self {
        Spare(Mutex::new(Vec::with_capacity(SPARE_LIMIT + 1)))
    }

    /// Keeps `a` when it is one-dimensional and contiguous (anything else is
    /// dropped, as it would be without the cache), dropping the oldest
    /// spare beyond [`SPARE_LIMIT`].
    pub(crate) fn put(&self, a: ArrayD<T>) {
        if a.ndim() != 1 || a.as_slice().is_none() || a.is_empty() {
            return;
        }
        let evicted = {
            let mut spare = self.lock();
            spare.push(a);
            (spare.len() > SPARE_LIMIT).then(|| spare.remove(0))
        };
        // Freed outside the lock.
        drop(evicted);
    }

    /// The most recently kept spare buffer of exactly `len` elements, its
    /// contents whatever they were.
    pub(crate) fn take(&self, len: usize) -> Option<ArrayD<T>> {
        let mut spare = self.lock();
        let i = spare.iter().rposition(|a| a.len() == len)?;
        Some(spare.remove(i))
    }

    /// How many buffers are kept.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ArrayD<T>>> {
        // A panic while the lock was held cannot leave the list half
        // changed (each change is one push or remove), so a poisoned lock
        // is still a good list.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T> core::fmt::Debug for Spare<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Spare({} buffers)", self.len())
    }
}

/// The per-channel memory of the BatchNorm, bias-gradient and loss kernels
/// (sums, statistics, factors), kept from call to call so that they
/// allocate only when a call needs more than any before it.
#[derive(Default)]
pub(crate) struct ChannelWork {
    /// Up to two sums per channel.
    pub(crate) sums: Vec<f64>,
    /// The per-channel sums' per-block rows.
    pub(crate) rows: Vec<f64>,
    /// The per-channel sums' transposed runs.
    pub(crate) wide: Vec<f64>,
    /// One value per channel (or per row of a loss).
    pub(crate) a: Vec<f64>,
    /// Another value per channel.
    pub(crate) b: Vec<f64>,
    /// `(μ, 1/√(σ² + ε))` per channel.
    pub(crate) centres: Vec<(f64, f64)>,
    /// The forward factors per channel.
    pub(crate) forward: Vec<[f64; 4]>,
    /// The backward factors per channel.
    pub(crate) backward: Vec<[f64; 5]>,
}

impl core::fmt::Debug for ChannelWork {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelWork").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn buf(len: usize, v: f32) -> ArrayD<f32> {
        ArrayD::from_elem(IxDyn(&[len]), v)
    }

    #[test]
    fn a_spare_buffer_goes_out_once_and_only_at_its_length() {
        let s = Spare::new();
        s.put(buf(4, 1.0));
        s.put(buf(6, 2.0));
        s.put(buf(4, 3.0));
        assert_eq!(s.len(), 3);
        assert!(s.take(5).is_none());
        // The most recent of length 4 first.
        assert_eq!(s.take(4).unwrap()[[0]], 3.0);
        assert_eq!(s.take(4).unwrap()[[0]], 1.0);
        assert!(s.take(4).is_none());
        assert_eq!(s.take(6).unwrap().len(), 6);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn only_flat_contiguous_buffers_are_kept() {
        let s = Spare::new();
        s.put(ArrayD::from_elem(IxDyn(&[2, 3]), 0.0f32));
        s.put(buf(0, 0.0));
        let mut strided = buf(8, 0.0);
        strided.slice_collapse(ndarray::s![..;2]);
        s.put(strided);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn the_oldest_goes_beyond_the_limit() {
        let s = Spare::new();
        for i in 0..=SPARE_LIMIT {
            s.put(buf(i + 1, 0.0));
        }
        assert_eq!(s.len(), SPARE_LIMIT);
        assert!(s.take(1).is_none(), "the first one kept is the one dropped");
        assert!(s.take(2).is_some());
    }
}
