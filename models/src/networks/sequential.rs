//! The [`Sequential`] container and the small helper layers of the networks.

use crate::layers::{params_and_grads_of, Activation, AvgPool2d, Dropout, Layer, Linear};
use smoothout::tensor::TensorBackend;
use smoothout::{Error, ParamSpec, Result};

enum Node<B: TensorBackend> {
    Layer(Box<dyn Layer<B>>),
    Dropout(Dropout<B>),
}

impl<B: TensorBackend> Node<B> {
    fn get(&self) -> &dyn Layer<B> {
        match self {
            Node::Layer(l) => l.as_ref(),
            Node::Dropout(d) => d,
        }
    }
    fn get_mut(&mut self) -> &mut dyn Layer<B> {
        match self {
            Node::Layer(l) => l.as_mut(),
            Node::Dropout(d) => d,
        }
    }
}

/// Layers applied one after another; itself a [`Layer`].
///
/// Each child is pushed with a `prefix`: its parameter names become
/// `prefix.name` (or stay `name` for an empty prefix). [`Layer::specs`],
/// [`Layer::params`] and [`Layer::grads`] list the children's, in the order
/// the children were pushed, so that a network's buffers line up with its
/// specs as SmoothOut's step expects. `backward` runs the children in
/// reverse.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Layer, Linear, Relu};
/// use smoothout_models::networks::Sequential;
///
/// let b = Reference::<f64>::new();
/// let net = Sequential::new()
///     .with("", Linear::new(&b, 3, 2, 0)?.named("fc1"))
///     .with("", Relu::new())
///     .with("head", Linear::new(&b, 2, 1, 1)?.named("fc"));
/// let names: Vec<_> = net.specs().into_iter().map(|s| s.name).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "head.fc.weight", "head.fc.bias"]);
/// assert_eq!(net.len(), 3);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Sequential<B: TensorBackend> {
    children: Vec<(String, Node<B>)>,
}

impl<B: TensorBackend> Default for Sequential<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: TensorBackend + 'static> Sequential<B> {
    /// Appends `layer`, its parameter names prefixed with `prefix`.
    pub fn push(&mut self, prefix: impl Into<String>, layer: impl Layer<B> + 'static) {
        self.children
            .push((prefix.into(), Node::Layer(Box::new(layer))));
    }

    /// [`Sequential::push`], by value.
    #[must_use]
    pub fn with(mut self, prefix: impl Into<String>, layer: impl Layer<B> + 'static) -> Self {
        self.push(prefix, layer);
        self
    }
}

impl<B: TensorBackend> Sequential<B> {
    /// An empty container (the identity).
    #[must_use]
    pub fn new() -> Self {
        Sequential {
            children: Vec::new(),
        }
    }

    /// Appends a dropout layer, kept apart so that
    /// [`Sequential::set_dropout_step`] can reach it.
    pub fn push_dropout(&mut self, dropout: Dropout<B>) {
        self.children.push((String::new(), Node::Dropout(dropout)));
    }

    /// Number of children (nested containers count once).
    #[must_use]
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Sets the step counter of every dropout layer pushed with
    /// [`Sequential::push_dropout`] (e.g. to the optimiser step on resume).
    /// Dropout layers inside nested containers pushed with
    /// [`Sequential::push`] are not reached.
    pub fn set_dropout_step(&mut self, step: u64) {
        for (_, c) in &mut self.children {
            if let Node::Dropout(d) = c {
                d.set_step(step);
            }
        }
    }

    /// The children, in order, without their prefixes.
    fn layers(&self) -> impl Iterator<Item = &dyn Layer<B>> {
        self.children.iter().map(|(_, c)| c.get())
    }

    /// The total number of parameter elements (BatchNorm's running
    /// statistics are not parameters and are not counted).
    #[must_use]
    pub fn num_params(&self) -> usize {
        self.specs().iter().map(ParamSpec::len).sum()
    }
}

