//! [`Reference`]: the reference functions as a backend over `Vec<T>`.

use alloc::vec;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::backend::{
    BackendTypes, BlasOps, BufferOps, NoiseOf, NoiseOps, NormOps, PerturbOps, UpdateOps,
};
use crate::error::{Error, Result};
use crate::noise::Noise;
use crate::philox::NoiseKey;
use crate::real::Real;
use crate::reference::{self, ParamNoise};
use crate::sgd::Sgd;
use crate::unit::Unit;

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

fn slices<'a, T: Real>(n: &NoiseOf<'a, Reference<T>>) -> Result<ParamNoise<'a, T, [T]>> {
    n.map_scales(|v: &'a Vec<T>| Ok(v.as_slice()))
}

impl<T: Real> BackendTypes for Reference<T> {
    type Elem = T;
    type Buffer = Vec<T>;
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
}

impl<T: Real> NoiseOps for Reference<T> {
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut Vec<T>) -> Result<()> {
        reference::fill_noise(key, noise, 0, out)
    }
}

impl<T: Real> PerturbOps for Reference<T> {
    fn perturb(&self, w: &mut Vec<T>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        reference::perturb(&slices(noise)?, 0, w);
        Ok(())
    }
    fn denoise(&self, w: &mut Vec<T>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        reference::denoise(&slices(noise)?, 0, w);
        Ok(())
    }
    fn drop_out(&self, w: &mut Vec<T>, key: NoiseKey, p: f64) -> Result<()> {
        reference::drop_out(key, p, 0, w)
    }
    fn perturb_filter_norm(
        &self,
        w: &mut Vec<T>,
        key: NoiseKey,
        unit: Unit,
        strength: f64,
        cols: usize,
        scales: &mut Vec<T>,
    ) -> Result<()> {
        reference::perturb_filter_norm(key, unit, strength, cols, 0, w, scales)
    }
}

impl<T: Real> NormOps for Reference<T> {
    fn row_norms(&self, w: &Vec<T>, cols: usize, out: &mut [f64]) -> Result<()> {
        reference::row_norms(w, cols, out)
    }
    fn filter_scales(
        &self,
        w: &Vec<T>,
        key: NoiseKey,
        unit: Unit,
        strength: f64,
        cols: usize,
        out: &mut Vec<T>,
    ) -> Result<()> {
        reference::filter_scales(key, unit, strength, cols, 0, w, out)
    }
}

impl<T: Real> BlasOps for Reference<T> {
    fn axpy(&self, alpha: T, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
        reference::axpy(alpha, x, y)
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
        reference::denoise_sgd(n.as_ref(), 0, w, grad, velocity, sgd)
    }
}

impl<T: Real> BufferOps for Reference<T> {
    fn zeros(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }
    fn copy(&self, src: &Vec<T>, dst: &mut Vec<T>) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::LengthMismatch {
                what: "copy destination",
                expected: src.len(),
                actual: dst.len(),
            });
        }
        dst.copy_from_slice(src);
        Ok(())
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
