//! SAM, ASAM, RWP and m-RWP in the trainer: each perturbation against one
//! computed here by hand on a small network, the BatchNorm statistics of
//! the first pass only, and every method at strength 0 bit for bit the
//! baseline. Each hand check is also shown to reject a broken variant of
//! its method (SAM updating from `w + ε`, ASAM without `T`, RWP with one σ
//! for the whole tensor, m-RWP without the unperturbed loss).
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | parameters after one step, f64 | 1e-12 absolute | the same formulas in another order of operations |
//! | RWP's θ, f64 | 1e-12 relative | `γ·‖w_i‖·z` against the core's draw `z` |
//! | BatchNorm statistics, strength-0 runs | exact | the same operations on the same values |

use smoothout::{Draw, Noise, ParamSpec, Reference, SmoothOut};
use smoothout_cpu::Cpu;
use smoothout_models::data::{Dataset, Split};
use smoothout_models::layers::{Activation, Layer, SoftmaxCrossEntropy};
use smoothout_models::networks::Sequential;
use smoothout_models::train::{Method, Network, RowNoise, TrainConfig, TrainError, Trainer};

type B = Reference<f64>;
const SHAPE: [usize; 3] = [1, 8, 8];
const BATCH: usize = 32;
const LR: f64 = 0.1;

fn digits() -> Split {
    Dataset::digits_embedded().shuffled_split(360, 0).unwrap()
}

/// One batch of inputs (the first training images, scaled to [0, 1]) and
/// their labels.
fn batch(data: &Split) -> (Vec<f32>, Vec<u32>) {
    let idx: Vec<usize> = (0..BATCH).collect();
    let mut x = vec![0f32; BATCH * 64];
    data.train.batch_f32(&idx, &mut x).unwrap();
    let max = f32::from(data.train.max_pixel());
    x.iter_mut().for_each(|v| *v /= max);
    let labels = idx
        .iter()
        .map(|&i| u32::from(data.train.label(i).unwrap()))
        .collect();
    (x, labels)
}

/// `method` on an MLP with BatchNorm, plain SGD at rate [`LR`] (no
/// momentum, so that one step is `w − lr·g`).
fn config(method: Method, strength: f64) -> TrainConfig {
    let mut c = TrainConfig::new(method, Network::Mlp(vec![16])).with_batch(BATCH);
    c.a = strength;
    c.momentum = 0.0;
    c
}

/// The network the trainer of `cfg` starts from, built on its own.
fn network(cfg: &TrainConfig) -> Sequential<B> {
    cfg.network.build(&B::new(), cfg.seed, SHAPE, 10).unwrap()
}

/// The network's specs, marked perturbed as `cfg` says.
fn perturbed_specs(cfg: &TrainConfig, net: &Sequential<B>) -> Vec<ParamSpec> {
    net.specs()
        .into_iter()
        .map(|s| cfg.perturb.apply(s))
        .collect()
}

fn params(net: &Sequential<B>) -> Vec<Vec<f64>> {
    net.params().into_iter().cloned().collect()
}

fn set_params(net: &mut Sequential<B>, values: &[Vec<f64>]) {
    for (p, v) in net.params_mut().into_iter().zip(values) {
        p.copy_from_slice(v);
    }
}

/// The gradient of the mean loss of `x`, `labels` at the network's
/// parameters (a training-mode pass: batch statistics).
fn gradient(net: &mut Sequential<B>, x: &[f32], labels: &[u32]) -> Vec<Vec<f64>> {
    let b = B::new();
    let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    net.zero_grad(&b).unwrap();
    let logits = net
        .forward(&b, &Activation::new(xs, [labels.len(), 1, 8, 8]), true)
        .unwrap();
    let (_, dz) = SoftmaxCrossEntropy::new(10)
        .forward(&b, &logits, labels)
        .unwrap();
    net.backward(&b, &dz).unwrap();
    net.grads().into_iter().cloned().collect()
}

/// `w − lr·g`, buffer by buffer.
fn sgd(w: &[Vec<f64>], g: &[Vec<f64>]) -> Vec<Vec<f64>> {
    w.iter()
        .zip(g)
        .map(|(w, g)| w.iter().zip(g).map(|(w, g)| w - LR * g).collect())
        .collect()
}

