//! Loss-landscape and noise-sensitivity measurements of a trained network:
//! the interpolation between two minima and the sensitivity curves of the
//! paper's Fig. 2, and Li et al.'s filter-normalised random slices.
//!
//! Every function that moves the weights puts them back when it returns —
//! also when it fails — bit for bit: the parameters and BatchNorm running
//! statistics are copied on the backend before the first change and copied
//! back at the end.
//!
//! All losses and accuracies come from [`evaluate`] (eval mode: BatchNorm
//! normalises with its running statistics, dropout passes everything), one
//! [`SetMetrics`] per [`EvalSet`], in the order the sets are given.

use crate::data::{Dataset, Normalize};
use crate::error::{Result, TrainError};
use crate::eval::evaluate;
use crate::layers::Layer;
use crate::networks::Sequential;
use smoothout::reference::fill_unit;
use smoothout::tensor::{check_len, TensorBackend};
use smoothout::{
    Config, Denoise, Draw, Noise, NoiseKey, ParamSpec, Real, Role, Scaling, SmoothOut, Unit,
};

/// A data set to measure on: the examples, the normalisation the network
/// was trained with, and the evaluation batch size.
#[derive(Clone, Copy, Debug)]
pub struct EvalSet<'a> {
    /// A label for the set (e.g. `"train"`, `"test"`), for the caller's
    /// plots and tables.
    pub name: &'a str,
    /// The examples; at least one.
    pub data: &'a Dataset,
    /// Applied to every batch before the forward pass.
    pub normalize: &'a Normalize,
    /// Examples per forward pass; at least one. It changes only speed
    /// and memory (eval mode has no batch statistics), not the result.
    pub batch: usize,
}

/// Mean loss and accuracy of the network on one [`EvalSet`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SetMetrics {
    /// Mean softmax cross-entropy over the set's examples.
    pub loss: f64,
    /// Fraction of examples classified correctly, in `[0, 1]`.
    pub accuracy: f64,
}

/// One point of [`interpolate`]: the weights `(1 − α)·w_from + α·w_to`.
#[derive(Clone, Debug, PartialEq)]
pub struct InterpolationPoint {
    /// The interpolation coefficient α.
    pub alpha: f64,
    /// Loss and accuracy on each set, in the order of the sets.
    pub sets: Vec<SetMetrics>,
}

/// One point of [`landscape_1d`]: the weights `w + t·d`.
#[derive(Clone, Debug, PartialEq)]
pub struct LandscapePoint {
    /// The step `t` along the direction.
    pub t: f64,
    /// Loss and accuracy on each set, in the order of the sets.
    pub sets: Vec<SetMetrics>,
}

/// One point of [`sensitivity_curve`]: `C̄(w; a)` on each set.
#[derive(Clone, Debug, PartialEq)]
pub struct SensitivityPoint {
    /// The noise strength `a`.
    pub a: f64,
    /// On each set, in the order of the sets: the loss and the accuracy,
    /// each averaged over the noise copies.
    pub sets: Vec<SetMetrics>,
}

/// The state of a network as plain numbers: every parameter (in spec
/// order) and every BatchNorm running statistic (in the order of
/// [`Layer::buffers`]), widened to `f64` — exactly, for `f32` and `f64`
/// networks, so that applying a snapshot restores the weights bit for bit.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::Snapshot;
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let start = Snapshot::of(&b, &net)?;
/// let other = Snapshot::of(&b, &mlp(&b, NetConfig::seeded(1), 64, &[8], 10)?)?;
/// assert_eq!(start.params.len(), net.num_params());
/// assert_eq!(start.buffers.len(), 2 * 8);   // bn1's running mean and variance
///
/// let mid = start.lerp(&other, 0.5)?;
/// assert_eq!(mid.params[0], 0.5 * start.params[0] + 0.5 * other.params[0]);
/// other.apply(&b, &mut net)?;
/// assert_eq!(Snapshot::of(&b, &net)?, other);
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// All parameters, flattened in spec order (see [`flat_params`]).
    pub params: Vec<f64>,
    /// All BatchNorm running statistics, flattened (see [`flat_buffers`]).
    pub buffers: Vec<f64>,
}

