//! The [`Layer`] trait, the [`Activation`] it maps, and the helpers every
//! layer shares (cached copies, shape errors, uniform initialisation,
//! parameter lists).

use rand_core::RngCore;
use smoothout::tensor::TensorBackend;
use smoothout::{Error, ParamSpec, Real, Result};

/// A batch of activations as a [`Layer`] takes and returns it: a buffer
/// and its shape (`[N, …]`, the product of which is the buffer's length;
/// each layer checks this on its input).
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, Layer, Relu};
/// let b = Reference::<f64>::new();
/// let x = Activation::new(vec![-1.0, 2.0], [1, 2]);
/// let Activation { data, shape } = Relu::new().forward(&b, &x, false)?;
/// assert_eq!(data, vec![0.0, 2.0]);
/// assert_eq!(shape, [1, 2]);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct Activation<B: TensorBackend> {
    /// The elements, row-major in `shape`.
    pub data: B::Buffer,
    /// The dimensions, batch first.
    pub shape: Dims,
}

impl<B: TensorBackend> Activation<B> {
    /// `data` of `shape` (checked by the layer it is given to).
    pub fn new(data: B::Buffer, shape: impl Into<Dims>) -> Self {
        Activation {
            data,
            shape: shape.into(),
        }
    }

    /// The product of the shape, checked against the buffer's length;
    /// `what` names the input in the error.
    pub(crate) fn numel(&self, b: &B, what: &'static str) -> Result<usize> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |p, &d| p.checked_mul(d))
            .ok_or_else(|| bad_shape(what, usize::MAX))?;
        smoothout::tensor::check_len(what, n, b.len(&self.data))?;
        Ok(n)
    }
}

/// An [`Activation`]'s dimensions, batch first, read as a slice. Up to
/// [`Dims::INLINE`] of them are held in place, so that the activations of
/// a training step (two to four dimensions) allocate nothing for their
/// shapes; more go on the heap.
///
/// ```
/// use smoothout_models::layers::Dims;
/// let d = Dims::from([8, 3, 32, 32]);
/// assert_eq!(d[1], 3);
/// assert_eq!(d.iter().product::<usize>(), 8 * 3 * 32 * 32);
/// assert_eq!(d, [8, 3, 32, 32]);
/// assert_eq!(Dims::from(vec![2, 1, 1, 1, 5]).len(), 5);
/// ```
#[derive(Clone, Default)]
pub struct Dims {
    len: usize,
    inline: [usize; Dims::INLINE],
    heap: Vec<usize>,
}

impl Dims {
    /// How many dimensions are held without allocating.
    pub const INLINE: usize = 4;
}

impl From<&[usize]> for Dims {
    fn from(dims: &[usize]) -> Self {
        let mut d = Dims {
            len: dims.len(),
            ..Dims::default()
        };
        if dims.len() <= Dims::INLINE {
            d.inline[..dims.len()].copy_from_slice(dims);
        } else {
            d.heap = dims.to_vec();
        }
        d
    }
}

impl<const N: usize> From<[usize; N]> for Dims {
    fn from(dims: [usize; N]) -> Self {
        Dims::from(&dims[..])
    }
}

impl From<Vec<usize>> for Dims {
    fn from(dims: Vec<usize>) -> Self {
        if dims.len() <= Dims::INLINE {
            Dims::from(&dims[..])
        } else {
            Dims {
                len: dims.len(),
                inline: [0; Dims::INLINE],
                heap: dims,
            }
        }
    }
}

