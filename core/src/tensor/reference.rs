//! The plain-loop ground truth of the tensor operations of
//! [`crate::tensor`], on slices, and the [`crate::Reference`] backend's
//! implementation of them.
//!
//! The per-range kernels (`*_image`, `*_plane`, `*_channel`, `*_row`) are
//! public so that a parallel backend can call them on fixed ranges (images,
//! planes, channels, rows) and so give these bits whatever its thread count.
//! Accumulations that can be long (statistics, bias gradients, the loss) are
//! carried out in `f64`, in a fixed order, and rounded to the element type
//! once.

use crate::error::{check_len, Error, Result};
use crate::real::Real;
use crate::tensor::{BatchNorm, BatchedGemm, Conv2d, Gemm, Pool2d, PoolKind};

/// `c ← α · op(a) · op(b) + β · c`, each entry's dot product accumulated in
/// `T` over `p = 0, 1, …, k − 1` (see [`Gemm`]).
///
/// # Errors
/// As [`Gemm::validate`].
pub fn gemm<T: Real>(g: &Gemm, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
    g.validate(a.len(), b.len(), c.len())?;
    let (alpha, beta) = (T::from_f64(g.alpha), T::from_f64(g.beta));
    for i in 0..g.m {
        for j in 0..g.n {
            let mut acc = T::zero();
            for p in 0..g.k {
                let x = if g.trans_a {
                    a[p * g.m + i]
                } else {
                    a[i * g.k + p]
                };
                let y = if g.trans_b {
                    b[j * g.k + p]
                } else {
                    b[p * g.n + j]
                };
                acc = acc + x * y;
            }
            let out = &mut c[i * g.n + j];
            *out = if g.beta == 0.0 {
                alpha * acc
            } else {
                alpha * acc + beta * *out
            };
        }
    }
    Ok(())
}

/// `c_i ← α · op(a_i) · op(b_i) + β · c_i` for `i = 0, 1, …, count − 1`
/// (see [`GemmBatch`](crate::tensor::GemmBatch)): one [`gemm`] per product, on the matrices' elements,
/// in order.
///
/// # Errors
/// As [`BatchedGemm::validate`] with `summed = false`.
pub fn gemm_strided<T: Real>(req: BatchedGemm<'_, [T]>) -> Result<()> {
    gemm_batch(req, false)
}

/// `c ← α · Σ_i op(a_i) · op(b_i) + β · c` (see
/// [`GemmBatch`](crate::tensor::GemmBatch)), as `count` [`gemm`]s in order
/// into the first `m·n` elements of `c`: the first with the request's β,
/// every later one with β = 1.
///
/// # Errors
/// As [`BatchedGemm::validate`] with `summed = true`.
pub fn gemm_summed<T: Real>(req: BatchedGemm<'_, [T]>) -> Result<()> {
    gemm_batch(req, true)
}

/// Either batched form: validated, then
/// [`GemmBatch::products`](crate::tensor::GemmBatch::products) in order.
fn gemm_batch<T: Real>(req: BatchedGemm<'_, [T]>, summed: bool) -> Result<()> {
    req.validate(summed, <[T]>::len)?;
    let (g, batch) = req.spec;
    for (gi, [ra, rb, rc]) in batch.products(&g, summed) {
        gemm(&gi, &req.a[ra], &req.b[rb], &mut req.out[rc])?;
    }
    Ok(())
}

/// The input coordinate `o · stride + k − padding`, or `None` in the padding.
#[inline(always)]
fn source(o: usize, k: usize, stride: usize, padding: usize, size: usize) -> Option<usize> {
    (o * stride + k).checked_sub(padding).filter(|&v| v < size)
}

/// The output positions `lo..hi` (within `0..out`) whose source position
/// `o · stride + k − padding` lies in `0..size`: those [`source`] maps to
/// `Some`.
#[inline(always)]
fn in_range(out: usize, k: usize, stride: usize, padding: usize, size: usize) -> (usize, usize) {
    let lo = padding.saturating_sub(k).div_ceil(stride).min(out);
    let hi = (size + padding).saturating_sub(k).div_ceil(stride).min(out);
    (lo, hi.max(lo))
}

/// One line of an image's columns (`out_w` elements: the values of one
/// input channel and kernel offset `(i, j)` at one output row) and what it
/// reads of the image.
struct ColLine {
    /// The line's elements in the image's columns.
    col: core::ops::Range<usize>,
    /// The input row it reads (a range of the image) and the first input
    /// column read, `lo · stride + j − padding`; `None` when the output row
    /// reads the padding.
    src: Option<(core::ops::Range<usize>, usize)>,
    /// The output columns `lo..hi` that read inside the input row (see
    /// [`in_range`]); the others read the padding.
    lo: usize,
    hi: usize,
}

/// Calls `f` for every line of one image's columns, in order (rows of the
/// columns, then output rows); `conv` must be valid.
#[inline(always)]
fn for_each_col_line(conv: &Conv2d, mut f: impl FnMut(ColLine)) {
    let (oh, ow) = (conv.out_h(), conv.out_w());
    let (plane, width, stride, pad) = (
        conv.height * conv.width,
        conv.width,
        conv.stride,
        conv.padding,
    );
    for c in 0..conv.channels {
        for i in 0..conv.kernel_h {
            for j in 0..conv.kernel_w {
                let row = (c * conv.kernel_h + i) * conv.kernel_w + j;
                let (lo, hi) = in_range(ow, j, stride, pad, width);
                for y in 0..oh {
                    let start = (row * oh + y) * ow;
                    // lo · stride + j ≥ pad, so the first source index is ≥ 0.
                    let src = source(y, i, stride, pad, conv.height).map(|sy| {
                        let first = lo * stride + j - pad;
                        (c * plane + sy * width..c * plane + (sy + 1) * width, first)
                    });
                    f(ColLine {
                        col: start..start + ow,
                        src,
                        lo,
                        hi,
                    });
                }
            }
        }
    }
}