impl Snapshot {
    /// The parameters and running statistics of `net`.
    ///
    /// # Errors
    /// Backend errors (reading the buffers back).
    pub fn of<B: TensorBackend, L: Layer<B> + ?Sized>(b: &B, net: &L) -> Result<Snapshot> {
        Ok(Snapshot {
            params: flat_params(b, net)?,
            buffers: flat_buffers(b, net)?,
        })
    }

    /// Loads the snapshot into `net` (parameters and running statistics,
    /// each rounded to the backend's element type).
    ///
    /// # Errors
    /// [`TrainError::Core`] with [`smoothout::Error::LengthMismatch`] when
    /// the snapshot does not fit the network; nothing is changed then.
    pub fn apply<B: TensorBackend, L: Layer<B> + ?Sized>(&self, b: &B, net: &mut L) -> Result<()> {
        check_len(
            "snapshot parameters",
            param_count(b, net),
            self.params.len(),
        )?;
        check_len("snapshot buffers", buffer_count(b, net), self.buffers.len())?;
        set_flat_params(b, net, &self.params)?;
        set_flat_buffers(b, net, &self.buffers)
    }

    /// The snapshot `(1 − α)·self + α·to`, element by element, parameters
    /// and running statistics alike. `α = 0` gives `self` and `α = 1`
    /// gives `to`, exactly. Outside `[0, 1]` a running variance may come
    /// out negative ([`interpolate`] interpolates variances geometrically
    /// instead).
    ///
    /// # Errors
    /// [`smoothout::Error::LengthMismatch`] (as [`TrainError::Core`]) when
    /// the two snapshots have different lengths (another architecture);
    /// [`TrainError::Config`] for a non-finite `alpha`.
    pub fn lerp(&self, to: &Snapshot, alpha: f64) -> Result<Snapshot> {
        check_len(
            "interpolation target parameters",
            self.params.len(),
            to.params.len(),
        )?;
        check_len(
            "interpolation target buffers",
            self.buffers.len(),
            to.buffers.len(),
        )?;
        check_finite("alpha", &[alpha])?;
        Ok(Snapshot {
            params: lerp(&self.params, &to.params, alpha),
            buffers: lerp(&self.buffers, &to.buffers, alpha),
        })
    }
}

/// Every parameter of `net`, in spec order, flattened into one vector of
/// `f64` (each buffer in its own element order).
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::{flat_params, set_flat_params};
/// use smoothout_models::layers::Layer;
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let mut w = flat_params(&b, &net)?;
/// assert_eq!(w.len(), net.num_params());
/// w[0] = 0.25;
/// set_flat_params(&b, &mut net, &w)?;
/// assert_eq!(net.params()[0][0], 0.25);
/// assert!(set_flat_params(&b, &mut net, &w[1..]).is_err());   // one short
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// Backend errors (reading the buffers back).
pub fn flat_params<B: TensorBackend, L: Layer<B> + ?Sized>(b: &B, net: &L) -> Result<Vec<f64>> {
    flatten(b, net.params())
}

/// Sets every parameter of `net` from `values`, laid out as
/// [`flat_params`] returns them (each value rounded to the element type).
///
/// # Errors
/// [`TrainError::Core`] with [`smoothout::Error::LengthMismatch`] when
/// `values` does not hold exactly one value per parameter element; nothing
/// is changed then, nor when the backend fails.
pub fn set_flat_params<B: TensorBackend, L: Layer<B> + ?Sized>(
    b: &B,
    net: &mut L,
    values: &[f64],
) -> Result<()> {
    let lens: Vec<usize> = net.params().iter().map(|p| b.len(p)).collect();
    let new = unflatten(b, "flat parameters", &lens, values)?;
    for (p, n) in net.params_mut().into_iter().zip(new) {
        *p = n;
    }
    Ok(())
}

/// Every BatchNorm running statistic of `net` (the non-parameter state of
/// [`Layer::buffers`]: running means and variances), flattened in that
/// order into one vector of `f64`. Empty for a network without BatchNorm.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::{flat_buffers, set_flat_buffers};
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let mut stats = flat_buffers(&b, &net)?;
/// assert_eq!(stats.len(), 16);                  // bn1: 8 means, 8 variances
/// assert_eq!((stats[0], stats[8]), (0.0, 1.0)); // fresh: mean 0, variance 1
/// stats[8] = 4.0;
/// set_flat_buffers(&b, &mut net, &stats)?;
/// assert_eq!(flat_buffers(&b, &net)?[8], 4.0);
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// Backend errors (reading the buffers back).
pub fn flat_buffers<B: TensorBackend, L: Layer<B> + ?Sized>(b: &B, net: &L) -> Result<Vec<f64>> {
    flatten(b, net.buffers().into_iter().map(|(_, buf)| buf).collect())
}

