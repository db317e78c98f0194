//! The trainer: it learns, it is deterministic across thread counts, its
//! configuration errors name the flag, its files hold what they should, and
//! the `smoothout` program reports missing data with the command that
//! fetches it.

use crate::support::program::{smoothout, train_baseline_one_epoch};

use smoothout::Reference;
use smoothout_cpu::Cpu;
use smoothout_models::data::{Dataset, Split};
use smoothout_models::train::{
    evaluate, load_checkpoint, network_from_checkpoint, Method, Network, OptimizerKind, RunFiles,
    TrainConfig, TrainError, Trainer, CHECKPOINT_FILE,
};

fn digits() -> Split {
    Dataset::digits_embedded().shuffled_split(360, 0).unwrap()
}

fn small(method: Method) -> TrainConfig {
    TrainConfig::new(method, Network::Mlp(vec![32]))
        .with_batch(64)
        .with_epochs(3)
}

#[test]
fn every_method_learns_the_digits() {
    let data = digits();
    for method in [Method::Baseline, Method::SmoothOut, Method::AdaSmoothOut] {
        let mut t = Trainer::new(Reference::<f32>::new(), small(method), &data.train).unwrap();
        let h = t.run(&data, None, &mut |_| {}).unwrap();
        assert_eq!(h.len(), 3);
        assert!(h[2].train_loss < h[0].train_loss, "{method:?}: {h:?}");
        assert!(
            h[2].test_acc > 0.9,
            "{method:?}: test accuracy {}",
            h[2].test_acc
        );
        assert!(t.finished());
        assert_matches!(
            t.step(&data.train),
            Err(TrainError::Config {
                setting: "--epochs",
                ..
            })
        );
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let data = digits();
    for method in [
        Method::AdaSmoothOut,
        Method::Sam,
        Method::Asam,
        Method::MixedRwp,
    ] {
        let mut cfg = small(method);
        cfg.ghost = Some(16);
        let state = |threads| {
            let b = Cpu::<f32>::with_threads(threads).unwrap();
            let mut t = Trainer::new(b, cfg.clone(), &data.train).unwrap();
            for _ in 0..5 {
                t.step(&data.train).unwrap();
            }
            t.checkpoint().unwrap().tensors
        };
        assert_eq!(state(1), state(2), "{method:?}");
    }
}

#[test]
fn noise_changes_the_trajectory_and_denoise_mode_matters() {
    let data = digits();
    let params = |cfg: TrainConfig| {
        let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data.train).unwrap();
        for _ in 0..4 {
            t.step(&data.train).unwrap();
        }
        t.checkpoint()
            .unwrap()
            .tensor("param.fc1.weight")
            .unwrap()
            .1
            .clone()
    };
    let base = params(small(Method::Baseline));
    let so = params(small(Method::SmoothOut));
    let mut exact = small(Method::SmoothOut);
    exact.denoise = smoothout::Denoise::Exact;
    let mut off = small(Method::SmoothOut);
    off.denoise = smoothout::Denoise::Off;
    assert_ne!(base, so);
    // Regenerating and restoring agree up to rounding; leaving θ in does not.
    let diff = |a: &smoothout_models::train::TensorData,
                b: &smoothout_models::train::TensorData| {
        let (a, b) = (
            a.to_vec::<f32>("a".as_ref(), "w").unwrap(),
            b.to_vec::<f32>("b".as_ref(), "w").unwrap(),
        );
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(diff(&so, &params(exact)) < 1e-5);
    assert!(diff(&so, &params(off)) > 1e-3);
}

#[test]
fn configuration_errors_name_the_flag() {
    let data = digits();
    let setting = |cfg: TrainConfig| match Trainer::new(Reference::<f32>::new(), cfg, &data.train) {
        Err(TrainError::Config { setting, .. }) => setting,
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(setting(small(Method::Baseline).with_batch(0)), "--batch");
    let mut c = small(Method::Baseline);
    c.ghost = Some(0);
    assert_eq!(setting(c), "--ghost");
    let mut c = small(Method::Baseline);
    c.optimizer = OptimizerKind::Nesterov;
    c.momentum = 0.0;
    assert_eq!(setting(c), "--momentum");
    let mut c = small(Method::Baseline);
    c.weight_decay = f64::NAN;
    assert_eq!(setting(c), "--weight-decay");
    let mut c = small(Method::Baseline);
    c.clip = Some(0.0);
    assert_eq!(setting(c), "--clip");
    // F1 takes 28×28 images, the digits are 8×8.
    assert_eq!(
        setting(TrainConfig::new(Method::Baseline, Network::F1)),
        "--net"
    );
    let mut c = small(Method::SmoothOut);
    c.a = -1.0;
    assert_eq!(setting(c), "--a");
    // Bernoulli noise cannot be regenerated: the core's typed error.
    let mut c = small(Method::SmoothOut);
    c.noise = smoothout_models::train::NoiseKind::Bernoulli;
    c.a = 0.1;
    assert_matches!(
        Trainer::new(Reference::<f32>::new(), c, &data.train),
        Err(TrainError::Core(_))
    );
}

#[test]
fn step_batch_checks_its_input_and_divergence_is_an_error() {
    let data = digits();
    let mut t = Trainer::new(
        Reference::<f32>::new(),
        small(Method::SmoothOut),
        &data.train,
    )
    .unwrap();
    assert_matches!(
        t.step_batch(&[0.0; 63], &[1]),
        Err(TrainError::Config { .. })
    );
    assert_matches!(t.step_batch(&[], &[]), Err(TrainError::Config { .. }));
    assert_eq!(t.steps_done(), 0);
    let mut wild = small(Method::SmoothOut);
    wild.regime = smoothout_models::optim::LrRegime::constant(1e30).unwrap();
    let mut t = Trainer::new(Reference::<f32>::new(), wild, &data.train).unwrap();
    let err = (0..20)
        .find_map(|_| t.step(&data.train).err())
        .expect("diverges");
    assert_matches!(err, TrainError::NonFinite { .. }, "{err}");
}

#[test]
fn run_files_hold_metrics_and_a_checkpoint_that_evaluates_the_same() {
    let data = digits();
    let dir = std::env::temp_dir().join(format!("smoothout-loop-{}", std::process::id()));
    let files = RunFiles {
        dir: dir.clone(),
        every: Some(7),
    };
    let mut t = Trainer::new(
        Reference::<f32>::new(),
        small(Method::AdaSmoothOut),
        &data.train,
    )
    .unwrap();
    let mut saved = Vec::new();
    let h = t
        .run(&data, Some(&files), &mut |e| {
            if let smoothout_models::train::Event::Saved { step, .. } = e {
                saved.push(step);
            }
        })
        .unwrap();
    // 23 steps per epoch: every 7th step and each epoch's end.
    assert_eq!(saved, [7, 14, 21, 23, 28, 35, 42, 46, 49, 56, 63, 69]);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].starts_with("epoch,step,lr,train_loss"));
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 3);
    let path = dir.join(CHECKPOINT_FILE);
    let ckpt = load_checkpoint(&path).unwrap();
    let b = Reference::<f32>::new();
    let (mut net, norm, shape, classes) = network_from_checkpoint(&b, &ckpt, &path).unwrap();
    assert_eq!((shape, classes), ([1, 8, 8], 10));
    let (loss, acc) = evaluate(&b, &mut net, &norm, &data.test, 100).unwrap();
    assert_eq!((loss, acc), (h[2].test_loss, h[2].test_acc));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_program_explains_itself_and_its_errors() {
    let (ok, help, _) = smoothout(&["train", "--help"]);
    assert!(ok);
    for flag in [
        "--dataset",
        "--method",
        "--ghost",
        "--no-denoise",
        "--resume",
        "--a <A>",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    let missing = std::env::temp_dir().join("smoothout-no-data-here");
    let (ok, _, err) = smoothout(&[
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        missing.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("scripts/fetch-data.sh mnist"), "{err}");
    let (ok, _, err) = smoothout(&["train", "--net", "vgg"]);
    assert!(!ok && err.contains("--net"), "{err}");
    let (ok, _, err) = smoothout(&["train", "--schedule", "tanh:x"]);
    assert!(!ok && err.contains("--schedule"), "{err}");
    let (ok, _, err) = smoothout(&["train", "--method", "adasmoothout", "--a", "-1"]);
    assert!(!ok && err.contains("--a"), "{err}");
    let (ok, _, err) = smoothout(&["fetch", "cifar10"]);
    assert!(
        !ok && err.contains("no package registry ships CIFAR-10"),
        "{err}"
    );
    let (ok, _, err) = smoothout(&["eval", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("pass a run directory"), "{err}");

    // `eval` finds the dataset a run was trained on.
    let out = std::env::temp_dir().join(format!("smoothout-eval-{}", std::process::id()));
    let args = [
        "train", "--method", "baseline", "--net", "mlp-16", "--epochs", "1", "--quiet",
    ];
    let (ok, table, err) = smoothout(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    let run = out.join("digits-mlp-16-baseline-seed0");
    let (ok, said, err) = smoothout(&["eval", run.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        said.contains("test accuracy") && said.contains("(360 images)"),
        "{said}"
    );
    // The same accuracy as the training summary printed.
    let acc = said
        .split("test accuracy ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .unwrap();
    assert!(table.contains(&format!("{acc}%")), "{table} vs {said}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn device_cuda_trains_or_says_what_is_missing() {
    let out = std::env::temp_dir().join(format!("smoothout-cuda-{}", std::process::id()));
    let (ok, table, err) = train_baseline_one_epoch(&["--device", "cuda"], &out);
    if ok {
        // A GPU (and a program built with `--features cuda`): it trained.
        assert!(table.contains("digits-mlp-16-baseline-seed0"), "{table}");
    } else {
        // Otherwise a typed error naming the option and what is missing:
        // the feature, the library, or the device.
        assert!(err.contains("--device"), "{err}");
        assert!(
            err.contains("built without CUDA")
                || err.contains("could not be loaded")
                || err.contains("no CUDA device"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_dir_all(out);
}
