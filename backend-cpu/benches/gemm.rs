//! `matrixmultiply` against the `gemm` crate for `f32`, on the shapes the
//! paper's networks run (the reason `Cpu`'s `MatmulOps` uses the faster).
//!
//! `cargo bench -p smoothout-cpu --bench gemm` prints, for each shape
//! `m × k × n` (C is m × n, the reduction runs over k), the median time of
//! each crate single-threaded and with two threads, GFLOP/s, and the ratio
//! `gemm / matrixmultiply` (above 1: `matrixmultiply` is faster). The two
//! crates are timed round-robin in one run, so a noisy neighbour slows both
//! alike. Two threads means what `Cpu` does: C split into fixed blocks of
//! rows, one single-threaded call per block, blocks spread over a rayon pool
//! (the split does not depend on the thread count, so neither do the bits).

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;
use smoothout_testkit::upper_median;

/// Rows of C per parallel task (as in `Cpu`).
const ROWS: usize = 64;

fn mm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: a is m×k, b is k×n, c is m×n, all row-major and in bounds.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn gm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: as above; `gemm` computes dst ← alpha·dst + beta·lhs·rhs and
    // does not read dst when read_dst is false.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

type Kernel = fn(usize, usize, usize, &[f32], &[f32], &mut [f32]);

fn run(
    f: Kernel,
    pool: Option<&rayon::ThreadPool>,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    match pool {
        None => f(m, k, n, a, b, c),
        Some(p) => p.install(|| {
            c.par_chunks_mut(ROWS * n)
                .zip(a.par_chunks(ROWS * k))
                .for_each(|(c, a)| f(c.len() / n, k, n, a, b, c))
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let shapes = [
        ("F1 first layer, batch 256", (256, 784, 512)),
        ("F1 hidden layer, batch 4096", (4096, 512, 512)),
        ("conv 5×5×64 → 64, 12×12 (C1)", (64, 1600, 144)),
        ("conv 3×3×64 → 64, 32×32 (ResNet)", (64, 576, 1024)),
    ];
    println!("| shape m×k×n | what | threads | matrixmultiply ms | GFLOP/s | gemm ms | GFLOP/s | gemm / matrixmultiply |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (what, (m, k, n)) in shapes {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i % 89) as f32 - 44.0) * 0.01)
            .collect();
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let reps = ((2e10 / flops) as usize).clamp(5, 200);
        for (threads, p) in [(1, None), (2, Some(&pool))] {
            let (mut t_mm, mut t_gm) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                for (f, t) in [(mm as Kernel, &mut t_mm), (gm as Kernel, &mut t_gm)] {
                    let s = Instant::now();
                    run(f, p, (m, k, n), black_box(&a), black_box(&b), &mut c);
                    black_box(&c);
                    t.push(s.elapsed().as_secs_f64());
                }
            }
            let (x, y) = (upper_median(&t_mm), upper_median(&t_gm));
            println!(
                "| {m}×{k}×{n} | {what} | {threads} | {:.3} | {:.1} | {:.3} | {:.1} | {:.2} |",
                x * 1e3,
                flops / x * 1e-9,
                y * 1e3,
                flops / y * 1e-9,
                y / x
            );
        }
    }
    Ok(())
}
