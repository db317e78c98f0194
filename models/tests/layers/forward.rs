//! Forward passes against hand-computed cases, BatchNorm's running
//! statistics and eval mode, dropout's reproducibility and rate, and the
//! errors for bad shapes; on the `Reference` and the CPU backends.
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | linear, conv, pooling, ReLU outputs on small integers | exact | every product and sum is an integer below 2⁵³ |
//! | BatchNorm outputs and running statistics | `1e-12` absolute | a handful of `f64` operations on values of order 10 |
//! | dropout rate over `n = 10⁵` draws | `5 · √(p(1 − p)/n)` | the dropped fraction is Binomial(n, p)/n; five standard deviations fail with probability below `10⁻⁶` |

use crate::support::layers;

use smoothout::tensor::TensorBackend;
use smoothout::{Error, Reference};
use smoothout_cpu::Cpu;
use smoothout_models::layers::{
    Activation, AvgPool2d, BasicBlock, BatchNorm, Conv2d, Dropout, Layer, Linear, MaxPool2d, Relu,
    SoftmaxCrossEntropy,
};

fn up<B: TensorBackend<Elem = f64>>(b: &B, v: &[f64]) -> B::Buffer {
    b.upload(v).unwrap()
}

/// `v` of `shape` on the backend: a layer's input.
fn input<B: TensorBackend<Elem = f64>>(b: &B, v: &[f64], shape: &[usize]) -> Activation<B> {
    Activation::new(up(b, v), shape)
}

fn host<B: TensorBackend<Elem = f64>>(b: &B, v: &B::Buffer) -> Vec<f64> {
    b.to_vec(v).unwrap()
}

fn near(a: &[f64], e: &[f64], tol: f64) {
    assert_eq!(a.len(), e.len());
    for (i, (x, y)) in a.iter().zip(e).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "[{i}]: {x} vs {y} (tol {tol})\n{a:?}\n{e:?}"
        );
    }
}

fn linear_known<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut l = Linear::new(b, 2, 2, 0).unwrap().named("fc1");
    *l.params_mut()[0] = up(b, &[1.0, 2.0, 3.0, 4.0]);
    *l.params_mut()[1] = up(b, &[0.5, -1.0]);
    let Activation { data: y, shape: s } = l
        .forward(b, &input(b, &[1.0, 1.0, 2.0, 0.0], &[2, 2]), false)
        .unwrap();
    assert_eq!(
        (host(b, &y), s.to_vec()),
        (vec![3.5, 6.0, 2.5, 5.0], vec![2, 2])
    );
    let names: Vec<_> = l
        .specs()
        .into_iter()
        .map(|s| (s.name, s.shape, s.perturbed))
        .collect();
    assert_eq!(
        names,
        [
            ("fc1.weight".into(), vec![2, 2], true),
            ("fc1.bias".into(), vec![2], true)
        ]
    );
    // [N, C, H, W] is flattened
    let mut l = Linear::new(b, 4, 1, 0).unwrap();
    let Activation { data: _, shape: s } = l
        .forward(b, &input(b, &[0.0; 8], &[2, 1, 2, 2]), false)
        .unwrap();
    assert_eq!(s, [2, 1]);
}

fn linear_init<B: TensorBackend<Elem = f64>>(b: &B) {
    // PyTorch's default: U(−1/√in, 1/√in) for weight and bias; seeded.
    let l = Linear::new(b, 100, 50, 3).unwrap();
    let w = host(b, l.params()[0]);
    let bound = 0.1;
    assert!(w.iter().all(|v| v.abs() < bound));
    let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(max > 0.9 * bound, "{max}");
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    // U(−0.1, 0.1) has sd 0.0577; the mean of 5000 has sd 8.2e-4
    assert!(mean.abs() < 5.0 * 8.2e-4, "{mean}");
    let again = Linear::new(b, 100, 50, 3).unwrap();
    assert_eq!(w, host(b, again.params()[0]));
    let other = Linear::new(b, 100, 50, 4).unwrap();
    assert_ne!(w, host(b, other.params()[0]));
}

