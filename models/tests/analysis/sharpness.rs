//! (C_ε, A)-sharpness: exact on quadratics whose box maximum is known, the
//! sign of the gradient matters (the authors' script got it wrong), the
//! network loss's gradient is right in frozen mode, and a network's
//! sharpness is positive and leaves the weights as they were.

use smoothout::Reference;
use smoothout_models::analysis::{
    minimize, network_sharpness, sharpness, LbfgsbConfig, NetworkLoss, Objective, SharpnessConfig,
};
use smoothout_models::data::{Dataset, Normalize};
use smoothout_models::layers::{Activation, Layer};
use smoothout_models::networks::{mlp, NetConfig};
use smoothout_models::train::Result;

/// f(x) = ½ Σ h_i (x_i − c_i)².
struct Quadratic {
    h: Vec<f64>,
    c: Vec<f64>,
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.h.len()
    }
    fn value_and_grad(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64> {
        let mut f = 0.0;
        for i in 0..x.len() {
            let d = x[i] - self.c[i];
            f += 0.5 * self.h[i] * d * d;
            g[i] = self.h[i] * d;
        }
        Ok(f)
    }
}

impl Quadratic {
    /// The largest value over the box x0 ± ε(|x0| + 1): each coordinate at
    /// the end farther from c.
    fn box_max(&self, x0: &[f64], eps: f64) -> f64 {
        (0..x0.len())
            .map(|i| {
                let r = eps * (x0[i].abs() + 1.0);
                let d = (x0[i] - self.c[i]).abs() + r;
                0.5 * self.h[i] * d * d
            })
            .sum()
    }
}

fn cfg(eps: f64) -> SharpnessConfig {
    SharpnessConfig {
        epsilon: eps,
        max_iterations: 50,
        ..SharpnessConfig::default()
    }
}

#[test]
fn full_space_finds_the_known_box_maximum() {
    // Ill-conditioned, mixed signs, a coordinate at its centre's minimum.
    let mut q = Quadratic {
        h: vec![1.0, 100.0, 0.01, 7.0, 3.0],
        c: vec![0.0, 2.0, -1.0, 0.5, 0.3],
    };
    let x0 = [0.1, 1.5, -0.5, 0.5, -2.0];
    for eps in [5e-4, 1e-2, 0.3] {
        let s = sharpness(&mut q, &x0, &cfg(eps)).unwrap();
        let mut g = vec![0.0; 5];
        let f0 = q.value_and_grad(&x0, &mut g).unwrap();
        let want = q.box_max(&x0, eps);
        assert!((s.f0 - f0).abs() < 1e-15);
        assert!(
            (s.f_max - want).abs() <= 1e-9 * want,
            "ε = {eps}: {} vs {want}",
            s.f_max
        );
        let value = (want - f0) / (1.0 + f0) * 100.0;
        assert!(
            (s.value - value).abs() <= 1e-7 * value.max(1.0),
            "{} vs {value}",
            s.value
        );
        assert_eq!(s.runs.len(), 5);
    }
}

#[test]
fn at_a_minimum_the_sharpness_grows_with_curvature() {
    // At the minimum the first search starts with a zero gradient; the
    // random starts find the rise. Sharper bowls rise more.
    let x0 = [0.0; 4];
    let value = |h: f64| {
        let mut q = Quadratic {
            h: vec![h; 4],
            c: vec![0.0; 4],
        };
        sharpness(&mut q, &x0, &cfg(1e-2)).unwrap()
    };
    let (flat, sharp) = (value(1.0), value(100.0));
    let want = |h: f64| 4.0 * 0.5 * h * 1e-4 * 100.0; // f0 = 0
    assert!((flat.value - want(1.0)).abs() < 1e-9, "{}", flat.value);
    assert!((sharp.value - want(100.0)).abs() < 1e-7, "{}", sharp.value);
}

#[test]
fn negating_the_value_but_not_the_gradient_goes_the_wrong_way() {
    // The authors' script minimised −f while passing +∇f. On a bowl seen
    // from off-centre, that search cannot climb; `sharpness` does.
    let mut q = Quadratic {
        h: vec![2.0, 5.0],
        c: vec![0.0, 0.0],
    };
    let x0 = [1.0, -1.0];
    let eps = 0.1;
    let half: Vec<f64> = x0.iter().map(|&x: &f64| eps * (x.abs() + 1.0)).collect();
    let lower: Vec<f64> = x0.iter().zip(&half).map(|(x, h)| x - h).collect();
    let upper: Vec<f64> = x0.iter().zip(&half).map(|(x, h)| x + h).collect();
    let wrong = minimize(
        |x: &[f64], g: &mut [f64]| -q.value_and_grad(x, g).unwrap(),
        &x0,
        &lower,
        &upper,
        &LbfgsbConfig::default(),
    )
    .unwrap();
    let found_wrong = -wrong.f;
    let right = sharpness(&mut q, &x0, &cfg(eps)).unwrap();
    let want = q.box_max(&x0, eps);
    assert!((right.f_max - want).abs() < 1e-9);
    assert!(
        found_wrong < want - 0.5,
        "the wrong sign found {found_wrong}, the maximum is {want}"
    );
}

