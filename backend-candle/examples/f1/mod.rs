//! The paper's F1 in candle-nn, and SGD with momentum as a third-party
//! `candle_nn::Optimizer` (candle-nn's own SGD has no momentum). Shared by
//! the `mnist` example and the `step` benchmark.

use candle_core::backprop::GradStore;
use candle_core::{Module, ModuleT, Result, Tensor, Var};
use candle_nn::{
    batch_norm, linear, BatchNorm, BatchNormConfig, Linear, Optimizer, VarBuilder, VarMap,
};
use smoothout::{param_id, reference, Noise, NoiseKey};

/// F1 (Keskar et al.'s MNIST network, as `smoothout_models::networks::f1`):
/// `784 → [Linear 512 → BatchNorm → ReLU] ×5 → Linear 10`, names
/// `fc1…fc6`, `bn1…bn5`.
pub struct F1 {
    hidden: Vec<(Linear, BatchNorm)>,
    head: Linear,
}

impl F1 {
    /// Input features, hidden width, classes.
    pub const SHAPE: (usize, usize, usize) = (784, 512, 10);

    pub fn new(vb: &VarBuilder<'_>) -> Result<Self> {
        let (inputs, width, classes) = Self::SHAPE;
        let bn = BatchNormConfig {
            eps: 1e-5,
            remove_mean: true,
            affine: true,
            momentum: 0.1,
        };
        let mut hidden = Vec::new();
        let mut fan_in = inputs;
        for i in 1..=5 {
            let fc = linear(fan_in, width, vb.pp(format!("fc{i}")))?;
            let norm = batch_norm(width, bn, vb.pp(format!("bn{i}")))?;
            hidden.push((fc, norm));
            fan_in = width;
        }
        let head = linear(width, classes, vb.pp("fc6"))?;
        Ok(F1 { hidden, head })
    }
}

/// Tag folded into the initialisation keys, so that they never coincide
/// with a training draw's (`"init"` in ASCII).
const INIT_TAG: u64 = 0x696e_6974;

/// Re-initialises F1's Linear layers from `seed` (candle's CPU generator
/// cannot be seeded) with candle-nn's default distributions — weights
/// Kaiming normal, `N(0, 2/fan_in)`, biases `U(±1/√fan_in)` — drawn from
/// smoothout's counter-based generator keyed by `(seed, name)`. BatchNorm
/// keeps its γ = 1, β = 0.
pub fn init_seeded(varmap: &VarMap, seed: u64) -> Result<()> {
    let (inputs, width, _) = F1::SHAPE;
    let vars = varmap.data().lock().expect("VarMap lock");
    for i in 1..=6 {
        let fan_in = if i == 1 { inputs } else { width } as f64;
        let gain = std::f64::consts::SQRT_2;
        let inits = [
            ("weight", Noise::gaussian(gain / fan_in.sqrt())),
            ("bias", Noise::uniform(1.0 / fan_in.sqrt())),
        ];
        for (part, noise) in inits {
            let name = format!("fc{i}.{part}");
            let var = vars
                .get(&name)
                .ok_or_else(|| candle_core::Error::msg(format!("no variable {name}")))?;
            let key = NoiseKey::for_draw(seed, 0, 0, param_id(&name)).fold_in(INIT_TAG);
            let mut values = vec![0f32; var.elem_count()];
            noise
                .and_then(|noise| reference::fill_noise(key, &noise, 0, &mut values))
                .map_err(candle_core::Error::wrap)?;
            var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
        }
    }
    Ok(())
}

impl ModuleT for F1 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (fc, bn) in &self.hidden {
            x = bn.forward_t(&fc.forward(&x)?, train)?.relu()?;
        }
        self.head.forward(&x)
    }
}

/// SGD with momentum (PyTorch's form): `v ← μ·v + g`, `w ← w − lr·v`.
pub struct MomentumSgd {
    vars: Vec<(Var, Var)>,
    lr: f64,
    momentum: f64,
}

/// [`MomentumSgd`]'s configuration.
#[derive(Clone, Copy, Debug)]
pub struct MomentumConfig {
    pub lr: f64,
    pub momentum: f64,
}

impl Optimizer for MomentumSgd {
    type Config = MomentumConfig;

    fn new(vars: Vec<Var>, config: MomentumConfig) -> Result<Self> {
        let vars = vars
            .into_iter()
            .filter(|v| v.dtype().is_float())
            .map(|v| {
                let velocity = Var::zeros(v.shape(), v.dtype(), v.device())?;
                Ok((v, velocity))
            })
            .collect::<Result<_>>()?;
        Ok(MomentumSgd {
            vars,
            lr: config.lr,
            momentum: config.momentum,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (w, v) in &self.vars {
            if let Some(g) = grads.get(w) {
                let next = ((v.as_tensor() * self.momentum)? + g)?;
                w.set(&w.sub(&(&next * self.lr)?)?)?;
                v.set(&next)?;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}
