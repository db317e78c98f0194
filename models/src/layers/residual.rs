//! The ResNet basic block.

use super::batch_norm::BatchNorm;
use super::conv2d::Conv2d;
use super::layer::{params_and_grads_of, Activation, Layer};
use super::relu::Relu;
use crate::rng::seeded_rng;
use rand_core::RngCore;
use smoothout::tensor::TensorBackend;
use smoothout::{ParamSpec, Result};

/// The basic block of He et al.'s ResNet:
///
/// ```text
/// main     = BN(conv3×3(ReLU(BN(conv3×3_s(x)))))       (convs without bias, padding 1)
/// shortcut = x                                  when stride = 1 and channels = filters
///          = BN(conv1×1_s(x))                   otherwise (projection)
/// y        = ReLU(main + shortcut)
/// ```
///
/// Parameters, in spec order: `conv1.weight, bn1.weight, bn1.bias,
/// conv2.weight, bn2.weight, bn2.bias`, then for a projection
/// `shortcut.0.weight, shortcut.1.weight, shortcut.1.bias` (prefixed with
/// the block's name). Ghost batches, when set, apply to every BatchNorm.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::layers::{Activation, BasicBlock, Layer};
/// let b = Reference::<f64>::new();
/// let mut block = BasicBlock::new(&b, 2, 4, 2, 0)?;
/// assert!(block.has_projection());
/// let x = vec![0.1; 2 * 2 * 4 * 4];
/// let y = block.forward(&b, &Activation::new(x, [2, 2, 4, 4]), true)?;
/// assert_eq!(y.shape, [2, 4, 2, 2]);
/// assert_eq!(block.specs().len(), 9);
/// # Ok::<(), smoothout::Error>(())
/// ```
pub struct BasicBlock<B: TensorBackend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    relu1: Relu<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm<B>,
    shortcut: Option<(Conv2d<B>, BatchNorm<B>)>,
    relu_out: Relu<B>,
}

impl<B: TensorBackend> BasicBlock<B> {
    /// `channels → filters`, the first convolution (and the projection)
    /// with `stride`; the sub-layers' initialisation seeds are drawn from
    /// `seed`.
    ///
    /// # Errors
    /// As [`Conv2d::new`] and [`BatchNorm::new`].
    pub fn new(b: &B, channels: usize, filters: usize, stride: usize, seed: u64) -> Result<Self> {
        let mut rng = seeded_rng(seed);
        let conv1 = Conv2d::new(b, channels, filters, 3, stride, 1, rng.next_u64())?
            .without_bias()
            .named("conv1");
        let conv2 = Conv2d::new(b, filters, filters, 3, 1, 1, rng.next_u64())?
            .without_bias()
            .named("conv2");
        let shortcut = if stride != 1 || channels != filters {
            Some((
                Conv2d::new(b, channels, filters, 1, stride, 0, rng.next_u64())?
                    .without_bias()
                    .named("shortcut.0"),
                BatchNorm::new(b, filters)?.named("shortcut.1"),
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1,
            bn1: BatchNorm::new(b, filters)?.named("bn1"),
            relu1: Relu::new(),
            conv2,
            bn2: BatchNorm::new(b, filters)?.named("bn2"),
            shortcut,
            relu_out: Relu::new(),
        })
    }

    /// Whether the shortcut is a 1×1 convolution with BatchNorm (rather
    /// than the identity).
    #[must_use]
    pub fn has_projection(&self) -> bool {
        self.shortcut.is_some()
    }

    /// With ghost batches of `ghost` samples in every BatchNorm.
    ///
    /// # Errors
    /// As [`BatchNorm::with_ghost_batch`].
    pub fn with_ghost_batch(self, ghost: Option<usize>) -> Result<Self> {
        let shortcut = match self.shortcut {
            Some((c, bn)) => Some((c, bn.with_ghost_batch(ghost)?)),
            None => None,
        };
        Ok(BasicBlock {
            bn1: self.bn1.with_ghost_batch(ghost)?,
            bn2: self.bn2.with_ghost_batch(ghost)?,
            shortcut,
            ..self
        })
    }

    fn layers(&self) -> Vec<&dyn Layer<B>> {
        let mut v: Vec<&dyn Layer<B>> = vec![&self.conv1, &self.bn1, &self.conv2, &self.bn2];
        if let Some((c, bn)) = &self.shortcut {
            v.push(c);
            v.push(bn);
        }
        v
    }

    /// The layers with parameters or modes, in spec order, without a list.
    fn layers_mut(&mut self) -> impl Iterator<Item = &mut dyn Layer<B>> {
        let shortcut = self
            .shortcut
            .as_mut()
            .map(|(c, bn)| [c as &mut dyn Layer<B>, bn as &mut dyn Layer<B>]);
        [
            &mut self.conv1 as &mut dyn Layer<B>,
            &mut self.bn1,
            &mut self.conv2,
            &mut self.bn2,
        ]
        .into_iter()
        .chain(shortcut.into_iter().flatten())
    }
}

impl<B: TensorBackend> Layer<B> for BasicBlock<B> {
    fn forward(&mut self, b: &B, x: &Activation<B>, train: bool) -> Result<Activation<B>> {
        // Each intermediate is given to the next layer, which keeps it for
        // backward or hands it back to the backend.
        let mut h = self.conv1.forward(b, x, train)?;
        for l in [
            &mut self.bn1 as &mut dyn Layer<B>,
            &mut self.relu1,
            &mut self.conv2,
            &mut self.bn2,
        ] {
            h = l.forward_owned(b, h, train)?;
        }
        match &mut self.shortcut {
            Some((c, bn)) => {
                let p = c.forward(b, x, train)?;
                let p = bn.forward_owned(b, p, train)?;
                b.add(&p.data, &mut h.data)?;
                b.recycle(p.data);
            }
            None => b.add(&x.data, &mut h.data)?,
        }
        self.relu_out.forward_owned(b, h, train)
    }

