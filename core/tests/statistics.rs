//! The noise has the distribution it claims, AdaSmoothOut's per-row noise
//! has the norm it claims, and the `rand_core` adapter yields the noise words.
//!
//! # Tolerances
//!
//! Monte Carlo checks draw `n = 10^6` values from fixed keys (so they are
//! deterministic) and accept an estimate within `K = 5` standard errors of
//! the exact value; the standard error comes from the distribution's own
//! moments, not from the sample. For an unbiased estimator that is normal to
//! a good approximation at this `n`, a correct generator fails a 5-SE bound
//! with probability 5.7 · 10^-7 per check; a biased one (a wrong scale, an
//! off-by-one in the bit layout, a wrong threshold) fails it.
//!
//! | quantity | exact value | standard error (`n` draws) | why |
//! |---|---|---|---|
//! | uniform mean | 0 | `σ/√n`, `σ² = a²/3` | CLT for the sample mean |
//! | uniform variance | `a²/3` | `√((μ₄ − σ⁴)/n)`, `μ₄ = a⁴/5`, so `√(4a⁴/(45n))` | CLT for the sample variance |
//! | Gaussian mean | 0 | `std/√n` | as above |
//! | Gaussian variance | `std²` | `√(2std⁴/n)` (`μ₄ = 3std⁴`) | as above |
//! | Bernoulli frequency | `p` | `√(p(1 − p)/n)` | binomial |
//! | correlation of independent draws | 0 | `1/√n` | sample correlation under independence |
//!
//! The generator's own discretisation is far inside these bounds: uniform
//! values are the 2^24 midpoints `(2k + 1)/2^24 − 1`, whose variance is
//! `(1 − 2^-48)/3` (relative bias 4 · 10^-15); Bernoulli's probability is
//! `round(p · 2^24)/2^24`, within `2^-25 ≈ 3 · 10^-8` of `p`; the Gaussian's
//! Box–Muller radius is cut at `√(48 ln 2) ≈ 5.8`, which removes about
//! `10^-7` of the variance; the SE bounds are ≥ 4.6 · 10^-4 relative.
//!
//! Deterministic checks:
//!
//! | quantity | tolerance | why |
//! |---|---|---|
//! | `‖θ̂_i‖` vs `a‖w_i‖ · ‖u_i‖/(‖u_i‖ + 10^-6)` (f32) | relative `2 · 2^-24 (2 + (1 + a)/a)` | `θ` is measured as `(w + θ) − w`: one rounding of the scale to f32, one of `s · u`, one of `w + θ` (at most `2^-24 ‖w + θ‖ ≤ 2^-24 (1 + a)‖w‖` in norm), times 2 for slack |
//! | `‖θ̂_i‖` vs `a‖w_i‖` (f32, the paper's property) | relative `10^-5` where `‖u_i‖ ≥ 0.2` | the `+10^-6` of Eq. 12 contributes `10^-6/‖u_i‖ ≤ 5 · 10^-6`, rounding (above) `< 10^-6`; rows with a tiny unit draw (only possible for very short rows) are checked against the exact formula only |
//! | zero rows | exactly `+0.0`, never NaN | scale `0 · … / (‖u‖ + 10^-6) = 0` |
//! | `PhiloxRng` words | equal | same block function and counter layout |

use rand_core::{RngCore, SeedableRng};
use smoothout::reference::{self, Scale};
use smoothout::unit::{uniform_from_word, unit_at, Unit};
use smoothout::{
    Config, Draw, Noise, NoiseKey, ParamSpec, PhiloxRng, Reference, Scaling, SmoothOut,
};

/// Number of draws of every Monte Carlo check.
const N: usize = 1_000_000;
/// Standard errors an estimate may lie from its exact value.
const K: f64 = 5.0;

fn draws(noise: Noise, salt: u64) -> Vec<f32> {
    let mut x = vec![f32::NAN; N];
    reference::fill_noise(NoiseKey::for_draw(2018, salt, 0, 0), &noise, 0, &mut x).unwrap();
    x
}

/// Sample mean and (unbiased) sample variance, in f64.
fn mean_var(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let ss = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>();
    (mean, ss / (n - 1.0))
}

/// Sample correlation of `x` and `y`.
fn correlation(x: &[f32], y: &[f32]) -> f64 {
    let (mx, vx) = mean_var(x);
    let (my, vy) = mean_var(y);
    let cov = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) - mx) * (f64::from(b) - my))
        .sum::<f64>()
        / (x.len() as f64 - 1.0);
    cov / (vx * vy).sqrt()
}

