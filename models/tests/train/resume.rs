//! Resuming is exact: a run stopped at a checkpoint — by a method call, or
//! by killing the `smoothout` process — and resumed ends with the weights,
//! BatchNorm statistics and optimiser buffers of a run that never stopped,
//! bit for bit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::files::Scratch;
use smoothout::Reference;
use smoothout_models::data::{Dataset, Split};
use smoothout_models::train::{
    history_from_str, load_checkpoint, Checkpoint, Event, Method, Network, OptimizerKind, RunEnd,
    RunFiles, TrainConfig, Trainer, CHECKPOINT_FILE,
};

fn digits() -> Split {
    Dataset::digits_embedded()
        .shuffled_split(300, 0)
        .expect("the embedded digits split")
}

/// A fresh directory `smoothout-resume-<pid>-<name>-<n>`, removed on drop.
fn scratch(name: &str) -> Scratch {
    Scratch::new("smoothout-resume", name)
}

/// Every tensor of `a` equals `b`'s bit for bit (the same names too).
fn assert_same_state(a: &Checkpoint, b: &Checkpoint) {
    let names = |c: &Checkpoint| {
        let mut v: Vec<String> = c.tensors.iter().map(|(n, _, _)| n.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b));
    let mut compared = 0;
    for (name, shape, data) in &a.tensors {
        let (s, d) = b.tensor(name).expect("same names");
        assert_eq!(s, shape.as_slice(), "{name}");
        let bits = |d: &smoothout_models::train::TensorData| match d {
            smoothout_models::train::TensorData::F32(v) => {
                v.iter().map(|x| u64::from(x.to_bits())).collect::<Vec<_>>()
            }
            smoothout_models::train::TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        };
        assert_eq!(bits(data), bits(d), "tensor {name} differs");
        compared += 1;
    }
    assert!(compared > 0);
    assert_eq!(a.meta("step"), b.meta("step"));
}

/// Trains `cfg` to the end in one go and, separately, to `stop` steps,
/// saves, resumes into a fresh trainer from the file, and trains to the
/// end; the two end states must be identical.
fn resume_matches(cfg: TrainConfig, stop: u64, name: &str) {
    let data = digits();
    let b = Reference::<f32>::new();
    let mut whole = Trainer::new(Reference::<f32>::new(), cfg.clone(), &data.train).unwrap();
    whole.run(&data, None, &mut |_| {}).unwrap();

    let dir = scratch(name);
    let path = dir.join(CHECKPOINT_FILE);
    let mut first = Trainer::new(Reference::<f32>::new(), cfg.clone(), &data.train).unwrap();
    assert!(
        !stop.is_multiple_of(first.steps_per_epoch()),
        "stop mid-epoch"
    );
    first.run_until(stop, &data, None, &mut |_| {}).unwrap();
    first.save(&path).unwrap();
    // Train on past the checkpoint, as a killed process would have.
    first.step(&data.train).unwrap();
    drop(first);

    let mut second = Trainer::resume(b, cfg, &data.train, &path).unwrap();
    assert_eq!(second.steps_done(), stop);
    second.run(&data, None, &mut |_| {}).unwrap();
    assert_same_state(&whole.checkpoint().unwrap(), &second.checkpoint().unwrap());
    assert_eq!(whole.history().len(), second.history().len());
    for (x, y) in whole.history().iter().zip(second.history()) {
        assert_eq!(
            (x.test_acc, x.test_loss, x.train_loss),
            (y.test_acc, y.test_loss, y.train_loss)
        );
    }
}

fn small(method: Method) -> TrainConfig {
    TrainConfig::new(method, Network::Mlp(vec![24, 16]))
        .with_batch(100)
        .with_epochs(2)
        .with_seed(5)
}

#[test]
fn resume_mid_epoch_is_exact_for_every_method() {
    resume_matches(small(Method::Baseline), 17, "baseline");
    resume_matches(small(Method::SmoothOut), 17, "smoothout");
    resume_matches(small(Method::AdaSmoothOut), 5, "ada");
    resume_matches(small(Method::Sam), 7, "sam");
    resume_matches(small(Method::Asam), 11, "asam");
    resume_matches(small(Method::Rwp), 9, "rwp");
    resume_matches(small(Method::MixedRwp), 13, "mrwp");
}

