//! The tensor operations of [`smoothout::tensor`] on [`Cpu`].
//!
//! GEMM goes through `matrixmultiply` (the crate `ndarray` uses; it measured
//! 1.4–1.7 times faster than the `gemm` crate on this project's shapes, see
//! `benches/gemm.rs`), with `C` split into one block of rows per thread
//! (multiples of [`GEMM_ROWS`]), one single-threaded call per block; each
//! element's sum runs over `k` in the same order whatever the split. The
//! batched forms are loops of that GEMM on the matrices' elements: the
//! strided one runs its products in parallel (their outputs are disjoint),
//! the summed one in order, as the reference does. In `f32` on AVX-512 the
//! products of the dense layers and of the convolutions skip
//! `matrixmultiply`: [`crate::direct_gemm`] sums them in the same order,
//! packing nothing but a dense layer's transposed operand, into memory the
//! backend keeps, and [`crate::input_grad`] folds a convolution's input
//! gradient into `dx` without writing its columns. BatchNorm's per-channel
//! sums over convolution outputs run sixteen channels side by side there
//! ([`crate::channel_sums`]). Everything else calls the
//! [`smoothout::tensor::reference`] kernels on fixed ranges — images,
//! planes, channels, rows, or chunks of elements — so the bits do not
//! depend on the number of threads, and all but GEMM equal the
//! reference's.

use core::any::TypeId;

use ndarray::ArrayD;
use rayon::prelude::*;
use smoothout::tensor::check_len;
use smoothout::tensor::reference as r;
use smoothout::tensor::{
    BatchNormBackwardPass, BatchNormForwardPass, BatchNormGrads, BatchNormOps, BatchNormStats,
    BatchNormStatsPass, BatchedGemm, Conv2d, ConvOps, ConvPass, CrossEntropy, Gemm, GemmBatch,
    LossOps, MapOps, MatmulOps, Operands, Pool2d, PoolOps,
};
use smoothout::{Real, Result};

use crate::isa::{kernels, Isa};
use crate::same::Same;
use crate::spare::ChannelWork;
use crate::{slice, slice_mut, Cpu};
use r::wide;

/// The granularity of the row blocks `C` is split into, one per thread (the
/// bits do not depend on the split: see `gemm`).
pub const GEMM_ROWS: usize = 64;

/// The width of the packed `op(b) = bᵀ` of [`crate::direct_gemm::gemm_bt`].
#[cfg(target_arch = "x86_64")]
const PACKED: usize = crate::direct_gemm::GROUP;
#[cfg(not(target_arch = "x86_64"))]
const PACKED: usize = 0;