fn conv_known<B: TensorBackend<Elem = f64>>(b: &B) {
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut c = Conv2d::new(b, 1, 1, 2, 1, 0, 0).unwrap();
    *c.params_mut()[0] = up(b, &[1.0, 2.0, 3.0, 4.0]);
    *c.params_mut()[1] = up(b, &[1.0]);
    let Activation { data: y, shape: s } =
        c.forward(b, &input(b, &x, &[1, 1, 3, 3]), false).unwrap();
    assert_eq!(
        (host(b, &y), s.to_vec()),
        (vec![38.0, 48.0, 68.0, 78.0], vec![1, 1, 2, 2])
    );
    // 3×3 ones, stride 2, padding 1, no bias; two filters (the second doubled)
    let mut c = Conv2d::new(b, 1, 2, 3, 2, 1, 0).unwrap().without_bias();
    assert_eq!(c.specs().len(), 1);
    let mut w = vec![1.0; 9];
    w.extend([2.0; 9]);
    *c.params_mut()[0] = up(b, &w);
    let Activation { data: y, shape: s } =
        c.forward(b, &input(b, &x, &[1, 1, 3, 3]), false).unwrap();
    assert_eq!(s, [1, 2, 2, 2]);
    assert_eq!(
        host(b, &y),
        [12.0, 16.0, 24.0, 28.0, 24.0, 32.0, 48.0, 56.0]
    );
}

fn relu_and_pools_known<B: TensorBackend<Elem = f64>>(b: &B) {
    let Activation { data: y, .. } = Relu::new()
        .forward(b, &input(b, &[-2.0, 0.0, 3.0], &[3]), false)
        .unwrap();
    assert_eq!(host(b, &y), [0.0, 0.0, 3.0]);
    let x: Vec<f64> = (1..=16).map(f64::from).collect();
    let Activation { data: y, shape: s } = MaxPool2d::new(2, 2, 0)
        .forward(b, &input(b, &x, &[1, 1, 4, 4]), false)
        .unwrap();
    assert_eq!(
        (host(b, &y), s.to_vec()),
        (vec![6.0, 8.0, 14.0, 16.0], vec![1, 1, 2, 2])
    );
    let Activation { data: y, .. } = AvgPool2d::new(2, 2, 0)
        .forward(b, &input(b, &x, &[1, 1, 4, 4]), false)
        .unwrap();
    assert_eq!(host(b, &y), [3.5, 5.5, 11.5, 13.5]);
    let mut m = MaxPool2d::new(2, 2, 0);
    m.forward(b, &input(b, &x, &[1, 1, 4, 4]), true).unwrap();
    let dx = host(b, &m.backward(b, &up(b, &[1.0, 2.0, 3.0, 4.0])).unwrap());
    let mut want = vec![0.0; 16];
    (want[5], want[7], want[13], want[15]) = (1.0, 2.0, 3.0, 4.0);
    assert_eq!(dx, want);
}

