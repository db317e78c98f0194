//! Tensor operations the layers need, as requests (plain data) and small ops
//! traits: GEMM, im2col/col2im convolution, pooling, batch normalisation,
//! softmax cross-entropy and element-wise maps.
//!
//! Every buffer is flat and row-major; the request says how to read it.
//! Images are `NCHW`. A length or shape that does not fit the request is a
//! typed [`Error`], never a panic. The plain-loop ground truth is
//! [`crate::tensor::reference`].

use crate::backend::{Backend, BackendTypes, BufferOps};

pub mod reference;

pub use crate::error::check_len;
use crate::error::{Error, Result};

fn positive(name: &'static str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::InvalidSetting {
            name,
            value: 0.0,
            expected: "at least 1",
        });
    }
    Ok(())
}

fn product(what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |p, &d| p.checked_mul(d))
        .ok_or(Error::InvalidSetting {
            name: what,
            value: f64::INFINITY,
            expected: "a size that fits in usize",
        })
}

/// A general matrix product, row-major:
///
/// ```text
/// c ← α · op(a) · op(b) + β · c      op(a): m × k, op(b): k × n, c: m × n
/// op(x) = xᵀ when trans_x (then a is stored k × m, b is stored n × k)
/// ```
///
/// When `beta == 0`, `c` is not read (NaN or infinity in it do not
/// propagate), as in BLAS.
///
/// ```
/// use smoothout::Reference;
/// use smoothout::tensor::{Gemm, MatmulOps, Operands};
/// let g = Gemm::new(1, 1, 2);
/// let mut c = vec![0.0f32];
/// Reference::new().gemm(Operands::new(g, &vec![1.0, 2.0], &vec![3.0, 4.0], &mut c))?;
/// assert_eq!(c, [11.0]);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Rows of `op(a)` and `c`.
    pub m: usize,
    /// Columns of `op(b)` and `c`.
    pub n: usize,
    /// The reduction length: columns of `op(a)`, rows of `op(b)`.
    pub k: usize,
    /// Use `aᵀ` (a stored `k × m`).
    pub trans_a: bool,
    /// Use `bᵀ` (b stored `n × k`).
    pub trans_b: bool,
    /// α.
    pub alpha: f64,
    /// β.
    pub beta: f64,
}

impl Gemm {
    /// `c ← a · b` for `a: m × k`, `b: k × n` (α = 1, β = 0, no transposes).
    #[must_use]
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Gemm {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// The same request with these transposes.
    #[must_use]
    pub fn transposed(self, trans_a: bool, trans_b: bool) -> Self {
        Gemm {
            trans_a,
            trans_b,
            ..self
        }
    }

    /// The same request with these α and β.
    #[must_use]
    pub fn scaled(self, alpha: f64, beta: f64) -> Self {
        Gemm {
            alpha,
            beta,
            ..self
        }
    }

    /// Checks the buffer lengths (`m·k`, `k·n`, `m·n`) and that α and β
    /// are finite.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] naming the operand; [`Error::InvalidSetting`]
    /// for a non-finite α or β, or sizes whose product overflows.
    pub fn validate(&self, a: usize, b: usize, c: usize) -> Result<()> {
        self.validate_scalars()?;
        check_len("gemm a (m·k)", product("gemm m·k", &[self.m, self.k])?, a)?;
        check_len("gemm b (k·n)", product("gemm k·n", &[self.k, self.n])?, b)?;
        check_len("gemm c (m·n)", product("gemm m·n", &[self.m, self.n])?, c)
    }

    fn validate_scalars(&self) -> Result<()> {
        for (name, v) in [("gemm alpha", self.alpha), ("gemm beta", self.beta)] {
            if !v.is_finite() {
                return Err(Error::InvalidSetting {
                    name,
                    value: v,
                    expected: "finite",
                });
            }
        }
        Ok(())
    }

    /// The matrix sizes `(m·k, k·n, m·n)`, checked for overflow.
    fn sizes(&self) -> Result<(usize, usize, usize)> {
        Ok((
            product("gemm m·k", &[self.m, self.k])?,
            product("gemm k·n", &[self.k, self.n])?,
            product("gemm m·n", &[self.m, self.n])?,
        ))
    }
}

/// A batch of `count` equally shaped [`Gemm`]s over matrices stored at a
/// fixed stride in three flat buffers: matrix `i` of `x` (`a`, `b` or `c`)
/// is the one of [`Gemm`]'s layout starting at element `i · stride_x`.
/// A stride of 0 shares one matrix across the batch (the weights of a
/// convolution, say); strides larger than the matrix leave gaps, which are
/// neither read nor written. Buffers may be longer than the last matrix
/// needs.
///
/// Two operations take it ([`MatmulOps::gemm_strided`],
/// [`MatmulOps::gemm_summed`]):
///
/// ```text
/// strided: c_i ← α · op(a_i) · op(b_i) + β · c_i          i = 0, 1, …, count − 1
/// summed:  c   ← α · Σ_i op(a_i) · op(b_i) + β · c        (stride_c must be 0)
/// ```
///
/// A convolution over `N` images is one strided product (`a` the shared
/// weights, `b` the images' column matrices), and its weight gradient one
/// summed product.
///
/// ```
/// use smoothout::Reference;
/// use smoothout::tensor::{BatchedGemm, Gemm, GemmBatch, MatmulOps};
/// // Two 1 × 2 by 2 × 1 products sharing a = [1, 2].
/// let g = Gemm::new(1, 1, 2);
/// let batch = GemmBatch { count: 2, stride_a: 0, stride_b: 2, stride_c: 1 };
/// let (a, b) = (vec![1.0f32, 2.0], vec![3.0, 4.0, 5.0, 6.0]);
/// let mut c = vec![0.0; 2];
/// Reference::new().gemm_strided(BatchedGemm::new((g, batch), &a, &b, &mut c))?;
/// assert_eq!(c, [11.0, 17.0]);
/// let mut sum = vec![0.0];
/// let batch = GemmBatch { stride_c: 0, ..batch };
/// Reference::new().gemm_summed(BatchedGemm::new((g, batch), &a, &b, &mut sum))?;
/// assert_eq!(sum, [28.0]);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmBatch {
    /// Number of products (at least 1).
    pub count: usize,
    /// Elements from one `a` matrix to the next (0: one shared `a`).
    pub stride_a: usize,
    /// Elements from one `b` matrix to the next (0: one shared `b`).
    pub stride_b: usize,
    /// Elements from one `c` matrix to the next: at least `m·n` when
    /// `count > 1` for the strided form (outputs must not overlap), 0 for
    /// the summed form (one output).
    pub stride_c: usize,
}

