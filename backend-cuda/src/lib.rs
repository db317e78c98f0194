//! The CUDA backend of [`smoothout`]: every backend trait on one NVIDIA GPU,
//! through [`cudarc`].
//!
//! CUDA is loaded at run time (cudarc's dynamic loading), so this crate
//! builds on any machine; [`Cuda::new`] checks that the driver, NVRTC and
//! cuBLAS can be loaded and that a device exists, and returns a typed
//! [`CudaError`] naming what is missing instead of panicking. The kernels
//! are CUDA C files under `backend-cuda/kernels/`, compiled for the device
//! by NVRTC when the backend is created and kept with it; GEMM goes through
//! cuBLAS.
//!
//! What is bit-identical to the CPU backend and the reference, and what is
//! compared within a bound, is tabled in the workspace README (“On a GPU”): noise,
//! perturbation, de-noising, the fused update, row norms and AdaSmoothOut
//! scales are bit-identical (the same Philox words, the same roundings, the
//! same 32-lane sums); GEMM, convolution and the reductions of batch
//! normalisation and the loss are summed in another order.
//!
//! Without a GPU, [`standin`] runs all of this crate's host code — every
//! cudarc call, launch and cuBLAS call — through a CPU stand-in for the
//! driver and cuBLAS; the GPU tests use it in every CI run.
//!
//! ```no_run
//! use smoothout::{BufferOps, Noise, NoiseKey, NoiseOps};
//! use smoothout_cuda::Cuda;
//!
//! let gpu = Cuda::new()?; // a typed error, not a panic, without a GPU
//! let mut theta = gpu.zeros(1 << 20)?;
//! gpu.fill_noise(NoiseKey::for_draw(0, 1, 0, 2), &Noise::uniform(0.05)?, &mut theta)?;
//! let host = gpu.to_vec(&theta)?; // the CPU backend's bits
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod kernels;
mod launch_sizes;
mod lib_names;
pub mod standin;
mod tensor;

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use smoothout::reference::{self, Scale};
use smoothout::tensor::check_len;
use smoothout::unit::bernoulli_threshold;
use smoothout::{
    BackendTypes, BlasOps, BufferOps, Error, FilterNoise, Noise, NoiseKey, NoiseOf, NoiseOps,
    NormOps, PerturbOps, Result, Sgd, StateOps, Unit, UpdateOps,
};

pub use error::{probe, CudaError, Library};

use error::device;

/// Threads per block of every launch.
const THREADS: u32 = 256;
/// The most blocks of a grid-stride launch.
const MAX_BLOCKS: u64 = 1 << 16;

/// One CUDA device with its stream, cuBLAS handle and compiled kernels.
///
/// Cloning is cheap and shares everything. Buffers are `CudaSlice<f32>`;
/// every operation is queued on the backend's one stream, so operations run
/// in the order they are called, and [`BufferOps::to_vec`] waits for them.
#[derive(Clone)]
pub struct Cuda {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    arch: String,
    /// Each kernel with its parameters' sizes in bytes, read from its PTX.
    functions: HashMap<&'static str, (CudaFunction, Vec<usize>)>,
    /// Passed where a kernel's `float` pointer argument is unused.
    dummy: CudaSlice<f32>,
    /// Passed where a kernel's `double` pointer argument is unused.
    dummy64: CudaSlice<f64>,
}

impl core::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cuda")
            .field("ordinal", &self.inner.ctx.ordinal())
            .field("arch", &self.inner.arch)
            .finish_non_exhaustive()
    }
}

fn driver(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::Driver {
        op,
        name: error::driver_name(&e),
    }
}

impl Cuda {
    /// The backend on device 0.
    ///
    /// # Errors
    /// As [`Cuda::with_device`].
    pub fn new() -> core::result::Result<Self, CudaError> {
        Self::with_device(0)
    }

