//! candle's CUDA memory, perturbed in place by smoothout-cuda's NVRTC
//! kernels on candle's own stream (`--cfg smoothout_candle_cuda`; meant to
//! become the feature `cuda`).
//!
//! ┌──────────────────────────────────────────────────────────────────────┐
//! │ NOT YET COMPILED. candle-core's `cuda` feature builds candle-kernels, │
//! │ which needs nvcc, and asks cudarc 0.19 for `dynamic-linking` while    │
//! │ smoothout-cuda asks for `dynamic-loading`: cudarc's build script      │
//! │ refuses the two together (checked). `Cuda::from_stream` is being      │
//! │ added alongside. This file is written against those APIs as announced │
//! │ and has never been through the compiler. Only                         │
//! │ `--cfg smoothout_candle_cuda` reads it; the CPU build never needs it. │
//! └──────────────────────────────────────────────────────────────────────┘
//!
//! Plan: one `smoothout_cuda::Cuda` per variable built from
//! `CudaStorage::device.cuda_stream()` (so our kernels queue behind
//! candle's forward and backward work with no synchronisation), the core's
//! `Param<Cuda>` holding the per-row scales on the device. smoothout-cuda's
//! buffers are whole `CudaSlice<f32>`s; a candle `Var` owns its whole
//! storage, so the contiguous range must be the entire slice (anything else
//! is refused as [`Error::NonContiguous`]). `SmoothOut::perturb` runs one
//! rayon task per variable, so `CudaParam` must be `Send` (the kernels are
//! queued on the one stream either way; a sequential loop for CUDA entries
//! is the fallback if `smoothout_cuda::Cuda` is not `Send`).

use std::ops::Range;

use candle_core::cuda_backend::CudaStorageSlice;
use candle_core::{CudaStorage, DType, Var};
use smoothout::{Config, Draw, Param, ParamSpec};
use smoothout_cuda::Cuda;

use crate::error::{Error, Result};

/// The element types perturbed on CUDA, as the error message names them.
const CUDA_DTYPES: &str = "f32 on CUDA";

/// One variable's state on a CUDA device.
#[derive(Debug)]
pub(crate) struct CudaParam {
    backend: Cuda,
    param: Param<Cuda>,
}

fn core<T>(name: &str, r: smoothout::Result<T>) -> Result<T> {
    r.map_err(|source| Error::SmoothOut {
        name: Some(name.to_owned()),
        source,
    })
}

impl CudaParam {
    pub(crate) fn new(var: &Var, spec: &ParamSpec, config: &Config, id: u64) -> Result<Self> {
        if var.dtype() != DType::F32 {
            return Err(Error::UnsupportedDtype {
                name: spec.name.clone(),
                dtype: var.dtype(),
                supported: CUDA_DTYPES,
            });
        }
        let candle_core::Device::Cuda(device) = var.device() else {
            unreachable!("called for CUDA variables only")
        };
        // TODO(cuda): `from_stream` is the announced constructor; map its
        // error (missing NVRTC, …) into a typed one.
        let backend = Cuda::from_stream(device.cuda_stream())
            .map_err(|e| Error::Candle(candle_core::Error::msg(format!("smoothout-cuda: {e}"))))?;
        let param = core(&spec.name, Param::new(&backend, *config, id, spec.clone()))?;
        Ok(CudaParam { backend, param })
    }

    fn slice<'a>(
        name: &str,
        storage: &'a mut CudaStorage,
        range: Range<usize>,
    ) -> Result<&'a mut candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>> {
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

    pub(crate) fn perturb(
        &mut self,
        name: &str,
        storage: &mut CudaStorage,
        range: Range<usize>,
        draw: Draw,
    ) -> Result<()> {
        let w = Self::slice(name, storage, range)?;
        core(name, self.param.perturb(&self.backend, w, draw))
    }

    pub(crate) fn denoise(
        &mut self,
        name: &str,
        storage: &mut CudaStorage,
        range: Range<usize>,
        draw: Draw,
    ) -> Result<()> {
        let w = Self::slice(name, storage, range)?;
        core(name, self.param.denoise(&self.backend, w, draw))
    }
}
