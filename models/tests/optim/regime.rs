//! Learning-rate regimes: step lookup, batch scaling, train-longer,
//! warm-up, and every validation error.

use smoothout::Error;
use smoothout_models::optim::{LrRegime, LrScaling, Milestones};

fn setting<T: std::fmt::Debug>(r: smoothout::Result<T>, name: &str) {
    match r {
        Err(Error::InvalidSetting { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected InvalidSetting({name}), got {other:?}"),
    }
}

#[test]
fn step_regime_lookup() {
    let r = LrRegime::steps(&[(0, 0.1), (81, 0.01), (122, 0.001)]).unwrap();
    for (epoch, lr) in [
        (0, 0.1),
        (80, 0.1),
        (81, 0.01),
        (121, 0.01),
        (122, 0.001),
        (10_000, 0.001),
    ] {
        assert_eq!(r.epoch_lr(epoch), lr, "epoch {epoch}");
        assert_eq!(r.lr(epoch, 123).unwrap(), lr);
    }
    assert_eq!(r.points(), [(0, 0.1), (81, 0.01), (122, 0.001)]);
    assert_eq!((r.warmup_steps(), r.epoch_multiplier()), (0, 1));
    let c = LrRegime::constant(0.5).unwrap();
    assert_eq!(
        (c.lr(0, 0).unwrap(), c.lr(u64::MAX, u64::MAX).unwrap()),
        (0.5, 0.5)
    );
    assert_eq!(c.total_epochs(7).unwrap(), 7);
    // a zero rate is allowed (a frozen phase)
    assert_eq!(
        LrRegime::steps(&[(0, 0.1), (5, 0.0)])
            .unwrap()
            .lr(6, 0)
            .unwrap(),
        0.0
    );
}

#[test]
fn batch_scaling() {
    assert_eq!(LrScaling::None.factor(2048, 128).unwrap(), 1.0);
    assert_eq!(LrScaling::Linear.factor(2048, 128).unwrap(), 16.0);
    assert_eq!(LrScaling::Sqrt.factor(2048, 128).unwrap(), 4.0);
    // not a whole ratio: the reference code's float division and ** 0.5
    assert_eq!(LrScaling::Linear.factor(1000, 128).unwrap(), 7.8125);
    assert_eq!(
        LrScaling::Sqrt.factor(1000, 128).unwrap(),
        7.8125f64.powf(0.5)
    );
    assert_eq!(LrScaling::Sqrt.factor(64, 256).unwrap(), 0.5);
    assert_eq!(LrScaling::default(), LrScaling::None);
    let r = LrRegime::steps(&[(0, 0.1), (10, 0.01)]).unwrap();
    let s = r.clone().scaled(LrScaling::Sqrt, 2048, 128).unwrap();
    assert_eq!(s.points(), [(0, 0.1 * 4.0), (10, 0.01 * 4.0)]);
    let l = r.scaled(LrScaling::Linear, 512, 128).unwrap();
    assert_eq!(l.points(), [(0, 0.1 * 4.0), (10, 0.01 * 4.0)]);
}

#[test]
fn train_longer() {
    assert_eq!(LrRegime::batch_multiplier(2048, 128).unwrap(), 16);
    assert_eq!(LrRegime::batch_multiplier(1000, 128).unwrap(), 8); // ⌈7.8125⌉
    assert_eq!(LrRegime::batch_multiplier(100, 128).unwrap(), 1);
    let r = LrRegime::steps(&[(0, 0.1), (81, 0.01)]).unwrap();
    let long = r.train_longer(16).unwrap();
    assert_eq!(long.points(), [(0, 0.1), (81 * 16, 0.01)]);
    assert_eq!(long.lr(81 * 16 - 1, 0).unwrap(), 0.1);
    assert_eq!(long.lr(81 * 16, 0).unwrap(), 0.01);
    assert_eq!(long.total_epochs(200).unwrap(), 3200);
    // multipliers compound
    let twice = long.train_longer(2).unwrap();
    assert_eq!(
        (twice.epoch_multiplier(), twice.points()[1].0),
        (32, 81 * 32)
    );
    // the reference code's big-batch setup in one chain
    let bb = LrRegime::constant(0.1)
        .unwrap()
        .scaled(LrScaling::Sqrt, 4096, 256)
        .unwrap()
        .train_longer(LrRegime::batch_multiplier(4096, 256).unwrap())
        .unwrap();
    assert_eq!(
        (bb.lr(0, 0).unwrap(), bb.total_epochs(10).unwrap()),
        (0.4, 160)
    );
}

#[test]
fn warm_up() {
    let w = LrRegime::steps(&[(0, 0.8), (2, 0.08)])
        .unwrap()
        .with_warmup(4);
    let got: Vec<f64> = (0..6).map(|s| w.lr(0, s).unwrap()).collect();
    assert_eq!(got, [0.2, 0.4, 0.6000000000000001, 0.8, 0.8, 0.8]);
    // the warm-up multiplies whatever the epoch gives
    assert_eq!(w.lr(2, 1).unwrap(), 0.08 * 0.5);
    assert_eq!(w.warmup_steps(), 4);
    // 0 turns it off; 1 is the full rate from the first step
    assert_eq!(w.clone().with_warmup(0).lr(0, 0).unwrap(), 0.8);
    assert_eq!(w.with_warmup(1).lr(0, 0).unwrap(), 0.8);
}

#[test]
fn errors() {
    setting(LrRegime::steps(&[]), "regime points");
    setting(LrRegime::steps(&[(1, 0.1)]), "regime first epoch");
    setting(
        LrRegime::steps(&[(0, 0.1), (5, 0.01), (5, 0.001)]),
        "regime epoch",
    );
    setting(
        LrRegime::steps(&[(0, 0.1), (5, 0.01), (3, 0.001)]),
        "regime epoch",
    );
    for lr in [-0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        setting(LrRegime::constant(lr), "learning rate");
        setting(LrRegime::steps(&[(0, 0.1), (2, lr)]), "learning rate");
    }
    for s in [LrScaling::None, LrScaling::Linear, LrScaling::Sqrt] {
        setting(s.factor(0, 128), "batch size");
        setting(s.factor(128, 0), "ghost batch size");
    }
    setting(LrRegime::batch_multiplier(0, 1), "batch size");
    setting(LrRegime::batch_multiplier(1, 0), "ghost batch size");
    let r = LrRegime::constant(1e308).unwrap();
    setting(r.clone().scaled(LrScaling::Linear, 16, 1), "learning rate");
    setting(r.clone().scaled(LrScaling::Linear, 0, 1), "batch size");
    setting(r.clone().train_longer(0), "epoch multiplier");
    let far = LrRegime::steps(&[(0, 0.1), (u64::MAX / 2, 0.01)]).unwrap();
    setting(far.train_longer(3), "epoch multiplier");
    let big = r.train_longer(u64::MAX / 2).unwrap();
    setting(big.clone().train_longer(3), "epoch multiplier");
    setting(big.total_epochs(3), "epochs");
    // the messages name the setting and the fix
    let msg = LrRegime::constant(-1.0).unwrap_err().to_string();
    assert!(
        msg.contains("learning rate") && msg.contains(">= 0"),
        "{msg}"
    );
}

#[test]
fn default_milestones_are_decay() {
    for epochs in 0..=2000 {
        for lr in [0.1, 0.3, 1e-3, 0.0, 7.0] {
            assert_eq!(
                LrRegime::milestones(lr, epochs, &Milestones::default()).unwrap(),
                LrRegime::decay(lr, epochs).unwrap(),
                "{epochs} epochs, lr {lr}"
            );
        }
    }
    // 0.5 and 0.75 as the program reads them
    let text = Milestones::Fractions(vec![(5, 10), (75, 100)]);
    for epochs in [1, 2, 3, 10, 33, u64::MAX] {
        assert_eq!(
            LrRegime::milestones(0.1, epochs, &text).unwrap(),
            LrRegime::decay(0.1, epochs).unwrap()
        );
    }
}

#[test]
fn milestones() {
    let e = Milestones::Epochs(vec![81, 122, 164]);
    assert_eq!(e.epochs(200).unwrap(), [81, 122, 164]);
    let r = LrRegime::milestones(0.1, 200, &e).unwrap();
    assert_eq!(
        r.points(),
        [
            (0, 0.1),
            (81, 0.1 / 10.0),
            (122, 0.1 / 100.0),
            (164, 0.1 / 1000.0)
        ]
    );
    // exact: ⌊100 · 29/100⌋ = 29 where 0.29 * 100.0 = 28.999…
    let f = Milestones::Fractions(vec![(29, 100), (2, 3)]);
    assert_eq!(f.epochs(100).unwrap(), [29, 66]);
    // fractions landing on epoch 0 or on the previous one count once
    let f = Milestones::Fractions(vec![(1, 10), (2, 10), (9, 10)]);
    assert_eq!(f.epochs(3).unwrap(), [2]);
    assert_eq!(f.epochs(5).unwrap(), [1, 4]);
    assert_eq!(f.epochs(1).unwrap(), Vec::<u64>::new());
    assert_eq!(
        LrRegime::milestones(1.0, 5, &f).unwrap().points(),
        [(0, 1.0), (1, 0.1), (4, 0.01)]
    );
    // a whole-epoch list does not depend on the run's length
    assert_eq!(
        Milestones::Epochs(vec![3]).epochs(4).unwrap(),
        Milestones::Epochs(vec![3]).epochs(400).unwrap()
    );
}

#[test]
fn milestone_errors() {
    let ep = |v: &[u64], epochs| Milestones::Epochs(v.to_vec()).epochs(epochs);
    let fr = |v: &[(u64, u64)]| Milestones::Fractions(v.to_vec()).epochs(10);
    setting(ep(&[], 10), "milestones");
    setting(fr(&[]), "milestones");
    setting(ep(&[0], 10), "milestone epoch");
    setting(ep(&[10], 10), "milestone epoch");
    setting(ep(&[3], 0), "milestone epoch");
    setting(ep(&[5, 5], 10), "milestone epoch");
    setting(ep(&[6, 5], 10), "milestone epoch");
    setting(fr(&[(0, 2)]), "milestone fraction");
    setting(fr(&[(2, 2)]), "milestone fraction");
    setting(fr(&[(3, 2)]), "milestone fraction");
    setting(fr(&[(1, 0)]), "milestone fraction");
    setting(fr(&[(1, 2), (2, 4)]), "milestone fraction");
    setting(fr(&[(3, 4), (1, 2)]), "milestone fraction");
    setting(
        LrRegime::milestones(-1.0, 10, &Milestones::default()),
        "learning rate",
    );
    setting(
        LrRegime::milestones(0.1, 10, &Milestones::Epochs(vec![])),
        "milestones",
    );
    let msg = ep(&[6, 5], 10).unwrap_err().to_string();
    assert!(msg.contains("strictly increasing"), "{msg}");
}
