//! BatchNorm's per-channel sums over `[batch, channels, inner]` tensors of
//! `f32` in AVX-512, for `inner > 1` (convolutions' outputs).
//!
//! Each channel's sum runs over its elements in index order, sample by
//! sample and position by position, in `f64`: the order of the reference's
//! per-channel loops, so the bits are theirs. A channel's additions depend
//! on each other, so the speed comes from running sixteen channels side by
//! side, one per lane: each sample's rows of sixteen channels are read
//! sixteen positions at a time and transposed ([`network`]), so that one
//! vector holds one position of every channel, widened to two vectors of
//! `f64`. The terms are the reference's, operation for operation (the
//! intrinsics are never fused into multiply-adds).

use crate::tensor::Terms;
use crate::transpose::{network, LANES};
use core::arch::x86_64::{
    __m512, __m512d, __mmask8, _mm256_castpd_ps, _mm512_add_pd, _mm512_castps512_ps256,
    _mm512_castps_pd, _mm512_cvtps_pd, _mm512_extractf64x4_pd, _mm512_loadu_pd, _mm512_loadu_ps,
    _mm512_mask_storeu_pd, _mm512_maskz_loadu_pd, _mm512_mul_pd, _mm512_setzero_pd,
    _mm512_setzero_ps, _mm512_sub_pd,
};

/// `f64` lanes per vector.
const HALF: usize = 8;

/// Adds `terms`' sums over `src` (one tensor, two for
/// [`Terms::NormGrads`]: `x` then `dy`), laid out `[batch, channels,
/// inner]`, for channels `c0 ..` into `rows`: `K` rows (one, two for
/// `NormGrads`) of one sum per channel, one after the other.
///
/// # Safety
/// AVX-512F must be available. (The slices' lengths are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn add(
    terms: Terms<'_>,
    src: &[&[f32]],
    shape: (usize, usize, usize),
    c0: usize,
    rows: &mut [f64],
) {
    match terms {
        Terms::Totals => sweep::<0, 1, 1>([src[0]], shape, c0, rows, |_| (0.0, 0.0)),
        Terms::SquareDeviations(mu) => {
            sweep::<1, 1, 1>([src[0]], shape, c0, rows, |c| (mu[c], 0.0));
        }
        Terms::NormGrads(centres) => {
            sweep::<2, 2, 2>([src[0], src[1]], shape, c0, rows, |c| centres[c]);
        }
    }
}