/// Sets every BatchNorm running statistic of `net` from `values`, laid
/// out as [`flat_buffers`] returns them.
///
/// # Errors
/// [`TrainError::Core`] with [`smoothout::Error::LengthMismatch`] when
/// `values` does not hold exactly one value per statistic; nothing is
/// changed then, nor when the backend fails.
pub fn set_flat_buffers<B: TensorBackend, L: Layer<B> + ?Sized>(
    b: &B,
    net: &mut L,
    values: &[f64],
) -> Result<()> {
    let lens: Vec<usize> = net.buffers().iter().map(|(_, buf)| b.len(buf)).collect();
    let new = unflatten(b, "flat buffers", &lens, values)?;
    for ((_, buf), n) in net.buffers_mut().into_iter().zip(new) {
        *buf = n;
    }
    Ok(())
}

/// The loss along the line through two networks of the same architecture
/// (Fig. 2a; Goodfellow et al.'s linear interpolation, as Keskar et al.
/// use it between a small-batch and a large-batch minimum):
///
/// ```text
/// w(α) = (1 − α)·w_from + α·w_to        for each α of alphas
/// ```
///
/// `α = 0` is `from` and `α = 1` is `to`, bit for bit; values outside
/// `[0, 1]` (the paper plots −1 … 2) extrapolate. The BatchNorm running
/// statistics are interpolated the same way as the weights: eval mode
/// normalises with them, and statistics gathered for one set of weights do
/// not fit another, so keeping either end's statistics fixed would measure
/// a mismatch rather than the landscape. (The running statistics are not
/// the exact statistics of the interpolated weights; at α = 0 and 1 they
/// are those each network was evaluated with.) Running variances are
/// interpolated geometrically, `σ²_from^(1−α) · σ²_to^α`: a straight line
/// would cross zero beyond the ends and make every loss there NaN (or,
/// clamped, dominated by BatchNorm dividing by `√ε`); the geometric path is
/// positive everywhere and equals each end exactly at `α = 0` and `1`.
/// Everything else is [`Snapshot::lerp`]`(from, to, α)`.
///
/// The network's own parameters and statistics are restored at the end,
/// also on error.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::{interpolate, EvalSet, Snapshot};
/// use smoothout_models::data::{Dataset, Normalize};
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let digits = Dataset::digits_embedded().subset(&(0..100).collect::<Vec<_>>())?;
/// let normalize = Normalize::fit(&digits)?;
/// let set = EvalSet { name: "train", data: &digits, normalize: &normalize, batch: 50 };
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let from = Snapshot::of(&b, &net)?;
/// let to = Snapshot::of(&b, &mlp(&b, NetConfig::seeded(1), 64, &[8], 10)?)?;
///
/// let curve = interpolate(&b, &mut net, &from, &to, &[-1.0, 0.0, 0.5, 1.0, 2.0], &[set])?;
/// assert_eq!(curve.len(), 5);
/// assert_eq!(curve[2].alpha, 0.5);
/// assert!(curve.iter().all(|p| p.sets[0].loss.is_finite()));
/// assert_eq!(Snapshot::of(&b, &net)?, from);   // put back
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`TrainError::Config`] for no α, a non-finite α, no sets, or a set with
/// no examples or a zero batch; [`smoothout::Error::LengthMismatch`] (as
/// [`TrainError::Core`]) when a snapshot does not fit the network;
/// evaluation and backend errors.
pub fn interpolate<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    from: &Snapshot,
    to: &Snapshot,
    alphas: &[f64],
    sets: &[EvalSet<'_>],
) -> Result<Vec<InterpolationPoint>> {
    check_sets(sets)?;
    check_points("alphas", alphas)?;
    for s in [from, to] {
        check_len("snapshot parameters", param_count(b, net), s.params.len())?;
        check_len("snapshot buffers", buffer_count(b, net), s.buffers.len())?;
    }
    let variance: Vec<bool> = net
        .buffers()
        .iter()
        .flat_map(|(name, x)| std::iter::repeat_n(name.ends_with("running_var"), b.len(x)))
        .collect();
    with_restore(b, net, |b, net| {
        alphas
            .iter()
            .map(|&alpha| {
                let mut w = from.lerp(to, alpha)?;
                let ends = from.buffers.iter().zip(&to.buffers);
                for ((v, (&v0, &v1)), _) in w
                    .buffers
                    .iter_mut()
                    .zip(ends)
                    .zip(&variance)
                    .filter(|(_, &m)| m)
                {
                    *v = v0.powf(1.0 - alpha) * v1.powf(alpha);
                }
                w.apply(b, net)?;
                Ok(InterpolationPoint {
                    alpha,
                    sets: eval_all(b, net, sets)?,
                })
            })
            .collect()
    })
}