impl GemmBatch {
    /// Checks a batched request against the buffer lengths: `count ≥ 1`,
    /// α and β finite (as [`Gemm::validate`]), every addressed matrix
    /// inside its buffer
    ///
    /// ```text
    /// (count − 1) · stride_a + m·k ≤ a_len     (likewise b with k·n, c with m·n)
    /// ```
    ///
    /// and, for the strided form (`summed == false`) with `count > 1`,
    /// `stride_c ≥ m·n`; for the summed form, `stride_c == 0`. All the
    /// arithmetic is checked: an overflow is an error, never a panic.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the field (`count`, a stride, α, β)
    /// or the size that overflows; [`Error::LengthMismatch`] naming the
    /// buffer a matrix runs past, with the length it needs.
    pub fn validate(
        &self,
        g: &Gemm,
        a_len: usize,
        b_len: usize,
        c_len: usize,
        summed: bool,
    ) -> Result<()> {
        positive("gemm batch count", self.count)?;
        g.validate_scalars()?;
        let (ma, mb, mc) = g.sizes()?;
        let last = self.count - 1;
        let fits = |stride_name: &'static str,
                    what: &'static str,
                    stride: usize,
                    size: usize,
                    len: usize| {
            let end = last
                .checked_mul(stride)
                .and_then(|s| s.checked_add(size))
                .ok_or(Error::InvalidSetting {
                    name: stride_name,
                    value: stride as f64,
                    expected: "(count − 1) · stride + matrix size that fits in usize",
                })?;
            if end > len {
                return Err(Error::LengthMismatch {
                    what,
                    expected: end,
                    actual: len,
                });
            }
            Ok(())
        };
        fits(
            "gemm batch stride_a",
            "gemm batch a (at least (count − 1)·stride_a + m·k)",
            self.stride_a,
            ma,
            a_len,
        )?;
        fits(
            "gemm batch stride_b",
            "gemm batch b (at least (count − 1)·stride_b + k·n)",
            self.stride_b,
            mb,
            b_len,
        )?;
        if summed {
            if self.stride_c != 0 {
                return Err(Error::InvalidSetting {
                    name: "gemm batch stride_c",
                    value: self.stride_c as f64,
                    expected: "0 for a summed product (one output matrix)",
                });
            }
        } else if self.count > 1 && self.stride_c < mc {
            return Err(Error::InvalidSetting {
                name: "gemm batch stride_c",
                value: self.stride_c as f64,
                expected: "at least m·n when count > 1 (outputs must not overlap)",
            });
        }
        fits(
            "gemm batch stride_c",
            "gemm batch c (at least (count − 1)·stride_c + m·n)",
            self.stride_c,
            mc,
            c_len,
        )
    }

    /// The element ranges of matrix `i` of `a`, `b` and `c` (meaningful
    /// once [`GemmBatch::validate`] passed and `i < count`).
    #[must_use]
    pub fn ranges(&self, g: &Gemm, i: usize) -> [core::ops::Range<usize>; 3] {
        let at = |stride: usize, size: usize| i * stride..i * stride + size;
        [
            at(self.stride_a, g.m * g.k),
            at(self.stride_b, g.k * g.n),
            at(self.stride_c, g.m * g.n),
        ]
    }

    /// The batch's products in order, each as the [`Gemm`] to run on its
    /// matrices and their [`GemmBatch::ranges`] (meaningful once
    /// [`GemmBatch::validate`] passed): `g` itself for every product of the
    /// strided form; for the summed form `g` for the first and `g` with
    /// β = 1 for every later one, so that they accumulate into the one `c`.
    /// Both batched forms are these GEMMs, run in this order.
    pub fn products(
        &self,
        g: &Gemm,
        summed: bool,
    ) -> impl Iterator<Item = (Gemm, [core::ops::Range<usize>; 3])> {
        let (batch, first) = (*self, *g);
        let rest = if summed {
            g.scaled(g.alpha, 1.0)
        } else {
            first
        };
        (0..self.count).map(move |i| (if i == 0 { first } else { rest }, batch.ranges(&first, i)))
    }
}

/// The two operands and the output of a product-like operation, with what
/// to compute (`spec`), as one request: a [`Gemm`] ([`MatmulOps::gemm`]), a
/// [`BatchedGemm`] (`spec`: the product and the batch), a [`ConvPass`]
/// (`spec`: the geometry and the number of filters) or a [`Pool2d`]
/// ([`PoolOps::pool_backward`]). The operation's documentation says what
/// `a`, `b` and `out` hold.
#[derive(Debug)]
pub struct Operands<'a, Spec, Buf: ?Sized> {
    /// What to compute.
    pub spec: Spec,
    /// The left operand.
    pub a: &'a Buf,
    /// The right operand.
    pub b: &'a Buf,
    /// The output.
    pub out: &'a mut Buf,
}

impl<'a, Spec, Buf: ?Sized> Operands<'a, Spec, Buf> {
    /// The request `spec` over `a`, `b` and `out`.
    #[must_use]
    pub fn new(spec: Spec, a: &'a Buf, b: &'a Buf, out: &'a mut Buf) -> Self {
        Operands { spec, a, b, out }
    }