    /// The backend on device `ordinal`: loads the driver, NVRTC and cuBLAS,
    /// compiles every kernel for the device's architecture, and creates a
    /// stream and a cuBLAS handle.
    ///
    /// # Errors
    /// [`CudaError::MissingLibrary`] when a library cannot be loaded (the
    /// message says how to install it); [`CudaError::NoDevice`] when the
    /// driver sees no such device; [`CudaError::Compile`] when a kernel does
    /// not compile for this device; [`CudaError::Driver`] or
    /// [`CudaError::Cublas`] when setting up fails; [`CudaError::StandIn`]
    /// when [`standin::ENV`] is set and the stand-in cannot be built or
    /// loaded.
    pub fn with_device(ordinal: usize) -> core::result::Result<Self, CudaError> {
        standin::from_env().map_err(CudaError::StandIn)?;
        probe(Library::Driver)?;
        // cuInit fails with CUDA_ERROR_NO_DEVICE on a machine without a GPU,
        // and with CUDA_ERROR_STUB_LIBRARY where the loaded libcuda is the
        // toolkit's link-time stub (no driver installed).
        let count = match CudaContext::device_count() {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e)
                if matches!(
                    e.0,
                    cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE
                        | cudarc::driver::sys::CUresult::CUDA_ERROR_STUB_LIBRARY
                ) =>
            {
                0
            }
            Err(e) => return Err(driver("count the devices")(e)),
        };
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        probe(Library::Nvrtc)?;
        probe(Library::Cublas)?;
        let ctx = CudaContext::new(ordinal).map_err(driver("create a context"))?;
        // One stream, used in order: cudarc's per-buffer event tracking
        // (for several streams) would only add driver calls.
        // SAFETY: no buffer exists yet, and every operation of this backend
        // runs on its one stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver("create a stream"))?;
        Self::on_stream(stream)
    }

    /// The backend on an existing cudarc stream, e.g. candle's
    /// (`candle_core::CudaDevice::cuda_stream()`), so that both work on the
    /// same device memory without copies or synchronisation between them.
    ///
    /// Does what [`Cuda::with_device`] does on the stream's context instead
    /// of a context and stream of its own: checks that NVRTC and cuBLAS can
    /// be loaded, compiles every kernel for the context's device, and
    /// creates a cuBLAS handle bound to `stream`. From then on every
    /// operation of this backend (kernels, cuBLAS calls, allocations,
    /// copies, [`Cuda::synchronize`]) is queued on `stream`, in call order
    /// with whatever else the stream's owner queues there; buffers are
    /// `CudaSlice<f32>` of that context, so the owner's `CudaSlice<f32>`
    /// can be passed to this backend and back. The backend keeps the stream
    /// and its context alive. Unlike [`Cuda::with_device`] it leaves the
    /// context's event tracking as the owner set it (candle leaves it on:
    /// cudarc then records an event per buffer use, which only costs driver
    /// calls on one stream).
    ///
    /// candle's `Device::new_cuda` uses the per-thread default stream
    /// (cudarc's `per_thread_stream`), which is a different stream on each
    /// host thread: call this backend from the thread that runs candle's
    /// ops, or give candle a stream of its own (`CudaDevice::new_with_stream`).
    ///
    /// # Errors
    /// [`CudaError::MissingLibrary`] when NVRTC or cuBLAS cannot be loaded;
    /// [`CudaError::Compile`] when a kernel does not compile for this
    /// device; [`CudaError::Driver`] or [`CudaError::Cublas`] when setting
    /// up fails.
    pub fn from_stream(stream: Arc<CudaStream>) -> core::result::Result<Self, CudaError> {
        // The driver is loaded: the stream came from it.
        probe(Library::Nvrtc)?;
        probe(Library::Cublas)?;
        Self::on_stream(stream)
    }

    /// Compiles the kernels for the stream's device and sets up cuBLAS and
    /// the dummy buffers on the stream (the libraries were probed).
    fn on_stream(stream: Arc<CudaStream>) -> core::result::Result<Self, CudaError> {
        let ctx = stream.context().clone();
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("read the compute capability"))?;
        let arch = format!("compute_{major}{minor}");
        let mut functions = HashMap::new();
        for m in &kernels::MODULES {
            let ptx = kernels::compile(m, &arch)?;
            let text = ptx.to_src();
            let module = ctx.load_module(ptx).map_err(driver("load a PTX module"))?;
            for &k in m.kernels {
                let f = module.load_function(k).map_err(driver("find a kernel"))?;
                // `compile` checked that the PTX defines every kernel.
                let params = kernels::entry_params(&text, k).ok_or_else(|| CudaError::Compile {
                    file: m.file,
                    arch: arch.clone(),
                    log: format!("the parameters of {k} could not be read from the PTX"),
                })?;
                functions.insert(k, (f, params));
            }
        }
        let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError::Cublas {
            name: error::cublas_name(&e),
        })?;
        let dummy = stream
            .alloc_zeros::<f32>(1)
            .map_err(driver("allocate memory"))?;
        let dummy64 = stream
            .alloc_zeros::<f64>(1)
            .map_err(driver("allocate memory"))?;
        Ok(Cuda {
            inner: Arc::new(Inner {
                ctx,
                stream,
                blas,
                arch,
                functions,
                dummy,
                dummy64,
            }),
        })
    }

    /// The device's name (`"NVIDIA H100 80GB HBM3"`).
    ///
    /// # Errors
    /// [`Error::Device`] when the driver call fails.
    pub fn device_name(&self) -> Result<String> {
        self.inner.ctx.name().map_err(device("device name"))
    }

    /// The PTX architecture the kernels were compiled for (`"compute_90"`).
    #[must_use]
    pub fn arch(&self) -> &str {
        &self.inner.arch
    }

    /// The backend's stream (to record events or share buffers with other
    /// cudarc code, e.g. candle).
    #[must_use]
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    /// Waits until every queued operation has finished.
    ///
    /// # Errors
    /// [`Error::Device`] with the first asynchronous failure.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .stream
            .synchronize()
            .map_err(device("synchronize"))
    }

    pub(crate) fn blas(&self) -> &CudaBlas {
        &self.inner.blas
    }

    pub(crate) fn function(&self, name: &'static str) -> &(CudaFunction, Vec<usize>) {
        // Every name used by the backend is in `kernels::MODULES`, whose
        // kernels were all found when the backend was created.
        &self.inner.functions[name]
    }
}

