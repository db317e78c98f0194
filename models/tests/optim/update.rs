//! Optimiser updates against hand-computed sequences and scalar replicas of
//! the PyTorch formulas (bit-exact), against SmoothOut's fused
//! `denoise_sgd`, gradient clipping, state export/import and every error;
//! on the reference backend and the CPU backend (small chunks, two threads).

use smoothout::tensor::TensorBackend;
use smoothout::{Config, Denoise, Draw, Error, Noise, ParamSpec, Real, Reference, Sgd, SmoothOut};
use smoothout_cpu::Cpu;
use smoothout_models::layers::Layer;
use smoothout_models::networks::{mlp, NetConfig};
use smoothout_models::optim::{
    clip_grad_norm, global_norm, Adam, AdamConfig, OptimState, Optimizer, SgdMomentum,
};

const SIZES: [usize; 3] = [5, 37, 1];

/// Deterministic values in about [-1, 1].
fn vals<T: Real>(len: usize, seed: u64) -> Vec<T> {
    (0..len as u64)
        .map(|i| {
            let k = (i * 7919 + seed * 104_729 + 13) % 211;
            T::from_f64(k as f64 / 105.0 - 1.0)
        })
        .collect()
}

fn upload<B: TensorBackend>(b: &B, host: &[Vec<B::Elem>]) -> Vec<B::Buffer> {
    host.iter().map(|h| b.upload(h).unwrap()).collect()
}

/// [`Optimizer::step`] on owned buffers, lent to it as lists of references
/// (as a network lends its own).
fn step_owned<B: TensorBackend, O: Optimizer<B> + ?Sized>(
    opt: &mut O,
    b: &B,
    w: &mut [B::Buffer],
    g: &[B::Buffer],
) -> smoothout::Result<()> {
    let mut w: Vec<&mut B::Buffer> = w.iter_mut().collect();
    let g: Vec<&B::Buffer> = g.iter().collect();
    opt.step(b, &mut w, &g)
}

fn download<'a, B: TensorBackend>(
    b: &B,
    bufs: impl IntoIterator<Item = &'a B::Buffer>,
) -> Vec<Vec<B::Elem>>
where
    B::Buffer: 'a,
{
    bufs.into_iter().map(|x| b.to_vec(x).unwrap()).collect()
}

fn host_set<T: Real>(seed: u64) -> Vec<Vec<T>> {
    SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| vals(n, seed * 10 + i as u64))
        .collect()
}

fn bits<T: Real>(x: &[Vec<T>]) -> Vec<Vec<u64>> {
    x.iter()
        .map(|v| v.iter().map(|y| Real::to_f64(*y).to_bits()).collect())
        .collect()
}

/// PyTorch's SGD (dampening 0), one element, in `T`.
fn sgd_scalar<T: Real>(w: &mut T, g: T, v: &mut T, lr: f64, mu: f64, wd: f64, nesterov: bool) {
    let (lr, mu, wd) = (T::from_f64(lr), T::from_f64(mu), T::from_f64(wd));
    let g = if wd != T::from_f64(0.0) {
        g + wd * *w
    } else {
        g
    };
    *v = mu * *v + g;
    let d = if nesterov { g + mu * *v } else { *v };
    *w = *w - lr * d;
}

/// PyTorch's Adam (single tensor, no amsgrad), one element at step `t`.
#[allow(clippy::too_many_arguments)]
fn adam_scalar<T: Real>(w: &mut T, g: T, m: &mut T, v: &mut T, t: u64, c: &AdamConfig) {
    let e = T::from_f64;
    let (b1, b2) = c.betas;
    let bc1 = 1.0 - b1.powf(t as f64);
    let bc2 = 1.0 - b2.powf(t as f64);
    let g = if c.weight_decay != 0.0 {
        g + e(c.weight_decay) * *w
    } else {
        g
    };
    let weight = e(1.0 - b1);
    *m = if weight < e(0.5) {
        *m + weight * (g - *m)
    } else {
        g - (g - *m) * (e(1.0) - weight)
    };
    *v = e(b2) * *v + e(1.0 - b2) * g * g;
    let denom = v.sqrt() / e(bc2.sqrt()) + e(c.eps);
    *w = *w - e(c.lr / bc1) * (*m / denom);
}