    /// The same request over the buffers' elements (a request on `Vec`s,
    /// say, as one on slices).
    #[must_use]
    pub fn slices<T>(self) -> Operands<'a, Spec, [T]>
    where
        Buf: core::ops::DerefMut<Target = [T]>,
    {
        Operands::new(self.spec, self.a, self.b, self.out)
    }
}

/// A batched GEMM request ([`MatmulOps::gemm_strided`],
/// [`MatmulOps::gemm_summed`]): `spec` is the product and the batch, `a` and
/// `b` hold the operands' matrices and `out` the `c` matrices (the one `c`
/// of a summed product); it checks itself ([`BatchedGemm::validate`]).
pub type BatchedGemm<'a, Buf> = Operands<'a, (Gemm, GemmBatch), Buf>;

impl<Buf: ?Sized> BatchedGemm<'_, Buf> {
    /// [`GemmBatch::validate`] with the buffers' lengths, measured by `len`.
    ///
    /// # Errors
    /// As [`GemmBatch::validate`].
    pub fn validate(&self, summed: bool, len: impl Fn(&Buf) -> usize) -> Result<()> {
        let (g, batch) = &self.spec;
        batch.validate(g, len(self.a), len(self.b), len(self.out), summed)
    }
}

/// The geometry of a 2-D convolution over `NCHW` images, square stride and
/// zero padding on every side:
///
/// ```text
/// out_h = (height + 2·padding − kernel_h) / stride + 1
/// out_w = (width  + 2·padding − kernel_w) / stride + 1
/// col   = batch × (channels·kernel_h·kernel_w) × (out_h·out_w)
/// ```
///
/// Row `(c·kernel_h + i)·kernel_w + j` of an image's column matrix holds,
/// for every output position `(y, x)` (column `y·out_w + x`), the input
/// element `(c, y·stride + i − padding, x·stride + j − padding)`, or zero
/// outside the image; so a convolution is
/// `out = weights (filters × channels·kh·kw) · col`, one GEMM per image.
///
/// ```
/// use smoothout::tensor::Conv2d;
/// let c = Conv2d { batch: 2, channels: 3, height: 32, width: 32,
///                  kernel_h: 5, kernel_w: 5, stride: 1, padding: 2 };
/// c.validate()?;
/// assert_eq!((c.out_h(), c.out_w(), c.col_rows()), (32, 32, 75));
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Images (N).
    pub batch: usize,
    /// Input channels (C).
    pub channels: usize,
    /// Input height (H).
    pub height: usize,
    /// Input width (W).
    pub width: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl Conv2d {
    /// Output height (meaningful once [`Conv2d::validate`] passed).
    #[must_use]
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding).saturating_sub(self.kernel_h) / self.stride.max(1) + 1
    }
    /// Output width (meaningful once [`Conv2d::validate`] passed).
    #[must_use]
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding).saturating_sub(self.kernel_w) / self.stride.max(1) + 1
    }
    /// Rows of one image's column matrix: `channels · kernel_h · kernel_w`.
    #[must_use]
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }
    /// Columns of one image's column matrix: `out_h · out_w`.
    #[must_use]
    pub fn col_cols(&self) -> usize {
        self.out_h() * self.out_w()
    }
    /// Elements of one input image: `channels · height · width`.
    #[must_use]
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Elements of the whole batch's column matrix, `batch · col_rows ·
    /// col_cols`.
    #[must_use]
    pub fn col_len(&self) -> usize {
        self.batch * self.col_rows() * self.col_cols()
    }

    /// The GEMM of one image's forward product, `y_n = W · col_n` (`W`:
    /// `filters × col_rows`), and the batch of them ([`ConvOps::conv_forward`]).
    #[must_use]
    pub fn forward_gemm(&self, filters: usize) -> (Gemm, GemmBatch) {
        let (rows, cols) = (self.col_rows(), self.col_cols());
        let batch = GemmBatch {
            count: self.batch,
            stride_a: 0,
            stride_b: rows * cols,
            stride_c: filters * cols,
        };
        (Gemm::new(filters, cols, rows), batch)
    }

    /// The GEMM of one image's weight-gradient product, `dW += dy_n ·
    /// col_nᵀ` (β = 1), and the summed batch of them
    /// ([`ConvOps::conv_weight_grad`]).
    #[must_use]
    pub fn weight_grad_gemm(&self, filters: usize) -> (Gemm, GemmBatch) {
        let (rows, cols) = (self.col_rows(), self.col_cols());
        let g = Gemm::new(filters, rows, cols)
            .transposed(false, true)
            .scaled(1.0, 1.0);
        let batch = GemmBatch {
            count: self.batch,
            stride_a: filters * cols,
            stride_b: rows * cols,
            stride_c: 0,
        };
        (g, batch)
    }

    /// The GEMM of one image's column gradient, `dcol_n = Wᵀ · dy_n`, and
    /// the batch of them ([`ConvOps::conv_input_grad`]).
    #[must_use]
    pub fn input_grad_gemm(&self, filters: usize) -> (Gemm, GemmBatch) {
        let (rows, cols) = (self.col_rows(), self.col_cols());
        let batch = GemmBatch {
            count: self.batch,
            stride_a: 0,
            stride_b: filters * cols,
            stride_c: rows * cols,
        };
        (
            Gemm::new(rows, cols, filters).transposed(true, false),
            batch,
        )
    }

    /// Checks that every size is at least 1 and the padded image holds the
    /// kernel.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the field.
    pub fn validate(&self) -> Result<()> {
        positive("conv batch", self.batch)?;
        positive("conv channels", self.channels)?;
        positive("conv height", self.height)?;
        positive("conv width", self.width)?;
        positive("conv kernel_h", self.kernel_h)?;
        positive("conv kernel_w", self.kernel_w)?;
        positive("conv stride", self.stride)?;
        if self.height + 2 * self.padding < self.kernel_h {
            return Err(Error::InvalidSetting {
                name: "conv kernel_h",
                value: self.kernel_h as f64,
                expected: "at most height + 2·padding",
            });
        }
        if self.width + 2 * self.padding < self.kernel_w {
            return Err(Error::InvalidSetting {
                name: "conv kernel_w",
                value: self.kernel_w as f64,
                expected: "at most width + 2·padding",
            });
        }
        product(
            "conv sizes",
            &[self.batch, self.col_rows(), self.out_h(), self.out_w()],
        )?;
        product("conv sizes", &[self.batch, self.image_len()])?;
        Ok(())
    }

    /// [`Conv2d::validate`], then the image and column buffer lengths.
    ///
    /// # Errors
    /// As [`Conv2d::validate`]; [`Error::LengthMismatch`] for a buffer.
    pub fn validate_buffers(&self, x: usize, col: usize) -> Result<()> {
        self.validate()?;
        check_len("conv input (N·C·H·W)", self.batch * self.image_len(), x)?;
        check_len("conv columns (N·C·kh·kw·out_h·out_w)", self.col_len(), col)
    }
}

