//! One variable's SmoothOut state, on its device and in its element type.

use candle_core::{DType, Var};
use smoothout::{Config, Draw, Param, ParamSpec};

use crate::action::Action;
use crate::error::{core, Error, Result};
use crate::inplace::{check_dtype, visit, HostSlice, Visit, CPU_DTYPES};
use smoothout_cpu::Host;

/// The core's per-parameter state for the variable's device and dtype.
#[derive(Debug)]
enum Noise {
    F32(Param<Host<f32>>),
    F64(Param<Host<f64>>),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaParam),
}

/// The device backends shared by the variables while an adapter is built
/// (on the CPU there is nothing to share).
#[derive(Debug, Default)]
pub(crate) struct Backends {
    #[cfg(feature = "cuda")]
    cuda: crate::cuda::CudaBackends,
}

/// A variable, its spec, and (when perturbed) its noise state.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) var: Var,
    pub(crate) spec: ParamSpec,
    noise: Option<Noise>,
}

struct Apply<'a> {
    name: &'a str,
    noise: &'a mut Noise,
    action: Action,
    draw: Draw,
}

impl Visit for Apply<'_> {
    fn host(&mut self, slice: HostSlice<'_>) -> Result<()> {
        let (name, action, draw) = (self.name, self.action, self.draw);
        match (&mut *self.noise, slice) {
            (Noise::F32(p), HostSlice::F32(w)) => {
                core(name, action.run(p, &Host::<f32>::new(), w, draw))
            }
            (Noise::F64(p), HostSlice::F64(w)) => {
                core(name, action.run(p, &Host::<f64>::new(), w, draw))
            }
            (_, slice) => Err(Error::UnsupportedDtype {
                name: name.to_owned(),
                dtype: match slice {
                    HostSlice::F32(_) => DType::F32,
                    HostSlice::F64(_) => DType::F64,
                },
                supported: "the dtype and device the variable had when the adapter was built",
            }),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda(
        &mut self,
        storage: &mut candle_core::CudaStorage,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        match &mut *self.noise {
            Noise::Cuda(p) => p.apply(self.action, self.name, storage, range, self.draw),
            _ => Err(Error::UnsupportedDevice {
                name: self.name.to_owned(),
                device: "cuda".to_owned(),
                hint: "the variable moved to the GPU after the adapter was built",
            }),
        }
    }
}

impl Entry {
    /// The state for `var` under `config`, its noise keyed by `id`.
    ///
    /// # Errors
    /// A dtype or device the adapter cannot perturb (only for perturbed
    /// variables), or the core's refusal of the configuration or spec.
    pub(crate) fn new(
        var: Var,
        spec: ParamSpec,
        config: &Config,
        id: u64,
        backends: &mut Backends,
    ) -> Result<Self> {
        if spec.len() != var.elem_count() {
            return Err(Error::SpecShape {
                spec: spec.len(),
                name: spec.name,
                var: var.elem_count(),
            });
        }
        // Zero-element variables carry no noise (the core refuses empty specs).
        let noise = if spec.perturbed && !spec.is_empty() {
            Some(Self::noise(&var, &spec, config, id, backends)?)
        } else {
            None
        };
        Ok(Entry { var, spec, noise })
    }

    fn noise(
        var: &Var,
        spec: &ParamSpec,
        config: &Config,
        id: u64,
        // Only a CUDA build has device backends to share.
        #[cfg_attr(not(feature = "cuda"), allow(unused_variables))] backends: &mut Backends,
    ) -> Result<Noise> {
        let name = &spec.name;
        let device = var.device();
        if device.is_cuda() {
            #[cfg(feature = "cuda")]
            return crate::cuda::CudaParam::new(var, spec, config, id, &mut backends.cuda)
                .map(Noise::Cuda);
            #[cfg(not(feature = "cuda"))]
            return Err(Error::UnsupportedDevice {
                name: name.clone(),
                device: "cuda".to_owned(),
                hint: "build smoothout-candle with its feature `cuda`",
            });
        }
        if !device.is_cpu() {
            return Err(Error::UnsupportedDevice {
                name: name.clone(),
                device: format!("{:?}", device.location()),
                hint: "SmoothOut runs on candle's CPU and CUDA devices only",
            });
        }
        check_dtype(name, var.dtype(), CPU_DTYPES)?;
        let spec = spec.clone();
        Ok(match var.dtype() {
            DType::F64 => Noise::F64(core(
                name,
                Param::new(&Host::<f64>::new(), *config, id, spec),
            )?),
            _ => Noise::F32(core(
                name,
                Param::new(&Host::<f32>::new(), *config, id, spec),
            )?),
        })
    }

    /// Whether the variable lives on a CUDA device (perturbed on the calling
    /// thread: candle's default CUDA stream is per thread).
    pub(crate) fn is_cuda(&self) -> bool {
        self.var.device().is_cuda()
    }

    /// Whether noise touches this variable.
    pub(crate) fn is_perturbed(&self) -> bool {
        self.noise.is_some()
    }

    fn apply(&mut self, action: Action, draw: Draw) -> Result<()> {
        let Some(noise) = self.noise.as_mut() else {
            return Ok(());
        };
        let mut op = Apply {
            name: &self.spec.name,
            noise,
            action,
            draw,
        };
        visit(&self.spec.name, self.var.as_tensor(), &mut op)
    }

    /// `w ← w + θ(draw)` in the variable's own memory.
    pub(crate) fn perturb(&mut self, draw: Draw) -> Result<()> {
        self.apply(Action::Perturb, draw)
    }

    /// `w ← w − θ(draw)`, θ regenerated, in the variable's own memory.
    pub(crate) fn denoise(&mut self, draw: Draw) -> Result<()> {
        self.apply(Action::Denoise, draw)
    }
}