#[test]
fn resume_is_exact_with_ghost_batches_adam_and_clipping() {
    let mut cfg = small(Method::AdaSmoothOut);
    // uneven chunks: 30, 30, 30, 10, and 30, 30, 30, 7 in the last batch of
    // 97 (chunks of 32 would leave one of a single example, refused)
    cfg.ghost = Some(30);
    cfg.optimizer = OptimizerKind::Adam;
    cfg.regime = smoothout_models::optim::LrRegime::decay(1e-3, 2).unwrap();
    cfg.clip = Some(1.0);
    resume_matches(cfg, 9, "ghost-adam");
    let mut cfg = small(Method::SmoothOut);
    cfg.optimizer = OptimizerKind::Nesterov;
    cfg.weight_decay = 5e-4;
    resume_matches(cfg, 11, "nesterov");
}

/// A stop flag set mid-epoch ends the run after that step with a
/// checkpoint of it, from which the run continues bit-identically.
#[test]
fn a_stop_flag_checkpoints_the_step_reached() {
    let data = digits();
    let cfg = small(Method::SmoothOut);
    let mut whole = Trainer::new(Reference::<f32>::new(), cfg.clone(), &data.train).unwrap();
    whole.run(&data, None, &mut |_| {}).unwrap();

    let dir = scratch("stop-flag");
    let files = RunFiles {
        dir: dir.to_path_buf(),
        every: None,
    };
    let stop = AtomicBool::new(false);
    let mut first = Trainer::new(Reference::<f32>::new(), cfg.clone(), &data.train).unwrap();
    assert!(17 % first.steps_per_epoch() != 0, "stop mid-epoch");
    let mut saved = Vec::new();
    let end = first
        .run_until_stopped(
            u64::MAX,
            &data,
            Some(&files),
            &mut |e| match e {
                Event::Step(s) if s.global_step == 17 => stop.store(true, Ordering::Relaxed),
                Event::Saved { step, .. } => saved.push(step),
                _ => {}
            },
            &stop,
        )
        .unwrap();
    assert_eq!(end, RunEnd::Stopped { step: 17 });
    assert_eq!(saved.last(), Some(&17));
    // Still set: no step, nothing written.
    let again = first.run_until_stopped(u64::MAX, &data, Some(&files), &mut |_| panic!(), &stop);
    assert_eq!(again.unwrap(), RunEnd::Stopped { step: 17 });
    drop(first);

    let path = dir.join(CHECKPOINT_FILE);
    let mut second = Trainer::resume(Reference::<f32>::new(), cfg, &data.train, &path).unwrap();
    assert_eq!(second.steps_done(), 17);
    second.run(&data, None, &mut |_| {}).unwrap();
    assert_same_state(&whole.checkpoint().unwrap(), &second.checkpoint().unwrap());
}

#[test]
fn resume_refuses_another_configuration() {
    let data = digits();
    let b = Reference::<f32>::new();
    let dir = scratch("refuse");
    let path = dir.join(CHECKPOINT_FILE);
    let mut t = Trainer::new(
        Reference::<f32>::new(),
        small(Method::SmoothOut),
        &data.train,
    )
    .unwrap();
    t.step(&data.train).unwrap();
    t.save(&path).unwrap();
    let mut other = small(Method::SmoothOut);
    other.a = 0.05;
    let err = Trainer::resume(Reference::<f32>::new(), other, &data.train, &path).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
    // More epochs under the same regime is the same run, extended.
    let mut longer = small(Method::SmoothOut);
    longer.epochs = 3;
    assert!(Trainer::resume(b, longer, &data.train, &path).is_ok());
}

fn smoothout_cmd(out: &Path, extra: &[&str]) -> Command {
    let mut c = crate::support::program::train_digits("adasmoothout", "mlp-32");
    c.args(["--batch", "64", "--epochs", "12", "--checkpoint-every", "3"]);
    c.args(["--threads", "2", "--out"]);
    c.arg(out).args(extra);
    c
}