fn sgd_matches_scalar_for<B: TensorBackend>(b: &B, nesterov: bool, wd: f64) {
    let sgd = Sgd::new(0.05, 0.9, wd).unwrap();
    let mut opt = SgdMomentum::new(b, &SIZES, sgd, nesterov).unwrap();
    let mut w_host = host_set::<B::Elem>(1);
    let mut v_host: Vec<Vec<B::Elem>> = SIZES
        .iter()
        .map(|&n| vec![B::Elem::from_f64(0.0); n])
        .collect();
    let mut w = upload(b, &w_host);
    for step in 0..5u64 {
        let lr = if step < 3 { 0.05 } else { 0.005 };
        opt.set_lr(lr).unwrap();
        let g_host = host_set::<B::Elem>(100 + step);
        step_owned(&mut opt, b, &mut w, &upload(b, &g_host)).unwrap();
        for ((w, g), v) in w_host.iter_mut().zip(&g_host).zip(&mut v_host) {
            for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                sgd_scalar(w, g, v, lr, 0.9, wd, nesterov);
            }
        }
        assert_eq!(
            bits(&download(b, &w)),
            bits(&w_host),
            "weights, step {step}"
        );
        assert_eq!(
            bits(&download(b, opt.velocity())),
            bits(&v_host),
            "velocity, step {step}"
        );
    }
    assert_eq!(opt.steps(), 5);
}

fn sgd_matches_scalar<B: TensorBackend>(b: &B) {
    sgd_matches_scalar_for(b, false, 0.0);
    sgd_matches_scalar_for(b, false, 1e-2);
}

fn nesterov_matches_scalar<B: TensorBackend>(b: &B) {
    sgd_matches_scalar_for(b, true, 0.0);
    sgd_matches_scalar_for(b, true, 1e-2);
}

fn adam_matches_scalar<B: TensorBackend>(b: &B) {
    let configs = [
        AdamConfig::new(1e-2).unwrap(),
        AdamConfig::new(1e-2)
            .unwrap()
            .with_weight_decay(1e-2)
            .unwrap(),
        // β₁ ≤ ½ takes torch.lerp's other branch
        AdamConfig::new(3e-2)
            .unwrap()
            .with_betas(0.3, 0.5)
            .unwrap()
            .with_eps(1e-3)
            .unwrap(),
    ];
    for c in configs {
        let mut opt = Adam::new(b, &SIZES, c).unwrap();
        let mut w_host = host_set::<B::Elem>(2);
        let zeros = || -> Vec<Vec<B::Elem>> {
            SIZES
                .iter()
                .map(|&n| vec![B::Elem::from_f64(0.0); n])
                .collect()
        };
        let (mut m_host, mut v_host) = (zeros(), zeros());
        let mut w = upload(b, &w_host);
        for t in 1..=5u64 {
            let g_host = host_set::<B::Elem>(200 + t);
            step_owned(&mut opt, b, &mut w, &upload(b, &g_host)).unwrap();
            for (((w, g), m), v) in w_host
                .iter_mut()
                .zip(&g_host)
                .zip(&mut m_host)
                .zip(&mut v_host)
            {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    adam_scalar(w, g, m, v, t, &c);
                }
            }
            assert_eq!(bits(&download(b, &w)), bits(&w_host), "{c:?} step {t}");
            assert_eq!(bits(&download(b, opt.first_moments())), bits(&m_host));
            assert_eq!(bits(&download(b, opt.second_moments())), bits(&v_host));
        }
    }
}

