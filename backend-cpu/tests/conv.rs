//! `Cpu`'s image-by-image convolution (`ConvOps::conv_forward`,
//! `conv_weight_grad`, `conv_input_grad`) against what the provided methods
//! do (whole-batch `im2col`/`col2im` and batched GEMMs), composed here from
//! `Cpu`'s own operations: the same bits, for strides 1 and 2, with and
//! without padding, square and non-square images, one and two threads (and
//! three in `f32`, whose weight gradient splits its rows among the
//! threads), `f32` and `f64`; and typed errors for buffers of the wrong length. On a
//! CPU with AVX-512 the `f32` products are the backend's own kernels
//! (`direct_gemm`), checked here against `matrixmultiply`'s batched GEMMs
//! on a backend limited to AVX2.

use ndarray::{ArrayD, IxDyn};
use smoothout::tensor::{BatchedGemm, Conv2d, ConvOps, ConvPass, Gemm, GemmBatch, MatmulOps};
use smoothout::{BufferOps, Error, Real};
use smoothout_cpu::{Cpu, Isa};
use smoothout_testkit::SplitMix64;

/// A 1-D array holding `v`.
fn array<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("a 1-D shape always fits")
}

/// `n` values in [−1, 1) from a fixed-seed SplitMix64.
fn values<T: Real>(n: usize, seed: u64) -> Vec<T> {
    let mut rng = SplitMix64(seed);
    (0..n).map(|_| T::from_f64(rng.signed())).collect()
}

/// A geometry: (batch, channels, height, width, kernel, stride, padding,
/// filters).
type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

const CASES: [Case; 13] = [
    (3, 2, 5, 5, 3, 1, 1, 4),
    (2, 3, 7, 6, 3, 2, 1, 5),
    (4, 1, 6, 6, 2, 2, 0, 3),
    (2, 2, 5, 7, 5, 1, 2, 2),
    (1, 4, 4, 4, 1, 1, 0, 6),
    (5, 3, 9, 8, 3, 2, 0, 70),
    // 144 and 200 columns per filter: the transposed, split weight gradient.
    (3, 16, 6, 6, 3, 1, 1, 8),
    (2, 8, 7, 5, 5, 2, 2, 3),
    // Over 256 pixels per image (the sums' blocks), filters in one, two,
    // three and four vectors of 16 with and without a partial one, rows
    // not a multiple of the AVX-512 weight gradient's tiles.
    (2, 3, 20, 20, 3, 1, 1, 33),
    (2, 16, 18, 17, 3, 1, 1, 16),
    (1, 5, 24, 24, 3, 1, 1, 64),
    (2, 2, 16, 16, 1, 1, 0, 48),
    // Over 256 filters: the input gradient's sums over the filters in two
    // blocks.
    (1, 3, 5, 6, 3, 1, 1, 300),
];

fn same_bits<T: Real>(what: &str, a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            Real::to_f64(*x).to_bits() == Real::to_f64(*y).to_bits(),
            "{what}[{i}]: {x:?} != {y:?}"
        );
    }
}

/// The provided methods' bodies on `cpu`: the whole batch's columns, then
/// the batched GEMM (and `col2im` for the input gradient).
struct WholeBatch<'a, T: Real>(&'a Cpu<T>);

