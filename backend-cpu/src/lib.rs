//! The CPU backend of [`smoothout`]: every backend trait on `ndarray` arrays,
//! in parallel with `rayon`.
//!
//! Buffers are [`ndarray::ArrayD`] in standard (row-major, contiguous)
//! layout. Work is split into fixed ranges of elements (or of rows), never by
//! the thread pool's own chunking, and each range calls the
//! [`smoothout::reference`] function for its elements; so noise,
//! perturbation and de-noising give the reference's bits whatever the number
//! of threads and the chunk size.
//!
//! The tensor operations of [`smoothout::tensor::TensorBackend`] work the same way
//! (images, planes, channels or rows per task); GEMM goes through
//! `matrixmultiply` in one block of rows per thread, and since each
//! element's sum over `k` runs in the same order whatever the rows, its bits
//! do not depend on the thread count either (tested with 1 and 2 threads).
//!
//! ```
//! use ndarray::ArrayD;
//! use smoothout::{Config, Draw, Noise, ParamSpec, SmoothOut};
//! use smoothout_cpu::Cpu;
//!
//! let cpu = Cpu::<f32>::with_threads(2)?;
//! let mut params = vec![ArrayD::from_elem(vec![16, 9], 0.25f32)];
//! let specs = vec![ParamSpec::weight("conv", [16, 1, 3, 3])];
//! let mut so = SmoothOut::new(&cpu, Config::new(Noise::uniform(0.05)?), specs)?;
//! let sum = so.step(&cpu, &mut params, Draw::new(0, 0), |p| {
//!     Ok::<f32, smoothout::Error>(p[0].sum())
//! })?;
//! assert!((sum - 36.0).abs() < 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod channel_sums;
mod dense;
#[cfg(target_arch = "x86_64")]
mod direct_gemm;
mod host;
#[cfg(target_arch = "x86_64")]
mod input_grad;
mod isa;
mod same;
mod spare;
mod tensor;
#[cfg(target_arch = "x86_64")]
mod transpose;

pub use host::Host;
pub use isa::Isa;
pub use tensor::GEMM_ROWS;

use isa::kernels;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;
use smoothout::reference::{self, ParamNoise};
use smoothout::tensor::check_len;
use smoothout::{
    BackendTypes, BlasOps, BufferOps, Error, FilterNoise, Noise, NoiseKey, NoiseOf, NoiseOps,
    NormOps, PerturbOps, Real, Result, Sgd, StateOps, UpdateOps,
};
use spare::{ChannelWork, Spare};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Elements per parallel task unless set otherwise (a multiple of the
/// 128-element noise tile, [`smoothout::philox::TILE`]).
pub const DEFAULT_CHUNK: usize = 1 << 15;

/// Worker threads allowed per core: [`max_threads`] is this many times the
/// cores the system reports, and never less than [`MIN_THREAD_LIMIT`].
pub const THREADS_PER_CORE: usize = 4;

/// The thread limit on machines with few cores (and where the number of
/// cores cannot be read).
pub const MIN_THREAD_LIMIT: usize = 32;

/// The most worker threads a [`Cpu`] may have:
///
/// ```text
/// max_threads = max(THREADS_PER_CORE · cores, MIN_THREAD_LIMIT)
/// ```
///
/// with `cores` from [`std::thread::available_parallelism`] (1 when it
/// cannot be read). More threads than cores only add switching, and a count
/// such as 100 000 would spawn threads until the system stops it.
///
/// ```
/// let max = smoothout_cpu::max_threads();
/// assert!(max >= smoothout_cpu::MIN_THREAD_LIMIT);
/// assert!(smoothout_cpu::check_threads(max).is_ok());
/// assert!(smoothout_cpu::check_threads(max + 1).is_err());
/// ```
#[must_use]
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.saturating_mul(THREADS_PER_CORE).max(MIN_THREAD_LIMIT)
}

/// Checks a thread count for [`Cpu::with_threads`] without starting
/// anything: 0 (one per core) or `1..=max_threads()`.
///
/// # Errors
/// [`CpuError::TooManyThreads`] above [`max_threads`].
pub fn check_threads(threads: usize) -> core::result::Result<(), CpuError> {
    let max = max_threads();
    if threads > max {
        return Err(CpuError::TooManyThreads {
            requested: threads,
            max,
        });
    }
    Ok(())
}

