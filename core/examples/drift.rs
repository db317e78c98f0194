//! How far does regenerating de-noise, `w ← (w + θ) − θ` in `f32`, move the
//! weights over many draws?
//!
//! A buffer shaped like a small linear layer (32 inputs, 16 outputs),
//! `[16, 32]` = 512 weights drawn from U(−0.1, 0.1), goes through 10⁶
//! perturb / de-noise cycles with a = 0.0375, a fresh draw each cycle
//! (`Draw::new(cycle, 0)`), through the library's own [`SmoothOut::perturb`]
//! and [`SmoothOut::denoise`] on the [`Reference`] backend, so the keys
//! (`NoiseKey::for_draw(seed, cycle, 0, 0)`) and the arithmetic are the
//! step's. Nothing else touches the weights: any change is rounding. An
//! element's drift is `|w_final − w₀|` in ulps of `w₀` (the spacing of `f32`
//! at `w₀`); the table gives the max, mean and median over elements, the
//! number of elements that moved at all, and the largest absolute drift.
//!
//! Four runs: fixed scaling and AdaSmoothOut's filter-norm scaling, each with
//! `Denoise::Regenerate` (the default) and `Denoise::Exact`, which restores a
//! copy and must give exactly 0 (the program exits with status 1 otherwise).
//! They run on four threads. 512 elements keep the four runs at about 20 s of
//! CPU time in release (10⁶ cycles of 2 to 4 passes over the buffer, most of
//! it Philox), so the program finishes in under 30 s even on one core. An
//! element's drift does not depend on the buffer size (fixed scaling) or only
//! through its row norm (filter norm), so more elements would only add
//! samples; but the max in ulps is set by the weight nearest 0, whose ulp is
//! tiniest, and so grows with the element count (the max absolute drift is
//! the steadier number).
//!
//! A second table shows the drift after 10³ … 10⁶ cycles: it grows about
//! linearly, not as √n, because for a given `w` the rounding error of
//! `(w + θ) − θ` averaged over θ is not zero.
//!
//! `cargo run -p smoothout --release --example drift`
use std::process::ExitCode;
use std::thread;

use smoothout::reference::fill_noise;
use smoothout::{
    Config, Denoise, Draw, Noise, NoiseKey, ParamSpec, Reference, Result, Scaling, SmoothOut,
};

const SHAPE: [usize; 2] = [16, 32];
const CYCLES: u64 = 1_000_000;
const A: f64 = 0.0375;

/// Drift of one buffer from its start, over elements.
struct Stats {
    moved: usize,
    max: f64,
    mean: f64,
    median: f64,
    max_abs: f64,
}

fn stats(w0: &[f32], w: &[f32]) -> Stats {
    let ulp = |x: f32| f32::from_bits(x.abs().to_bits() + 1) - x.abs();
    let abs: Vec<f64> = w0
        .iter()
        .zip(w)
        .map(|(&x0, &x)| (f64::from(x) - f64::from(x0)).abs())
        .collect();
    let mut ulps: Vec<f64> = abs
        .iter()
        .zip(w0)
        .map(|(d, &x0)| d / f64::from(ulp(x0)))
        .collect();
    ulps.sort_by(f64::total_cmp);
    Stats {
        moved: ulps.iter().filter(|&&u| u != 0.0).count(),
        max: ulps[ulps.len() - 1],
        mean: ulps.iter().sum::<f64>() / ulps.len() as f64,
        median: ulps[ulps.len() / 2],
        max_abs: abs.iter().copied().fold(0.0, f64::max),
    }
}

/// `CYCLES` perturb / de-noise cycles; the stats after each power of ten ≥ 10³.
fn drift(w0: &[f32], scaling: Scaling, denoise: Denoise) -> Result<Vec<Stats>> {
    let b = Reference::<f32>::new();
    let noise = Noise::uniform(A)?;
    let config = Config::new(noise)
        .with_scaling(scaling)
        .with_denoise(denoise)
        .with_seed(2018);
    let mut so = SmoothOut::new(&b, config, vec![ParamSpec::weight("fc", SHAPE)])?;
    let mut params = vec![w0.to_vec()];
    let mut out = Vec::new();
    for cycle in 0..CYCLES {
        let draw = Draw::new(cycle, 0);
        so.perturb(&b, &mut params, draw)?;
        so.denoise(&b, &mut params, draw)?;
        let n = cycle + 1;
        if n >= 1000 && n == 10u64.pow(n.ilog10()) {
            out.push(stats(w0, &params[0]));
        }
    }
    Ok(out)
}

fn main() -> Result<ExitCode> {
    let mut w0 = vec![0.0f32; SHAPE[0] * SHAPE[1]];
    fill_noise(NoiseKey::from_seed(1), &Noise::uniform(0.1)?, 0, &mut w0)?;
    let runs = [Scaling::Fixed, Scaling::FilterNorm]
        .into_iter()
        .flat_map(|s| [(s, Denoise::Regenerate), (s, Denoise::Exact)]);
    let results = thread::scope(|scope| {
        let w0 = &w0;
        let handles: Vec<_> = runs
            .map(|(s, d)| (s, d, scope.spawn(move || drift(w0, s, d))))
            .collect();
        let mut results = Vec::new();
        for (s, d, h) in handles {
            results.push((s, d, h.join().expect("a drift run panicked")?));
        }
        Ok::<_, smoothout::Error>(results)
    })?;

    let n = w0.len();
    println!(
        "f32, a = {A}, {n} weights ~ U(-0.1, 0.1), drift after {CYCLES} cycles (ulps of w₀):\n"
    );
    println!("| scaling | de-noise | elements drifted | max ulps | mean ulps | median ulps | max abs drift |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut exact_ok = true;
    for (scaling, denoise, rows) in &results {
        let s = rows.last().expect("10⁶ is a power of ten");
        println!(
            "| {scaling:?} | {denoise:?} | {} / {n} | {:.0} | {:.1} | {:.0} | {:.1e} |",
            s.moved, s.max, s.mean, s.median, s.max_abs
        );
        exact_ok &= *denoise != Denoise::Exact || s.moved == 0;
    }
    println!("\nRegenerating de-noise, max / mean ulps after n cycles:\n");
    println!("| scaling | n = 10³ | n = 10⁴ | n = 10⁵ | n = 10⁶ |");
    println!("|---|---:|---:|---:|---:|");
    for (scaling, _, rows) in results.iter().filter(|r| r.1 == Denoise::Regenerate) {
        let cells: Vec<String> = rows
            .iter()
            .map(|s| format!("{:.0} / {:.1}", s.max, s.mean))
            .collect();
        println!("| {scaling:?} | {} |", cells.join(" | "));
    }
    if !exact_ok {
        println!("\nDenoise::Exact moved a weight: it must restore them bit for bit");
    }
    Ok(ExitCode::from(u8::from(!exact_ok))) // status 1 when Exact drifted
}
