//! GEMM in AVX-512 for `f32`, with the same bits as `matrixmultiply`'s
//! products that it replaces: the dense layers' products ([`gemm`], and
//! [`gemm_bt`] for a transposed right operand, the one it packs) and a
//! convolution's three products for one image, without packing their
//! operands:
//!
//! - forward, `y = W · col(x)` (filters × pixels);
//! - input gradient, `dcol = Wᵀ · dy` (column rows × pixels), where
//!   [`crate::input_grad`] does not sum it straight into the image;
//! - weight gradient, kept transposed, `dwᵀ += col(x) · dyᵀ` (column rows ×
//!   filters), `dy` transposed once per image by [`crate::transpose`].
//!
//! For a stride-1 convolution whose output rows are as wide as its input's
//! ([`Same`](crate::same::Same), ResNet's 3 × 3 and C1's 5 × 5 ones) the columns `col(x)` are
//! never written: the forward product loads shifted rows of the image under
//! masks that zero the padding ([`conv_same`]), and the weight gradient
//! reads a copy of the image with its border of zeros ([`weight_grad_same`]),
//! the same elements im2col would write, in about a ninth of the memory
//! for a 3 × 3 kernel.
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

use crate::same::Same;
use core::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

/// `matrixmultiply`'s block of the sum's index for `f32` (its `S_KC`).
pub(crate) const KC: usize = 256;
/// `f32` lanes per vector.
const LANES: usize = 16;

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
    let Some((shape, left)) = strided((m, n, k), (a, rsa, csa), (c, ldc), add) else {
        return;
    };
    assert!(n <= ldb && b.len() >= (k - 1) * ldb + n);
    // SAFETY: the asserts here and in `strided` bound every element read
    // or written.
    unsafe { by_groups(&shape, &left, c, n, Dense::from_column(b, ldb)) }
}

/// The shape and left operand of a product of [`gemm`]'s or [`gemm_bt`]'s,
/// after checking that `a` and `c` hold every element the product reads
/// or writes; `None` for an empty product.
fn strided(
    (m, n, k): (usize, usize, usize),
    (a, rsa, csa): (&[f32], usize, usize),
    (c, ldc): (&[f32], usize),
    add: bool,
) -> Option<(Shape, Strided)> {
    if m == 0 || n == 0 || k == 0 {
        return None;
    }
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa);
    assert!(n <= ldc && c.len() >= (m - 1) * ldc + n);
    let left = Strided {
        a: a.as_ptr(),
        rsa,
        csa,
    };
    let shape = Shape {
        m,
        k,
        ldc,
        add,
        bias: None,
    };
    Some((shape, left))
}

/// Columns of `c` summed at a time ([`by_groups`]), and the width of
/// [`gemm_bt`]'s packed operand.
pub(crate) const GROUP: usize = 4 * LANES;

/// `c ← a · bᵀ` (`add`: `c ← c + a · bᵀ`) for `a` as in [`gemm`] and `b`
/// of `n × k` (rows `k` apart): each group of up to [`GROUP`] rows of `b`
/// is first transposed into `packed` (`k · GROUP` elements), which the
/// group's columns of `c` then read as [`gemm`] reads its `b`: the same
/// elements in the same order, so the same bits. With a `bias` (`n`
/// elements), `c[i][j] ← c[i][j] + bias[j]` follows, added as each element
/// is stored after its last block of the sum: the same bits as a pass of
/// its own.
///
/// # Safety
/// AVX-512F must be available. (The slices' lengths are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gemm_bt(
    (m, n, k): (usize, usize, usize),
    (a, rsa, csa): (&[f32], usize, usize),
    b: &[f32],
    (c, ldc): (&mut [f32], usize),
    (add, packed, bias): (bool, &mut [f32], Option<&[f32]>),
) {
    let Some((mut shape, left)) = strided((m, n, k), (a, rsa, csa), (c, ldc), add) else {
        return;
    };
    assert!(b.len() >= n * k && packed.len() >= k * GROUP);
    assert!(bias.is_none_or(|bias| bias.len() >= n));
    shape.bias = bias.map(<[f32]>::as_ptr);
    let pack = |o: usize| {
        let group = (n - o).min(GROUP);
        // SAFETY: AVX-512F is available (this function's requirement);
        // rows o .. o + group of `b` lie inside it (asserted above).
        unsafe { crate::transpose::transpose(&b[o * k..], (group, k, k), packed) };
        Dense {
            b: packed.as_ptr(),
            ldb: group,
        }
    };
    // SAFETY: the asserts here and in `strided` bound every element read
    // or written; each group's packed rows are read before the next
    // group's are written.
    unsafe { by_groups(&shape, &left, c, n, pack) }
}

