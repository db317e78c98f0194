//! A CPU stand-in for `libcuda` and `libcublas`, so that this backend's host
//! code (every cudarc call, buffer size, launch configuration, argument list
//! and cuBLAS call) runs end to end on a machine without a GPU.
//!
//! cudarc opens the driver and cuBLAS by name when they are first used. The
//! stand-in is two small shared libraries, built from C++ sources shipped
//! with this crate (`backend-cuda/standin/`) by the host's `c++`, whose
//! sonames are `libcuda.so` and `libcublas.so`; [`install`] opens them by
//! path before cudarc does, and the loader then hands cudarc the libraries
//! already open under those names. Nothing is installed system-wide.
//!
//! The driver part keeps device memory in host memory, runs every operation
//! at once on the calling thread, and launches a kernel by running the
//! host-compiled build of the same `kernels/*.cu` source (through the
//! emulation shim `standin/cuda_shim.h`) on the launch's grid, after reading
//! the parameter list from the PTX that NVRTC made (NVRTC is the real one).
//! It checks what a real driver rejects and returns the real error code:
//! launches beyond 1024 threads per block or the grid limits, more than
//! 48 KiB of shared memory, copies that reach past an allocation, a
//! zero-byte `cuMemAlloc`, pointer arguments that point into no live
//! allocation, calls without `cuInit` or a current context. cuBLAS's
//! `sgemm` and `sgemmStridedBatched` follow cuBLAS's column-major semantics
//! exactly (transposes, leading dimensions, α, β), summing in `f64` and
//! rounding once; invalid arguments give `CUBLAS_STATUS_INVALID_VALUE`.
//!
//! What only a real GPU shows: timing, the memory model (threads of a
//! kernel here never run at the same time), and the machine code the
//! device's JIT makes from the PTX.
//!
//! Where a real driver sees a device, [`install`] leaves it in place.
//!
//! ```no_run
//! use std::path::Path;
//! use smoothout_cuda::{standin, Cuda};
//!
//! let dir = standin::build(Path::new("target"))?; // target/cuda-standin-<hash>/
//! standin::install(&dir)?;
//! let gpu = Cuda::new()?; // the stand-in's device, unless a real GPU is present
//! println!("{}", gpu.device_name()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The program and any other user of [`crate::Cuda::new`] get the same by
//! setting `SMOOTHOUT_CUDA_STANDIN` to a directory to build it in (see
//! [`ENV`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable that makes [`crate::Cuda::new`] use the
/// stand-in where no GPU is present: a directory under which the stand-in
/// is built (once per source version) and from which it is loaded, e.g.
/// `SMOOTHOUT_CUDA_STANDIN=target`.
pub const ENV: &str = "SMOOTHOUT_CUDA_STANDIN";

/// The name the stand-in's device reports (`cuDeviceGetName`).
pub const DEVICE_NAME: &str = "smoothout CUDA stand-in (CPU)";

/// The C++ sources, written next to the libraries they build.
const SOURCES: [(&str, &str); 7] = [
    ("driver.cpp", include_str!("../standin/driver.cpp")),
    ("cublas.cpp", include_str!("../standin/cublas.cpp")),
    ("standin.h", include_str!("../standin/standin.h")),
    ("cuda_shim.h", include_str!("../standin/cuda_shim.h")),
    ("common.cuh", include_str!("../kernels/common.cuh")),
    ("noise.cu", include_str!("../kernels/noise.cu")),
    ("tensor.cu", include_str!("../kernels/tensor.cu")),
];

/// Flags of both libraries: every float operation rounds once, as on the
/// device with `--fmad=false`.
const FLAGS: [&str; 8] = [
    "-std=c++20",
    "-O2",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fno-strict-aliasing",
    "-fPIC",
    "-shared",
    "-fvisibility=hidden",
];

