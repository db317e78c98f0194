//! The adapter on candle's CPU device against `smoothout::reference`.
//!
//! Tolerances (everything else is compared bit for bit):
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | perturbed `w + θ` | 0 bits | same θ (same key, same `s · u` rounding), one `+` rounding |
//! | de-noised `(w + θ) − θ` against the reference's own round trip | 0 bits | same operations in the same order |
//! | de-noised against the original `w` | `ε · (|w| + |θ|)` per element | two roundings, each ≤ ½ ulp of a value ≤ `|w| + |θ|` |
//! | inner step after de-noising against the plain step | `ε · (|w| + |θ|)` per element | the de-noising difference, carried through an update whose factor on `w` is ≤ 1 (SGD: 1, AdamW: `1 − lr·wd`) plus one rounding of the same size |

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{linear, AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap, SGD};
use smoothout::reference;
use smoothout::{Config, Draw, Noise, Real, Scaling};
use smoothout_candle::{Error, Params, SmoothOut, SmoothOutConfig};

mod support;

use support::{key, param_noise, reference_theta, row_cols, A, SEED};

/// A small network with a BatchNorm in the middle: `fc1 [6, 5]`, `bn1 [6]`
/// (γ, β, running statistics), `fc2 [3, 6]`.
struct Net {
    varmap: VarMap,
    fc1: candle_nn::Linear,
    bn1: candle_nn::BatchNorm,
    fc2: candle_nn::Linear,
}