/// A random direction in parameter space, filter-normalised as in Li et
/// al., *Visualizing the Loss Landscape of Neural Nets* (2018), laid out
/// as [`flat_params`]:
///
/// ```text
/// d_r = g_r · ‖w_r‖ / ‖g_r‖       g ~ N(0, 1) per element
/// ```
///
/// for every filter `r`: a dim-0 row of a parameter whose role is
/// [`Role::Weight`] (an output channel of a convolution, an output neuron
/// of a linear layer), so that each filter's direction has exactly the
/// norm of the filter itself and the slice is comparable across layers and
/// networks whatever their weight scales. A zero filter gets a zero
/// direction. Biases and BatchNorm's γ and β get direction 0 — Li et al.'s
/// setting that leaves biases and BN parameters unperturbed — and the
/// running statistics are not part of the direction at all.
///
/// The Gaussian draws are the core crate's counter-based stream (parameter
/// `i` uses `NoiseKey::from_seed(seed).fold_in(i)`), so a seed gives the
/// same direction on every backend and machine.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::{filter_normalized_direction, flat_params};
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let d = filter_normalized_direction(&b, &net, 7)?;
/// let w = flat_params(&b, &net)?;
/// let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
/// // fc1.weight is [8, 64]: its first row is the first 64 values
/// assert!((norm(&d[..64]) - norm(&w[..64])).abs() < 1e-12 * norm(&w[..64]));
/// assert!(d[8 * 64..8 * 64 + 8].iter().all(|&v| v == 0.0));   // fc1.bias
/// assert_eq!(d, filter_normalized_direction(&b, &net, 7)?);
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// Backend errors (reading the weights back).
pub fn filter_normalized_direction<B: TensorBackend, L: Layer<B> + ?Sized>(
    b: &B,
    net: &L,
    seed: u64,
) -> Result<Vec<f64>> {
    let specs = net.specs();
    let w = flat_params(b, net)?;
    let mut d = vec![0.0; w.len()];
    let root = NoiseKey::from_seed(seed);
    let mut offset = 0;
    for (i, spec) in specs.iter().enumerate() {
        let len = spec.len();
        if spec.role == Role::Weight && len > 0 {
            let (wp, dp) = (&w[offset..offset + len], &mut d[offset..offset + len]);
            fill_unit(root.fold_in(i as u64), Unit::Gaussian, 0, dp);
            let cols = spec.cols();
            for (wr, dr) in wp.chunks(cols).zip(dp.chunks_mut(cols)) {
                let (nw, nd) = (norm(wr), norm(dr));
                let scale = if nd > 0.0 { nw / nd } else { 0.0 };
                dr.iter_mut().for_each(|x| *x *= scale);
            }
        }
        offset += len;
    }
    check_len("parameters listed by the specs", w.len(), offset)?;
    Ok(d)
}