/// One image's im2col (`x`: `C·H·W`, `col`: `C·kh·kw × out_h·out_w`);
/// `conv` must be valid and the slices sized for one image. Each output row
/// is a run of zeros, a copy of part of an input row (strided for stride
/// > 1), and zeros again.
#[inline(always)]
pub fn im2col_image<T: Real>(conv: &Conv2d, x: &[T], col: &mut [T]) {
    if same_width(conv) {
        im2col_image_same(conv, x, col);
    } else {
        im2col_image_lines(conv, x, col);
    }
}

/// [`im2col_image`] line by line, for any geometry.
#[inline(always)]
fn im2col_image_lines<T: Real>(conv: &Conv2d, x: &[T], col: &mut [T]) {
    for_each_col_line(conv, |line| {
        let out = &mut col[line.col];
        let Some((src, first)) = line.src else {
            out.fill(T::zero());
            return;
        };
        let (src, lo, hi) = (&x[src], line.lo, line.hi);
        out[..lo].fill(T::zero());
        out[hi..].fill(T::zero());
        if conv.stride == 1 {
            out[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
        } else {
            for (o, &v) in out[lo..hi]
                .iter_mut()
                .zip(src[first..].iter().step_by(conv.stride))
            {
                *o = v;
            }
        }
    });
}

/// [`im2col_image`] at stride 1 when an output row is as wide as an input
/// row ("same" padding across): the output rows of one row of the columns
/// that read the image are, from their first element read to their last,
/// one run of the image (each row's tail and the next row's head between
/// them), so they are copied in one piece and the elements that read the
/// padding are zeroed after, the same values as line by line.
#[inline(always)]
fn im2col_image_same<T: Real>(conv: &Conv2d, x: &[T], col: &mut [T]) {
    let ow = conv.out_w();
    let zero = T::zero();
    for (r, out) in same_rows(conv).zip(col.chunks_exact_mut(conv.col_cols())) {
        out[..r.ya * ow].fill(zero);
        out[r.yb * ow..].fill(zero);
        if r.ya == r.yb || r.lo == r.hi {
            out[r.ya * ow..r.yb * ow].fill(zero);
            continue;
        }
        let (d0, d1) = (r.ya * ow + r.lo, (r.yb - 1) * ow + r.hi);
        let s0 = r.source(r.ya);
        out[d0..d1].copy_from_slice(&x[s0..s0 + (d1 - d0)]);
        for line in out[r.ya * ow..r.yb * ow].chunks_exact_mut(ow) {
            line[..r.lo].fill(zero);
            line[r.hi..].fill(zero);
        }
    }
}

/// Whether a convolution's columns take the paths of [`im2col_image_same`]
/// and [`col2im_image_same`]: stride 1, output rows as wide as input rows.
#[inline(always)]
fn same_width(conv: &Conv2d) -> bool {
    conv.stride == 1 && conv.out_w() == conv.width
}

/// One row of an image's columns in the case of [`same_width`]: the output
/// rows `ya..yb` read input rows, the output columns `lo..hi` read inside
/// them.
struct SameRow {
    ya: usize,
    yb: usize,
    lo: usize,
    hi: usize,
    /// `source(y) = base + y · width − back` is the image index that output
    /// row `y`, column `lo` reads, `c · plane + (y + i − pad) · width + lo +
    /// j − pad`, kept as its non-negative terms and the `back = pad · width
    /// + pad` to subtract.
    base: usize,
    back: usize,
    width: usize,
}

impl SameRow {
    /// The image index read by output row `y` (in `ya..yb`) at column `lo`.
    #[inline(always)]
    fn source(&self, y: usize) -> usize {
        self.base + y * self.width - self.back
    }
}

/// The rows of one image's columns, in order, in the case of
/// [`same_width`].
#[inline(always)]
fn same_rows(conv: &Conv2d) -> impl Iterator<Item = SameRow> + '_ {
    let (w, pad) = (conv.width, conv.padding);
    (0..conv.col_rows()).map(move |row| {
        let (c, i, j) = (
            row / (conv.kernel_h * conv.kernel_w),
            row / conv.kernel_w % conv.kernel_h,
            row % conv.kernel_w,
        );
        let (ya, yb) = in_range(conv.out_h(), i, 1, pad, conv.height);
        let (lo, hi) = in_range(conv.out_w(), j, 1, pad, w);
        SameRow {
            ya,
            yb,
            lo,
            hi,
            // y + i ≥ pad for y ≥ ya and lo + j ≥ pad (see `in_range`), so
            // `source` never goes below zero on its rows.
            base: c * conv.height * w + i * w + lo + j,
            back: pad * w + pad,
            width: w,
        }
    })
}

/// One image's col2im, accumulating into `x` in the order rows, then
/// columns of `col`; `conv` must be valid and the slices sized for one image.
/// Within one row of `col` every column adds into a different element of
/// `x`, so each element receives its terms in that order.
#[inline(always)]
pub fn col2im_image<T: Real>(conv: &Conv2d, col: &[T], x: &mut [T]) {
    if same_width(conv) {
        col2im_image_same(conv, col, x);
    } else {
        col2im_image_lines(conv, col, x);
    }
}

