//! One image's share of a convolution's weight gradient in AVX-512, for
//! `f32`: `dwt[r][o] += Σ_j col[r][j] · dy[o][j]` (`dwt` the transposed
//! gradient, `rows × filters`), with the same bits as `matrixmultiply`'s
//! product that it replaces.
//!
//! `matrixmultiply` packs both operands of every product into panels
//! before its kernel reads them. For the weight gradient both operands run
//! along the pixels `j`, the sum's index, so each panel is a transposition
//! made element by element: in ResNet-44's step that packing took about as
//! long as the multiplications. Here the image's `dy` (a few filters by the
//! pixels) is transposed once, in 16 × 16 blocks, and the kernel reads the
//! columns in place, one broadcast per row and pixel, against vectors of
//! 16 filters.
//!
//! The bits: `matrixmultiply` (AVX-512 and FMA kernels alike) sums each
//! element over `k` in blocks of [`KC`], each block a chain of fused
//! multiply-adds from zero in the order of `k`, and adds each block's sum
//! to the element (`c ← c + s`, one rounding, for α = β = 1). The kernel
//! below does exactly that, so the gradient does not change; a unit test
//! compares the two bit for bit.

use core::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4,
    _mm512_shuffle_ps, _mm512_storeu_ps, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
};

/// `matrixmultiply`'s block of the sum's index for `f32` (its `S_KC`).
pub(crate) const KC: usize = 256;
/// Filters per vector.
const LANES: usize = 16;

/// `dyt[j][o] = dy[o][j]` for `dy` of `filters` rows by `pixels`.
///
/// # Safety
/// AVX-512F must be available; `dy` and `dyt` hold `filters · pixels`
/// elements.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose(dy: &[f32], filters: usize, pixels: usize, dyt: &mut [f32]) {
    assert!(dy.len() >= filters * pixels && dyt.len() >= filters * pixels);
    let (fb, pb) = (filters / LANES * LANES, pixels / LANES * LANES);
    for o in (0..fb).step_by(LANES) {
        for j in (0..pb).step_by(LANES) {
            // SAFETY: rows o..o + 16 and pixels j..j + 16 lie inside both
            // (the blocks are whole).
            unsafe {
                block16(
                    dy.as_ptr().add(o * pixels + j),
                    pixels,
                    dyt.as_mut_ptr().add(j * filters + o),
                    filters,
                )
            };
        }
    }
    // The edges, element by element.
    for o in 0..filters {
        let from = if o < fb { pb } else { 0 };
        for j in from..pixels {
            dyt[j * filters + o] = dy[o * pixels + j];
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
    // r[q] now holds column q of the block.
    for (q, v) in r.iter().enumerate() {
        unsafe { _mm512_storeu_ps(dst.add(q * dst_stride), *v) };
    }
}

/// `dwt[r][o] += Σ_j col[r][j] · dyt[j][o]` for the rows `first..first +
/// dwt.len() / filters` of `col` (`pixels` per row), in `matrixmultiply`'s
/// order (see the module).
///
/// # Safety
/// AVX-512F must be available; `col` holds those rows, `dyt` `pixels ·
/// filters` elements, and `dwt` a whole number of rows of `filters`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn accumulate(
    col: &[f32],
    pixels: usize,
    first: usize,
    dyt: &[f32],
    filters: usize,
    dwt: &mut [f32],
) {
    let rows = dwt.len() / filters;
    assert!(rows * filters == dwt.len() && (first + rows) * pixels <= col.len());
    assert!(dyt.len() >= pixels * filters);
    let mut o = 0;
    while o < filters {
        let group = (filters - o).min(4 * LANES);
        // SAFETY: the asserts above bound every row and filter read.
        unsafe {
            match group.div_ceil(LANES) {
                1 => rows_of::<14, 1>(col, pixels, first, dyt, filters, o, group, dwt),
                2 => rows_of::<12, 2>(col, pixels, first, dyt, filters, o, group, dwt),
                3 => rows_of::<8, 3>(col, pixels, first, dyt, filters, o, group, dwt),
                _ => rows_of::<6, 4>(col, pixels, first, dyt, filters, o, group, dwt),
            }
        }
        o += group;
    }
}

/// Every row of `dwt`, `MR` at a time, for the filters `o..o + group`
/// (`group ≤ NV · 16`).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_of<const MR: usize, const NV: usize>(
    col: &[f32],
    pixels: usize,
    first: usize,
    dyt: &[f32],
    filters: usize,
    o: usize,
    group: usize,
    dwt: &mut [f32],
) {
    let rows = dwt.len() / filters;
    let masks: [__mmask16; NV] = core::array::from_fn(|v| {
        let lanes = group.saturating_sub(v * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    });
    let mut r = 0;
    while r < rows {
        let tile = (rows - r).min(MR);
        // A short tile reads its last row again for the missing ones and
        // stores only its own.
        let src: [*const f32; MR] =
            core::array::from_fn(|i| col[(first + r + i.min(tile - 1)) * pixels..].as_ptr());
        let out = dwt[r * filters + o..].as_mut_ptr();
        let mut k = 0;
        while k < pixels {
            let kc = (pixels - k).min(KC);
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            for j in k..k + kc {
                let b: [__m512; NV] = core::array::from_fn(|v| {
                    // SAFETY: filters o + 16v.. under the mask lie in row j.
                    unsafe {
                        _mm512_maskz_loadu_ps(
                            masks[v],
                            dyt.as_ptr().add(j * filters + o + v * LANES),
                        )
                    }
                });
                for i in 0..MR {
                    // SAFETY: pixel j of a row of the tile.
                    let a = _mm512_set1_ps(unsafe { *src[i].add(j) });
                    for v in 0..NV {
                        acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate().take(tile) {
                for v in 0..NV {
                    // SAFETY: row r + i of dwt, filters under the mask.
                    unsafe {
                        let p = out.add(i * filters + v * LANES);
                        let c = _mm512_maskz_loadu_ps(masks[v], p);
                        _mm512_mask_storeu_ps(p, masks[v], _mm512_add_ps(acc[v], c));
                    }
                }
            }
            k += kc;
        }
        r += tile;
    }
}