/// [`MatmulOps::gemm_strided`] or [`MatmulOps::gemm_summed`] of [`Cpu`].
type BatchedGemmOp<T> = fn(&Cpu<T>, BatchedGemm<'_, ArrayD<T>>) -> Result<(), Error>;

impl<T: Real> WholeBatch<'_, T> {
    fn columns(&self, conv: &Conv2d) -> ArrayD<T> {
        self.0.zeros(conv.col_len()).expect("columns")
    }

    /// The columns of `x`, the whole batch at once.
    fn im2col(&self, conv: &Conv2d, x: &[T]) -> ArrayD<T> {
        let mut col = self.columns(conv);
        self.0
            .im2col(conv, &array(x.to_vec()), &mut col)
            .expect("im2col");
        col
    }

    /// `out ← a · columns(x)` by the batched GEMM `(g, batch)`: one product
    /// per image (`gemm_strided`) or their sum (`gemm_summed`).
    fn times_columns(
        &self,
        conv: &Conv2d,
        (g, batch): (Gemm, GemmBatch),
        gemm: BatchedGemmOp<T>,
        a: &[T],
        x: &[T],
        out: &mut Vec<T>,
    ) {
        let col = self.im2col(conv, x);
        let mut c = array(out.clone());
        let a = array(a.to_vec());
        gemm(self.0, BatchedGemm::new((g, batch), &a, &col, &mut c)).expect("batched gemm");
        *out = c.into_raw_vec_and_offset().0;
    }

    fn forward(&self, conv: &Conv2d, f: usize, w: &[T], x: &[T], y: &mut Vec<T>) {
        self.times_columns(conv, conv.forward_gemm(f), Cpu::gemm_strided, w, x, y);
    }

    fn weight_grad(&self, conv: &Conv2d, f: usize, x: &[T], dy: &[T], dw: &mut Vec<T>) {
        self.times_columns(conv, conv.weight_grad_gemm(f), Cpu::gemm_summed, dy, x, dw);
    }

    fn input_grad(&self, conv: &Conv2d, f: usize, w: &[T], dy: &[T], dx: &mut Vec<T>) {
        let (g, batch) = conv.input_grad_gemm(f);
        let mut dcol = self.columns(conv);
        let (w, dy) = (array(w.to_vec()), array(dy.to_vec()));
        self.0
            .gemm_strided(BatchedGemm::new((g, batch), &w, &dy, &mut dcol))
            .expect("gemm_strided");
        let mut out = array(dx.clone());
        self.0.col2im(conv, &dcol, &mut out).expect("col2im");
        *dx = out.into_raw_vec_and_offset().0;
    }
}

/// A backend with `threads` threads limited to AVX2 (or the baseline),
/// whose products all go through `matrixmultiply`: on AVX-512 the batched
/// GEMMs run by `direct_gemm` too.
fn below_avx512<T: Real>(threads: usize) -> Cpu<T> {
    let isa = if Isa::Avx2.supported() {
        Isa::Avx2
    } else {
        Isa::Baseline
    };
    Cpu::<T>::with_threads(threads)
        .and_then(|c| c.with_isa(isa))
        .expect("thread pool")
}

fn check<T: Real>(threads: usize) {
    let cpu = Cpu::<T>::with_threads(threads).expect("thread pool");
    let narrow = below_avx512::<T>(threads);
    let reference = WholeBatch(&narrow);
    for (seed, &(batch, channels, height, width, kernel, stride, padding, filters)) in
        CASES.iter().enumerate()
    {
        let conv = Conv2d {
            batch,
            channels,
            height,
            width,
            kernel_h: kernel,
            kernel_w: kernel,
            stride,
            padding,
        };
        conv.validate().expect("a valid geometry");
        let rows = conv.col_rows();
        let out = batch * filters * conv.col_cols();
        let seed = seed as u64 * 10;
        let (w, x, dy) = (
            values::<T>(filters * rows, seed),
            values::<T>(batch * conv.image_len(), seed + 1),
            values::<T>(out, seed + 2),
        );
        let (dw0, dx0) = (
            values::<T>(filters * rows, seed + 3),
            values::<T>(batch * conv.image_len(), seed + 4),
        );
        let case = format!("{threads} threads, {conv:?}, {filters} filters");

        let passes: [Pass<'_, '_, T>; 3] = [
            (
                "forward",
                &vec![T::zero(); out],
                [&w, &x],
                WholeBatch::forward,
                Cpu::conv_forward,
            ),
            (
                "weight grad",
                &dw0,
                [&x, &dy],
                WholeBatch::weight_grad,
                Cpu::conv_weight_grad,
            ),
            (
                "input grad",
                &dx0,
                [&w, &dy],
                WholeBatch::input_grad,
                Cpu::conv_input_grad,
            ),
        ];
        for (name, out0, [a, b], whole_batch, image_by_image) in passes {
            let got = one_pass(
                &format!("{name}, {case}"),
                out0,
                |o| whole_batch(&reference, &conv, filters, a, b, o),
                |o| {
                    let (a, b) = (array(a.to_vec()), array(b.to_vec()));
                    image_by_image(&cpu, ConvPass::new((conv, filters), &a, &b, o))
                        .unwrap_or_else(|e| panic!("cpu {name}: {e:?}"));
                },
            );
            if name == "weight grad" {
                assert!(got != out0, "the weight gradient changed nothing ({case})");
            }
        }
    }
}

