//! Max and average pooling.

use super::layer::{keep_copy, keep_given, nchw, no_cache, Activation, Layer};
use smoothout::tensor::{Operands, Pool2d, PoolKind, TensorBackend};
use smoothout::Result;

struct Pool<B: TensorBackend> {
    kernel: usize,
    stride: usize,
    padding: usize,
    kind: PoolKind,
    cache: Option<(Pool2d, B::Buffer)>,
}

impl<B: TensorBackend> Pool<B> {
    /// `y` of `input`, and the pooling that made it.
    fn output(&self, b: &B, input: &Activation<B>) -> Result<(Activation<B>, Pool2d)> {
        input.numel(b, "pool input (N·C·H·W)")?;
        let [n, c, h, w] = nchw("pool input rank (must be 4, NCHW)", &input.shape)?;
        let p = Pool2d {
            batch: n,
            channels: c,
            height: h,
            width: w,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            kind: self.kind,
        };
        p.validate()?;
        let mut y = b.for_overwrite(p.planes() * p.out_h() * p.out_w())?;
        b.pool_forward(&p, &input.data, &mut y)?;
        Ok((Activation::new(y, [n, c, p.out_h(), p.out_w()]), p))
    }

    fn forward(&mut self, b: &B, input: &Activation<B>, train: bool) -> Result<Activation<B>> {
        let (y, p) = self.output(b, input)?;
        if train {
            let old = self.cache.take().map(|(_, kept)| kept);
            self.cache = Some((p, keep_copy(b, &input.data, old)?));
        }
        Ok(y)
    }

    fn forward_owned(&mut self, b: &B, input: Activation<B>, train: bool) -> Result<Activation<B>> {
        let (y, p) = self.output(b, &input)?;
        keep_given(b, &mut self.cache, (p, input.data), train, |(_, x)| x);
        Ok(y)
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let (p, x) = self.cache.as_ref().ok_or_else(no_cache)?;
        let mut dx = b.zeros(b.len(x))?;
        b.pool_backward(Operands::new(*p, x, dy, &mut dx))?;
        Ok(dx)
    }
}

macro_rules! pool_layer {
    ($name:ident, $kind:expr, $doc:literal, $example:literal) => {
        #[doc = $doc]
        ///
        /// ```
        /// use smoothout::Reference;
        #[doc = concat!("use smoothout_models::layers::{Activation, Layer, ", stringify!($name), "};")]
        /// let b = Reference::<f64>::new();
        #[doc = concat!("let mut pool = ", stringify!($name), "::new(2, 2, 0);")]
        /// let x = Activation::new(vec![1.0, 2.0, 3.0, 6.0], [1, 1, 2, 2]);
        /// let Activation { data, shape } = pool.forward(&b, &x, false)?;
        #[doc = concat!("assert_eq!((data, shape.to_vec()), (vec![", $example, "], vec![1, 1, 1, 1]));")]
        /// # Ok::<(), smoothout::Error>(())
        /// ```
        pub struct $name<B: TensorBackend>(Pool<B>);

        impl<B: TensorBackend> $name<B> {
            /// A `kernel × kernel` window moved by `stride`, with `padding`
            /// (at most `kernel / 2`) on each side.
            #[must_use]
            pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
                $name(Pool {
                    kernel,
                    stride,
                    padding,
                    kind: $kind,
                    cache: None,
                })
            }
        }

        impl<B: TensorBackend> Layer<B> for $name<B> {
            fn forward(&mut self, b: &B, x: &Activation<B>, train: bool) -> Result<Activation<B>> {
                self.0.forward(b, x, train)
            }
            fn forward_owned(
                &mut self,
                b: &B,
                x: Activation<B>,
                train: bool,
            ) -> Result<Activation<B>> {
                self.0.forward_owned(b, x, train)
            }
            fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
                self.0.backward(b, dy)
            }
        }
    };
}

pool_layer!(
    MaxPool2d,
    PoolKind::Max,
    "Max pooling over `NCHW` images (the gradient goes to the first maximum of each window; padding never wins).",
    "6.0"
);
pool_layer!(
    AvgPool2d,
    PoolKind::Avg,
    "Average pooling over `NCHW` images (padding counts as zeros, PyTorch's `count_include_pad = true`).",
    "3.0"
);
