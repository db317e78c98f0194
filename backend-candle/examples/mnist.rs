//! F1 on MNIST in candle-nn, trained with SmoothOut around a momentum SGD
//! written here as its own `candle_nn::Optimizer`.
//!
//! ```sh
//! scripts/fetch-data.sh mnist
//! cargo run --release -p smoothout-candle --example mnist            # SmoothOut, a = 0.0375
//! cargo run --release -p smoothout-candle --example mnist -- --plain # the same without noise
//! cargo run --release -p smoothout-candle --example mnist -- --ada   # AdaSmoothOut, a = 0.15
//! ```
//!
//! As the project's trainer (`cargo smoothout train --dataset mnist`):
//! batch 256, 10 epochs, SGD momentum 0.9, lr 0.1 → 0.01 (epoch 5) → 0.001
//! (epoch 7), inputs standardised with the training set's mean and std, a
//! fresh permutation each epoch, seed 0 (initialisation, data order and
//! noise; candle's own CPU generator cannot be seeded, so the Linear layers
//! are re-initialised from the seed). Options: `--epochs N`, `--batch N`,
//! `--a A`, `--seed S`, `--data DIR` (default: the repository's `data/`).

mod f1;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{loss::cross_entropy, Optimizer, VarBuilder, VarMap};
use smoothout::{Config, Draw, Noise, Scaling};
use smoothout_candle::SmoothOut;
use smoothout_models::data::{load_mnist, permutation, Dataset, Normalize};

use f1::{MomentumConfig, MomentumSgd, F1};

struct Options {
    method: Method,
    epochs: usize,
    batch: usize,
    a: Option<f64>,
    seed: u64,
    data: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Plain,
    SmoothOut,
    AdaSmoothOut,
}

fn options() -> Result<Options, Box<dyn Error>> {
    let mut o = Options {
        method: Method::SmoothOut,
        epochs: 10,
        batch: 256,
        a: None,
        seed: 0,
        data: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--plain" => o.method = Method::Plain,
            "--ada" => o.method = Method::AdaSmoothOut,
            "--epochs" => o.epochs = value()?.parse()?,
            "--batch" => o.batch = value()?.parse()?,
            "--a" => o.a = Some(value()?.parse()?),
            "--seed" => o.seed = value()?.parse()?,
            "--data" => o.data = value()?.into(),
            other => {
                return Err(format!("unknown option {other} (see the example's header)").into())
            }
        }
    }
    Ok(o)
}

/// Images standardised with `norm`, `[n, 784]` f32, and labels `[n]` u32.
fn tensors(
    set: &Dataset,
    norm: &Normalize,
    dev: &Device,
) -> Result<(Tensor, Tensor), Box<dyn Error>> {
    let mut x = set.to_f32();
    norm.apply(&mut x, set.image_shape())?;
    let x = Tensor::from_vec(x, (set.len(), set.image_len()), dev)?;
    let y: Vec<u32> = set.labels().iter().map(|&l| u32::from(l)).collect();
    Ok((x, Tensor::from_vec(y, set.len(), dev)?))
}

/// Test accuracy in evaluation mode (BatchNorm's running statistics).
fn accuracy(model: &F1, x: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let n = x.dim(0)?;
    let mut correct = 0u64;
    for start in (0..n).step_by(1000) {
        let len = 1000.min(n - start);
        let pred = model
            .forward_t(&x.narrow(0, start, len)?, false)?
            .argmax(1)?;
        let hits = pred.eq(&y.narrow(0, start, len)?)?.to_dtype(DType::U32)?;
        correct += u64::from(hits.sum_all()?.to_scalar::<u32>()?);
    }
    Ok(correct as f64 / n as f64)
}

fn main() -> Result<(), Box<dyn Error>> {
    let o = options()?;
    let dev = Device::Cpu;
    let split =
        load_mnist(&o.data).map_err(|e| format!("{e}\n(run scripts/fetch-data.sh mnist)"))?;
    let norm = Normalize::fit(&split.train)?;
    let (train_x, train_y) = tensors(&split.train, &norm, &dev)?;
    let (test_x, test_y) = tensors(&split.test, &norm, &dev)?;

    let varmap = VarMap::new();
    let model = F1::new(&VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    f1::init_seeded(&varmap, o.seed)?;
    let sgd = MomentumConfig {
        lr: 0.1,
        momentum: 0.9,
    };

    // The only SmoothOut-specific lines: the configuration and the wrapper.
    let (a, scaling) = match o.method {
        Method::AdaSmoothOut => (o.a.unwrap_or(0.15), Scaling::FilterNorm),
        _ => (o.a.unwrap_or(0.0375), Scaling::Fixed),
    };
    let config = Config::new(Noise::uniform(a)?)
        .with_scaling(scaling)
        .with_seed(o.seed);
    let mut opt = SmoothOut::<MomentumSgd>::from_varmap(&varmap, config, sgd)?;
    let noisy = o.method != Method::Plain;
    println!(
        "F1 on MNIST (candle 0.11, smoothout-candle {}), {:?}{}, batch {}, {} epochs, seed {}",
        env!("CARGO_PKG_VERSION"),
        o.method,
        if noisy {
            format!(" (a = {a})")
        } else {
            String::new()
        },
        o.batch,
        o.epochs,
        o.seed
    );

    let n = split.train.len();
    let started = Instant::now();
    let mut step = 0u64;
    let mut last = 0.0;
    for epoch in 0..o.epochs {
        // ÷10 at 50% and at 75% of the epochs (5 and 7 of 10).
        let drops = usize::from(epoch >= o.epochs / 2) + usize::from(epoch >= 3 * o.epochs / 4);
        let lr = [0.1, 0.01, 0.001][drops];
        opt.set_learning_rate(lr);
        let order: Vec<u32> = permutation(n, o.seed.wrapping_add(epoch as u64))
            .into_iter()
            .map(|i| i as u32)
            .collect();
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(o.batch) {
            let idx = Tensor::new(chunk, &dev)?;
            let (x, y) = (
                train_x.index_select(&idx, 0)?,
                train_y.index_select(&idx, 0)?,
            );
            if noisy {
                opt.perturb(Draw::new(step, 0))?;
            }
            let loss = cross_entropy(&model.forward_t(&x, true)?, &y)?;
            opt.backward_step(&loss)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?);
            batches += 1;
            step += 1;
        }
        last = accuracy(&model, &test_x, &test_y)?;
        println!(
            "epoch {:>2}  lr {lr:<6}  train loss {:.4}  test accuracy {:.2}%  {:.0} s",
            epoch + 1,
            loss_sum / batches as f64,
            100.0 * last,
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "final test accuracy {:.2}% after {} epochs, {:.1} s",
        100.0 * last,
        o.epochs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