/// The loss along one direction through the current weights `w`:
///
/// ```text
/// w + t·d        for each t of ts
/// ```
///
/// with `d` laid out as [`flat_params`] (e.g. from
/// [`filter_normalized_direction`]). `t = 0` evaluates `w` itself, bit for
/// bit. BatchNorm running statistics are left as they are (the direction
/// has no component on them). The weights are restored at the end, also on
/// error.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::{filter_normalized_direction, landscape_1d, EvalSet};
/// use smoothout_models::data::{Dataset, Normalize};
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let digits = Dataset::digits_embedded().subset(&(0..100).collect::<Vec<_>>())?;
/// let normalize = Normalize::fit(&digits)?;
/// let set = EvalSet { name: "train", data: &digits, normalize: &normalize, batch: 100 };
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let d = filter_normalized_direction(&b, &net, 1)?;
/// let line = landscape_1d(&b, &mut net, &d, &[-1.0, 0.0, 1.0], &[set])?;
/// assert_eq!(line.iter().map(|p| p.t).collect::<Vec<_>>(), [-1.0, 0.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`smoothout::Error::LengthMismatch`] (as [`TrainError::Core`]) when `d`
/// does not hold one value per parameter element; [`TrainError::Config`]
/// for no `t`, a non-finite `t` or direction value, no sets, or a set with
/// no examples or a zero batch; evaluation and backend errors.
pub fn landscape_1d<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    d: &[f64],
    ts: &[f64],
    sets: &[EvalSet<'_>],
) -> Result<Vec<LandscapePoint>> {
    check_sets(sets)?;
    check_points("ts", ts)?;
    check_len("direction", param_count(b, net), d.len())?;
    check_finite("direction", d)?;
    with_restore(b, net, |b, net| {
        let w = flat_params(b, net)?;
        ts.iter()
            .map(|&t| {
                set_flat_params(b, net, &offset(&w, &[(t, d)]))?;
                Ok(LandscapePoint {
                    t,
                    sets: eval_all(b, net, sets)?,
                })
            })
            .collect()
    })
}

/// The loss on a plane through the current weights `w`:
///
/// ```text
/// z[j·xs.len() + i] = C(w + xs[i]·d1 + ys[j]·d2)
/// ```
///
/// row by row, one row per `y` — the layout of
/// [`crate::analysis::Surface::z`], so that `Surface { xs, ys, z, .. }` can
/// be plotted directly. The point `(0, 0)` evaluates `w` itself, bit for
/// bit. BatchNorm running statistics are left as they are; the weights are
/// restored at the end, also on error.
///
/// ```
/// use smoothout::Reference;
/// use smoothout_models::analysis::{filter_normalized_direction, landscape_2d, EvalSet};
/// use smoothout_models::data::{Dataset, Normalize};
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let digits = Dataset::digits_embedded().subset(&(0..60).collect::<Vec<_>>())?;
/// let normalize = Normalize::fit(&digits)?;
/// let set = EvalSet { name: "train", data: &digits, normalize: &normalize, batch: 60 };
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let d1 = filter_normalized_direction(&b, &net, 1)?;
/// let d2 = filter_normalized_direction(&b, &net, 2)?;
/// let (xs, ys) = ([-0.5, 0.0, 0.5], [-0.5, 0.5]);
/// let z = landscape_2d(&b, &mut net, &d1, &d2, &xs, &ys, &set)?;
/// assert_eq!(z.len(), 3 * 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`smoothout::Error::LengthMismatch`] (as [`TrainError::Core`]) when a
/// direction does not hold one value per parameter element;
/// [`TrainError::Config`] for an empty or non-finite `xs` or `ys`, a
/// non-finite direction value, or a set with no examples or a zero batch;
/// evaluation and backend errors.
pub fn landscape_2d<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    d1: &[f64],
    d2: &[f64],
    xs: &[f64],
    ys: &[f64],
    set: &EvalSet<'_>,
) -> Result<Vec<f64>> {
    let sets = std::slice::from_ref(set);
    check_sets(sets)?;
    check_points("xs", xs)?;
    check_points("ys", ys)?;
    let n = param_count(b, net);
    check_len("first direction", n, d1.len())?;
    check_len("second direction", n, d2.len())?;
    check_finite("first direction", d1)?;
    check_finite("second direction", d2)?;
    with_restore(b, net, |b, net| {
        let w = flat_params(b, net)?;
        let mut z = Vec::with_capacity(xs.len() * ys.len());
        for &y in ys {
            for &x in xs {
                set_flat_params(b, net, &offset(&w, &[(x, d1), (y, d2)]))?;
                z.push(eval_all(b, net, sets)?[0].loss);
            }
        }
        Ok(z)
    })
}

