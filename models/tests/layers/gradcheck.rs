//! Finite-difference gradient checks of every layer, in `f64`, on the
//! `Reference` and the CPU backends (one test body, both backends).
//!
//! Each check takes `L = Σ_i r_i y_i` with fixed random `r` (so
//! `∂L/∂y = r`), runs the layer's backward, and compares every entry of
//! `∂L/∂x` and of every parameter gradient with the central difference
//! `(L(θ + h) − L(θ − h)) / 2h`, `h = 1e-5`.
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | every `∂L/∂x_i`, `∂L/∂θ_i` | `\|a − n\| ≤ 1e-6 · max(\|a\|, \|n\|) + 1e-8` | the central difference errs by `h²/6 · \|L'''\| ≈ 1.7e-11 · \|L'''\|` (truncation) plus about `ε · \|L\| / h ≈ 2.2e-11 · \|L\|` (rounding of the two losses, `ε = 2.2e-16`); on these small cases `\|L\|` and `\|L'''\|` stay below 100, so the error is below `5e-9`, inside the absolute term; the relative term covers larger gradients. A wrong formula (a missing term, a transposed product) errs by `O(\|a\|)`, far outside. |
//!
//! `h = 1e-5` balances the two error terms for `f64` (the optimum of
//! `h² + ε/h` is near `ε^{1/3} ≈ 6e-6`). Non-differentiable points (ReLU at
//! 0, ties in max pooling) are avoided by random inputs drawn from a fixed
//! seed: no input lies within `h` of a kink.

use crate::support::layers;

use layers::{data, grad_check};
use smoothout::tensor::TensorBackend;
use smoothout::Reference;
use smoothout_cpu::Cpu;
use smoothout_models::layers::{
    Activation, AvgPool2d, BasicBlock, BatchNorm, Conv2d, Dropout, Layer, Linear, MaxPool2d, Relu,
    SoftmaxCrossEntropy,
};

fn linear<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut l = Linear::new(b, 5, 3, 1).unwrap();
    assert_eq!(
        grad_check(b, &mut l, &data(4 * 5, 2), &[4, 5], |_| {}),
        20 + 15 + 3
    );
}

fn conv2d<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut c = Conv2d::new(b, 2, 3, 3, 1, 1, 3).unwrap();
    grad_check(b, &mut c, &data(2 * 2 * 5 * 5, 4), &[2, 2, 5, 5], |_| {});
    let mut c = Conv2d::new(b, 2, 2, 3, 2, 0, 5).unwrap().without_bias();
    grad_check(b, &mut c, &data(2 * 2 * 5 * 5, 6), &[2, 2, 5, 5], |_| {});
}

fn batch_norm<B: TensorBackend<Elem = f64>>(b: &B) {
    // BatchNorm1d and 2d with non-trivial γ, β; batch statistics.
    for (shape, ghost) in [
        (vec![6, 3], None),
        (vec![4, 2, 3, 3], None),
        (vec![6, 3], Some(2)),
        (vec![5, 2, 2, 2], Some(2)), // last ghost batch shorter
    ] {
        let c = shape[1];
        let mut bn = BatchNorm::new(b, c)
            .unwrap()
            .with_ghost_batch(ghost)
            .unwrap();
        *bn.params_mut()[0] = b
            .upload(&data(c, 7).iter().map(|v| 1.0 + 0.5 * v).collect::<Vec<_>>())
            .unwrap();
        *bn.params_mut()[1] = b.upload(&data(c, 8)).unwrap();
        let n: usize = shape.iter().product();
        let x: Vec<f64> = data(n, 9).iter().map(|v| 3.0 * v + 0.5).collect();
        grad_check(b, &mut bn, &x, &shape, |_| {});
    }
}

fn relu<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut r = Relu::new();
    grad_check(b, &mut r, &data(30, 10), &[3, 10], |_| {});
}

fn pools<B: TensorBackend<Elem = f64>>(b: &B) {
    let x = data(2 * 2 * 5 * 5, 11);
    let mut m = MaxPool2d::new(3, 2, 1);
    grad_check(b, &mut m, &x, &[2, 2, 5, 5], |_| {});
    let mut m = MaxPool2d::new(2, 2, 0);
    grad_check(b, &mut m, &x, &[2, 2, 5, 5], |_| {});
    let mut a = AvgPool2d::new(3, 2, 1);
    grad_check(b, &mut a, &x, &[2, 2, 5, 5], |_| {});
}

fn dropout<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut d = Dropout::new(0.3, 12).unwrap();
    grad_check(b, &mut d, &data(40, 13), &[4, 10], |d: &mut Dropout<B>| {
        d.set_step(5)
    });
}

fn residual<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut id = BasicBlock::new(b, 2, 2, 1, 14).unwrap();
    assert!(!id.has_projection());
    assert_eq!(id.specs().len(), 6);
    grad_check(b, &mut id, &data(2 * 2 * 4 * 4, 15), &[2, 2, 4, 4], |_| {});
    let mut proj = BasicBlock::new(b, 2, 3, 2, 16).unwrap();
    assert!(proj.has_projection());
    assert_eq!(proj.specs().len(), 9);
    grad_check(
        b,
        &mut proj,
        &data(2 * 2 * 4 * 4, 17),
        &[2, 2, 4, 4],
        |_| {},
    );
    let mut ghost = BasicBlock::new(b, 2, 3, 1, 18)
        .unwrap()
        .with_ghost_batch(Some(2))
        .unwrap();
    grad_check(
        b,
        &mut ghost,
        &data(4 * 2 * 3 * 3, 19),
        &[4, 2, 3, 3],
        |_| {},
    );
}

fn softmax_ce<B: TensorBackend<Elem = f64>>(b: &B) {
    let ce = SoftmaxCrossEntropy::new(4);
    let z = data(3 * 4, 20).iter().map(|v| 4.0 * v).collect::<Vec<_>>();
    let labels = [0, 3, 1];
    let logits = |z: &[f64]| Activation::new(b.upload(z).unwrap(), [3, 4]);
    let (_, dz) = ce.forward(b, &logits(&z), &labels).unwrap();
    let dz = b.to_vec(&dz).unwrap();
    let h = layers::H;
    for i in 0..z.len() {
        let mut zp = z.clone();
        zp[i] = z[i] + h;
        let lp = ce.forward(b, &logits(&zp), &labels).unwrap().0;
        zp[i] = z[i] - h;
        let lm = ce.forward(b, &logits(&zp), &labels).unwrap().0;
        let n = (lp - lm) / (2.0 * h);
        let bound = layers::REL * n.abs().max(dz[i].abs()) + layers::ABS;
        assert!((n - dz[i]).abs() <= bound, "dz[{i}]: {} vs {n}", dz[i]);
    }
}

per_backend!(reference => Reference::<f64>::new();
    linear, conv2d, batch_norm, relu, pools, dropout, residual, softmax_ce);
per_backend!(cpu => Cpu::<f64>::with_threads(2).unwrap();
    linear, conv2d, batch_norm, relu, pools, dropout, residual, softmax_ce);
