//! [`Host`]: the CPU kernels over borrowed slices, one thread per call.

use core::marker::PhantomData;

use smoothout::reference;
use smoothout::{
    BackendTypes, BlasOps, FilterNoise, Noise, NoiseKey, NoiseOf, NoiseOps, NormOps, PerturbOps,
    Real, Result, Sgd, Slices, StateOps, UpdateOps,
};

use crate::isa::{kernels, Isa};
use crate::CpuError;

/// The SmoothOut ops of [`crate::Cpu`] on memory owned by anyone: the
/// buffer type is the slice `[T]`, so a framework's tensor storage is
/// perturbed and de-noised in place. Like [`smoothout::Slices`], but with
/// the kernels compiled for the widest instruction set this CPU has (the
/// same bits: the backend tests compare every set with the reference).
/// Each call runs on the calling thread; parallelise across parameters.
///
/// ```
/// use smoothout::{Config, Draw, Noise, Param, ParamSpec, Scaling};
/// use smoothout_cpu::Host;
///
/// let mut storage = vec![0.5f32; 40]; // e.g. a tensor's storage
/// let host = Host::<f32>::new();
/// let config = Config::new(Noise::uniform(0.1)?).with_scaling(Scaling::FilterNorm);
/// let mut p = Param::new(&host, config, 3, ParamSpec::weight("w", [4, 10]))?;
/// p.perturb(&host, &mut storage, Draw::new(0, 0))?;
/// p.denoise(&host, &mut storage, Draw::new(0, 0))?;
/// assert!(storage.iter().all(|&w| (w - 0.5).abs() < 1e-6));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Host<T> {
    isa: Isa,
    _elem: PhantomData<T>,
}

impl<T: Real> Host<T> {
    /// The backend with the widest instruction set this CPU supports.
    #[must_use]
    pub fn new() -> Self {
        Host {
            isa: Isa::detect(),
            _elem: PhantomData,
        }
    }

    /// The backend with its kernels compiled for `isa`.
    ///
    /// # Errors
    /// [`CpuError::UnsupportedIsa`] when this CPU cannot run `isa`.
    pub fn with_isa(isa: Isa) -> core::result::Result<Self, CpuError> {
        if !isa.supported() {
            return Err(CpuError::UnsupportedIsa(isa));
        }
        Ok(Host {
            isa,
            _elem: PhantomData,
        })
    }

    /// The instruction set the kernels run with.
    #[must_use]
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

impl<T: Real> Default for Host<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> BackendTypes for Host<T> {
    type Elem = T;
    type Buffer = [T];
    fn len(&self, buf: &[T]) -> usize {
        buf.len()
    }
}

impl<T: Real> NoiseOps for Host<T> {
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut [T]) -> Result<()> {
        kernels::fill_noise(self.isa, key, noise, 0, out)
    }
    fn write_noise(&self, noise: &NoiseOf<'_, Self>, w: &[T], out: &mut [T]) -> Result<()> {
        reference::check_noise(noise, w.len())?;
        kernels::write_noise(self.isa, noise, 0, w, out)
    }
}

impl<T: Real> PerturbOps for Host<T> {
    fn perturb(&self, w: &mut [T], noise: &NoiseOf<'_, Self>) -> Result<()> {
        reference::check_noise(noise, w.len())?;
        kernels::perturb(self.isa, noise, 0, w);
        Ok(())
    }
    fn denoise(&self, w: &mut [T], noise: &NoiseOf<'_, Self>) -> Result<()> {
        reference::check_noise(noise, w.len())?;
        kernels::denoise(self.isa, noise, 0, w);
        Ok(())
    }
    fn drop_out(&self, w: &mut [T], key: NoiseKey, p: f64) -> Result<()> {
        kernels::drop_out(self.isa, key, p, 0, w)
    }
    fn perturb_filter_norm(&self, w: &mut [T], n: &FilterNoise, scales: &mut [T]) -> Result<()> {
        kernels::perturb_filter_norm(self.isa, n.key, n.unit, n.strength, n.cols, 0, w, scales)
    }
}

impl<T: Real> NormOps for Host<T> {
    fn row_norms(&self, w: &[T], cols: usize, out: &mut [f64]) -> Result<()> {
        kernels::row_norms(self.isa, w, cols, out)
    }
    fn filter_scales(&self, w: &[T], n: &FilterNoise, out: &mut [T]) -> Result<()> {
        kernels::filter_scales(self.isa, n.key, n.unit, n.strength, n.cols, 0, w, out)
    }
}

impl<T: Real> BlasOps for Host<T> {
    fn axpy(&self, alpha: T, x: &[T], y: &mut [T]) -> Result<()> {
        kernels::axpy(self.isa, alpha, x, y)
    }
}

impl<T: Real> UpdateOps for Host<T> {
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
        kernels::denoise_sgd(self.isa, noise, 0, w, grad, velocity, sgd)
    }
}

impl<T: Real> StateOps for Host<T> {
    type State = Vec<T>;
    fn state(&self, len: usize) -> Result<Vec<T>> {
        Slices::new().state(len)
    }
    fn copy(&self, src: &[T], dst: &mut [T]) -> Result<()> {
        Slices::new().copy(src, dst)
    }
}
