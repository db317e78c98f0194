//! On a GPU: every backend body of `smoothout::testgen` (noise, perturb,
//! de-noise, AdaSmoothOut scales, the fused update, buffers, the whole
//! SmoothOut step) bit for bit against the reference, and uniform noise
//! bit for bit against the CPU backend. Without a GPU every test prints
//! `skipped: <reason>` and passes.

use std::sync::OnceLock;

use smoothout::{BufferOps, Noise, NoiseKey, NoiseOps};
use smoothout_cuda::Cuda;

/// The process's backend (created once: compiling the kernels takes a
/// moment), or why there is none.
fn gpu() -> Result<Cuda, String> {
    static GPU: OnceLock<Result<Cuda, String>> = OnceLock::new();
    GPU.get_or_init(|| {
        smoothout_cuda::standin::test_backend(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    })
    .clone()
}

/// The GPU backend, or `None` after printing why the test is skipped.
fn gpu_or_skip() -> Option<Cuda> {
    gpu().map_err(|e| eprintln!("skipped: {e}")).ok()
}

fn upload(v: Vec<f32>) -> <Cuda as smoothout::BackendTypes>::Buffer {
    gpu()
        .expect("a test body only runs once the backend exists")
        .upload(&v)
        .expect("upload")
}

smoothout::backend_tests!(try cuda, gpu(), upload);

#[test]
fn uniform_noise_equals_the_cpu_backend() {
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    let cpu = smoothout_cpu::Cpu::<f32>::with_threads(2).expect("cpu backend");
    let noise = Noise::uniform(0.05).expect("valid");
    // Sizes around the 4-element Philox block and the CPU's chunks.
    for (param, len) in [
        (0u64, 1usize),
        (1, 5),
        (2, 4099),
        ((1 << 40) + 3, (1 << 20) + 3),
    ] {
        for step in [0u64, 1, 1_000_000] {
            let key = NoiseKey::for_draw(42, step, 0, param);
            let mut g = gpu.zeros(len).expect("zeros");
            gpu.fill_noise(key, &noise, &mut g).expect("gpu noise");
            let mut c = cpu.zeros(len).expect("zeros");
            cpu.fill_noise(key, &noise, &mut c).expect("cpu noise");
            let (g, c) = (
                gpu.to_vec(&g).expect("download"),
                cpu.to_vec(&c).expect("copy"),
            );
            let differing = g
                .iter()
                .zip(&c)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differing, 0,
                "param {param}, step {step}, {len} elements: {differing} differ"
            );
        }
    }
}

#[test]
fn missing_device_is_a_typed_error() {
    match Cuda::with_device(usize::MAX) {
        Err(smoothout_cuda::CudaError::NoDevice { ordinal, .. }) => assert_eq!(ordinal, usize::MAX),
        // Without a driver or NVRTC the probe reports that first.
        Err(smoothout_cuda::CudaError::MissingLibrary { library, searched }) => {
            eprintln!("probe reported {library:?} missing (searched {searched:?})");
            assert!(!searched.is_empty());
        }
        other => panic!("expected NoDevice or MissingLibrary, got {other:?}"),
    }
}

#[test]
fn from_stream_runs_on_the_given_stream_with_the_same_bits() {
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    let noise = Noise::uniform(0.05).expect("valid");
    let key = NoiseKey::for_draw(7, 3, 0, 11);
    let len = 4099;
    let mut want = gpu.zeros(len).expect("zeros");
    gpu.fill_noise(key, &noise, &mut want).expect("noise");
    let want = gpu.to_vec(&want).expect("download");
    // On the backend's own stream (as on candle's: one stream, two users),
    // and on a second stream of the same context.
    let other = gpu
        .stream()
        .context()
        .new_stream()
        .expect("a second stream");
    for stream in [gpu.stream().clone(), other] {
        let shared = Cuda::from_stream(stream.clone()).expect("from_stream");
        assert!(std::sync::Arc::ptr_eq(shared.stream(), &stream));
        assert_eq!(shared.arch(), gpu.arch());
        let mut got = shared.zeros(len).expect("zeros");
        shared.fill_noise(key, &noise, &mut got).expect("noise");
        let got = shared.to_vec(&got).expect("download");
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "from_stream's noise differs from new()'s"
        );
    }
}