#[track_caller]
fn within(what: &str, estimate: f64, exact: f64, se: f64) {
    let z = (estimate - exact) / se;
    assert!(
        z.abs() <= K,
        "{what}: estimate {estimate:e}, exact {exact:e}, {z:.2} standard errors ({se:e}) away"
    );
}

/// Mean 0 (standard error `√(σ²/n)`), variance `sigma2` (standard error
/// `var_se`), and neighbouring elements independent (lag-1 correlation 0,
/// standard error `1/√n`).
#[track_caller]
fn centred_moments(what: &str, x: &[f32], sigma2: f64, var_se: f64) {
    let (mean, var) = mean_var(x);
    let n = N as f64;
    within(&format!("{what} mean"), mean, 0.0, (sigma2 / n).sqrt());
    within(&format!("{what} variance"), var, sigma2, var_se);
    within(
        &format!("{what} lag-1 correlation"),
        correlation(&x[..N - 1], &x[1..]),
        0.0,
        1.0 / n.sqrt(),
    );
}

#[test]
fn uniform_mean_and_variance() {
    for (salt, a) in [(1, 0.0375), (2, 1.0)] {
        let x = draws(Noise::uniform(a).unwrap(), salt);
        let bound = a as f32;
        assert!(
            x.iter().all(|v| v.abs() < bound),
            "a = {a}: outside (-a, a)"
        );
        let n = N as f64;
        let sigma2 = a * a / 3.0;
        let mu4 = a.powi(4) / 5.0;
        centred_moments(
            &format!("uniform a={a}"),
            &x,
            sigma2,
            ((mu4 - sigma2 * sigma2) / n).sqrt(),
        );
    }
}

#[test]
fn gaussian_mean_and_variance() {
    for (salt, std) in [(3, 0.01), (4, 2.0)] {
        let x = draws(Noise::gaussian(std).unwrap(), salt);
        assert!(
            x.iter().all(|v| v.is_finite()),
            "std = {std}: non-finite draw"
        );
        let n = N as f64;
        let sigma2 = std * std;
        // Lag 1 includes the Box–Muller pairs (2j, 2j + 1), which share a radius.
        centred_moments(
            &format!("gaussian std={std}"),
            &x,
            sigma2,
            (2.0 * sigma2 * sigma2 / n).sqrt(),
        );
    }
}

#[test]
fn bernoulli_frequency() {
    for (salt, p) in [(5, 0.01), (6, 0.3), (7, 0.5)] {
        let x = draws(Noise::bernoulli(p).unwrap(), salt);
        assert!(
            x.iter().all(|&v| v == 0.0 || v == 1.0),
            "p = {p}: not an indicator"
        );
        let freq = x.iter().filter(|&&v| v == 1.0).count() as f64 / N as f64;
        within(
            &format!("bernoulli p={p} frequency"),
            freq,
            p,
            (p * (1.0 - p) / N as f64).sqrt(),
        );
    }
    for (p, want) in [(0.0, 0.0), (1.0, 1.0)] {
        let x = draws(Noise::bernoulli(p).unwrap(), 8);
        assert!(
            x.iter().all(|&v| v == want),
            "p = {p} must be deterministic"
        );
    }
}

/// A fresh draw per ghost batch, step and parameter: the streams of keys
/// differing in one coordinate are uncorrelated.
#[test]
fn streams_of_different_draws_are_uncorrelated() {
    let noise = Noise::uniform(1.0).unwrap();
    let stream = |key| {
        let mut x = vec![0.0f32; N];
        reference::fill_noise(key, &noise, 0, &mut x).unwrap();
        x
    };
    let base = stream(NoiseKey::for_draw(9, 100, 0, 3));
    for (what, key) in [
        ("ghost", NoiseKey::for_draw(9, 100, 1, 3)),
        ("step", NoiseKey::for_draw(9, 101, 0, 3)),
        ("param", NoiseKey::for_draw(9, 100, 0, 4)),
    ] {
        within(
            &format!("correlation across {what}"),
            correlation(&base, &stream(key)),
            0.0,
            1.0 / (N as f64).sqrt(),
        );
    }
}

fn norm64(x: impl Iterator<Item = f64>) -> f64 {
    x.map(|v| v * v).sum::<f64>().sqrt()
}