/// The `ndarray` + `rayon` backend for element type `T` (`f32` or `f64`).
#[derive(Debug)]
pub struct Cpu<T> {
    pool: rayon::ThreadPool,
    chunk: usize,
    isa: Isa,
    spare: Spare<T>,
    work: Mutex<ChannelWork>,
    fresh: AtomicU64,
}

/// Why a CPU backend could not be built.
#[derive(Debug)]
pub enum CpuError {
    /// The thread pool could not be started.
    ThreadPool(rayon::ThreadPoolBuildError),
    /// A chunk size of zero was asked for.
    ZeroChunk,
    /// The CPU lacks the instruction set asked for.
    UnsupportedIsa(Isa),
    /// More worker threads were asked for than [`max_threads`] allows.
    TooManyThreads {
        /// The count asked for.
        requested: usize,
        /// [`max_threads`] on this machine.
        max: usize,
    },
}

impl core::fmt::Display for CpuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpuError::ThreadPool(e) => write!(f, "could not start the rayon thread pool: {e}"),
            CpuError::ZeroChunk => write!(f, "chunk size 0 is invalid: use at least 1 element"),
            CpuError::UnsupportedIsa(isa) => write!(
                f,
                "this CPU does not support {isa:?}: use Isa::detect() or Isa::Baseline"
            ),
            CpuError::TooManyThreads { requested, max } => write!(
                f,
                "{requested} worker threads are more than the {max} this machine allows \
                 ({THREADS_PER_CORE} per core, and at least {MIN_THREAD_LIMIT}): use at most \
                 {max}, or 0 for one per core"
            ),
        }
    }
}

impl std::error::Error for CpuError {}

impl<T: Real> Cpu<T> {
    /// A backend with one thread per core.
    pub fn new() -> core::result::Result<Self, CpuError> {
        Self::with_threads(0)
    }

    /// A backend with `threads` worker threads (0: one per core).
    ///
    /// # Errors
    /// [`CpuError::TooManyThreads`] above [`max_threads`] (checked before
    /// any thread starts); [`CpuError::ThreadPool`] when the pool cannot
    /// start.
    pub fn with_threads(threads: usize) -> core::result::Result<Self, CpuError> {
        check_threads(threads)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(CpuError::ThreadPool)?;
        // Every thread runs once before the backend is handed out: a thread
        // sets up its work-stealing state (an allocation) the first time it
        // looks for work, and on a loaded machine a thread that had not yet
        // run did that in the middle of a steady training step.
        pool.broadcast(|_| ());
        Ok(Cpu {
            pool,
            chunk: DEFAULT_CHUNK,
            isa: Isa::detect(),
            spare: Spare::new(),
            work: Mutex::new(ChannelWork::default()),
            fresh: AtomicU64::new(0),
        })
    }

    /// The same backend splitting work into tasks of `chunk` elements.
    /// Results do not depend on it; only speed does.
    pub fn with_chunk(mut self, chunk: usize) -> core::result::Result<Self, CpuError> {
        if chunk == 0 {
            return Err(CpuError::ZeroChunk);
        }
        self.chunk = chunk;
        Ok(self)
    }

    /// The same backend with its kernels compiled for `isa` (the default is
    /// [`Isa::detect`]). Results do not depend on it; only speed does.
    pub fn with_isa(mut self, isa: Isa) -> core::result::Result<Self, CpuError> {
        if !isa.supported() {
            return Err(CpuError::UnsupportedIsa(isa));
        }
        self.isa = isa;
        Ok(self)
    }