/// A convolution-product request ([`ConvOps::conv_forward`],
/// [`ConvOps::conv_weight_grad`], [`ConvOps::conv_input_grad`]): `spec` is
/// the geometry and the number of filters (the rows of `W`), then the op's
/// two operands and its output, in the order of the op's formula:
///
/// ```text
/// op                 a    b    out
/// conv_forward       W    x    y    (overwritten)
/// conv_weight_grad   x    dy   dW   (added into)
/// conv_input_grad    W    dy   dx   (added into)
/// ```
///
/// `W` is `filters × (channels·kh·kw)`, `x` and `dx` are
/// `batch × channels × height × width`, `y` and `dy` are
/// `batch × filters × (out_h·out_w)`.
///
/// ```
/// use smoothout::Reference;
/// use smoothout::tensor::{Conv2d, ConvOps, ConvPass};
/// // One 1 × 2 × 2 image, one 1 × 1 filter of weight 2.
/// let conv = Conv2d { batch: 1, channels: 1, height: 2, width: 2,
///                     kernel_h: 1, kernel_w: 1, stride: 1, padding: 0 };
/// let (w, x) = (vec![2.0f32], vec![1.0, 2.0, 3.0, 4.0]);
/// let mut y = vec![0.0; 4];
/// Reference::new().conv_forward(ConvPass::new((conv, 1), &w, &x, &mut y))?;
/// assert_eq!(y, [2.0, 4.0, 6.0, 8.0]);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub type ConvPass<'a, Buf> = Operands<'a, (Conv2d, usize), Buf>;

/// The whole batch's columns of `x`: [`ConvOps::im2col`] into a new buffer.
fn unfolded<B: ConvOps + ?Sized>(backend: &B, conv: &Conv2d, x: &B::Buffer) -> Result<B::Buffer> {
    let mut col = backend.zeros(conv.col_len())?;
    backend.im2col(conv, x, &mut col)?;
    Ok(col)
}

/// Which reduction a pooling window applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest element of the window (padding never wins).
    Max,
    /// The sum of the window divided by `kernel²`, padding counted as zeros
    /// (PyTorch's `count_include_pad = true`).
    Avg,
}

/// A square pooling window over `NCHW` images:
///
/// ```text
/// out_h = (height + 2·padding − kernel) / stride + 1    (likewise out_w)
/// ```
///
/// `padding ≤ kernel / 2`, so every window overlaps the image.
///
/// ```
/// use smoothout::tensor::{Pool2d, PoolKind};
/// let p = Pool2d { batch: 1, channels: 64, height: 32, width: 32,
///                  kernel: 3, stride: 2, padding: 0, kind: PoolKind::Max };
/// p.validate()?;
/// assert_eq!((p.out_h(), p.out_w()), (15, 15));
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Images (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window side.
    pub kernel: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Padding on each side.
    pub padding: usize,
    /// Max or average.
    pub kind: PoolKind,
}

impl Pool2d {
    /// Output height (meaningful once [`Pool2d::validate`] passed).
    #[must_use]
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding).saturating_sub(self.kernel) / self.stride.max(1) + 1
    }
    /// Output width (meaningful once [`Pool2d::validate`] passed).
    #[must_use]
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding).saturating_sub(self.kernel) / self.stride.max(1) + 1
    }
    /// Number of `height × width` planes: `batch · channels`.
    #[must_use]
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Checks sizes ≥ 1, `padding ≤ kernel / 2` and that the padded image
    /// holds the window.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the field.
    pub fn validate(&self) -> Result<()> {
        positive("pool batch", self.batch)?;
        positive("pool channels", self.channels)?;
        positive("pool height", self.height)?;
        positive("pool width", self.width)?;
        positive("pool kernel", self.kernel)?;
        positive("pool stride", self.stride)?;
        if 2 * self.padding > self.kernel {
            return Err(Error::InvalidSetting {
                name: "pool padding",
                value: self.padding as f64,
                expected: "at most kernel / 2",
            });
        }
        if self.height + 2 * self.padding < self.kernel
            || self.width + 2 * self.padding < self.kernel
        {
            return Err(Error::InvalidSetting {
                name: "pool kernel",
                value: self.kernel as f64,
                expected: "at most height + 2·padding and width + 2·padding",
            });
        }
        product(
            "pool sizes",
            &[
                self.planes(),
                self.height,
                self.width,
                self.out_h(),
                self.out_w(),
            ],
        )?;
        Ok(())
    }

    /// [`Pool2d::validate`], then the input and output lengths.
    ///
    /// # Errors
    /// As [`Pool2d::validate`]; [`Error::LengthMismatch`] for a buffer.
    pub fn validate_buffers(&self, x: usize, y: usize) -> Result<()> {
        self.validate()?;
        check_len(
            "pool input (N·C·H·W)",
            self.planes() * self.height * self.width,
            x,
        )?;
        check_len(
            "pool output (N·C·out_h·out_w)",
            self.planes() * self.out_h() * self.out_w(),
            y,
        )
    }

    /// The lengths of a [`PoolOps::pool_backward`] request: `x` and `dy`
    /// as [`Pool2d::validate_buffers`] has them, `dx` as `x`.
    ///
    /// # Errors
    /// As [`Pool2d::validate_buffers`]; [`Error::LengthMismatch`] for `dx`.
    pub fn validate_backward(&self, x: usize, dy: usize, dx: usize) -> Result<()> {
        self.validate_buffers(x, dy)?;
        check_len("pool input gradient", x, dx)
    }
}