/// [`col2im_image`] line by line, for any geometry.
#[inline(always)]
fn col2im_image_lines<T: Real>(conv: &Conv2d, col: &[T], x: &mut [T]) {
    for_each_col_line(conv, |line| {
        let Some((dst, first)) = line.src else {
            return;
        };
        let (dst, lo, hi) = (&mut x[dst], line.lo, line.hi);
        let terms = col[line.col][lo..hi].iter();
        if conv.stride == 1 {
            for (d, &v) in dst[first..first + (hi - lo)].iter_mut().zip(terms) {
                *d = *d + v;
            }
        } else {
            for (d, &v) in dst[first..].iter_mut().step_by(conv.stride).zip(terms) {
                *d = *d + v;
            }
        }
    });
}

/// im2col of every image (see [`Conv2d`]).
///
/// # Errors
/// As [`Conv2d::validate_buffers`].
pub fn im2col<T: Real>(conv: &Conv2d, x: &[T], col: &mut [T]) -> Result<()> {
    conv.validate_buffers(x.len(), col.len())?;
    let per = conv.col_rows() * conv.col_cols();
    for (x, col) in x.chunks(conv.image_len()).zip(col.chunks_mut(per)) {
        im2col_image(conv, x, col);
    }
    Ok(())
}

/// col2im of every image, accumulating into `x`.
///
/// # Errors
/// As [`Conv2d::validate_buffers`].
pub fn col2im<T: Real>(conv: &Conv2d, col: &[T], x: &mut [T]) -> Result<()> {
    conv.validate_buffers(x.len(), col.len())?;
    let per = conv.col_rows() * conv.col_cols();
    for (x, col) in x.chunks_mut(conv.image_len()).zip(col.chunks(per)) {
        col2im_image(conv, col, x);
    }
    Ok(())
}

/// [`col2im_image`] in the case of [`im2col_image_same`], with the loops
/// written out (no call per line): the same terms in the same order.
#[inline(always)]
fn col2im_image_same<T: Real>(conv: &Conv2d, col: &[T], x: &mut [T]) {
    let ow = conv.out_w();
    for (r, rows) in same_rows(conv).zip(col.chunks_exact(conv.col_cols())) {
        for y in r.ya..r.yb {
            let start = r.source(y);
            let terms = &rows[y * ow + r.lo..y * ow + r.hi];
            for (d, &v) in x[start..start + (r.hi - r.lo)].iter_mut().zip(terms) {
                *d = *d + v;
            }
        }
    }
}

/// The in-image index ranges of output `(y, x)`'s window.
#[inline(always)]
fn window(p: &Pool2d, o: usize, size: usize) -> (usize, usize) {
    let start = (o * p.stride).saturating_sub(p.padding);
    let end = (o * p.stride + p.kernel)
        .saturating_sub(p.padding)
        .min(size);
    (start, end)
}

/// Pooling of one `height × width` plane into one `out_h × out_w` plane.
/// Max: the first maximal element in row-major order (a NaN is never
/// chosen unless the window is all NaN, then the first). Avg: the window's
/// in-image sum, in row-major order, divided by `kernel²`.
#[inline(always)]
pub fn pool_forward_plane<T: Real>(p: &Pool2d, x: &[T], y: &mut [T]) {
    let (oh, ow) = (p.out_h(), p.out_w());
    if unpadded_max(p) {
        max_pieces(p, x, |o, n, top, _| y[o..o + n].copy_from_slice(top));
        return;
    }
    let div = T::from_f64((p.kernel * p.kernel) as f64);
    for oy in 0..oh {
        let (y0, y1) = window(p, oy, p.height);
        for ox in 0..ow {
            let (x0, x1) = window(p, ox, p.width);
            y[oy * ow + ox] = match p.kind {
                PoolKind::Max => x[argmax(p, x, (y0, y1), (x0, x1))],
                PoolKind::Avg => {
                    let mut s = T::zero();
                    for r in y0..y1 {
                        for c in x0..x1 {
                            s = s + x[r * p.width + c];
                        }
                    }
                    s / div
                }
            };
        }
    }
}

/// Whether `v` replaces `top` as a window's maximum: strictly greater (so
/// the first of equal elements stays), or a number after NaNs. The callers
/// select on it rather than branch: which element wins follows the data,
/// which a branch predictor cannot guess.
#[inline(always)]
fn wins<T: Real>(v: T, top: T) -> bool {
    (v > top) | (top.is_nan() & !v.is_nan())
}

/// Whether `p` takes the path of [`max_pieces`]: max pooling without
/// padding, with window offsets that fit in 32 bits.
#[inline(always)]
fn unpadded_max(p: &Pool2d) -> bool {
    p.kind == PoolKind::Max
        && p.padding == 0
        && u32::try_from(p.kernel.saturating_mul(p.width)).is_ok()
}

/// Outputs whose windows [`max_piece`] scans together.
const PIECE: usize = 16;