/// A grid-stride launch over `work` items.
pub(crate) fn grid(work: u64) -> LaunchConfig {
    let blocks = work.div_ceil(u64::from(THREADS)).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A launch with one warp per row.
fn warp_rows(rows: u64) -> LaunchConfig {
    grid(rows.saturating_mul(32))
}

/// The size in bytes a kernel argument takes in the launch's parameter
/// list: a device pointer for buffers, the value's own size for scalars.
pub(crate) trait KernelArg {
    fn arg_bytes(&self) -> usize;
}

impl<T> KernelArg for CudaSlice<T> {
    fn arg_bytes(&self) -> usize {
        core::mem::size_of::<cudarc::driver::sys::CUdeviceptr>()
    }
}

macro_rules! scalar_args {
    ($($t:ty),*) => {$(
        impl KernelArg for $t {
            fn arg_bytes(&self) -> usize {
                core::mem::size_of::<$t>()
            }
        }
    )*};
}
scalar_args!(i32, u32, u64, f32, f64);

/// Launches kernel `$kernel` with `$cfg` and the arguments, mapping a
/// failure to [`Error::Device`] for operation `$op`. The arguments' count
/// and sizes are checked against the kernel's parameters in its PTX first
/// (a mismatch is [`Error::Device`] named `"kernel arguments do not match
/// the kernel's PTX parameters"`): the driver reads each parameter with the
/// size the PTX gives it and cannot tell.
macro_rules! launch {
    ($self:expr, $op:expr, $kernel:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        let (f, params) = $self.function($kernel);
        let sizes = [$( $crate::KernelArg::arg_bytes(&*$arg) ),*];
        if sizes[..] != params[..] {
            return Err(Error::Device {
                op: $op,
                name: "kernel arguments do not match the kernel's PTX parameters",
                code: -1,
            });
        }
        let mut l = $self.stream().launch_builder(f);
        $( l.arg($arg); )*
        // SAFETY: the argument list has the kernel's parameter sizes, in
        // the order of its signature in kernels/*.cu, and every buffer is
        // at least as long as the lengths passed with it (checked by the
        // caller).
        unsafe { l.launch($cfg) }
            .map(drop)
            .map_err($crate::error::device($op))
    }};
}
pub(crate) use launch;

/// The number of rows, once [`reference::check_rows`] passed.
fn rows_of(len: usize, cols: usize, rows: usize) -> Result<u64> {
    reference::check_rows(len, cols, rows)?;
    Ok(rows as u64)
}

fn unit_code(unit: Unit) -> i32 {
    match unit {
        Unit::Uniform => 0,
        Unit::Gaussian => 1,
    }
}

/// An AdaSmoothOut draw as the `filter_scales` and `perturb_filter_norm`
/// kernels take it, after `w` and its per-row output.
struct FilterArgs {
    rows: u64,
    cols: u64,
    k0: u32,
    k1: u32,
    unit: i32,
    strength: f64,
}

impl FilterArgs {
    /// The kernel arguments for `w_len` elements in rows of `noise.cols`,
    /// one output per row; `None` when there are no rows (nothing to launch).
    fn of(w_len: usize, noise: &FilterNoise, out_len: usize) -> Result<Option<Self>> {
        let rows = rows_of(w_len, noise.cols, out_len)?;
        let [k0, k1] = noise.key.0;
        Ok((rows > 0).then_some(FilterArgs {
            rows,
            cols: noise.cols as u64,
            k0,
            k1,
            unit: unit_code(noise.unit),
            strength: noise.strength,
        }))
    }
}