/// Why the stand-in could not be built or loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum StandInError {
    /// No C++ compiler `c++` on the path.
    NoCompiler(std::io::Error),
    /// The compiler rejected the sources.
    Compile {
        /// Which library.
        library: &'static str,
        /// The compiler's messages.
        log: String,
    },
    /// Writing the sources or moving the build into place failed.
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A built library could not be loaded.
    Load {
        /// Its path.
        path: PathBuf,
        /// The loader's message.
        error: String,
    },
    /// The stand-in needs a Unix host (ucontext, ELF sonames).
    Unsupported,
}

impl fmt::Display for StandInError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StandInError::NoCompiler(e) => write!(
                f,
                "the CUDA stand-in needs a C++ compiler `c++` ({e}): install g++ or clang"
            ),
            StandInError::Compile { library, log } => {
                write!(f, "the CUDA stand-in's {library} did not compile:\n{log}")
            }
            StandInError::Io { path, error } => {
                write!(f, "the CUDA stand-in: {}: {error}", path.display())
            }
            StandInError::Load { path, error } => write!(
                f,
                "the CUDA stand-in {} could not be loaded: {error}",
                path.display()
            ),
            StandInError::Unsupported => {
                write!(f, "the CUDA stand-in needs a Unix host (Linux)")
            }
        }
    }
}

impl std::error::Error for StandInError {}

