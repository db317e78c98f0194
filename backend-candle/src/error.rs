//! Typed errors of the candle adapter.

use std::fmt;

use candle_core::DType;

/// Every way the candle adapter can refuse a parameter or a call.
///
/// The [`Optimizer`](candle_nn::Optimizer) trait speaks [`candle_core::Error`];
/// there an `Error` arrives wrapped (`From<Error> for candle_core::Error`),
/// its message intact.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A parameter whose element type the adapter cannot perturb.
    UnsupportedDtype {
        /// The parameter's name.
        name: String,
        /// Its element type.
        dtype: DType,
        /// The element types that are supported on its device.
        supported: &'static str,
    },
    /// A parameter whose storage is not one contiguous, row-major run of
    /// elements (a transposed or strided view): perturb the variable itself.
    NonContiguous {
        /// The parameter's name.
        name: String,
    },
    /// A parameter on a device the adapter was not built for (CUDA without
    /// the CUDA path built in, Metal).
    UnsupportedDevice {
        /// The parameter's name.
        name: String,
        /// The device, as candle prints it.
        device: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// An override named a parameter that is not in the set.
    UnknownParam {
        /// The name given.
        name: String,
    },
    /// Two parameters with the same name (their noise would coincide).
    DuplicateParam {
        /// The repeated name.
        name: String,
    },
    /// A spec whose number of elements differs from its variable's.
    SpecShape {
        /// The parameter's name.
        name: String,
        /// Elements the spec implies.
        spec: usize,
        /// Elements of the variable.
        var: usize,
    },
    /// The core library refused (bad configuration, perturbing twice,
    /// de-noising a draw that is not applied, …).
    SmoothOut {
        /// The parameter concerned, if the error belongs to one.
        name: Option<String>,
        /// The core error.
        source: smoothout::Error,
    },
    /// candle refused an operation (the inner optimiser's step, a backward
    /// pass, a device call).
    Candle(candle_core::Error),
    /// smoothout-cuda could not be set up on a variable's CUDA device
    /// (NVRTC or cuBLAS missing, a kernel that does not compile).
    #[cfg(feature = "cuda")]
    Cuda(smoothout_cuda::CudaError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedDtype {
                name,
                dtype,
                supported,
            } => write!(
                f,
                "parameter `{name}` has dtype {}: SmoothOut supports {supported}; \
                 keep master weights in one of those (or exclude the parameter)",
                dtype.as_str()
            ),
            Error::NonContiguous { name } => write!(
                f,
                "parameter `{name}` is not contiguous in memory: pass the variable itself, \
                 not a strided view"
            ),
            Error::UnsupportedDevice { name, device, hint } => {
                write!(f, "parameter `{name}` lives on {device}: {hint}")
            }
            Error::UnknownParam { name } => write!(
                f,
                "no parameter named `{name}` (names are the VarMap's keys or the names given)"
            ),
            Error::DuplicateParam { name } => write!(
                f,
                "two parameters are named `{name}`: names must be unique, they key the noise"
            ),
            Error::SpecShape { name, spec, var } => write!(
                f,
                "the spec of `{name}` implies {spec} elements but the variable holds {var}"
            ),
            Error::SmoothOut {
                name: Some(name),
                source,
            } => write!(f, "parameter `{name}`: {source}"),
            Error::SmoothOut { name: None, source } => source.fmt(f),
            Error::Candle(e) => write!(f, "candle: {e}"),
            #[cfg(feature = "cuda")]
            Error::Cuda(e) => write!(f, "smoothout-cuda: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::SmoothOut { source, .. } => Some(source),
            Error::Candle(e) => Some(e),
            #[cfg(feature = "cuda")]
            Error::Cuda(e) => Some(e),
            _ => None,
        }
    }
}

impl From<smoothout::Error> for Error {
    fn from(source: smoothout::Error) -> Self {
        Error::SmoothOut { name: None, source }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

impl From<Error> for candle_core::Error {
    /// candle errors pass through unchanged; ours are wrapped with their
    /// message.
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            e => candle_core::Error::wrap(e),
        }
    }
}

/// A core error about the variable `name`, as the adapter reports it.
pub(crate) fn core<T>(name: &str, r: smoothout::Result<T>) -> Result<T> {
    r.map_err(|source| Error::SmoothOut {
        name: Some(name.to_owned()),
        source,
    })
}
