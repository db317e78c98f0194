//! Transpositions in AVX-512: 16 × 16 blocks of `f32` through a network of
//! shuffles ([`network`]), for the convolution's weight gradient
//! ([`transpose`]) and BatchNorm's per-channel sums
//! ([`crate::channel_sums`]). They only move elements, so any order of work
//! gives the same bits.

use core::arch::x86_64::{
    __m512, _mm512_loadu_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps,
    _mm512_storeu_ps, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
};

/// `f32` lanes per vector, and the blocks' side.
pub(crate) const LANES: usize = 16;

/// `dst[j · rows + o] = src[o · stride + j]` for `o < rows`, `j < cols`:
/// `rows` runs of `cols` elements, `stride` apart, as `cols` rows of
/// `rows`.
///
/// # Safety
/// AVX-512F must be available. (The slices' lengths are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose(
    src: &[f32],
    (rows, cols, stride): (usize, usize, usize),
    dst: &mut [f32],
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(cols <= stride && src.len() >= (rows - 1) * stride + cols);
    assert!(dst.len() >= rows * cols);
    let (rb, cb) = (rows / LANES * LANES, cols / LANES * LANES);
    for o in (0..rb).step_by(LANES) {
        for j in (0..cb).step_by(LANES) {
            // SAFETY: rows o..o + 16 and columns j..j + 16 lie inside both
            // (the blocks are whole).
            unsafe {
                block16(
                    src.as_ptr().add(o * stride + j),
                    stride,
                    dst.as_mut_ptr().add(j * rows + o),
                    rows,
                )
            };
        }
    }
    // The edges, element by element.
    for o in 0..rows {
        let from = if o < rb { cb } else { 0 };
        for j in from..cols {
            dst[j * rows + o] = src[o * stride + j];
        }
    }
}

/// A 16 × 16 block: rows of `src` (`src_stride` apart) to columns of
/// `dst` (rows `dst_stride` apart).
#[target_feature(enable = "avx512f")]
unsafe fn block16(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    // SAFETY (all loads and stores): the caller's block lies inside.
    let mut r = [_mm512_setzero_ps(); LANES];
    for (i, r) in r.iter_mut().enumerate() {
        *r = unsafe { _mm512_loadu_ps(src.add(i * src_stride)) };
    }
    let r = network(r);
    // r[q] now holds column q of the block.
    for (q, v) in r.iter().enumerate() {
        unsafe { _mm512_storeu_ps(dst.add(q * dst_stride), *v) };
    }
}

/// The 16 × 16 block whose rows are `r`, transposed: row `q` of the result
/// is column `q` of `r`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn network(mut r: [__m512; LANES]) -> [__m512; LANES] {
    // Pairs of rows interleaved, then quads, then 128-bit lanes across.
    let mut t = [_mm512_setzero_ps(); LANES];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for i in 0..4 {
        let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        r[4 * i] = _mm512_shuffle_ps::<0x44>(a, c);
        r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
        r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(b, d);
        r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
    }
    for i in 0..4 {
        t[i] = _mm512_shuffle_f32x4::<0x88>(r[i], r[i + 4]);
        t[i + 4] = _mm512_shuffle_f32x4::<0xDD>(r[i], r[i + 4]);
        t[i + 8] = _mm512_shuffle_f32x4::<0x88>(r[i + 8], r[i + 12]);
        t[i + 12] = _mm512_shuffle_f32x4::<0xDD>(r[i + 8], r[i + 12]);
    }
    for i in 0..8 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        r[i + 8] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[i + 8]);
    }
    r
}
