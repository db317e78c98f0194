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

use smoothout_models::train::{Method, Network, TrainConfig};

use crate::support::steady::warmed_up;

/// Six steps of `cfg` at batch `batch` on a fixed batch of `shape`d
/// inputs; the buffers the backend allocated anew in the last four. The
/// spare ones it keeps must not change in number over the last three (a
/// step that dropped a buffer would live on what the first steps left for
/// a while, and then allocate).
fn fresh_in_steady_steps(cfg: TrainConfig, shape: [usize; 3], batch: usize) -> u64 {
    let (mut t, x, y) = warmed_up(cfg, shape, batch);
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
