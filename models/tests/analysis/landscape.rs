//! Loss-landscape and sensitivity measurements (`analysis::landscape`) on
//! tiny MLPs trained on subsets of the embedded digits.
//!
//! Tolerances:
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | losses at α = 0/1, t = 0, (0, 0), a = 0 | exact (`==`) | the same weights, evaluated by the same code |
//! | weights after every function | bit for bit | they are copied back, not recomputed |
//! | filter-normalised row norms | relative 1e-12 | one f64 rescaling of each row |
//! | AdaSmoothOut curve of a BN-rescaled net | relative 2e-3 | the same noise up to a power-of-two factor; only BatchNorm's ε differs |

use std::path::Path;

use smoothout::{BufferOps, ParamSpec, Reference, Role, Scaling};
use smoothout_models::analysis::{
    filter_normalized_direction, flat_buffers, flat_params, interpolate, landscape_1d,
    landscape_2d, sensitivity_curve, set_flat_buffers, set_flat_params, slopes, EvalSet,
    SensitivityPoint, SetMetrics, Snapshot,
};
use smoothout_models::data::{Dataset, Normalize, Split};
use smoothout_models::layers::Layer;
use smoothout_models::networks::{mlp, NetConfig, Sequential};
use smoothout_models::train::{
    evaluate, network_from_checkpoint, Method, Network, TrainConfig, TrainError, Trainer,
};

type B = Reference<f32>;

/// 600 training and 200 test digits (seeded split of a seeded subset).
fn data() -> Split {
    let all = Dataset::digits_embedded().shuffled_split(997, 3).unwrap();
    let train = all.train.subset(&(0..600).collect::<Vec<_>>()).unwrap();
    let test = all.test.subset(&(0..200).collect::<Vec<_>>()).unwrap();
    Split { train, test }
}

/// A 64-16-10 MLP (with BatchNorm) trained for a few epochs of SGD.
fn trained(data: &Split, seed: u64, epochs: u64) -> (Sequential<B>, Normalize) {
    let mut cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16]))
        .with_batch(32)
        .with_epochs(epochs)
        .with_seed(seed);
    cfg.eval_train = false;
    let mut t = Trainer::new(B::new(), cfg, &data.train).unwrap();
    t.run(data, None, &mut |_| {}).unwrap();
    let c = t.checkpoint().unwrap();
    let (net, normalize, _, _) =
        network_from_checkpoint(&B::new(), &c, Path::new("memory")).unwrap();
    (net, normalize)
}

/// The digits of [`data`] and the normalisation of a network's inputs.
struct Inputs {
    data: Split,
    normalize: Normalize,
}

impl Inputs {
    /// The training set (batches of 256) and the test set (batches of 64).
    fn sets(&self) -> [EvalSet<'_>; 2] {
        [
            EvalSet {
                name: "train",
                data: &self.data.train,
                normalize: &self.normalize,
                batch: 256,
            },
            EvalSet {
                name: "test",
                data: &self.data.test,
                normalize: &self.normalize,
                batch: 64,
            },
        ]
    }
}

/// What most tests start from: the backend, the network of [`trained`]
/// (from `seed`, after `epochs` epochs), its inputs, and its [`bits`].
fn trained_setup(seed: u64, epochs: u64) -> (B, Sequential<B>, Inputs, Vec<Vec<u32>>) {
    let data = data();
    let (net, normalize) = trained(&data, seed, epochs);
    setup(net, Inputs { data, normalize })
}

/// As [`trained_setup`], with an untrained 64-16-10 MLP (seed 0) whose
/// inputs are normalised by the training set's statistics.
fn untrained_setup() -> (B, Sequential<B>, Inputs, Vec<Vec<u32>>) {
    let data = data();
    let normalize = Normalize::fit(&data.train).unwrap();
    let net = mlp(&B::new(), NetConfig::seeded(0), 64, &[16], 10).unwrap();
    setup(net, Inputs { data, normalize })
}

fn setup(net: Sequential<B>, inputs: Inputs) -> (B, Sequential<B>, Inputs, Vec<Vec<u32>>) {
    let b = B::new();
    let before = bits(&b, &net);
    (b, net, inputs, before)
}