impl core::ops::Deref for Dims {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        if self.len <= Dims::INLINE {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

impl core::fmt::Debug for Dims {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

impl PartialEq for Dims {
    fn eq(&self, other: &Dims) -> bool {
        **self == **other
    }
}

impl Eq for Dims {}

impl PartialEq<[usize]> for Dims {
    fn eq(&self, other: &[usize]) -> bool {
        **self == *other
    }
}

impl<const N: usize> PartialEq<[usize; N]> for Dims {
    fn eq(&self, other: &[usize; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Vec<usize>> for Dims {
    fn eq(&self, other: &Vec<usize>) -> bool {
        **self == other[..]
    }
}

/// A layer: forward, backward, and its parameters in spec order.
///
/// The layers and containers of this crate keep what they reuse from one
/// step to the next (cached inputs, statistics, masks) and hand every other
/// buffer they are done with back to the backend
/// ([`smoothout::BufferOps::recycle`]), as the trainer does with its
/// inputs, logits and loss gradient: a steady training loop then allocates
/// no new buffer on a backend that keeps them (`Cpu::fresh_buffers` of
/// `smoothout-cpu` counts them). A layer of your own that drops buffers
/// stays correct; it only allocates again.
///
/// Layers are `Send`: the trainer runs each step where the backend starts
/// its operations fastest ([`smoothout::BufferOps::run`]), which for the
/// CPU backend is one of its own threads.
pub trait Layer<B: TensorBackend>: Send {
    /// `y = f(x)`; returns `y` with its shape. In train mode the layer
    /// caches what [`Layer::backward`] needs (and BatchNorm uses batch
    /// statistics, Dropout drops).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] or [`Error::InvalidSetting`] when the
    /// input's shape does not fit the layer or its buffer.
    fn forward(&mut self, b: &B, x: &Activation<B>, train: bool) -> Result<Activation<B>>;

    /// [`Layer::forward`] of an input the caller gives up (a container's
    /// intermediate): a layer that keeps its input for backward keeps this
    /// buffer instead of a copy, one that maps it element by element may
    /// write its output over it. The results are those of
    /// [`Layer::forward`], bit for bit; the provided method runs it and
    /// hands `x`'s buffer back to the backend.
    ///
    /// # Errors
    /// As [`Layer::forward`].
    fn forward_owned(&mut self, b: &B, x: Activation<B>, train: bool) -> Result<Activation<B>> {
        let y = self.forward(b, &x, train)?;
        b.recycle(x.data);
        Ok(y)
    }

    /// `∂L/∂x` from `dy = ∂L/∂y` of the last forward, adding `∂L/∂θ` into
    /// the gradient buffers.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] named `"backward before forward"` when no
    /// forward was cached; [`Error::LengthMismatch`] for a `dy` of the wrong
    /// length.
    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer>;

    /// [`Layer::backward`] for a caller with no use for `∂L/∂x` (the first
    /// layer of a network: the data takes no gradient). It adds the same
    /// `∂L/∂θ`, bit for bit, and may skip the input gradient's work; the
    /// default computes it and drops it.
    ///
    /// # Errors
    /// As [`Layer::backward`].
    fn backward_params(&mut self, b: &B, dy: &B::Buffer) -> Result<()> {
        self.backward(b, dy).map(drop)
    }

    /// What each parameter is, in the order of [`Layer::params`].
    fn specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    /// The parameters, in spec order.
    fn params(&self) -> Vec<&B::Buffer> {
        Vec::new()
    }
    /// The parameters, mutably, in spec order: the first list of
    /// [`Layer::params_and_grads_mut`].
    fn params_mut(&mut self) -> Vec<&mut B::Buffer> {
        self.params_and_grads_mut().0
    }
    /// The accumulated gradients, in spec order.
    fn grads(&self) -> Vec<&B::Buffer> {
        Vec::new()
    }
    /// The gradients, mutably, in spec order: the second list of
    /// [`Layer::params_and_grads_mut`].
    fn grads_mut(&mut self) -> Vec<&mut B::Buffer> {
        self.params_and_grads_mut().1
    }
    /// Every parameter and every gradient, mutably at once (a split
    /// borrow), both in spec order: `i`-th gradient belongs to the `i`-th
    /// parameter, as in [`Layer::params`] and [`Layer::grads`]. This is what
    /// the optimisers, gradient clipping and SmoothOut's step work on in
    /// place. A layer with parameters implements this one method;
    /// [`Layer::params_mut`] and [`Layer::grads_mut`] are its halves.
    fn params_and_grads_mut(&mut self) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
        (Vec::new(), Vec::new())
    }
    /// Appends the two lists of [`Layer::params_and_grads_mut`] to `params`
    /// and `grads`: how a container gathers its children's without a list
    /// of each child's own. The provided method goes through
    /// [`Layer::params_and_grads_mut`]; layers and containers in this crate
    /// append directly.
    fn append_params_and_grads<'a>(
        &'a mut self,
        params: &mut Vec<&'a mut B::Buffer>,
        grads: &mut Vec<&'a mut B::Buffer>,
    ) {
        let (p, g) = self.params_and_grads_mut();
        params.extend(p);
        grads.extend(g);
    }
    /// State that is not a parameter but must survive a checkpoint
    /// (BatchNorm's running mean and variance), named like the specs
    /// (`bn1.running_mean`).
    fn buffers(&self) -> Vec<(String, &B::Buffer)> {
        Vec::new()
    }
    /// [`Layer::buffers`], mutably (to load a checkpoint).
    fn buffers_mut(&mut self) -> Vec<(String, &mut B::Buffer)> {
        Vec::new()
    }
    /// Freezes (or thaws) the layer's inference behaviour: while frozen, a
    /// train-mode forward normalises with BatchNorm's running statistics
    /// (leaving them unchanged) and lets Dropout pass everything, yet still
    /// caches what [`Layer::backward`] needs — so the gradient is that of
    /// the eval-mode loss with respect to the parameters (for sharpness and
    /// loss landscapes). Layers without such behaviour ignore it.
    fn set_frozen(&mut self, _frozen: bool) {}
    /// Sets every gradient to zero.
    ///
    /// # Errors
    /// As the backend's `fill`.
    fn zero_grad(&mut self, b: &B) -> Result<()> {
        for g in self.grads_mut() {
            b.fill(B::Elem::from_f64(0.0), g)?;
        }
        Ok(())
    }
}

/// [`Layer::params_and_grads_mut`] of a container, from its
/// [`Layer::append_params_and_grads`].
pub(crate) fn params_and_grads_of<B: TensorBackend, L: Layer<B> + ?Sized>(
    layer: &mut L,
) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
    let (mut params, mut grads) = (Vec::new(), Vec::new());
    layer.append_params_and_grads(&mut params, &mut grads);
    (params, grads)
}

/// A copy of `x` for the backward pass, written over `old` (the last
/// step's copy) when its length fits, so that a steady training loop does
/// not allocate and fault it in again.
pub(crate) fn keep_copy<B: TensorBackend>(
    b: &B,
    x: &B::Buffer,
    old: Option<B::Buffer>,
) -> Result<B::Buffer> {
    let mut kept = reuse(b, old, b.len(x))?;
    b.copy(x, &mut kept)?;
    Ok(kept)
}

/// Keeps `entry`, which holds an input given up by the caller (its buffer
/// is `buffer(entry)`), in `kept` for the backward pass in train mode, the
/// last step's buffer going back to the backend; hands the input back at
/// once otherwise, leaving `kept` as it was.
pub(crate) fn keep_given<B: TensorBackend, C>(
    b: &B,
    kept: &mut Option<C>,
    entry: C,
    train: bool,
    buffer: fn(C) -> B::Buffer,
) {
    if !train {
        b.recycle(buffer(entry));
    } else if let Some(old) = kept.replace(entry) {
        b.recycle(buffer(old));
    }
}

/// `old` when it holds `len` elements, another buffer of `len` elements
/// otherwise (`old` going back to the backend): for the caller to
/// overwrite ([`smoothout::BufferOps::for_overwrite`]).
pub(crate) fn reuse<B: TensorBackend>(
    b: &B,
    old: Option<B::Buffer>,
    len: usize,
) -> Result<B::Buffer> {
    match old {
        Some(old) if b.len(&old) == len => Ok(old),
        Some(old) => {
            b.recycle(old);
            b.for_overwrite(len)
        }
        None => b.for_overwrite(len),
    }
}

pub(crate) fn no_cache() -> Error {
    Error::InvalidSetting {
        name: "backward before forward",
        value: 0.0,
        expected: "preceded by a forward pass in train mode",
    }
}

pub(crate) fn bad_shape(what: &'static str, got: usize) -> Error {
    Error::InvalidSetting {
        name: what,
        value: got as f64,
        expected: "the dimensions the layer was built for",
    }
}

/// The `[N, C, H, W]` of a rank-4 input; `what` names the rank in the
/// error.
pub(crate) fn nchw(what: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(bad_shape(what, shape.len())),
    }
}

/// Uniform in `[−bound, bound)` from the top 53 bits of a draw.
pub(crate) fn uniform_init<B: TensorBackend>(
    b: &B,
    len: usize,
    bound: f64,
    rng: &mut impl RngCore,
) -> Result<B::Buffer> {
    let v: Vec<B::Elem> = (0..len)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            B::Elem::from_f64((2.0 * u - 1.0) * bound)
        })
        .collect();
    b.upload(&v)
}

/// [`Layer::params`], [`Layer::grads`] and [`Layer::params_and_grads_mut`]
/// of a layer that keeps its parameters in a field `params` and their
/// gradients in a field `grads`, both in spec order (Linear, Conv2d,
/// BatchNorm).
macro_rules! params_in_fields {
    () => {
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
        fn append_params_and_grads<'a>(
            &'a mut self,
            params: &mut Vec<&'a mut B::Buffer>,
            grads: &mut Vec<&'a mut B::Buffer>,
        ) {
            params.extend(self.params.iter_mut());
            grads.extend(self.grads.iter_mut());
        }
        fn zero_grad(&mut self, b: &B) -> Result<()> {
            for g in &mut self.grads {
                b.fill(<B::Elem as smoothout::Real>::from_f64(0.0), g)?;
            }
            Ok(())
        }
    };
}
pub(crate) use params_in_fields;