/// Max pooling of up to `PIECE` neighbouring outputs of one output row in
/// a plane whose windows lie inside it (no padding), window `j`'s first
/// element at `corner + j · stride`: `top[j]` ← the window's maximum and
/// `at[j]` ← its offset from the window's first element (`r · width + c`).
/// The windows are scanned together, one window element at a time in
/// row-major window order, so that the comparisons run across the outputs
/// in fixed-length vectors while each window sees its elements in the order
/// of [`argmax`], with the same result. Lanes past the row's last output
/// hold whatever lies beyond it and are not meant to be read.
#[inline(always)]
fn max_piece<T: Real>(
    p: &Pool2d,
    x: &[T],
    corner: usize,
    top: &mut [T; PIECE],
    at: &mut [u32; PIECE],
) {
    let (s, w) = (p.stride, p.width);
    let mut v = [T::zero(); PIECE];
    for r in 0..p.kernel {
        for c in 0..p.kernel {
            let off = r * w + c;
            // Lanes past the plane's end keep stale values (never read).
            for (v, &e) in v.iter_mut().zip(x[corner + off..].iter().step_by(s)) {
                *v = e;
            }
            if off == 0 {
                *top = v;
                *at = [0; PIECE];
                continue;
            }
            for ((t, a), &v) in top.iter_mut().zip(at.iter_mut()).zip(&v) {
                let take = wins(v, *t);
                *t = if take { v } else { *t };
                *a = if take { off as u32 } else { *a };
            }
        }
    }
}

/// Runs `f(first_output, n, top, at)` for the pieces of every output row
/// of an unpadded max pooling (see [`max_piece`]), in output order.
#[inline(always)]
fn max_pieces<T: Real>(p: &Pool2d, x: &[T], mut f: impl FnMut(usize, usize, &[T], &[u32])) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let (mut top, mut at) = ([T::zero(); PIECE], [0u32; PIECE]);
    for oy in 0..oh {
        for ox in (0..ow).step_by(PIECE) {
            let n = PIECE.min(ow - ox);
            let corner = oy * p.stride * p.width + ox * p.stride;
            max_piece(p, x, corner, &mut top, &mut at);
            f(oy * ow + ox, n, &top[..n], &at[..n]);
        }
    }
}

/// The index in the plane of the first maximal element of a window.
#[inline(always)]
fn argmax<T: Real>(
    p: &Pool2d,
    x: &[T],
    (y0, y1): (usize, usize),
    (x0, x1): (usize, usize),
) -> usize {
    let mut best = y0 * p.width + x0;
    let mut top = x[best];
    for r in y0..y1 {
        let first = r * p.width + x0;
        for (i, &v) in (first..).zip(&x[first..r * p.width + x1]) {
            let take = wins(v, top);
            best = if take { i } else { best };
            top = if take { v } else { top };
        }
    }
    best
}

/// Pooling backward for one plane: `dx` (overwritten) from `dy`, windows
/// visited in row-major output order.
#[inline(always)]
pub fn pool_backward_plane<T: Real>(p: &Pool2d, x: &[T], dy: &[T], dx: &mut [T]) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let div = T::from_f64((p.kernel * p.kernel) as f64);
    dx.fill(T::zero());
    if unpadded_max(p) {
        // The maxima's offsets found a piece of a row at a time, their
        // gradients then added in output order as below.
        max_pieces(p, x, |o, n, _, at| {
            for (j, (&a, &g)) in at.iter().zip(&dy[o..o + n]).enumerate() {
                let (oy, ox) = ((o + j) / ow, (o + j) % ow);
                let i = (oy * p.width + ox) * p.stride + a as usize;
                dx[i] = dx[i] + g;
            }
        });
        return;
    }
    for oy in 0..oh {
        let (y0, y1) = window(p, oy, p.height);
        for ox in 0..ow {
            let (x0, x1) = window(p, ox, p.width);
            let g = dy[oy * ow + ox];
            match p.kind {
                PoolKind::Max => {
                    let i = argmax(p, x, (y0, y1), (x0, x1));
                    dx[i] = dx[i] + g;
                }
                PoolKind::Avg => {
                    let share = g / div;
                    for r in y0..y1 {
                        for c in x0..x1 {
                            let d = &mut dx[r * p.width + c];
                            *d = *d + share;
                        }
                    }
                }
            }
        }
    }
}

/// Pooling forward over every plane.
///
/// # Errors
/// As [`Pool2d::validate_buffers`].
pub fn pool_forward<T: Real>(p: &Pool2d, x: &[T], y: &mut [T]) -> Result<()> {
    p.validate_buffers(x.len(), y.len())?;
    for (x, y) in x
        .chunks(p.height * p.width)
        .zip(y.chunks_mut(p.out_h() * p.out_w()))
    {
        pool_forward_plane(p, x, y);
    }
    Ok(())
}

/// Pooling backward over every plane.
///
/// # Errors
/// As [`Pool2d::validate_backward`].
pub fn pool_backward<T: Real>(p: &Pool2d, x: &[T], dy: &[T], dx: &mut [T]) -> Result<()> {
    p.validate_backward(x.len(), dy.len(), dx.len())?;
    let (plane, out) = (p.height * p.width, p.out_h() * p.out_w());
    for ((x, dy), dx) in x
        .chunks(plane)
        .zip(dy.chunks(out))
        .zip(dx.chunks_mut(plane))
    {
        pool_backward_plane(p, x, dy, dx);
    }
    Ok(())
}

/// The elements of channel `c`, in order (sample, then position).
fn channel<'a, T: Copy>(bn: &BatchNorm, x: &'a [T], c: usize) -> impl Iterator<Item = T> + 'a {
    let (cs, s) = (bn.channels, bn.spatial);
    (0..bn.batch).flat_map(move |n| x[(n * cs + c) * s..(n * cs + c + 1) * s].iter().copied())
}

