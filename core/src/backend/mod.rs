//! The backend traits: one trait of types, small traits of operations.
//!
//! A function asks only for the operations it uses; [`Backend`] is every one
//! of them, implemented automatically for any type that has them all.
//!
//! Every implementation must give the same bits as [`crate::reference`] for
//! noise, perturbation and de-noising, whatever its parallelism.

use core::borrow::BorrowMut;

use crate::error::Result;
use crate::noise::philox::NoiseKey;
use crate::noise::unit::Unit;
use crate::noise::Noise;
use crate::real::Real;
use crate::reference::ParamNoise;
use crate::step::Sgd;

#[cfg(feature = "alloc")]
mod host;
mod slices;

#[cfg(feature = "alloc")]
pub use host::Reference;
pub use slices::Slices;

/// The types a backend works with: only associated types, and lengths.
pub trait BackendTypes {
    /// Element type of parameter buffers.
    type Elem: Real;
    /// A contiguous buffer of `Elem` the operations work on: owned by the
    /// backend (host or device memory) for most backends, a borrowed slice
    /// `[Elem]` for [`crate::Slices`], which perturbs memory owned by anyone.
    type Buffer: ?Sized;
    /// Number of elements in `buf`.
    fn len(&self, buf: &Self::Buffer) -> usize;
}

/// θ for one parameter, in terms of a backend's buffers.
pub type NoiseOf<'a, B> = ParamNoise<'a, <B as BackendTypes>::Elem, <B as BackendTypes>::Buffer>;

/// Generating noise into a buffer.
pub trait NoiseOps: BackendTypes {
    /// `out ← θ` for `key`'s stream under fixed scaling (see
    /// [`crate::reference::fill_noise`]).
    fn fill_noise(&self, key: NoiseKey, noise: &Noise, out: &mut Self::Buffer) -> Result<()>;
    /// `out ← θ` for one parameter `w` under any scaling, the very θ that
    /// [`PerturbOps::perturb`] adds (`w + out` is bit-identical to the
    /// perturbed `w`; see [`crate::reference::write_noise`]). `w` is only
    /// read (per-element scaling needs `|w|`); `out` has `w`'s length.
    fn write_noise(
        &self,
        noise: &NoiseOf<'_, Self>,
        w: &Self::Buffer,
        out: &mut Self::Buffer,
    ) -> Result<()>;
}

/// An AdaSmoothOut draw, as [`PerturbOps::perturb_filter_norm`] and
/// [`NormOps::filter_scales`] take it: `w` in rows of `cols` elements, and
/// row `i`'s unit draws `u_i` (of `key`'s stream) scaled to
///
/// ```text
/// θ̂_i = u_i · strength · ‖w_i‖ / (‖u_i‖ + 1e-6)
/// ```
///
/// (see [`crate::reference::perturb_filter_norm`]).
///
/// ```
/// use smoothout::{FilterNoise, NoiseKey, PerturbOps, Reference, Unit};
/// let noise = FilterNoise {
///     key: NoiseKey::from_seed(1),
///     unit: Unit::Uniform,
///     strength: 0.1,
///     cols: 3,
/// };
/// let mut w = vec![1.0f32; 6];
/// let mut scales = vec![0.0; 2]; // one per row
/// Reference::new().perturb_filter_norm(&mut w, &noise, &mut scales)?;
/// assert!(scales.iter().all(|&s| s > 0.0));
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilterNoise {
    /// The draw's key.
    pub key: NoiseKey,
    /// The distribution of the unit draws.
    pub unit: Unit,
    /// The strength after the schedule (`a` for uniform, `std` for
    /// Gaussian noise).
    pub strength: f64,
    /// Elements per row (filter).
    pub cols: usize,
}