/// Backward through `children`, last to first, from `dy`; `None` when there
/// are none.
fn backward_chain<B: TensorBackend>(
    children: &mut [(String, Node<B>)],
    b: &B,
    dy: &B::Buffer,
) -> Result<Option<B::Buffer>> {
    let mut g: Option<B::Buffer> = None;
    for (_, c) in children.iter_mut().rev() {
        let next = c.get_mut().backward(b, g.as_ref().unwrap_or(dy))?;
        if let Some(used) = g.replace(next) {
            b.recycle(used);
        }
    }
    Ok(g)
}

impl<B: TensorBackend> Layer<B> for Sequential<B> {
    fn forward(&mut self, b: &B, x: &Activation<B>, train: bool) -> Result<Activation<B>> {
        let mut it = self.children.iter_mut();
        let Some((_, first)) = it.next() else {
            let mut y = b.zeros(b.len(&x.data))?;
            b.copy(&x.data, &mut y)?;
            return Ok(Activation::new(y, x.shape.clone()));
        };
        let mut h = first.get_mut().forward(b, x, train)?;
        for (_, c) in it {
            h = c.get_mut().forward_owned(b, h, train)?;
        }
        Ok(h)
    }

    fn forward_owned(&mut self, b: &B, x: Activation<B>, train: bool) -> Result<Activation<B>> {
        let mut h = x;
        for (_, c) in &mut self.children {
            h = c.get_mut().forward_owned(b, h, train)?;
        }
        Ok(h)
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        match backward_chain(&mut self.children, b, dy)? {
            Some(dx) => Ok(dx),
            None => {
                let mut dx = b.zeros(b.len(dy))?;
                b.copy(dy, &mut dx)?;
                Ok(dx)
            }
        }
    }

    fn backward_params(&mut self, b: &B, dy: &B::Buffer) -> Result<()> {
        let Some(((_, first), rest)) = self.children.split_first_mut() else {
            return Ok(());
        };
        let g = backward_chain(rest, b, dy)?;
        first
            .get_mut()
            .backward_params(b, g.as_ref().unwrap_or(dy))?;
        if let Some(g) = g {
            b.recycle(g);
        }
        Ok(())
    }

    fn specs(&self) -> Vec<ParamSpec> {
        self.children
            .iter()
            .flat_map(|(p, c)| {
                c.get().specs().into_iter().map(move |mut s| {
                    s.name = prefixed(p, s.name);
                    s
                })
            })
            .collect()
    }
    fn params(&self) -> Vec<&B::Buffer> {
        self.layers().flat_map(|l| l.params()).collect()
    }
    fn buffers(&self) -> Vec<(String, &B::Buffer)> {
        self.children
            .iter()
            .flat_map(|(p, c)| {
                c.get()
                    .buffers()
                    .into_iter()
                    .map(move |(n, buf)| (prefixed(p, n), buf))
            })
            .collect()
    }
    fn buffers_mut(&mut self) -> Vec<(String, &mut B::Buffer)> {
        self.children
            .iter_mut()
            .flat_map(|(p, c)| {
                let p = p.as_str();
                c.get_mut()
                    .buffers_mut()
                    .into_iter()
                    .map(move |(n, buf)| (prefixed(p, n), buf))
            })
            .collect()
    }
    fn grads(&self) -> Vec<&B::Buffer> {
        self.layers().flat_map(|l| l.grads()).collect()
    }
    fn params_and_grads_mut(&mut self) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
        params_and_grads_of(self)
    }
    fn append_params_and_grads<'a>(
        &'a mut self,
        params: &mut Vec<&'a mut B::Buffer>,
        grads: &mut Vec<&'a mut B::Buffer>,
    ) {
        for (_, c) in &mut self.children {
            c.get_mut().append_params_and_grads(params, grads);
        }
    }
    fn zero_grad(&mut self, b: &B) -> Result<()> {
        for (_, c) in &mut self.children {
            c.get_mut().zero_grad(b)?;
        }
        Ok(())
    }
    fn set_frozen(&mut self, frozen: bool) {
        for (_, c) in &mut self.children {
            c.get_mut().set_frozen(frozen);
        }
    }
}

/// `prefix.name`, or `name` for an empty prefix.
fn prefixed(prefix: &str, name: String) -> String {
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}

/// A [`Linear`] without bias (PyTorch's `bias=False`, before a BatchNorm):
/// the inner bias is set to zero and hidden from the parameter lists, so
/// nothing ever changes it.
pub(crate) struct LinearNoBias<B: TensorBackend>(Linear<B>);