/// The layout of a batch-normalised tensor: `batch × channels × spatial`
/// (`spatial = 1` for BatchNorm1d, `H·W` for BatchNorm2d), and ε.
///
/// Statistics are per channel over the `M = batch · spatial` elements, the
/// variance biased (divided by `M`), as in training mode:
///
/// ```text
/// μ_c = Σ x / M      σ²_c = Σ (x − μ_c)² / M      x̂ = (x − μ_c) / √(σ²_c + ε)
/// y   = γ_c · x̂ + β_c
/// dβ_c = Σ dy        dγ_c = Σ dy · x̂
/// dx  = γ_c / (M · √(σ²_c + ε)) · (M · dy − dβ_c − x̂ · dγ_c)
/// ```
///
/// ```
/// use smoothout::tensor::BatchNorm;
/// BatchNorm { batch: 4, channels: 16, spatial: 64, eps: 1e-5 }.validate()?;
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    /// Samples (N).
    pub batch: usize,
    /// Channels (C): the length of γ, β, μ, σ².
    pub channels: usize,
    /// Elements per channel per sample (`H·W`, or 1).
    pub spatial: usize,
    /// ε added to the variance.
    pub eps: f64,
}

impl BatchNorm {
    /// Checks sizes ≥ 1 and `ε` finite and ≥ 0.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the field.
    pub fn validate(&self) -> Result<()> {
        positive("batch norm batch", self.batch)?;
        positive("batch norm channels", self.channels)?;
        positive("batch norm spatial", self.spatial)?;
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::InvalidSetting {
                name: "batch norm eps",
                value: self.eps,
                expected: "finite and >= 0",
            });
        }
        product(
            "batch norm sizes",
            &[self.batch, self.channels, self.spatial],
        )?;
        Ok(())
    }

    /// Elements of the tensor.
    #[must_use]
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Whether the tensor is empty (never, once validated).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`BatchNorm::validate`], then every tensor's length (`len`) and every
    /// per-channel buffer's length (`channels`).
    ///
    /// # Errors
    /// As [`BatchNorm::validate`]; [`Error::LengthMismatch`] for a buffer.
    pub fn validate_buffers(&self, tensors: &[usize], per_channel: &[usize]) -> Result<()> {
        self.validate()?;
        for &t in tensors {
            check_len("batch norm tensor (N·C·spatial)", self.len(), t)?;
        }
        for &c in per_channel {
            check_len("batch norm per-channel buffer (C)", self.channels, c)?;
        }
        Ok(())
    }
}