/// `w + ε` for the perturbed buffers.
fn add(w: &[Vec<f64>], eps: &[Vec<f64>]) -> Vec<Vec<f64>> {
    w.iter()
        .zip(eps)
        .map(|(w, e)| w.iter().zip(e).map(|(w, e)| w + e).collect())
        .collect()
}

/// The largest absolute difference between two lists of buffers.
fn distance(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f64::max)
}

/// Whether the trainer's parameters after one step of `cfg` equal
/// `expected` (1e-12).
fn matches(after: &[Vec<f64>], expected: &[Vec<f64>]) -> bool {
    distance(after, expected) < 1e-12
}

/// The parameters after one step of `cfg` on the batch, and the trainer.
fn one_step(cfg: &TrainConfig, data: &Split) -> (Vec<Vec<f64>>, Trainer<B>) {
    let (x, labels) = batch(data);
    let mut t = Trainer::new(B::new(), cfg.clone(), &data.train).unwrap();
    t.step_batch(&x, &labels).unwrap();
    (params(t.network()), t)
}

/// SAM's or ASAM's ε, by hand: `ρ·Tᵏg/‖Tg‖` on the perturbed buffers
/// (`T = |w| + η`, or 1 for SAM), 0 on the others.
fn epsilon(
    specs: &[ParamSpec],
    w: &[Vec<f64>],
    g: &[Vec<f64>],
    rho: f64,
    eta: Option<f64>,
) -> Vec<Vec<f64>> {
    let t = |w: f64| eta.map_or(1.0, |eta| w.abs() + eta);
    let norm: f64 = specs
        .iter()
        .zip(w.iter().zip(g))
        .filter(|(s, _)| s.perturbed)
        .flat_map(|(_, (w, g))| w.iter().zip(g).map(|(&w, &g)| (t(w) * g).powi(2)))
        .sum::<f64>()
        .sqrt();
    specs
        .iter()
        .zip(w.iter().zip(g))
        .map(|(s, (w, g))| {
            w.iter()
                .zip(g)
                .map(|(&w, &g)| {
                    if s.perturbed {
                        rho * t(w) * t(w) * g / norm
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn sam_and_asam_update_from_w_with_the_gradient_at_w_plus_epsilon() {
    let data = digits();
    let (x, labels) = batch(&data);
    for (method, rho, eta) in [(Method::Sam, 0.05, None), (Method::Asam, 0.5, Some(0.01))] {
        let cfg = config(method, rho);
        let mut net = network(&cfg);
        let specs = net.specs();
        assert!(
            specs.iter().any(|s| !s.perturbed),
            "BatchNorm is not perturbed"
        );
        let w = params(&net);
        let g1 = gradient(&mut net, &x, &labels);
        let eps = epsilon(&specs, &w, &g1, rho, eta);
        set_params(&mut net, &add(&w, &eps));
        let g2 = gradient(&mut net, &x, &labels);
        let expected = sgd(&w, &g2);
        let (after, _) = one_step(&cfg, &data);
        assert!(
            matches(&after, &expected),
            "{method:?}: {} from the hand-computed step",
            distance(&after, &expected)
        );
        // What the check rejects: the update taken from w + ε, the gradient
        // at w (no ascent), and for ASAM, SAM's ε (no T).
        let broken = [
            ("updates from w + ε", sgd(&add(&w, &eps), &g2)),
            ("the gradient at w", sgd(&w, &g1)),
        ];
        for (what, b) in broken {
            assert!(
                !matches(&after, &b),
                "{method:?}: cannot tell a step that {what}"
            );
        }
        if eta.is_some() {
            let sam_eps = epsilon(&specs, &w, &g1, rho, None);
            set_params(&mut net, &add(&w, &sam_eps));
            let g_sam = gradient(&mut net, &x, &labels);
            assert!(
                !matches(&after, &sgd(&w, &g_sam)),
                "ASAM cannot be told from SAM's ε"
            );
        }
    }
}

#[test]
fn rwp_draws_gaussian_noise_with_sigma_gamma_times_each_filters_norm() {
    let b = B::new();
    let gamma = 0.3;
    let cfg = config(Method::Rwp, gamma);
    let net = network(&cfg);
    let specs = perturbed_specs(&cfg, &net);
    let w = params(&net);
    let draw = Draw::new(0, 0);
    let minus_w = |mut p: Vec<Vec<f64>>| {
        p.iter_mut()
            .zip(&w)
            .for_each(|(p, w)| p.iter_mut().zip(w).for_each(|(p, w)| *p -= w));
        p
    };
    let mut rwp = RowNoise::<B>::new(gamma, cfg.seed, specs.clone()).unwrap();
    let mut p = w.clone();
    rwp.perturb(&b, &mut p.iter_mut().collect::<Vec<_>>(), draw)
        .unwrap();
    let got = minus_w(p.clone());
    rwp.denoise(&b, &mut p.iter_mut().collect::<Vec<_>>(), draw)
        .unwrap();
    assert!(distance(&p, &w) < 1e-15, "de-noising restores w");
    // The unit draws z: SmoothOut's generator under the same keys, σ = 1
    // on every element.
    let unit = smoothout::Config::new(Noise::gaussian(1.0).unwrap()).with_seed(cfg.seed);
    let mut so = SmoothOut::new(&b, unit, specs.clone()).unwrap();
    let mut p = w.clone();
    so.perturb(&b, &mut p.iter_mut().collect::<Vec<_>>(), draw)
        .unwrap();
    let z = minus_w(p);
    // By hand: θ_ij = γ·‖w_i‖·z_ij, rows along dim 0 (a bias: one element
    // per row), nothing on BatchNorm's γ and β.
    let by_hand = |per_row: bool| -> Vec<Vec<f64>> {
        specs
            .iter()
            .zip(w.iter().zip(&z))
            .map(|(s, (w, z))| {
                if !s.perturbed {
                    return vec![0.0; w.len()];
                }
                let cols = s.cols();
                let whole = w.iter().map(|v| v * v).sum::<f64>().sqrt();
                w.chunks(cols)
                    .zip(z.chunks(cols))
                    .flat_map(|(row, zr)| {
                        let norm = if per_row {
                            row.iter().map(|v| v * v).sum::<f64>().sqrt()
                        } else {
                            whole
                        };
                        zr.iter().map(move |z| gamma * norm * z)
                    })
                    .collect()
            })
            .collect()
    };
    let close = |a: &[Vec<f64>], b: &[Vec<f64>]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1e-300))
    };
    assert!(close(&got, &by_hand(true)), "θ is not γ·‖w_i‖·z per row");
    assert!(
        !close(&got, &by_hand(false)),
        "cannot tell one σ for the whole tensor"
    );
    // And it is Gaussian of that σ: over the first layer's 16 rows of 64,
    // θ/(γ‖w_i‖) has mean ≈ 0 and variance ≈ 1.
    let first: Vec<f64> = got[0]
        .chunks(64)
        .zip(w[0].chunks(64))
        .flat_map(|(t, row)| {
            let s = gamma * row.iter().map(|v| v * v).sum::<f64>().sqrt();
            t.iter().map(move |t| t / s)
        })
        .collect();
    let n = first.len() as f64;
    let mean = first.iter().sum::<f64>() / n;
    let var = first.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // 1024 draws: the mean's sd is 1/32, the variance's about 0.044.
    assert!(
        mean.abs() < 4.0 / 32.0 && (var - 1.0).abs() < 0.2,
        "mean {mean}, variance {var}"
    );
}

#[test]
fn mixed_rwp_steps_along_the_mixed_gradient() {
    let data = digits();
    let (x, labels) = batch(&data);
    let b = B::new();
    let (gamma, beta) = (0.3, 0.25);
    let mut cfg = config(Method::MixedRwp, gamma);
    cfg.beta = beta;
    let mut net = network(&cfg);
    let specs = perturbed_specs(&cfg, &net);
    let w = params(&net);
    let g_clean = gradient(&mut net, &x, &labels);
    let mut rwp = RowNoise::<B>::new(gamma, cfg.seed, specs).unwrap();
    rwp.perturb(&b, &mut net.params_mut(), Draw::new(0, 0))
        .unwrap();
    let g_noisy = gradient(&mut net, &x, &labels);
    let mix = |beta: f64| -> Vec<Vec<f64>> {
        g_clean
            .iter()
            .zip(&g_noisy)
            .map(|(c, n)| {
                c.iter()
                    .zip(n)
                    .map(|(c, n)| beta * c + (1.0 - beta) * n)
                    .collect()
            })
            .collect()
    };
    let (after, _) = one_step(&cfg, &data);
    let expected = sgd(&w, &mix(beta));
    assert!(
        matches(&after, &expected),
        "{} from the hand-computed step",
        distance(&after, &expected)
    );
    assert!(
        !matches(&after, &sgd(&w, &mix(0.0))),
        "cannot tell RWP's gradient (β ignored)"
    );
    assert!(
        !matches(&after, &sgd(&w, &mix(1.0))),
        "cannot tell the plain gradient"
    );
}

#[test]
fn batch_norm_statistics_come_from_the_first_pass_only() {
    let data = digits();
    let stats = |t: &Trainer<B>| -> Vec<Vec<f64>> {
        t.network()
            .buffers()
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    };
    let (_, base) = one_step(&config(Method::Baseline, 0.0), &data);
    let base = stats(&base);
    assert!(!base.is_empty());
    for (method, strength) in [
        (Method::Sam, 0.05),
        (Method::Asam, 0.5),
        (Method::MixedRwp, 0.3),
    ] {
        let (_, t) = one_step(&config(method, strength), &data);
        assert_eq!(stats(&t), base, "{method:?}");
    }
    // A second training-mode pass at another point would have moved them:
    // the check above can fail.
    let cfg = config(Method::Sam, 0.05);
    let (x, labels) = batch(&data);
    let mut net = network(&cfg);
    let w = params(&net);
    let g = gradient(&mut net, &x, &labels);
    let eps = epsilon(&net.specs(), &w, &g, 0.05, None);
    set_params(&mut net, &add(&w, &eps));
    gradient(&mut net, &x, &labels);
    let twice: Vec<Vec<f64>> = net.buffers().into_iter().map(|(_, v)| v.clone()).collect();
    assert_ne!(twice, base);
}

#[test]
fn every_method_at_strength_zero_is_the_baseline_bit_for_bit() {
    let data = digits();
    let run = |method: Method| {
        let mut cfg = config(method, 0.0);
        cfg.momentum = 0.9;
        cfg.ghost = Some(16);
        let mut t = Trainer::new(Cpu::<f32>::with_threads(2).unwrap(), cfg, &data.train).unwrap();
        for _ in 0..6 {
            t.step(&data.train).unwrap();
        }
        t.checkpoint().unwrap().tensors
    };
    let base = run(Method::Baseline);
    for method in Method::ALL.into_iter().skip(1) {
        assert!(
            run(method) == base,
            "{method:?} at strength 0 differs from the baseline"
        );
    }
    // The comparison sees a difference where there is one.
    let mut cfg = config(Method::Sam, 0.05);
    cfg.momentum = 0.9;
    cfg.ghost = Some(16);
    let mut t = Trainer::new(Cpu::<f32>::with_threads(2).unwrap(), cfg, &data.train).unwrap();
    t.step(&data.train).unwrap();
    assert!(t.checkpoint().unwrap().tensors != base);
}

#[test]
fn each_method_learns_the_digits() {
    let data = digits();
    for method in [Method::Sam, Method::Asam, Method::Rwp, Method::MixedRwp] {
        let cfg = TrainConfig::new(method, Network::Mlp(vec![32]))
            .with_batch(64)
            .with_epochs(3);
        let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data.train).unwrap();
        let h = t.run(&data, None, &mut |_| {}).unwrap();
        assert!(h[2].train_loss < h[0].train_loss, "{method:?}: {h:?}");
        assert!(
            h[2].test_acc > 0.9,
            "{method:?}: test accuracy {}",
            h[2].test_acc
        );
    }
}

#[test]
fn bad_settings_name_their_flag() {
    let refused = |cfg: TrainConfig, flag: &str| match cfg.validate() {
        Err(TrainError::Config { setting, .. }) => assert_eq!(setting, flag),
        other => panic!("{flag}: {other:?}"),
    };
    refused(config(Method::Sam, -0.1), "--rho");
    refused(config(Method::Asam, f64::NAN), "--rho");
    refused(config(Method::Rwp, -1.0), "--gamma");
    let mut c = config(Method::Asam, 0.5);
    c.eta = -0.01;
    refused(c, "--eta");
    let mut c = config(Method::MixedRwp, 0.01);
    c.beta = 1.5;
    refused(c, "--beta");
    let mut c = config(Method::Rwp, 0.01);
    c.noise = smoothout_models::train::NoiseKind::Uniform;
    refused(c, "--noise");
    assert!(Method::ALL
        .iter()
        .all(|&m| Method::parse(m.name()).unwrap() == m));
}
