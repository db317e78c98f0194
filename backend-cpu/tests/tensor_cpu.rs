//! The shared tensor-op suite ([`smoothout::testgen::tensor`]) on [`Cpu`]
//! with one and two threads, in `f32` and `f64`: GEMM within the written
//! bound of the naive reference, everything else bit for bit; and typed
//! errors for non-contiguous arrays.

use ndarray::{ArrayD, IxDyn};
use smoothout::tensor::{BatchedGemm, Gemm, GemmBatch, MapOps, MatmulOps, Operands};
use smoothout::Error;
use smoothout_cpu::{Cpu, Isa};

/// A 1-D array holding `v`.
fn array<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("a 1-D shape always fits")
}

/// A backend with `threads` threads and small element chunks (1000), so
/// that the maps cross chunk boundaries too.
fn cpu<T: smoothout::Real>(threads: usize) -> Cpu<T> {
    Cpu::<T>::with_threads(threads)
        .expect("thread pool")
        .with_chunk(1000)
        .expect("non-zero chunk")
}

smoothout::tensor_backend_tests!(f32_threads_1, cpu::<f32>(1), array::<f32>);
smoothout::tensor_backend_tests!(f32_threads_2, cpu::<f32>(2), array::<f32>);
smoothout::tensor_backend_tests!(f64_threads_1, cpu::<f64>(1), array::<f64>);
smoothout::tensor_backend_tests!(f64_threads_2, cpu::<f64>(2), array::<f64>);

/// Two GEMM operands of `a` and `b` elements in [−1, 1], from fixed
/// patterns.
fn operands(a: usize, b: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..a)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let b = (0..b)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
        .collect();
    (a, b)
}

/// GEMM gives the same bits with 1, 2 and 3 threads (the row blocks are
/// fixed), on a product of several blocks.
#[test]
fn gemm_bits_do_not_depend_on_threads() {
    let (m, n, k) = (200, 37, 129);
    let (a, b) = operands(m * k, k * n);
    let g = Gemm::new(m, n, k).transposed(false, true).scaled(0.5, 0.0);
    let run = |threads| {
        let mut c = array(vec![0.0f32; m * n]);
        cpu::<f32>(threads)
            .gemm(Operands::new(
                g,
                &array(a.clone()),
                &array(b.clone()),
                &mut c,
            ))
            .expect("gemm");
        c.into_raw_vec_and_offset().0
    };
    let one = run(1);
    for threads in [2, 3] {
        let other = run(threads);
        assert!(
            one.iter()
                .zip(&other)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{threads} threads differ from 1"
        );
    }
}

/// GEMM on AVX-512, which runs by the backend's own kernels where it can
/// (`direct_gemm`), gives `matrixmultiply`'s bits (a backend limited to
/// AVX2): one and several blocks of the sum, `op(a)` and `op(b)` either
/// way, β = 0 and 1, columns and rows that are not multiples of the
/// kernels' tiles or of the packed groups, 1 to 3 threads.
#[test]
fn gemm_bits_equal_matrixmultiply_on_every_isa() {
    let isa = if Isa::Avx2.supported() {
        Isa::Avx2
    } else {
        Isa::Baseline
    };
    let shapes = [
        (200, 37, 300, [false, false], 0.0),
        (70, 129, 256, [true, false], 1.0),
        (33, 512, 513, [false, false], 1.0),
        (64, 16, 1, [true, false], 0.0),
        (5, 70, 256, [true, false], 0.0),
        (130, 48, 255, [true, false], 1.0),
        (17, 64, 700, [true, false], 1.0),
        (200, 37, 300, [false, true], 0.0),
        (70, 129, 64, [false, true], 1.0),
        (33, 80, 513, [false, true], 1.0),
        (9, 16, 16, [false, true], 0.0),
        (5, 64, 16, [true, true], 0.0),
    ];
    for (m, n, k, [trans_a, trans_b], beta) in shapes {
        let (a, b) = operands(m * k, k * n);
        let c0: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32 - 3.0).collect();
        let g = Gemm::new(m, n, k)
            .transposed(trans_a, trans_b)
            .scaled(1.0, beta);
        let run = |cpu: Cpu<f32>| {
            let mut c = array(c0.clone());
            let (a, b) = (array(a.clone()), array(b.clone()));
            cpu.gemm(Operands::new(g, &a, &b, &mut c)).expect("gemm");
            c.into_raw_vec_and_offset().0
        };
        for threads in 1..=3 {
            let want = run(cpu::<f32>(threads).with_isa(isa).expect("supported"));
            let got = run(cpu::<f32>(threads));
            let differs = got
                .iter()
                .zip(&want)
                .position(|(x, y)| x.to_bits() != y.to_bits());
            assert_eq!(
                differs, None,
                "{g:?}, {threads} threads: first element that differs"
            );
        }
    }
}

