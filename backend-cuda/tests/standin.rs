//! The CPU stand-in for the driver and cuBLAS (`smoothout_cuda::standin`)
//! against what the real libraries do: its device, the error code of each
//! misuse the real driver rejects (named, as cudarc reports it), and
//! cuBLAS's column-major GEMM semantics computed here from their
//! definition.
//!
//! These tests are about the stand-in: where a real GPU is present (the
//! stand-in is then not loaded), or where the stand-in cannot be built
//! (no `c++`, no NVRTC), each prints `skipped: <reason>` and passes — except
//! in CI, where `SMOOTHOUT_REQUIRE_NVRTC` makes a missing stand-in a failure.

use std::sync::{Arc, OnceLock};

use cudarc::cublas::result as blas;
use cudarc::cublas::sys::{cublasOperation_t as Op, cublasStatus_t as Status};
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::{CUdevice_attribute as Attr, CUresult};
use cudarc::driver::{result, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use smoothout_cuda::{kernels, standin, Cuda};

/// The backend on the stand-in, or why these tests are skipped.
fn standin() -> Option<&'static Cuda> {
    static GPU: OnceLock<Result<Cuda, String>> = OnceLock::new();
    let gpu = GPU.get_or_init(|| {
        let gpu = standin::test_backend(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))?;
        let name = gpu.device_name().map_err(|e| e.to_string())?;
        if name == standin::DEVICE_NAME {
            Ok(gpu)
        } else {
            Err(format!(
                "a real GPU ({name}) is present: the stand-in is not loaded"
            ))
        }
    });
    match gpu {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn stream(gpu: &Cuda) -> &Arc<CudaStream> {
    let s = gpu.stream();
    s.context().bind_to_thread().expect("bind the context");
    s
}

/// The driver's name for a failure, through `cuGetErrorName`.
fn name(e: &result::DriverError) -> String {
    e.error_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0))
}

#[track_caller]
fn expect_code<T: std::fmt::Debug>(got: Result<T, result::DriverError>, want: CUresult) {
    match got {
        Err(e) => assert_eq!(e.0, want, "got {}", name(&e)),
        Ok(v) => panic!("expected {want:?}, got Ok({v:?})"),
    }
}

#[test]
fn the_device_is_the_stand_in_with_its_stated_limits() {
    let Some(gpu) = standin() else { return };
    assert_eq!(gpu.arch(), "compute_90");
    let ctx = stream(gpu).context();
    for (attr, want) in [
        (Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1024),
        (Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 1024),
        (Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, 64),
        (Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, i32::MAX),
        (Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, 65535),
        (
            Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK,
            48 * 1024,
        ),
        (Attr::CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32),
        (Attr::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 1),
    ] {
        assert_eq!(ctx.attribute(attr).expect("attribute"), want, "{attr:?}");
    }
    expect_code(
        ctx.attribute(Attr::CU_DEVICE_ATTRIBUTE_CLOCK_RATE),
        CUresult::CUDA_ERROR_INVALID_VALUE,
    );
}

#[test]
fn a_zero_byte_cumemalloc_is_invalid_value_and_async_gives_null() {
    let Some(gpu) = standin() else { return };
    let s = stream(gpu);
    // SAFETY: plain driver calls on the bound context.
    unsafe {
        expect_code(result::malloc_sync(0), CUresult::CUDA_ERROR_INVALID_VALUE);
        let p = result::malloc_async(s.cu_stream(), 0).expect("async zero bytes");
        assert_eq!(p, 0);
        result::free_async(p, s.cu_stream()).expect("free the null pointer");
        let p = result::malloc_sync(12).expect("12 bytes");
        result::free_sync(p).expect("free");
        expect_code(result::free_sync(p), CUresult::CUDA_ERROR_INVALID_VALUE);
    }
}

#[test]
fn calls_without_a_current_context_are_invalid_context() {
    let Some(_) = standin() else { return };
    std::thread::spawn(|| {
        // SAFETY: a plain driver call; this new thread has no context.
        expect_code(
            unsafe { result::malloc_sync(4) },
            CUresult::CUDA_ERROR_INVALID_CONTEXT,
        );
    })
    .join()
    .expect("thread");
}

