//! One forward and backward pass of every network on a tiny batch (CPU
//! backend, `f32`), with a first-order check that the gradient is the
//! gradient of the whole network.
//!
//! Each test takes the training loss `L(θ)` (train mode: BatchNorm on the
//! batch's or ghost batch's statistics; the dropout step held fixed so that
//! `L` is one deterministic function), runs backward, steps
//! `θ' = θ − η g` with `η = 10⁻³ · L / ‖g‖²`, and checks that the loss falls
//! by `η ‖g‖² = 10⁻³ · L` to within 10 %:
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | `(L(θ) − L(θ')) / (η ‖g‖²)` | within `[0.9, 1.1]` | Taylor: the ratio is `1 − η gᵀHg / (2‖g‖²) + …`; the step moves the loss by 0.1 %, so the second-order term is far below 10 % unless the curvature along `g` is a hundred times `‖g‖² / L`; `f32` rounding of the losses (about `10⁻⁶ · L` over these depths) is 0.1 % of the decrease. A missing or wrong gradient term in any layer moves the ratio by `O(1)`. |
//!
//! ResNet-18 and AlexNet, whose debug-build GEMMs take about 10 s per
//! check, run one forward and backward on a batch of 2 with the shape and
//! finiteness checks only, unless `SMOOTHOUT_SLOW_TESTS` is set, which
//! runs the first-order check on a batch of 4 for them too.
//!
//! Inputs are small where the network allows (ResNet-44 on 8×8 images,
//! ResNet-18 on 4×4, AlexNet on 63×63, its smallest input), with batches
//! of at least 4 wherever a BatchNorm sees a 1×1 plane (BatchNorm over two
//! values maps them to ±1 whatever they are, and its gradient is rounding
//! noise), so the whole file runs in a few
//! seconds in a debug build.

use smoothout::{BackendTypes, BufferOps};
use smoothout_cpu::Cpu;
use smoothout_models::data::seeded_rng;
use smoothout_models::layers::{Activation, Layer, SoftmaxCrossEntropy};
use smoothout_models::networks::{
    alexnet_bn, c1, c3, f1, resnet18, resnet44, NetConfig, Sequential, Stem,
};

type B = Cpu<f32>;

/// Whether to run the first-order check on ResNet-18 and AlexNet too (about
/// 10 s each in a debug build): `SMOOTHOUT_SLOW_TESTS=1`.
fn slow() -> bool {
    std::env::var_os("SMOOTHOUT_SLOW_TESTS").is_some()
}

fn backend() -> B {
    Cpu::with_threads(4).unwrap()
}

fn input(len: usize, seed: u64) -> Vec<f32> {
    use rand_core::RngCore;
    let mut rng = seeded_rng(seed);
    (0..len)
        .map(|_| (2.0 * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) - 1.0) as f32)
        .collect()
}

fn loss(b: &B, net: &mut Sequential<B>, x: &[f32], shape: &[usize], labels: &[u32]) -> f64 {
    net.set_dropout_step(0);
    let x = b.upload(x).unwrap();
    let z = net.forward(b, &Activation::new(x, shape), true).unwrap();
    SoftmaxCrossEntropy::new(z.shape[1])
        .forward(b, &z, labels)
        .unwrap()
        .0
}