impl<B: TensorBackend> LinearNoBias<B> {
    pub(crate) fn new(b: &B, inputs: usize, outputs: usize, seed: u64) -> Result<Self> {
        let mut l = Linear::new(b, inputs, outputs, seed)?;
        *l.params_mut()[1] = b.zeros(outputs)?;
        Ok(LinearNoBias(l))
    }

    pub(crate) fn named(self, name: impl Into<String>) -> Self {
        LinearNoBias(self.0.named(name))
    }
}

impl<B: TensorBackend> Layer<B> for LinearNoBias<B> {
    fn forward(&mut self, b: &B, x: &Activation<B>, train: bool) -> Result<Activation<B>> {
        self.0.forward(b, x, train)
    }
    fn forward_owned(&mut self, b: &B, x: Activation<B>, train: bool) -> Result<Activation<B>> {
        self.0.forward_owned(b, x, train)
    }
    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        self.0.backward(b, dy)
    }
    fn backward_params(&mut self, b: &B, dy: &B::Buffer) -> Result<()> {
        self.0.backward_params(b, dy)
    }
    fn specs(&self) -> Vec<ParamSpec> {
        self.0.specs().into_iter().take(1).collect()
    }
    fn params(&self) -> Vec<&B::Buffer> {
        self.0.params().into_iter().take(1).collect()
    }
    fn grads(&self) -> Vec<&B::Buffer> {
        self.0.grads().into_iter().take(1).collect()
    }
    fn params_and_grads_mut(&mut self) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
        params_and_grads_of(self)
    }
    fn append_params_and_grads<'a>(
        &'a mut self,
        params: &mut Vec<&'a mut B::Buffer>,
        grads: &mut Vec<&'a mut B::Buffer>,
    ) {
        // The weight alone: the hidden bias is never handed out.
        let (p0, g0) = (params.len(), grads.len());
        self.0.append_params_and_grads(params, grads);
        params.truncate(p0 + 1);
        grads.truncate(g0 + 1);
    }
    fn zero_grad(&mut self, b: &B) -> Result<()> {
        self.0.zero_grad(b)
    }
}

/// Average over the whole `H × W` plane (`H = W`): an [`AvgPool2d`] whose
/// kernel is the input's spatial size, built at the first forward.
pub(crate) struct GlobalAvgPool<B: TensorBackend> {
    pool: Option<(usize, AvgPool2d<B>)>,
}

impl<B: TensorBackend> GlobalAvgPool<B> {
    pub(crate) fn new() -> Self {
        GlobalAvgPool { pool: None }
    }
}

impl<B: TensorBackend> GlobalAvgPool<B> {
    /// The pool for inputs of `shape` (`[N, C, H, H]`), made anew when `H`
    /// changed.
    fn pool_for(&mut self, shape: &[usize]) -> Result<&mut AvgPool2d<B>> {
        let &[_, _, h, w] = shape else {
            return Err(Error::InvalidSetting {
                name: "global pool input rank",
                value: shape.len() as f64,
                expected: "4 ([N, C, H, W])",
            });
        };
        if h != w || h == 0 {
            return Err(Error::InvalidSetting {
                name: "global pool input width",
                value: w as f64,
                expected: "equal to the height",
            });
        }
        if self.pool.as_ref().is_some_and(|(k, _)| *k != h) {
            self.pool = None;
        }
        Ok(&mut self
            .pool
            .get_or_insert_with(|| (h, AvgPool2d::new(h, h, 0)))
            .1)
    }
}

impl<B: TensorBackend> Layer<B> for GlobalAvgPool<B> {
    fn forward(&mut self, b: &B, x: &Activation<B>, train: bool) -> Result<Activation<B>> {
        self.pool_for(&x.shape)?.forward(b, x, train)
    }
    fn forward_owned(&mut self, b: &B, x: Activation<B>, train: bool) -> Result<Activation<B>> {
        self.pool_for(&x.shape)?.forward_owned(b, x, train)
    }
    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        match &mut self.pool {
            Some((_, p)) => p.backward(b, dy),
            None => Err(crate::layers::no_cache()),
        }
    }
}