/// A convolution's forward product for one image, `y = w · col(x)`, with
/// `col(x)` read from the image in place instead of written out first: the
/// same elements (zeros where the kernel reaches into the padding), so the
/// same bits as [`gemm`] over the columns.
///
/// # Safety
/// AVX-512F must be available. (The lengths and the geometry are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn conv_same(
    geometry: Same,
    w: &[f32],
    filters: usize,
    x: &[f32],
    y: &mut [f32],
) {
    let (k, n) = geometry.checked();
    let Some((shape, left)) = strided((filters, n, k), (w, k, 1), (y, n), false) else {
        return;
    };
    assert!(x.len() >= geometry.image_len());
    // SAFETY: `strided`'s asserts bound every element of `w` and `y`; the
    // image's reads are masked to the lanes inside it.
    unsafe {
        by_groups(&shape, &left, y, n, |o| {
            Image::new(geometry, x, o, (n - o).min(GROUP))
        })
    }
}

/// [`columns`] over the columns of `c` in groups of at most [`GROUP`], the right
/// operand of each group made by `right(first column)`.
///
/// The rows of a tile for one and two vectors of columns were chosen by
/// measurement on the weight gradients of ResNet-44's convolutions with 16
/// and 32 filters: with 14 and 12 rows the compiler ran short of registers
/// (the accumulators spilled inside the loop), and 12 and 10 ran those
/// products at 159 and 173 GFLOP/s against 138 and 117.
#[target_feature(enable = "avx512f")]
unsafe fn by_groups<L: Left, R: Right>(
    s: &Shape,
    a: &L,
    c: &mut [f32],
    n: usize,
    mut right: impl FnMut(usize) -> R,
) {
    let mut o = 0;
    while o < n {
        let group = (n - o).min(GROUP);
        let (b, c) = (right(o), &mut c[o..]);
        let s = &Shape {
            bias: s.bias.map(|bias| bias.wrapping_add(o)),
            ..*s
        };
        // SAFETY: as the caller's.
        unsafe {
            match group.div_ceil(LANES) {
                1 => columns::<12, 1, L, R>(s, a, &b, c, group),
                2 => columns::<10, 2, L, R>(s, a, &b, c, group),
                3 => columns::<8, 3, L, R>(s, a, &b, c, group),
                _ => columns::<6, 4, L, R>(s, a, &b, c, group),
            }
        }
        o += group;
    }
}

/// What [`columns`] is given besides the operands and the columns.
#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    k: usize,
    ldc: usize,
    add: bool,
    /// A bias per column, from the columns' first, added to each element
    /// after its last block of the sum.
    bias: Option<*const f32>,
}

/// The left operand, row by row: row `i`'s element at a cursor lies
/// [`Left::offset`] elements after [`Left::row`]`(i)`.
trait Left {
    /// Where the rows are read, the same for all of them.
    type Cursor: Copy;
    /// The start of row `i`.
    fn row(&self, i: usize) -> *const f32;
    /// Column `q`'s cursor.
    fn at(&self, q: usize) -> Self::Cursor;
    /// The next column's cursor.
    fn next(&self, at: Self::Cursor) -> Self::Cursor;
    /// The cursor's offset from a row's start.
    fn offset(at: Self::Cursor) -> usize;
}

/// A stored matrix: element `(i, q)` at `a[i · rsa + q · csa]`.
struct Strided {
    a: *const f32,
    rsa: usize,
    csa: usize,
}