impl Net {
    fn new(dtype: DType) -> candle_core::Result<Net> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
        let fc1 = linear(5, 6, vb.pp("fc1"))?;
        let bn1 = candle_nn::batch_norm(6, 1e-5, vb.pp("bn1"))?;
        let fc2 = linear(6, 3, vb.pp("fc2"))?;
        // Non-trivial BatchNorm parameters, so that "unchanged" means something.
        for (name, v) in varmap.data().lock().unwrap().iter() {
            if name.starts_with("bn1.") {
                v.set(&(v.as_tensor().ones_like()? * 0.75)?)?;
            }
        }
        Ok(Net {
            varmap,
            fc1,
            bn1,
            fc2,
        })
    }

    fn loss(&self, dtype: DType) -> candle_core::Result<Tensor> {
        let x = Tensor::arange(0u32, 40, &Device::Cpu)?
            .to_dtype(dtype)?
            .reshape((8, 5))?
            .affine(0.05, -1.0)?
            .sin()?;
        let h = self.bn1.forward_train(&self.fc1.forward(&x)?)?.relu()?;
        self.fc2.forward(&h)?.sqr()?.mean_all()
    }

    /// `(name, values)` of every variable, sorted by name.
    fn values<T: candle_core::WithDType>(&self) -> Vec<(String, Vec<usize>, Vec<T>)> {
        let mut v: Vec<_> = self
            .varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| {
                let t = v.as_tensor();
                (
                    n.clone(),
                    t.dims().to_vec(),
                    t.flatten_all().unwrap().to_vec1().unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn config(scaling: Scaling) -> Config {
    Config::new(Noise::uniform(A).unwrap())
        .with_scaling(scaling)
        .with_seed(SEED)
}

fn perturbed(name: &str) -> bool {
    name.starts_with("fc")
}

fn check_against_reference<T: Real + candle_core::WithDType>(dtype: DType, scaling: Scaling) {
    let net = Net::new(dtype).unwrap();
    let before = net.values::<T>();
    let mut opt = SmoothOut::<SGD>::from_varmap(&net.varmap, config(scaling), 0.1).unwrap();
    let draw = Draw::new(5, 2);
    opt.perturb(draw).unwrap();
    assert_eq!(opt.applied(), Some(draw));
    let during = net.values::<T>();
    for ((name, dims, w), (_, _, p)) in before.iter().zip(&during) {
        if !perturbed(name) {
            assert!(same_bits(w, p), "{name} must not be perturbed");
            continue;
        }
        let (theta, _) = reference_theta(scaling, name, dims, w, draw);
        let want: Vec<T> = w.iter().zip(&theta).map(|(&w, &t)| w + t).collect();
        assert!(
            same_bits(&want, p),
            "{name}: w + θ differs from the reference ({scaling:?})"
        );
        assert!(theta.iter().any(|t| *t != T::zero()), "{name}: θ is zero");
    }
    opt.denoise().unwrap();
    assert_eq!(opt.applied(), None);
    let after = net.values::<T>();
    for (((name, dims, w), (_, _, p)), (_, _, d)) in before.iter().zip(&during).zip(&after) {
        if !perturbed(name) {
            assert!(same_bits(w, d), "{name}");
            continue;
        }
        let (theta, scales) = reference_theta(scaling, name, dims, w, draw);
        // Bit for bit the reference's own de-noise of the perturbed values…
        let mut want = p.clone();
        let n = param_noise(scaling, key(name, draw), row_cols(dims, w.len()), &scales);
        reference::denoise(&n, 0, &mut want);
        assert!(
            same_bits(&want, d),
            "{name}: de-noise differs from the reference"
        );
        // …and within two roundings of the original.
        for ((&w, &d), &t) in w.iter().zip(d).zip(&theta) {
            let bound = T::epsilon() * (w.abs() + t.abs());
            assert!((d - w).abs() <= bound, "{name}: {d:?} vs {w:?} (θ {t:?})");
        }
    }
}

fn same_bits<T: Real>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| Real::to_f64(*x).to_bits() == Real::to_f64(*y).to_bits())
}

#[test]
fn fixed_f32_matches_reference() {
    check_against_reference::<f32>(DType::F32, Scaling::Fixed);
}

#[test]
fn fixed_f64_matches_reference() {
    check_against_reference::<f64>(DType::F64, Scaling::Fixed);
}

#[test]
fn filter_norm_f32_matches_reference() {
    check_against_reference::<f32>(DType::F32, Scaling::FilterNorm);
}

#[test]
fn filter_norm_f64_matches_reference() {
    check_against_reference::<f64>(DType::F64, Scaling::FilterNorm);
}

/// The inner optimiser's step after de-noising equals its plain step from
/// the same weights with the same gradients, within the rounding of
/// de-noising and of the step itself.
///
/// With u = ε/2: perturbing and de-noising give w' = fl(fl(w0 + θ) − θ),
/// |w' − w0| ≤ u(2|w0| + |θ|). AdamW's decay fl(w·c), c ≈ 1, adds up to
/// 2u|w0| between the two runs. The final fl(· − step) rounds each run's
/// result by up to u|w1|, where w1 is the new weight; so the two runs may
/// differ by one rounding at w1's magnitude even when θ is tiny. In all
/// (first order): |got − want| ≤ u(4|w0| + |θ| + 2|w1|) ≤ ε(2|w0| + |θ| + |w1|).
fn step_after_denoise<O: Optimizer>(inner: impl Fn() -> O::Config, scaling: Scaling)
where
    O::Config: Clone,
{
    let net = Net::new(DType::F32).unwrap();
    let vars = net.varmap.all_vars();
    // The forward pass updates BatchNorm's running statistics: snapshot after it.
    let grads = net.loss(DType::F32).unwrap().backward().unwrap();
    let start: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().copy().unwrap()).collect();

    let mut plain = O::new(vars.clone(), inner()).unwrap();
    plain.step(&grads).unwrap();
    let want = net.values::<f32>();
    let restore = || {
        for (v, t) in vars.iter().zip(&start) {
            v.set(t).unwrap();
        }
    };
    restore();
    let before = net.values::<f32>();

    let mut so = SmoothOut::<O>::from_varmap(&net.varmap, config(scaling), inner()).unwrap();
    let draw = Draw::new(3, 0);
    so.perturb(draw).unwrap();
    so.step(&grads).unwrap();
    assert_eq!(so.applied(), None);
    let got = net.values::<f32>();
    for (((name, dims, w0), (_, _, want)), (_, _, got)) in before.iter().zip(&want).zip(&got) {
        if !perturbed(name) {
            assert!(same_bits(want, got), "{name}");
            continue;
        }
        let (theta, _) = reference_theta(scaling, name, dims, w0, draw);
        for (((&w0, &want), &got), &t) in w0.iter().zip(want).zip(got).zip(&theta) {
            let bound = f32::EPSILON * (2.0 * w0.abs() + t.abs() + want.abs());
            assert!(
                (want - got).abs() <= bound,
                "{name}: {got} vs {want} (θ {t})"
            );
        }
    }
}

#[test]
fn sgd_step_after_denoise_equals_plain_step() {
    step_after_denoise::<SGD>(|| 0.1, Scaling::Fixed);
    step_after_denoise::<SGD>(|| 0.1, Scaling::FilterNorm);
}