/// Matrix products (and a dense layer's product with its bias, which
/// needs [`MapOps`] where a backend does not fuse the two).
pub trait MatmulOps: BackendTypes + MapOps {
    /// `c ← α · op(a) · op(b) + β · c` (see [`Gemm`]): `spec` is the
    /// product, `out` is `c`.
    ///
    /// # Errors
    /// As [`Gemm::validate`].
    fn gemm(&self, req: Operands<'_, Gemm, Self::Buffer>) -> Result<()>;

    /// `count` independent products at fixed strides (see [`GemmBatch`]):
    ///
    /// ```text
    /// c_i ← α · op(a_i) · op(b_i) + β · c_i      i = 0, 1, …, count − 1
    /// ```
    ///
    /// Each product is one [`MatmulOps::gemm`] on the matrices' elements,
    /// with the same rounding (a backend may run them in any order or at
    /// once, since the outputs do not overlap). With `β = 0` no `c_i` is
    /// read; elements of `c` outside every `c_i` are left alone.
    ///
    /// # Errors
    /// As [`BatchedGemm::validate`] with `summed = false`.
    fn gemm_strided(&self, req: BatchedGemm<'_, Self::Buffer>) -> Result<()>;

    /// The sum of `count` products into one `m × n` matrix at the start of
    /// `c` (see [`GemmBatch`]; `stride_c` must be 0):
    ///
    /// ```text
    /// c ← α · Σ_i op(a_i) · op(b_i) + β · c
    /// ```
    ///
    /// The reference computes it as `count` GEMMs in order into the same
    /// `c`, the first with the request's β and every later one with β = 1
    /// (so with β = 1 a gradient accumulates, and with β = 0 `c` is not
    /// read). A backend may sum in another order — a GPU, say, all products
    /// at once and then one reduction — so backends are compared within the
    /// GEMM bound with `k` replaced by `count · k`.
    ///
    /// # Errors
    /// As [`BatchedGemm::validate`] with `summed = true`.
    fn gemm_summed(&self, req: BatchedGemm<'_, Self::Buffer>) -> Result<()>;

    /// A dense layer's forward product and its bias: [`MatmulOps::gemm`],
    /// then [`MapOps::add_bias`]`(bias, 1, c)` (a bias element per column
    /// of `c` where `bias.len() = n`), with the same bits. A backend may add
    /// the bias as it stores the product instead of in a pass over `c` of
    /// its own (the CPU backend does in `f32` on AVX-512).
    ///
    /// # Errors
    /// As [`MatmulOps::gemm`] and [`MapOps::add_bias`]; `c` may then hold
    /// the product.
    fn gemm_bias(&self, req: Operands<'_, Gemm, Self::Buffer>, bias: &Self::Buffer) -> Result<()> {
        let Operands { spec, a, b, out } = req;
        self.gemm(Operands::new(spec, a, b, out))?;
        self.add_bias(bias, 1, out)
    }
}

/// Convolution as GEMM: unfolding images into columns and folding back,
/// and the convolution products built on them (which need a backend's
/// [`MatmulOps`] and its buffers).
pub trait ConvOps: MatmulOps + BufferOps {
    /// `col ← im2col(x)` for every image (see [`Conv2d`]); `col` is
    /// overwritten.
    ///
    /// # Errors
    /// As [`Conv2d::validate_buffers`].
    fn im2col(&self, conv: &Conv2d, x: &Self::Buffer, col: &mut Self::Buffer) -> Result<()>;
    /// `x ← x + col2im(col)`: every column entry is added to the input
    /// element it was read from (padding entries are dropped); accumulates
    /// into `x`, the adjoint of [`ConvOps::im2col`].
    ///
    /// # Errors
    /// As [`Conv2d::validate_buffers`].
    fn col2im(&self, conv: &Conv2d, col: &Self::Buffer, x: &mut Self::Buffer) -> Result<()>;

    /// The convolution `y ← W ⊛ x` of every image (`a = W`, `b = x`,
    /// `out = y`, see [`ConvPass`]): per image, `y_n = W · col_n` with `col`
    /// from [`ConvOps::im2col`], as [`MatmulOps::gemm_strided`]. The
    /// provided body unfolds the whole batch at once; a backend may unfold
    /// one image at a time, with the same bits.
    ///
    /// # Errors
    /// As [`Conv2d::validate_buffers`] and [`GemmBatch::validate`].
    fn conv_forward(&self, pass: ConvPass<'_, Self::Buffer>) -> Result<()> {
        let (conv, filters) = pass.spec;
        let (col, product) = (unfolded(self, &conv, pass.b)?, conv.forward_gemm(filters));
        let done = self.gemm_strided(BatchedGemm::new(product, pass.a, &col, pass.out));
        self.recycle(col);
        done
    }

    /// `dW ← dW + Σ_n dy_n · col_nᵀ` (`a = x`, `b = dy`, `out = dW`: the
    /// weight gradient of [`ConvOps::conv_forward`], added into `dW`), as
    /// [`MatmulOps::gemm_summed`] with β = 1 does it: one product per image,
    /// in order. The provided body unfolds the whole batch at once; a
    /// backend may unfold one image at a time, with the same bits.
    ///
    /// # Errors
    /// As [`Conv2d::validate_buffers`] and [`GemmBatch::validate`].
    fn conv_weight_grad(&self, pass: ConvPass<'_, Self::Buffer>) -> Result<()> {
        let (conv, filters) = pass.spec;
        let (col, product) = (
            unfolded(self, &conv, pass.a)?,
            conv.weight_grad_gemm(filters),
        );
        let done = self.gemm_summed(BatchedGemm::new(product, pass.b, &col, pass.out));
        self.recycle(col);
        done
    }

    /// `dx ← dx + col2im(Wᵀ · dy_n)` for every image (`a = W`, `b = dy`,
    /// `out = dx`: the input gradient of [`ConvOps::conv_forward`], added
    /// into `dx`). The provided body folds the whole batch's columns at
    /// once; a backend may go one image at a time, with the same bits.
    ///
    /// # Errors
    /// As [`Conv2d::validate_buffers`] and [`GemmBatch::validate`].
    fn conv_input_grad(&self, pass: ConvPass<'_, Self::Buffer>) -> Result<()> {
        let conv = pass.spec.0;
        let mut dcol = self.zeros(conv.col_len())?;
        let product = conv.input_grad_gemm(pass.spec.1);
        let done = self
            .gemm_strided(BatchedGemm::new(product, pass.a, pass.b, &mut dcol))
            .and_then(|()| self.col2im(&conv, &dcol, pass.out));
        self.recycle(dcol);
        done
    }
}

/// Max and average pooling.
pub trait PoolOps: BackendTypes {
    /// `y ← pool(x)` (see [`Pool2d`]). Max pooling ignores padding.
    ///
    /// # Errors
    /// As [`Pool2d::validate_buffers`].
    fn pool_forward(&self, p: &Pool2d, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `dx ← ∂L/∂x` from `dy = ∂L/∂y` (`dx` is overwritten). Max pooling
    /// routes each window's gradient to its first maximal element in
    /// row-major order, recomputed from `x` (no index buffer); average
    /// pooling spreads `dy / kernel²` over the window's in-image elements.
    /// Overlapping windows add up.
    ///
    /// The request's `spec` is the pooling, `a` is `x`, `b` is `dy` and
    /// `out` is `dx`.
    ///
    /// # Errors
    /// As [`Pool2d::validate_buffers`]; `dx` must have `x`'s length and `dy`
    /// the output's.
    fn pool_backward(&self, req: Operands<'_, Pool2d, Self::Buffer>) -> Result<()>;
}

/// The per-channel mean and biased variance a batch-normalisation pass uses:
/// the batch's own (training) or the running ones (evaluation), `channels`
/// values each.
#[derive(Debug)]
pub struct BatchNormStats<'a, Buf: ?Sized> {
    /// μ, one per channel.
    pub mean: &'a Buf,
    /// σ² (biased), one per channel.
    pub var: &'a Buf,
}

impl<'a, Buf: ?Sized> BatchNormStats<'a, Buf> {
    /// The statistics `mean` and `var`.
    #[must_use]
    pub const fn new(mean: &'a Buf, var: &'a Buf) -> Self {
        BatchNormStats { mean, var }
    }
}

impl<Buf: ?Sized> Clone for BatchNormStats<'_, Buf> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Buf: ?Sized> Copy for BatchNormStats<'_, Buf> {}

/// The three gradients [`BatchNormOps::batch_norm_backward`] writes, each
/// overwritten: `dx` has the input's length, `dgamma` and `dbeta` one value
/// per channel.
#[derive(Debug)]
pub struct BatchNormGrads<'a, Buf: ?Sized> {
    /// ∂L/∂x.
    pub dx: &'a mut Buf,
    /// ∂L/∂γ.
    pub dgamma: &'a mut Buf,
    /// ∂L/∂β.
    pub dbeta: &'a mut Buf,
}

impl<'a, Buf: ?Sized> BatchNormGrads<'a, Buf> {
    /// The gradients to write: `dx`, `dgamma`, `dbeta`.
    pub fn new(dx: &'a mut Buf, dgamma: &'a mut Buf, dbeta: &'a mut Buf) -> Self {
        BatchNormGrads { dx, dgamma, dbeta }
    }
}

/// A [`BatchNormOps::batch_norm_stats`] request: the layout, the input,
/// and where the per-channel mean and biased variance go (overwritten).
///
/// Like every batch-norm request it holds the whole call as data, its
/// buffers by name, and checks their lengths itself
/// ([`BatchNormStatsPass::validate`]), so that every backend validates the
/// same way.
#[derive(Debug)]
pub struct BatchNormStatsPass<'a, Buf: ?Sized> {
    /// The layout and ε.
    pub bn: BatchNorm,
    /// The input, `batch × channels × spatial`.
    pub x: &'a Buf,
    /// μ, one per channel.
    pub mean: &'a mut Buf,
    /// σ² (biased), one per channel.
    pub var: &'a mut Buf,
}

impl<Buf: ?Sized> BatchNormStatsPass<'_, Buf> {
    /// [`BatchNorm::validate_buffers`] with the request's buffers, measured
    /// by `len`.
    ///
    /// # Errors
    /// As [`BatchNorm::validate_buffers`].
    pub fn validate(&self, len: impl Fn(&Buf) -> usize) -> Result<()> {
        let per_channel = [len(self.mean), len(self.var)];
        self.bn.validate_buffers(&[len(self.x)], &per_channel)
    }
}

/// A [`BatchNormOps::batch_norm_forward`] request: the layout, the input and
/// the output (overwritten), then the per-channel γ, β and the statistics to
/// normalise with (the batch's or the running ones).
///
/// ```
/// use smoothout::Reference;
/// use smoothout::tensor::{BatchNorm, BatchNormForwardPass, BatchNormOps, BatchNormStats};
/// // Two samples of one channel with μ = 2, σ² = 1: y = 3 · (x − 2) + 1.
/// let bn = BatchNorm { batch: 2, channels: 1, spatial: 1, eps: 0.0 };
/// let (x, gamma, beta) = (vec![1.0f64, 3.0], vec![3.0], vec![1.0]);
/// let (mean, var) = (vec![2.0], vec![1.0]);
/// let mut y = vec![0.0; 2];
/// Reference::new().batch_norm_forward(BatchNormForwardPass {
///     bn,
///     x: &x,
///     y: &mut y,
///     gamma: &gamma,
///     beta: &beta,
///     stats: BatchNormStats::new(&mean, &var),
/// })?;
/// assert_eq!(y, [-2.0, 4.0]);
/// # Ok::<(), smoothout::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchNormForwardPass<'a, Buf: ?Sized> {
    /// The layout and ε.
    pub bn: BatchNorm,
    /// The input, `batch × channels × spatial`.
    pub x: &'a Buf,
    /// The output, `x`'s length.
    pub y: &'a mut Buf,
    /// γ, one per channel.
    pub gamma: &'a Buf,
    /// β, one per channel.
    pub beta: &'a Buf,
    /// μ and σ².
    pub stats: BatchNormStats<'a, Buf>,
}