impl Left for Strided {
    type Cursor = usize;
    #[inline(always)]
    fn row(&self, i: usize) -> *const f32 {
        self.a.wrapping_add(i * self.rsa)
    }
    #[inline(always)]
    fn at(&self, q: usize) -> usize {
        q * self.csa
    }
    #[inline(always)]
    fn next(&self, at: usize) -> usize {
        at + self.csa
    }
    #[inline(always)]
    fn offset(at: usize) -> usize {
        at
    }
}

/// An image's columns ([`Same`]) as the left operand, from row `first`
/// on, read from the image padded with zeros on every side (`xp`, planes of
/// `(height + 2 · pad) × (width + 2 · pad)`): row `(c, ky, kx)` starts at
/// `xp[c][ky][kx]`, and output pixel `(y, x)` lies `y · (width + 2 · pad) + x`
/// after it, the same for every row.
struct Padded {
    xp: *const f32,
    geometry: Same,
    first: usize,
}

impl Padded {
    fn padded_width(&self) -> usize {
        self.geometry.width + 2 * self.geometry.padding
    }
}

impl Left for Padded {
    /// The offset, and the output column it is at.
    type Cursor = (usize, usize);
    #[inline(always)]
    fn row(&self, i: usize) -> *const f32 {
        let g = &self.geometry;
        let (c, ky, kx) = g.kernel_index(self.first + i);
        let plane = (g.height + 2 * g.padding) * self.padded_width();
        self.xp
            .wrapping_add(c * plane + ky * self.padded_width() + kx)
    }
    #[inline(always)]
    fn at(&self, q: usize) -> (usize, usize) {
        let w = self.geometry.width;
        (q / w * self.padded_width() + q % w, q % w)
    }
    #[inline(always)]
    fn next(&self, (offset, x): (usize, usize)) -> (usize, usize) {
        if x + 1 == self.geometry.width {
            (offset + 1 + 2 * self.geometry.padding, 0)
        } else {
            (offset + 1, x + 1)
        }
    }
    #[inline(always)]
    fn offset((offset, _): (usize, usize)) -> usize {
        offset
    }
}

/// `xp`: each plane of `x` (`geometry`'s) inside a border of `padding`
/// zeros, planes of `(height + 2 · pad) × (width + 2 · pad)`.
pub(crate) fn pad_image(geometry: Same, x: &[f32], xp: &mut [f32]) {
    assert!(x.len() >= geometry.image_len() && xp.len() >= geometry.padded_len());
    let Same {
        channels,
        height,
        width,
        padding,
        ..
    } = geometry;
    let (wp, hp) = (width + 2 * padding, height + 2 * padding);
    for (plane, xp) in x
        .chunks(height * width)
        .zip(xp.chunks_mut(hp * wp))
        .take(channels)
    {
        xp[..padding * wp].fill(0.0);
        xp[(padding + height) * wp..].fill(0.0);
        for (row, out) in plane.chunks(width).zip(xp[padding * wp..].chunks_mut(wp)) {
            out[..padding].fill(0.0);
            out[padding..padding + width].copy_from_slice(row);
            out[padding + width..].fill(0.0);
        }
    }
}

/// Rows `first..first + dwt.len() / filters` of one image's weight
/// gradient, kept transposed: `dwt[r][o] += Σ_j col(x)[r][j] · dyt[j][o]`,
/// the columns read from the padded image `xp` ([`pad_image`]) in place,
/// the same elements as im2col's, so the same bits as [`gemm`] over them.
///
/// # Safety
/// AVX-512F must be available. (The lengths are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn weight_grad_same(
    geometry: Same,
    xp: &[f32],
    first: usize,
    (dyt, filters): (&[f32], usize),
    dwt: &mut [f32],
) {
    let ((all, pixels), rows) = (geometry.checked(), dwt.len() / filters.max(1));
    if filters == 0 || rows == 0 || pixels == 0 {
        return;
    }
    assert!(first + rows <= all && rows * filters == dwt.len());
    assert!(xp.len() >= geometry.padded_len() && dyt.len() >= pixels * filters);
    let shape = Shape {
        m: rows,
        k: pixels,
        ldc: filters,
        add: true,
        bias: None,
    };
    let left = Padded {
        xp: xp.as_ptr(),
        geometry,
        first,
    };
    // SAFETY: the asserts bound every element read or written: the last
    // row's last pixel reads xp[c][out_h − 1 + ky][width − 1 + kx], inside
    // its padded plane.
    unsafe {
        by_groups(
            &shape,
            &left,
            dwt,
            filters,
            Dense::from_column(dyt, filters),
        )
    }
}