    fn backward(&mut self, b: &B, dy: &B::Buffer) -> Result<B::Buffer> {
        let d = self.relu_out.backward(b, dy)?;
        let mut g = self.bn2.backward(b, &d)?;
        for l in [
            &mut self.conv2 as &mut dyn Layer<B>,
            &mut self.relu1,
            &mut self.bn1,
            &mut self.conv1,
        ] {
            let next = l.backward(b, &g)?;
            b.recycle(core::mem::replace(&mut g, next));
        }
        match &mut self.shortcut {
            Some((c, bn)) => {
                let p = bn.backward(b, &d)?;
                let q = c.backward(b, &p)?;
                b.recycle(p);
                b.add(&q, &mut g)?;
                b.recycle(q);
            }
            None => b.add(&d, &mut g)?,
        }
        b.recycle(d);
        Ok(g)
    }

    fn specs(&self) -> Vec<ParamSpec> {
        self.layers().iter().flat_map(|l| l.specs()).collect()
    }
    fn params(&self) -> Vec<&B::Buffer> {
        self.layers().into_iter().flat_map(|l| l.params()).collect()
    }
    fn set_frozen(&mut self, frozen: bool) {
        for l in self.layers_mut() {
            l.set_frozen(frozen);
        }
    }
    fn buffers(&self) -> Vec<(String, &B::Buffer)> {
        self.layers()
            .into_iter()
            .flat_map(|l| l.buffers())
            .collect()
    }
    fn buffers_mut(&mut self) -> Vec<(String, &mut B::Buffer)> {
        self.layers_mut().flat_map(|l| l.buffers_mut()).collect()
    }
    fn grads(&self) -> Vec<&B::Buffer> {
        self.layers().into_iter().flat_map(|l| l.grads()).collect()
    }
    fn params_and_grads_mut(&mut self) -> (Vec<&mut B::Buffer>, Vec<&mut B::Buffer>) {
        params_and_grads_of(self)
    }
    fn append_params_and_grads<'a>(
        &'a mut self,
        params: &mut Vec<&'a mut B::Buffer>,
        grads: &mut Vec<&'a mut B::Buffer>,
    ) {
        for l in self.layers_mut() {
            l.append_params_and_grads(params, grads);
        }
    }
    fn zero_grad(&mut self, b: &B) -> Result<()> {
        self.layers_mut().try_for_each(|l| l.zero_grad(b))
    }
}