/// The sensitivity of the loss to weight noise (Fig. 2b): for each strength
/// `a` of the increasing `grid`,
///
/// ```text
/// C̄(w; a) = (1/N) Σ_{i<N} C(w + θ_i(a))        N = copies
/// ```
///
/// on every set, and likewise the mean accuracy. θ is SmoothOut's noise:
/// `U(−a, a)` on each element for [`Scaling::Fixed`], AdaSmoothOut's
/// per-filter scaling (Eq. 12) for [`Scaling::FilterNorm`] (and
/// `a·|w_i|·u_i` for [`Scaling::PerElement`]), on the parameters whose spec
/// is marked `perturbed` — by default weights and biases but not
/// BatchNorm's γ and β, as in training. BatchNorm normalises with its
/// running statistics, which the noise does not touch.
///
/// Copy `i` is the core crate's draw `Draw::new(i, 0)` under `seed`, the
/// same for every `a`: only the strength changes along the curve (common
/// random numbers), so the differences between grid points measure the
/// landscape rather than the sampling, and the curve is smooth in `a`.
/// `a = 0` is evaluated once without noise and gives exactly the
/// unperturbed loss. [`slopes`] turns the curve into the paper's sharpness
/// `s = ΔC̄/Δa` (Eq. 9). (The paper draws a fresh θ for every evaluation
/// batch instead; both estimate the same `C̄`, and whole-set copies are what
/// lets the draws be shared between strengths.)
///
/// Each copy is taken out again bit-exactly ([`Denoise::Exact`]), and the
/// weights are restored at the end, also on error.
///
/// ```
/// use smoothout::{Reference, Scaling};
/// use smoothout_models::analysis::{sensitivity_curve, slopes, EvalSet};
/// use smoothout_models::data::{Dataset, Normalize};
/// use smoothout_models::layers::Layer;
/// use smoothout_models::networks::{mlp, NetConfig};
///
/// let b = Reference::<f32>::new();
/// let digits = Dataset::digits_embedded().subset(&(0..100).collect::<Vec<_>>())?;
/// let normalize = Normalize::fit(&digits)?;
/// let set = EvalSet { name: "train", data: &digits, normalize: &normalize, batch: 100 };
/// let mut net = mlp(&b, NetConfig::seeded(0), 64, &[8], 10)?;
/// let specs = net.specs();
/// let grid = [0.0, 0.1, 0.5];
/// let curve = sensitivity_curve(&b, &mut net, &specs, &grid, 4, 0, Scaling::Fixed, &[set])?;
/// assert_eq!(curve.len(), 3);
/// assert_eq!(slopes(&curve, 0)?.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`TrainError::Config`] for an empty grid, a grid value that is negative
/// or not finite, a grid that is not strictly increasing, `copies == 0`,
/// no sets, or a set with no examples or a zero batch;
/// [`smoothout::Error::LengthMismatch`] or
/// [`smoothout::Error::ShapeMismatch`] (as [`TrainError::Core`]) when
/// `specs` do not list the network's parameters;
/// [`smoothout::Error::EmptyParameterSet`] when no spec is perturbed;
/// evaluation and backend errors.
#[allow(clippy::too_many_arguments)]
pub fn sensitivity_curve<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    specs: &[ParamSpec],
    grid: &[f64],
    copies: usize,
    seed: u64,
    scaling: Scaling,
    sets: &[EvalSet<'_>],
) -> Result<Vec<SensitivityPoint>> {
    check_sets(sets)?;
    check_grid(grid)?;
    if copies == 0 {
        return Err(TrainError::config("copies", "must be at least 1"));
    }
    check_specs(b, net, specs)?;
    if specs.iter().all(|s| !s.perturbed) {
        return Err(smoothout::Error::EmptyParameterSet.into());
    }
    with_restore(b, net, |b, net| {
        let mut points = Vec::with_capacity(grid.len());
        for &a in grid {
            if a == 0.0 {
                points.push(SensitivityPoint {
                    a,
                    sets: eval_all(b, net, sets)?,
                });
                continue;
            }
            let config = Config::new(Noise::uniform(a)?)
                .with_scaling(scaling)
                .with_denoise(Denoise::Exact)
                .with_seed(seed);
            let mut so = SmoothOut::new(b, config, specs.to_vec())?;
            let mut sums = vec![(0.0, 0.0); sets.len()];
            for i in 0..copies {
                let draw = Draw::new(i as u64, 0);
                so.perturb(b, &mut net.params_mut(), draw)?;
                let measured = eval_all(b, net, sets);
                let denoised = so.denoise(b, &mut net.params_mut(), draw);
                for (s, m) in sums.iter_mut().zip(measured?) {
                    s.0 += m.loss;
                    s.1 += m.accuracy;
                }
                denoised?;
            }
            let n = copies as f64;
            points.push(SensitivityPoint {
                a,
                sets: sums
                    .into_iter()
                    .map(|(loss, accuracy)| SetMetrics {
                        loss: loss / n,
                        accuracy: accuracy / n,
                    })
                    .collect(),
            });
        }
        Ok(points)
    })
}