#[test]
fn copies_and_memsets_past_an_allocation_are_invalid_value() {
    let Some(gpu) = standin() else { return };
    let s = stream(gpu);
    let mut a: CudaSlice<f32> = s.alloc_zeros(16).expect("alloc");
    let b: CudaSlice<f32> = s.alloc_zeros(16).expect("alloc");
    let (pa, pb) = (raw(&mut a, s), raw_ref(&b, s));
    let host17 = [1.0f32; 17];
    let mut back17 = [0.0f32; 17];
    // SAFETY: driver calls on live allocations of 64 bytes; the failing
    // ones are rejected before any byte moves.
    unsafe {
        result::memcpy_htod_sync(pa, &host17[..16]).expect("16 elements fit");
        expect_code(
            result::memcpy_htod_sync(pa, &host17),
            CUresult::CUDA_ERROR_INVALID_VALUE,
        );
        expect_code(
            result::memcpy_htod_sync(pa + 4, &host17[..16]),
            CUresult::CUDA_ERROR_INVALID_VALUE,
        );
        expect_code(
            result::memcpy_dtoh_sync(&mut back17, pa),
            CUresult::CUDA_ERROR_INVALID_VALUE,
        );
        expect_code(
            result::memcpy_dtod_sync(pb, pa, 17 * 4),
            CUresult::CUDA_ERROR_INVALID_VALUE,
        );
        expect_code(
            result::memset_d8_sync(pa + 1, 0, 64),
            CUresult::CUDA_ERROR_INVALID_VALUE,
        );
        result::memcpy_dtod_sync(pb, pa, 64).expect("a whole copy");
        result::memcpy_dtoh_sync(&mut back17[..16], pb).expect("read back");
    }
    assert!(back17[..16].iter().all(|&x| x == 1.0));
}

/// A buffer's device pointer (the view's record guard dropped at once:
/// event tracking is off on the backend's context).
fn raw(buf: &mut CudaSlice<f32>, s: &Arc<CudaStream>) -> u64 {
    use cudarc::driver::DevicePtrMut;
    buf.device_ptr_mut(s).0
}

fn raw_ref(buf: &CudaSlice<f32>, s: &Arc<CudaStream>) -> u64 {
    use cudarc::driver::DevicePtr;
    buf.device_ptr(s).0
}

/// `axpy(float alpha, const float *x, float *y, u64 n)` from noise.cu,
/// loaded through the driver from NVRTC's PTX.
fn axpy(gpu: &Cuda) -> CudaFunction {
    let ptx = kernels::compile(&kernels::MODULES[0], gpu.arch()).expect("compile noise.cu");
    let module = stream(gpu)
        .context()
        .load_module(ptx)
        .expect("load the PTX");
    module.load_function("axpy").expect("axpy")
}

fn cfg(grid: (u32, u32, u32), block: (u32, u32, u32), shared: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: block,
        shared_mem_bytes: shared,
    }
}

