//! SmoothOut leaves a sharp minimum for a flat one: a 1-D version of the
//! paper's Fig. 1.
//!
//! The loss is a wide well plus a narrow one sitting on its flank:
//!
//! ```text
//! C(w) = −1.0 · exp(−w² / 2)  −  0.4 · exp(−(w − 1.1)² / (2 · 0.1²))
//!        flat: σ = 1 at w = 0     sharp: σ = 0.1 at w = 1.1
//! ```
//!
//! Both minima are genuine and about equally deep (C ≈ −1.00 and −0.95), with a
//! barrier at w ≈ 0.87 between them; the sharp one is ~40 times more curved.
//! Both runs start at w = 1.2, inside the sharp basin, and take 2000 steps of
//! vanilla SGD (lr 0.01, as in Algorithm 1) through [`SmoothOut::step_sgd`]:
//! plain SGD is the same call with `a = 0`; SmoothOut uses θ ~ U(−0.5, 0.5),
//! wider than the sharp well, narrower than the flat one. A run's basin is
//! where gradient flow from its end point settles. (The learning rate is small
//! enough that SGD's own noise does not hop the barrier: with a ≤ 0.2, where
//! C̄ still has a sharp minimum, SmoothOut stays in it too.)
//!
//! What you see: plain SGD stays in the sharp minimum, SmoothOut ends in the
//! flat one. The table of C and the smoothed loss C̄ = E[C(w + θ)] (from
//! [`smoothout::Objective`]) shows why: in C̄ the barrier is lower than the
//! sharp minimum (C̄ falls all the way from w = 1.1 down to the flat minimum),
//! so the sharp minimum is gone and only the flat one remains.
//! The program exits with status 1 if either run ends in the other basin.
//!
//! `cargo run -p smoothout --release --example landscape`
use std::process::ExitCode;

use smoothout::{Config, Draw, Noise, Objective, ParamSpec, Reference, Result, Sgd, SmoothOut};

/// Noise strength of the SmoothOut run.
pub const A: f64 = 0.5;
/// Where both runs start (in the sharp basin).
pub const START: f64 = 1.2;
const W_SHARP: f64 = 1.1;

/// The loss C(w) and its derivative.
pub fn loss(w: f64) -> (f64, f64) {
    let flat = -(-w * w / 2.0).exp();
    let d = w - W_SHARP;
    let sharp = -0.4 * (-d * d / (2.0 * 0.01)).exp();
    (flat + sharp, -w * flat - d / 0.01 * sharp)
}

/// Where plain gradient flow from `w` settles: the minimum of `w`'s basin.
pub fn settle(mut w: f64) -> f64 {
    for _ in 0..20_000 {
        w -= 0.01 * loss(w).1;
    }
    w
}

/// `steps` of SGD from [`START`] with uniform noise of strength `a` (0: plain
/// SGD), through the library's fused perturb / de-noise / update step.
pub fn train(a: f64, steps: u64) -> Result<f64> {
    let backend = Reference::<f64>::new();
    let config = Config::new(Noise::uniform(a)?).with_seed(1);
    let mut so = SmoothOut::new(&backend, config, vec![ParamSpec::bias("w", 1)])?;
    let (mut w, mut g, mut v) = (vec![vec![START]], vec![vec![0.0]], vec![vec![0.0]]);
    let sgd = Sgd::new(0.01, 0.0, 0.0)?;
    for step in 0..steps {
        let grad = |p: &[Vec<f64>], g: &mut [Vec<f64>]| {
            g[0][0] = loss(p[0][0]).1; // the gradient at the perturbed point
            Ok::<(), smoothout::Error>(())
        };
        let draw = Draw::new(step, 0);
        so.step_sgd(&backend, &mut w, &mut g, &mut v, &sgd, draw, grad)?;
    }
    Ok(w[0][0])
}

/// `"flat"` or `"sharp"`: the basin `w` lies in (flat minimum 0, sharp ≈ 1.085).
pub fn basin(w: f64) -> &'static str {
    ["flat", "sharp"][usize::from(settle(w) > 0.5)]
}

/// End points of plain SGD and of SmoothOut, `steps` steps each.
pub fn run(steps: u64) -> Result<(f64, f64)> {
    Ok((train(0.0, steps)?, train(A, steps)?))
}

#[allow(dead_code)] // unused where tests/example_landscape.rs includes this file
fn main() -> Result<ExitCode> {
    let (sgd, smooth) = run(2_000)?;
    let (flat, sharp) = (settle(0.5), settle(START));
    // The barrier: the maximum of C between the minima, by bisection on C'.
    let (mut lo, mut hi) = (flat + 0.1, sharp - 0.01);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        *(if loss(mid).1 > 0.0 { &mut lo } else { &mut hi }) = mid;
    }
    let smoothed = Objective::new(Noise::uniform(A)?, 4096, 7)?;
    let c_bar = |w: f64| smoothed.value(&[w], &mut [0.0], |p| loss(p[0]).0);
    println!("C(w) = -exp(-w^2/2) - 0.4 exp(-(w-1.1)^2/(2*0.1^2)),  C̄ under U(-{A}, {A})\n");
    println!("| point      |      w |   C(w) |  C̄(w) |");
    println!("|------------|-------:|-------:|-------:|");
    let names = ["flat min", "barrier", "sharp min"];
    for (name, w) in names.into_iter().zip([flat, lo, sharp]) {
        let (c, cb) = (loss(w).0, c_bar(w)?);
        println!("| {name:<10} | {w:6.3} | {c:6.3} | {cb:6.3} |");
    }
    println!("\n| run             | start |    end | basin | C(end) |");
    println!("|-----------------|------:|-------:|-------|-------:|");
    for (name, w) in [("SGD", sgd), ("SmoothOut a=0.5", smooth)] {
        let (b, c) = (basin(w), loss(w).0);
        println!("| {name:<15} | {START:5.2} | {w:6.3} | {b:<5} | {c:6.3} |");
    }
    let ok = basin(sgd) == "sharp" && basin(smooth) == "flat";
    let verdict = ["UNEXPECTED OUTCOME", "as expected"][usize::from(ok)];
    println!("\n{verdict}");
    Ok(ExitCode::from(u8::from(!ok))) // status 1 when not as expected
}