/// Channel `c`'s mean and biased variance, in `f64` (two passes, each
/// summed in order).
pub fn batch_norm_stats_channel<T: Real>(bn: &BatchNorm, x: &[T], c: usize) -> (f64, f64) {
    let m = (bn.batch * bn.spatial) as f64;
    let mean = channel(bn, x, c).map(Real::to_f64).sum::<f64>() / m;
    let var = channel(bn, x, c)
        .map(|v| {
            let d = wide(v) - mean;
            d * d
        })
        .sum::<f64>()
        / m;
    (mean, var)
}

/// Exact widening to `f64` (`Real::to_f64`, named apart from
/// `ToPrimitive::to_f64`).
#[inline(always)]
pub fn wide<T: Real>(v: T) -> f64 {
    Real::to_f64(v)
}

/// `1 / √(σ² + ε)` in `f64`.
#[inline(always)]
pub fn inv_std<T: Real>(var: T, eps: f64) -> f64 {
    1.0 / libm::sqrt(wide(var) + eps)
}

/// Per channel, `(μ, 1/√(σ² + ε))` in `f64`: what normalising needs.
#[cfg(feature = "alloc")]
#[must_use]
pub fn batch_norm_centres<T: Real>(
    bn: &BatchNorm,
    mean: &[T],
    var: &[T],
) -> alloc::vec::Vec<(f64, f64)> {
    let mut out = alloc::vec![(0.0, 0.0); bn.channels];
    batch_norm_centres_into(bn, mean, var, &mut out);
    out
}

/// [`batch_norm_centres`] into `out`, one entry per channel of `out`.
pub fn batch_norm_centres_into<T: Real>(
    bn: &BatchNorm,
    mean: &[T],
    var: &[T],
    out: &mut [(f64, f64)],
) {
    for ((o, &m), &v) in out.iter_mut().zip(mean).zip(var) {
        *o = (wide(m), inv_std(v, bn.eps));
    }
}

/// Per channel, the forward factors `[γ, β, μ, 1/√(σ² + ε)]` in `f64`,
/// computed once per call rather than once per sample.
#[cfg(feature = "alloc")]
#[must_use]
pub fn batch_norm_forward_coefs<T: Real>(
    bn: &BatchNorm,
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
) -> alloc::vec::Vec<[f64; 4]> {
    let mut out = alloc::vec![[0.0; 4]; bn.channels];
    batch_norm_forward_coefs_into(bn, [gamma, beta, mean, var], &mut out);
    out
}

/// [`batch_norm_forward_coefs`] of `[γ, β, μ, σ²]` into `out`, one entry
/// per channel of `out`.
pub fn batch_norm_forward_coefs_into<T: Real>(
    bn: &BatchNorm,
    [gamma, beta, mean, var]: [&[T]; 4],
    out: &mut [[f64; 4]],
) {
    for (c, o) in out.iter_mut().enumerate() {
        *o = [
            wide(gamma[c]),
            wide(beta[c]),
            wide(mean[c]),
            inv_std(var[c], bn.eps),
        ];
    }
}

/// Forward normalisation of one sample (`channels · spatial` elements):
/// per element, in `f64`, `γ · (x − μ) · inv_std + β`, rounded once, with
/// the factors of [`batch_norm_forward_coefs`].
#[inline(always)]
pub fn batch_norm_forward_sample<T: Real>(
    bn: &BatchNorm,
    x: &[T],
    coefs: &[[f64; 4]],
    y: &mut [T],
) {
    if bn.spatial == 1 {
        // One element per channel: the same arithmetic as below, in one
        // loop over the channels that the compiler can vectorise.
        for ((y, &x), &[g, b, mu, inv]) in y.iter_mut().zip(x).zip(coefs) {
            *y = T::from_f64(g * ((wide(x) - mu) * inv) + b);
        }
        return;
    }
    for ((y, x), &[g, b, mu, inv]) in y
        .chunks_mut(bn.spatial)
        .zip(x.chunks(bn.spatial))
        .zip(coefs)
    {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = T::from_f64(g * ((wide(x) - mu) * inv) + b);
        }
    }
}

/// Channel `c`'s `(dγ, dβ) = (Σ dy · x̂, Σ dy)` in `f64`, summed in order;
/// `centre` is the channel's entry of [`batch_norm_centres`].
pub fn batch_norm_grads_channel<T: Real>(
    bn: &BatchNorm,
    x: &[T],
    dy: &[T],
    (mu, inv): (f64, f64),
    c: usize,
) -> (f64, f64) {
    let (mut dg, mut db) = (0.0, 0.0);
    for (x, dy) in channel(bn, x, c).zip(channel(bn, dy, c)) {
        let dy = wide(dy);
        dg += dy * ((wide(x) - mu) * inv);
        db += dy;
    }
    (dg, db)
}

/// Per channel, the backward factors `[μ, inv_std, γ · inv_std / M, dβ,
/// dγ]` in `f64` (`M = batch · spatial`; `dgamma`, `dbeta` the `f64` sums
/// of [`batch_norm_grads_channel`]).
#[cfg(feature = "alloc")]
#[must_use]
pub fn batch_norm_backward_coefs<T: Real>(
    bn: &BatchNorm,
    gamma: &[T],
    centres: &[(f64, f64)],
    dgamma: &[f64],
    dbeta: &[f64],
) -> alloc::vec::Vec<[f64; 5]> {
    let mut out = alloc::vec![[0.0; 5]; centres.len()];
    batch_norm_backward_coefs_into(bn, gamma, centres, [dgamma, dbeta], &mut out);
    out
}