/// The sharpness of Eq. 9 along a sensitivity curve: the slope of the
/// mean loss on set number `set` between consecutive grid points,
///
/// ```text
/// s_k = (C̄(w; a_{k+1}) − C̄(w; a_k)) / (a_{k+1} − a_k)
/// ```
///
/// one per interval (none for a single point). A sharper minimum has larger
/// slopes.
///
/// ```
/// use smoothout_models::analysis::{slopes, SensitivityPoint, SetMetrics};
/// let at = |a: f64, loss: f64| SensitivityPoint { a, sets: vec![SetMetrics { loss, accuracy: 1.0 }] };
/// let curve = [at(0.0, 0.1), at(0.5, 0.2), at(1.0, 0.5)];
/// let s = slopes(&curve, 0)?;
/// assert!((s[0] - 0.2).abs() < 1e-12 && (s[1] - 0.6).abs() < 1e-12);
/// assert!(slopes(&curve, 1).is_err());   // there is one set only
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
///
/// # Errors
/// [`TrainError::Config`] when a point has no set number `set`, or the
/// strengths are not strictly increasing.
pub fn slopes(points: &[SensitivityPoint], set: usize) -> Result<Vec<f64>> {
    if points.iter().any(|p| p.sets.len() <= set) {
        return Err(TrainError::config(
            "set",
            format!("set number {set} is not measured at every point of the curve"),
        ));
    }
    if points
        .windows(2)
        .any(|p| p[1].a.partial_cmp(&p[0].a) != Some(std::cmp::Ordering::Greater))
    {
        return Err(TrainError::config(
            "points",
            "the strengths must increase strictly along the curve",
        ));
    }
    Ok(points
        .windows(2)
        .map(|p| (p[1].sets[set].loss - p[0].sets[set].loss) / (p[1].a - p[0].a))
        .collect())
}

/// Runs `f`, then copies the parameters and running statistics that `net`
/// had before back into it, whether `f` succeeded or not. The first error
/// is the one returned.
pub(super) fn with_restore<B: TensorBackend + 'static, T>(
    b: &B,
    net: &mut Sequential<B>,
    f: impl FnOnce(&B, &mut Sequential<B>) -> Result<T>,
) -> Result<T> {
    let params = copies(b, net.params())?;
    let buffers = copies(b, net.buffers().into_iter().map(|(_, x)| x).collect())?;
    let out = f(b, net);
    let restored = restore(b, net, &params, &buffers);
    let value = out?;
    restored?;
    Ok(value)
}

/// Backend-side copies of `bufs` (no trip through the host, no rounding).
fn copies<B: TensorBackend>(b: &B, bufs: Vec<&B::Buffer>) -> Result<Vec<B::Buffer>> {
    bufs.into_iter().map(|x| copy_of(b, x)).collect()
}

fn copy_of<B: TensorBackend>(b: &B, x: &B::Buffer) -> Result<B::Buffer> {
    let mut c = b.zeros(b.len(x))?;
    b.copy(x, &mut c)?;
    Ok(c)
}

/// Copies `params` and `buffers` back into `net`, replacing whatever
/// buffers it holds now (they may have been swapped or re-uploaded).
fn restore<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    params: &[B::Buffer],
    buffers: &[B::Buffer],
) -> Result<()> {
    for (dst, src) in net.params_mut().into_iter().zip(params) {
        *dst = copy_of(b, src)?;
    }
    for ((_, dst), src) in net.buffers_mut().into_iter().zip(buffers) {
        *dst = copy_of(b, src)?;
    }
    Ok(())
}

/// Loss and accuracy on every set.
fn eval_all<B: TensorBackend + 'static>(
    b: &B,
    net: &mut Sequential<B>,
    sets: &[EvalSet<'_>],
) -> Result<Vec<SetMetrics>> {
    sets.iter()
        .map(|s| {
            let (loss, accuracy) = evaluate(b, net, s.normalize, s.data, s.batch)?;
            Ok(SetMetrics { loss, accuracy })
        })
        .collect()
}

fn flatten<B: TensorBackend>(b: &B, bufs: Vec<&B::Buffer>) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(bufs.iter().map(|x| b.len(x)).sum());
    for x in bufs {
        out.extend(b.to_vec(x)?.into_iter().map(Real::to_f64));
    }
    Ok(out)
}