/// Forward, backward and the first-order check; returns the logits' shape.
fn check(
    b: &B,
    net: &mut Sequential<B>,
    shape: &[usize],
    classes: usize,
    first_order: bool,
) -> Vec<usize> {
    let n = shape[0];
    let len: usize = shape.iter().product();
    let x = input(len, 7);
    let labels: Vec<u32> = (0..n).map(|i| (i * 3 % classes) as u32).collect();

    net.set_dropout_step(0);
    let xb = b.upload(&x).unwrap();
    let z = net.forward(b, &Activation::new(xb, shape), true).unwrap();
    let s = z.shape.to_vec();
    assert_eq!(s, [n, classes]);
    let (l0, dz) = SoftmaxCrossEntropy::new(classes)
        .forward(b, &z, &labels)
        .unwrap();
    assert!(l0.is_finite() && l0 > 0.0, "{l0}");
    net.zero_grad(b).unwrap();
    let dx = net.backward(b, &dz).unwrap();
    assert_eq!(b.len(&dx), len);
    assert!(b.to_vec(&dx).unwrap().iter().all(|v| v.is_finite()));

    // buffers line up with the specs
    let specs = net.specs();
    let grads: Vec<Vec<f32>> = net.grads().iter().map(|g| b.to_vec(g).unwrap()).collect();
    assert_eq!(grads.len(), specs.len());
    assert_eq!(net.params().len(), specs.len());
    for ((s, g), p) in specs.iter().zip(&grads).zip(net.params()) {
        assert_eq!((s.len(), s.len()), (g.len(), b.len(p)), "{}", s.name);
        assert!(g.iter().all(|v| v.is_finite()), "{}", s.name);
    }
    let norm2: f64 = grads.iter().flatten().map(|&v| f64::from(v).powi(2)).sum();
    assert!(norm2 > 0.0);
    if !first_order {
        return s;
    }

    let eta = 1e-3 * l0 / norm2;
    for (p, g) in net.params_mut().into_iter().zip(&grads) {
        let v: Vec<f32> = b
            .to_vec(p)
            .unwrap()
            .iter()
            .zip(g)
            .map(|(&p, &g)| (f64::from(p) - eta * f64::from(g)) as f32)
            .collect();
        *p = b.upload(&v).unwrap();
    }
    let l1 = loss(b, net, &x, shape, &labels);
    let ratio = (l0 - l1) / (eta * norm2);
    assert!((0.9..=1.1).contains(&ratio), "L {l0} → {l1}, ratio {ratio}");
    s
}

/// The batch of ResNet-18 and AlexNet: 4 with the first-order check
/// ([`slow`]), else 2.
fn slow_batch() -> usize {
    if slow() {
        4
    } else {
        2
    }
}

/// One `#[test]` per network, a row each: the test's name, the network built
/// on the backend, the input's shape, the classes, and whether to run the
/// first-order check.
macro_rules! forward_backward {
    ($($name:ident: $build:expr, $shape:expr, $classes:expr, $first_order:expr;)*) => {$(
        #[test]
        fn $name() {
            let b = backend();
            let mut net = ($build)(&b).unwrap();
            check(&b, &mut net, &$shape, $classes, $first_order);
        }
    )*};
}

forward_backward! {
    f1_forward_backward:
        |b| f1(b, NetConfig::seeded(1).with_ghost_batch(Some(4))), [8, 1, 28, 28], 10, true;
    c1_forward_backward: |b| c1(b, NetConfig::seeded(2)), [4, 3, 32, 32], 10, true;
    c3_forward_backward_with_ghost_batches:
        |b| c3(b, NetConfig::seeded(3).with_ghost_batch(Some(2))), [4, 3, 32, 32], 100, true;
    resnet44_forward_backward: |b| resnet44(b, NetConfig::seeded(4)), [2, 3, 8, 8], 10, true;
    resnet18_forward_backward:
        |b| resnet18(b, 10, Stem::Cifar, NetConfig::seeded(5)), [slow_batch(), 3, 4, 4], 10, slow();
    alexnet_forward_backward:
        |b| alexnet_bn(b, 10, 63, NetConfig::seeded(6)), [slow_batch(), 3, 63, 63], 10, slow();
}

#[test]
fn seeded_and_reproducible() {
    let b = backend();
    let a = c1(&b, NetConfig::seeded(9)).unwrap();
    let a2 = c1(&b, NetConfig::seeded(9)).unwrap();
    let other = c1(&b, NetConfig::seeded(10)).unwrap();
    let host = |n: &Sequential<B>| -> Vec<Vec<f32>> {
        n.params().iter().map(|p| b.to_vec(p).unwrap()).collect()
    };
    assert_eq!(host(&a), host(&a2));
    assert_ne!(host(&a), host(&other));
    // the layers draw different seeds: the two 5×5 convs differ
    assert_ne!(host(&a)[0][..10], host(&a)[3][..10]);
}

#[test]
fn bad_sizes_are_errors() {
    let b = backend();
    assert!(alexnet_bn(&b, 10, 62, NetConfig::default()).is_err());
    assert!(smoothout_models::networks::resnet_cifar(&b, 45, 10, NetConfig::default()).is_err());
    assert!(f1(&b, NetConfig::seeded(0).with_ghost_batch(Some(0))).is_err());
    let mut net = c1(&b, NetConfig::default()).unwrap();
    let x = b.upload(&[0.0; 2 * 3 * 28 * 28]).unwrap();
    assert!(net
        .forward(&b, &Activation::new(x, [2, 3, 28, 28]), true)
        .is_err()); // C1 wants 32×32
}
