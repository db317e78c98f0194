//! [`Reference`]: the reference functions as a backend over `Vec<T>`.

use alloc::vec;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::backend::slices::Slices;
use crate::backend::{
    BackendTypes, BlasOps, BufferOps, FilterNoise, NoiseOf, NoiseOps, NormOps, PerturbOps,
    StateOps, UpdateOps,
};
use crate::error::Result;
use crate::noise::philox::NoiseKey;
use crate::noise::Noise;
use crate::real::Real;
use crate::reference;
use crate::step::Sgd;

/// A single-threaded backend over `Vec<T>` that calls [`crate::reference`]
/// directly: the ground truth other backends are compared with, and a
/// backend for small problems.
///
/// ```
/// use smoothout::{Reference, NoiseOps, Noise, NoiseKey};
/// let b = Reference::<f32>::new();
/// let mut theta = vec![0.0; 5];
/// b.fill_noise(NoiseKey::from_seed(1), &Noise::uniform(0.5)?, &mut theta)?;
/// assert!(theta.iter().all(|t| t.abs() < 0.5));
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Debug)]
pub struct Reference<T>(PhantomData<T>);

impl<T> Reference<T> {
    /// The backend (it has no state).
    #[must_use]
    pub fn new() -> Self {
        Reference(PhantomData)
    }
}

impl<T> Default for Reference<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn slices<'a, T: Real>(n: &NoiseOf<'a, Reference<T>>) -> Result<NoiseOf<'a, Slices<T>>> {
    n.map_scales(|v: &'a Vec<T>| Ok(v.as_slice()))
}

impl<T: Real> BackendTypes for Reference<T> {
    type Elem = T;
    type Buffer = Vec<T>;
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
}

// Every SmoothOut op is the slice backend's on the vectors' contents.

impl<T: Real> NoiseOps for Reference<T> {
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut Vec<T>) -> Result<()> {
        Slices::new().fill_noise(key, noise, out)
    }
    fn write_noise(&self, noise: &NoiseOf<'_, Self>, w: &Vec<T>, out: &mut Vec<T>) -> Result<()> {
        Slices::new().write_noise(&slices(noise)?, w, out)
    }
}

impl<T: Real> PerturbOps for Reference<T> {
    fn perturb(&self, w: &mut Vec<T>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        Slices::new().perturb(w, &slices(noise)?)
    }
    fn denoise(&self, w: &mut Vec<T>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        Slices::new().denoise(w, &slices(noise)?)
    }
    fn drop_out(&self, w: &mut Vec<T>, key: NoiseKey, p: f64) -> Result<()> {
        Slices::new().drop_out(w, key, p)
    }
    fn perturb_filter_norm(
        &self,
        w: &mut Vec<T>,
        noise: &FilterNoise,
        scales: &mut Vec<T>,
    ) -> Result<()> {
        Slices::new().perturb_filter_norm(w, noise, scales)
    }
}

impl<T: Real> NormOps for Reference<T> {
    fn row_norms(&self, w: &Vec<T>, cols: usize, out: &mut [f64]) -> Result<()> {
        Slices::new().row_norms(w, cols, out)
    }
    fn filter_scales(&self, w: &Vec<T>, noise: &FilterNoise, out: &mut Vec<T>) -> Result<()> {
        Slices::new().filter_scales(w, noise, out)
    }
}

impl<T: Real> BlasOps for Reference<T> {
    fn axpy(&self, alpha: T, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
        Slices::new().axpy(alpha, x, y)
    }
}

impl<T: Real> UpdateOps for Reference<T> {
    fn denoise_sgd(
        &self,
        w: &mut Vec<T>,
        grad: &Vec<T>,
        velocity: &mut Vec<T>,
        noise: Option<&NoiseOf<'_, Self>>,
        sgd: &Sgd,
    ) -> Result<()> {
        let n = noise.map(slices).transpose()?;
        Slices::new().denoise_sgd(w, grad, velocity, n.as_ref(), sgd)
    }
}

impl<T: Real> StateOps for Reference<T> {
    type State = Vec<T>;
    fn state(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }
    fn copy(&self, src: &Vec<T>, dst: &mut Vec<T>) -> Result<()> {
        Slices::new().copy(src, dst)
    }
}

impl<T: Real> BufferOps for Reference<T> {
    fn zeros(&self, len: usize) -> Result<Vec<T>> {
        self.state(len)
    }
    fn upload(&self, data: &[T]) -> Result<Vec<T>> {
        Ok(data.to_vec())
    }
    fn copy_range(
        &self,
        src: &Vec<T>,
        src_start: usize,
        dst: &mut Vec<T>,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        reference::copy_range(src, src_start, dst, dst_start, len)
    }
    fn to_vec(&self, buf: &Vec<T>) -> Result<Vec<T>> {
        Ok(buf.clone())
    }
}
