//! `smoothout train --device cuda` as a user runs it: one epoch on the
//! built-in digits, plain, with AdaSmoothOut, SAM, ASAM, RWP and m-RWP,
//! against the same command with `--device cpu`. Without a GPU the program runs through the CPU
//! stand-in for the driver and cuBLAS (`SMOOTHOUT_CUDA_STANDIN`), so its
//! whole CUDA path — device selection, uploads, every kernel and cuBLAS
//! call, the checkpoint read back from the device — runs in every CI run.
//!
//! Each tensor is compared with the CPU run's. The runs are free-running
//! (3 SGD steps each), so no single row of the README's GPU/CPU table
//! bounds the end result, and the bound here is an estimate built from
//! the table's GEMM row rather than a derivation: `2(k+2)ε` relative, with
//! `k` the longest sum (the 512-example batch of the weight gradient),
//! summed over the steps and doubled for the momentum that carries each
//! step's difference into the next, relative to the tensor's largest
//! value: `|Δw| ≤ 2 · steps · 2(k+2)ε · max|w|`, times the passes per step
//! for SAM, ASAM and m-RWP (the second pass starts from the first's
//! gradient). The largest difference
//! measured is 1.2·10⁻⁷ (one `f32` ulp of a BatchNorm weight near 1),
//! about 10⁻⁴ of the bound. That the bound still
//! has power is checked too: the baseline's and AdaSmoothOut's weights
//! after the same epoch lie further apart than the bound in every weight
//! matrix, so a CUDA path that lost the perturbation, the de-noising or a
//! step would fail. Everything the table calls bit-identical (noise,
//! perturbation, de-noising) enters through the weights and is not
//! separable at the end.
#![cfg(feature = "cuda")]

mod program_support;

use std::path::Path;
use std::process::Command;

use program_support::scratch;
use smoothout_models::train::{load_checkpoint, TensorData};

/// Runs `smoothout train` on `device` into `out`; panics with its output
/// when it fails.
fn train(device: &str, out: &Path, standin: &Path) {
    let out_arg = out.to_str().expect("utf-8 path");
    let result = Command::new(env!("CARGO_BIN_EXE_smoothout-cli"))
        .args([
            "train",
            "--device",
            device,
            "--method",
            "baseline,adasmoothout,sam,asam,rwp,mrwp",
            "--seed",
            "0",
            "--epochs",
            "1",
            "--no-measure",
            "--out",
            out_arg,
        ])
        .env(smoothout_cuda::standin::ENV, standin)
        .output()
        .expect("run smoothout");
    assert!(
        result.status.success(),
        "smoothout train --device {device} failed:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    if device == "cuda" {
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            stderr.contains("CUDA device 0: "),
            "the program does not say which CUDA device it uses:\n{stderr}"
        );
    }
}

/// The largest `|a|` and the largest `|a − b|`, elementwise.
fn scale_and_gap(a: &[f64], b: &[f64]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0f64, 0.0f64), |(s, d), (x, y)| {
        (s.max(x.abs()), d.max((x - y).abs()))
    })
}

fn values(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::F64(v) => v.clone(),
    }
}

#[test]
fn one_digits_epoch_on_cuda_matches_the_cpu_run() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // The stand-in is built here (or a real GPU found); the program builds
    // nothing more, finding the same directory through the variable.
    if let Err(why) = smoothout_cuda::standin::test_backend(tmp) {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch("program-cuda");
    let (cuda_out, cpu_out) = (dir.join("cuda"), dir.join("cpu"));
    train("cuda", &cuda_out, tmp);
    train("cpu", &cpu_out, tmp);
    let steps = 3.0; // 1 437 digits in batches of 512
    let k = 512.0;
    let rel = 2.0 * steps * 2.0 * (k + 2.0) * f64::from(f32::EPSILON);
    let mut compared = 0;
    let mut cpu_runs = Vec::new();
    for (run, passes) in [
        ("baseline-seed0", 1.0),
        ("adasmoothout-seed0", 1.0),
        ("-sam-seed0", 2.0),
        ("asam-seed0", 2.0),
        ("-rwp-seed0", 1.0),
        ("mrwp-seed0", 2.0),
    ] {
        let rel = rel * passes;
        let find = |root: &Path| {
            std::fs::read_dir(root)
                .expect("runs")
                .map(|e| e.expect("entry").path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(run))
                })
                .unwrap_or_else(|| panic!("no run directory for {run} under {root:?}"))
                .join("checkpoint.safetensors")
        };
        let (gpu, cpu) = (
            load_checkpoint(&find(&cuda_out)).expect("cuda checkpoint"),
            load_checkpoint(&find(&cpu_out)).expect("cpu checkpoint"),
        );
        assert_eq!(gpu.tensors.len(), cpu.tensors.len(), "{run}: tensor count");
        for (name, shape, data) in &cpu.tensors {
            if name.starts_with("velocity") || name.starts_with("optim") {
                continue;
            }
            let (gshape, gdata) = gpu
                .tensor(name)
                .unwrap_or_else(|| panic!("{run}: {name} missing from the cuda run"));
            assert_eq!(gshape, shape.as_slice(), "{run}: {name} shape");
            let (scale, worst) = scale_and_gap(&values(data), &values(gdata));
            eprintln!(
                "{run} {name}: max |Δ| {worst:.3e}, bound {:.3e}",
                rel * scale
            );
            assert!(
                worst <= rel * scale,
                "{run}: {name}: max |cuda − cpu| {worst:e} over the bound {:e}",
                rel * scale
            );
            compared += 1;
        }
        cpu_runs.push(cpu);
    }
    assert!(compared >= 24, "only {compared} tensors compared");
    let (plain, ada) = (&cpu_runs[0], &cpu_runs[1]);
    // (the power check: baseline against AdaSmoothOut, at the one-pass bound)
    for (name, _, data) in &plain.tensors {
        if !(name.starts_with("param.fc") && name.ends_with(".weight")) {
            continue;
        }
        let other = ada.tensor(name).expect("same tensors").1;
        let (scale, apart) = scale_and_gap(&values(data), &values(other));
        eprintln!(
            "baseline vs adasmoothout {name}: max |Δ| {apart:.3e}, bound {:.3e}",
            rel * scale
        );
        assert!(
            apart > rel * scale,
            "{name}: the two methods' weights are within the bound ({apart:e}): it cannot tell them apart"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