/// `x` as `f32`s.
///
/// # Panics
/// If `T` is not `f32` (callers check first).
fn as_f32<T: Real>(x: &[T]) -> &[f32] {
    assert!(TypeId::of::<T>() == TypeId::of::<f32>());
    // SAFETY: T is f32 (asserted), so the memory holds f32s.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// [`as_f32`] for a mutable slice.
fn as_f32_mut<T: Real>(x: &mut [T]) -> &mut [f32] {
    assert!(TypeId::of::<T>() == TypeId::of::<f32>());
    // SAFETY: as in `as_f32`.
    unsafe { core::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

/// `dyt = dyᵀ` for `dy` of `filters × pixels` `f32`s, in AVX-512.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn avx512_transpose<T: Real>(dy: &[T], filters: usize, pixels: usize, dyt: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: called only where `Cpu::avx512_f32` holds (AVX-512 present, `T`
    // is `f32`); the lengths are checked inside.
    unsafe {
        crate::transpose::transpose(as_f32(dy), (filters, pixels, pixels), as_f32_mut(dyt));
    }
}

/// `dst ← srcᵀ` for `src` of `rows × cols` (a weight gradient and its
/// transposed sum).
fn transpose_plain<T: Copy>(src: &[T], (rows, cols): (usize, usize), dst: &mut [T]) {
    for (e, d) in dst[..rows * cols].iter_mut().enumerate() {
        *d = src[(e % rows) * cols + e / rows];
    }
}

/// Rows `first ..` of one thread's block `dwt` of a convolution's
/// transposed weight gradient, summed over the batch image by image: each
/// image's input channels that the rows read are unfolded into `col` (a
/// padded copy of them for a [`Same`] geometry, im2col's rows otherwise,
/// at their place in the whole image's columns), and multiplied with the
/// image's `dyᵀ` (`dyt`, the batch's, one image after another).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn avx512_weight_grad_rows<T: Real>(
    isa: Isa,
    (conv, filters): (&Conv2d, usize),
    first: usize,
    (x, dyt): (&[T], &[T]),
    (dwt, col): (&mut [T], &mut [T]),
) {
    let (rows, pixels) = (dwt.len() / filters, conv.col_cols());
    let (kernel, plane) = (conv.kernel_h * conv.kernel_w, conv.height * conv.width);
    let channels = first / kernel..(first + rows).div_ceil(kernel);
    let part = Conv2d {
        channels: channels.len(),
        ..*conv
    };
    let same = Same::of(conv);
    let at = same.map_or(channels.start * kernel * pixels, |same| {
        channels.start * same.padded_plane()
    });
    let images = x.chunks(conv.image_len()).zip(dyt.chunks(filters * pixels));
    for (x, dyt) in images {
        let x = &x[channels.start * plane..channels.end * plane];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: called only where `Cpu::avx512_f32` holds (the ISA is
        // AVX-512, `T` is `f32`); the kernels check the lengths.
        unsafe {
            let (x, col, dyt, dwt) = (
                as_f32(x),
                as_f32_mut(col),
                (as_f32(dyt), filters),
                as_f32_mut(dwt),
            );
            if let Some(same) = same {
                let part = Same {
                    channels: channels.len(),
                    ..same
                };
                crate::direct_gemm::pad_image(part, x, &mut col[at..]);
                crate::direct_gemm::weight_grad_same(same, col, first, dyt, dwt);
            } else {
                kernels::im2col_image(isa, &part, x, &mut col[at..]);
                let left = (&col[first * pixels..], pixels, 1);
                crate::direct_gemm::gemm((rows, filters, pixels), left, dyt, (dwt, filters), true);
            }
        }
    }
}

/// Row and column strides of a stored matrix read as `op(x)`.
fn strides(trans: bool, rows: usize, cols: usize) -> (isize, isize) {
    // op(x) is rows × cols; x is stored cols × rows when transposed.
    if trans {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// One block of rows `first..first + rows` of `C` by
/// [`crate::direct_gemm::gemm`] (see [`Cpu::dense_direct`]), in `packed`'s
/// memory ([`packed_len`] elements) a transposed operand as stored rows
/// first: the block's rows of `op(a) = aᵀ`, or `op(b) = bᵀ` a group of
/// columns at a time ([`crate::direct_gemm::gemm_bt`]). The kernels then
/// read row-major operands: broadcasts from a few rows and vectors from
/// one, where `aᵀ` in place would be read across as many rows as there are
/// elements in a block of the sum (at batch 4096 that was slower than
/// `matrixmultiply`).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn direct_block<T: Real>(
    g: &Gemm,
    first: usize,
    [a, b]: [&[T]; 2],
    c: &mut [T],
    (packed, bias): (&mut [T], Option<&[T]>),
) {
    if !g.trans_a && !g.trans_b {
        return direct_in_place(g, first, [a, b], c);
    }
    let rows = c.len() / g.n;
    let (rsa, csa) = strides(g.trans_a, g.m, g.k);
    let (rsa, csa) = (rsa.unsigned_abs(), csa.unsigned_abs());
    #[cfg(target_arch = "x86_64")]
    {
        let (shape, add) = ((rows, g.n, g.k), g.beta == 1.0);
        let (a, b, c) = (as_f32(a), as_f32(b), (as_f32_mut(c), g.n));
        let packed = as_f32_mut(packed);
        // SAFETY: `dense_direct` checked the ISA and that `T` is `f32`;
        // the kernels check the lengths.
        unsafe {
            if g.trans_b {
                let a = (&a[first * rsa..], rsa, csa);
                let bias = bias.map(as_f32);
                crate::direct_gemm::gemm_bt(shape, a, b, c, (add, packed, bias));
            } else {
                // `aᵀ`'s rows `first ..` are `a`'s columns.
                crate::transpose::transpose(&a[first..], (g.k, rows, g.m), packed);
                crate::direct_gemm::gemm(shape, (packed, g.k, 1), (b, g.n), c, add);
            }
        }
    }
}

/// Rows `first..first + rows` of `C` by [`crate::direct_gemm::gemm`],
/// `op(a)` read in place at its strides and `op(b) = b` as stored (see
/// [`Cpu::direct`]).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn direct_in_place<T: Real>(g: &Gemm, first: usize, [a, b]: [&[T]; 2], c: &mut [T]) {
    let (rsa, csa) = strides(g.trans_a, g.m, g.k);
    let (rsa, csa) = (rsa.unsigned_abs(), csa.unsigned_abs());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the callers checked the ISA and that `T` is `f32`; the
    // kernel checks the lengths.
    unsafe {
        crate::direct_gemm::gemm(
            (c.len() / g.n, g.n, g.k),
            (&as_f32(a)[first * rsa..], rsa, csa),
            (as_f32(b), g.n),
            (as_f32_mut(c), g.n),
            g.beta == 1.0,
        );
    }
}

/// The memory [`direct_block`] packs a transposed operand into, for a block
/// of up to `rows` rows: memory of the backend's own, kept between calls.
fn packed_len(g: &Gemm, rows: usize) -> usize {
    if g.trans_b {
        g.k * PACKED
    } else if g.trans_a {
        rows * g.k
    } else {
        0
    }
}

/// One block of rows `first..first + rows` of `C`, through
/// `matrixmultiply` for `f32`/`f64` (the reference loop for any other
/// `Real`).
fn gemm_block<T: Real>(g: &Gemm, first: usize, a: &[T], b: &[T], c: &mut [T]) {
    let rows = c.len() / g.n;
    let (rsa, csa) = strides(g.trans_a, g.m, g.k);
    let (rsb, csb) = strides(g.trans_b, g.k, g.n);
    let a_off = if g.trans_a { first } else { first * g.k };
    let (pa, pb, pc) = (a[a_off..].as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let n = g.n as isize;
    // The one call, for either float type: `$gemm` is matrixmultiply's
    // `sgemm` or `dgemm`, `$t` its element type (α and β rounded to it).
    macro_rules! block_gemm {
        ($gemm:path, $t:ty) => {
            // SAFETY: T is $t (the TypeId test below), so the pointers are to
            // $t. `op(a)` rows first..first + rows, `op(b)` and this block of
            // `C` lie inside their slices (lengths checked by
            // `Gemm::validate`, block sizes by the caller's split).
            unsafe {
                $gemm(
                    rows,
                    g.k,
                    g.n,
                    g.alpha as $t,
                    pa.cast(),
                    rsa,
                    csa,
                    pb.cast(),
                    rsb,
                    csb,
                    g.beta as $t,
                    pc.cast(),
                    n,
                    1,
                )
            }
        };
    }
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        block_gemm!(matrixmultiply::sgemm, f32);
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        block_gemm!(matrixmultiply::dgemm, f64);
    } else {
        // Not reachable with the crate's `Real` types; kept correct anyway.
        for i in 0..rows {
            for j in 0..g.n {
                let mut acc = T::zero();
                for p in 0..g.k {
                    let x = a[(first + i) * rsa as usize + p * csa as usize];
                    let y = b[p * rsb as usize + j * csb as usize];
                    acc = acc + x * y;
                }
                let o = &mut c[i * g.n + j];
                *o = if g.beta == 0.0 {
                    T::from_f64(g.alpha) * acc
                } else {
                    T::from_f64(g.alpha) * acc + T::from_f64(g.beta) * *o
                };
            }
        }
    }
}

impl<T: Real> Cpu<T> {
    /// [`MatmulOps::gemm`] on slices.
    fn gemm_slices(&self, g: &Gemm, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        self.gemm_with_bias(g, [a, b], c, None)
    }

    /// [`Cpu::gemm_slices`], and with `bias` (only where
    /// [`Cpu::fuses_bias`]) [`MatmulOps::gemm_bias`]'s bias added as the
    /// direct kernel stores each element.
    fn gemm_with_bias(
        &self,
        g: &Gemm,
        [a, b]: [&[T]; 2],
        c: &mut [T],
        bias: Option<&[T]>,
    ) -> Result<()> {
        g.validate(a.len(), b.len(), c.len())?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        if g.k == 0 {
            // An empty sum: the reference's `α · 0 (+ β · c)`, without
            // offsetting into an empty `a`.
            let (alpha, beta) = (T::from_f64(g.alpha), T::from_f64(g.beta));
            for c in c.iter_mut() {
                *c = if g.beta == 0.0 {
                    alpha * T::zero()
                } else {
                    alpha * T::zero() + beta * *c
                };
            }
            return Ok(());
        }
        // One block per thread, in whole multiples of GEMM_ROWS: each
        // matrixmultiply call packs `op(b)` once, so fewer calls pack less.
        // Row blocks do not change any element's sum (both kernels sum over
        // k in the same blocks whatever the rows), so the bits do not
        // depend on the split.
        let rows =
            g.m.div_ceil(self.threads().max(1))
                .div_ceil(GEMM_ROWS)
                .max(1)
                * GEMM_ROWS;
        if !self.dense_direct(g) {
            self.pool.install(|| {
                c.par_chunks_mut(rows * g.n)
                    .enumerate()
                    .for_each(|(i, c)| gemm_block(g, i * rows, a, b, c));
            });
            return Ok(());
        }
        // One buffer for every block's packed operand, taken before the
        // blocks run (one unused element per block where none is packed):
        // how the blocks fall on the threads does not change what is taken,
        // so a steady loop takes the same buffers back every time.
        let per = packed_len(g, rows).max(1);
        let mut packed = self.scratch(per * g.m.div_ceil(rows));
        let done = slice_mut(&mut packed).map(|packed| {
            self.pool.install(|| {
                c.par_chunks_mut(rows * g.n)
                    .zip(packed.par_chunks_mut(per))
                    .enumerate()
                    .for_each(|(i, (c, p))| direct_block(g, i * rows, [a, b], c, (p, bias)));
            });
        });
        self.spare.put(packed);
        done
    }

    /// A validated batch's [`GemmBatch::products`](smoothout::tensor::GemmBatch::products), one after the other.
    fn gemm_products(&self, req: BatchedGemm<'_, [T]>, summed: bool) -> Result<()> {
        let (g, batch) = req.spec;
        for (gi, [ra, rb, rc]) in batch.products(&g, summed) {
            self.gemm_slices(&gi, &req.a[ra], &req.b[rb], &mut req.out[rc])?;
        }
        Ok(())
    }
}

/// A request on arrays as one on their elements.
///
/// # Errors
/// As [`slice`], for an array that is not contiguous.
fn on_slices<S, T>(req: Operands<'_, S, ArrayD<T>>) -> Result<Operands<'_, S, [T]>> {
    let (a, b, c) = (slice(req.a)?, slice(req.b)?, slice_mut(req.out)?);
    Ok(Operands::new(req.spec, a, b, c))
}

impl<T: Real> MatmulOps for Cpu<T> {
    fn gemm(&self, req: Operands<'_, Gemm, ArrayD<T>>) -> Result<()> {
        self.gemm_slices(&req.spec, slice(req.a)?, slice(req.b)?, slice_mut(req.out)?)
    }

    fn gemm_bias(&self, req: Operands<'_, Gemm, ArrayD<T>>, bias: &ArrayD<T>) -> Result<()> {
        let Operands { spec, a, b, out } = req;
        if !self.fuses_bias(&spec, bias.len()) {
            self.gemm(Operands::new(spec, a, b, out))?;
            return self.add_bias(bias, 1, out);
        }
        let (a, b, c, bias) = (slice(a)?, slice(b)?, slice_mut(out)?, slice(bias)?);
        r::check_bias(bias.len(), 1, c.len())?;
        self.gemm_with_bias(&spec, [a, b], c, Some(bias))
    }

    fn gemm_strided(&self, req: BatchedGemm<'_, ArrayD<T>>) -> Result<()> {
        let req = on_slices(req)?;
        req.validate(false, <[T]>::len)?;
        let (g, batch) = &req.spec;
        let mc = g.m * g.n;
        if batch.count == 1 || mc == 0 {
            return self.gemm_products(req, false);
        }
        let (a, b, c) = (req.a, req.b, req.out);
        // The outputs are disjoint (stride_c ≥ m·n > 0, validated): the
        // products run in parallel, each exactly the single `gemm` it would
        // be on its own (itself split into row blocks when threads are
        // idle), so the bits are those of a loop of `gemm`s.
        self.pool.install(|| {
            c.par_chunks_mut(batch.stride_c)
                .take(batch.count)
                .enumerate()
                .try_for_each(|(i, c)| {
                    let [ra, rb, _] = batch.ranges(g, i);
                    self.gemm_slices(g, &a[ra], &b[rb], &mut c[..mc])
                })
        })
    }

    fn gemm_summed(&self, req: BatchedGemm<'_, ArrayD<T>>) -> Result<()> {
        let req = on_slices(req)?;
        req.validate(true, <[T]>::len)?;
        // The reference's order: one `gemm` per product into the same `c`,
        // the first with the request's β, the rest with β = 1.
        self.gemm_products(req, true)
    }
}

impl<T: Real> ConvOps for Cpu<T> {
    fn im2col(&self, conv: &Conv2d, x: &ArrayD<T>, col: &mut ArrayD<T>) -> Result<()> {
        let (x, col) = (slice(x)?, slice_mut(col)?);
        conv.validate_buffers(x.len(), col.len())?;
        let (per, isa) = (conv.col_rows() * conv.col_cols(), self.isa);
        self.pool.install(|| {
            col.par_chunks_mut(per)
                .zip(x.par_chunks(conv.image_len()))
                .for_each(|(col, x)| kernels::im2col_image(isa, conv, x, col));
        });
        Ok(())
    }

    fn col2im(&self, conv: &Conv2d, col: &ArrayD<T>, x: &mut ArrayD<T>) -> Result<()> {
        let (col, x) = (slice(col)?, slice_mut(x)?);
        conv.validate_buffers(x.len(), col.len())?;
        let (per, isa) = (conv.col_rows() * conv.col_cols(), self.isa);
        self.pool.install(|| {
            x.par_chunks_mut(conv.image_len())
                .zip(col.par_chunks(per))
                .for_each(|(x, col)| kernels::col2im_image(isa, conv, col, x));
        });
        Ok(())
    }

    /// Image by image in parallel: each task unfolds its image into a
    /// buffer of its own and runs that image's GEMM, so the batch's columns
    /// never exist at once (the provided method's bits: the same `im2col`
    /// and the same per-image GEMM).
    fn conv_forward(&self, pass: ConvPass<'_, ArrayD<T>>) -> Result<()> {
        let ((conv, filters), isa) = (&pass.spec, self.isa);
        let (w, x, y) = (slice(pass.a)?, slice(pass.b)?, slice_mut(pass.out)?);
        let (g, batch) = conv.forward_gemm(*filters);
        let lens = [w.len(), conv.col_len(), y.len()];
        let per_col = checked_product(conv, x.len(), (&g, &batch), lens, false)?;
        let out = filters * conv.col_cols();
        if let Some(same) = self.direct_same(conv, &g) {
            // The columns read from each image in place: no column buffer,
            // and the product's lengths checked here, once.
            g.validate(w.len(), conv.col_rows() * conv.col_cols(), out)?;
            return self.per_image((y, out), (x, conv.image_len()), 0, |_, y, x| {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `direct_same` checked the ISA and that `T` is
                // `f32`; the kernel checks the lengths and the geometry.
                unsafe {
                    crate::direct_gemm::conv_same(
                        same,
                        as_f32(w),
                        *filters,
                        as_f32(x),
                        as_f32_mut(y),
                    );
                }
                Ok(())
            });
        }
        self.per_image((y, out), (x, conv.image_len()), per_col, |col, y, x| {
            kernels::im2col_image(isa, conv, x, col);
            self.image_gemm(&g, w, col, &mut y[..out])
        })
    }

    /// The products in the provided method's order (image by image into
    /// `dw`), each image unfolded into one of two buffers while the
    /// previous image's product runs, so the batch's columns never exist at
    /// once. With at least `2 · GEMM_ROWS` columns per filter the sum is
    /// kept transposed (`dWᵀ += col_n · dy_nᵀ`, one row per column of
    /// `dW`), so that the product splits into row blocks across the
    /// threads; every element is still the same dot product over the same
    /// `k` order with the same accumulation into it, so the bits are those
    /// of the untransposed sum (tested against it). In `f32` on AVX-512 the
    /// sum is always transposed, split among the threads for the whole
    /// batch at once (`Cpu::avx512_weight_grad`).
    fn conv_weight_grad(&self, pass: ConvPass<'_, ArrayD<T>>) -> Result<()> {
        let (conv, filters) = (&pass.spec.0, pass.spec.1);
        let (x, dy, dw) = (slice(pass.a)?, slice(pass.b)?, slice_mut(pass.out)?);
        let (g, batch) = conv.weight_grad_gemm(filters);
        let lens = [dy.len(), conv.col_len(), dw.len()];
        let per_col = checked_product(conv, x.len(), (&g, &batch), lens, true)?;
        if self.avx512_f32() {
            return self.avx512_weight_grad(conv, filters, (x, dy, dw));
        }
        // Through `matrixmultiply`, transposed where that gives the threads
        // more rows to split (few filters); memory of the backend's own,
        // handed back at the end.
        let rows = conv.col_rows();
        let transposed = rows >= 2 * GEMM_ROWS && self.threads() > 1 && filters > 0;
        let mut dwt = self.scratch(if transposed { rows * filters } else { 0 });
        let (mut col, mut next) = (self.scratch(per_col), self.scratch(per_col));
        let result = self.weight_grad_products(
            (conv, transposed),
            (x, dy, dw),
            (&g, &batch),
            [&mut dwt, &mut col, &mut next],
        );
        for buf in [dwt, col, next] {
            self.spare.put(buf);
        }
        result
    }

    /// Image by image in parallel: each task computes its image's column
    /// gradient into a buffer of its own and folds it into its image of
    /// `dx` (the provided method's bits: the same per-image GEMM and
    /// `col2im`). In `f32` on AVX-512, for a stride-1 convolution whose
    /// output rows are as wide as its input's, the terms go straight into
    /// `dx` in col2im's order (the module `input_grad`): the same bits with
    /// no columns.
    fn conv_input_grad(&self, pass: ConvPass<'_, ArrayD<T>>) -> Result<()> {
        let ((conv, filters), isa) = (&pass.spec, self.isa);
        let (w, dy, dx) = (slice(pass.a)?, slice(pass.b)?, slice_mut(pass.out)?);
        let (g, batch) = conv.input_grad_gemm(*filters);
        let out = filters * conv.col_cols();
        let lens = [w.len(), dy.len(), conv.col_len()];
        let per_col = checked_product(conv, dx.len(), (&g, &batch), lens, false)?;
        if let Some(same) = self.direct_same(conv, &g).filter(|_| g.beta == 0.0) {
            // Each image's terms summed straight into its `dx`: no columns.
            g.validate(w.len(), out, conv.col_rows() * conv.col_cols())?;
            return self.per_image((dx, conv.image_len()), (dy, out), 0, |_, dx, dy| {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `direct_same` checked the ISA and that `T` is
                // `f32`; the kernel checks the lengths and the geometry.
                unsafe {
                    crate::input_grad::input_grad_same(
                        same,
                        as_f32(w),
                        *filters,
                        as_f32(dy),
                        as_f32_mut(dx),
                    );
                }
                Ok(())
            });
        }
        self.per_image(
            (dx, conv.image_len()),
            (dy, out),
            per_col,
            |dcol, dx, dy| {
                self.image_gemm(&g, w, dy, dcol)?;
                kernels::col2im_image(isa, conv, dcol, dx);
                Ok(())
            },
        )
    }
}

impl<T: Real> Cpu<T> {
    /// [`ConvOps::conv_weight_grad`]'s products through `matrixmultiply`,
    /// in the memory it gives: `dwt` for the transposed sum, and two column
    /// buffers. The next image's columns are unfolded beside each image's
    /// product.
    fn weight_grad_products(
        &self,
        (conv, transposed): (&Conv2d, bool),
        (x, dy, dw): (&[T], &[T], &mut [T]),
        (g, batch): (&Gemm, &GemmBatch),
        [dwt, col, next]: [&mut ArrayD<T>; 3],
    ) -> Result<()> {
        let (image, rows, isa) = (conv.image_len(), conv.col_rows(), self.isa);
        let filters = g.m;
        let (dwt, mut col, mut next) = (slice_mut(dwt)?, slice_mut(col)?, slice_mut(next)?);
        if transposed {
            transpose_plain(dw, (filters, rows), dwt);
        }
        let unfold = |i: usize, col: &mut [T]| {
            kernels::im2col_image(isa, conv, &x[i * image..(i + 1) * image], col);
        };
        unfold(0, col);
        // One entry into the pool for the whole batch: its threads stay
        // awake from one image's product to the next instead of being put to
        // sleep and woken (an inter-processor interrupt each) per image.
        self.pool.install(|| -> Result<()> {
            let mut products = batch.products(g, true).enumerate().peekable();
            while let Some((i, (gi, [ra, _, rc]))) = products.next() {
                let last = products.peek().is_none();
                let (done, ()) = rayon::join(
                    || {
                        if transposed {
                            let gt = Gemm::new(gi.n, gi.m, gi.k)
                                .transposed(false, true)
                                .scaled(gi.alpha, gi.beta);
                            self.gemm_slices(&gt, col, &dy[ra], dwt)
                        } else {
                            self.gemm_slices(&gi, &dy[ra], col, &mut dw[rc])
                        }
                    },
                    || {
                        if !last {
                            unfold(i + 1, next);
                        }
                    },
                );
                done?;
                core::mem::swap(&mut col, &mut next);
            }
            Ok(())
        })?;
        if transposed {
            transpose_plain(dwt, (rows, filters), dw);
        }
        Ok(())
    }

    /// The weight gradient by [`crate::direct_gemm`] (`f32`, AVX-512): `dwᵀ`
    /// split into one block of rows per thread, each thread summing the
    /// whole batch into its block image by image (the order of the provided
    /// method, so the same bits whatever the split), with no wait between
    /// images ([`avx512_weight_grad_rows`]); `dy` is transposed for the
    /// whole batch first, in parallel. The memory is the backend's own,
    /// handed back at the end.
    fn avx512_weight_grad(
        &self,
        conv: &Conv2d,
        filters: usize,
        (x, dy, dw): (&[T], &[T], &mut [T]),
    ) -> Result<()> {
        let (rows, pixels) = (conv.col_rows(), conv.col_cols());
        let per_image = filters * pixels;
        if rows == 0 || per_image == 0 || conv.batch == 0 {
            return Ok(());
        }
        let per_col = Same::of(conv).map_or(conv.col_len(), |same| same.padded_len());
        let per = rows.div_ceil(self.threads().max(1));
        let mut dwt = self.scratch(rows * filters);
        let mut dyt = self.scratch(conv.batch * per_image);
        let mut cols = self.scratch(rows.div_ceil(per) * per_col);
        let result = slice_mut(&mut dwt).and_then(|dwt| {
            let (dyt, cols) = (slice_mut(&mut dyt)?, slice_mut(&mut cols)?);
            transpose_plain(dw, (filters, rows), dwt);
            self.pool.install(|| {
                dyt.par_chunks_mut(per_image)
                    .zip(dy.par_chunks(per_image))
                    .for_each(|(t, d)| avx512_transpose(d, filters, pixels, t));
                let dyt = &*dyt;
                dwt.par_chunks_mut(per * filters)
                    .zip(cols.par_chunks_mut(per_col))
                    .enumerate()
                    .for_each(|(i, (dwt, col))| {
                        avx512_weight_grad_rows(
                            self.isa,
                            (conv, filters),
                            i * per,
                            (x, dyt),
                            (dwt, col),
                        );
                    });
            });
            transpose_plain(dwt, (rows, filters), dw);
            Ok(())
        });
        for buf in [dwt, dyt, cols] {
            self.spare.put(buf);
        }
        result
    }

    /// Whether [`Cpu::image_gemm`] runs `g` by [`crate::direct_gemm`]: the
    /// same bits as `matrixmultiply` where `T` is `f32` on AVX-512, `op(b)`
    /// is `b`, α = 1 and β is 0 or 1.
    fn direct(&self, g: &Gemm) -> bool {
        self.direct_sum(g) && !g.trans_b
    }

    /// Whether [`crate::direct_gemm`] sums `g`'s elements as
    /// `matrixmultiply` would: `T` is `f32` on AVX-512, the sum is not
    /// empty, α = 1 and β is 0 or 1.
    fn direct_sum(&self, g: &Gemm) -> bool {
        self.avx512_f32() && g.k > 0 && g.alpha == 1.0 && (g.beta == 0.0 || g.beta == 1.0)
    }

    /// Whether [`Cpu::gemm_slices`] runs `g` by [`crate::direct_gemm`]:
    /// where it sums as `matrixmultiply` ([`Cpu::direct_sum`]), and one operand at
    /// most transposed (a dense layer's three products; its forward product
    /// reads `op(b) = bᵀ`, its weight gradient `op(a) = aᵀ`). A transposed
    /// operand is packed first ([`direct_block`]).
    fn dense_direct(&self, g: &Gemm) -> bool {
        self.direct_sum(g) && !(g.trans_a && g.trans_b)
    }

    /// Whether [`MatmulOps::gemm_bias`] adds a bias of `len` elements in
    /// [`crate::direct_gemm::gemm_bt`]'s stores: a dense layer's forward
    /// product (`op(b) = bᵀ`, see [`Cpu::dense_direct`]) with a bias per
    /// column.
    fn fuses_bias(&self, g: &Gemm, len: usize) -> bool {
        self.dense_direct(g) && g.trans_b && !g.trans_a && len == g.n
    }

    /// Whether this backend runs [`crate::direct_gemm`]'s kernels at all:
    /// `T` is `f32` and the ISA AVX-512.
    fn avx512_f32(&self) -> bool {
        self.isa == Isa::Avx512 && TypeId::of::<T>() == TypeId::of::<f32>()
    }

    /// The geometry [`crate::direct_gemm::conv_same`] reads `conv`'s images
    /// with, where it runs the forward product `g`, and
    /// [`crate::input_grad::input_grad_same`] writes the input gradient
    /// with, where it replaces the product `g` and col2im (see
    /// [`Cpu::direct`] and [`Same::of`]).
    fn direct_same(&self, conv: &Conv2d, g: &Gemm) -> Option<Same> {
        Same::of(conv).filter(|_| self.direct(g))
    }

    /// One image's product of a convolution, on the calling thread where
    /// [`Cpu::direct`] allows (the images run in parallel), else
    /// [`Cpu::gemm_slices`].
    fn image_gemm(&self, g: &Gemm, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        if !self.direct(g) {
            return self.gemm_slices(g, a, b, c);
        }
        g.validate(a.len(), b.len(), c.len())?;
        direct_in_place(g, 0, [a, b], c);
        Ok(())
    }

    /// Runs `f(col, output_n, input_n)` for every image `n` in parallel,
    /// `output` and `input` split into chunks of the given lengths (one per
    /// image). The images go to two runs of consecutive images per thread,
    /// each run with a column buffer of `col_len` elements of its own: the
    /// batch's columns never exist at once, and a buffer is not allocated
    /// and zeroed again for every split of the work. The runs' buffers are
    /// one, taken before they start, so that how the runs fall on the
    /// threads does not change what is taken (a steady loop takes the same
    /// buffers back every time). Nothing runs when a chunk is empty.
    fn per_image(
        &self,
        (output, out_len): (&mut [T], usize),
        (input, in_len): (&[T], usize),
        col_len: usize,
        f: impl Fn(&mut [T], &mut [T], &[T]) -> Result<()> + Sync + Send,
    ) -> Result<()> {
        if out_len == 0 || in_len == 0 {
            return Ok(());
        }
        let images = output.len() / out_len;
        let run = images.div_ceil(2 * self.threads().max(1)).max(1);
        let mut cols = self.scratch(images.div_ceil(run) * col_len);
        let done = slice_mut(&mut cols).and_then(|cols| {
            let one_run = |(o, i): (&mut [T], &[T]), col: &mut [T]| {
                o.chunks_mut(out_len)
                    .zip(i.chunks(in_len))
                    .try_for_each(|(o, i)| f(col, o, i))
            };
            self.pool.install(|| {
                let runs = output
                    .par_chunks_mut(run * out_len)
                    .zip(input.par_chunks(run * in_len));
                if col_len == 0 {
                    runs.try_for_each(|r| one_run(r, &mut []))
                } else {
                    runs.zip(cols.par_chunks_mut(col_len))
                        .try_for_each(|(r, col)| one_run(r, col))
                }
            })
        });
        self.spare.put(cols);
        done
    }
}

/// Validates `conv` and an image-side buffer (`x` or `dx`) of `images`
/// elements (as [`Conv2d::validate_buffers`]), then the batched product
/// `(g, batch)` over buffers of lengths `lens` (as [`GemmBatch::validate`]),
/// and returns the length of one image's columns.
fn checked_product(
    conv: &Conv2d,
    images: usize,
    (g, batch): (&Gemm, &GemmBatch),
    [a, b, c]: [usize; 3],
    summed: bool,
) -> Result<usize> {
    conv.validate()?;
    check_len(
        "conv input (N·C·H·W)",
        conv.batch * conv.image_len(),
        images,
    )?;
    batch.validate(g, a, b, c, summed)?;
    Ok(conv.col_rows() * conv.col_cols())
}

impl<T: Real> PoolOps for Cpu<T> {
    fn pool_forward(&self, p: &Pool2d, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        p.validate_buffers(x.len(), y.len())?;
        let (plane, out) = (p.height * p.width, p.out_h() * p.out_w());
        let isa = self.isa;
        self.pool.install(|| {
            y.par_chunks_mut(out)
                .zip(x.par_chunks(plane))
                .for_each(|(y, x)| kernels::pool_forward_plane(isa, p, x, y));
        });
        Ok(())
    }

    fn pool_backward(&self, req: Operands<'_, Pool2d, ArrayD<T>>) -> Result<()> {
        let req = on_slices(req)?;
        let (p, x, dy, dx) = (&req.spec, req.a, req.b, req.out);
        p.validate_backward(x.len(), dy.len(), dx.len())?;
        let (plane, out) = (p.height * p.width, p.out_h() * p.out_w());
        let isa = self.isa;
        self.zip_gradients((dx, x, dy), (plane, out), |dx, x, dy| {
            kernels::pool_backward_plane(isa, p, x, dy, dx);
        });
        Ok(())
    }
}

/// Positions per transposed run of the per-channel sums over `[batch,
/// channels, inner]` tensors.
const RUN: usize = 32;

/// Which of BatchNorm's per-channel sums [`Cpu::channel_sums`] adds, and
/// over which tensors.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Terms<'a> {
    /// `Σ x` over `[x]`.
    Totals,
    /// `Σ (x − μ)²` over `[x]`, `μ` per channel.
    SquareDeviations(&'a [f64]),
    /// `(Σ dy · x̂, Σ dy)` over `[x, dy]`, with `x̂ = (x − μ) · inv_std` from
    /// `(μ, inv_std)` per channel.
    NormGrads(&'a [(f64, f64)]),
}

impl Terms<'_> {
    /// The tensors the sums run over, and the sums per channel.
    fn arity(self) -> (usize, usize) {
        match self {
            Terms::Totals | Terms::SquareDeviations(_) => (1, 1),
            Terms::NormGrads(_) => (2, 2),
        }
    }

    /// Adds the sums over the rows of `src` (each `stride` elements, the
    /// channels `c0 ..` from column `col`) into `rows`, one row per sum of
    /// one entry per channel, through the [`crate::dense`] kernels.
    fn add_rows<X: Real>(
        self,
        isa: Isa,
        src: &[&[X]],
        (stride, col, c0): (usize, usize, usize),
        rows: &mut [f64],
    ) {
        match self {
            Terms::Totals => kernels::column_sums(isa, src[0], stride, col, rows),
            Terms::SquareDeviations(mu) => {
                kernels::column_square_deviations(isa, src[0], stride, col, &mu[c0..], rows);
            }
            Terms::NormGrads(centres) => {
                let (dg, db) = rows.split_at_mut(rows.len() / 2);
                let centres = &centres[c0..];
                kernels::column_norm_grads(isa, src[0], src[1], stride, col, centres, dg, db);
            }
        }
    }
}

/// `dst[p · rows + j] = src[j · stride + p]` widened to `f64`, for `j <
/// rows` and `p < cols`.
fn to_wide<T: Real>(src: &[T], (stride, rows, cols): (usize, usize, usize), dst: &mut [f64]) {
    for j in 0..rows {
        for p in 0..cols {
            dst[p * rows + j] = wide(src[j * stride + p]);
        }
    }
}

impl<T: Real> Cpu<T> {
    /// `K` per-channel `f64` sums, `terms`, over the tensors `src` laid out
    /// `[batch, channels, inner]` into `out` (one entry per channel,
    /// `channels` of them), each starting from `start` (`−0.0` where the
    /// reference uses Rust's float `sum`, which starts there, `0.0` where it
    /// folds from `0.0`). Each channel's sum runs over its elements in index
    /// order (sample-major, then position), the order of the reference's
    /// per-channel loops, so the bits are theirs.
    ///
    /// The channels are split into blocks, one task each, whose sums run
    /// side by side in vectors: rows of `[batch, channels]` tensors (`inner
    /// = 1`) are read in place; the others go through
    /// [`crate::channel_sums`] in `f32` on AVX-512, or else are transposed,
    /// a sample's [`RUN`] positions of the block's channels at a time, into
    /// rows of `f64`s in `wide`. `rows` holds the tasks' sums.
    fn channel_sums<const K: usize>(
        &self,
        (start, batch, inner): (f64, usize, usize),
        (src, terms): (&[&[T]], Terms<'_>),
        (out, rows, wide): (&mut [[f64; K]], &mut Vec<f64>, &mut Vec<f64>),
    ) {
        assert_eq!(
            terms.arity(),
            (src.len(), K),
            "{terms:?}'s tensors and sums"
        );
        let channels = out.len();
        let (isa, threads) = (self.isa, self.threads().max(1));
        let fused = inner > 1 && self.avx512_f32();
        // Four blocks per thread for `inner = 1`, else two, whole vectors
        // of 8 `f64`s (fewer would leave lanes idle).
        let block = if inner == 1 {
            channels.div_ceil(4 * threads)
        } else {
            channels.div_ceil(2 * threads).next_multiple_of(8)
        }
        .max(1);
        // Each task's transposed runs (one unused entry where there are none).
        let run = if inner == 1 || fused {
            1
        } else {
            src.len() * RUN * block
        };
        let rows = sized(rows, K * channels, start);
        let tasks = channels.div_ceil(block);
        if wide.len() < run * tasks {
            wide.resize(run * tasks, 0.0);
        }
        out.par_chunks_mut(block)
            .zip(rows.par_chunks_mut(K * block))
            .zip(wide.par_chunks_mut(run))
            .enumerate()
            .for_each(|(b, ((out, rows), wide))| {
                let (c0, w) = (b * block, out.len());
                if inner == 1 {
                    terms.add_rows(isa, src, (channels, c0, c0), rows);
                } else if fused {
                    fused_sums(terms, src, (batch, channels, inner), c0, rows);
                } else {
                    for n in 0..batch {
                        for p0 in (0..inner).step_by(RUN) {
                            let cols = RUN.min(inner - p0);
                            let at = (n * channels + c0) * inner + p0;
                            let mut runs = wide.chunks_exact_mut(RUN * w);
                            let mut t: [&[f64]; 2] = [&[], &[]];
                            for (t, src) in t.iter_mut().zip(src) {
                                let run = &mut runs.next().expect("a run per tensor")[..cols * w];
                                to_wide(&src[at..], (inner, w, cols), run);
                                *t = run;
                            }
                            terms.add_rows(isa, &t[..src.len()], (w, 0, c0), rows);
                        }
                    }
                }
                for (j, o) in out.iter_mut().enumerate() {
                    *o = core::array::from_fn(|k| rows[k * w + j]);
                }
            });
    }
}

/// [`crate::channel_sums::add`] on `T = f32` (where AVX-512 is present).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn fused_sums<T: Real>(
    terms: Terms<'_>,
    src: &[&[T]],
    shape: (usize, usize, usize),
    c0: usize,
    rows: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut s: [&[f32]; 2] = [&[], &[]];
        for (s, src) in s.iter_mut().zip(src) {
            *s = as_f32(src);
        }
        // SAFETY: called only where `Cpu::avx512_f32` holds (AVX-512
        // present, `T` is `f32`); the lengths are checked inside.
        unsafe { crate::channel_sums::add(terms, &s[..src.len()], shape, c0, rows) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is only detected on x86-64");
}

/// `v` as `len` entries of `fill`, in the memory it already has where that
/// is enough.
fn sized<U: Copy>(v: &mut Vec<U>, len: usize, fill: U) -> &mut [U] {
    v.clear();
    v.resize(len, fill);
    v
}

/// `K` sums per channel in `v`, `channels` of them.
fn sums_of<const K: usize>(v: &mut Vec<f64>, channels: usize) -> &mut [[f64; K]] {
    sized(v, K * channels, 0.0).as_chunks_mut::<K>().0
}

impl<T: Real> BatchNormOps for Cpu<T> {
    fn batch_norm_stats(&self, pass: BatchNormStatsPass<'_, ArrayD<T>>) -> Result<()> {
        // Contiguity first, then the request's lengths (on the slices).
        let (bn, x, mean, var) = (
            pass.bn,
            slice(pass.x)?,
            slice_mut(pass.mean)?,
            slice_mut(pass.var)?,
        );
        let pass = BatchNormStatsPass { bn, x, mean, var };
        pass.validate(<[T]>::len)?;
        let BatchNormStatsPass { x, mean, var, .. } = pass;
        let (batch, channels, inner) = (bn.batch, bn.channels, bn.spatial);
        let m = (batch * inner) as f64;
        self.with_work(|w| {
            let ChannelWork {
                sums,
                rows,
                wide,
                a,
                ..
            } = w;
            self.pool.install(|| {
                let s = sums_of::<1>(sums, channels);
                let at = (-0.0, batch, inner);
                self.channel_sums(at, (&[x], Terms::Totals), (s, rows, wide));
                let mu = sized(a, channels, 0.0);
                for (mu, [s]) in mu.iter_mut().zip(s.iter()) {
                    *mu = s / m;
                }
                let mu: &[f64] = mu;
                let sq = sums_of::<1>(sums, channels);
                let deviations = Terms::SquareDeviations(mu);
                self.channel_sums(at, (&[x], deviations), (sq, rows, wide));
                for c in 0..channels {
                    mean[c] = T::from_f64(mu[c]);
                    var[c] = T::from_f64(sq[c][0] / m);
                }
            });
        });
        Ok(())
    }

    fn batch_norm_forward(&self, pass: BatchNormForwardPass<'_, ArrayD<T>>) -> Result<()> {
        let (bn, BatchNormStats { mean, var }) = (&pass.bn, pass.stats);
        let (x, y) = (slice(pass.x)?, slice_mut(pass.y)?);
        let (gamma, beta) = (slice(pass.gamma)?, slice(pass.beta)?);
        let stats = BatchNormStats::new(slice(mean)?, slice(var)?);
        let pass = BatchNormForwardPass {
            bn: *bn,
            x,
            y,
            gamma,
            beta,
            stats,
        };
        pass.validate(<[T]>::len)?;
        let BatchNormForwardPass {
            x,
            y,
            gamma,
            beta,
            stats,
            ..
        } = pass;
        let (mean, var) = (stats.mean, stats.var);
        let (per, isa) = (bn.channels * bn.spatial, self.isa);
        let task = self.whole_samples(per);
        self.with_work(|w| {
            let coefs = sized(&mut w.forward, bn.channels, [0.0; 4]);
            r::batch_norm_forward_coefs_into(bn, [gamma, beta, mean, var], coefs);
            let coefs: &[[f64; 4]] = coefs;
            self.pool.install(|| {
                y.par_chunks_mut(task)
                    .zip(x.par_chunks(task))
                    .for_each(|(y, x)| {
                        for (y, x) in y.chunks_mut(per).zip(x.chunks(per)) {
                            kernels::batch_norm_forward_sample(isa, bn, x, coefs, y);
                        }
                    });
            });
        });
        Ok(())
    }

    fn batch_norm_backward(&self, pass: BatchNormBackwardPass<'_, ArrayD<T>>) -> Result<()> {
        let (bn, BatchNormStats { mean, var }) = (&pass.bn, pass.stats);
        let BatchNormGrads { dx, dgamma, dbeta } = pass.grads;
        let (x, dy, dx) = (slice(pass.x)?, slice(pass.dy)?, slice_mut(dx)?);
        let (gamma, mean, var) = (slice(pass.gamma)?, slice(mean)?, slice(var)?);
        let (dgamma, dbeta) = (slice_mut(dgamma)?, slice_mut(dbeta)?);
        BatchNormBackwardPass {
            bn: *bn,
            x,
            dy,
            gamma,
            stats: BatchNormStats::new(mean, var),
            grads: BatchNormGrads::new(dx, dgamma, dbeta),
        }
        .validate(<[T]>::len)?;
        let (per, isa) = (bn.channels * bn.spatial, self.isa);
        let channels = bn.channels;
        self.with_work(|w| {
            let ChannelWork {
                sums,
                rows,
                wide,
                a,
                b,
                centres,
                backward,
                ..
            } = w;
            self.pool.install(|| {
                let centres = sized(centres, channels, (0.0, 0.0));
                r::batch_norm_centres_into(bn, mean, var, centres);
                let centres: &[(f64, f64)] = centres;
                let s = sums_of::<2>(sums, channels);
                let at = (0.0, bn.batch, bn.spatial);
                self.channel_sums(at, (&[x, dy], Terms::NormGrads(centres)), (s, rows, wide));
                let (dg, db) = (sized(a, channels, 0.0), sized(b, channels, 0.0));
                for (c, &[g, b]) in s.iter().enumerate() {
                    (dg[c], db[c]) = (g, b);
                    dgamma[c] = T::from_f64(g);
                    dbeta[c] = T::from_f64(b);
                }
                let coefs = sized(backward, channels, [0.0; 5]);
                r::batch_norm_backward_coefs_into(bn, gamma, centres, [dg, db], coefs);
                let coefs: &[[f64; 5]] = coefs;
                let task = self.whole_samples(per);
                dx.par_chunks_mut(task)
                    .zip(x.par_chunks(task))
                    .zip(dy.par_chunks(task))
                    .for_each(|((dx, x), dy)| {
                        let samples = dx.chunks_mut(per).zip(x.chunks(per)).zip(dy.chunks(per));
                        for ((dx, x), dy) in samples {
                            kernels::batch_norm_backward_sample(isa, bn, x, dy, coefs, dx);
                        }
                    });
            });
        });
        Ok(())
    }
}

impl<T: Real> LossOps for Cpu<T> {
    fn softmax_cross_entropy(&self, req: CrossEntropy<'_, ArrayD<T>>) -> Result<f64> {
        let (classes, labels) = (req.classes, req.labels);
        let req = CrossEntropy::new(classes, slice(req.logits)?, labels, slice_mut(req.dlogits)?);
        req.validate(<[T]>::len)?;
        let (z, d) = (req.logits, req.dlogits);
        let rows = labels.len();
        let total = self.with_work(|w| {
            let losses = sized(&mut w.a, rows, 0.0);
            self.pool.install(|| {
                losses
                    .par_iter_mut()
                    .zip(d.par_chunks_mut(classes))
                    .zip(z.par_chunks(classes))
                    .zip(labels.par_iter())
                    .for_each(|(((loss, d), z), &l)| {
                        *loss = r::softmax_cross_entropy_row(z, l as usize, rows, d);
                    });
            });
            // Summed in row order from 0.0, as the reference does.
            let mut total = 0.0;
            for l in losses.iter() {
                total += l;
            }
            total
        });
        Ok(total / rows as f64)
    }
}

impl<T: Real> Cpu<T> {
    /// Elements per parallel task for work done a sample of `per` elements
    /// at a time: as many whole samples as fill `self.chunk` (at least one),
    /// so that a batch of small samples is not a task per sample.
    fn whole_samples(&self, per: usize) -> usize {
        (self.chunk / per.max(1)).max(1) * per.max(1)
    }

    /// `y ← kernel(x, y)` in chunks, after checking that `x` has `y`'s
    /// length (`what` names the check).
    fn combine(
        &self,
        what: &'static str,
        x: &ArrayD<T>,
        y: &mut ArrayD<T>,
        kernel: fn(Isa, &[T], &mut [T]),
    ) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        check_len(what, y.len(), x.len())?;
        let isa = self.isa;
        self.zip_chunks(x, y, |x, y| kernel(isa, x, y));
        Ok(())
    }

    /// Runs `f(dx, x, dy)` in parallel over matching chunks of a backward
    /// pass's buffers: `dx` and `x` in chunks of `input` elements, `dy` in
    /// chunks of `output` (a plane and its pooled plane, say).
    fn zip_gradients(
        &self,
        (dx, x, dy): (&mut [T], &[T], &[T]),
        (input, output): (usize, usize),
        f: impl Fn(&mut [T], &[T], &[T]) + Sync + Send,
    ) {
        self.pool.install(|| {
            dx.par_chunks_mut(input)
                .zip(x.par_chunks(input))
                .zip(dy.par_chunks(output))
                .for_each(|((dx, x), dy)| f(dx, x, dy));
        });
    }

    /// Runs `f` over `y` in chunks of `self.chunk`, zipped with `x`'s.
    fn zip_chunks(&self, x: &[T], y: &mut [T], f: impl Fn(&[T], &mut [T]) + Sync) {
        let n = self.chunk;
        self.pool.install(|| {
            y.par_chunks_mut(n)
                .zip(x.par_chunks(n))
                .for_each(|(y, x)| f(x, y));
        });
    }
}

impl<T: Real> MapOps for Cpu<T> {
    fn relu(&self, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        check_len("relu output", x.len(), y.len())?;
        let isa = self.isa;
        self.zip_chunks(x, y, |x, y| kernels::relu(isa, x, y));
        Ok(())
    }

    fn relu_backward(&self, x: &ArrayD<T>, dy: &ArrayD<T>, dx: &mut ArrayD<T>) -> Result<()> {
        let (x, dy, dx) = (slice(x)?, slice(dy)?, slice_mut(dx)?);
        check_len("relu gradient", x.len(), dy.len())?;
        check_len("relu input gradient", x.len(), dx.len())?;
        let (n, isa) = (self.chunk, self.isa);
        self.zip_gradients((dx, x, dy), (n, n), |dx, x, dy| {
            kernels::relu_backward(isa, x, dy, dx);
        });
        Ok(())
    }

    fn scale(&self, alpha: T, x: &mut ArrayD<T>) -> Result<()> {
        let x = slice_mut(x)?;
        let (n, isa) = (self.chunk, self.isa);
        self.pool.install(|| {
            x.par_chunks_mut(n)
                .for_each(|x| kernels::scale(isa, alpha, x))
        });
        Ok(())
    }

    fn add(&self, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        self.combine("add operands", x, y, kernels::add)
    }

    fn mul(&self, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        self.combine("mul operands", x, y, kernels::mul)
    }

    fn fill(&self, value: T, x: &mut ArrayD<T>) -> Result<()> {
        let x = slice_mut(x)?;
        let n = self.chunk;
        self.pool
            .install(|| x.par_chunks_mut(n).for_each(|x| x.fill(value)));
        Ok(())
    }

    fn add_bias(&self, bias: &ArrayD<T>, inner: usize, x: &mut ArrayD<T>) -> Result<()> {
        let (bias, x) = (slice(bias)?, slice_mut(x)?);
        r::check_bias(bias.len(), inner, x.len())?;
        let (per, isa) = (bias.len() * inner, self.isa);
        let task = self.whole_samples(per);
        self.pool.install(|| {
            x.par_chunks_mut(task).for_each(|x| {
                for x in x.chunks_mut(per) {
                    kernels::add_bias_block(isa, bias, inner, x);
                }
            });
        });
        Ok(())
    }

    fn bias_grad(&self, dy: &ArrayD<T>, inner: usize, db: &mut ArrayD<T>) -> Result<()> {
        let (dy, db) = (slice(dy)?, slice_mut(db)?);
        r::check_bias(db.len(), inner, dy.len())?;
        let channels = db.len();
        let batch = dy.len() / (channels * inner).max(1);
        self.with_work(|w| {
            let s = sums_of::<1>(&mut w.sums, channels);
            let at = (-0.0, batch, inner);
            self.pool.install(|| {
                self.channel_sums(at, (&[dy], Terms::Totals), (s, &mut w.rows, &mut w.wide))
            });
            for (d, [s]) in db.iter_mut().zip(s.iter()) {
                *d = T::from_f64(*s);
            }
        });
        Ok(())
    }
}
