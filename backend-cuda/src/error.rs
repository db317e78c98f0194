//! The backend's own errors (setting it up), the library probe, and the
//! mapping of driver and cuBLAS failures onto [`smoothout::Error::Device`].

use core::fmt;

use crate::lib_names::lib_names;

/// A CUDA library the backend loads at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    /// `libcuda`, the driver.
    Driver,
    /// `libnvrtc`, the run-time compiler.
    Nvrtc,
    /// `libcublas`.
    Cublas,
}

impl Library {
    /// cudarc's base name of the library.
    fn stem(self) -> &'static str {
        match self {
            Library::Driver => "cuda",
            Library::Nvrtc => "nvrtc",
            Library::Cublas => "cublas",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Library::Driver => {
                "libcuda comes with the NVIDIA driver: install the driver, or run on a machine \
                 with a GPU"
            }
            Library::Nvrtc => {
                "install the CUDA toolkit, or `pip download nvidia-cuda-nvrtc==13.0.*` and \
                 unzip it (scripts/fetch-nvrtc.sh does both), then add its `nvidia/cu13/lib` \
                 folder to LD_LIBRARY_PATH"
            }
            Library::Cublas => {
                "install the CUDA toolkit, or the `nvidia-cublas` wheel, and add its lib folder \
                 to LD_LIBRARY_PATH"
            }
        }
    }
}

/// Why the CUDA backend could not be set up, or a kernel not compiled.
#[derive(Debug)]
#[non_exhaustive]
pub enum CudaError {
    /// A shared library is not on the loader's path (cudarc would panic;
    /// the backend probes first).
    MissingLibrary {
        /// Which library.
        library: Library,
        /// The file names tried.
        searched: Vec<String>,
    },
    /// The driver loaded but there is no such device.
    NoDevice {
        /// The device asked for.
        ordinal: usize,
        /// How many devices the driver sees.
        count: usize,
    },
    /// A driver call failed while setting up.
    Driver {
        /// What was being done.
        op: &'static str,
        /// The driver's error name.
        name: &'static str,
    },
    /// Creating the cuBLAS handle failed.
    Cublas {
        /// cuBLAS's status name.
        name: &'static str,
    },
    /// `SMOOTHOUT_CUDA_STANDIN` is set and the CPU stand-in for the driver
    /// could not be built or loaded.
    StandIn(crate::standin::StandInError),
    /// A kernel file did not compile (or lacks a kernel it must define).
    Compile {
        /// The file under `backend-cuda/kernels/`.
        file: &'static str,
        /// The architecture compiled for.
        arch: String,
        /// NVRTC's log.
        log: String,
    },
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::MissingLibrary { library, searched } => write!(
                f,
                "the CUDA library {:?} (lib{}) could not be loaded (tried {}): {}",
                library,
                library.stem(),
                searched.join(", "),
                library.hint()
            ),
            CudaError::NoDevice { ordinal, count } => write!(
                f,
                "no CUDA device {ordinal}: the driver sees {count} device(s); \
                 pick another ordinal or check `nvidia-smi` and CUDA_VISIBLE_DEVICES"
            ),
            CudaError::Driver { op, name } => write!(
                f,
                "the CUDA driver failed to {op}: {name}; check the driver with `nvidia-smi`"
            ),
            CudaError::Cublas { name } => write!(
                f,
                "cuBLAS could not be initialised: {name}; check that libcublas matches the \
                 driver's CUDA version"
            ),
            CudaError::StandIn(e) => write!(f, "{e} ({} is set)", crate::standin::ENV),
            CudaError::Compile { file, arch, log } => write!(
                f,
                "kernels/{file} did not compile for {arch} with NVRTC:\n{log}"
            ),
        }
    }
}

impl std::error::Error for CudaError {}

/// `Ok` when `library` can be loaded under one of the names cudarc tries;
/// otherwise the typed error cudarc would have panicked with.
///
/// # Errors
/// [`CudaError::MissingLibrary`].
pub fn probe(library: Library) -> Result<(), CudaError> {
    let searched = lib_names(library.stem());
    for name in &searched {
        // SAFETY: loading a CUDA library runs only its initialisers, the
        // same ones cudarc runs when it loads the library by this name.
        if unsafe { libloading::Library::new(name) }.is_ok() {
            return Ok(());
        }
    }
    Err(CudaError::MissingLibrary { library, searched })
}

/// The driver's static name for an error code.
pub(crate) fn driver_name(e: &cudarc::driver::DriverError) -> &'static str {
    let mut p: *const core::ffi::c_char = core::ptr::null();
    // SAFETY: cuGetErrorName writes a pointer to a static string owned by the
    // driver (or leaves it null for an unknown code); the driver is loaded,
    // since `e` came from it.
    let ok = unsafe { cudarc::driver::sys::cuGetErrorName(e.0, &mut p) };
    if ok != cudarc::driver::sys::CUresult::CUDA_SUCCESS || p.is_null() {
        return "unknown CUDA error";
    }
    // SAFETY: non-null, NUL-terminated and static, as above.
    unsafe { core::ffi::CStr::from_ptr(p) }
        .to_str()
        .unwrap_or("unknown CUDA error")
}

/// A driver failure during `op`, as the core error.
pub(crate) fn device(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> smoothout::Error {
    move |e| smoothout::Error::Device {
        op,
        name: driver_name(&e),
        code: e.0 as i64,
    }
}

/// cuBLAS's name for a status.
pub(crate) fn cublas_name(e: &cudarc::cublas::result::CublasError) -> &'static str {
    use cudarc::cublas::sys::cublasStatus_t as S;
    match e.0 {
        S::CUBLAS_STATUS_NOT_INITIALIZED => "CUBLAS_STATUS_NOT_INITIALIZED",
        S::CUBLAS_STATUS_ALLOC_FAILED => "CUBLAS_STATUS_ALLOC_FAILED",
        S::CUBLAS_STATUS_INVALID_VALUE => "CUBLAS_STATUS_INVALID_VALUE",
        S::CUBLAS_STATUS_ARCH_MISMATCH => "CUBLAS_STATUS_ARCH_MISMATCH",
        S::CUBLAS_STATUS_MAPPING_ERROR => "CUBLAS_STATUS_MAPPING_ERROR",
        S::CUBLAS_STATUS_EXECUTION_FAILED => "CUBLAS_STATUS_EXECUTION_FAILED",
        S::CUBLAS_STATUS_INTERNAL_ERROR => "CUBLAS_STATUS_INTERNAL_ERROR",
        S::CUBLAS_STATUS_NOT_SUPPORTED => "CUBLAS_STATUS_NOT_SUPPORTED",
        _ => "CUBLAS_STATUS_UNKNOWN",
    }
}

/// A cuBLAS failure during `op`, as the core error.
pub(crate) fn blas(
    op: &'static str,
) -> impl Fn(cudarc::cublas::result::CublasError) -> smoothout::Error {
    move |e| smoothout::Error::Device {
        op,
        name: cublas_name(&e),
        code: e.0 as i64,
    }
}