/// [`batch_norm_backward_coefs`] from `[dγ, dβ]` into `out`, one entry per
/// channel of `out`.
pub fn batch_norm_backward_coefs_into<T: Real>(
    bn: &BatchNorm,
    gamma: &[T],
    centres: &[(f64, f64)],
    [dgamma, dbeta]: [&[f64]; 2],
    out: &mut [[f64; 5]],
) {
    let m = (bn.batch * bn.spatial) as f64;
    for (c, (o, &(mu, inv))) in out.iter_mut().zip(centres).enumerate() {
        *o = [mu, inv, wide(gamma[c]) * inv / m, dbeta[c], dgamma[c]];
    }
}

/// Backward of one sample: per element, in `f64`,
/// `γ · inv_std / M · (M · dy − dβ − x̂ · dγ)`, rounded once, with the
/// factors of [`batch_norm_backward_coefs`].
#[inline(always)]
pub fn batch_norm_backward_sample<T: Real>(
    bn: &BatchNorm,
    x: &[T],
    dy: &[T],
    coefs: &[[f64; 5]],
    dx: &mut [T],
) {
    let m = (bn.batch * bn.spatial) as f64;
    if bn.spatial == 1 {
        // As for the forward pass: one loop over the channels.
        for (((dx, &x), &dy), &[mu, inv, k, db, dg]) in dx.iter_mut().zip(x).zip(dy).zip(coefs) {
            let xhat = (wide(x) - mu) * inv;
            *dx = T::from_f64(k * (m * wide(dy) - db - xhat * dg));
        }
        return;
    }
    for (((dx, x), dy), &[mu, inv, k, db, dg]) in dx
        .chunks_mut(bn.spatial)
        .zip(x.chunks(bn.spatial))
        .zip(dy.chunks(bn.spatial))
        .zip(coefs)
    {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            let xhat = (wide(x) - mu) * inv;
            *dx = T::from_f64(k * (m * wide(dy) - db - xhat * dg));
        }
    }
}

/// Validates a softmax cross-entropy call.
///
/// # Errors
/// As [`crate::tensor::LossOps::softmax_cross_entropy`].
pub fn check_softmax_cross_entropy(
    classes: usize,
    logits: usize,
    labels: &[u32],
    dlogits: usize,
) -> Result<()> {
    if classes == 0 {
        return Err(Error::InvalidSetting {
            name: "classes",
            value: 0.0,
            expected: "at least 1",
        });
    }
    if labels.is_empty() {
        return Err(Error::InvalidSetting {
            name: "softmax cross-entropy rows",
            value: 0.0,
            expected: "at least 1 label",
        });
    }
    let n = labels
        .len()
        .checked_mul(classes)
        .ok_or(Error::InvalidSetting {
            name: "softmax cross-entropy size",
            value: f64::INFINITY,
            expected: "labels · classes that fits in usize",
        })?;
    check_len("logits (labels · classes)", n, logits)?;
    check_len("dlogits (labels · classes)", n, dlogits)?;
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::InvalidSetting {
            name: "label",
            value: f64::from(l),
            expected: "less than the number of classes",
        });
    }
    Ok(())
}

/// One row: writes `(p − onehot) / rows` into `d` and returns `−ln p_label`,
/// in `f64` (the label must be in range).
pub fn softmax_cross_entropy_row<T: Real>(z: &[T], label: usize, rows: usize, d: &mut [T]) -> f64 {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, v| m.max(wide(*v)));
    let sum: f64 = z.iter().map(|v| libm::exp(wide(*v) - max)).sum();
    let log_sum = libm::log(sum);
    let n = rows as f64;
    for (j, (d, v)) in d.iter_mut().zip(z).enumerate() {
        let p = libm::exp(wide(*v) - max - log_sum);
        let t = if j == label { 1.0 } else { 0.0 };
        *d = T::from_f64((p - t) / n);
    }
    log_sum - (wide(z[label]) - max)
}

/// The mean softmax cross-entropy and its gradient (rows in order).
///
/// # Errors
/// As [`crate::tensor::LossOps::softmax_cross_entropy`].
pub fn softmax_cross_entropy<T: Real>(
    classes: usize,
    logits: &[T],
    labels: &[u32],
    dlogits: &mut [T],
) -> Result<f64> {
    check_softmax_cross_entropy(classes, logits.len(), labels, dlogits.len())?;
    let rows = labels.len();
    let mut total = 0.0;
    for ((z, d), &l) in logits
        .chunks(classes)
        .zip(dlogits.chunks_mut(classes))
        .zip(labels)
    {
        total += softmax_cross_entropy_row(z, l as usize, rows, d);
    }
    Ok(total / rows as f64)
}

/// Validates `x` against a bias of `channels` and `inner`.
///
/// # Errors
/// As [`crate::tensor::MapOps::add_bias`].
pub fn check_bias(channels: usize, inner: usize, len: usize) -> Result<()> {
    if channels == 0 || inner == 0 {
        return Err(Error::InvalidSetting {
            name: if inner == 0 {
                "bias inner"
            } else {
                "bias length"
            },
            value: 0.0,
            expected: "at least 1",
        });
    }
    let block = channels.saturating_mul(inner);
    if !len.is_multiple_of(block) {
        return Err(Error::LengthMismatch {
            what: "biased tensor (a multiple of bias · inner)",
            expected: (len / block + 1) * block,
            actual: len,
        });
    }
    Ok(())
}

/// `x += bias` for one `channels × inner` block.
#[inline(always)]
pub fn add_bias_block<T: Real>(bias: &[T], inner: usize, x: &mut [T]) {
    for (x, &b) in x.chunks_mut(inner).zip(bias) {
        for x in x {
            *x = *x + b;
        }
    }
}

