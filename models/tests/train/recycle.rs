//! A steady training loop on the CPU backend allocates no new buffer: each
//! layer keeps or hands back what it used (`BufferOps::recycle`), the
//! trainer hands back its inputs, logits and loss gradient, and the
//! backend's `zeros`, `upload` and `for_overwrite` give the spare ones out
//! again. What it counts is `Cpu::fresh_buffers`: a buffer some part of the
//! step dropped instead of handing back shows up as a new one in a later
//! step. In a
//! debug build the backend fills what is handed back with NaN, so these
//! steps also fail (a non-finite loss) if an op reads part of an output
//! buffer (`BufferOps::for_overwrite`) before writing it.

use smoothout_cpu::Cpu;
use smoothout_models::data::Dataset;
use smoothout_models::train::{Method, Network, TrainConfig, Trainer};

const CLASSES: usize = 10;

/// Six steps of `cfg` at batch `batch` on a fixed batch of `shape`d
/// inputs; the buffers the backend allocated anew in the last four. The
/// spare ones it keeps must not change in number over the last three (a
/// step that dropped a buffer would live on what the first steps left for
/// a while, and then allocate).
fn fresh_in_steady_steps(cfg: TrainConfig, shape: [usize; 3], batch: usize) -> u64 {
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
    let before = t.backend().fresh_buffers();
    t.step_batch(&x, &y).unwrap();
    let spare = t.backend().spare_buffers();
    for _ in 0..3 {
        t.step_batch(&x, &y).unwrap();
        assert_eq!(t.backend().spare_buffers(), spare, "spare buffers");
    }
    t.backend().fresh_buffers() - before
}

#[test]
fn a_steady_mlp_step_allocates_no_buffer_with_any_method() {
    for method in Method::ALL {
        for ghost in [None, Some(4)] {
            let mut cfg = TrainConfig::new(method, Network::Mlp(vec![16, 12]));
            cfg.ghost = ghost;
            let fresh = fresh_in_steady_steps(cfg, [1, 6, 6], 12);
            assert_eq!(fresh, 0, "{method:?}, ghost batches {ghost:?}");
        }
    }
}

#[test]
fn a_steady_convolutional_step_allocates_no_buffer() {
    for (net, method) in [
        (Network::CifarShallow, Method::AdaSmoothOut),
        (Network::ResNet44, Method::SmoothOut),
    ] {
        let cfg = TrainConfig::new(method, net.clone());
        let fresh = fresh_in_steady_steps(cfg, [3, 32, 32], 2);
        assert_eq!(fresh, 0, "{}", net.name());
    }
}
