//! The tensor operations of [`smoothout::tensor`] on [`Cuda`].
//!
//! GEMM goes through cuBLAS `sgemm` in its default math mode (full FP32, no
//! TF32), row-major through the column-major identity `Cᵀ = op(B)ᵀ op(A)ᵀ`;
//! the strided batch is one `cublasSgemmStridedBatched`, and the summed
//! batch is strided-batched products into a temporary buffer followed by a
//! fixed-order `f64` reduction over the products. Everything else is a
//! kernel of `kernels/tensor.cu`, one thread per output element:
//!
//! - bit-identical to [`smoothout::tensor::reference`]: im2col, col2im (each
//!   input element gathers its column entries in the reference's order, no
//!   atomics), pooling forward and backward (gathers, windows in the
//!   reference's order), the batch-norm forward given the same statistics,
//!   the element-wise maps and `add_bias`;
//! - the same formulas, summed in another (fixed, deterministic) order:
//!   GEMM, the batch-norm statistics and gradients and `bias_grad` (`f64`
//!   partial sums per channel and slice, then the slices in order), and the
//!   loss (the device's `exp` and `log`, each within 1 ulp, instead of
//!   libm's).
//!
//! Every request is validated with the reference's own checks, before
//! anything is launched; empty work launches nothing.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm as _, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use smoothout::tensor::check_len;
use smoothout::tensor::reference as r;
use smoothout::tensor::{
    BatchNormBackwardPass, BatchNormForwardPass, BatchNormGrads, BatchNormOps, BatchNormStats,
    BatchNormStatsPass, BatchedGemm, Conv2d, ConvOps, CrossEntropy, Gemm, LossOps, MapOps,
    MatmulOps, Operands, Pool2d, PoolOps,
};
use smoothout::{Error, Result};

use crate::error::{blas, device};
use crate::launch_sizes::{conv_args, pool_args};
use crate::{grid, launch, Cuda, THREADS};

/// Every kernel of `kernels/tensor.cu`.
pub(crate) const KERNELS: &[&str] = &[
    "gemm_empty",
    "gemm_sum_chunk",
    "gemm_sum_finish",
    "im2col",
    "col2im",
    "pool_forward",
    "pool_backward",
    "channel_partials",
    "channel_finish",
    "bn_forward",
    "bn_grad_partials",
    "bn_grad_finish",
    "bn_backward",
    "softmax_xent_rows",
    "map_relu",
    "map_relu_backward",
    "map_scale",
    "map_add",
    "map_mul",
    "map_fill",
    "add_bias",
];

// The block reductions of tensor.cu use `SO_THREADS` (256) threads.
const _: () = assert!(THREADS == 256);

/// The most `f32` elements of the temporary products of one
/// [`MatmulOps::gemm_summed`] chunk (256 MiB); more products run in several
/// chunks, which does not change the bits (each element's `f64` sum carries
/// over from chunk to chunk in product order).
const SUM_CHUNK_ELEMS: usize = 1 << 26;

/// Elements per slice of a per-channel reduction (one block of threads).
const SLICE: u64 = 8192;
/// The most slices of one channel.
const MAX_SLICES: u64 = 1024;
/// The most blocks along x of a per-channel reduction (they step over the
/// channels).
const MAX_CHANNEL_BLOCKS: u64 = 65_535;

/// A size as cuBLAS's `int`.
fn cublas_int(name: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::InvalidSetting {
        name,
        value: v as f64,
        expected: "at most 2^31 − 1 (cuBLAS takes int sizes)",
    })
}

/// A stride as cuBLAS's `long long`.
fn cublas_stride(name: &'static str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidSetting {
        name,
        value: v as f64,
        expected: "at most 2^63 − 1 (cuBLAS takes long long strides)",
    })
}