/// FNV-1a over the sources and flags: the build's directory name, so that
/// a changed source builds afresh and an unchanged one is reused.
fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    };
    for (name, text) in SOURCES {
        eat(name.as_bytes());
        eat(text.as_bytes());
    }
    for flag in FLAGS {
        eat(flag.as_bytes());
    }
    h
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StandInError + '_ {
    move |error| StandInError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Builds the stand-in under `parent` (in `parent/cuda-standin-<hash>/`,
/// reused when it is already there) and returns that directory, which
/// holds `libcuda.so` and `libcublas.so`. Takes a few seconds the first
/// time. Several processes may build at once: each builds in a directory of
/// its own and the first to finish moves it into place.
///
/// # Errors
/// [`StandInError::NoCompiler`] without `c++`; [`StandInError::Compile`]
/// with the compiler's messages; [`StandInError::Io`] when writing fails;
/// [`StandInError::Unsupported`] on a host that is not Unix.
pub fn build(parent: &Path) -> Result<PathBuf, StandInError> {
    if !cfg!(unix) {
        return Err(StandInError::Unsupported);
    }
    let dir = parent.join(format!("cuda-standin-{:016x}", fingerprint()));
    if dir.join("libcublas.so").is_file() {
        return Ok(dir);
    }
    let tmp = parent.join(format!(
        ".cuda-standin-{:016x}.tmp-{}",
        fingerprint(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    for (name, text) in SOURCES {
        let path = tmp.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    compile(&tmp, "libcuda.so", &["driver.cpp"], &[])?;
    compile(
        &tmp,
        "libcublas.so",
        &["cublas.cpp"],
        &["-L.", "-l:libcuda.so", "-Wl,-rpath,$ORIGIN"],
    )?;
    for (name, _) in SOURCES {
        let _ = std::fs::remove_file(tmp.join(name));
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process finished first: use its build.
        Err(_) if dir.join("libcublas.so").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(io(&dir)(e)),
    }
}

/// Compiles `sources` in `dir` into `dir/library` with soname `library`.
fn compile(
    dir: &Path,
    library: &'static str,
    sources: &[&str],
    extra: &[&str],
) -> Result<(), StandInError> {
    let out = Command::new("c++")
        .current_dir(dir)
        .args(FLAGS)
        .args(["-I", "."])
        .args(sources)
        .arg(format!("-Wl,-soname,{library}"))
        .args(["-o", library])
        .args(extra)
        .output()
        .map_err(StandInError::NoCompiler)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(StandInError::Compile {
            library,
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Which driver [`install`] left in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Driver {
    /// A real driver that sees at least one device: the stand-in was not
    /// loaded.
    Real,
    /// The stand-in, loaded from this directory.
    StandIn(PathBuf),
}

/// Loads the stand-in built in `dir` (by [`build`]) so that cudarc uses it,
/// unless a real driver that sees a device can be loaded. Call it before
/// the first use of CUDA in the process (cudarc keeps the first library it
/// opened); the first call decides for the whole process, and later calls
/// return its answer.
///
/// # Errors
/// [`StandInError::Load`] when a library in `dir` cannot be loaded.
pub fn install(dir: &Path) -> Result<Driver, StandInError> {
    static INSTALLED: OnceLock<Result<Driver, (PathBuf, String)>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            if real_driver_has_device() {
                return Ok(Driver::Real);
            }
            for name in ["libcuda.so", "libcublas.so"] {
                let path = dir.join(name);
                // SAFETY: the library is the stand-in built from this
                // crate's sources; loading it runs only C++ static
                // initialisers without side effects. It stays loaded for
                // the life of the process (cudarc keeps using it).
                let lib = unsafe { libloading::Library::new(&path) }
                    .map_err(|e| (path.clone(), e.to_string()))?;
                std::mem::forget(lib);
            }
            Ok(Driver::StandIn(dir.to_path_buf()))
        })
        .clone()
        .map_err(|(path, error)| StandInError::Load { path, error })
}

/// Whether a driver other than the stand-in loads under cudarc's names,
/// initialises, and sees at least one device.
fn real_driver_has_device() -> bool {
    type Init = unsafe extern "C" fn(u32) -> i32;
    type Count = unsafe extern "C" fn(*mut i32) -> i32;
    for name in crate::lib_names::lib_names("cuda") {
        // SAFETY: loading the driver runs its initialisers, as cudarc
        // would; the two functions are read with their documented C
        // signatures.
        unsafe {
            let Ok(lib) = libloading::Library::new(&name) else {
                continue;
            };
            if lib.get::<u8>(b"so_standin_device_range").is_ok() {
                return false;
            }
            let (Ok(init), Ok(count)) = (
                lib.get::<Init>(b"cuInit"),
                lib.get::<Count>(b"cuDeviceGetCount"),
            ) else {
                return false;
            };
            let mut n = 0;
            return init(0) == 0 && count(&mut n) == 0 && n > 0;
        }
    }
    false
}

/// What [`crate::Cuda::new`] does with [`ENV`]: when it is set, builds the
/// stand-in under its directory and installs it (a real GPU still wins).
pub(crate) fn from_env() -> Result<(), StandInError> {
    let Some(parent) = std::env::var_os(ENV) else {
        return Ok(());
    };
    if real_driver_has_device() {
        return Ok(()); // nothing to build
    }
    let dir = build(Path::new(&parent))?;
    install(&dir)?;
    Ok(())
}

/// For test suites: the backend on device 0, on a real GPU where the driver
/// sees one, else through the stand-in built under `parent` (pass
/// `env!("CARGO_TARGET_TMPDIR")`); or why there is none, for the test to
/// print as `skipped: <reason>`.
///
/// # Panics
/// When `SMOOTHOUT_REQUIRE_NVRTC` is set (CI, which installs NVRTC and a
/// C++ compiler) and the backend cannot be created: there the GPU tests
/// must run, not skip.
pub fn test_backend(parent: &Path) -> Result<crate::Cuda, String> {
    let standin = if real_driver_has_device() {
        Ok(())
    } else {
        build(parent).and_then(|dir| install(&dir)).map(drop)
    };
    let made = standin
        .map_err(|e| e.to_string())
        .and_then(|()| crate::Cuda::new().map_err(|e| e.to_string()));
    match made {
        Err(e) if std::env::var_os("SMOOTHOUT_REQUIRE_NVRTC").is_some() => {
            panic!("SMOOTHOUT_REQUIRE_NVRTC is set, so the GPU tests must run, but: {e}")
        }
        other => other,
    }
}