/// Every parameter and running statistic, as raw bits.
fn bits(b: &B, net: &Sequential<B>) -> Vec<Vec<u32>> {
    net.params()
        .into_iter()
        .chain(net.buffers().into_iter().map(|(_, x)| x))
        .map(|x| b.to_vec(x).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn eval(b: &B, net: &mut Sequential<B>, set: &EvalSet<'_>) -> SetMetrics {
    let (loss, accuracy) = evaluate(b, net, set.normalize, set.data, set.batch).unwrap();
    SetMetrics { loss, accuracy }
}

fn is_length_mismatch<T: std::fmt::Debug>(r: Result<T, TrainError>) -> bool {
    matches!(
        r,
        Err(TrainError::Core(smoothout::Error::LengthMismatch { .. }))
    )
}

fn is_config<T: std::fmt::Debug>(r: Result<T, TrainError>, setting: &str) -> bool {
    matches!(r, Err(TrainError::Config { setting: s, .. }) if s == setting)
}

/// Runs `call` with `good` and a second set whose normalisation has three
/// channels, so that it fails inside the evaluation, after the weights were
/// changed; the network must be back to `before` afterwards.
fn fails_in_evaluation_and_restores<T: std::fmt::Debug>(
    b: &B,
    net: &mut Sequential<B>,
    before: &[Vec<u32>],
    good: EvalSet<'_>,
    call: impl FnOnce(&mut Sequential<B>, &[EvalSet<'_>]) -> Result<T, TrainError>,
) {
    let rgb = Normalize::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    let bad = EvalSet {
        normalize: &rgb,
        ..good
    };
    assert!(call(net, &[good, bad]).is_err());
    assert_eq!(bits(b, net), before, "weights not restored after an error");
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn flat_params_and_buffers_round_trip_and_check_lengths() {
    let b = B::new();
    let mut net = mlp(&b, NetConfig::seeded(4), 64, &[16, 8], 10).unwrap();
    let before = bits(&b, &net);
    let w = flat_params(&b, &net).unwrap();
    let s = flat_buffers(&b, &net).unwrap();
    assert_eq!(w.len(), net.num_params());
    assert_eq!(s.len(), 2 * (16 + 8));
    set_flat_params(&b, &mut net, &w).unwrap();
    set_flat_buffers(&b, &mut net, &s).unwrap();
    assert_eq!(bits(&b, &net), before);

    // spec order: fc1.weight first, then fc1.bias
    let p0 = b.to_vec(net.params()[0]).unwrap();
    assert_eq!(
        w[..p0.len()],
        p0.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()[..]
    );

    let mut w2 = w.clone();
    w2[64 * 16] = 3.5; // fc1.bias[0]
    set_flat_params(&b, &mut net, &w2).unwrap();
    assert_eq!(b.to_vec(net.params()[1]).unwrap()[0], 3.5);
    set_flat_params(&b, &mut net, &w).unwrap();

    for bad in [w.len() - 1, w.len() + 1, 0] {
        let mut v = w.clone();
        v.resize(bad, 0.0);
        assert!(
            is_length_mismatch(set_flat_params(&b, &mut net, &v)),
            "{bad}"
        );
    }
    assert!(is_length_mismatch(set_flat_buffers(&b, &mut net, &s[1..])));
    assert!(is_length_mismatch(set_flat_buffers(&b, &mut net, &w)));
    assert_eq!(
        bits(&b, &net),
        before,
        "a rejected call changed the network"
    );
}

#[test]
fn interpolation_reproduces_both_ends_and_the_average() {
    let (b, mut net_a, inputs, before) = trained_setup(1, 2);
    let (mut net_b, _) = trained(&inputs.data, 2, 2);
    let sets = inputs.sets();
    let from = Snapshot::of(&b, &net_a).unwrap();
    let to = Snapshot::of(&b, &net_b).unwrap();
    assert_ne!(from, to);

    let alphas = [-1.0, 0.0, 0.5, 1.0, 2.0];
    let curve = interpolate(&b, &mut net_a, &from, &to, &alphas, &sets).unwrap();
    assert_eq!(bits(&b, &net_a), before, "weights not restored");
    assert_eq!(curve.iter().map(|p| p.alpha).collect::<Vec<_>>(), alphas);

    for (k, set) in sets.iter().enumerate() {
        assert_eq!(
            curve[1].sets[k],
            eval(&b, &mut net_a, set),
            "α = 0, {}",
            set.name
        );
        assert_eq!(
            curve[3].sets[k],
            eval(&b, &mut net_b, set),
            "α = 1, {}",
            set.name
        );
    }

    // α = 0.5: the average of the weights and of the running statistics
    let mid = from.lerp(&to, 0.5).unwrap();
    for i in [0, 100, from.params.len() - 1] {
        assert_eq!(mid.params[i], 0.5 * (from.params[i] + to.params[i]));
    }
    assert_eq!(mid.buffers[20], 0.5 * (from.buffers[20] + to.buffers[20]));
    // interpolate() takes the running variances (bn1: buffers 16..32)
    // geometrically, so that they stay positive beyond the ends.
    let mut mid = mid;
    for i in 16..32 {
        mid.buffers[i] = from.buffers[i].powf(0.5) * to.buffers[i].powf(0.5);
    }
    let mut net_mid = mlp(&b, NetConfig::seeded(9), 64, &[16], 10).unwrap();
    mid.apply(&b, &mut net_mid).unwrap();
    assert_eq!(
        Snapshot::of(&b, &net_mid).unwrap().params[100],
        mid.params[100] as f32 as f64
    );
    for (k, set) in sets.iter().enumerate() {
        assert_eq!(curve[2].sets[k], eval(&b, &mut net_mid, set));
    }

    // two trained minima, with a barrier or at least not better far outside
    let far = curve[0].sets[0].loss.min(curve[4].sets[0].loss);
    assert!(
        far > curve[1].sets[0].loss && far > curve[3].sets[0].loss,
        "{curve:?}"
    );
    // a straight line would take running variances below zero out there;
    // the geometric path keeps every loss finite
    let var = &from.lerp(&to, -1.0).unwrap().buffers[16..];
    assert!(
        var.iter().any(|&v| v < 0.0),
        "no variance the straight line takes below zero"
    );
    assert!(
        curve
            .iter()
            .all(|p| p.sets.iter().all(|m| m.loss.is_finite())),
        "{curve:?}"
    );
}

#[test]
fn interpolation_rejects_bad_input_and_restores_after_errors() {
    let (b, mut net, inputs, before) = untrained_setup();
    let sets = inputs.sets();
    let from = Snapshot::of(&b, &net).unwrap();
    let other = Snapshot::of(&b, &mlp(&b, NetConfig::seeded(0), 64, &[12], 10).unwrap()).unwrap();

    assert!(is_length_mismatch(interpolate(
        &b,
        &mut net,
        &from,
        &other,
        &[0.5],
        &sets
    )));
    assert!(is_length_mismatch(from.lerp(&other, 0.5)));
    assert!(is_length_mismatch(other.apply(&b, &mut net)));
    assert!(is_config(
        interpolate(&b, &mut net, &from, &from, &[], &sets),
        "alphas"
    ));
    assert!(is_config(
        interpolate(&b, &mut net, &from, &from, &[f64::NAN], &sets),
        "alphas"
    ));
    assert!(is_config(
        interpolate(&b, &mut net, &from, &from, &[0.0], &[]),
        "sets"
    ));
    let zero_batch = EvalSet {
        batch: 0,
        ..sets[0]
    };
    assert!(is_config(
        interpolate(&b, &mut net, &from, &from, &[0.0], &[zero_batch]),
        "sets"
    ));

    // fails inside the evaluation, after the interpolated weights were set
    let to = Snapshot::of(&b, &mlp(&b, NetConfig::seeded(1), 64, &[16], 10).unwrap()).unwrap();
    fails_in_evaluation_and_restores(&b, &mut net, &before, sets[0], |net, sets| {
        interpolate(&b, net, &from, &to, &[0.5], sets)
    });
}

#[test]
fn filter_normalized_direction_matches_row_norms_and_ignores_biases_and_bn() {
    let (b, net, _, _) = trained_setup(5, 1);
    let w = flat_params(&b, &net).unwrap();
    let d = filter_normalized_direction(&b, &net, 11).unwrap();
    assert_eq!(d.len(), w.len());
    let specs: Vec<ParamSpec> = net.specs();
    assert!(specs.iter().any(|s| s.role == Role::Normalization));
    let mut off = 0;
    let mut rows = 0;
    for s in &specs {
        let (wp, dp) = (&w[off..off + s.len()], &d[off..off + s.len()]);
        if s.role == Role::Weight {
            for (r, (wr, dr)) in wp.chunks(s.cols()).zip(dp.chunks(s.cols())).enumerate() {
                let (nw, nd) = (norm(wr), norm(dr));
                assert!(nw > 0.0);
                assert!(
                    (nd - nw).abs() <= 1e-12 * nw,
                    "{} row {r}: {nd} vs {nw}",
                    s.name
                );
                // a direction, not the weights themselves
                assert!(wr.iter().zip(dr).any(|(a, b)| a != b));
                rows += 1;
            }
        } else {
            assert!(dp.iter().all(|&v| v == 0.0), "{} is not zero", s.name);
        }
        off += s.len();
    }
    assert_eq!(rows, 16 + 10);

    assert_eq!(d, filter_normalized_direction(&b, &net, 11).unwrap());
    let other = filter_normalized_direction(&b, &net, 12).unwrap();
    assert_ne!(d, other);
    let dot: f64 = d.iter().zip(&other).map(|(x, y)| x * y).sum();
    assert!(
        dot.abs() < 0.5 * norm(&d) * norm(&other),
        "two seeds nearly parallel"
    );
}

#[test]
fn landscape_1d_is_the_unperturbed_loss_at_zero_and_restores() {
    let (b, mut net, inputs, before) = trained_setup(1, 2);
    let sets = inputs.sets();
    let base: Vec<_> = sets.iter().map(|s| eval(&b, &mut net, s)).collect();
    let d = filter_normalized_direction(&b, &net, 3).unwrap();
    let ts = [-1.0, -0.25, 0.0, 0.25, 1.0];
    let line = landscape_1d(&b, &mut net, &d, &ts, &sets).unwrap();
    assert_eq!(bits(&b, &net), before, "weights not restored");
    assert_eq!(line[2].t, 0.0);
    assert_eq!(line[2].sets, base);
    // a trained minimum along a random filter-normalised direction: a bowl
    assert!(line[0].sets[0].loss > base[0].loss && line[4].sets[0].loss > base[0].loss);

    assert!(is_length_mismatch(landscape_1d(
        &b,
        &mut net,
        &d[1..],
        &ts,
        &sets
    )));
    assert!(is_config(landscape_1d(&b, &mut net, &d, &[], &sets), "ts"));
    assert!(is_config(landscape_1d(&b, &mut net, &d, &ts, &[]), "sets"));
    let mut nan = d.clone();
    nan[0] = f64::NAN;
    assert!(is_config(
        landscape_1d(&b, &mut net, &nan, &ts, &sets),
        "direction"
    ));
    assert_eq!(bits(&b, &net), before);
}

#[test]
fn landscape_2d_grid_layout_and_centre() {
    let (b, mut net, inputs, before) = trained_setup(1, 2);
    let sets = inputs.sets();
    let base = eval(&b, &mut net, &sets[1]).loss;
    let d1 = filter_normalized_direction(&b, &net, 1).unwrap();
    let d2 = filter_normalized_direction(&b, &net, 2).unwrap();
    let (xs, ys) = ([-0.5, 0.0, 0.5, 1.0], [-0.5, 0.0, 0.5]);
    let z = landscape_2d(&b, &mut net, &d1, &d2, &xs, &ys, &sets[1]).unwrap();
    assert_eq!(bits(&b, &net), before, "weights not restored");
    assert_eq!(z.len(), xs.len() * ys.len());
    let at = |i: usize, j: usize| z[j * xs.len() + i];
    assert_eq!(at(1, 1), base);
    // row y = 0 is the 1-D slice along d1; column x = 0 the slice along d2
    let along = |d: &[f64], t: &[f64], net: &mut Sequential<B>| -> Vec<f64> {
        landscape_1d(&b, net, d, t, &sets[1..])
            .unwrap()
            .iter()
            .map(|p| p.sets[0].loss)
            .collect()
    };
    assert_eq!(
        along(&d1, &xs, &mut net),
        (0..4).map(|i| at(i, 1)).collect::<Vec<_>>()
    );
    assert_eq!(
        along(&d2, &ys, &mut net),
        (0..3).map(|j| at(1, j)).collect::<Vec<_>>()
    );
    assert!(
        z.iter().all(|&v| v >= base),
        "the centre is not the lowest: {z:?}"
    );

    assert!(is_length_mismatch(landscape_2d(
        &b,
        &mut net,
        &d1,
        &d2[1..],
        &xs,
        &ys,
        &sets[1]
    )));
    assert!(is_config(
        landscape_2d(&b, &mut net, &d1, &d2, &xs, &[], &sets[1]),
        "ys"
    ));
    assert!(is_config(
        landscape_2d(&b, &mut net, &d1, &d2, &[f64::INFINITY], &ys, &sets[1]),
        "xs"
    ));
    assert_eq!(bits(&b, &net), before);
}

#[test]
fn sensitivity_starts_at_the_unperturbed_loss_and_rises() {
    let (b, mut net, inputs, before) = trained_setup(1, 3);
    let sets = inputs.sets();
    let base: Vec<_> = sets.iter().map(|s| eval(&b, &mut net, s)).collect();
    let specs = net.specs();
    let grid = [0.0, 0.05, 0.1, 0.2];
    for scaling in [Scaling::Fixed, Scaling::FilterNorm] {
        let curve = sensitivity_curve(&b, &mut net, &specs, &grid, 4, 7, scaling, &sets).unwrap();
        assert_eq!(bits(&b, &net), before, "{scaling:?}: weights not restored");
        assert_eq!(curve.iter().map(|p| p.a).collect::<Vec<_>>(), grid);
        assert_eq!(curve[0].sets, base, "{scaling:?}: a = 0");
        for k in 0..sets.len() {
            assert!(
                curve[3].sets[k].loss > curve[0].sets[k].loss,
                "{scaling:?}, set {k}: {curve:?}"
            );
            assert!(curve[3].sets[k].accuracy <= curve[0].sets[k].accuracy + 0.05);
            assert_ne!(curve[1].sets[k].loss, curve[0].sets[k].loss);
        }
        let s = slopes(&curve, 0).unwrap();
        assert_eq!(s.len(), 3);
        for (k, sk) in s.iter().enumerate() {
            let want =
                (curve[k + 1].sets[0].loss - curve[k].sets[0].loss) / (curve[k + 1].a - curve[k].a);
            assert_eq!(*sk, want);
        }
    }
}

#[test]
fn sensitivity_uses_common_random_numbers() {
    let (b, mut net, inputs, _) = trained_setup(1, 1);
    let sets = inputs.sets();
    let specs = net.specs();
    let grid = [0.0, 0.1, 0.3];
    let run = |net: &mut Sequential<B>, seed: u64, grid: &[f64]| -> Vec<SensitivityPoint> {
        sensitivity_curve(&b, net, &specs, grid, 3, seed, Scaling::Fixed, &sets[1..]).unwrap()
    };
    let first = run(&mut net, 5, &grid);
    assert_eq!(first, run(&mut net, 5, &grid));
    let other = run(&mut net, 6, &grid);
    assert_eq!(other[0], first[0]);
    assert_ne!(other[1], first[1]);
    // the value at a strength does not depend on the rest of the grid
    assert_eq!(run(&mut net, 5, &[0.3])[0], first[2]);
    // with one copy, the curve is C(w + a·u) for one fixed u
    let one = sensitivity_curve(
        &b,
        &mut net,
        &specs,
        &[0.1],
        1,
        5,
        Scaling::Fixed,
        &sets[1..],
    )
    .unwrap();
    let three = first[1].sets[0].loss;
    assert_ne!(one[0].sets[0].loss, three);
}

/// The same function in another parametrisation: fc1's weights and bias ×4
/// and bn1's running mean ×4, variance ×16 (powers of two, so exact in
/// f32), leave the network's outputs as they were (up to BatchNorm's ε).
/// AdaSmoothOut's noise scales with the filters and sees the same network;
/// fixed-strength noise is relatively four times weaker on fc1, so the
/// rescaled network looks flatter — the reparametrisation effect of Dinh
/// et al. (2017) that filter normalisation removes.
#[test]
fn sensitivity_of_a_rescaled_network_flat_vs_sharp() {
    let (b, mut sharp, inputs, _) = trained_setup(1, 2);
    let sets = inputs.sets();
    let specs = sharp.specs();
    assert_eq!(
        (specs[0].name.as_str(), specs[1].name.as_str()),
        ("fc1.weight", "fc1.bias")
    );
    let mut flat = mlp(&b, NetConfig::seeded(0), 64, &[16], 10).unwrap();
    let mut snap = Snapshot::of(&b, &sharp).unwrap();
    for v in &mut snap.params[..64 * 16 + 16] {
        *v *= 4.0;
    }
    let names: Vec<String> = sharp.buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["bn1.running_mean", "bn1.running_var"]);
    for v in &mut snap.buffers[..16] {
        *v *= 4.0;
    }
    for v in &mut snap.buffers[16..] {
        *v *= 16.0;
    }
    snap.apply(&b, &mut flat).unwrap();

    let grid = [0.0, 0.1, 0.2];
    let curve = |net: &mut Sequential<B>, scaling| {
        sensitivity_curve(&b, net, &specs, &grid, 4, 3, scaling, &sets[..1]).unwrap()
    };
    let rel = |x: f64, y: f64| (x - y).abs() / y.abs();
    let (ada_sharp, ada_flat) = (
        curve(&mut sharp, Scaling::FilterNorm),
        curve(&mut flat, Scaling::FilterNorm),
    );
    for (p, q) in ada_sharp.iter().zip(&ada_flat) {
        assert!(
            rel(q.sets[0].loss, p.sets[0].loss) < 2e-3,
            "a = {}: {p:?} vs {q:?}",
            p.a
        );
    }
    let (fix_sharp, fix_flat) = (
        curve(&mut sharp, Scaling::Fixed),
        curve(&mut flat, Scaling::Fixed),
    );
    assert!(rel(fix_flat[0].sets[0].loss, fix_sharp[0].sets[0].loss) < 2e-3);
    let (s_sharp, s_flat) = (
        slopes(&fix_sharp, 0).unwrap(),
        slopes(&fix_flat, 0).unwrap(),
    );
    assert!(
        s_sharp[0] > s_flat[0] && s_sharp[1] > s_flat[1],
        "{s_sharp:?} vs {s_flat:?}"
    );
}

#[test]
fn sensitivity_rejects_bad_input_and_restores_after_errors() {
    let (b, mut net, inputs, before) = untrained_setup();
    let sets = inputs.sets();
    let specs = net.specs();
    let mut run = |specs: &[ParamSpec], grid: &[f64], copies: usize, sets: &[EvalSet<'_>]| {
        sensitivity_curve(&b, &mut net, specs, grid, copies, 0, Scaling::Fixed, sets)
    };
    assert!(is_config(run(&specs, &[], 2, &sets), "grid"));
    assert!(is_config(run(&specs, &[0.0, 0.2, 0.1], 2, &sets), "grid"));
    assert!(is_config(run(&specs, &[0.0, 0.1, 0.1], 2, &sets), "grid"));
    assert!(is_config(run(&specs, &[-0.1, 0.1], 2, &sets), "grid"));
    assert!(is_config(run(&specs, &[0.0, f64::NAN], 2, &sets), "grid"));
    assert!(is_config(run(&specs, &[0.0, 0.1], 0, &sets), "copies"));
    assert!(is_config(run(&specs, &[0.0, 0.1], 2, &[]), "sets"));
    assert!(is_length_mismatch(run(&specs[1..], &[0.1], 2, &sets)));
    let mut wrong = specs.clone();
    wrong[0] = ParamSpec::weight("fc1.weight", [16, 63]);
    assert_matches!(
        run(&wrong, &[0.1], 2, &sets),
        Err(TrainError::Core(smoothout::Error::ShapeMismatch {
            param: 0,
            ..
        }))
    );
    let none: Vec<_> = specs
        .iter()
        .map(|s| s.clone().with_perturbed(false))
        .collect();
    assert_matches!(
        run(&none, &[0.1], 2, &sets),
        Err(TrainError::Core(smoothout::Error::EmptyParameterSet))
    );

    // fails in the evaluation of the first perturbed copy
    fails_in_evaluation_and_restores(&b, &mut net, &before, sets[1], |net, sets| {
        sensitivity_curve(&b, net, &specs, &[0.1], 2, 0, Scaling::Fixed, sets)
    });

    let p = |a: f64, loss: f64| SensitivityPoint {
        a,
        sets: vec![SetMetrics {
            loss,
            accuracy: 0.5,
        }],
    };
    assert!(is_config(slopes(&[p(0.0, 1.0), p(0.1, 2.0)], 1), "set"));
    assert!(is_config(slopes(&[p(0.1, 1.0), p(0.1, 2.0)], 0), "points"));
    assert_eq!(slopes(&[p(0.0, 1.0)], 0).unwrap(), Vec::<f64>::new());
}
