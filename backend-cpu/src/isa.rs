//! Runtime choice of the widest vector instruction set the CPU has.
//!
//! The kernels are the core's reference functions, compiled a second and
//! third time inside functions that enable AVX2 or AVX-512, and picked at run
//! time. Rust never contracts `a * b + c` into a fused multiply-add by
//! itself, so enabling `fma` changes speed, not bits; the backend tests
//! compare every path with the reference bit for bit.

/// A vector instruction set the kernels can be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// What the build targets (SSE2 on x86-64).
    Baseline,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 (F, BW, VL, DQ), AVX2 and FMA.
    Avx512,
}

impl Isa {
    /// The widest set this CPU supports.
    #[must_use]
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// Whether this CPU can run code compiled for `self`.
    #[must_use]
    pub fn supported(self) -> bool {
        match self {
            Isa::Baseline => true,
            Isa::Avx2 => matches!(Isa::detect(), Isa::Avx2 | Isa::Avx512),
            Isa::Avx512 => Isa::detect() == Isa::Avx512,
        }
    }
}

/// Defines, for each reference kernel, a function taking an [`Isa`] first
/// that calls the kernel compiled for that instruction set. The reference
/// kernels are `#[inline(always)]`, so each copy is compiled whole with the
/// wider vectors. A kernel written `= path, tiles` draws noise: it takes
/// the Philox tiles first, [`Avx512Blocks`] in the AVX-512 copy and the
/// core's [`Portable`] ones elsewhere.
macro_rules! multiversion {
    ($( $(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)?
        = $path:path $(, $tiles:ident)?; )*) => {$(
        $(#[$m])*
        pub(crate) fn $name<T: Real>(isa: Isa, $($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
            unsafe fn wide<T: Real>($($a: $t),*) $(-> $r)? {
                $path($(multiversion!(@avx512 $tiles),)? $($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn narrow<T: Real>($($a: $t),*) $(-> $r)? {
                $path($(multiversion!(@portable $tiles),)? $($a),*)
            }
            match isa {
                // SAFETY: an `Isa` other than `Baseline` is only held by a
                // `Cpu` or `Host` after `Isa::detect`/`Isa::supported` confirmed it.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { wide($($a),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { narrow($($a),*) },
                _ => $path($(multiversion!(@portable $tiles),)? $($a),*),
            }
        }
    )*};
    (@avx512 tiles) => { crate::avx512::Avx512Blocks::new() };
    (@portable tiles) => { smoothout::philox::Portable };
}

/// The reference kernels, one function each, dispatched on an [`Isa`].
pub(crate) mod kernels {
    use super::Isa;
    use crate::dense;
    use smoothout::reference::{self, ParamNoise};
    use smoothout::tensor::reference as tr;
    use smoothout::tensor::{BatchNorm, Conv2d, Pool2d};
    use smoothout::{Noise, NoiseKey, Real, Result, Sgd, Unit};

    multiversion! {
        fn fill_noise(key: NoiseKey, noise: &Noise, start: u64, out: &mut [T]) -> Result<()>
            = reference::fill_noise_with, tiles;
        fn perturb(n: &ParamNoise<'_, T, [T]>, start: u64, w: &mut [T]) = reference::perturb_with, tiles;
        fn denoise(n: &ParamNoise<'_, T, [T]>, start: u64, w: &mut [T]) = reference::denoise_with, tiles;
        fn write_noise(n: &ParamNoise<'_, T, [T]>, start: u64, w: &[T], out: &mut [T]) -> Result<()>
            = reference::write_noise_with, tiles;
        fn drop_out(key: NoiseKey, p: f64, start: u64, w: &mut [T]) -> Result<()>
            = reference::drop_out_with, tiles;
        fn row_norms(w: &[T], cols: usize, out: &mut [f64]) -> Result<()> = reference::row_norms;
        #[allow(clippy::too_many_arguments)]
        fn filter_scales(
            key: NoiseKey, unit: Unit, strength: f64, cols: usize, first_row: usize,
            w: &[T], out: &mut [T]
        ) -> Result<()> = reference::filter_scales_with, tiles;
        #[allow(clippy::too_many_arguments)]
        fn perturb_filter_norm(
            key: NoiseKey, unit: Unit, strength: f64, cols: usize, first_row: usize,
            w: &mut [T], scales: &mut [T]
        ) -> Result<()> = reference::perturb_filter_norm_with, tiles;
        fn axpy(alpha: T, x: &[T], y: &mut [T]) -> Result<()> = reference::axpy;
        fn denoise_sgd(
            n: Option<&ParamNoise<'_, T, [T]>>, start: u64, w: &mut [T], g: &[T],
            v: &mut [T], sgd: &Sgd
        ) -> Result<()> = reference::denoise_sgd_with, tiles;
    }

    // The tensor operations' per-task kernels.
    multiversion! {
        fn relu(x: &[T], y: &mut [T]) = tr::relu;
        fn relu_backward(x: &[T], dy: &[T], dx: &mut [T]) = tr::relu_backward;
        fn scale(alpha: T, x: &mut [T]) = tr::scale;
        fn add(x: &[T], y: &mut [T]) = tr::add;
        fn mul(x: &[T], y: &mut [T]) = tr::mul;
        fn add_bias_block(bias: &[T], inner: usize, x: &mut [T]) = tr::add_bias_block;
        fn im2col_image(conv: &Conv2d, x: &[T], col: &mut [T]) = tr::im2col_image;
        fn col2im_image(conv: &Conv2d, col: &[T], x: &mut [T]) = tr::col2im_image;
        fn pool_forward_plane(p: &Pool2d, x: &[T], y: &mut [T]) = tr::pool_forward_plane;
        fn pool_backward_plane(p: &Pool2d, x: &[T], dy: &[T], dx: &mut [T])
            = tr::pool_backward_plane;
        fn batch_norm_forward_sample(bn: &BatchNorm, x: &[T], coefs: &[[f64; 4]], y: &mut [T])
            = tr::batch_norm_forward_sample;
        fn batch_norm_backward_sample(
            bn: &BatchNorm, x: &[T], dy: &[T], coefs: &[[f64; 5]], dx: &mut [T]
        ) = tr::batch_norm_backward_sample;
        fn column_sums(x: &[T], channels: usize, c0: usize, acc: &mut [f64])
            = dense::column_sums;
        fn column_square_deviations(
            x: &[T], channels: usize, c0: usize, mean: &[f64], acc: &mut [f64]
        ) = dense::column_square_deviations;
        #[allow(clippy::too_many_arguments)]
        fn column_norm_grads(
            x: &[T], dy: &[T], channels: usize, c0: usize, centres: &[(f64, f64)],
            dgamma: &mut [f64], dbeta: &mut [f64]
        ) = dense::column_norm_grads;
    }
}