/// θ's scaling as the kernels take it: mode, fixed scale, per-row scales
/// (a dummy buffer when unused) and the row length.
struct ScaleArgs<'a> {
    mode: i32,
    s: f32,
    scales: &'a CudaSlice<f32>,
    cols: u64,
}

impl Cuda {
    fn scale_args<'a>(&'a self, n: usize, noise: &NoiseOf<'a, Self>) -> Result<ScaleArgs<'a>> {
        let dummy = &self.inner.dummy;
        Ok(match noise.scale {
            Scale::Fixed(s) => ScaleArgs {
                mode: 0,
                s,
                scales: dummy,
                cols: 1,
            },
            Scale::PerElement(s) => ScaleArgs {
                mode: 1,
                s,
                scales: dummy,
                cols: 1,
            },
            Scale::Rows { cols, scales } => {
                if cols == 0 {
                    return Err(Error::InvalidSetting {
                        name: "row length (cols)",
                        value: 0.0,
                        expected: "at least 1",
                    });
                }
                check_len(
                    "per-row scales (one per row)",
                    n.div_ceil(cols),
                    scales.len(),
                )?;
                ScaleArgs {
                    mode: 2,
                    s: 0.0,
                    scales,
                    cols: cols as u64,
                }
            }
        })
    }

    fn perturb_or_denoise(
        &self,
        kernel: &'static str,
        w: &mut CudaSlice<f32>,
        noise: &NoiseOf<'_, Self>,
    ) -> Result<()> {
        let n = w.len();
        let a = self.scale_args(n, noise)?;
        if n == 0 {
            return Ok(());
        }
        let [k0, k1] = noise.key.0;
        let unit = unit_code(noise.unit);
        let n = n as u64;
        launch!(self, kernel, kernel, grid(n.div_ceil(4));
            w, &n, &k0, &k1, &unit, &a.mode, &a.s, a.scales, &a.cols)
    }
}

impl BackendTypes for Cuda {
    type Elem = f32;
    type Buffer = CudaSlice<f32>;
    fn len(&self, buf: &CudaSlice<f32>) -> usize {
        buf.len()
    }
}

impl NoiseOps for Cuda {
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut CudaSlice<f32>) -> Result<()> {
        noise.validate()?;
        let (kind, s, t) = match *noise {
            Noise::Uniform { a } => (0i32, a as f32, 0u32),
            Noise::Gaussian { std } => (1, std as f32, 0),
            Noise::Bernoulli { p } => (2, 0.0, bernoulli_threshold(p)),
        };
        let n = out.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let [k0, k1] = key.0;
        launch!(self, "fill_noise", "fill_noise", grid(n.div_ceil(4));
            out, &n, &k0, &k1, &kind, &s, &t)
    }

    fn write_noise(
        &self,
        noise: &NoiseOf<'_, Self>,
        w: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        check_len("noise output", w.len(), out.len())?;
        let n = w.len();
        let a = self.scale_args(n, noise)?;
        if n == 0 {
            return Ok(());
        }
        let [k0, k1] = noise.key.0;
        let unit = unit_code(noise.unit);
        let n = n as u64;
        launch!(self, "write_noise", "write_noise", grid(n.div_ceil(4));
            w, out, &n, &k0, &k1, &unit, &a.mode, &a.s, a.scales, &a.cols)
    }
}

impl PerturbOps for Cuda {
    fn perturb(&self, w: &mut CudaSlice<f32>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        self.perturb_or_denoise("perturb", w, noise)
    }

    fn denoise(&self, w: &mut CudaSlice<f32>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        self.perturb_or_denoise("denoise", w, noise)
    }

    fn drop_out(&self, w: &mut CudaSlice<f32>, key: NoiseKey, p: f64) -> Result<()> {
        Noise::bernoulli(p)?;
        let n = w.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let t = bernoulli_threshold(p);
        let [k0, k1] = key.0;
        launch!(self, "drop_out", "drop_out", grid(n.div_ceil(4)); w, &n, &k0, &k1, &t)
    }

    fn perturb_filter_norm(
        &self,
        w: &mut CudaSlice<f32>,
        noise: &FilterNoise,
        scales: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let Some(a) = FilterArgs::of(w.len(), noise, scales.len())? else {
            return Ok(());
        };
        launch!(self, "perturb_filter_norm", "perturb_filter_norm", warp_rows(a.rows);
            w, &a.rows, &a.cols, &a.k0, &a.k1, &a.unit, &a.strength, scales)
    }
}

