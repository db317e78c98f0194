//! [`Slices`]: the reference functions as a backend over borrowed slices.

use core::marker::PhantomData;

use crate::backend::{
    BackendTypes, BlasOps, FilterNoise, NoiseOf, NoiseOps, NormOps, PerturbOps, UpdateOps,
};
use crate::error::Result;
use crate::noise::philox::NoiseKey;
use crate::noise::Noise;
use crate::real::Real;
use crate::reference;
use crate::step::Sgd;

/// A single-threaded host backend whose buffers are plain slices, `[T]`:
/// memory owned by anyone — a framework's tensor storage, an array on the
/// stack — is perturbed and de-noised in place, with no copy. The SmoothOut
/// ops need neither `std` nor `alloc`; the state AdaSmoothOut and the exact
/// mode keep between perturbing and de-noising ([`crate::StateOps`], a
/// `Vec<T>`) needs `alloc`.
///
/// The bits are those of [`crate::reference`] and so of every backend.
///
/// ```
/// # #[cfg(feature = "alloc")] {
/// use smoothout::{Config, Draw, Noise, Param, ParamSpec, Scaling, Slices};
///
/// let mut weights = [0.5f32; 12]; // anyone's memory
/// let config = Config::new(Noise::uniform(0.1)?).with_scaling(Scaling::FilterNorm);
/// let b = Slices::<f32>::new();
/// let mut p = Param::new(&b, config, 7, ParamSpec::weight("fc.weight", [3, 4]))?;
/// p.perturb(&b, &mut weights, Draw::new(0, 0))?;
/// assert!(weights.iter().any(|&w| w != 0.5));
/// p.denoise(&b, &mut weights, Draw::new(0, 0))?;
/// assert!(weights.iter().all(|&w| (w - 0.5).abs() < 1e-6));
/// # }
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Debug)]
pub struct Slices<T>(PhantomData<T>);

impl<T> Slices<T> {
    /// The backend (it has no state).
    #[must_use]
    pub const fn new() -> Self {
        Slices(PhantomData)
    }
}

impl<T> Default for Slices<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> BackendTypes for Slices<T> {
    type Elem = T;
    type Buffer = [T];
    fn len(&self, buf: &[T]) -> usize {
        buf.len()
    }
}

impl<T: Real> NoiseOps for Slices<T> {
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut [T]) -> Result<()> {
        reference::fill_noise(key, noise, 0, out)
    }
    fn write_noise(&self, noise: &NoiseOf<'_, Self>, w: &[T], out: &mut [T]) -> Result<()> {
        reference::check_noise(noise, w.len())?;
        reference::write_noise(noise, 0, w, out)
    }
}

impl<T: Real> PerturbOps for Slices<T> {
    fn perturb(&self, w: &mut [T], noise: &NoiseOf<'_, Self>) -> Result<()> {
        reference::check_noise(noise, w.len())?;
        reference::perturb(noise, 0, w);
        Ok(())
    }
    fn denoise(&self, w: &mut [T], noise: &NoiseOf<'_, Self>) -> Result<()> {
        reference::check_noise(noise, w.len())?;
        reference::denoise(noise, 0, w);
        Ok(())
    }
    fn drop_out(&self, w: &mut [T], key: NoiseKey, p: f64) -> Result<()> {
        reference::drop_out(key, p, 0, w)
    }
    fn perturb_filter_norm(&self, w: &mut [T], n: &FilterNoise, scales: &mut [T]) -> Result<()> {
        reference::perturb_filter_norm(n.key, n.unit, n.strength, n.cols, 0, w, scales)
    }
}

impl<T: Real> NormOps for Slices<T> {
    fn row_norms(&self, w: &[T], cols: usize, out: &mut [f64]) -> Result<()> {
        reference::row_norms(w, cols, out)
    }
    fn filter_scales(&self, w: &[T], n: &FilterNoise, out: &mut [T]) -> Result<()> {
        reference::filter_scales(n.key, n.unit, n.strength, n.cols, 0, w, out)
    }
}

impl<T: Real> BlasOps for Slices<T> {
    fn axpy(&self, alpha: T, x: &[T], y: &mut [T]) -> Result<()> {
        reference::axpy(alpha, x, y)
    }
}

impl<T: Real> UpdateOps for Slices<T> {
    fn denoise_sgd(
        &self,
        w: &mut [T],
        grad: &[T],
        velocity: &mut [T],
        noise: Option<&NoiseOf<'_, Self>>,
        sgd: &Sgd,
    ) -> Result<()> {
        if let Some(n) = noise {
            reference::check_noise(n, w.len())?;
        }
        reference::denoise_sgd(noise, 0, w, grad, velocity, sgd)
    }
}

#[cfg(feature = "alloc")]
impl<T: Real> crate::backend::StateOps for Slices<T> {
    type State = alloc::vec::Vec<T>;
    fn state(&self, len: usize) -> Result<alloc::vec::Vec<T>> {
        Ok(alloc::vec![T::zero(); len])
    }
    fn copy(&self, src: &[T], dst: &mut [T]) -> Result<()> {
        crate::error::check_len("copy destination", src.len(), dst.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }
}
