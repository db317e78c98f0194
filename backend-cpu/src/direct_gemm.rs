//! A convolution's three products for one image in AVX-512, for `f32`,
//! with the same bits as `matrixmultiply`'s products that they replace,
//! without packing their operands:
//!
//! - forward, `y = W · col` (filters × pixels);
//! - input gradient, `dcol = Wᵀ · dy` (column rows × pixels);
//! - weight gradient, kept transposed, `dwᵀ += col · dyᵀ` (column rows ×
//!   filters), `dy` transposed once per image in 16 × 16 blocks.
//!
//! `matrixmultiply` copies both operands of every product into panels
//! before its kernel reads them. A convolution's products have few filters
//! on one side, so each panel of the other operand is read only a few
//! times: in ResNet-44's step that packing took about as long as the
//! multiplications (for the weight gradient, whose operands both run along
//! the sum's index, it is an element-by-element transposition). Here the
//! right operand is read in place, vectors of 16 along its rows, and the
//! left one by broadcasts of single elements, whatever its strides.
//!
//! The bits: `matrixmultiply` (AVX-512 and FMA kernels alike) sums each
//! element over `k` in blocks of [`KC`], each block a chain of fused
//! multiply-adds from zero in the order of `k`, and adds each block's sum
//! to the element (`c ← c + s`, one rounding, for α = β = 1; the first
//! block is stored as it is for β = 0). [`gemm`] does exactly that, so the
//! results do not change; the CPU backend's convolution test compares them
//! bit for bit.

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

/// `c ← a · b` (`add`: `c ← c + a · b`) for `a` of `m × k` with element
/// `(i, p)` at `a[i · rsa + p · csa]`, `b` of `k × n` (rows `ldb` apart)
/// and `c` of `m × n` (rows `ldc` apart), in `matrixmultiply`'s order (see
/// the module).
///
/// # Safety
/// AVX-512F must be available. (The slices' lengths are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    (a, rsa, csa): (&[f32], usize, usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
    add: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa);
    assert!(n <= ldb && b.len() >= (k - 1) * ldb + n);
    assert!(n <= ldc && c.len() >= (m - 1) * ldc + n);
    let shape = Shape {
        m,
        k,
        rsa,
        csa,
        ldb,
        ldc,
        add,
    };
    let mut o = 0;
    while o < n {
        let group = (n - o).min(4 * LANES);
        // SAFETY: the asserts above bound every element read or written.
        unsafe {
            match group.div_ceil(LANES) {
                1 => columns::<14, 1>(&shape, a, &b[o..], &mut c[o..], group),
                2 => columns::<12, 2>(&shape, a, &b[o..], &mut c[o..], group),
                3 => columns::<8, 3>(&shape, a, &b[o..], &mut c[o..], group),
                _ => columns::<6, 4>(&shape, a, &b[o..], &mut c[o..], group),
            }
        }
        o += group;
    }
}

/// What [`gemm`] was given besides the operands and the columns.
struct Shape {
    m: usize,
    k: usize,
    rsa: usize,
    csa: usize,
    ldb: usize,
    ldc: usize,
    add: bool,
}

/// Every row of `c`, `MR` at a time, for its first `group ≤ NV · 16`
/// columns (`b` and `c` start at the group's first column).
#[target_feature(enable = "avx512f")]
unsafe fn columns<const MR: usize, const NV: usize>(
    s: &Shape,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    group: usize,
) {
    let masks: [__mmask16; NV] = core::array::from_fn(|v| {
        let lanes = group.saturating_sub(v * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    });
    let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // Block by block of the sum, all the rows for each: the block of `b`
    // (at most 256 of its rows by 64 columns) stays in cache while every
    // tile of rows reads it. Each element still gets its blocks in order.
    let mut p = 0;
    while p < s.k {
        let kc = (s.k - p).min(KC);
        let first = p == 0 && !s.add;
        let mut r = 0;
        while r < s.m {
            let tile = (s.m - r).min(MR);
            // A short tile reads its last row again for the missing ones
            // and stores only its own.
            // SAFETY (every pointer below): rows r..r + tile of `a` and `c`,
            // rows p..p + kc of `b`, and the group's columns under the masks
            // lie in the slices (asserted by `gemm`).
            let rows: [*const f32; MR] =
                core::array::from_fn(|i| unsafe { a.add((r + i.min(tile - 1)) * s.rsa) });
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            for q in p..p + kc {
                let bq = unsafe { b.add(q * s.ldb) };
                let bv: [__m512; NV] = core::array::from_fn(|v| unsafe {
                    _mm512_maskz_loadu_ps(masks[v], bq.add(v * LANES))
                });
                for i in 0..MR {
                    let av = _mm512_set1_ps(unsafe { *rows[i].add(q * s.csa) });
                    for v in 0..NV {
                        acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                    }
                }
            }
            let out = unsafe { c.add(r * s.ldc) };
            for (i, acc) in acc.iter().enumerate().take(tile) {
                for v in 0..NV {
                    unsafe {
                        let at = out.add(i * s.ldc + v * LANES);
                        let sum = if first {
                            acc[v]
                        } else {
                            _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(masks[v], at))
                        };
                        _mm512_mask_storeu_ps(at, masks[v], sum);
                    }
                }
            }
            r += tile;
        }
        p += kc;
    }
}
