//! [`Host`]: the core's reference kernels over borrowed slices, compiled
//! for the widest vector instruction set the CPU has.
//!
//! `smoothout::Slices` runs the reference at the build's baseline (SSE2 on
//! x86-64); perturbing F1's 1.46 M weights and taking the noise out again
//! then costs about 5% of a candle training step on two cores. The same
//! functions compiled with AVX2 or AVX-512 enabled (as smoothout-cpu does)
//! take less than half that. Rust never contracts `a * b + c` into a fused
//! multiply-add by itself, so the wider build changes speed, not bits: the
//! CPU tests compare the result with the reference bit for bit on whatever
//! set this machine picks.

use std::marker::PhantomData;

use smoothout::reference;
use smoothout::{BackendTypes, NoiseKey, NoiseOf, PerturbOps, Real, Result, StateOps, Unit};

/// A vector instruction set the kernels can be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// What the build targets.
    Baseline,
    /// AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 (F, BW, VL, DQ), AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest set this CPU supports.
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq") {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

/// For each reference kernel, a function taking an [`Isa`] first that calls
/// the kernel compiled for that set (the reference kernels inline whole).
macro_rules! multiversion {
    ($( fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)? = $path:path; )*) => {$(
        fn $name<T: Real>(isa: Isa, $($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
            unsafe fn wide<T: Real>($($a: $t),*) $(-> $r)? {
                $path($($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn narrow<T: Real>($($a: $t),*) $(-> $r)? {
                $path($($a),*)
            }
            match isa {
                // SAFETY: `Host` holds an `Isa` other than `Baseline` only
                // after `Isa::detect` found it on this CPU.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { wide($($a),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { narrow($($a),*) },
                Isa::Baseline => $path($($a),*),
            }
        }
    )*};
}

multiversion! {
    fn perturb_k(n: &NoiseOf<'_, Host<T>>, w: &mut [T]) = perturb_all;
    fn denoise_k(n: &NoiseOf<'_, Host<T>>, w: &mut [T]) = denoise_all;
    fn drop_out_k(key: NoiseKey, p: f64, w: &mut [T]) -> Result<()> = drop_out_all;
    fn filter_norm_k(
        key: NoiseKey, unit: Unit, strength: f64, cols: usize, w: &mut [T], scales: &mut [T]
    ) -> Result<()> = filter_norm_all;
}

#[inline(always)]
fn perturb_all<T: Real>(n: &NoiseOf<'_, Host<T>>, w: &mut [T]) {
    reference::perturb(n, 0, w);
}

#[inline(always)]
fn denoise_all<T: Real>(n: &NoiseOf<'_, Host<T>>, w: &mut [T]) {
    reference::denoise(n, 0, w);
}

#[inline(always)]
fn drop_out_all<T: Real>(key: NoiseKey, p: f64, w: &mut [T]) -> Result<()> {
    reference::drop_out(key, p, 0, w)
}

#[inline(always)]
fn filter_norm_all<T: Real>(
    key: NoiseKey,
    unit: Unit,
    strength: f64,
    cols: usize,
    w: &mut [T],
    scales: &mut [T],
) -> Result<()> {
    reference::perturb_filter_norm(key, unit, strength, cols, 0, w, scales)
}

/// A host backend over borrowed slices (`Buffer = [T]`), like
/// `smoothout::Slices`, with the kernels picked for this CPU once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Host<T> {
    isa: Isa,
    _elem: PhantomData<T>,
}

impl<T> Host<T> {
    /// The backend for this CPU's widest instruction set.
    pub(crate) fn new() -> Self {
        Host {
            isa: Isa::detect(),
            _elem: PhantomData,
        }
    }
}

/// Row scales must cover `w`'s rows: the reference functions index them.
fn check_scales<T: Real>(n: &NoiseOf<'_, Host<T>>, len: usize) -> Result<()> {
    match n.scale {
        reference::Scale::Rows { cols, scales } => reference::check_rows(len, cols, scales.len()),
        _ => Ok(()),
    }
}

impl<T: Real> BackendTypes for Host<T> {
    type Elem = T;
    type Buffer = [T];
    fn len(&self, buf: &[T]) -> usize {
        buf.len()
    }
}

impl<T: Real> PerturbOps for Host<T> {
    fn perturb(&self, w: &mut [T], noise: &NoiseOf<'_, Self>) -> Result<()> {
        check_scales(noise, w.len())?;
        perturb_k(self.isa, noise, w);
        Ok(())
    }
    fn denoise(&self, w: &mut [T], noise: &NoiseOf<'_, Self>) -> Result<()> {
        check_scales(noise, w.len())?;
        denoise_k(self.isa, noise, w);
        Ok(())
    }
    fn drop_out(&self, w: &mut [T], key: NoiseKey, p: f64) -> Result<()> {
        drop_out_k(self.isa, key, p, w)
    }
    fn perturb_filter_norm(
        &self,
        w: &mut [T],
        key: NoiseKey,
        unit: Unit,
        strength: f64,
        cols: usize,
        scales: &mut [T],
    ) -> Result<()> {
        filter_norm_k(self.isa, key, unit, strength, cols, w, scales)
    }
}

impl<T: Real> StateOps for Host<T> {
    type State = Vec<T>;
    fn state(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }
    fn copy(&self, src: &[T], dst: &mut [T]) -> Result<()> {
        if src.len() != dst.len() {
            return Err(smoothout::Error::LengthMismatch {
                what: "copy destination",
                expected: src.len(),
                actual: dst.len(),
            });
        }
        dst.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_set_here_gives_the_reference_bits() -> Result<()> {
        let mut sets = vec![Isa::Baseline];
        #[cfg(target_arch = "x86_64")]
        match Isa::detect() {
            Isa::Avx512 => sets.extend([Isa::Avx2, Isa::Avx512]),
            Isa::Avx2 => sets.push(Isa::Avx2),
            Isa::Baseline => {}
        }
        let key = NoiseKey::for_draw(3, 1, 0, 9);
        let w0: Vec<f32> = (0..3000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
            .collect();
        let (cols, rows) = (300, 10);
        let mut want = w0.clone();
        let mut want_s = vec![0f32; rows];
        reference::perturb_filter_norm(key, Unit::Uniform, 0.1, cols, 0, &mut want, &mut want_s)?;
        for isa in sets {
            let mut w = w0.clone();
            let mut s = vec![0f32; rows];
            filter_norm_k(isa, key, Unit::Uniform, 0.1, cols, &mut w, &mut s)?;
            assert_eq!(w, want, "{isa:?}");
            assert_eq!(s, want_s, "{isa:?}");
            let n = reference::ParamNoise {
                key,
                unit: Unit::Gaussian,
                scale: reference::Scale::<f32, [f32]>::Fixed(0.05),
            };
            let mut a = w0.clone();
            let mut b = w0.clone();
            perturb_k(isa, &n, &mut a);
            reference::perturb(&n, 0, &mut b);
            assert_eq!(a, b, "{isa:?}");
            denoise_k(isa, &n, &mut a);
            reference::denoise(&n, 0, &mut b);
            assert_eq!(a, b, "{isa:?}");
        }
        Ok(())
    }
}