impl<Buf: ?Sized> BatchNormForwardPass<'_, Buf> {
    /// [`BatchNorm::validate_buffers`] with the request's tensors (`x`, `y`)
    /// and per-channel buffers (γ, β, μ, σ²), measured by `len`.
    ///
    /// # Errors
    /// As [`BatchNorm::validate_buffers`].
    pub fn validate(&self, len: impl Fn(&Buf) -> usize) -> Result<()> {
        let BatchNormStats { mean, var } = self.stats;
        let per_channel = [len(self.gamma), len(self.beta), len(mean), len(var)];
        self.bn
            .validate_buffers(&[len(self.x), len(self.y)], &per_channel)
    }
}

/// A [`BatchNormOps::batch_norm_backward`] request: the layout, the input
/// and the output's gradient, γ and the batch statistics of `x`, and the
/// three gradients to write.
#[derive(Debug)]
pub struct BatchNormBackwardPass<'a, Buf: ?Sized> {
    /// The layout and ε.
    pub bn: BatchNorm,
    /// The input of the forward pass.
    pub x: &'a Buf,
    /// ∂L/∂y, `x`'s length.
    pub dy: &'a Buf,
    /// γ, one per channel.
    pub gamma: &'a Buf,
    /// The batch statistics of `x`.
    pub stats: BatchNormStats<'a, Buf>,
    /// ∂L/∂x, ∂L/∂γ, ∂L/∂β (overwritten).
    pub grads: BatchNormGrads<'a, Buf>,
}

impl<Buf: ?Sized> BatchNormBackwardPass<'_, Buf> {
    /// [`BatchNorm::validate_buffers`] with the request's tensors (`x`,
    /// `dy`, `dx`) and per-channel buffers (γ, μ, σ², dγ, dβ), measured by
    /// `len`.
    ///
    /// # Errors
    /// As [`BatchNorm::validate_buffers`].
    pub fn validate(&self, len: impl Fn(&Buf) -> usize) -> Result<()> {
        let (BatchNormStats { mean, var }, g) = (self.stats, &self.grads);
        let tensors = [len(self.x), len(self.dy), len(g.dx)];
        let per_channel = [
            len(self.gamma),
            len(mean),
            len(var),
            len(g.dgamma),
            len(g.dbeta),
        ];
        self.bn.validate_buffers(&tensors, &per_channel)
    }
}

