//! F1 with AdaSmoothOut on MNIST, on the backend chosen at compile time: the
//! GPU with `--features cuda`, the CPU otherwise. The README's "On a GPU"
//! section shows these lines.
//!
//! ```text
//! scripts/fetch-data.sh mnist
//! cargo run --release -p smoothout-models --features cuda --example on_device
//! ```

use smoothout_models::train::{Method, Network, TrainConfig, Trainer};

#[cfg(feature = "cuda")]
type Device = smoothout_cuda::Cuda;
#[cfg(not(feature = "cuda"))]
type Device = smoothout_cpu::Cpu<f32>;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::new()?; // CudaError / CpuError say what is missing
    let data = smoothout_models::data::load_mnist("data")?;
    let config = TrainConfig::new(Method::AdaSmoothOut, Network::F1).with_epochs(1);
    let mut trainer = Trainer::new(device, config, &data.train)?;
    let history = trainer.run(&data, None, &mut |_event| {})?;
    println!("test accuracy {:.2}%", 100.0 * history[0].test_acc);
    Ok(())
}