/// The right operand of one group of columns, row by row through a cursor.
trait Right {
    /// Where a row is read from.
    type Cursor: Copy;
    /// Row `q`'s cursor.
    fn at(&self, q: usize) -> Self::Cursor;
    /// The next row's cursor.
    fn next(&self, at: Self::Cursor) -> Self::Cursor;
    /// Vector `v` (columns `16v ..`) of the row at `at`, lanes outside
    /// `mask` zero.
    ///
    /// # Safety
    /// AVX-512F; the cursor comes from this operand, within its rows.
    unsafe fn load(&self, at: Self::Cursor, v: usize, mask: __mmask16) -> __m512;
}

/// A stored matrix, rows `ldb` apart, from the group's first column.
struct Dense {
    b: *const f32,
    ldb: usize,
}

impl Dense {
    /// `b` (rows `ldb` apart) from a group's first column on.
    fn from_column(b: &[f32], ldb: usize) -> impl Fn(usize) -> Dense + '_ {
        move |o| Dense {
            b: b.as_ptr().wrapping_add(o),
            ldb,
        }
    }
}

impl Right for Dense {
    type Cursor = *const f32;
    #[inline(always)]
    fn at(&self, q: usize) -> *const f32 {
        self.b.wrapping_add(q * self.ldb)
    }
    #[inline(always)]
    fn next(&self, at: *const f32) -> *const f32 {
        at.wrapping_add(self.ldb)
    }
    #[inline(always)]
    unsafe fn load(&self, at: *const f32, v: usize, mask: __mmask16) -> __m512 {
        // SAFETY: the caller's row, the group's columns under the mask.
        unsafe { _mm512_maskz_loadu_ps(mask, at.add(v * LANES)) }
    }
}

/// The columns of an image ([`Same`]) for one group of output pixels.
struct Image<'a> {
    geometry: Same,
    x: &'a [f32],
    /// The group's first output pixel.
    first: usize,
    /// For each kernel row `ky` and vector, the lanes whose input row
    /// `y + ky − pad` lies inside the image.
    rows: [[u16; 4]; Same::MAX_KERNEL],
    /// The same for each kernel column and the input column.
    cols: [[u16; 4]; Same::MAX_KERNEL],
}

impl<'a> Image<'a> {
    fn new(geometry: Same, x: &'a [f32], first: usize, group: usize) -> Self {
        let (mut rows, mut cols) = ([[0u16; 4]; Same::MAX_KERNEL], [[0u16; 4]; Same::MAX_KERNEL]);
        let Same {
            height,
            width,
            kernel_h,
            kernel_w,
            padding,
            ..
        } = geometry;
        for lane in 0..group {
            let j = first + lane;
            let (y, x) = (j / width, j % width);
            let bit = 1u16 << (lane % LANES);
            for (ky, rows) in rows.iter_mut().enumerate().take(kernel_h) {
                if (y + ky).checked_sub(padding).is_some_and(|r| r < height) {
                    rows[lane / LANES] |= bit;
                }
            }
            for (kx, cols) in cols.iter_mut().enumerate().take(kernel_w) {
                if (x + kx).checked_sub(padding).is_some_and(|c| c < width) {
                    cols[lane / LANES] |= bit;
                }
            }
        }
        Image {
            geometry,
            x,
            first,
            rows,
            cols,
        }
    }
}

/// Where [`Image`] reads a row of the columns: the input element of the
/// group's first pixel (an offset that may lie outside the image, for
/// lanes that are masked), and the kernel offset.
#[derive(Clone, Copy)]
struct ImageAt {
    offset: isize,
    ky: usize,
    kx: usize,
}