/// `Σ_{o, i} dy[o, c, i]` in `f64`, in order.
pub fn bias_grad_channel<T: Real>(dy: &[T], channels: usize, inner: usize, c: usize) -> f64 {
    dy.chunks(channels * inner)
        .flat_map(|o| o[c * inner..(c + 1) * inner].iter())
        .map(|&v| wide(v))
        .sum()
}

/// `y ← max(x, 0)` (NaN stays NaN).
#[inline(always)]
pub fn relu<T: Real>(x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if x < T::zero() { T::zero() } else { x };
    }
}

/// `dx ← dy` where `x > 0`, else 0.
#[inline(always)]
pub fn relu_backward<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
    for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *dx = if x > T::zero() { dy } else { T::zero() };
    }
}

/// `x ← α · x`.
#[inline(always)]
pub fn scale<T: Real>(alpha: T, x: &mut [T]) {
    for x in x {
        *x = alpha * *x;
    }
}

/// `y ← y + x`.
#[inline(always)]
pub fn add<T: Real>(x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + x;
    }
}

/// `y ← y ⊙ x`.
#[inline(always)]
pub fn mul<T: Real>(x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y * x;
    }
}

#[cfg(feature = "alloc")]
mod backend {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::backend::Reference;
    use crate::tensor::{
        BatchNormBackwardPass, BatchNormForwardPass, BatchNormOps, BatchNormStats,
        BatchNormStatsPass, ConvOps, CrossEntropy, LossOps, MapOps, MatmulOps, Operands, PoolOps,
    };

    impl<T: Real> MatmulOps for Reference<T> {
        fn gemm(&self, req: Operands<'_, Gemm, Vec<T>>) -> Result<()> {
            gemm(&req.spec, req.a, req.b, req.out)
        }
        fn gemm_strided(&self, req: BatchedGemm<'_, Vec<T>>) -> Result<()> {
            gemm_strided(req.slices())
        }
        fn gemm_summed(&self, req: BatchedGemm<'_, Vec<T>>) -> Result<()> {
            gemm_summed(req.slices())
        }
    }

    impl<T: Real> ConvOps for Reference<T> {
        fn im2col(&self, conv: &Conv2d, x: &Vec<T>, col: &mut Vec<T>) -> Result<()> {
            im2col(conv, x, col)
        }
        fn col2im(&self, conv: &Conv2d, col: &Vec<T>, x: &mut Vec<T>) -> Result<()> {
            col2im(conv, col, x)
        }
    }

    impl<T: Real> PoolOps for Reference<T> {
        fn pool_forward(&self, p: &Pool2d, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
            pool_forward(p, x, y)
        }
        fn pool_backward(&self, req: Operands<'_, Pool2d, Vec<T>>) -> Result<()> {
            pool_backward(&req.spec, req.a, req.b, req.out)
        }
    }

    impl<T: Real> BatchNormOps for Reference<T> {
        fn batch_norm_stats(&self, pass: BatchNormStatsPass<'_, Vec<T>>) -> Result<()> {
            pass.validate(Vec::len)?;
            let (bn, x) = (&pass.bn, pass.x);
            for c in 0..bn.channels {
                let (m, v) = batch_norm_stats_channel(bn, x, c);
                pass.mean[c] = T::from_f64(m);
                pass.var[c] = T::from_f64(v);
            }
            Ok(())
        }

        fn batch_norm_forward(&self, pass: BatchNormForwardPass<'_, Vec<T>>) -> Result<()> {
            pass.validate(Vec::len)?;
            let (bn, BatchNormStats { mean, var }) = (&pass.bn, pass.stats);
            let per = bn.channels * bn.spatial;
            let coefs = batch_norm_forward_coefs(bn, pass.gamma, pass.beta, mean, var);
            for (x, y) in pass.x.chunks(per).zip(pass.y.chunks_mut(per)) {
                batch_norm_forward_sample(bn, x, &coefs, y);
            }
            Ok(())
        }

        fn batch_norm_backward(&self, pass: BatchNormBackwardPass<'_, Vec<T>>) -> Result<()> {
            pass.validate(Vec::len)?;
            let (bn, BatchNormStats { mean, var }) = (&pass.bn, pass.stats);
            let (x, dy, grads) = (pass.x, pass.dy, pass.grads);
            let centres = batch_norm_centres(bn, mean, var);
            let (mut dg, mut db) = (vec![0.0; bn.channels], vec![0.0; bn.channels]);
            for c in 0..bn.channels {
                (dg[c], db[c]) = batch_norm_grads_channel(bn, x, dy, centres[c], c);
                grads.dgamma[c] = T::from_f64(dg[c]);
                grads.dbeta[c] = T::from_f64(db[c]);
            }
            let coefs = batch_norm_backward_coefs(bn, pass.gamma, &centres, &dg, &db);
            let per = bn.channels * bn.spatial;
            let samples = x.chunks(per).zip(dy.chunks(per));
            for ((x, dy), dx) in samples.zip(grads.dx.chunks_mut(per)) {
                batch_norm_backward_sample(bn, x, dy, &coefs, dx);
            }
            Ok(())
        }
    }

    impl<T: Real> LossOps for Reference<T> {
        fn softmax_cross_entropy(&self, req: CrossEntropy<'_, Vec<T>>) -> Result<f64> {
            softmax_cross_entropy(req.classes, req.logits, req.labels, req.dlogits)
        }
    }