/// AdaSmoothOut (Eq. 12): the noise of each row has norm `a‖w_i‖` (up to the
/// `+1e-6`), measured end to end through the step as `(w + θ) − w` in f32;
/// zero rows get exactly zero noise. See the tolerance table.
#[test]
fn filter_norm_noise_has_the_row_norm_a_times_w() {
    let a = 0.1;
    let round_tol = 2.0 * 2f64.powi(-24) * (2.0 + (1.0 + a) / a);
    let b = Reference::<f32>::new();
    let specs = vec![
        ParamSpec::weight("pairs", [400, 2]),
        ParamSpec::weight("fc", [60, 7]),
        ParamSpec::weight("conv", [16, 3, 5, 5]),
        ParamSpec::weight("wide", [5, 1000]),
    ];
    for unit_noise in [Noise::uniform(a).unwrap(), Noise::gaussian(a).unwrap()] {
        let (unit, _) = unit_noise.additive().unwrap();
        let config = Config::new(unit_noise)
            .with_scaling(Scaling::FilterNorm)
            .with_seed(77);
        let mut so = SmoothOut::new(&b, config, specs.clone()).unwrap();
        let mut params: Vec<Vec<f32>> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut w = vec![0.0f32; s.len()];
                let key = NoiseKey::from_seed(5).fold_in(i as u64);
                reference::fill_noise(key, &Noise::gaussian(0.3).unwrap(), 0, &mut w).unwrap();
                for (r, row) in w.chunks_mut(s.cols()).enumerate() {
                    match r % 7 {
                        3 => row.fill(0.0),                  // a zero row
                        5 => row.fill(f32::MIN_POSITIVE),    // the smallest normal f32
                        6 if r % 2 == 0 => row.fill(1.0e30), // huge weights
                        _ => {}
                    }
                }
                w
            })
            .collect();
        let original = params.clone();
        let draw = Draw::new(3, 1);
        so.perturb(&b, &mut params, draw).unwrap();
        let (mut checked, mut paper_checked) = (0, 0);
        for (i, s) in specs.iter().enumerate() {
            let cols = s.cols();
            let key = so.key(draw, i);
            for (r, (w, p)) in original[i]
                .chunks(cols)
                .zip(params[i].chunks(cols))
                .enumerate()
            {
                let what = format!("{unit:?} param {} row {r}", s.name);
                assert!(p.iter().all(|x| x.is_finite()), "{what}: non-finite");
                if w.iter().all(|&x| x == 0.0) {
                    assert!(
                        p.iter().all(|x| x.to_bits() == 0),
                        "{what}: a zero row got noise {p:?}"
                    );
                    continue;
                }
                let theta = norm64(w.iter().zip(p).map(|(&w, &p)| f64::from(p) - f64::from(w)));
                let w_norm = norm64(w.iter().map(|&x| f64::from(x)));
                if w_norm < 1e-30 {
                    // f32::MIN_POSITIVE rows: θ is below f32's resolution at w.
                    continue;
                }
                let u_norm = reference::unit_norm(key, unit, (r * cols) as u64, cols);
                let exact = a * w_norm * u_norm / (u_norm + 1e-6);
                let rel = (theta - exact).abs() / exact;
                assert!(
                    rel <= round_tol,
                    "{what}: ‖θ‖ = {theta:e}, formula {exact:e}, relative {rel:e} > {round_tol:e}"
                );
                checked += 1;
                if u_norm >= 0.2 {
                    let rel = (theta - a * w_norm).abs() / (a * w_norm);
                    assert!(
                        rel <= 1e-5,
                        "{what}: ‖θ‖ = {theta:e}, a‖w‖ = {:e}, relative {rel:e} > 1e-5",
                        a * w_norm
                    );
                    paper_checked += 1;
                }
            }
        }
        // Not vacuous: most rows took part (5 of 7 rows are ordinary).
        let rows: usize = specs.iter().map(ParamSpec::rows).sum();
        assert!(checked * 7 >= rows * 5, "{checked} of {rows} rows checked");
        assert!(
            paper_checked * 10 >= checked * 9,
            "{paper_checked} of {checked}"
        );
        // De-noising leaves the zero rows exactly zero.
        so.denoise(&b, &mut params, draw).unwrap();
        for (i, s) in specs.iter().enumerate() {
            for (w, p) in original[i].chunks(s.cols()).zip(params[i].chunks(s.cols())) {
                if w.iter().all(|&x| x == 0.0) {
                    assert!(p.iter().all(|x| x.to_bits() == 0), "{}", s.name);
                }
            }
        }
    }
}

