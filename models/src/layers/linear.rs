//! Fully connected layer.

use super::layer::{
    bad_shape, keep_copy, keep_given, no_cache, params_in_fields, uniform_init, Activation, Layer,
};
use crate::rng::seeded_rng;
use smoothout::tensor::{Gemm, Operands, TensorBackend};
use smoothout::{ParamSpec, Result};

/// `y = x · Wᵀ + b` for `x: [N, in]` (any `[N, …]` is flattened),
/// `W: [out, in]`, `b: [out]`:
///
/// ```text
/// dW += dyᵀ · x      db += Σ_n dy      dx = dy · W
/// ```
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, Layer, Linear};
/// let b = Reference::<f64>::new();
/// let mut fc = Linear::new(&b, 2, 1, 0)?;
/// *fc.params_mut()[0] = vec![1.0, 2.0];
/// *fc.params_mut()[1] = vec![0.5];
/// let Activation { data, shape } = fc.forward(&b, &Activation::new(vec![3.0, 4.0], [1, 2]), false)?;
/// assert_eq!((data, shape.to_vec()), (vec![11.5], vec![1, 1]));
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Linear<B: TensorBackend> {
    inputs: usize,
    outputs: usize,
    name: String,
    params: [B::Buffer; 2],
    grads: [B::Buffer; 2],
    x: Option<(B::Buffer, usize)>,
}

impl<B: TensorBackend> Linear<B> {
    /// `inputs → outputs`, initialised as PyTorch does
    /// (`U(−1/√inputs, 1/√inputs)` for weight and bias) from `seed`.
    ///
    /// # Errors
    /// [`smoothout::Error::InvalidSetting`] for a zero size.
    pub fn new(b: &B, inputs: usize, outputs: usize, seed: u64) -> Result<Self> {
        if inputs == 0 || outputs == 0 {
            return Err(bad_shape("linear size", 0));
        }
        let len = inputs
            .checked_mul(outputs)
            .ok_or_else(|| bad_shape("linear size (inputs × outputs overflows)", outputs))?;
        let mut rng = seeded_rng(seed);
        let bound = 1.0 / (inputs as f64).sqrt();
        let w = uniform_init(b, len, bound, &mut rng)?;
        let bias = uniform_init(b, outputs, bound, &mut rng)?;
        Ok(Linear {
            inputs,
            outputs,
            name: "linear".into(),
            params: [w, bias],
            grads: [b.zeros(len)?, b.zeros(outputs)?],
            x: None,
        })
    }

    /// The same layer with `name` as the prefix of its parameter names.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds `dW` and `db` from `dy` into the gradients; returns the cached
    /// batch size.
    fn param_grads(&mut self, b: &B, dy: &B::Buffer) -> Result<usize> {
        let (x, n) = self.x.as_ref().ok_or_else(no_cache)?;
        let n = *n;
        smoothout::tensor::check_len("linear dy (N·out)", n * self.outputs, b.len(dy))?;
        let gw = Gemm::new(self.outputs, self.inputs, n)
            .transposed(true, false)
            .scaled(1.0, 1.0);
        b.gemm(Operands::new(gw, dy, x, &mut self.grads[0]))?;
        let mut db = b.for_overwrite(self.outputs)?;
        b.bias_grad(dy, 1, &mut db)?;
        b.add(&db, &mut self.grads[1])?;
        b.recycle(db);
        Ok(n)
    }
}

impl<B: TensorBackend> Linear<B> {
    /// `y` of `input`, and its batch size.
    fn output(&self, b: &B, input: &Activation<B>) -> Result<(Activation<B>, usize)> {
        let total = input.numel(b, "linear input")?;
        let n = input.shape.first().copied().unwrap_or(0);
        if n == 0 || total != n * self.inputs {
            return Err(bad_shape(
                "linear input features (product of dims after N)",
                total / n.max(1),
            ));
        }
        let mut y = b.for_overwrite(n * self.outputs)?;
        let g = Gemm::new(n, self.outputs, self.inputs).transposed(false, true);
        let req = Operands::new(g, &input.data, &self.params[0], &mut y);
        b.gemm_bias(req, &self.params[1])?;
        Ok((Activation::new(y, [n, self.outputs]), n))
    }
}

impl<B: TensorBackend> Layer<B> for Linear<B> {
    fn forward(&mut self, b: &B, input: &Activation<B>, train: bool) -> Result<Activation<B>> {
        let (y, n) = self.output(b, input)?;
        if train {
            let old = self.x.take().map(|(c, _)| c);
            self.x = Some((keep_copy(b, &input.data, old)?, n));
        }
        Ok(y)
    }

    fn forward_owned(&mut self, b: &B, input: Activation<B>, train: bool) -> Result<Activation<B>> {
        let (y, n) = self.output(b, &input)?;
        keep_given(b, &mut self.x, (input.data, n), train, |(x, _)| x);
        Ok(y)
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let n = self.param_grads(b, dy)?;
        let mut dx = b.for_overwrite(n * self.inputs)?;
        let g = Gemm::new(n, self.inputs, self.outputs);
        b.gemm(Operands::new(g, dy, &self.params[0], &mut dx))?;
        Ok(dx)
    }

    fn backward_params(&mut self, b: &B, dy: &B::Buffer) -> Result<()> {
        self.param_grads(b, dy).map(drop)
    }

    fn specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::weight(format!("{}.weight", self.name), [self.outputs, self.inputs]),
            ParamSpec::bias(format!("{}.bias", self.name), self.outputs),
        ]
    }
    params_in_fields!();
}