impl NormOps for Cuda {
    fn row_norms(&self, w: &CudaSlice<f32>, cols: usize, out: &mut [f64]) -> Result<()> {
        let rows = rows_of(w.len(), cols, out.len())?;
        if rows == 0 {
            return Ok(());
        }
        let stream = self.stream();
        let mut norms = stream
            .alloc_zeros::<f64>(out.len())
            .map_err(device("row_norms"))?;
        let cols = cols as u64;
        launch!(self, "row_norms", "row_norms", warp_rows(rows); w, &rows, &cols, &mut norms)?;
        stream
            .memcpy_dtoh(&norms, out)
            .map_err(device("row_norms"))?;
        self.synchronize()
    }

    fn filter_scales(
        &self,
        w: &CudaSlice<f32>,
        noise: &FilterNoise,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let Some(a) = FilterArgs::of(w.len(), noise, out.len())? else {
            return Ok(());
        };
        launch!(self, "filter_scales", "filter_scales", warp_rows(a.rows);
            w, &a.rows, &a.cols, &a.k0, &a.k1, &a.unit, &a.strength, out)
    }
}

impl BlasOps for Cuda {
    fn axpy(&self, alpha: f32, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        check_len("axpy operands", y.len(), x.len())?;
        let n = y.len() as u64;
        if n == 0 {
            return Ok(());
        }
        launch!(self, "axpy", "axpy", grid(n); &alpha, x, y, &n)
    }
}

impl UpdateOps for Cuda {
    fn denoise_sgd(
        &self,
        w: &mut CudaSlice<f32>,
        grad: &CudaSlice<f32>,
        velocity: &mut CudaSlice<f32>,
        noise: Option<&NoiseOf<'_, Self>>,
        sgd: &Sgd,
    ) -> Result<()> {
        sgd.validate()?;
        let n = w.len();
        check_len("gradient", n, grad.len())?;
        check_len("velocity", n, velocity.len())?;
        let (has, key, unit, a) = match noise {
            Some(d) => (1i32, d.key, unit_code(d.unit), self.scale_args(n, d)?),
            None => (
                0,
                NoiseKey([0, 0]),
                0,
                ScaleArgs {
                    mode: 0,
                    s: 0.0,
                    scales: &self.inner.dummy,
                    cols: 1,
                },
            ),
        };
        if n == 0 {
            return Ok(());
        }
        let [k0, k1] = key.0;
        let n = n as u64;
        let (lr, mu, wd) = (sgd.lr as f32, sgd.momentum as f32, sgd.weight_decay as f32);
        launch!(self, "denoise_sgd", "denoise_sgd", grid(n.div_ceil(4));
            w, grad, velocity, &n, &has, &k0, &k1, &unit, &a.mode, &a.s, a.scales, &a.cols,
            &lr, &mu, &wd)
    }
}

impl StateOps for Cuda {
    type State = CudaSlice<f32>;

    fn state(&self, len: usize) -> Result<CudaSlice<f32>> {
        // A zero-byte cuMemAlloc is an error; cudarc's `null` is the
        // empty buffer.
        if len == 0 {
            return self.stream().null().map_err(device("zeros"));
        }
        self.stream()
            .alloc_zeros::<f32>(len)
            .map_err(device("zeros"))
    }

    fn copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>) -> Result<()> {
        check_len("copy destination", src.len(), dst.len())?;
        if src.is_empty() {
            return Ok(());
        }
        self.stream().memcpy_dtod(src, dst).map_err(device("copy"))
    }
}

impl BufferOps for Cuda {
    fn zeros(&self, len: usize) -> Result<CudaSlice<f32>> {
        self.state(len)
    }

    fn upload(&self, data: &[f32]) -> Result<CudaSlice<f32>> {
        if data.is_empty() {
            return self.zeros(0);
        }
        self.stream().clone_htod(data).map_err(device("upload"))
    }

    fn copy_range(
        &self,
        src: &CudaSlice<f32>,
        src_start: usize,
        dst: &mut CudaSlice<f32>,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        let (from, to) =
            smoothout::reference::copy_ranges(src.len(), src_start, dst.len(), dst_start, len)?;
        if len == 0 {
            return Ok(());
        }
        let from = src.slice(from);
        let mut to = dst.slice_mut(to);
        self.stream()
            .memcpy_dtod(&from, &mut to)
            .map_err(device("copy_range"))
    }

    fn to_vec(&self, buf: &CudaSlice<f32>) -> Result<Vec<f32>> {
        if buf.is_empty() {
            return Ok(Vec::new());
        }
        self.stream().clone_dtoh(buf).map_err(device("to_vec"))
    }
}