impl Right for Image<'_> {
    type Cursor = ImageAt;
    #[inline(always)]
    fn at(&self, q: usize) -> ImageAt {
        let g = &self.geometry;
        let (c, ky, kx) = g.kernel_index(q);
        let plane = (g.height * g.width) as isize;
        let shift = (ky as isize - g.padding as isize) * g.width as isize + kx as isize
            - g.padding as isize;
        ImageAt {
            offset: c as isize * plane + self.first as isize + shift,
            ky,
            kx,
        }
    }
    #[inline(always)]
    fn next(&self, at: ImageAt) -> ImageAt {
        let g = &self.geometry;
        let ImageAt {
            mut offset,
            mut ky,
            mut kx,
        } = at;
        kx += 1;
        offset += 1;
        if kx == g.kernel_w {
            kx = 0;
            ky += 1;
            offset += g.width as isize - g.kernel_w as isize;
            if ky == g.kernel_h {
                ky = 0;
                offset += (g.height as isize - g.kernel_h as isize) * g.width as isize;
            }
        }
        ImageAt { offset, ky, kx }
    }
    #[inline(always)]
    unsafe fn load(&self, at: ImageAt, v: usize, mask: __mmask16) -> __m512 {
        let inside = mask & self.rows[at.ky][v] & self.cols[at.kx][v];
        let from = self
            .x
            .as_ptr()
            .wrapping_offset(at.offset + (v * LANES) as isize);
        // SAFETY: a lane is loaded only where its input row and column lie
        // inside the image (the masks), that is inside `x`; masked lanes
        // are not read.
        unsafe { _mm512_maskz_loadu_ps(inside, from) }
    }
}

/// Every row of `c`, `MR` at a time, for its first `group ≤ NV · 16`
/// columns (`b` and `c` start at the group's first column).
#[target_feature(enable = "avx512f")]
unsafe fn columns<const MR: usize, const NV: usize, L: Left, R: Right>(
    s: &Shape,
    a: &L,
    b: &R,
    c: &mut [f32],
    group: usize,
) {
    let masks: [__mmask16; NV] = core::array::from_fn(|v| {
        let lanes = group.saturating_sub(v * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    });
    let c = c.as_mut_ptr();
    // Block by block of the sum, all the rows for each: the block of `b`
    // (at most 256 of its rows by 64 columns) stays in cache while every
    // tile of rows reads it. Each element still gets its blocks in order.
    let mut p = 0;
    while p < s.k {
        let kc = (s.k - p).min(KC);
        let first = p == 0 && !s.add;
        let bias = s.bias.filter(|_| p + kc == s.k);
        let (start, left) = (b.at(p), a.at(p));
        let mut r = 0;
        while r < s.m {
            let tile = (s.m - r).min(MR);
            // A short tile reads its last row again for the missing ones
            // and stores only its own.
            // SAFETY (every pointer below): rows r..r + tile of `a` and `c`,
            // rows p..p + kc of `b`, and the group's columns under the masks
            // lie in the slices (asserted by the callers).
            let rows: [*const f32; MR] = core::array::from_fn(|i| a.row(r + i.min(tile - 1)));
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            let (mut at, mut la) = (start, left);
            for _ in p..p + kc {
                let bv: [__m512; NV] = core::array::from_fn(|v| unsafe { b.load(at, v, masks[v]) });
                for i in 0..MR {
                    let av = _mm512_set1_ps(unsafe { *rows[i].add(L::offset(la)) });
                    for v in 0..NV {
                        acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                    }
                }
                at = b.next(at);
                la = a.next(la);
            }
            let out = unsafe { c.add(r * s.ldc) };
            for (i, acc) in acc.iter().enumerate().take(tile) {
                for v in 0..NV {
                    unsafe {
                        let at = out.add(i * s.ldc + v * LANES);
                        let mut sum = if first {
                            acc[v]
                        } else {
                            _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(masks[v], at))
                        };
                        if let Some(bias) = bias {
                            let b = _mm512_maskz_loadu_ps(masks[v], bias.add(v * LANES));
                            sum = _mm512_add_ps(sum, b);
                        }
                        _mm512_mask_storeu_ps(at, masks[v], sum);
                    }
                }
            }
            r += tile;
        }
        p += kc;
    }
}