/// The scales themselves: zero for a zero row (never NaN), also for 1-D
/// parameters (rows of one element), and `filter_scales × ‖u_i‖ = a‖w_i‖`.
#[test]
fn filter_scales_of_zero_rows_are_zero() {
    let key = NoiseKey::for_draw(1, 2, 3, 4);
    for unit in [Unit::Uniform, Unit::Gaussian] {
        for cols in [1usize, 2, 7, 75] {
            let rows = 6;
            let mut w = vec![0.0f32; rows * cols];
            for (r, row) in w.chunks_mut(cols).enumerate() {
                if r % 2 == 1 {
                    row.iter_mut()
                        .enumerate()
                        .for_each(|(j, x)| *x = 0.25 - j as f32 * 0.01);
                }
            }
            let mut scales = vec![f32::NAN; rows];
            reference::filter_scales(key, unit, 0.5, cols, 0, &w, &mut scales).unwrap();
            for (r, &s) in scales.iter().enumerate() {
                if r % 2 == 0 {
                    assert_eq!(s.to_bits(), 0, "{unit:?} cols {cols} row {r}: {s}");
                } else {
                    let u = reference::unit_norm(key, unit, (r * cols) as u64, cols);
                    let wn = reference::norm(&w[r * cols..(r + 1) * cols]);
                    let got = f64::from(s) * u;
                    let want = 0.5 * wn * u / (u + 1e-6);
                    assert!(
                        (got - want).abs() <= 2f64.powi(-23) * want,
                        "{unit:?} cols {cols} row {r}: {got} vs {want}"
                    );
                }
            }
            // The zero rows' noise is exactly zero.
            let draw = reference::ParamNoise {
                key,
                unit,
                scale: Scale::Rows {
                    cols,
                    scales: scales.as_slice(),
                },
            };
            let mut p = w.clone();
            reference::perturb(&draw, 0, &mut p);
            for (r, row) in p.chunks(cols).enumerate() {
                if r % 2 == 0 {
                    assert!(row.iter().all(|x| x.to_bits() == 0), "row {r}: {row:?}");
                } else {
                    assert_ne!(row, &w[r * cols..(r + 1) * cols], "row {r} not perturbed");
                }
            }
        }
    }
}

/// `PhiloxRng` yields word `i` of its key's stream as its `i`-th `u32`,
/// through every `RngCore` method, and `SeedableRng::from_seed` is
/// `NoiseKey::from_seed` of the little-endian seed.
#[test]
fn philox_rng_stream_is_the_noise_words() {
    for key in [
        NoiseKey::from_seed(0),
        NoiseKey::from_seed(u64::MAX),
        NoiseKey::for_draw(42, 7, 1, 3),
    ] {
        let mut rng = PhiloxRng::new(key);
        for i in 0..1001u64 {
            let x = rng.next_u32();
            assert_eq!(x, key.word(i), "{key:?} word {i}");
            assert_eq!(uniform_from_word(x), unit_at(key, Unit::Uniform, i));
        }
        // next_u64: two consecutive words, low word first, continuing the stream.
        for j in 0..10u64 {
            let i = 1001 + 2 * j;
            let want = u64::from(key.word(i)) | (u64::from(key.word(i + 1)) << 32);
            assert_eq!(rng.next_u64(), want, "{key:?} u64 at word {i}");
        }
        // fill_bytes: little-endian words, a partial word consuming a whole one.
        let mut bytes = [0u8; 11];
        rng.fill_bytes(&mut bytes);
        let want: Vec<u8> = (1021..1024u64)
            .flat_map(|i| key.word(i).to_le_bytes())
            .take(11)
            .collect();
        assert_eq!(&bytes[..], &want[..], "{key:?} fill_bytes");
        assert_eq!(rng.next_u32(), key.word(1024), "{key:?} after fill_bytes");
    }
    for seed in [0u64, 1, 0x0123_4567_89ab_cdef] {
        let mut a = PhiloxRng::from_seed(seed.to_le_bytes());
        let mut b = PhiloxRng::new(NoiseKey::from_seed(seed));
        for _ in 0..9 {
            assert_eq!(a.next_u32(), b.next_u32(), "seed {seed:#x}");
        }
    }
}
