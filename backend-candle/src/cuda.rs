//! candle's CUDA memory, perturbed in place by smoothout-cuda's NVRTC
//! kernels on candle's own stream (the feature `cuda`).
//!
//! ┌──────────────────────────────────────────────────────────────────────┐
//! │ BUILT, NEVER RUN ON A GPU. CI compiles this file and runs clippy on   │
//! │ it (nvcc from scripts/fetch-nvcc.sh, no GPU); tests/cuda.rs skips     │
//! │ there with a printed reason. Whether the bits match the reference on  │
//! │ a device has not been observed yet.                                   │
//! └──────────────────────────────────────────────────────────────────────┘
//!
//! One `smoothout_cuda::Cuda` per candle CUDA device (per
//! [`DeviceId`]), built from the device's `cuda_stream()` when the adapter
//! is built and shared by that device's variables (each backend compiles
//! the kernels with NVRTC, so one per variable would be slow to build).
//! Our kernels are queued on candle's stream behind its forward and
//! backward work with no synchronisation. The core's `Param<Cuda>` keeps
//! AdaSmoothOut's per-row scales on the device.
//!
//! smoothout-cuda's buffers are whole `CudaSlice<f32>`s; a candle `Var`
//! owns its whole storage, so the contiguous range must be the entire slice
//! (anything else is refused as [`Error::NonContiguous`]); other dtypes are
//! refused as [`Error::UnsupportedDtype`].
//!
//! candle's `Device::new_cuda` uses the per-thread default stream, a
//! different stream on each host thread, so CUDA variables are perturbed
//! on the calling thread (the one that runs candle's ops), never in rayon
//! tasks: see `SmoothOut::each_perturbed`.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::CudaSlice;
use candle_core::cuda_backend::{CudaStorageSlice, DeviceId};
use candle_core::{CudaStorage, DType, Var};
use smoothout::{Config, Draw, Param, ParamSpec};
use smoothout_cuda::Cuda;

use crate::action::Action;
use crate::error::{core, Error, Result};

/// The element types perturbed on CUDA, as the error message names them.
const CUDA_DTYPES: &str = "f32 on CUDA";

/// The backends built so far, one per candle CUDA device.
#[derive(Debug, Default)]
pub(crate) struct CudaBackends(Vec<(DeviceId, Cuda)>);

impl CudaBackends {
    /// The backend on `device`'s stream, built on first use.
    fn get(&mut self, device: &candle_core::CudaDevice) -> Result<Cuda> {
        let id = device.id();
        if let Some((_, cuda)) = self.0.iter().find(|(d, _)| *d == id) {
            return Ok(cuda.clone());
        }
        let cuda = Cuda::from_stream(device.cuda_stream()).map_err(Error::Cuda)?;
        self.0.push((id, cuda.clone()));
        Ok(cuda)
    }
}

/// One variable's state on a CUDA device.
#[derive(Debug)]
pub(crate) struct CudaParam {
    backend: Cuda,
    param: Param<Cuda>,
}

impl CudaParam {
    pub(crate) fn new(
        var: &Var,
        spec: &ParamSpec,
        config: &Config,
        id: u64,
        backends: &mut CudaBackends,
    ) -> Result<Self> {
        if var.dtype() != DType::F32 {
            return Err(Error::UnsupportedDtype {
                name: spec.name.clone(),
                dtype: var.dtype(),
                supported: CUDA_DTYPES,
            });
        }
        let candle_core::Device::Cuda(device) = var.device() else {
            return Err(Error::UnsupportedDevice {
                name: spec.name.clone(),
                device: format!("{:?}", var.device().location()),
                hint: "expected a CUDA variable",
            });
        };
        let backend = backends.get(device)?;
        let param = core(&spec.name, Param::new(&backend, *config, id, spec.clone()))?;
        Ok(CudaParam { backend, param })
    }

    fn slice<'a>(
        name: &str,
        storage: &'a mut CudaStorage,
        range: Range<usize>,
    ) -> Result<&'a mut CudaSlice<f32>> {
        let dtype = storage.dtype();
        match &mut storage.slice {
            CudaStorageSlice::F32(s) if range.start == 0 && range.end == s.len() => Ok(s),
            CudaStorageSlice::F32(_) => Err(Error::NonContiguous {
                name: name.to_owned(),
            }),
            _ => Err(Error::UnsupportedDtype {
                name: name.to_owned(),
                dtype,
                supported: CUDA_DTYPES,
            }),
        }
    }

    /// Perturbs or de-noises the variable's memory, `range` of `storage`.
    pub(crate) fn apply(
        &mut self,
        action: Action,
        name: &str,
        storage: &mut CudaStorage,
        range: Range<usize>,
        draw: Draw,
    ) -> Result<()> {
        let w = Self::slice(name, storage, range)?;
        core(name, action.run(&mut self.param, &self.backend, w, draw))
    }
}