fn op(trans: bool) -> cublasOperation_t {
    if trans {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

/// The column-major cuBLAS call computing the row-major `g` (m, n, k ≥ 1):
/// `Cᵀ (n × m) = op(B)ᵀ op(A)ᵀ`, so cuBLAS's first operand is `b` and its
/// second `a`, each read with its own transpose. Row-major `b` (`k × n`) is
/// column-major `n × k` with leading dimension `n` (`bᵀ` stored `n × k`:
/// `k × n`, leading dimension `k`, transposed); likewise `a` with `k` or
/// `m`; `C` is column-major `n × m` with leading dimension `n`.
fn gemm_config(g: &Gemm, alpha: f32, beta: f32) -> Result<GemmConfig<f32>> {
    let m = cublas_int("gemm m", g.m)?;
    let n = cublas_int("gemm n", g.n)?;
    let k = cublas_int("gemm k", g.k)?;
    Ok(GemmConfig {
        transa: op(g.trans_b),
        transb: op(g.trans_a),
        m: n,
        n: m,
        k,
        alpha,
        lda: if g.trans_b { k } else { n },
        ldb: if g.trans_a { m } else { k },
        beta,
        ldc: n,
    })
}

/// `count` products of `g` at strides of `a`, `b`, `c` (elements) as one
/// strided-batched cuBLAS call: [`gemm_config`]'s operands, so cuBLAS's `A`
/// strides are `b`'s and its `B` strides `a`'s.
fn batched_config(
    g: &Gemm,
    alpha: f32,
    beta: f32,
    count: usize,
    [stride_a, stride_b, stride_c]: [usize; 3],
) -> Result<StridedBatchedConfig<f32>> {
    Ok(StridedBatchedConfig {
        gemm: gemm_config(g, alpha, beta)?,
        batch_size: cublas_int("gemm batch count", count)?,
        stride_a: cublas_stride("gemm batch stride_b", stride_b)?,
        stride_b: cublas_stride("gemm batch stride_a", stride_a)?,
        stride_c: cublas_stride("gemm batch stride_c", stride_c)?,
    })
}

/// The slices of a per-channel reduction over `m` elements: `(slices, per)`.
fn slices_of(m: u64) -> (u64, u64) {
    let slices = m.div_ceil(SLICE).clamp(1, MAX_SLICES);
    (slices, m.div_ceil(slices))
}

/// Blocks `(channel, slice)` of [`THREADS`] threads.
fn channel_grid(channels: u64, slices: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            channels.clamp(1, MAX_CHANNEL_BLOCKS) as u32,
            slices as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Cuda {
    /// The `k = 0` product of `count` outputs at `stride_c`: `c ← α · 0
    /// (+ β · c)` in `f32`, as the reference.
    fn gemm_empty(
        &self,
        op: &'static str,
        g: &Gemm,
        count: usize,
        stride_c: usize,
        c: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (count, stride_c, mn) = (count as u64, stride_c as u64, (g.m * g.n) as u64);
        let (alpha, beta, has_beta) = (g.alpha as f32, g.beta as f32, i32::from(g.beta != 0.0));
        launch!(self, op, "gemm_empty", grid(count * mn);
            c, &count, &stride_c, &mn, &alpha, &beta, &has_beta)
    }

    /// Per-channel sums of `x` (`[outer, channels, inner]`, `m = outer ·
    /// inner` elements per channel, `m ≥ 1`), or of `(x − centre)²`, divided
    /// by `divisor`, into `out64` and rounded into `out32`.
    #[allow(clippy::too_many_arguments)]
    fn channel_sums(
        &self,
        op: &'static str,
        x: &CudaSlice<f32>,
        centre: Option<&CudaSlice<f64>>,
        channels: usize,
        inner: usize,
        divisor: f64,
        out64: &mut CudaSlice<f64>,
        out32: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let stream = self.stream();
        let (channels, inner) = (channels as u64, inner as u64);
        let m = x.len() as u64 / channels;
        let (slices, per) = slices_of(m);
        let mut partial = stream
            .alloc_zeros::<f64>((channels * slices) as usize)
            .map_err(device(op))?;
        // Without a centre the kernel reads no `centre` element.
        let (centre, squares) = match centre {
            Some(c) => (c, 1i32),
            None => (&self.inner.dummy64, 0),
        };
        launch!(self, op, "channel_partials", channel_grid(channels, slices);
            x, centre, &channels, &inner, &m, &per, &squares, &mut partial)?;
        launch!(self, op, "channel_finish", grid(channels);
            &partial, &channels, &slices, &divisor, out64, out32)
    }

    /// `kernel` (`im2col` or `col2im`, which is also the op's name) from
    /// `src` into `dst`, one thread per element of `dst` (the buffers
    /// validated by the caller); nothing when `dst` is empty.
    fn unfold_kernel(
        &self,
        kernel: &'static str,
        conv: &Conv2d,
        src: &CudaSlice<f32>,
        dst: &mut CudaSlice<f32>,
    ) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let [n, ch, h, w, kh, kw, s, p, oh, ow] = conv_args(conv);
        let cfg = grid(dst.len() as u64);
        launch!(self, kernel, kernel, cfg;
            src, dst, &n, &ch, &h, &w, &kh, &kw, &s, &p, &oh, &ow)
    }

    /// `y ← kernel(x, y)` element-wise, one thread per element (the lengths
    /// checked by the caller); nothing when `x` is empty.
    fn map_kernel(
        &self,
        (op, kernel): (&'static str, &'static str),
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = x.len() as u64;
        if n == 0 {
            return Ok(());
        }
        launch!(self, op, kernel, grid(n); x, y, &n)
    }
}

impl MatmulOps for Cuda {
    fn gemm(&self, req: Operands<'_, Gemm, CudaSlice<f32>>) -> Result<()> {
        let (g, a, b, c) = (&req.spec, req.a, req.b, req.out);
        g.validate(a.len(), b.len(), c.len())?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        if g.k == 0 {
            return self.gemm_empty("gemm", g, 1, 0, c);
        }
        let cfg = gemm_config(g, g.alpha as f32, g.beta as f32)?;
        // SAFETY: validated: a holds m·k, b k·n and c m·n elements, and
        // `gemm_config`'s dimensions and leading dimensions address exactly
        // those (see its doc); the three buffers are distinct (c is &mut).
        unsafe { self.blas().gemm(cfg, b, a, c) }.map_err(blas("gemm"))
    }

    fn gemm_strided(&self, req: BatchedGemm<'_, CudaSlice<f32>>) -> Result<()> {
        req.validate(false, CudaSlice::len)?;
        let ((g, batch), a, b, c) = (&req.spec, req.a, req.b, req.out);
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        if g.k == 0 {
            return self.gemm_empty("gemm_strided", g, batch.count, batch.stride_c, c);
        }
        let cfg = gemm_config(g, g.alpha as f32, g.beta as f32)?;
        if batch.count == 1 {
            // SAFETY: as in `gemm`: validated, the first matrices of a, b, c
            // lie inside their buffers.
            return unsafe { self.blas().gemm(cfg, b, a, c) }.map_err(blas("gemm_strided"));
        }
        let cfg = batched_config(
            g,
            cfg.alpha,
            cfg.beta,
            batch.count,
            [batch.stride_a, batch.stride_b, batch.stride_c],
        )?;
        // SAFETY: validated: matrix i of each buffer, at i·stride, lies
        // inside it, and the outputs do not overlap (stride_c ≥ m·n).
        unsafe { self.blas().gemm_strided_batched(cfg, b, a, c) }.map_err(blas("gemm_strided"))
    }

    /// All products into a temporary buffer (strided-batched, in chunks of
    /// at most 2²⁶ elements, 256 MiB), then per element of `c` one
    /// thread adds the products in order in `f64` and applies α and β in
    /// `f64`, rounding once.
    fn gemm_summed(&self, req: BatchedGemm<'_, CudaSlice<f32>>) -> Result<()> {
        const OP: &str = "gemm_summed";
        req.validate(true, CudaSlice::len)?;
        let ((g, batch), a, b, c) = (&req.spec, req.a, req.b, req.out);
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        let (mn, mn64) = (g.m * g.n, (g.m * g.n) as u64);
        // Products per chunk, and their cuBLAS call (checked before anything
        // is allocated or launched); none when k = 0 (empty products).
        let plan = if g.k > 0 {
            let chunk = (SUM_CHUNK_ELEMS / mn).clamp(1, batch.count);
            let strides = [batch.stride_a, batch.stride_b, mn];
            Some((chunk, batched_config(g, 1.0, 0.0, chunk, strides)?))
        } else {
            None
        };
        let stream = self.stream();
        // Zero: the sum of no products (k = 0).
        let mut acc = stream.alloc_zeros::<f64>(mn).map_err(device(OP))?;
        if let Some((chunk, full)) = plan {
            // SAFETY: every element the reduction reads is first written by
            // the GEMM (β = 0 writes all of its `len · m·n` outputs).
            let mut prod = unsafe { stream.alloc::<f32>(chunk * mn) }.map_err(device(OP))?;
            for first in (0..batch.count).step_by(chunk) {
                let len = chunk.min(batch.count - first);
                let cfg = StridedBatchedConfig {
                    // len ≤ chunk, which fits in an int (checked by `full`).
                    batch_size: len as i32,
                    ..full
                };
                let av = a.slice(first * batch.stride_a..);
                let bv = b.slice(first * batch.stride_b..);
                // SAFETY: validated: product i < count of a and b lies inside
                // its buffer, so from product `first` on, inside the views;
                // `prod` holds chunk · m·n ≥ len · m·n elements.
                unsafe { self.blas().gemm_strided_batched(cfg, &bv, &av, &mut prod) }
                    .map_err(blas(OP))?;
                let (len, is_first) = (len as u64, i32::from(first == 0));
                launch!(self, OP, "gemm_sum_chunk", grid(mn64);
                    &prod, &len, &mn64, &is_first, &mut acc)?;
            }
        }
        let has_beta = i32::from(g.beta != 0.0);
        launch!(self, OP, "gemm_sum_finish", grid(mn64);
            &acc, &mn64, &g.alpha, &g.beta, &has_beta, c)
    }
}

impl ConvOps for Cuda {
    fn im2col(&self, conv: &Conv2d, x: &CudaSlice<f32>, col: &mut CudaSlice<f32>) -> Result<()> {
        conv.validate_buffers(x.len(), col.len())?;
        self.unfold_kernel("im2col", conv, x, col)
    }

    fn col2im(&self, conv: &Conv2d, col: &CudaSlice<f32>, x: &mut CudaSlice<f32>) -> Result<()> {
        conv.validate_buffers(x.len(), col.len())?;
        self.unfold_kernel("col2im", conv, col, x)
    }
}

impl PoolOps for Cuda {
    fn pool_forward(&self, p: &Pool2d, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        p.validate_buffers(x.len(), y.len())?;
        if y.is_empty() {
            return Ok(());
        }
        let ([planes, h, w, k, s, pd, oh, ow], kind) = pool_args(p);
        let cfg = grid(y.len() as u64);
        launch!(self, "pool_forward", "pool_forward", cfg;
            x, y, &planes, &h, &w, &k, &s, &pd, &oh, &ow, &kind)
    }

    fn pool_backward(&self, req: Operands<'_, Pool2d, CudaSlice<f32>>) -> Result<()> {
        let (p, x, dy, dx) = (&req.spec, req.a, req.b, req.out);
        p.validate_backward(x.len(), dy.len(), dx.len())?;
        if dx.is_empty() {
            return Ok(());
        }
        let ([planes, h, w, k, s, pd, oh, ow], kind) = pool_args(p);
        let cfg = grid(dx.len() as u64);
        launch!(self, "pool_backward", "pool_backward", cfg;
            x, dy, dx, &planes, &h, &w, &k, &s, &pd, &oh, &ow, &kind)
    }
}

impl BatchNormOps for Cuda {
    /// Two deterministic per-channel reductions in `f64` (the mean, then
    /// the squares about the unrounded `f64` mean), as the reference's two
    /// passes.
    fn batch_norm_stats(&self, pass: BatchNormStatsPass<'_, CudaSlice<f32>>) -> Result<()> {
        const OP: &str = "batch_norm_stats";
        pass.validate(CudaSlice::len)?;
        let (bn, x, mean, var) = (&pass.bn, pass.x, pass.mean, pass.var);
        let m = (bn.batch * bn.spatial) as f64;
        let stream = self.stream();
        let mut mean64 = stream.alloc_zeros::<f64>(bn.channels).map_err(device(OP))?;
        let mut var64 = stream.alloc_zeros::<f64>(bn.channels).map_err(device(OP))?;
        self.channel_sums(OP, x, None, bn.channels, bn.spatial, m, &mut mean64, mean)?;
        self.channel_sums(
            OP,
            x,
            Some(&mean64),
            bn.channels,
            bn.spatial,
            m,
            &mut var64,
            var,
        )
    }

    fn batch_norm_forward(&self, pass: BatchNormForwardPass<'_, CudaSlice<f32>>) -> Result<()> {
        pass.validate(CudaSlice::len)?;
        let (bn, BatchNormStats { mean, var }) = (&pass.bn, pass.stats);
        let (x, y, gamma, beta) = (pass.x, pass.y, pass.gamma, pass.beta);
        let (n, channels, spatial) = (bn.len() as u64, bn.channels as u64, bn.spatial as u64);
        launch!(self, "batch_norm_forward", "bn_forward", grid(n);
            x, gamma, beta, mean, var, &bn.eps, &n, &channels, &spatial, y)
    }

    fn batch_norm_backward(&self, pass: BatchNormBackwardPass<'_, CudaSlice<f32>>) -> Result<()> {
        const OP: &str = "batch_norm_backward";
        pass.validate(CudaSlice::len)?;
        let (bn, BatchNormStats { mean, var }) = (&pass.bn, pass.stats);
        let BatchNormGrads { dx, dgamma, dbeta } = pass.grads;
        let (x, dy, gamma) = (pass.x, pass.dy, pass.gamma);
        let stream = self.stream();
        let (n, channels, spatial) = (bn.len() as u64, bn.channels as u64, bn.spatial as u64);
        let m = (bn.batch * bn.spatial) as u64;
        let (slices, per) = slices_of(m);
        let parts = (channels * slices) as usize;
        let mut pg = stream.alloc_zeros::<f64>(parts).map_err(device(OP))?;
        let mut pb = stream.alloc_zeros::<f64>(parts).map_err(device(OP))?;
        let mut sums = stream
            .alloc_zeros::<f64>(2 * bn.channels)
            .map_err(device(OP))?;
        launch!(self, OP, "bn_grad_partials", channel_grid(channels, slices);
            x, dy, mean, var, &bn.eps, &channels, &spatial, &m, &per, &mut pg, &mut pb)?;
        launch!(self, OP, "bn_grad_finish", grid(channels);
            &pg, &pb, &channels, &slices, &mut sums, dgamma, dbeta)?;
        let mf = m as f64;
        launch!(self, OP, "bn_backward", grid(n);
            x, dy, gamma, mean, var, &sums, &bn.eps, &mf, &n, &channels, &spatial, dx)
    }
}

impl LossOps for Cuda {
    /// One thread per row in `f64`; the row losses are copied to the host
    /// and added there in row order.
    fn softmax_cross_entropy(&self, req: CrossEntropy<'_, CudaSlice<f32>>) -> Result<f64> {
        const OP: &str = "softmax_cross_entropy";
        req.validate(CudaSlice::len)?;
        let (classes, logits, labels, dlogits) = (req.classes, req.logits, req.labels, req.dlogits);
        let stream = self.stream();
        let rows = labels.len();
        let labels_dev = stream.clone_htod(labels).map_err(device(OP))?;
        let mut losses = stream.alloc_zeros::<f64>(rows).map_err(device(OP))?;
        let (rows64, classes64) = (rows as u64, classes as u64);
        launch!(self, OP, "softmax_xent_rows", grid(rows64);
            logits, &labels_dev, &rows64, &classes64, dlogits, &mut losses)?;
        let host = stream.clone_dtoh(&losses).map_err(device(OP))?;
        self.synchronize()?;
        // Summed in row order from 0.0, as the reference does.
        let mut total = 0.0;
        for l in host {
            total += l;
        }
        Ok(total / rows as f64)
    }
}

impl MapOps for Cuda {
    fn relu(&self, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        check_len("relu output", x.len(), y.len())?;
        self.map_kernel(("relu", "map_relu"), x, y)
    }

    fn relu_backward(
        &self,
        x: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        check_len("relu gradient", x.len(), dy.len())?;
        check_len("relu input gradient", x.len(), dx.len())?;
        let n = x.len() as u64;
        if n == 0 {
            return Ok(());
        }
        launch!(self, "relu_backward", "map_relu_backward", grid(n); x, dy, dx, &n)
    }

    fn scale(&self, alpha: f32, x: &mut CudaSlice<f32>) -> Result<()> {
        let n = x.len() as u64;
        if n == 0 {
            return Ok(());
        }
        launch!(self, "scale", "map_scale", grid(n); &alpha, x, &n)
    }

    fn add(&self, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        check_len("add operands", y.len(), x.len())?;
        self.map_kernel(("add", "map_add"), x, y)
    }

    fn mul(&self, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        check_len("mul operands", y.len(), x.len())?;
        self.map_kernel(("mul", "map_mul"), x, y)
    }

    fn fill(&self, value: f32, x: &mut CudaSlice<f32>) -> Result<()> {
        let n = x.len() as u64;
        if n == 0 {
            return Ok(());
        }
        launch!(self, "fill", "map_fill", grid(n); &value, x, &n)
    }

    fn add_bias(&self, bias: &CudaSlice<f32>, inner: usize, x: &mut CudaSlice<f32>) -> Result<()> {
        r::check_bias(bias.len(), inner, x.len())?;
        let n = x.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let (channels, inner) = (bias.len() as u64, inner as u64);
        launch!(self, "add_bias", "add_bias", grid(n); bias, x, &n, &channels, &inner)
    }

    /// Deterministic per-channel `f64` sums (partial sums per channel and
    /// slice, then the slices in order), rounded once.
    fn bias_grad(&self, dy: &CudaSlice<f32>, inner: usize, db: &mut CudaSlice<f32>) -> Result<()> {
        r::check_bias(db.len(), inner, dy.len())?;
        if dy.is_empty() {
            // The reference's empty sums (Rust's f64 `sum` starts at −0.0).
            return self.fill(-0.0, db);
        }
        let channels = db.len();
        let mut sums = self
            .stream()
            .alloc_zeros::<f64>(channels)
            .map_err(device("bias_grad"))?;
        self.channel_sums("bias_grad", dy, None, channels, inner, 1.0, &mut sums, db)
    }
}

#[cfg(test)]
mod tests {
    //! The cuBLAS calls checked without a GPU: a plain-loop model of
    //! `cublasSgemmStridedBatched` as cuBLAS documents it (column-major,
    //! argument rules included) runs the configurations built here and must
    //! reproduce the row-major reference bit for bit (both sum over `p` in
    //! order in `f32`).

    use super::*;
    use smoothout::tensor::GemmBatch;

    /// `op(X)(i, p)` of a column-major matrix with leading dimension `ld`.
    fn at(x: &[f32], trans: cublasOperation_t, ld: usize, i: usize, p: usize) -> f32 {
        match trans {
            cublasOperation_t::CUBLAS_OP_N => x[i + p * ld],
            _ => x[p + i * ld],
        }
    }

    /// cuBLAS's strided-batched SGEMM, by its documentation: for each batch
    /// entry, `C = α op(A) op(B) + β C` (`C` not read when `β = 0`), with
    /// `lda ≥ max(1, rows of A as stored)` and likewise `ldb`, `ldc`.
    fn model(cfg: &StridedBatchedConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        let g = &cfg.gemm;
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        let (lda, ldb, ldc) = (g.lda as usize, g.ldb as usize, g.ldc as usize);
        let stored_a = if g.transa == cublasOperation_t::CUBLAS_OP_N {
            m
        } else {
            k
        };
        let stored_b = if g.transb == cublasOperation_t::CUBLAS_OP_N {
            k
        } else {
            n
        };
        assert!(lda >= stored_a.max(1), "lda {lda} < {stored_a}");
        assert!(ldb >= stored_b.max(1), "ldb {ldb} < {stored_b}");
        assert!(ldc >= m.max(1), "ldc {ldc} < {m}");
        for q in 0..cfg.batch_size as usize {
            let a = &a[q * cfg.stride_a as usize..];
            let b = &b[q * cfg.stride_b as usize..];
            let c = &mut c[q * cfg.stride_c as usize..];
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0.0f32;
                    for p in 0..k {
                        acc += at(a, g.transa, lda, i, p) * at(b, g.transb, ldb, p, j);
                    }
                    let o = &mut c[i + j * ldc];
                    *o = if g.beta == 0.0 {
                        g.alpha * acc
                    } else {
                        g.alpha * acc + g.beta * *o
                    };
                }
            }
        }
    }

    fn data(len: usize, salt: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn same_bits(what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (x, y)) in got.iter().zip(want).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn gemm_config_is_the_row_major_product() {
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (7, 2, 1), (1, 9, 4), (17, 13, 65)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta) in [(1.0, 0.0), (-1.25, -0.75)] {
                    let g = Gemm::new(m, n, k).transposed(ta, tb).scaled(alpha, beta);
                    let (a, b) = (data(m * k, 1), data(k * n, 2));
                    let c0 = if beta == 0.0 {
                        vec![f32::NAN; m * n]
                    } else {
                        data(m * n, 3)
                    };
                    let mut want = c0.clone();
                    r::gemm(&g, &a, &b, &mut want).unwrap();
                    let cfg = batched_config(&g, alpha as f32, beta as f32, 1, [0; 3]).unwrap();
                    let mut got = c0;
                    model(&cfg, &b, &a, &mut got);
                    same_bits(&format!("{g:?}"), &got, &want);
                }
            }
        }
    }

    #[test]
    fn batched_config_swaps_the_strides_with_the_operands() {
        let g = Gemm::new(3, 4, 5).transposed(true, false).scaled(0.5, 1.0);
        // a shared (stride 0), b with a gap, c with a gap.
        let batch = GemmBatch {
            count: 3,
            stride_a: 0,
            stride_b: 21,
            stride_c: 13,
        };
        let (a, b) = (data(15, 4), data(2 * 21 + 20, 5));
        let c0 = data(2 * 13 + 12, 6);
        let mut want = c0.clone();
        r::gemm_strided(BatchedGemm::new((g, batch), &a, &b, &mut want)).unwrap();
        let strides = [batch.stride_a, batch.stride_b, batch.stride_c];
        let cfg = batched_config(&g, 0.5, 1.0, batch.count, strides).unwrap();
        assert_eq!((cfg.stride_a, cfg.stride_b), (21, 0));
        let mut got = c0;
        model(&cfg, &b, &a, &mut got);
        same_bits("strided", &got, &want);
    }

    #[test]
    fn sizes_beyond_cublas_int_are_typed_errors() {
        let g = Gemm::new(1 << 31, 1, 1);
        assert!(matches!(
            gemm_config(&g, 1.0, 0.0),
            Err(Error::InvalidSetting { name: "gemm m", .. })
        ));
        let g = Gemm::new(1, 1, 1);
        assert!(matches!(
            batched_config(&g, 1.0, 0.0, 1 << 31, [1; 3]),
            Err(Error::InvalidSetting {
                name: "gemm batch count",
                ..
            })
        ));
    }

    #[test]
    fn slices_cover_every_element_once() {
        for m in [
            1,
            2,
            255,
            8191,
            8192,
            8193,
            2 * 1024 * 1024,
            1 << 24,
            (1 << 24) + 7,
        ] {
            let (slices, per) = slices_of(m);
            assert!((1..=MAX_SLICES).contains(&slices), "{m}");
            assert!(
                slices * per >= m && (slices - 1) * per < m,
                "{m}: {slices} × {per}"
            );
        }
    }
}