/// Three steps on one element, the sequences worked out by hand (in exact
/// arithmetic; the bound allows the f64 rounding of ~10 operations).
fn hand_computed<B: TensorBackend + 'static>(b: &B) {
    let run = |opt: &mut dyn Optimizer<B>, w0: f64, g: f64| -> Vec<f64> {
        let mut w = vec![b.upload(&[B::Elem::from_f64(w0)]).unwrap()];
        let g = vec![b.upload(&[B::Elem::from_f64(g)]).unwrap()];
        (0..3)
            .map(|_| {
                step_owned(&mut *opt, b, &mut w, &g).unwrap();
                Real::to_f64(b.to_vec(&w[0]).unwrap()[0])
            })
            .collect()
    };
    let tol = if core::mem::size_of::<B::Elem>() == 8 {
        1e-14
    } else {
        1e-6
    };
    let close = |got: Vec<f64>, want: [f64; 3], what: &str| {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{what}: {got:?} vs {want:?}");
        }
    };
    // heavy ball, lr 0.1, μ 0.9, g = 1: v = 1, 1.9, 2.71
    let mut sgd = SgdMomentum::new(b, &[1], Sgd::new(0.1, 0.9, 0.0).unwrap(), false).unwrap();
    close(run(&mut sgd, 1.0, 1.0), [0.9, 0.71, 0.439], "sgd");
    // Nesterov: steps 0.1·(1 + 0.9·v) = 0.19, 0.271, 0.3439
    let mut nes = SgdMomentum::new(b, &[1], Sgd::new(0.1, 0.9, 0.0).unwrap(), true).unwrap();
    close(run(&mut nes, 1.0, 1.0), [0.81, 0.539, 0.1951], "nesterov");
    // pure weight decay, lr 0.1, wd 0.1, no momentum, g = 0: w · 0.99ᵗ
    let mut wd = SgdMomentum::new(b, &[1], Sgd::new(0.1, 0.0, 0.1).unwrap(), false).unwrap();
    close(
        run(&mut wd, 1.0, 0.0),
        [0.99, 0.9801, 0.970299],
        "weight decay",
    );
    // Adam, constant gradient 3: m̂ = 3, √v̂ = 3 → each step lr · 3 / (3 + ε)
    let mut adam = Adam::new(b, &[1], AdamConfig::new(0.1).unwrap()).unwrap();
    let s = 0.1 * 3.0 / (3.0 + 1e-8);
    close(
        run(&mut adam, 1.0, 3.0),
        [1.0 - s, 1.0 - 2.0 * s, 1.0 - 3.0 * s],
        "adam",
    );
}

/// The plain update is the backend's `denoise_sgd` without noise, and the
/// optimiser's velocities drive SmoothOut's fused step.
fn matches_fused_denoise_sgd<B: TensorBackend>(b: &B) {
    let sgd = Sgd::new(0.1, 0.9, 5e-4).unwrap();
    let mut opt = SgdMomentum::new(b, &SIZES, sgd, false).unwrap();
    let mut w1 = upload(b, &host_set::<B::Elem>(3));
    let mut w2 = upload(b, &host_set::<B::Elem>(3));
    let mut v2: Vec<B::Buffer> = SIZES.iter().map(|&n| b.zeros(n).unwrap()).collect();
    for step in 0..4 {
        let g = upload(b, &host_set::<B::Elem>(300 + step));
        step_owned(&mut opt, b, &mut w1, &g).unwrap();
        for ((w, g), v) in w2.iter_mut().zip(&g).zip(&mut v2) {
            b.denoise_sgd(w, g, v, None, &sgd).unwrap();
        }
        assert_eq!(bits(&download(b, &w1)), bits(&download(b, &w2)));
        assert_eq!(bits(&download(b, opt.velocity())), bits(&download(b, &v2)));
    }

    // Exact de-noising: SmoothOut's fused update with the optimiser's
    // velocities equals de-noise then `step`, bit for bit.
    let specs = vec![
        ParamSpec::weight("a", [5, 1]),
        ParamSpec::weight("b", [37, 1]),
        ParamSpec::bias("c", 1),
    ];
    let config = Config::new(Noise::uniform(0.05).unwrap()).with_denoise(Denoise::Exact);
    let mut so1 = SmoothOut::new(b, config, specs.clone()).unwrap();
    let mut so2 = SmoothOut::new(b, config, specs).unwrap();
    let mut fused = SgdMomentum::new(b, &SIZES, sgd, false).unwrap();
    let mut split = SgdMomentum::new(b, &SIZES, sgd, false).unwrap();
    let mut w1 = upload(b, &host_set::<B::Elem>(4));
    let mut w2 = upload(b, &host_set::<B::Elem>(4));
    for step in 0..3 {
        let draw = Draw::new(step, 0);
        let g = upload(b, &host_set::<B::Elem>(400 + step));
        so1.perturb(b, &mut w1, draw).unwrap();
        let cfg = *fused.config();
        so1.denoise_sgd(b, &mut w1, &g, fused.velocity_mut(), &cfg, draw)
            .unwrap();
        fused.count_step();
        so2.perturb(b, &mut w2, draw).unwrap();
        so2.denoise(b, &mut w2, draw).unwrap();
        step_owned(&mut split, b, &mut w2, &g).unwrap();
        assert_eq!(bits(&download(b, &w1)), bits(&download(b, &w2)));
    }
    assert_eq!(fused.state(b).unwrap(), split.state(b).unwrap());
}