    impl<T: Real> MapOps for Reference<T> {
        fn relu(&self, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
            check_len("relu output", x.len(), y.len())?;
            relu(x, y);
            Ok(())
        }
        fn relu_backward(&self, x: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) -> Result<()> {
            check_len("relu gradient", x.len(), dy.len())?;
            check_len("relu input gradient", x.len(), dx.len())?;
            relu_backward(x, dy, dx);
            Ok(())
        }
        fn scale(&self, alpha: T, x: &mut Vec<T>) -> Result<()> {
            scale(alpha, x);
            Ok(())
        }
        fn add(&self, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
            check_len("add operands", y.len(), x.len())?;
            add(x, y);
            Ok(())
        }
        fn mul(&self, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
            check_len("mul operands", y.len(), x.len())?;
            mul(x, y);
            Ok(())
        }
        fn fill(&self, value: T, x: &mut Vec<T>) -> Result<()> {
            x.fill(value);
            Ok(())
        }
        fn add_bias(&self, bias: &Vec<T>, inner: usize, x: &mut Vec<T>) -> Result<()> {
            check_bias(bias.len(), inner, x.len())?;
            for x in x.chunks_mut(bias.len() * inner) {
                add_bias_block(bias, inner, x);
            }
            Ok(())
        }
        fn bias_grad(&self, dy: &Vec<T>, inner: usize, db: &mut Vec<T>) -> Result<()> {
            check_bias(db.len(), inner, dy.len())?;
            let channels = db.len();
            for (c, d) in db.iter_mut().enumerate() {
                *d = T::from_f64(bias_grad_channel(dy, channels, inner, c));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-piece im2col and the written-out col2im of "same" rows give
    /// the bits of the line-by-line forms: square and rectangular kernels,
    /// outputs taller than the input, one and three channels.
    #[test]
    fn same_width_columns_equal_the_line_by_line_ones() {
        // (channels, height, width, kernel_h, kernel_w, padding)
        for (ch, h, w, kh, kw, pad) in [
            (1, 4, 4, 1, 1, 0),
            (3, 8, 8, 3, 3, 1),
            (2, 7, 5, 5, 5, 2),
            (3, 6, 9, 3, 5, 2),
            (1, 2, 3, 5, 3, 1),
        ] {
            let conv = Conv2d {
                batch: 1,
                channels: ch,
                height: h,
                width: w,
                kernel_h: kh,
                kernel_w: kw,
                stride: 1,
                padding: pad,
            };
            assert_eq!(conv.out_w(), w, "{conv:?} is not a same-width case");
            let len = conv.col_rows() * conv.col_cols();
            let x: Vec<f32> = (0..ch * h * w).map(|i| i as f32 * 0.25 - 3.0).collect();
            let (mut fast, mut lines) = (vec![7f32; len], vec![-7f32; len]);
            im2col_image_same(&conv, &x, &mut fast);
            im2col_image_lines(&conv, &x, &mut lines);
            assert_eq!(fast, lines, "im2col {conv:?}");

            let col: Vec<f32> = (0..len).map(|i| 1.0 / (1.0 + i as f32)).collect();
            let (mut fast, mut lines) = (x.clone(), x.clone());
            col2im_image_same(&conv, &col, &mut fast);
            col2im_image_lines(&conv, &col, &mut lines);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&lines), "col2im {conv:?}");
        }
    }

    /// The unpadded max pool (a piece of outputs scanned together) gives
    /// the bits of a plain scan of each window with [`argmax`]: ties to the
    /// first, signed zeros, NaNs, output rows longer than one piece.
    #[test]
    fn unpadded_max_pool_equals_the_window_scan() {
        let values = [-1.0f32, -0.0, 0.0, 1.0, f32::NAN, 2.0, 1.0];
        // (height, width, kernel, stride); 40 wide with stride 1: 38 outputs a row.
        for (h, w, k, s) in [
            (7, 7, 3, 2),
            (15, 15, 3, 2),
            (6, 40, 3, 1),
            (5, 9, 2, 3),
            (4, 4, 4, 1),
        ] {
            let p = Pool2d {
                batch: 1,
                channels: 1,
                height: h,
                width: w,
                kernel: k,
                stride: s,
                padding: 0,
                kind: PoolKind::Max,
            };
            for seed in 0..5usize {
                // Mostly NaN for seed 4, so that whole windows are NaN.
                let x: Vec<f32> = (0..h * w)
                    .map(|i| {
                        let j = (i * 7 + seed * 3 + (i * i) % 5) % values.len();
                        if seed == 4 && i % 6 != 0 {
                            f32::NAN
                        } else {
                            values[j]
                        }
                    })
                    .collect();
                let (oh, ow) = (p.out_h(), p.out_w());
                let dy: Vec<f32> = (0..oh * ow).map(|i| 1.0 + i as f32).collect();
                let (mut y_want, mut dx_want) = (vec![0f32; oh * ow], vec![0f32; h * w]);
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (y0, y1) = window(&p, oy, h);
                        let (x0, x1) = window(&p, ox, w);
                        let i = argmax(&p, &x, (y0, y1), (x0, x1));
                        y_want[oy * ow + ox] = x[i];
                        dx_want[i] += dy[oy * ow + ox];
                    }
                }
                let (mut y, mut dx) = (vec![9f32; oh * ow], vec![9f32; h * w]);
                pool_forward_plane(&p, &x, &mut y);
                pool_backward_plane(&p, &x, &dy, &mut dx);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&y), bits(&y_want), "forward {p:?}, seed {seed}");
                assert_eq!(bits(&dx), bits(&dx_want), "backward {p:?}, seed {seed}");
            }
        }
    }
}