/// One convolution product: its name, its starting output, its operands
/// `a` and `b`, and the whole-batch and image-by-image ways to run it.
type Pass<'r, 'c, T> = (
    &'static str,
    &'r [T],
    [&'r [T]; 2],
    WholeBatchPass<'c, T>,
    ImagePass<T>,
);

/// A pass of [`WholeBatch`]: `(conv, filters, a, b, out)`.
type WholeBatchPass<'c, T> = fn(&WholeBatch<'c, T>, &Conv2d, usize, &[T], &[T], &mut Vec<T>);

/// A convolution product of [`Cpu`] ([`ConvOps`]).
type ImagePass<T> = fn(&Cpu<T>, ConvPass<'_, ArrayD<T>>) -> Result<(), Error>;

/// One pass from the same starting output `out0`, whole batch
/// (`whole_batch`) and image by image (`cpu`): the same bits. Returns the
/// whole-batch result.
fn one_pass<T: Real>(
    what: &str,
    out0: &[T],
    whole_batch: impl FnOnce(&mut Vec<T>),
    cpu: impl FnOnce(&mut ArrayD<T>),
) -> Vec<T> {
    let mut want = out0.to_vec();
    whole_batch(&mut want);
    let mut got = array(out0.to_vec());
    cpu(&mut got);
    same_bits(what, got.as_slice().unwrap(), &want);
    want
}

#[test]
fn image_by_image_equals_whole_batch_f32() {
    check::<f32>(1);
    check::<f32>(2);
    check::<f32>(3);
}

#[test]
fn image_by_image_equals_whole_batch_f64() {
    check::<f64>(1);
    check::<f64>(2);
}

#[test]
fn wrong_lengths_are_typed_errors() {
    let cpu = Cpu::<f32>::with_threads(2).expect("thread pool");
    let conv = Conv2d {
        batch: 2,
        channels: 1,
        height: 4,
        width: 4,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let (filters, out) = (2, 2 * 2 * 16);
    let w = array(vec![0.5f32; filters * 9]);
    let x = array(vec![1.0f32; 2 * 16]);
    let short = array(vec![1.0f32; 2 * 16 - 1]);
    let mut y = array(vec![0.0f32; out]);
    let dy = array(vec![1.0f32; out]);
    let mut dw = array(vec![0.0f32; filters * 9]);
    let mut dx = array(vec![0.0f32; 2 * 16]);
    let is_length = |r: smoothout::Result<()>| matches!(r, Err(Error::LengthMismatch { .. }));
    assert!(is_length(cpu.conv_forward(ConvPass::new(
        (conv, filters),
        &w,
        &short,
        &mut y
    ))));
    assert!(is_length(cpu.conv_forward(ConvPass::new(
        (conv, filters),
        &short,
        &x,
        &mut y
    ))));
    assert!(is_length(cpu.conv_weight_grad(ConvPass::new(
        (conv, filters),
        &x,
        &short,
        &mut dw
    ))));
    let mut short_dx = short.clone();
    assert!(is_length(cpu.conv_input_grad(ConvPass::new(
        (conv, filters),
        &w,
        &dy,
        &mut short_dx
    ))));
    assert!(cpu
        .conv_forward(ConvPass::new((conv, filters), &w, &x, &mut y))
        .is_ok());
    assert!(cpu
        .conv_weight_grad(ConvPass::new((conv, filters), &x, &dy, &mut dw))
        .is_ok());
    assert!(cpu
        .conv_input_grad(ConvPass::new((conv, filters), &w, &dy, &mut dx))
        .is_ok());
    let bad = Conv2d { stride: 0, ..conv };
    assert!(matches!(
        cpu.conv_forward(ConvPass::new((bad, filters), &w, &x, &mut y)),
        Err(Error::InvalidSetting {
            name: "conv stride",
            ..
        })
    ));
}