#[test]
fn launches_run_the_kernel_and_misuse_gets_the_drivers_codes() {
    let Some(gpu) = standin() else { return };
    let s = stream(gpu);
    let f = axpy(gpu);
    let n = 1000u64;
    let x = s.clone_htod(&vec![2.0f32; 1000]).expect("x");
    let mut y = s.clone_htod(&vec![1.0f32; 1000]).expect("y");
    let alpha = 0.5f32;
    let launch = |c: LaunchConfig, y: &mut CudaSlice<f32>| {
        let mut l = s.launch_builder(&f);
        l.arg(&alpha).arg(&x).arg(y).arg(&n);
        // SAFETY: axpy's parameters, in order, on buffers of n elements.
        unsafe { l.launch(c) }.map(drop)
    };
    launch(cfg((4, 1, 1), (256, 1, 1), 0), &mut y).expect("a valid launch");
    assert!(s.clone_dtoh(&y).expect("y").iter().all(|&v| v == 2.0));
    launch(cfg((1, 1, 1), (1024, 1, 1), 0), &mut y).expect("1024 threads");
    assert!(s.clone_dtoh(&y).expect("y").iter().all(|&v| v == 3.0));
    for (c, what) in [
        (cfg((1, 1, 1), (2048, 1, 1), 0), "2048 threads per block"),
        (
            cfg((1, 1, 1), (32, 32, 2), 0),
            "2048 threads in a 3-D block",
        ),
        (cfg((1, 1, 1), (1, 1, 65), 0), "block z over 64"),
        (cfg((0, 1, 1), (256, 1, 1), 0), "an empty grid"),
        (cfg((1, 65536, 1), (256, 1, 1), 0), "grid y over 65535"),
        (
            cfg((1, 1, 1), (256, 1, 1), 48 * 1024 + 1),
            "shared memory over 48 KiB",
        ),
    ] {
        match launch(c, &mut y) {
            Err(e) => assert_eq!(
                e.0,
                CUresult::CUDA_ERROR_INVALID_VALUE,
                "{what}: {}",
                name(&e)
            ),
            Ok(()) => panic!("{what}: launched"),
        }
    }
    // A pointer argument that is no device allocation: a host address, and
    // the end of y.
    let host = [0.0f32; 4];
    for bad in [host.as_ptr() as u64, raw(&mut y, s) + 4 * n] {
        let mut l = s.launch_builder(&f);
        l.arg(&alpha).arg(&bad).arg(&mut y).arg(&n);
        // SAFETY: rejected before the kernel runs.
        expect_code(
            unsafe { l.launch(cfg((1, 1, 1), (256, 1, 1), 0)) }.map(drop),
            CUresult::CUDA_ERROR_ILLEGAL_ADDRESS,
        );
    }
    assert!(s.clone_dtoh(&y).expect("y").iter().all(|&v| v == 3.0));
}

#[test]
fn modules_are_ptx_and_functions_are_found_by_name() {
    let Some(gpu) = standin() else { return };
    let ctx = stream(gpu).context().clone();
    let ptx = kernels::compile(&kernels::MODULES[0], gpu.arch()).expect("compile");
    let module = ctx.load_module(ptx).expect("load");
    match module.load_function("no_such_kernel") {
        Err(e) => assert_eq!(e.0, CUresult::CUDA_ERROR_NOT_FOUND, "{}", name(&e)),
        Ok(_) => panic!("found a kernel that does not exist"),
    }
    // Static shared memory is read from the PTX: channel_partials keeps
    // 256 doubles (2 KiB), so 46 KiB + 1 byte of dynamic shared memory
    // takes the launch over 48 KiB.
    let tensor = kernels::compile(&kernels::MODULES[1], gpu.arch()).expect("compile tensor.cu");
    let partials = ctx
        .load_module(tensor)
        .expect("load")
        .load_function("channel_partials")
        .expect("channel_partials");
    let s = stream(gpu);
    let mut l = s.launch_builder(&partials);
    let zero = 0u64;
    for _ in 0..8 {
        l.arg(&zero);
    }
    // SAFETY: rejected before the kernel runs (its arguments are dummies).
    expect_code(
        unsafe { l.launch(cfg((1, 1, 1), (256, 1, 1), 46 * 1024 + 1)) }.map(drop),
        CUresult::CUDA_ERROR_INVALID_VALUE,
    );
    match ctx.load_module(cudarc::nvrtc::Ptx::from_src("\u{7f}ELF, not PTX")) {
        Err(e) => assert_eq!(e.0, CUresult::CUDA_ERROR_INVALID_IMAGE, "{}", name(&e)),
        Ok(_) => panic!("loaded an image that is not PTX"),
    }
}

// ---- cuBLAS -------------------------------------------------------------------

/// Deterministic values in [-1, 1) with a few exact zeros.
fn values(len: usize, salt: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| {
            let h = (i ^ salt.rotate_left(16)).wrapping_mul(0x9E37_79B9) ^ salt;
            let h = h ^ (h >> 15);
            ((h % 2001) as f32 - 1000.0) / 1000.0
        })
        .collect()
}