/// Batch normalisation, training-mode formulas (see [`BatchNorm`]). Each
/// operation takes one request holding its layout and buffers by name
/// ([`BatchNormStatsPass`], [`BatchNormForwardPass`],
/// [`BatchNormBackwardPass`]), which validates itself.
pub trait BatchNormOps: BackendTypes {
    /// Per-channel mean and biased variance of `x`, summed in `f64` and
    /// rounded to `Elem` once.
    ///
    /// # Errors
    /// As [`BatchNormStatsPass::validate`].
    fn batch_norm_stats(&self, pass: BatchNormStatsPass<'_, Self::Buffer>) -> Result<()>;
    /// `y ← γ · (x − μ) / √(σ² + ε) + β` with the given statistics (batch or
    /// running).
    ///
    /// # Errors
    /// As [`BatchNormForwardPass::validate`].
    fn batch_norm_forward(&self, pass: BatchNormForwardPass<'_, Self::Buffer>) -> Result<()>;
    /// `dx`, `dγ`, `dβ` (all overwritten) from `dy`, with `mean` and `var`
    /// the batch statistics of `x`; sums in `f64`.
    ///
    /// # Errors
    /// As [`BatchNormBackwardPass::validate`].
    fn batch_norm_backward(&self, pass: BatchNormBackwardPass<'_, Self::Buffer>) -> Result<()>;
}

/// A [`LossOps::softmax_cross_entropy`] request: `N = labels.len()` rows
/// of `classes` logits, their labels, and where the gradient goes.
#[derive(Debug)]
pub struct CrossEntropy<'a, Buf: ?Sized> {
    /// Logits per row.
    pub classes: usize,
    /// The logits, `N × classes`.
    pub logits: &'a Buf,
    /// One label per row, each `< classes`.
    pub labels: &'a [u32],
    /// ∂loss/∂logits, `N × classes` (overwritten).
    pub dlogits: &'a mut Buf,
}

impl<'a, Buf: ?Sized> CrossEntropy<'a, Buf> {
    /// The loss of `logits` (rows of `classes`) against `labels`, its
    /// gradient into `dlogits`.
    #[must_use]
    pub fn new(classes: usize, logits: &'a Buf, labels: &'a [u32], dlogits: &'a mut Buf) -> Self {
        CrossEntropy {
            classes,
            logits,
            labels,
            dlogits,
        }
    }

    /// The request's sizes and labels, its buffers measured by `len`.
    ///
    /// # Errors
    /// As [`LossOps::softmax_cross_entropy`].
    pub fn validate(&self, len: impl Fn(&Buf) -> usize) -> Result<()> {
        let (logits, dlogits) = (len(self.logits), len(self.dlogits));
        reference::check_softmax_cross_entropy(self.classes, logits, self.labels, dlogits)
    }
}

/// Losses.
pub trait LossOps: BackendTypes {
    /// The mean softmax cross-entropy of `N = labels.len()` rows of
    /// `classes` logits, and its gradient:
    ///
    /// ```text
    /// p_ij  = exp(z_ij − max_j z_ij) / Σ_j exp(z_ij − max_j z_ij)
    /// loss  = Σ_i −ln p_{i, label_i} / N
    /// dlogits_ij = (p_ij − [j = label_i]) / N
    /// ```
    ///
    /// computed in `f64` per row (subtracting the row maximum, so large
    /// logits do not overflow), rows summed in order.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for `classes == 0`, no rows, or a label
    /// `≥ classes`; [`Error::LengthMismatch`] when `logits` or `dlogits` is
    /// not `N · classes` long.
    fn softmax_cross_entropy(&self, req: CrossEntropy<'_, Self::Buffer>) -> Result<f64>;
}

/// Element-wise maps and channel broadcasts.
pub trait MapOps: BackendTypes {
    /// `y ← max(x, 0)` (NaN stays NaN).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `x` and `y` have equal lengths.
    fn relu(&self, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `dx ← dy` where `x > 0`, else 0.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless all lengths are equal.
    fn relu_backward(
        &self,
        x: &Self::Buffer,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
    /// `x ← α · x`.
    ///
    /// # Errors
    /// None; `Result` for device backends.
    fn scale(&self, alpha: Self::Elem, x: &mut Self::Buffer) -> Result<()>;
    /// `y ← y + x`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless the lengths are equal.
    fn add(&self, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `y ← y ⊙ x` (element-wise product, e.g. a dropout mask).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless the lengths are equal.
    fn mul(&self, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `x ← value` everywhere.
    ///
    /// # Errors
    /// None; `Result` for device backends.
    fn fill(&self, value: Self::Elem, x: &mut Self::Buffer) -> Result<()>;
    /// `x[o, c, i] ← x[o, c, i] + bias[c]`, `x` read as
    /// `outer × bias.len() × inner` (a linear layer: `inner = 1`; a
    /// convolution: `inner = out_h · out_w`).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for `inner == 0` or an empty bias;
    /// [`Error::LengthMismatch`] unless `x.len()` is a multiple of
    /// `bias.len() · inner`.
    fn add_bias(&self, bias: &Self::Buffer, inner: usize, x: &mut Self::Buffer) -> Result<()>;
    /// `db[c] ← Σ_{o, i} dy[o, c, i]` (overwritten; summed in `f64` in
    /// order), the gradient of [`MapOps::add_bias`].
    ///
    /// # Errors
    /// As [`MapOps::add_bias`].
    fn bias_grad(&self, dy: &Self::Buffer, inner: usize, db: &mut Self::Buffer) -> Result<()>;
}

/// Every operation the layers need, on top of [`Backend`]; implemented
/// automatically for backends that can be shared between threads and whose
/// buffers can be sent between them (so that a whole training step can run
/// on a thread of the backend's choosing: [`crate::BufferOps::run`]).
pub trait TensorBackend:
    Backend<Buffer: Send, State: Send>
    + MatmulOps
    + ConvOps
    + PoolOps
    + BatchNormOps
    + LossOps
    + MapOps
    + Send
    + Sync
{
}

impl<B> TensorBackend for B where
    B: Backend<Buffer: Send, State: Send>
        + MatmulOps
        + ConvOps
        + PoolOps
        + BatchNormOps
        + LossOps
        + MapOps
        + Send
        + Sync
{
}
