//! 2-D convolution as im2col + GEMM.

use super::{bad_shape, no_cache, uniform_init, Layer};
use crate::data::seeded_rng;
use smoothout::{Gemm, GemmBatch, ParamSpec, Result, TensorBackend};

/// A square-kernel convolution over `NCHW` images, zero padding, one
/// stride, with bias:
///
/// ```text
/// col_n = im2col(x_n)            (C·k·k) × (H'·W')
/// y_n   = W · col_n + b          W: F × (C·k·k)
/// dW   += Σ_n dy_n · col_nᵀ      db += Σ_{n, p} dy_n      dx = col2im(Wᵀ · dy_n)
/// ```
///
/// The batch's column matrix is kept for the backward pass. Each product
/// over the images is one batched GEMM ([`smoothout::GemmBatch`]): `y` and
/// `dcol` one strided product with the weights shared, `dW` one summed
/// product.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Conv2d, Layer};
/// let b = Reference::<f64>::new();
/// let mut conv = Conv2d::new(&b, 1, 1, 2, 1, 0, 0)?;
/// *conv.params_mut()[0] = vec![1.0, 1.0, 1.0, 1.0];
/// *conv.params_mut()[1] = vec![0.0];
/// let x: Vec<f64> = (1..=9).map(f64::from).collect();
/// let (y, shape) = conv.forward(&b, &x, &[1, 1, 3, 3], false)?;
/// assert_eq!((y, shape), (vec![12.0, 16.0, 24.0, 28.0], vec![1, 1, 2, 2]));
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Conv2d<B: TensorBackend> {
    channels: usize,
    filters: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    name: String,
    params: Vec<B::Buffer>,
    grads: Vec<B::Buffer>,
    cache: Option<(smoothout::Conv2d, B::Buffer)>,
}

impl<B: TensorBackend> Conv2d<B> {
    /// `channels → filters` with a `kernel × kernel` window, initialised as
    /// PyTorch does (`U(−1/√fan_in, 1/√fan_in)`, `fan_in = channels·k²`)
    /// from `seed`.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for a zero size or stride.
    pub fn new(
        b: &B,
        channels: usize,
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        seed: u64,
    ) -> Result<Self> {
        if channels == 0 || filters == 0 || kernel == 0 || stride == 0 {
            return Err(bad_shape("conv size or stride", 0));
        }
        let fan_in = channels * kernel * kernel;
        let mut rng = seeded_rng(seed);
        let bound = 1.0 / (fan_in as f64).sqrt();
        let w = uniform_init(b, filters * fan_in, bound, &mut rng)?;
        let bias = uniform_init(b, filters, bound, &mut rng)?;
        Ok(Conv2d {
            channels,
            filters,
            kernel,
            stride,
            padding,
            bias: true,
            name: "conv".into(),
            params: vec![w, bias],
            grads: vec![b.zeros(filters * fan_in)?, b.zeros(filters)?],
            cache: None,
        })
    }

    /// The same convolution without a bias (as before a BatchNorm in a
    /// ResNet).
    #[must_use]
    pub fn without_bias(mut self) -> Self {
        self.bias = false;
        self.params.truncate(1);
        self.grads.truncate(1);
        self
    }

    /// The same layer with `name` as the prefix of its parameter names.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl<B: TensorBackend> Conv2d<B> {
    /// Adds `dW` (and `db`) from `dy` into the gradients; returns the cached
    /// convolution.
    fn param_grads(&mut self, b: &B, dy: &B::Buffer) -> Result<smoothout::Conv2d> {
        let (conv, col) = self.cache.as_ref().ok_or_else(no_cache)?;
        let (n, rows, cols, f) = (conv.batch, conv.col_rows(), conv.col_cols(), self.filters);
        smoothout::tensor::check_len("conv dy (N·F·H'·W')", n * f * cols, b.len(dy))?;
        // dW += Σ_n dy_n · col_nᵀ: β = 1 on every product, so the gradient
        // accumulates onto what is already there.
        let gw = Gemm::new(f, rows, cols)
            .transposed(false, true)
            .scaled(1.0, 1.0);
        let per_image = GemmBatch {
            count: n,
            stride_a: f * cols,
            stride_b: rows * cols,
            stride_c: 0,
        };
        b.gemm_summed(&gw, &per_image, dy, col, &mut self.grads[0])?;
        if self.bias {
            let mut db = b.zeros(f)?;
            b.bias_grad(dy, cols, &mut db)?;
            b.add(&db, &mut self.grads[1])?;
        }
        Ok(*conv)
    }
}

impl<B: TensorBackend> Layer<B> for Conv2d<B> {
    fn forward(
        &mut self,
        b: &B,
        x: &B::Buffer,
        shape: &[usize],
        train: bool,
    ) -> Result<(B::Buffer, Vec<usize>)> {
        super::numel("conv input (N·C·H·W)", shape, b.len(x))?;
        let &[n, c, h, w] = shape else {
            return Err(bad_shape("conv input rank (must be 4, NCHW)", shape.len()));
        };
        if c != self.channels {
            return Err(bad_shape("conv input channels", c));
        }
        let conv = smoothout::Conv2d {
            batch: n,
            channels: c,
            height: h,
            width: w,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        conv.validate()?;
        let (rows, cols) = (conv.col_rows(), conv.col_cols());
        let mut col = b.zeros(n * rows * cols)?;
        b.im2col(&conv, x, &mut col)?;
        let f = self.filters;
        let mut y = b.zeros(n * f * cols)?;
        let images = GemmBatch {
            count: n,
            stride_a: 0,
            stride_b: rows * cols,
            stride_c: f * cols,
        };
        b.gemm_strided(
            &Gemm::new(f, cols, rows),
            &images,
            &self.params[0],
            &col,
            &mut y,
        )?;
        if self.bias {
            b.add_bias(&self.params[1], cols, &mut y)?;
        }
        let out = vec![n, f, conv.out_h(), conv.out_w()];
        if train {
            self.cache = Some((conv, col));
        }
        Ok((y, out))
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let conv = self.param_grads(b, dy)?;
        let (n, rows, cols, f) = (conv.batch, conv.col_rows(), conv.col_cols(), self.filters);
        // dcol_n = Wᵀ · dy_n, the weights shared across the batch.
        let mut dcol = b.zeros(n * rows * cols)?;
        let gx = Gemm::new(rows, cols, f).transposed(true, false);
        let shared = GemmBatch {
            count: n,
            stride_a: 0,
            stride_b: f * cols,
            stride_c: rows * cols,
        };
        b.gemm_strided(&gx, &shared, &self.params[0], dy, &mut dcol)?;
        let mut dx = b.zeros(n * conv.image_len())?;
        b.col2im(&conv, &dcol, &mut dx)?;
        Ok(dx)
    }

    fn backward_params(&mut self, b: &B, dy: &B::Buffer) -> Result<()> {
        self.param_grads(b, dy).map(drop)
    }

    fn specs(&self) -> Vec<ParamSpec> {
        let mut s = vec![ParamSpec::weight(
            format!("{}.weight", self.name),
            [self.filters, self.channels, self.kernel, self.kernel],
        )];
        if self.bias {
            s.push(ParamSpec::bias(format!("{}.bias", self.name), self.filters));
        }
        s
    }
    fn params(&self) -> Vec<&B::Buffer> {
        self.params.iter().collect()
    }
    fn grads(&self) -> Vec<&B::Buffer> {
        self.grads.iter().collect()
    }
    fn params_and_grads_mut(&mut self) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
        (
            self.params.iter_mut().collect(),
            self.grads.iter_mut().collect(),
        )
    }
}