fn state_resumes_bit_exact<B: TensorBackend + 'static>(b: &B) {
    type Make<B> = fn(&B) -> Box<dyn Optimizer<B>>;
    let makes: [Make<B>; 3] = [
        |b| {
            Box::new(SgdMomentum::new(b, &SIZES, Sgd::new(0.1, 0.9, 1e-3).unwrap(), false).unwrap())
        },
        |b| Box::new(SgdMomentum::new(b, &SIZES, Sgd::new(0.1, 0.9, 1e-3).unwrap(), true).unwrap()),
        |b| {
            Box::new(
                Adam::new(
                    b,
                    &SIZES,
                    AdamConfig::new(1e-2)
                        .unwrap()
                        .with_weight_decay(1e-3)
                        .unwrap(),
                )
                .unwrap(),
            )
        },
    ];
    for make in makes {
        let mut a = make(b);
        let mut wa = upload(b, &host_set::<B::Elem>(5));
        for s in 0..3 {
            step_owned(
                &mut *a,
                b,
                &mut wa,
                &upload(b, &host_set::<B::Elem>(500 + s)),
            )
            .unwrap();
        }
        let state = a.state(b).unwrap();
        assert_eq!(state.step, 3);
        // a fresh optimiser and a copy of the weights, as after a restart
        let mut r = make(b);
        r.load_state(b, &state).unwrap();
        assert_eq!(r.steps(), 3);
        let mut wr = upload(b, &download(b, &wa));
        for s in 3..6 {
            let g = upload(b, &host_set::<B::Elem>(500 + s));
            step_owned(&mut *a, b, &mut wa, &g).unwrap();
            step_owned(&mut *r, b, &mut wr, &g).unwrap();
        }
        assert_eq!(bits(&download(b, &wa)), bits(&download(b, &wr)));
        assert_eq!(a.state(b).unwrap(), r.state(b).unwrap());
    }
}

/// A state written on the reference backend resumes on the CPU backend.
#[test]
fn state_moves_between_backends() {
    let r = Reference::<f32>::new();
    let c = Cpu::<f32>::with_threads(2).unwrap().with_chunk(4).unwrap();
    let cfg = AdamConfig::new(1e-2).unwrap();
    let mut on_r = Adam::new(&r, &SIZES, cfg).unwrap();
    let mut wr = upload(&r, &host_set::<f32>(6));
    step_owned(&mut on_r, &r, &mut wr, &upload(&r, &host_set::<f32>(600))).unwrap();
    let mut on_c = Adam::new(&c, &SIZES, cfg).unwrap();
    on_c.load_state(&c, &on_r.state(&r).unwrap()).unwrap();
    let mut wc = upload(&c, &download(&r, &wr));
    let g = host_set::<f32>(601);
    step_owned(&mut on_r, &r, &mut wr, &upload(&r, &g)).unwrap();
    step_owned(&mut on_c, &c, &mut wc, &upload(&c, &g)).unwrap();
    assert_eq!(bits(&download(&r, &wr)), bits(&download(&c, &wc)));
}