fn batch_norm_known<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut bn = BatchNorm::new(b, 1).unwrap();
    let x = input(b, &[1.0, 2.0, 3.0, 6.0], &[2, 1, 1, 2]);
    let Activation { data: y, .. } = bn.forward(b, &x, true).unwrap();
    let sd = (3.5f64 + 1e-5).sqrt();
    near(&host(b, &y), &[-2.0 / sd, -1.0 / sd, 0.0, 3.0 / sd], 1e-12);
    // running: mean 0.1·3, var 0.9 + 0.1 · 3.5 · 4/3 (unbiased)
    let (rm, rv) = (0.3, 0.9 + 0.1 * 3.5 * 4.0 / 3.0);
    near(&bn.running_mean(b).unwrap(), &[rm], 1e-12);
    near(&bn.running_var(b).unwrap(), &[rv], 1e-12);
    // a second batch: momentum again
    bn.forward(b, &input(b, &[0.0, 0.0, 0.0, 4.0], &[2, 1, 1, 2]), true)
        .unwrap();
    let (rm2, rv2) = (0.9 * rm + 0.1 * 1.0, 0.9 * rv + 0.1 * 3.0 * 4.0 / 3.0);
    near(&bn.running_mean(b).unwrap(), &[rm2], 1e-12);
    near(&bn.running_var(b).unwrap(), &[rv2], 1e-12);
    // eval uses the running statistics, with γ and β, and leaves them alone
    *bn.params_mut()[0] = up(b, &[2.0]);
    *bn.params_mut()[1] = up(b, &[0.5]);
    let Activation { data: y, .. } = bn.forward(b, &x, false).unwrap();
    let s = (rv2 + 1e-5).sqrt();
    let want: Vec<f64> = [1.0, 2.0, 3.0, 6.0]
        .iter()
        .map(|v| 2.0 * (v - rm2) / s + 0.5)
        .collect();
    near(&host(b, &y), &want, 1e-12);
    near(&bn.running_mean(b).unwrap(), &[rm2], 1e-12);
    // specs: normalisation, not perturbed by default
    assert!(bn
        .specs()
        .iter()
        .all(|s| !s.perturbed && s.role == smoothout::Role::Normalization));
}

/// `layer`'s output in training mode for the host values `x` of `shape`,
/// back on the host.
fn train_forward<B: TensorBackend<Elem = f64>>(
    b: &B,
    layer: &mut impl Layer<B>,
    x: &[f64],
    shape: &[usize],
) -> Vec<f64> {
    let Activation { data: y, .. } = layer.forward(b, &input(b, x, shape), true).unwrap();
    host(b, &y)
}

fn batch_norm_1d_channels<B: TensorBackend<Elem = f64>>(b: &B) {
    // [N, C] with two channels normalised separately
    let mut bn = BatchNorm::new(b, 2).unwrap();
    let y = train_forward(b, &mut bn, &[1.0, 10.0, 3.0, 30.0], &[2, 2]);
    let (s1, s2) = ((1.0f64 + 1e-5).sqrt(), (100.0f64 + 1e-5).sqrt());
    near(&y, &[-1.0 / s1, -10.0 / s2, 1.0 / s1, 10.0 / s2], 1e-12);
    near(&bn.running_mean(b).unwrap(), &[0.2, 2.0], 1e-12);
    near(
        &bn.running_var(b).unwrap(),
        &[0.9 + 0.1 * 2.0, 0.9 + 0.1 * 200.0],
        1e-12,
    );
}

fn batch_norm_ghost<B: TensorBackend<Elem = f64>>(b: &B) {
    let mut bn = BatchNorm::new(b, 1)
        .unwrap()
        .with_ghost_batch(Some(2))
        .unwrap();
    let y = train_forward(b, &mut bn, &[1.0, 3.0, 10.0, 14.0], &[4, 1]);
    let (s1, s2) = ((1.0f64 + 1e-5).sqrt(), (4.0f64 + 1e-5).sqrt());
    near(&y, &[-1.0 / s1, 1.0 / s1, -2.0 / s2, 2.0 / s2], 1e-12);
    // one momentum update per ghost batch, in order
    near(
        &bn.running_mean(b).unwrap(),
        &[0.9 * 0.2 + 0.1 * 12.0],
        1e-12,
    );
    near(&bn.running_var(b).unwrap(), &[0.9 * 1.1 + 0.1 * 8.0], 1e-12);
    // without ghost batches the whole batch is one chunk
    let mut whole = BatchNorm::new(b, 1)
        .unwrap()
        .with_ghost_batch(Some(8))
        .unwrap();
    let mut plain = BatchNorm::new(b, 1).unwrap();
    let x = input(b, &[1.0, 3.0, 10.0, 14.0], &[4, 1]);
    let Activation { data: a, .. } = whole.forward(b, &x, true).unwrap();
    let Activation { data: c, .. } = plain.forward(b, &x, true).unwrap();
    assert_eq!(host(b, &a), host(b, &c));
    assert!(BatchNorm::new(b, 1)
        .unwrap()
        .with_ghost_batch(Some(0))
        .is_err());
}