/// The batched GEMMs give, with 1, 2 and 3 threads, the bits of a loop of
/// `gemm` over matrices copied out one at a time (what the convolution
/// layer did before them): the strided form with the weights shared, in
/// parallel over the products, and the summed form accumulating with β = 1.
#[test]
fn batched_gemm_bits_equal_a_loop_of_gemm() {
    let (count, f, rows, cols) = (5, 70, 27, 61);
    let w: Vec<f32> = (0..f * rows)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let col: Vec<f32> = (0..count * rows * cols)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
        .collect();
    let dy: Vec<f32> = (0..count * f * cols)
        .map(|i| ((i * 29 % 89) as f32 - 44.0) / 44.0)
        .collect();
    let dw0: Vec<f32> = (0..f * rows).map(|i| (i % 7) as f32 / 7.0).collect();
    let bits = |v: &ArrayD<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let part = |v: &[f32], i: usize, len: usize| array(v[i * len..(i + 1) * len].to_vec());
    let forward = Gemm::new(f, cols, rows);
    let grad = Gemm::new(f, rows, cols)
        .transposed(false, true)
        .scaled(1.0, 1.0);
    for threads in [1, 2, 3] {
        let cpu = cpu::<f32>(threads);
        let (mut y_loop, mut dw_loop) = (Vec::new(), array(dw0.clone()));
        for i in 0..count {
            let mut y = array(vec![0.0f32; f * cols]);
            let col_i = part(&col, i, rows * cols);
            cpu.gemm(Operands::new(forward, &array(w.clone()), &col_i, &mut y))
                .expect("gemm");
            y_loop.extend(y.iter().copied());
            cpu.gemm(Operands::new(
                grad,
                &part(&dy, i, f * cols),
                &col_i,
                &mut dw_loop,
            ))
            .expect("gemm");
        }
        let mut y = array(vec![f32::NAN; count * f * cols]);
        let images = GemmBatch {
            count,
            stride_a: 0,
            stride_b: rows * cols,
            stride_c: f * cols,
        };
        let (w, col) = (array(w.clone()), array(col.clone()));
        cpu.gemm_strided(BatchedGemm::new((forward, images), &w, &col, &mut y))
            .expect("gemm_strided");
        assert_eq!(bits(&y), bits(&array(y_loop)), "strided, {threads} threads");
        let mut dw = array(dw0.clone());
        let summed = GemmBatch {
            count,
            stride_a: f * cols,
            stride_b: rows * cols,
            stride_c: 0,
        };
        let dy = array(dy.clone());
        cpu.gemm_summed(BatchedGemm::new((grad, summed), &dy, &col, &mut dw))
            .expect("gemm_summed");
        assert_eq!(bits(&dw), bits(&dw_loop), "summed, {threads} threads");
    }
}

/// A non-contiguous array is a typed error, not a panic.
#[test]
fn non_contiguous_is_an_error() {
    let cpu = cpu::<f32>(2);
    // A transposed 4 × 4 array: column-major, so not a standard-layout slice.
    let mut strided = ArrayD::<f32>::zeros(IxDyn(&[4, 4]));
    strided.swap_axes(0, 1);
    let mut y = array(vec![0.0f32; 16]);
    assert_eq!(cpu.relu(&strided, &mut y), Err(Error::NonContiguous));
    assert_eq!(cpu.add(&y.clone(), &mut strided), Err(Error::NonContiguous));
    let g = Gemm::new(4, 4, 4);
    assert_eq!(
        cpu.gemm(Operands::new(g, &strided, &y.clone(), &mut y)),
        Err(Error::NonContiguous)
    );
}