fn clipping<B: TensorBackend>(b: &B) {
    let e = B::Elem::from_f64;
    let mut g = vec![
        b.upload(&[e(3.0), e(0.0)]).unwrap(),
        b.zeros(0).unwrap(),
        b.upload(&[e(4.0)]).unwrap(),
    ];
    assert_eq!(global_norm(b, &g).unwrap(), 5.0);
    // max / (norm + 1e-6) ≥ 1: unchanged, the norm returned
    assert_eq!(clip_grad_norm(b, &mut g, 5.000_01).unwrap(), 5.0);
    assert_eq!(b.to_vec(&g[0]).unwrap(), [e(3.0), e(0.0)]);
    // below: scaled by max / (norm + 1e-6), as torch
    assert_eq!(clip_grad_norm(b, &mut g, 2.5).unwrap(), 5.0);
    let coef = e(2.5 / (5.0 + 1e-6));
    assert_eq!(b.to_vec(&g[0]).unwrap(), [e(3.0) * coef, e(0.0)]);
    assert_eq!(b.to_vec(&g[2]).unwrap(), [e(4.0) * coef]);
    let n = global_norm(b, &g).unwrap();
    assert!(n <= 2.5 && n > 2.5 - 1e-5, "{n}");
    // a long buffer: the norm is that of all elements together
    let long = host_set::<B::Elem>(7);
    let want: f64 = long
        .iter()
        .flatten()
        .map(|x| Real::to_f64(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    let mut lg = upload(b, &long);
    let got = clip_grad_norm(b, &mut lg, 1.0).unwrap();
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    let after = global_norm(b, &lg).unwrap();
    assert!((after - 1.0).abs() < 1e-5, "{after}");
    // non-finite: returned, gradients untouched
    let mut bad = vec![b
        .upload(&[B::Elem::from_f64(f64::INFINITY), e(1.0)])
        .unwrap()];
    assert!(clip_grad_norm(b, &mut bad, 1.0).unwrap().is_infinite());
    assert_eq!(b.to_vec(&bad[0]).unwrap()[1], e(1.0));
    // invalid max norms
    for m in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_matches!(
            clip_grad_norm(b, &mut g, m),
            Err(Error::InvalidSetting {
                name: "max gradient norm",
                ..
            })
        );
    }
}

fn errors<B: TensorBackend + 'static>(b: &B) {
    let sgd = Sgd::new(0.1, 0.9, 0.0).unwrap();
    // Nesterov needs momentum
    let plain = Sgd::new(0.1, 0.0, 0.0).unwrap();
    assert_matches!(
        SgdMomentum::new(b, &SIZES, plain, true),
        Err(Error::InvalidSetting {
            name: "momentum (Nesterov)",
            ..
        })
    );
    // a hand-built invalid Sgd
    for bad in [
        Sgd { lr: -0.1, ..sgd },
        Sgd {
            lr: f64::NAN,
            ..sgd
        },
        Sgd {
            momentum: 1.0,
            ..sgd
        },
        Sgd {
            momentum: -0.1,
            ..sgd
        },
        Sgd {
            weight_decay: -1.0,
            ..sgd
        },
        Sgd {
            weight_decay: f64::INFINITY,
            ..sgd
        },
    ] {
        assert_matches!(
            SgdMomentum::new(b, &SIZES, bad, false),
            Err(Error::InvalidSetting { .. })
        );
    }
    // Adam settings
    let c = AdamConfig::new(1e-3).unwrap();
    let setting = |r: smoothout::Result<AdamConfig>, name: &str| match r {
        Err(Error::InvalidSetting { name: n, .. }) => assert_eq!(n, name),
        other => panic!("{other:?}"),
    };
    setting(AdamConfig::new(-1.0), "learning rate");
    setting(AdamConfig::new(f64::NAN), "learning rate");
    setting(AdamConfig::new(f64::INFINITY), "learning rate");
    setting(c.with_betas(1.0, 0.999), "Adam beta1");
    setting(c.with_betas(-0.1, 0.999), "Adam beta1");
    setting(c.with_betas(f64::NAN, 0.999), "Adam beta1");
    setting(c.with_betas(0.9, 1.0), "Adam beta2");
    setting(c.with_betas(0.9, -1e-9), "Adam beta2");
    setting(c.with_eps(0.0), "Adam eps");
    setting(c.with_eps(-1e-8), "Adam eps");
    setting(c.with_eps(f64::NAN), "Adam eps");
    setting(c.with_weight_decay(-1.0), "weight decay");
    setting(c.with_weight_decay(f64::NAN), "weight decay");
    let hand = AdamConfig { eps: 0.0, ..c };
    assert!(Adam::new(b, &SIZES, hand).is_err());
    // set_lr
    let mut opts: Vec<Box<dyn Optimizer<B>>> = vec![
        Box::new(SgdMomentum::new(b, &SIZES, sgd, false).unwrap()),
        Box::new(SgdMomentum::new(b, &SIZES, sgd, true).unwrap()),
        Box::new(Adam::new(b, &SIZES, c).unwrap()),
    ];
    for opt in &mut opts {
        for lr in [-1e-3, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_matches!(
                opt.set_lr(lr),
                Err(Error::InvalidSetting {
                    name: "learning rate",
                    ..
                })
            );
        }
        opt.set_lr(0.0).unwrap();
        assert_eq!(opt.lr(), 0.0);
        // buffer lists of the wrong length or size; nothing moves
        let w0 = host_set::<B::Elem>(8);
        let mut w = upload(b, &w0);
        let g = upload(b, &host_set::<B::Elem>(9));
        assert_matches!(
            step_owned(&mut **opt, b, &mut w[..2], &g),
            Err(Error::LengthMismatch { .. })
        );
        assert_matches!(
            step_owned(&mut **opt, b, &mut w, &g[..2]),
            Err(Error::LengthMismatch { .. })
        );
        let mut short = g.clone_from_host(b);
        short[1] = b.zeros(36).unwrap();
        assert_matches!(
            step_owned(&mut **opt, b, &mut w, &short),
            Err(Error::LengthMismatch { .. })
        );
        assert_eq!(bits(&download(b, &w)), bits(&w0));
        assert_eq!(opt.steps(), 0);
        // states of another kind or size
        let mut st = opt.state(b).unwrap();
        st.kind = if st.kind == "adam" { "sgd" } else { "adam" };
        assert_matches!(opt.load_state(b, &st), Err(Error::InvalidSetting { .. }));
        let mut st = opt.state(b).unwrap();
        st.buffers.pop();
        assert_matches!(opt.load_state(b, &st), Err(Error::LengthMismatch { .. }));
        let mut st = opt.state(b).unwrap();
        st.buffers[1].push(B::Elem::from_f64(0.0));
        st.step = 9;
        assert_matches!(opt.load_state(b, &st), Err(Error::LengthMismatch { .. }));
        assert_eq!(opt.steps(), 0);
    }
    let st: OptimState<B::Elem> = opts[0].state(b).unwrap();
    assert_eq!((st.kind, st.buffers.len()), ("sgd", 3));
    assert_eq!(opts[1].state(b).unwrap().kind, "nesterov");
    assert_eq!(opts[2].state(b).unwrap().buffers.len(), 6);
}

