//! 2-D convolution as im2col + GEMM.

use super::layer::{
    bad_shape, keep_copy, keep_given, nchw, no_cache, params_in_fields, uniform_init, Activation,
    Layer,
};
use crate::rng::seeded_rng;
use smoothout::tensor::{ConvPass, TensorBackend};
use smoothout::{ParamSpec, Result};

/// A square-kernel convolution over `NCHW` images, zero padding, one
/// stride, with bias:
///
/// ```text
/// col_n = im2col(x_n)            (C·k·k) × (H'·W')
/// y_n   = W · col_n + b          W: F × (C·k·k)
/// dW   += Σ_n dy_n · col_nᵀ      db += Σ_{n, p} dy_n      dx = col2im(Wᵀ · dy_n)
/// ```
///
/// The input is kept for the backward pass, which unfolds it again. The
/// three products are the backend's [`smoothout::tensor::ConvOps::conv_forward`],
/// `conv_weight_grad` and `conv_input_grad`: by default whole-batch columns
/// and batched GEMMs ([`smoothout::tensor::GemmBatch`]: `y` and `dcol` strided
/// products with the weights shared, `dW` a summed product); the CPU
/// backend unfolds one image at a time, with the same bits.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, Conv2d, Layer};
/// let b = Reference::<f64>::new();
/// let mut conv = Conv2d::new(&b, 1, 1, 2, 1, 0, 0)?;
/// *conv.params_mut()[0] = vec![1.0, 1.0, 1.0, 1.0];
/// *conv.params_mut()[1] = vec![0.0];
/// let x: Vec<f64> = (1..=9).map(f64::from).collect();
/// let Activation { data, shape } = conv.forward(&b, &Activation::new(x, [1, 1, 3, 3]), false)?;
/// assert_eq!((data, shape.to_vec()), (vec![12.0, 16.0, 24.0, 28.0], vec![1, 1, 2, 2]));
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
    /// The last training forward's geometry and a copy of its input.
    cache: Option<(smoothout::tensor::Conv2d, B::Buffer)>,
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

    /// Adds `dW` (and `db`) from `dy` into the gradients; returns the cached
    /// convolution.
    fn param_grads(&mut self, b: &B, dy: &B::Buffer) -> Result<smoothout::tensor::Conv2d> {
        let (conv, x) = self.cache.as_ref().ok_or_else(no_cache)?;
        let (n, cols, f) = (conv.batch, conv.col_cols(), self.filters);
        smoothout::tensor::check_len("conv dy (N·F·H'·W')", n * f * cols, b.len(dy))?;
        // dW += Σ_n dy_n · col_nᵀ, accumulating onto what is already there.
        b.conv_weight_grad(ConvPass::new((*conv, f), x, dy, &mut self.grads[0]))?;
        if self.bias {
            let mut db = b.for_overwrite(f)?;
            b.bias_grad(dy, cols, &mut db)?;
            b.add(&db, &mut self.grads[1])?;
            b.recycle(db);
        }
        Ok(*conv)
    }

    /// `y` of `input`, and the convolution that made it.
    fn output(
        &self,
        b: &B,
        input: &Activation<B>,
    ) -> Result<(Activation<B>, smoothout::tensor::Conv2d)> {
        input.numel(b, "conv input (N·C·H·W)")?;
        let [n, c, h, w] = nchw("conv input rank (must be 4, NCHW)", &input.shape)?;
        if c != self.channels {
            return Err(bad_shape("conv input channels", c));
        }
        let conv = smoothout::tensor::Conv2d {
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
        let (f, cols) = (self.filters, conv.col_cols());
        let mut y = b.for_overwrite(n * f * cols)?;
        b.conv_forward(ConvPass::new(
            (conv, f),
            &self.params[0],
            &input.data,
            &mut y,
        ))?;
        if self.bias {
            b.add_bias(&self.params[1], cols, &mut y)?;
        }
        let out = [n, f, conv.out_h(), conv.out_w()];
        Ok((Activation::new(y, out), conv))
    }
}

impl<B: TensorBackend> Layer<B> for Conv2d<B> {
    fn forward(&mut self, b: &B, input: &Activation<B>, train: bool) -> Result<Activation<B>> {
        let (y, conv) = self.output(b, input)?;
        if train {
            // The input, for the backward pass to unfold again.
            let old = self.cache.take().map(|(_, kept)| kept);
            self.cache = Some((conv, keep_copy(b, &input.data, old)?));
        }
        Ok(y)
    }

    fn forward_owned(&mut self, b: &B, input: Activation<B>, train: bool) -> Result<Activation<B>> {
        let (y, conv) = self.output(b, &input)?;
        keep_given(b, &mut self.cache, (conv, input.data), train, |(_, x)| x);
        Ok(y)
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let conv = self.param_grads(b, dy)?;
        // dx = col2im(Wᵀ · dy_n) image by image, the weights shared.
        let mut dx = b.zeros(conv.batch * conv.image_len())?;
        let pass = ConvPass::new((conv, self.filters), &self.params[0], dy, &mut dx);
        b.conv_input_grad(pass)?;
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
    params_in_fields!();
}