/// cuBLAS's definition, computed here: C[i + j ldc] = α Σ_p op(A)[i,p]
/// op(B)[p,j] + β C[i + j ldc] for i < m, j < n (β = 0: the old C is not
/// read), op(A)[i,p] = A[i + p lda] (N) or A[p + i lda] (T); the sum in f64
/// in order p, rounded once. Elements of C outside the m × n block are left.
#[allow(clippy::too_many_arguments)]
fn gemm_by_definition(
    ta: bool,
    tb: bool,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    for j in 0..n {
        for i in 0..m {
            let mut acc = 0.0f64;
            for p in 0..k {
                let av = if ta { a[p + i * lda] } else { a[i + p * lda] };
                let bv = if tb { b[j + p * ldb] } else { b[p + j * ldb] };
                acc += f64::from(av) * f64::from(bv);
            }
            let mut v = f64::from(alpha) * acc;
            if beta != 0.0 {
                v += f64::from(beta) * f64::from(c[i + j * ldc]);
            }
            c[i + j * ldc] = v as f32;
        }
    }
}

#[track_caller]
fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (idx, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: C[{idx}] {g} vs {w}");
    }
}

fn op(t: bool) -> Op {
    if t {
        Op::CUBLAS_OP_T
    } else {
        Op::CUBLAS_OP_N
    }
}

#[test]
fn sgemm_follows_cublas_column_major_semantics() {
    let Some(gpu) = standin() else { return };
    let s = stream(gpu);
    let handle = CudaBlas::new(s.clone()).expect("cuBLAS handle");
    let (m, n, k) = (3usize, 4usize, 5usize);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for (alpha, beta) in [(1.0f32, 0.0f32), (-0.75, 0.5)] {
            // Leading dimensions two larger than needed: the padding must
            // be neither read as data nor written.
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let (lda, ldb, ldc) = (ar + 2, br + 2, m + 2);
            let a = values(lda * ac, 1);
            let b = values(ldb * bc, 2);
            let mut c = values(ldc * n, 3);
            if beta == 0.0 {
                c[0] = f32::NAN; // not read when β = 0
            }
            let mut want = c.clone();
            gemm_by_definition(
                ta,
                tb,
                (m, n, k),
                alpha,
                &a,
                lda,
                &b,
                ldb,
                beta,
                &mut want,
                ldc,
            );
            let (da, db) = (s.clone_htod(&a).expect("a"), s.clone_htod(&b).expect("b"));
            let mut dc = s.clone_htod(&c).expect("c");
            // SAFETY: each matrix's extent lies in its buffer.
            unsafe {
                blas::sgemm(
                    *handle.handle(),
                    op(ta),
                    op(tb),
                    m as i32,
                    n as i32,
                    k as i32,
                    &alpha,
                    raw_ref(&da, s) as *const f32,
                    lda as i32,
                    raw_ref(&db, s) as *const f32,
                    ldb as i32,
                    &beta,
                    raw(&mut dc, s) as *mut f32,
                    ldc as i32,
                )
            }
            .expect("sgemm");
            let got = s.clone_dtoh(&dc).expect("c");
            assert_same_bits(&got, &want, &format!("ta {ta} tb {tb} α {alpha} β {beta}"));
        }
    }
}

