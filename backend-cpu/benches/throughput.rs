//! Memory throughput of the SmoothOut passes against a plain copy.
//!
//! `cargo bench -p smoothout-cpu --bench throughput` prints, for 1M and 16M
//! `f32` parameters, the median time of each pass, the bytes it must move, the
//! resulting GB/s, and the ratio to a parallel copy of the same buffer. The
//! passes are timed round-robin (copy, perturb, de-noise, …, copy, perturb,
//! …) so that a noisy neighbour slows them all alike; the ratios come from one
//! run.
//!
//! Bytes counted per element: copy, perturb and de-noise read and write `w`
//! (8 bytes); SGD, fused with de-noising or not, reads `w`, the gradient and
//! the velocity and writes `w` and the velocity (20 bytes); AdaSmoothOut's
//! one-pass perturb reads each row once more for its norm, from cache, which
//! is not counted (8 bytes).

use std::hint::black_box;
use std::time::Instant;

use ndarray::ArrayD;
use smoothout::reference::{ParamNoise, Scale};
use smoothout::{FilterNoise, NoiseKey, PerturbOps, Sgd, StateOps, Unit, UpdateOps};
use smoothout_cpu::Cpu;

type Pass<'a> = (&'static str, usize, Box<dyn FnMut() + 'a>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cpu = Cpu::<f32>::new()?;
    let key = NoiseKey::for_draw(1, 2, 0, 3);
    let sgd = Sgd::new(0.1, 0.9, 5e-4)?;
    println!("threads: {}, kernels: {:?}\n", cpu.threads(), cpu.isa());
    println!("| params | pass | median ms | bytes/elem | GB/s | × copy |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (label, n, reps) in [("1M", 1usize << 20, 201), ("16M", 1 << 24, 31)] {
        let cols = 576; // rows of a 64×64×3×3 convolution
        let init = |i: usize| ((i % 1000) as f32 - 500.0) * 1e-4;
        let src = ArrayD::from_shape_fn(vec![n], |i| init(i[0]));
        let mut dst = ArrayD::<f32>::zeros(vec![n]);
        let mut w1 = src.clone();
        let mut w2 = src.clone();
        let mut w3 = src.clone();
        let mut w4 = src.clone();
        let mut w5 = ArrayD::from_shape_fn(vec![n / cols * cols], |i| init(i[0]));
        let g = ArrayD::from_elem(vec![n], 1e-3f32);
        let mut v1 = ArrayD::<f32>::zeros(vec![n]);
        let mut v2 = ArrayD::<f32>::zeros(vec![n]);
        let mut scales = ArrayD::<f32>::zeros(vec![n / cols]);
        let fixed = ParamNoise {
            key,
            unit: Unit::Uniform,
            scale: Scale::Fixed(0.0375f32),
        };
        let mut passes: Vec<Pass> = vec![
            (
                "copy",
                8,
                Box::new(|| cpu.copy(black_box(&src), &mut dst).unwrap()),
            ),
            (
                "perturb (SmoothOut)",
                8,
                Box::new(|| cpu.perturb(&mut w1, &fixed).unwrap()),
            ),
            (
                "de-noise",
                8,
                Box::new(|| cpu.denoise(&mut w2, &fixed).unwrap()),
            ),
            (
                "fused de-noise + SGD",
                20,
                Box::new(|| {
                    cpu.denoise_sgd(&mut w3, &g, &mut v1, Some(&fixed), &sgd)
                        .unwrap()
                }),
            ),
            (
                "plain SGD (no noise)",
                20,
                Box::new(|| cpu.denoise_sgd(&mut w4, &g, &mut v2, None, &sgd).unwrap()),
            ),
            (
                "perturb (AdaSmoothOut)",
                8,
                Box::new(|| {
                    let noise = FilterNoise {
                        key,
                        unit: Unit::Uniform,
                        strength: 0.0375,
                        cols,
                    };
                    cpu.perturb_filter_norm(&mut w5, &noise, &mut scales)
                        .unwrap()
                }),
            ),
        ];
        let mut times = vec![Vec::with_capacity(reps); passes.len()];
        for rep in 0..=reps {
            for (t, (_, _, f)) in times.iter_mut().zip(passes.iter_mut()) {
                let s = Instant::now();
                f();
                if rep > 0 {
                    // rep 0 pages the buffers in
                    t.push(s.elapsed().as_secs_f64());
                }
            }
        }
        let medians: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect();
        let gbs = |secs: f64, bytes: usize| (n * bytes) as f64 / secs / 1e9;
        let copy_gbs = gbs(medians[0], 8);
        for ((name, bytes, _), secs) in passes.iter().zip(&medians) {
            let bw = gbs(*secs, *bytes);
            println!(
                "| {label} | {name} | {:.3} | {bytes} | {bw:.1} | {:.2} |",
                secs * 1e3,
                bw / copy_gbs
            );
        }
    }
    Ok(())
}