trait CloneFromHost<B: TensorBackend> {
    fn clone_from_host(&self, b: &B) -> Vec<B::Buffer>;
}

impl<B: TensorBackend> CloneFromHost<B> for Vec<B::Buffer> {
    fn clone_from_host(&self, b: &B) -> Vec<B::Buffer> {
        upload(b, &download(b, self))
    }
}

/// Clipping and every optimiser update a network's own buffers in place,
/// lent by `params_and_grads_mut`, with the bits of the same calls on owned
/// copies of them.
fn in_place_on_a_network<B: TensorBackend + 'static>(b: &B) {
    type Make<B> = fn(&B, &[usize]) -> Box<dyn Optimizer<B>>;
    let makes: [Make<B>; 3] = [
        |b, s| Box::new(SgdMomentum::new(b, s, Sgd::new(0.1, 0.9, 1e-3).unwrap(), false).unwrap()),
        |b, s| Box::new(SgdMomentum::new(b, s, Sgd::new(0.1, 0.9, 1e-3).unwrap(), true).unwrap()),
        |b, s| {
            let c = AdamConfig::new(1e-2)
                .unwrap()
                .with_weight_decay(1e-3)
                .unwrap();
            Box::new(Adam::new(b, s, c).unwrap())
        },
    ];
    for make in makes {
        let mut net = mlp(b, NetConfig::seeded(11), 6, &[5], 3).unwrap();
        let sizes: Vec<usize> = net.specs().iter().map(ParamSpec::len).collect();
        let mut w: Vec<B::Buffer> = net.params().into_iter().map(|p| copy(b, p)).collect();
        let (mut on_net, mut on_copies) = (make(b, &sizes), make(b, &sizes));
        for s in 0..3u64 {
            let g_host: Vec<Vec<B::Elem>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| vals(n, 700 + 10 * s + i as u64))
                .collect();
            let mut g = upload(b, &g_host);
            for (dst, src) in net.grads_mut().into_iter().zip(&g) {
                b.copy(src, dst).unwrap();
            }
            let (mut params, mut grads) = net.params_and_grads_mut();
            let n_net = clip_grad_norm(b, &mut grads, 0.5).unwrap();
            let grads: Vec<&B::Buffer> = grads.into_iter().map(|g| &*g).collect();
            on_net.step(b, &mut params, &grads).unwrap();
            let n_copies = clip_grad_norm(b, &mut g, 0.5).unwrap();
            step_owned(&mut *on_copies, b, &mut w, &g).unwrap();
            assert_eq!(n_net.to_bits(), n_copies.to_bits());
            let on_net_w = download(b, net.params());
            assert_eq!(bits(&on_net_w), bits(&download(b, &w)), "step {s}");
            let on_net_g = download(b, net.grads());
            assert_eq!(bits(&on_net_g), bits(&download(b, &g)), "clipped, step {s}");
        }
        assert_eq!(on_net.state(b).unwrap(), on_copies.state(b).unwrap());
    }
}