    /// The instruction set the kernels run with.
    #[must_use]
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Number of worker threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f(isa, first_row, w_rows, out_rows)` over whole rows of `w`
    /// (`cols` elements each) and the matching entries of `out` (one a row),
    /// in parallel tasks of a fixed number of rows. When the lengths do not
    /// form rows, `f` runs once on everything and reports the precise error.
    fn row_tasks<W: ParChunks, O: Send>(
        &self,
        w: W,
        cols: usize,
        out: &mut [O],
        f: impl Fn(Isa, usize, W, &mut [O]) -> Result<()> + Sync,
    ) -> Result<()> {
        let (len, rows, isa) = (w.len(), out.len(), self.isa);
        if cols == 0 || len % cols != 0 || rows != len / cols {
            return f(isa, 0, w, out);
        }
        let rows_per_task = (self.chunk / cols).max(1);
        self.pool.install(|| {
            out.par_chunks_mut(rows_per_task)
                .zip(w.par_chunks_of(rows_per_task * cols))
                .enumerate()
                .try_for_each(|(i, (o, w))| f(isa, i * rows_per_task, w, o))
        })
    }

    /// Runs `f(isa, start, chunk)` over `x` split into tasks of `self.chunk`
    /// elements, `start` being the index of the chunk's first element.
    fn chunks_mut(
        &self,
        x: &mut [T],
        f: impl Fn(Isa, u64, &mut [T]) -> Result<()> + Sync,
    ) -> Result<()> {
        let (n, isa) = (self.chunk, self.isa);
        if x.len() <= n {
            // One chunk: the same call, without waking the pool.
            return f(isa, 0, x);
        }
        self.pool.install(|| {
            x.par_chunks_mut(n)
                .enumerate()
                .try_for_each(|(i, c)| f(isa, (i * n) as u64, c))
        })
    }
}

/// A slice split into parallel chunks: `&[T]` for an operand that is only
/// read, `&mut [T]` for one that is written.
trait ParChunks: Sized + Send {
    /// The parallel iterator over the chunks.
    type Chunks: IndexedParallelIterator<Item = Self>;
    /// Number of elements.
    fn len(&self) -> usize;
    /// Chunks of `size` elements (the last one shorter).
    fn par_chunks_of(self, size: usize) -> Self::Chunks;
}

impl<'a, T: Sync> ParChunks for &'a [T] {
    type Chunks = rayon::slice::Chunks<'a, T>;
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    fn par_chunks_of(self, size: usize) -> Self::Chunks {
        self.par_chunks(size)
    }
}

impl<'a, T: Send> ParChunks for &'a mut [T] {
    type Chunks = rayon::slice::ChunksMut<'a, T>;
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    fn par_chunks_of(self, size: usize) -> Self::Chunks {
        self.par_chunks_mut(size)
    }
}

fn slice<T>(a: &ArrayD<T>) -> Result<&[T]> {
    a.as_slice().ok_or(Error::NonContiguous)
}

fn slice_mut<T>(a: &mut ArrayD<T>) -> Result<&mut [T]> {
    a.as_slice_mut().ok_or(Error::NonContiguous)
}

fn host<'a, T: Real>(n: &NoiseOf<'a, Cpu<T>>) -> Result<ParamNoise<'a, T, [T]>> {
    n.map_scales(|s: &'a ArrayD<T>| slice(s))
}

impl<T: Real> BackendTypes for Cpu<T> {
    type Elem = T;
    type Buffer = ArrayD<T>;
    fn len(&self, buf: &ArrayD<T>) -> usize {
        buf.len()
    }
}

impl<T: Real> NoiseOps for Cpu<T> {
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut ArrayD<T>) -> Result<()> {
        noise.validate()?;
        self.chunks_mut(slice_mut(out)?, |isa, start, c| {
            kernels::fill_noise(isa, key, noise, start, c)
        })
    }

    fn write_noise(
        &self,
        noise: &NoiseOf<'_, Self>,
        w: &ArrayD<T>,
        out: &mut ArrayD<T>,
    ) -> Result<()> {
        let n = host(noise)?;
        let w = slice(w)?;
        reference::check_noise(&n, w.len())?;
        let isa = self.isa;
        self.chunks_zip("noise output", slice_mut(out)?, w, |start, o, w| {
            kernels::write_noise(isa, &n, start, w, o)
        })
    }
}

impl<T: Real> Cpu<T> {
    /// Runs `f(start, out_chunk, w_chunk)` over `out` and `w` in the same
    /// fixed chunks as [`Cpu::chunks_mut`]; `what` names `out` in the error
    /// when its length is not `w`'s.
    fn chunks_zip(
        &self,
        what: &'static str,
        out: &mut [T],
        w: &[T],
        f: impl Fn(u64, &mut [T], &[T]) -> Result<()> + Sync,
    ) -> Result<()> {
        check_len(what, w.len(), out.len())?;
        let n = self.chunk;
        if w.len() <= n {
            return f(0, out, w);
        }
        self.pool.install(|| {
            out.par_chunks_mut(n)
                .zip(w.par_chunks(n))
                .enumerate()
                .try_for_each(|(i, (o, w))| f((i * n) as u64, o, w))
        })
    }
}

impl<T: Real> PerturbOps for Cpu<T> {
    fn perturb(&self, w: &mut ArrayD<T>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        let n = host(noise)?;
        self.chunks_mut(slice_mut(w)?, |isa, start, c| {
            kernels::perturb(isa, &n, start, c);
            Ok(())
        })
    }

    fn denoise(&self, w: &mut ArrayD<T>, noise: &NoiseOf<'_, Self>) -> Result<()> {
        let n = host(noise)?;
        self.chunks_mut(slice_mut(w)?, |isa, start, c| {
            kernels::denoise(isa, &n, start, c);
            Ok(())
        })
    }

    fn perturb_filter_norm(
        &self,
        w: &mut ArrayD<T>,
        n: &FilterNoise,
        scales: &mut ArrayD<T>,
    ) -> Result<()> {
        self.row_tasks(
            slice_mut(w)?,
            n.cols,
            slice_mut(scales)?,
            |isa, first, w, s| {
                kernels::perturb_filter_norm(isa, n.key, n.unit, n.strength, n.cols, first, w, s)
            },
        )
    }

    fn drop_out(&self, w: &mut ArrayD<T>, key: NoiseKey, p: f64) -> Result<()> {
        Noise::bernoulli(p)?;
        self.chunks_mut(slice_mut(w)?, |isa, start, c| {
            kernels::drop_out(isa, key, p, start, c)
        })
    }
}

impl<T: Real> NormOps for Cpu<T> {
    fn row_norms(&self, w: &ArrayD<T>, cols: usize, out: &mut [f64]) -> Result<()> {
        self.row_tasks(slice(w)?, cols, out, |isa, _, w, o| {
            kernels::row_norms(isa, w, cols, o)
        })
    }

    fn filter_scales(&self, w: &ArrayD<T>, n: &FilterNoise, out: &mut ArrayD<T>) -> Result<()> {
        self.row_tasks(slice(w)?, n.cols, slice_mut(out)?, |isa, first, w, o| {
            kernels::filter_scales(isa, n.key, n.unit, n.strength, n.cols, first, w, o)
        })
    }
}

impl<T: Real> BlasOps for Cpu<T> {
    fn axpy(&self, alpha: T, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let x = slice(x)?;
        let y = slice_mut(y)?;
        check_len("axpy operands", y.len(), x.len())?;
        let n = self.chunk;
        self.pool.install(|| {
            y.par_chunks_mut(n)
                .zip(x.par_chunks(n))
                .try_for_each(|(y, x)| kernels::axpy(self.isa, alpha, x, y))
        })
    }
}

impl<T: Real> UpdateOps for Cpu<T> {
    fn denoise_sgd(
        &self,
        w: &mut ArrayD<T>,
        grad: &ArrayD<T>,
        velocity: &mut ArrayD<T>,
        noise: Option<&NoiseOf<'_, Self>>,
        sgd: &Sgd,
    ) -> Result<()> {
        sgd.validate()?;
        let n = noise.map(host).transpose()?;
        let w = slice_mut(w)?;
        let g = slice(grad)?;
        let v = slice_mut(velocity)?;
        check_len("gradient", w.len(), g.len())?;
        check_len("velocity", w.len(), v.len())?;
        let c = self.chunk;
        if w.len() <= c {
            // One chunk: the same call, without waking the pool.
            return kernels::denoise_sgd(self.isa, n.as_ref(), 0, w, g, v, sgd);
        }
        self.pool.install(|| {
            w.par_chunks_mut(c)
                .zip(g.par_chunks(c))
                .zip(v.par_chunks_mut(c))
                .enumerate()
                .try_for_each(|(i, ((w, g), v))| {
                    let start = (i * c) as u64;
                    kernels::denoise_sgd(self.isa, n.as_ref(), start, w, g, v, sgd)
                })
        })
    }
}

impl<T: Real> StateOps for Cpu<T> {
    type State = ArrayD<T>;

    fn state(&self, len: usize) -> Result<ArrayD<T>> {
        self.zeros(len)
    }

    fn copy(&self, src: &ArrayD<T>, dst: &mut ArrayD<T>) -> Result<()> {
        let s = slice(src)?;
        self.chunks_zip("copy destination", slice_mut(dst)?, s, |_, d, s| {
            d.copy_from_slice(s);
            Ok(())
        })
    }
}

impl<T: Real> Cpu<T> {
    /// A buffer of `len` elements, their values unspecified: a spare one
    /// handed back with [`BufferOps::recycle`] when one of that length is
    /// kept, else new zeros.
    fn take_or_zeros(&self, len: usize) -> (ArrayD<T>, bool) {
        match self.spare.take(len) {
            Some(a) => (a, true),
            None => {
                if len > 0 {
                    self.fresh.fetch_add(1, Ordering::Relaxed);
                }
                (ArrayD::zeros(IxDyn(&[len])), false)
            }
        }
    }

    /// Runs `f` on the kept per-channel memory, or on new memory while
    /// another call holds it (a backend shared between threads).
    fn with_work<R>(&self, f: impl FnOnce(&mut ChannelWork) -> R) -> R {
        match self.work.try_lock() {
            Ok(mut w) => f(&mut w),
            Err(_) => f(&mut ChannelWork::default()),
        }
    }

    /// A buffer of `len` elements for a kernel's own use, its values
    /// unspecified; [`Spare::put`] hands it back.
    fn scratch(&self, len: usize) -> ArrayD<T> {
        self.take_or_zeros(len).0
    }

    /// How many buffers of at least one element this backend has allocated
    /// anew (for [`BufferOps::zeros`], [`BufferOps::upload`] and its
    /// kernels' own memory) rather than taken from the spare ones: a loop
    /// that hands back what it drops (see [`BufferOps::recycle`]) stops
    /// adding to it after its first pass.
    #[must_use]
    pub fn fresh_buffers(&self) -> u64 {
        self.fresh.load(Ordering::Relaxed)
    }

    /// How many buffers handed back with [`BufferOps::recycle`] the backend
    /// keeps for [`BufferOps::zeros`] and [`BufferOps::upload`] to give out
    /// again (at most a few hundred; the oldest go first).
    #[must_use]
    pub fn spare_buffers(&self) -> usize {
        self.spare.len()
    }
}

impl<T: Real> BufferOps for Cpu<T> {
    /// Runs `f` on one of this backend's threads (see [`BufferOps::run`]):
    /// the calling thread waits for it once, instead of once per operation.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Zeros, in a spare buffer of `len` elements when one is kept (see
    /// [`BufferOps::recycle`]).
    fn zeros(&self, len: usize) -> Result<ArrayD<T>> {
        let (mut a, reused) = self.take_or_zeros(len);
        if reused {
            smoothout::tensor::MapOps::fill(self, T::zero(), &mut a)?;
        }
        Ok(a)
    }

    /// A spare buffer of `len` elements as it is, when one is kept; new
    /// zeros otherwise.
    fn for_overwrite(&self, len: usize) -> Result<ArrayD<T>> {
        Ok(self.take_or_zeros(len).0)
    }

    /// A copy of `data`, in a spare buffer of its length when one is kept.
    fn upload(&self, data: &[T]) -> Result<ArrayD<T>> {
        let (mut a, _) = self.take_or_zeros(data.len());
        slice_mut(&mut a)?.copy_from_slice(data);
        Ok(a)
    }

    fn copy_range(
        &self,
        src: &ArrayD<T>,
        src_start: usize,
        dst: &mut ArrayD<T>,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        reference::copy_range(slice(src)?, src_start, slice_mut(dst)?, dst_start, len)
    }

    fn to_vec(&self, buf: &ArrayD<T>) -> Result<Vec<T>> {
        Ok(slice(buf)?.to_vec())
    }

    fn download(&self, buf: &ArrayD<T>, out: &mut [T]) -> Result<()> {
        let s = slice(buf)?;
        check_len("download destination", s.len(), out.len())?;
        out.copy_from_slice(s);
        Ok(())
    }

    /// Keeps `buf` for a later [`BufferOps::zeros`], [`BufferOps::upload`]
    /// or [`BufferOps::for_overwrite`] of its length when it is
    /// one-dimensional and contiguous (as every buffer this backend makes
    /// is); the oldest of more than a few hundred kept is freed. Debug
    /// builds fill it with NaN first, so that an op that reads part of a
    /// [`BufferOps::for_overwrite`] buffer before writing it shows up in the
    /// tests.
    fn recycle(&self, mut buf: ArrayD<T>) {
        if cfg!(debug_assertions) {
            buf.fill(T::nan());
        }
        self.spare.put(buf);
    }
}

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