/// New buffers of `lens` elements from `values`, all uploaded before any is
/// handed out, so that a failure changes nothing.
fn unflatten<B: TensorBackend>(
    b: &B,
    what: &'static str,
    lens: &[usize],
    values: &[f64],
) -> Result<Vec<B::Buffer>> {
    check_len(what, lens.iter().sum(), values.len())?;
    let mut rest = values;
    let mut out = Vec::with_capacity(lens.len());
    for &n in lens {
        let (head, tail) = rest.split_at(n);
        let v: Vec<B::Elem> = head.iter().map(|&x| B::Elem::from_f64(x)).collect();
        out.push(b.upload(&v)?);
        rest = tail;
    }
    Ok(out)
}

fn param_count<B: TensorBackend, L: Layer<B> + ?Sized>(b: &B, net: &L) -> usize {
    net.params().iter().map(|p| b.len(p)).sum()
}

fn buffer_count<B: TensorBackend, L: Layer<B> + ?Sized>(b: &B, net: &L) -> usize {
    net.buffers().iter().map(|(_, x)| b.len(x)).sum()
}
fn check_finite(what: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(TrainError::config(
            what,
            format!("value {i} is {}; every value must be finite", values[i]),
        )),
    }
}

/// A non-empty list of finite coordinates (any order).
fn check_points(what: &'static str, values: &[f64]) -> Result<()> {
    if values.is_empty() {
        return Err(TrainError::config(what, "give at least one value"));
    }
    check_finite(what, values)
}

fn check_grid(grid: &[f64]) -> Result<()> {
    check_points("grid", grid)?;
    if let Some(i) = grid.iter().position(|&a| a < 0.0) {
        return Err(TrainError::config(
            "grid",
            format!("strength {} (value {i}) is negative", grid[i]),
        ));
    }
    if let Some(k) = grid.windows(2).position(|p| p[1] <= p[0]) {
        return Err(TrainError::config(
            "grid",
            format!(
                "the strengths must increase strictly, but value {} ({}) follows {}",
                k + 1,
                grid[k + 1],
                grid[k]
            ),
        ));
    }
    Ok(())
}

fn check_sets(sets: &[EvalSet<'_>]) -> Result<()> {
    if sets.is_empty() {
        return Err(TrainError::config(
            "sets",
            "give at least one set to measure on",
        ));
    }
    for s in sets {
        if s.data.is_empty() {
            return Err(TrainError::config(
                "sets",
                format!("set `{}` has no examples", s.name),
            ));
        }
        if s.batch == 0 {
            return Err(TrainError::config(
                "sets",
                format!("set `{}` has batch size 0; use at least 1", s.name),
            ));
        }
    }
    Ok(())
}

/// `specs` list the network's parameters: as many, each of the same
/// length.
fn check_specs<B: TensorBackend + 'static>(
    b: &B,
    net: &Sequential<B>,
    specs: &[ParamSpec],
) -> Result<()> {
    let params = net.params();
    check_len("parameter specs", params.len(), specs.len())?;
    for (i, (p, s)) in params.iter().zip(specs).enumerate() {
        if b.len(p) != s.len() {
            return Err(TrainError::Core(smoothout::Error::ShapeMismatch {
                param: i,
                expected: b.len(p),
                actual: s.len(),
            }));
        }
    }
    Ok(())
}

/// `(1 − α)·x + α·y`, with `α = 0` and `α = 1` exact (no signed-zero or
/// rounding surprises at the ends).
fn lerp(x: &[f64], y: &[f64], alpha: f64) -> Vec<f64> {
    if alpha == 0.0 {
        x.to_vec()
    } else if alpha == 1.0 {
        y.to_vec()
    } else {
        x.iter()
            .zip(y)
            .map(|(&x, &y)| (1.0 - alpha) * x + alpha * y)
            .collect()
    }
}

/// `w + Σ c·d` over the `(c, d)` terms, skipping the terms with `c = 0` so
/// that the origin is `w` exactly.
fn offset(w: &[f64], terms: &[(f64, &[f64])]) -> Vec<f64> {
    let mut out = w.to_vec();
    for &(c, d) in terms {
        if c != 0.0 {
            for (o, &x) in out.iter_mut().zip(d) {
                *o += c * x;
            }
        }
    }
    out
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}