fn copy<B: TensorBackend>(b: &B, x: &B::Buffer) -> B::Buffer {
    let mut c = b.zeros(b.len(x)).unwrap();
    b.copy(x, &mut c).unwrap();
    c
}

per_backend!(reference_f32 => Reference::<f32>::new();
    sgd_matches_scalar, nesterov_matches_scalar, adam_matches_scalar, hand_computed,
    matches_fused_denoise_sgd, state_resumes_bit_exact, clipping, errors, in_place_on_a_network);
per_backend!(reference_f64 => Reference::<f64>::new();
    sgd_matches_scalar, nesterov_matches_scalar, adam_matches_scalar, hand_computed,
    matches_fused_denoise_sgd, state_resumes_bit_exact, clipping, errors, in_place_on_a_network);
per_backend!(cpu_f32 => Cpu::<f32>::with_threads(2).unwrap().with_chunk(4).unwrap();
    sgd_matches_scalar, nesterov_matches_scalar, adam_matches_scalar, hand_computed,
    matches_fused_denoise_sgd, state_resumes_bit_exact, clipping, errors, in_place_on_a_network);
per_backend!(cpu_f64 => Cpu::<f64>::with_threads(2).unwrap().with_chunk(4).unwrap();
    sgd_matches_scalar, nesterov_matches_scalar, adam_matches_scalar, hand_computed,
    matches_fused_denoise_sgd, state_resumes_bit_exact, clipping, errors, in_place_on_a_network);