fn residual_eval<B: TensorBackend<Elem = f64>>(b: &B) {
    // identity block: at eval with fresh running stats (0, 1), BN is
    // x / √(1 + ε); with zero conv weights the block is ReLU(x).
    let mut blk = BasicBlock::new(b, 2, 2, 1, 0).unwrap();
    for (p, s) in blk
        .params_mut()
        .into_iter()
        .zip(["w", "g", "b", "w", "g", "b"])
    {
        if s == "w" {
            let n = b.len(p);
            *p = b.zeros(n).unwrap();
        }
    }
    let x = layers::data(2 * 2 * 3 * 3, 1);
    let Activation { data: y, shape: s } =
        blk.forward(b, &input(b, &x, &[2, 2, 3, 3]), false).unwrap();
    assert_eq!(s, [2, 2, 3, 3]);
    let want: Vec<f64> = x.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(host(b, &y), want);
    let names: Vec<String> = BasicBlock::new(b, 2, 4, 2, 0)
        .unwrap()
        .specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "conv2.weight",
            "bn2.weight",
            "bn2.bias",
            "shortcut.0.weight",
            "shortcut.1.weight",
            "shortcut.1.bias"
        ]
    );
}

fn dropout_reproducible<B: TensorBackend<Elem = f64>>(b: &B) {
    let x = input(b, &vec![1.0; 256], &[256]);
    let mask = |seed: u64, stream: u64, step: u64| {
        let mut d = Dropout::new(0.5, seed).unwrap().with_stream(stream);
        d.set_step(step);
        let Activation { data: y, .. } = d.forward(b, &x, true).unwrap();
        assert_eq!(d.step(), step + 1);
        host(b, &y)
    };
    assert_eq!(mask(1, 0, 3), mask(1, 0, 3));
    assert_ne!(mask(1, 0, 3), mask(1, 0, 4));
    assert_ne!(mask(1, 0, 3), mask(2, 0, 3));
    assert_ne!(mask(1, 0, 3), mask(1, 1, 3));
    // consecutive train forwards advance the step
    let mut d = Dropout::new(0.5, 1).unwrap();
    d.set_step(3);
    let Activation { data: y3, .. } = d.forward(b, &x, true).unwrap();
    let Activation { data: y4, .. } = d.forward(b, &x, true).unwrap();
    assert_eq!((host(b, &y3), host(b, &y4)), (mask(1, 0, 3), mask(1, 0, 4)));
    // backward applies the same mask
    let dx = d.backward(b, &x.data).unwrap();
    assert_eq!(host(b, &dx), host(b, &y4));
}

fn dropout_rate_and_eval<B: TensorBackend<Elem = f64>>(b: &B) {
    let n = 100_000;
    let p = 0.3;
    let mut d = Dropout::new(p, 9).unwrap();
    let Activation { data: y, .. } = d.forward(b, &input(b, &vec![1.0; n], &[n]), true).unwrap();
    let y = host(b, &y);
    let keep = 1.0 / (1.0 - p);
    assert!(y.iter().all(|&v| v == 0.0 || v == keep));
    let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    assert!((dropped - p).abs() < 5.0 * sd, "dropped {dropped}");
    // eval: identity, forward and backward, step unchanged
    let step = d.step();
    let x = layers::data(10, 2);
    let Activation { data: y, .. } = d.forward(b, &input(b, &x, &[10]), false).unwrap();
    assert_eq!(host(b, &y), x);
    assert_eq!(host(b, &d.backward(b, &up(b, &x)).unwrap()), x);
    assert_eq!(d.step(), step);
    // p = 0: identity in train; p = 1: zeros
    let Activation { data: y, .. } = Dropout::new(0.0, 1)
        .unwrap()
        .forward(b, &input(b, &x, &[10]), true)
        .unwrap();
    assert_eq!(host(b, &y), x);
    let Activation { data: y, .. } = Dropout::new(1.0, 1)
        .unwrap()
        .forward(b, &input(b, &x, &[10]), true)
        .unwrap();
    assert!(host(b, &y).iter().all(|&v| v == 0.0));
    assert!(matches!(
        Dropout::<B>::new(1.5, 1),
        Err(Error::InvalidProbability { .. })
    ));
}