#[test]
fn strided_batched_sgemm_is_one_sgemm_per_batch() {
    let Some(gpu) = standin() else { return };
    let s = stream(gpu);
    let handle = CudaBlas::new(s.clone()).expect("cuBLAS handle");
    let (m, n, k, count) = (4usize, 2usize, 3usize, 3usize);
    let (lda, ldb, ldc) = (k, k, m); // A transposed: k × m stored, lda = k
    let (sa, sb, sc) = (lda * m + 1, ldb * n + 2, ldc * n + 3);
    let a = values(sa * count, 4);
    let b = values(sb * count, 5);
    let c = values(sc * count, 6);
    let (alpha, beta) = (1.5f32, -1.0f32);
    let mut want = c.clone();
    for i in 0..count {
        gemm_by_definition(
            true,
            false,
            (m, n, k),
            alpha,
            &a[i * sa..],
            lda,
            &b[i * sb..],
            ldb,
            beta,
            &mut want[i * sc..],
            ldc,
        );
    }
    let (da, db) = (s.clone_htod(&a).expect("a"), s.clone_htod(&b).expect("b"));
    let mut dc = s.clone_htod(&c).expect("c");
    // SAFETY: every batch's extent lies in its buffer.
    unsafe {
        blas::sgemm_strided_batched(
            *handle.handle(),
            Op::CUBLAS_OP_T,
            Op::CUBLAS_OP_N,
            m as i32,
            n as i32,
            k as i32,
            &alpha,
            raw_ref(&da, s) as *const f32,
            lda as i32,
            sa as i64,
            raw_ref(&db, s) as *const f32,
            ldb as i32,
            sb as i64,
            &beta,
            raw(&mut dc, s) as *mut f32,
            ldc as i32,
            sc as i64,
            count as i32,
        )
    }
    .expect("strided batched sgemm");
    let got = s.clone_dtoh(&dc).expect("c");
    assert_same_bits(&got, &want, "strided batched");
}

#[test]
fn invalid_gemm_arguments_get_cublas_status_invalid_value() {
    let Some(gpu) = standin() else { return };
    let s = stream(gpu);
    let handle = CudaBlas::new(s.clone()).expect("cuBLAS handle");
    let buf = s.clone_htod(&[0.0f32; 64]).expect("buffer");
    let mut out = s.clone_htod(&[0.0f32; 64]).expect("buffer");
    let (p, q) = (raw_ref(&buf, s) as *const f32, raw(&mut out, s) as *mut f32);
    let (one, zero) = (1.0f32, 0.0f32);
    // (transa, m, n, k, lda, ldb, ldc, batch) → the expected status.
    let cases = [
        (
            Op::CUBLAS_OP_N,
            -1,
            2,
            2,
            2,
            2,
            2,
            1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ),
        (
            Op::CUBLAS_OP_N,
            2,
            2,
            -1,
            2,
            2,
            2,
            1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ),
        (
            Op::CUBLAS_OP_N,
            4,
            2,
            2,
            3,
            2,
            4,
            1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ), // lda < m
        (
            Op::CUBLAS_OP_T,
            4,
            2,
            3,
            2,
            3,
            4,
            1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ), // lda < k
        (
            Op::CUBLAS_OP_N,
            2,
            2,
            4,
            2,
            3,
            2,
            1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ), // ldb < k
        (
            Op::CUBLAS_OP_N,
            4,
            2,
            2,
            4,
            2,
            3,
            1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ), // ldc < m
        (
            Op::CUBLAS_OP_N,
            2,
            2,
            2,
            2,
            2,
            2,
            -1,
            Status::CUBLAS_STATUS_INVALID_VALUE,
        ),
        // Valid, but C reaches past its 64 elements: a fault on a device.
        (
            Op::CUBLAS_OP_N,
            2,
            2,
            2,
            2,
            2,
            63,
            1,
            Status::CUBLAS_STATUS_EXECUTION_FAILED,
        ),
    ];
    for (ta, m, n, k, lda, ldb, ldc, count, want) in cases {
        // SAFETY: rejected before any element is read or written.
        let got = unsafe {
            blas::sgemm_strided_batched(
                *handle.handle(),
                ta,
                Op::CUBLAS_OP_N,
                m,
                n,
                k,
                &one,
                p,
                lda,
                0,
                p,
                ldb,
                0,
                &zero,
                q,
                ldc,
                0,
                count,
            )
        };
        match got {
            Err(e) => assert_eq!(e.0, want, "m {m} n {n} k {k} lda {lda} ldb {ldb} ldc {ldc}"),
            Ok(()) => {
                panic!("accepted m {m} n {n} k {k} lda {lda} ldb {ldb} ldc {ldc} batch {count}")
            }
        }
    }
}
