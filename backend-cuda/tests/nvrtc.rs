//! Every kernel file compiles with NVRTC, which needs no GPU: CI fetches
//! libnvrtc (scripts/fetch-nvrtc.sh) and sets SMOOTHOUT_REQUIRE_NVRTC=1, so
//! that a kernel that does not compile fails CI instead of skipping.

use smoothout_cuda::kernels::{self, Module};
use smoothout_cuda::{probe, CudaError, Library};

/// `true` when NVRTC can be loaded; otherwise prints why the test skips,
/// or panics when CI requires NVRTC.
fn nvrtc_available() -> bool {
    match probe(Library::Nvrtc) {
        Ok(()) => true,
        Err(e) if std::env::var_os("SMOOTHOUT_REQUIRE_NVRTC").is_some() => {
            panic!("SMOOTHOUT_REQUIRE_NVRTC is set but NVRTC is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            false
        }
    }
}

#[test]
fn every_kernel_file_compiles_to_ptx() {
    if !nvrtc_available() {
        return;
    }
    let compiled = kernels::compile_all().unwrap_or_else(|e| panic!("{e}"));
    for (file, arch, bytes) in &compiled {
        eprintln!("{file} for {arch}: {bytes} bytes of PTX");
        assert!(*bytes > 0);
    }
    assert_eq!(
        compiled.len(),
        kernels::MODULES.len() * kernels::CHECK_ARCHS.len()
    );
}

#[test]
fn a_kernel_that_does_not_compile_is_a_typed_error_with_the_log() {
    if !nvrtc_available() {
        return;
    }
    let broken = Module {
        file: "broken.cu",
        source: "extern \"C\" __global__ void k(float *x) { x[0] = undeclared; }",
        kernels: &["k"],
    };
    match kernels::compile(&broken, "compute_90") {
        Err(CudaError::Compile { file, log, .. }) => {
            assert_eq!(file, "broken.cu");
            assert!(log.contains("undeclared"), "{log}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn a_missing_kernel_is_a_typed_error() {
    if !nvrtc_available() {
        return;
    }
    let incomplete = Module {
        file: "incomplete.cu",
        source: "extern \"C\" __global__ void present(float *x) { x[0] = 1.0f; }",
        kernels: &["present", "absent"],
    };
    match kernels::compile(&incomplete, "compute_90") {
        Err(CudaError::Compile { log, .. }) => assert!(log.contains("absent"), "{log}"),
        other => panic!("expected a compile error, got {other:?}"),
    }
}