fn loss_known<B: TensorBackend<Elem = f64>>(b: &B) {
    let ce = SoftmaxCrossEntropy::new(3);
    let (l, dz) = ce
        .forward(
            b,
            &input(b, &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[2, 3]),
            &[0, 2],
        )
        .unwrap();
    assert!((l - 3f64.ln()).abs() < 1e-15);
    near(
        &host(b, &dz),
        &[
            -1.0 / 3.0,
            1.0 / 6.0,
            1.0 / 6.0,
            1.0 / 6.0,
            1.0 / 6.0,
            -1.0 / 3.0,
        ],
        1e-15,
    );
    assert!(ce.forward(b, &input(b, &[0.0; 6], &[2, 3]), &[0]).is_err());
    assert!(ce
        .forward(b, &input(b, &[0.0; 6], &[3, 2]), &[0, 0, 0])
        .is_err());
    assert!(ce
        .forward(b, &input(b, &[0.0; 6], &[2, 3]), &[0, 3])
        .is_err());
}

fn shape_errors<B: TensorBackend<Elem = f64>>(b: &B) {
    let zeros = |n| b.zeros(n).unwrap();
    let z = |n, shape: &[usize]| Activation::new(zeros(n), shape);
    let mut l = Linear::new(b, 3, 2, 0).unwrap();
    assert!(l.forward(b, &z(8, &[2, 4]), true).is_err());
    assert!(l.forward(b, &z(6, &[2, 4]), true).is_err());
    assert!(matches!(
        l.backward(b, &zeros(4)),
        Err(Error::InvalidSetting {
            name: "backward before forward",
            ..
        })
    ));
    l.forward(b, &z(6, &[2, 3]), true).unwrap();
    assert!(matches!(
        l.backward(b, &zeros(5)),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(Linear::new(b, 0, 2, 0).is_err());
    let mut c = Conv2d::new(b, 2, 2, 3, 1, 0, 0).unwrap();
    assert!(c.forward(b, &z(18, &[1, 1, 3, 6]), true).is_err()); // channels
    assert!(c.forward(b, &z(18, &[2, 9]), true).is_err()); // rank
    assert!(c.forward(b, &z(8, &[1, 2, 2, 2]), true).is_err()); // kernel > image
    let mut bn = BatchNorm::new(b, 2).unwrap();
    assert!(bn.forward(b, &z(6, &[2, 3]), true).is_err());
    assert!(bn.forward(b, &z(6, &[6]), true).is_err());
    assert!(bn.with_momentum_eps(1.5, 1e-5).is_err());
    assert!(MaxPool2d::new(3, 1, 2)
        .forward(b, &z(16, &[1, 1, 4, 4]), true)
        .is_err());
    assert!(Relu::new().forward(b, &z(3, &[4]), true).is_err());
    let mut blk = BasicBlock::new(b, 2, 2, 1, 0).unwrap();
    assert!(blk.forward(b, &z(27, &[1, 3, 3, 3]), true).is_err());
}

per_backend!(reference => Reference::<f64>::new();
    linear_known, linear_init, conv_known, relu_and_pools_known, batch_norm_known,
    batch_norm_1d_channels, batch_norm_ghost, residual_eval, dropout_reproducible,
    dropout_rate_and_eval, loss_known, shape_errors);
per_backend!(cpu => Cpu::<f64>::with_threads(2).unwrap();
    linear_known, linear_init, conv_known, relu_and_pools_known, batch_norm_known,
    batch_norm_1d_channels, batch_norm_ghost, residual_eval, dropout_reproducible,
    dropout_rate_and_eval, loss_known, shape_errors);
