//! Memory throughput of the SmoothOut passes against a plain copy.
//!
//! `cargo bench -p smoothout-cpu --bench throughput` prints, for 1M and 16M
//! `f32` parameters, the median time of each pass over `REPS` runs, the bytes
//! it must move, the resulting GB/s, and the ratio to a parallel copy of the
//! same buffer measured in the same run.
//!
//! Bytes counted per element: copy, perturb and de-noise read and write `w`
//! (8 bytes); the fused de-noise + SGD reads `w`, the gradient and the
//! velocity and writes `w` and the velocity (20 bytes); AdaSmoothOut's perturb
//! also reads `w` once to compute the row norms (12 bytes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use smoothout::reference::{ParamNoise, Scale};
use smoothout::{BufferOps, NoiseKey, NormOps, PerturbOps, Sgd, Unit, UpdateOps};
use smoothout_cpu::Cpu;

const REPS: usize = 15;

fn median(mut f: impl FnMut()) -> Duration {
    f(); // warm up: page in the buffers
    let mut t: Vec<Duration> = (0..REPS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[REPS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cpu = Cpu::<f32>::new()?;
    let key = NoiseKey::for_draw(1, 2, 0, 3);
    let sgd = Sgd::new(0.1, 0.9, 5e-4)?;
    println!("threads: {}", cpu.threads());
    println!();
    println!("| params | pass | median ms | bytes/elem | GB/s | × copy |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in [1usize << 20, 1 << 24] {
        let cols = 576; // a 64×(64·3·3) convolution's rows
        let mut w = ArrayD::from_shape_fn(vec![n], |i| ((i[0] % 1000) as f32 - 500.0) * 1e-4);
        let mut dst = ArrayD::<f32>::zeros(vec![n]);
        let g = ArrayD::from_elem(vec![n], 1e-3f32);
        let mut v = ArrayD::<f32>::zeros(vec![n]);
        let mut scales = ArrayD::<f32>::zeros(vec![n / cols + 1]);
        let rows = n / cols;
        let mut scales_rows = ArrayD::<f32>::zeros(vec![rows]);
        let fixed = ParamNoise {
            key,
            unit: Unit::Uniform,
            scale: Scale::Fixed(0.0375f32),
        };

        let copy = median(|| cpu.copy(black_box(&w), &mut dst).unwrap());
        let perturb = median(|| cpu.perturb(&mut w, &fixed).unwrap());
        let denoise = median(|| cpu.denoise(&mut w, &fixed).unwrap());
        let fused = median(|| {
            cpu.denoise_sgd(&mut w, &g, &mut v, Some(&fixed), &sgd)
                .unwrap()
        });
        let plain_sgd = median(|| cpu.denoise_sgd(&mut w, &g, &mut v, None, &sgd).unwrap());
        // AdaSmoothOut over whole rows (the tail that is not a full row is left out).
        let mut wr =
            ArrayD::from_shape_fn(vec![rows * cols], |i| ((i[0] % 1000) as f32 - 500.0) * 1e-4);
        let ada = median(|| {
            cpu.filter_scales(&wr, key, Unit::Uniform, 0.0375, cols, &mut scales_rows)
                .unwrap();
            let rows_noise = ParamNoise {
                key,
                unit: Unit::Uniform,
                scale: Scale::Rows {
                    cols,
                    scales: &scales_rows,
                },
            };
            cpu.perturb(&mut wr, &rows_noise).unwrap();
        });
        let _ = &mut scales;

        let gbs = |d: Duration, bytes: usize| (n * bytes) as f64 / d.as_secs_f64() / 1e9;
        let copy_gbs = gbs(copy, 8);
        let label = if n == 1 << 20 { "1M" } else { "16M" };
        for (name, d, bytes) in [
            ("copy", copy, 8),
            ("perturb (SmoothOut)", perturb, 8),
            ("de-noise", denoise, 8),
            ("fused de-noise + SGD", fused, 20),
            ("plain SGD (no noise)", plain_sgd, 20),
            ("perturb (AdaSmoothOut)", ada, 12),
        ] {
            let bw = gbs(d, bytes);
            println!(
                "| {label} | {name} | {:.3} | {bytes} | {bw:.1} | {:.2} |",
                d.as_secs_f64() * 1e3,
                bw / copy_gbs
            );
        }
    }
    Ok(())
}
