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

/// The file and log of the typed compile error that `source`, declaring
/// `kernels`, gives as `file` for `compute_90`; `None` when the test skips.
fn compile_error(
    file: &'static str,
    source: &'static str,
    kernels: &'static [&'static str],
) -> Option<(&'static str, String)> {
    if !nvrtc_available() {
        return None;
    }
    let module = Module {
        file,
        source,
        kernels,
    };
    match kernels::compile(&module, "compute_90") {
        Err(CudaError::Compile { file, log, .. }) => Some((file, log)),
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn a_kernel_that_does_not_compile_is_a_typed_error_with_the_log() {
    let source = "extern \"C\" __global__ void k(float *x) { x[0] = undeclared; }";
    if let Some((file, log)) = compile_error("broken.cu", source, &["k"]) {
        assert_eq!(file, "broken.cu");
        assert!(log.contains("undeclared"), "{log}");
    }
}

#[test]
fn a_missing_kernel_is_a_typed_error() {
    let source = "extern \"C\" __global__ void present(float *x) { x[0] = 1.0f; }";
    if let Some((_, log)) = compile_error("incomplete.cu", source, &["present", "absent"]) {
        assert!(log.contains("absent"), "{log}");
    }
}