/// [`add`] for the terms `OP` (0: `x`; 1: `(x − μ)²`; 2: `dy · ((x − μ) ·
/// inv_std)` and `dy`), `param(c)` being channel `c`'s `(μ, inv_std)`.
#[target_feature(enable = "avx512f")]
#[inline]
fn sweep<const OP: u8, const S: usize, const K: usize>(
    src: [&[f32]; S],
    (batch, channels, inner): (usize, usize, usize),
    c0: usize,
    rows: &mut [f64],
    param: impl Fn(usize) -> (f64, f64),
) {
    let w = rows.len() / K;
    assert!(c0 + w <= channels && src.iter().all(|s| s.len() >= batch * channels * inner));
    let whole = inner / LANES * LANES;
    for j0 in (0..w).step_by(LANES) {
        let height = (w - j0).min(LANES);
        let halves = height.div_ceil(HALF);
        let masks = [lanes(height.min(HALF)), lanes(height.saturating_sub(HALF))];
        // The channels' (μ, inv_std), a vector per half.
        let (mut mu, mut inv) = ([0.0; LANES], [0.0; LANES]);
        for i in 0..height {
            (mu[i], inv[i]) = param(c0 + j0 + i);
        }
        // SAFETY: both arrays hold 16 elements.
        let par: [[__m512d; 2]; 2] = core::array::from_fn(|h| unsafe {
            [
                _mm512_loadu_pd(mu.as_ptr().add(h * HALF)),
                _mm512_loadu_pd(inv.as_ptr().add(h * HALF)),
            ]
        });
        let mut acc = [[_mm512_setzero_pd(); K]; 2];
        for (h, acc) in acc.iter_mut().enumerate().take(halves) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let at = k * w + j0 + h * HALF;
                // SAFETY: the unmasked lanes are channels j0 + 8h .. of
                // row k, inside `rows`; masked lanes are not read.
                *acc = unsafe { _mm512_maskz_loadu_pd(masks[h], rows.as_ptr().wrapping_add(at)) };
            }
        }
        let mut v = [[_mm512_setzero_ps(); LANES]; S];
        for n in 0..batch {
            let base = (n * channels + c0 + j0) * inner;
            for p0 in (0..whole).step_by(LANES) {
                for (v, src) in v.iter_mut().zip(src) {
                    // Lanes past `height` repeat the last channel (their
                    // sums are never stored), so that all sixteen loads
                    // stay in registers.
                    let r: [__m512; LANES] = core::array::from_fn(|i| {
                        let at = base + i.min(height - 1) * inner + p0;
                        // SAFETY: channel c0 + j0 + i of sample n holds
                        // inner ≥ p0 + 16 elements from `base + i · inner`
                        // (checked above).
                        unsafe { _mm512_loadu_ps(src.as_ptr().add(at)) }
                    });
                    *v = network(r);
                }
                for q in 0..LANES {
                    let mut at = [_mm512_setzero_ps(); S];
                    for (at, v) in at.iter_mut().zip(&v) {
                        *at = v[q];
                    }
                    step::<OP, S, K>(at, halves, &par, &mut acc);
                }
            }
            for p in whole..inner {
                let mut at = [_mm512_setzero_ps(); S];
                for (at, src) in at.iter_mut().zip(src) {
                    let mut t = [0.0f32; LANES];
                    for (i, t) in t[..height].iter_mut().enumerate() {
                        *t = src[base + i * inner + p];
                    }
                    // SAFETY: `t` holds 16 elements.
                    *at = unsafe { _mm512_loadu_ps(t.as_ptr()) };
                }
                step::<OP, S, K>(at, halves, &par, &mut acc);
            }
        }
        for (h, acc) in acc.iter().enumerate().take(halves) {
            for (k, &acc) in acc.iter().enumerate() {
                let at = k * w + j0 + h * HALF;
                // SAFETY: as for the loads.
                unsafe { _mm512_mask_storeu_pd(rows.as_mut_ptr().wrapping_add(at), masks[h], acc) };
            }
        }
    }
}

/// One position of sixteen channels (`v`: `x`, then `dy` for `OP` 2)
/// added into the accumulators, `halves` vectors of eight channels.
#[target_feature(enable = "avx512f")]
#[inline]
fn step<const OP: u8, const S: usize, const K: usize>(
    v: [__m512; S],
    halves: usize,
    par: &[[__m512d; 2]; 2],
    acc: &mut [[__m512d; K]; 2],
) {
    for (h, ([mu, inv], acc)) in par.iter().zip(acc.iter_mut()).enumerate().take(halves) {
        let x = widen(v[0], h);
        match OP {
            0 => acc[0] = _mm512_add_pd(acc[0], x),
            1 => {
                let d = _mm512_sub_pd(x, *mu);
                acc[0] = _mm512_add_pd(acc[0], _mm512_mul_pd(d, d));
            }
            _ => {
                let d = widen(v[S - 1], h);
                let xhat = _mm512_mul_pd(_mm512_sub_pd(x, *mu), *inv);
                acc[0] = _mm512_add_pd(acc[0], _mm512_mul_pd(d, xhat));
                acc[K - 1] = _mm512_add_pd(acc[K - 1], d);
            }
        }
    }
}

/// Lanes `8h .. 8h + 8` of `v`, widened to `f64`.
#[target_feature(enable = "avx512f")]
#[inline]
fn widen(v: __m512, h: usize) -> __m512d {
    if h == 0 {
        _mm512_cvtps_pd(_mm512_castps512_ps256(v))
    } else {
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(v),
        )))
    }
}

/// A mask of the first `n ≤ 8` lanes.
fn lanes(n: usize) -> __mmask8 {
    ((1u16 << n) - 1) as __mmask8
}