/// Adding and removing θ in one pass each.
pub trait PerturbOps: BackendTypes {
    /// `w ← w + θ`.
    fn perturb(&self, w: &mut Self::Buffer, noise: &NoiseOf<'_, Self>) -> Result<()>;
    /// `w ← w − θ`, regenerating θ.
    fn denoise(&self, w: &mut Self::Buffer, noise: &NoiseOf<'_, Self>) -> Result<()>;
    /// `w_i ← 0` with probability `p` (Bernoulli noise).
    fn drop_out(&self, w: &mut Self::Buffer, key: NoiseKey, p: f64) -> Result<()>;
    /// AdaSmoothOut in one pass: the per-row scales into `scales` (one per
    /// row of `cols` elements) and `w ← w + θ̂` (see
    /// [`crate::reference::perturb_filter_norm`]).
    fn perturb_filter_norm(
        &self,
        w: &mut Self::Buffer,
        noise: &FilterNoise,
        scales: &mut Self::Buffer,
    ) -> Result<()>;
}

/// Row norms and AdaSmoothOut scales.
pub trait NormOps: BackendTypes {
    /// The L2 norm of each row (`cols` elements) of `w`, in `f64`, on the host.
    fn row_norms(&self, w: &Self::Buffer, cols: usize, out: &mut [f64]) -> Result<()>;
    /// `out_i ← strength · ‖w_i‖ / (‖u_i‖ + 1e-6)` for every row, with `u`
    /// the unit draws of `noise.key`; `out` has one element per row.
    fn filter_scales(
        &self,
        w: &Self::Buffer,
        noise: &FilterNoise,
        out: &mut Self::Buffer,
    ) -> Result<()>;
}

/// Level-1 linear algebra.
pub trait BlasOps: BackendTypes {
    /// `y ← y + alpha · x`.
    fn axpy(&self, alpha: Self::Elem, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
}

/// Optimiser updates, optionally fused with de-noising.
pub trait UpdateOps: BackendTypes {
    /// De-noise (when `noise` is given) and SGD-momentum update, in one pass.
    fn denoise_sgd(
        &self,
        w: &mut Self::Buffer,
        grad: &Self::Buffer,
        velocity: &mut Self::Buffer,
        noise: Option<&NoiseOf<'_, Self>>,
        sgd: &Sgd,
    ) -> Result<()>;
}

/// The little memory the step keeps between perturbing and de-noising:
/// one scale per row for AdaSmoothOut, a copy of the parameter in exact
/// mode. A backend over borrowed memory ([`crate::Slices`]) keeps it in
/// memory of its own.
pub trait StateOps: BackendTypes {
    /// An owned buffer, used as a [`BackendTypes::Buffer`] by the ops.
    type State: BorrowMut<Self::Buffer>;
    /// A state buffer of `len` zeros.
    fn state(&self, len: usize) -> Result<Self::State>;
    /// `dst ← src` (equal lengths).
    ///
    /// # Errors
    /// [`crate::Error::LengthMismatch`] when the lengths differ.
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<()>;
}

/// Allocating, uploading and copying owned buffers (backends whose
/// [`BackendTypes::Buffer`] is an owned, sized type).
pub trait BufferOps: StateOps + BackendTypes<Buffer: Sized> {
    /// A buffer of `len` zeros.
    fn zeros(&self, len: usize) -> Result<Self::Buffer>;
    /// Runs `f`, a stretch of this backend's operations (a training step,
    /// say), from where they start fastest, and returns what it returns.
    /// The CPU backend runs it on a thread of its own pool, so that each
    /// operation hands its tasks to the other threads from inside the pool
    /// rather than waking the pool from outside and sleeping until it is
    /// done; the default runs `f` where it is called. Results are the same
    /// either way.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R
    where
        Self: Sized,
    {
        f()
    }
    /// A buffer of `len` elements that the caller overwrites entirely
    /// before reading any (an output every element of which an op writes):
    /// its contents are unspecified, so that a backend that keeps recycled
    /// buffers (see [`BufferOps::recycle`]) can hand one out without
    /// clearing it. The provided method returns [`BufferOps::zeros`].
    fn for_overwrite(&self, len: usize) -> Result<Self::Buffer> {
        self.zeros(len)
    }
    /// A new buffer holding `data`, copied from the host (weights from a
    /// host-side initialiser, a batch of images).
    fn upload(&self, data: &[Self::Elem]) -> Result<Self::Buffer>;
    /// `dst[dst_start .. dst_start + len] ← src[src_start .. src_start + len]`
    /// (one image of a batch, one ghost batch of a tensor).
    ///
    /// # Errors
    /// [`crate::Error::LengthMismatch`] when a range runs past its buffer.
    fn copy_range(
        &self,
        src: &Self::Buffer,
        src_start: usize,
        dst: &mut Self::Buffer,
        dst_start: usize,
        len: usize,
    ) -> Result<()>;
    /// The buffer's contents, copied to the host.
    #[cfg(feature = "alloc")]
    fn to_vec(&self, buf: &Self::Buffer) -> Result<alloc::vec::Vec<Self::Elem>>;
    /// The buffer's contents, copied into `out` on the host (a training
    /// loop's own memory, kept from step to step). The provided method goes
    /// through [`BufferOps::to_vec`].
    ///
    /// # Errors
    /// [`crate::Error::LengthMismatch`] when `out` is not the buffer's
    /// length.
    #[cfg(feature = "alloc")]
    fn download(&self, buf: &Self::Buffer, out: &mut [Self::Elem]) -> Result<()> {
        let v = self.to_vec(buf)?;
        crate::error::check_len("download destination", v.len(), out.len())?;
        out.copy_from_slice(&v);
        Ok(())
    }
    /// Hands back a buffer its owner no longer needs. A backend that keeps
    /// such buffers gives them out again from [`BufferOps::zeros`] and
    /// [`BufferOps::upload`] of the same length, so that a loop which hands
    /// back what it drops stops allocating after its first pass; the
    /// provided method just drops it.
    fn recycle(&self, buf: Self::Buffer) {
        drop(buf);
    }
}

/// Every operation the SmoothOut step needs.
pub trait Backend:
    BackendTypes + NoiseOps + PerturbOps + NormOps + BlasOps + UpdateOps + BufferOps
{
}

impl<B> Backend for B where
    B: BackendTypes + NoiseOps + PerturbOps + NormOps + BlasOps + UpdateOps + BufferOps
{
}
