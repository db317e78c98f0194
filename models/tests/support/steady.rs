//! A trainer on the CPU backend warmed up on a fixed batch, for the tests
//! that count what a steady step allocates.

use smoothout_cpu::Cpu;
use smoothout_models::data::Dataset;
use smoothout_models::train::{TrainConfig, Trainer};

/// The classes of the batch.
pub const CLASSES: usize = 10;

/// A trainer of `cfg` at batch `batch` on `shape`d images (2 threads), a
/// fixed batch of inputs and labels, and the trainer after two steps on
/// it.
pub fn warmed_up(
    cfg: TrainConfig,
    shape: [usize; 3],
    batch: usize,
) -> (Trainer<Cpu<f32>>, Vec<f32>, Vec<u32>) {
    let image: usize = shape.iter().product();
    let pixels: Vec<u8> = (0..batch * image).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (0..batch).map(|i| (i % CLASSES) as u8).collect();
    let train = Dataset::new(pixels, labels, shape, CLASSES, 255).unwrap();
    let cfg = cfg.with_batch(batch).with_epochs(100);
    let cpu = Cpu::<f32>::with_threads(2).unwrap();
    let mut t = Trainer::new(cpu, cfg, &train).unwrap();
    let x: Vec<f32> = (0..batch * image)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let y: Vec<u32> = (0..batch as u32).map(|i| i % CLASSES as u32).collect();
    for _ in 0..2 {
        t.step_batch(&x, &y).unwrap();
    }
    (t, x, y)
}