#[test]
fn adamw_step_after_denoise_equals_plain_step() {
    let p = || ParamsAdamW {
        lr: 0.01,
        weight_decay: 0.01,
        ..Default::default()
    };
    step_after_denoise::<AdamW>(p, Scaling::Fixed);
    step_after_denoise::<AdamW>(p, Scaling::FilterNorm);
}

#[test]
fn train_step_closure_and_protocol_errors() {
    let net = Net::new(DType::F32).unwrap();
    let before = net.values::<f32>();
    let mut so = SmoothOut::<SGD>::from_varmap(&net.varmap, config(Scaling::Fixed), 0.0).unwrap();
    // lr 0: a whole step leaves the weights within de-noising rounding.
    let loss = so
        .train_step(Draw::new(0, 0), || net.loss(DType::F32))
        .unwrap();
    assert!(loss.to_scalar::<f32>().unwrap().is_finite());
    assert_eq!(so.applied(), None);
    for ((name, _, w), (_, _, a)) in before.iter().zip(&net.values::<f32>()) {
        if name.contains("running") {
            continue; // the forward pass's own update
        }
        for (&w, &a) in w.iter().zip(a) {
            assert!(
                (w - a).abs() <= f32::EPSILON * (w.abs() + A as f32),
                "{name}"
            );
        }
    }
    // A failing forward pass still leaves no noise behind.
    let r = so.with_perturbed(Draw::new(1, 0), || {
        Err::<(), _>(candle_core::Error::msg("boom"))
    });
    assert!(matches!(r, Err(Error::Candle(_))));
    assert_eq!(so.applied(), None);
    // Perturbing twice, de-noising nothing.
    so.perturb(Draw::new(2, 0)).unwrap();
    let e = so.perturb(Draw::new(3, 0)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::SmoothOut {
                source: smoothout::Error::AlreadyPerturbed,
                ..
            }
        ),
        "{e}"
    );
    so.denoise().unwrap();
    let e = so.denoise().unwrap_err();
    assert!(
        matches!(
            e,
            Error::SmoothOut {
                source: smoothout::Error::NotPerturbed,
                ..
            }
        ),
        "{e}"
    );
    // A plain step with nothing applied is the inner step.
    let grads = net.loss(DType::F32).unwrap().backward().unwrap();
    so.step(&grads).unwrap();
}

#[test]
fn through_the_optimizer_trait_vars_are_named_by_position() {
    let w = Var::from_tensor(&Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let cfg = SmoothOutConfig {
        inner: 0.1,
        smoothout: config(Scaling::Fixed),
    };
    let mut so = SmoothOut::<SGD>::new(vec![w.clone()], cfg).unwrap();
    assert_eq!(so.learning_rate(), 0.1);
    so.set_learning_rate(0.2);
    assert_eq!(so.inner().learning_rate(), 0.2);
    let draw = Draw::new(0, 0);
    so.perturb(draw).unwrap();
    let mut theta = vec![0f32; 6];
    reference::fill_noise(key("0", draw), &Noise::uniform(A).unwrap(), 0, &mut theta).unwrap();
    let want: Vec<f32> = theta.iter().map(|t| 1.0 + t).collect();
    assert!(same_bits(
        &want,
        &w.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    ));
}

#[test]
fn unsupported_dtypes_are_typed_errors() {
    let dev = Device::Cpu;
    for dtype in [DType::F16, DType::BF16] {
        let w = Var::zeros((2, 2), dtype, &dev).unwrap();
        let g = Var::ones(2, dtype, &dev).unwrap();
        let params = Params::from_named([("fc.weight", w), ("ln.weight", g.clone())]).unwrap();
        let e = SmoothOut::<SGD>::wrap(
            SGD::new(vec![], 0.1).unwrap(),
            params,
            config(Scaling::Fixed),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::UnsupportedDtype { name, dtype: d, .. } if name == "fc.weight" && *d == dtype),
            "{e}"
        );
        assert!(
            e.to_string().contains(dtype.as_str()) && e.to_string().contains("f32 and f64"),
            "{e}"
        );
        // A normalisation parameter in any dtype is fine: it is never touched.
        let params = Params::from_named([("ln.weight", g)]).unwrap();
        assert!(SmoothOut::<SGD>::wrap(
            SGD::new(vec![], 0.1).unwrap(),
            params,
            config(Scaling::Fixed)
        )
        .is_ok());
        // Through candle's error type the message survives.
        let c: candle_core::Error = e.into();
        assert!(c.to_string().contains("fc.weight"), "{c}");
    }
}