#[test]
fn random_subspace_searches_only_its_span() {
    let n = 40;
    let mut q = Quadratic {
        h: (1..=n).map(f64::from).collect(),
        c: vec![0.0; n as usize],
    };
    let x0 = vec![0.5; n as usize];
    let full = sharpness(&mut q, &x0, &cfg(1e-2)).unwrap();
    let in_span = SharpnessConfig {
        subspace: Some(3),
        ..cfg(1e-2)
    };
    let sub = sharpness(&mut q, &x0, &in_span).unwrap();
    assert!(sub.value > 0.0);
    assert!(
        sub.value < full.value,
        "subspace {} vs full {}",
        sub.value,
        full.value
    );
    let again = sharpness(&mut q, &x0, &in_span).unwrap();
    assert_eq!(sub, again);
}

#[test]
fn bad_settings_are_errors() {
    let mut q = Quadratic {
        h: vec![1.0],
        c: vec![0.0],
    };
    for c in [
        SharpnessConfig {
            epsilon: 0.0,
            ..SharpnessConfig::default()
        },
        SharpnessConfig {
            epsilon: f64::NAN,
            ..SharpnessConfig::default()
        },
        SharpnessConfig {
            runs: 0,
            ..SharpnessConfig::default()
        },
        SharpnessConfig {
            subspace: Some(0),
            ..SharpnessConfig::default()
        },
    ] {
        assert!(sharpness(&mut q, &[0.0], &c).is_err(), "{c:?}");
    }
    assert!(sharpness(&mut q, &[0.0, 1.0], &SharpnessConfig::default()).is_err());
}

fn trained_net() -> (
    Reference<f64>,
    smoothout_models::networks::Sequential<Reference<f64>>,
    Dataset,
    Normalize,
) {
    let b = Reference::<f64>::new();
    let data = Dataset::digits_embedded()
        .subset(&(0..60).collect::<Vec<_>>())
        .unwrap();
    let norm = Normalize::fit(&data).unwrap();
    let mut net = mlp(&b, NetConfig::seeded(3), 64, &[8], 10).unwrap();
    // A few train-mode passes give BatchNorm non-trivial running statistics.
    let mut x = vec![0.0f32; data.len() * 64];
    data.batch_f32(&(0..data.len()).collect::<Vec<_>>(), &mut x)
        .unwrap();
    norm.apply(&mut x, [1, 8, 8]).unwrap();
    let xs = Activation::new(x.iter().map(|&v| f64::from(v)).collect(), [60, 1, 8, 8]);
    for _ in 0..3 {
        net.forward(&b, &xs, true).unwrap();
    }
    (b, net, data, norm)
}

#[test]
fn network_loss_gradient_matches_finite_differences_in_frozen_mode() {
    let (b, mut net, data, norm) = trained_net();
    let mut loss = NetworkLoss::new(&b, &mut net, &data, &norm, 25).unwrap();
    let x0 = loss.params().unwrap();
    let mut g = vec![0.0; x0.len()];
    let f0 = loss.value_and_grad(&x0, &mut g).unwrap();
    let mut scratch = vec![0.0; x0.len()];
    // Weights of both layers, a bias, and BatchNorm's γ and β.
    for i in [
        0,
        17,
        64 * 8 + 3,
        64 * 8 + 8 + 2,
        64 * 8 + 8 + 8 + 5,
        x0.len() - 1,
    ] {
        let h = 1e-6;
        let mut xp = x0.clone();
        xp[i] += h;
        let fp = loss.value_and_grad(&xp, &mut scratch).unwrap();
        xp[i] -= 2.0 * h;
        let fm = loss.value_and_grad(&xp, &mut scratch).unwrap();
        let fd = (fp - fm) / (2.0 * h);
        // Central differences in f64: truncation O(h²), rounding ~1e-10/h.
        assert!(
            (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
            "param {i}: {fd} vs {}",
            g[i]
        );
    }
    // Frozen mode leaves the running statistics alone and equals eval mode.
    loss.set_params(&x0).unwrap();
    assert_eq!(loss.value().unwrap(), f0);
    drop(loss);
    let (eval_loss, _) = smoothout_models::train::evaluate(&b, &mut net, &norm, &data, 25).unwrap();
    assert!((eval_loss - f0).abs() < 1e-12, "{eval_loss} vs {f0}");
}

#[test]
fn network_sharpness_is_positive_and_restores_the_weights() {
    let (b, mut net, data, norm) = trained_net();
    let before: Vec<Vec<f64>> = net.params().into_iter().cloned().collect();
    let c = SharpnessConfig {
        runs: 2,
        max_iterations: 3,
        ..SharpnessConfig::default()
    };
    let s = network_sharpness(&b, &mut net, &data, &norm, 30, &c).unwrap();
    assert!(s.value > 0.0 && s.f_max > s.f0, "{s:?}");
    let after: Vec<Vec<f64>> = net.params().into_iter().cloned().collect();
    assert_eq!(before, after);
    // A wider box gives a larger rise.
    let wide = network_sharpness(
        &b,
        &mut net,
        &data,
        &norm,
        30,
        &SharpnessConfig { epsilon: 5e-3, ..c },
    )
    .unwrap();
    assert!(wide.value > s.value);
}