const RUN: &str = "digits-mlp-32-adasmoothout-seed0";

/// Steps per epoch of [`smoothout_cmd`]'s run: the digits' training split
/// in batches of 64.
const STEPS_PER_EPOCH: u64 = (1797 - 360u64).div_ceil(64);

/// Runs [`smoothout_cmd`] into `out` with `extra` to its end and expects it
/// to succeed; returns its stderr.
fn run_to_end(out: &Path, extra: &[&str]) -> String {
    let o = smoothout_cmd(out, extra).output().expect("run smoothout");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

/// The metrics file of the run in `out` lists each of its 12 epochs once
/// (under a header line).
fn assert_every_epoch_once(out: &Path) {
    let csv = std::fs::read_to_string(out.join(RUN).join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
}

/// Starts [`smoothout_cmd`] into `out` with its stderr piped.
fn spawn(out: &Path) -> (Child, ChildStderr) {
    let mut child = smoothout_cmd(out, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smoothout");
    let stderr = child.stderr.take().expect("piped stderr");
    (child, stderr)
}

/// Whether a line of [`smoothout_cmd`]'s stderr reports a checkpoint in the
/// middle of an epoch after the first.
fn mid_epoch_checkpoint(line: &str) -> bool {
    let step = line
        .split("checkpoint at step ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse::<u64>().ok());
    step.is_some_and(|s| s > STEPS_PER_EPOCH && s % STEPS_PER_EPOCH != 0)
}

/// Kills a real training process right after a mid-epoch checkpoint of
/// its second epoch, resumes it, and compares with an uninterrupted run.
#[test]
fn killed_process_resumes_to_identical_weights() {
    let killed = scratch("killed");
    let (mut child, stderr) = spawn(&killed);
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr is text");
        seen.push(line.clone());
        if mid_epoch_checkpoint(&line) {
            child.kill().expect("kill smoothout");
            break;
        }
    }
    let status = child.wait().expect("wait for smoothout");
    assert!(
        !status.success(),
        "the process ended before it was killed: {seen:#?}"
    );
    let ckpt = killed.join(RUN).join(CHECKPOINT_FILE);
    let at_kill = load_checkpoint(&ckpt).expect("the last checkpoint is whole");
    let step: u64 = at_kill.meta("step").unwrap().parse().unwrap();
    assert!(step < 12 * STEPS_PER_EPOCH, "killed mid-run (step {step})");

    assert!(run_to_end(&killed, &["--resume"]).contains("resuming from"));

    let whole = scratch("whole");
    run_to_end(&whole, &[]);

    let a = load_checkpoint(&ckpt).unwrap();
    let b = load_checkpoint(&whole.join(RUN).join(CHECKPOINT_FILE)).unwrap();
    assert_same_state(&a, &b);
    // The same accuracies and losses every epoch (times differ).
    let history = |c: &Checkpoint| {
        history_from_str(Path::new("checkpoint"), c.meta("history").unwrap())
            .unwrap()
            .into_iter()
            .map(|m| {
                (
                    m.epoch,
                    m.step,
                    m.train_loss,
                    m.train_acc,
                    m.test_loss,
                    m.test_acc,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(history(&a), history(&b));
    assert_every_epoch_once(&killed);
}

#[test]
fn an_existing_run_is_not_overwritten_without_resume() {
    let out = scratch("exists");
    run_to_end(&out, &[]);
    let before = std::fs::read(out.join(RUN).join(CHECKPOINT_FILE)).unwrap();
    let again = smoothout_cmd(&out, &[]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    assert_eq!(
        before,
        std::fs::read(out.join(RUN).join(CHECKPOINT_FILE)).unwrap()
    );
}

/// Starts the program, sends it `signal` (`INT` or `TERM`, with `kill`)
/// right after a mid-epoch checkpoint of its second epoch, and returns its
/// exit status and everything it printed to stderr.
fn interrupt_after_a_checkpoint(out: &Path, signal: &str) -> (std::process::ExitStatus, String) {
    let (mut child, stderr) = spawn(out);
    let mut seen = Vec::new();
    let mut sent = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr is text");
        let mid = mid_epoch_checkpoint(&line);
        seen.push(line);
        if !sent && mid {
            let kill = Command::new("kill")
                .args([format!("-{signal}"), child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(kill.success(), "kill -{signal} failed");
            sent = true;
        }
    }
    let status = child.wait().expect("wait for smoothout");
    assert!(sent, "no mid-epoch checkpoint line: {seen:#?}");
    (status, seen.join("\n"))
}

/// SIGINT and SIGTERM: the process finishes its step, checkpoints, prints
/// the command that continues it and exits with 128 + the signal; that
/// command, run as printed, ends bit-identical to an uninterrupted run.
#[test]
fn interrupted_process_checkpoints_and_resumes_to_identical_weights() {
    let whole = scratch("signal-whole");
    run_to_end(&whole, &[]);
    let reference = load_checkpoint(&whole.join(RUN).join(CHECKPOINT_FILE)).unwrap();

    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let dir = scratch(&format!("signal-{signal}"));
        let (status, stderr) = interrupt_after_a_checkpoint(&dir, signal);
        assert_eq!(status.code(), Some(code), "SIG{signal}: {stderr}");
        // The checkpoint holds the step the message names, mid-run.
        let stopped: u64 = stderr
            .split("stopped at step ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no 'stopped at step' line: {stderr}"));
        let ckpt = dir.join(RUN).join(CHECKPOINT_FILE);
        let at_stop = load_checkpoint(&ckpt).expect("a whole checkpoint");
        assert_eq!(at_stop.meta("step"), Some(stopped.to_string().as_str()));
        assert!(stopped < 12 * 23, "stopped mid-run (step {stopped})");
        // The printed command line continues the run.
        let command = stderr
            .lines()
            .skip_while(|l| !l.ends_with("To continue:"))
            .nth(1)
            .unwrap_or_else(|| panic!("no resume command: {stderr}"))
            .trim();
        assert!(command.ends_with(" --resume"), "{command}");
        assert!(command.contains(crate::support::program::BIN), "{command}");
        let resumed = Command::new("sh")
            .args(["-c", command])
            .output()
            .expect("run the printed command");
        assert!(
            resumed.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming from"));
        assert_same_state(&load_checkpoint(&ckpt).unwrap(), &reference);
        assert_every_epoch_once(&dir);
    }
}

/// A second SIGINT while the first is being honoured ends the process at
/// once, with status 130, without finishing the step under way.
#[test]
fn a_second_interrupt_exits_at_once() {
    let out = scratch("second-signal");
    // Long steps (one per epoch, seconds each in a test build), so that
    // both signals land inside the second step.
    let mut child = crate::support::program::train_digits("baseline", "mlp-512-512")
        .args([
            "--batch",
            "1437",
            "--epochs",
            "3",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&*out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smoothout");
    let interrupt = |pid: u32| {
        let kill = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
    };
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr is text");
        let first_epoch = line.contains("epoch   1");
        seen.push(line);
        if first_epoch {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("epoch   1")),
        "{seen:#?}"
    );
    // Let the files of epoch 1 be written (metrics.csv comes last) and
    // step 2 begin: a first signal during the writes would stop the run
    // gracefully before step 2.
    let run = out.join("digits-mlp-512-512-baseline-seed0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !run.join("metrics.csv").exists() {
        assert!(std::time::Instant::now() < deadline, "no metrics.csv");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    interrupt(child.id());
    std::thread::sleep(std::time::Duration::from_millis(200));
    interrupt(child.id());
    seen.extend(lines.map(|l| l.expect("stderr is text")));
    let status = child.wait().expect("wait for smoothout");
    let seen = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(!seen.contains("epoch   2"), "the step was finished: {seen}");
    assert!(
        !seen.contains("stopped at step"),
        "it stopped gracefully: {seen}"
    );
    // The checkpoint of epoch 1 is whole.
    let ckpt = load_checkpoint(&run.join(CHECKPOINT_FILE)).expect("the checkpoint of epoch 1");
    assert_eq!(ckpt.meta("step"), Some("1"));
}
