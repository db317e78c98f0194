//! The kernels of `kernels/tensor.cu`, run on the host by emulation,
//! against `smoothout::tensor::reference`, checked without a GPU.
//!
//! `tests/emu/tensor_driver.cpp` compiles `common.cuh` and `tensor.cu` as
//! C++ (`-ffp-contract=off -fno-fast-math`, the host's equivalent of
//! NVRTC's `--fmad=false`) against `standin/cuda_shim.h`. Kernels whose
//! threads do not communicate run thread after thread; the per-channel
//! reductions (`channel_partials`, `bn_grad_partials`) run block after
//! block, each block's 256 threads as coroutines that meet at every
//! `__syncthreads()`, with `__shared__` arrays shared by the block. Between
//! barriers the threads run in ascending, descending or shuffled order: a
//! missing barrier would make the bits depend on the order
//! ([`block_emulation_catches_races_and_divergence`] shows that it does).
//!
//! Every kernel is launched as `src/tensor.rs` launches it: the same
//! argument order, and the same grids, whose arithmetic is private to that
//! file and `src/lib.rs` and is therefore replicated here (`grid`,
//! `slices_of`, `channel_grid`, the `gemm_summed` chunk plan; nothing new is
//! exposed by the crate). Grid-stride kernels run again with a small grid
//! (3 blocks of 64) that goes round its loop several times; the reductions
//! run again with one and two blocks along x (blocks stepping over the
//! channels) and in every thread order. Buffers sit between canaries that
//! must stay untouched; outputs start as NaN, even where `src/tensor.rs`
//! allocates zeros, so that an element the kernel fails to write shows.
//!
//! What is compared (the tolerances are those of `tests/tensor.rs`'s
//! module table, which the GPU tests use):
//!
//! - bit for bit with the reference: im2col, col2im (accumulating into
//!   `x`), pooling forward and backward (max and average, with ties, NaN
//!   and all-NaN windows), the maps, `add_bias`, `gemm_empty` (the `k = 0`
//!   GEMM), `gemm_summed` with `k = 0`, the batch-norm forward given the
//!   reference's statistics, and the batch-norm `dx` given the emulated
//!   `f64` sums of `dγ`, `dβ` (the reference's own formula on those sums);
//! - bit for bit with a model of the kernels' documented order (Rust, in
//!   this file): the statistics, `dγ`, `dβ` and `bias_grad` (per slice, per
//!   thread a strided `f64` sum, then the block's fixed tree, then the
//!   slices in order), and the reduction of `gemm_summed` (an `f64` sum of
//!   the products in order, α and β in `f64`, one rounding), which gives
//!   the same bits whatever the chunk size;
//! - within `tests/tensor.rs`'s bounds of the reference: mean, variance,
//!   `dγ`, `dβ`, `dx`, `bias_grad`, `gemm_summed`; and bit for bit for
//!   `bias_grad` on the shapes of the shared `maps` body, as that table
//!   claims;
//! - determinism: every reduction gives the same bits again, with every
//!   grid, and in every thread order;
//! - `softmax_xent_rows`: with the Rust reference's `libm::exp` and
//!   `libm::log` put in place of the kernel's `exp` and `log`, each row's
//!   gradient and loss and the mean loss are bit for bit the reference's
//!   (`softmax_cross_entropy_row`); with the host's own (glibc's, the
//!   stand-in for the device's, which are not libm's either), within the
//!   loss and `dlogits` bounds of `tests/tensor.rs` (each row's loss within
//!   that bound for one row). glibc's `exp` and `log` are not always
//!   libm's: the test prints how many values still came out bit-identical.
//!
//! NaN payloads are the host's: x86 propagates an operand's NaN, where the
//! device's `f32` arithmetic returns its one canonical NaN; the bits of
//! NaN results of arithmetic (average pooling, `add`, `mul`) are checked
//! only against the host reference.
//!
//! Skips with `skipped: <reason>` when no C++ compiler (`c++`) is installed
//! or on a host without ucontext; a compiler that rejects the kernels fails.

use std::sync::OnceLock;

use libloading::Library;

#[path = "emu/build.rs"]
mod build;
use build::{build_driver, check, grid, launches, or_skip, status_message, sym, Status, THREADS};
#[path = "support/tensor_bounds.rs"]
mod bounds;
use bounds::{
    bias_grad_input, bn_inputs, check_bias_grad, check_bn_grads, check_bn_stats, check_dlogits,
    check_loss, data, gemm_summed_bound, softmax_inputs, within, BIAS_GRADS, BNS, SOFTMAXES,
};
use smoothout::tensor::reference as r;
use smoothout::tensor::{
    BatchNorm, BatchNormGrads, BatchNormOps, BatchNormStats, Conv2d, Gemm, GemmBatch, MapOps,
    Pool2d, PoolKind,
};
use smoothout::Reference;

type GemmEmptyFn = unsafe extern "C" fn(u32, u32, *mut f32, u64, u64, u64, f32, f32, i32) -> Status;
type GemmSumChunkFn = unsafe extern "C" fn(u32, u32, *const f32, u64, u64, i32, *mut f64) -> Status;
type GemmSumFinishFn =
    unsafe extern "C" fn(u32, u32, *const f64, u64, f64, f64, i32, *mut f32) -> Status;
type ConvFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *mut f32,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
) -> Status;
type PoolForwardFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *mut f32,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    i32,
) -> Status;
type PoolBackwardFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *mut f32,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    i32,
) -> Status;
type ChannelPartialsFn = unsafe extern "C" fn(
    u32,
    u32,
    u32,
    i32,
    *const f32,
    *const f64,
    u64,
    u64,
    u64,
    u64,
    i32,
    *mut f64,
) -> Status;
type ChannelFinishFn =
    unsafe extern "C" fn(u32, u32, *const f64, u64, u64, f64, *mut f64, *mut f32) -> Status;
type BnForwardFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    f64,
    u64,
    u64,
    u64,
    *mut f32,
) -> Status;
type BnGradPartialsFn = unsafe extern "C" fn(
    u32,
    u32,
    u32,
    i32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    f64,
    u64,
    u64,
    u64,
    u64,
    *mut f64,
    *mut f64,
) -> Status;
type BnGradFinishFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f64,
    *const f64,
    u64,
    u64,
    *mut f64,
    *mut f32,
    *mut f32,
) -> Status;
type BnBackwardFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *const f64,
    f64,
    f64,
    u64,
    u64,
    u64,
    *mut f32,
) -> Status;
/// `exp` or `log` for the softmax kernel; `None`: the host's.
type MathFn = Option<unsafe extern "C" fn(f64) -> f64>;
type SoftmaxFn = unsafe extern "C" fn(
    u32,
    u32,
    MathFn,
    MathFn,
    *const f32,
    *const u32,
    u64,
    u64,
    *mut f32,
    *mut f64,
) -> Status;
type BinaryMapFn = unsafe extern "C" fn(u32, u32, *const f32, *mut f32, u64) -> Status;
type ReluBackwardFn =
    unsafe extern "C" fn(u32, u32, *const f32, *const f32, *mut f32, u64) -> Status;
type ScalarMapFn = unsafe extern "C" fn(u32, u32, f32, *mut f32, u64) -> Status;
type AddBiasFn = unsafe extern "C" fn(u32, u32, *const f32, *mut f32, u64, u64, u64) -> Status;
type SelftestFn = unsafe extern "C" fn(i32, i32, *const f64, *mut f64) -> Status;

/// The compiled driver's entry points: `emu_<kernel>(grid, block, the
/// kernel's own arguments…)`; the block reductions take `(grid_x, grid_y,
/// block, order, …)`.
struct Emu {
    _lib: Library,
    gemm_empty: GemmEmptyFn,
    gemm_sum_chunk: GemmSumChunkFn,
    gemm_sum_finish: GemmSumFinishFn,
    im2col: ConvFn,
    col2im: ConvFn,
    pool_forward: PoolForwardFn,
    pool_backward: PoolBackwardFn,
    channel_partials: ChannelPartialsFn,
    channel_finish: ChannelFinishFn,
    bn_forward: BnForwardFn,
    bn_grad_partials: BnGradPartialsFn,
    bn_grad_finish: BnGradFinishFn,
    bn_backward: BnBackwardFn,
    softmax_xent_rows: SoftmaxFn,
    map_relu: BinaryMapFn,
    map_relu_backward: ReluBackwardFn,
    map_scale: ScalarMapFn,
    map_add: BinaryMapFn,
    map_mul: BinaryMapFn,
    map_fill: ScalarMapFn,
    add_bias: AddBiasFn,
    selftest: SelftestFn,
}

/// The driver, built and loaded once per test process (the tests run in
/// parallel; the shim's state is per thread), or `None` after printing why
/// the test is skipped.
fn emu_or_skip() -> Option<&'static Emu> {
    static EMU: OnceLock<Result<Emu, String>> = OnceLock::new();
    or_skip(EMU.get_or_init(build))
}

fn build() -> Result<Emu, String> {
    let library = build_driver("tensor_driver.cpp", "tensor.cu")?;
    Ok(Emu {
        gemm_empty: sym(&library, "emu_gemm_empty"),
        gemm_sum_chunk: sym(&library, "emu_gemm_sum_chunk"),
        gemm_sum_finish: sym(&library, "emu_gemm_sum_finish"),
        im2col: sym(&library, "emu_im2col"),
        col2im: sym(&library, "emu_col2im"),
        pool_forward: sym(&library, "emu_pool_forward"),
        pool_backward: sym(&library, "emu_pool_backward"),
        channel_partials: sym(&library, "emu_channel_partials"),
        channel_finish: sym(&library, "emu_channel_finish"),
        bn_forward: sym(&library, "emu_bn_forward"),
        bn_grad_partials: sym(&library, "emu_bn_grad_partials"),
        bn_grad_finish: sym(&library, "emu_bn_grad_finish"),
        bn_backward: sym(&library, "emu_bn_backward"),
        softmax_xent_rows: sym(&library, "emu_softmax_xent_rows"),
        map_relu: sym(&library, "emu_map_relu"),
        map_relu_backward: sym(&library, "emu_map_relu_backward"),
        map_scale: sym(&library, "emu_map_scale"),
        map_add: sym(&library, "emu_map_add"),
        map_mul: sym(&library, "emu_map_mul"),
        map_fill: sym(&library, "emu_map_fill"),
        add_bias: sym(&library, "emu_add_bias"),
        selftest: sym(&library, "emu_selftest"),
        _lib: library,
    })
}

// ---- Launches, as src/lib.rs and src/tensor.rs make them ---------------

/// `SLICE`, `MAX_SLICES`, `MAX_CHANNEL_BLOCKS` and `SUM_CHUNK_ELEMS` of
/// src/tensor.rs.
const SLICE: u64 = 8192;
const MAX_SLICES: u64 = 1024;
const MAX_CHANNEL_BLOCKS: u64 = 65_535;
const SUM_CHUNK_ELEMS: usize = 1 << 26;

/// src/tensor.rs's `slices_of(m)`: `(slices, per)`.
fn slices_of(m: u64) -> (u64, u64) {
    let slices = m.div_ceil(SLICE).clamp(1, MAX_SLICES);
    (slices, m.div_ceil(slices))
}

/// src/tensor.rs's `channel_grid(channels, slices)`: blocks `(x, y)`.
fn channel_grid(channels: u64, slices: u64) -> (u32, u32) {
    (channels.clamp(1, MAX_CHANNEL_BLOCKS) as u32, slices as u32)
}

/// The shim's thread orders between barriers (`SO_ORDER_*`).
const ASCENDING: i32 = 0;
const DESCENDING: i32 = 1;
const SHUFFLED: i32 = 2;

/// A per-channel reduction's launches: src/tensor.rs's grid in ascending
/// order (twice: run-to-run), then one and two blocks along x (blocks
/// stepping over the channels) in the other orders. `(grid_x, grid_y,
/// order)`.
fn channel_launches(channels: u64, slices: u64) -> [(u32, u32, i32); 4] {
    let (gx, gy) = channel_grid(channels, slices);
    [
        (gx, gy, ASCENDING),
        (gx, gy, ASCENDING),
        (1, gy, DESCENDING),
        (2, gy, SHUFFLED),
    ]
}

// ---- Buffers -------------------------------------------------------------

/// An element type of a device buffer: its canary and poison values.
trait Elem: Copy + std::fmt::Debug {
    /// The bits every element outside a buffer keeps (a quiet NaN).
    const CANARY: Self;
    /// An output before a kernel writes it (another quiet NaN).
    const POISON: Self;
    fn bits(self) -> u64;
}

impl Elem for f32 {
    const CANARY: f32 = f32::from_bits(0x7fa5_a5a5);
    const POISON: f32 = f32::from_bits(0x7fc0_beef);
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Elem for f64 {
    const CANARY: f64 = f64::from_bits(0x7ff8_dead_beef_0000);
    const POISON: f64 = f64::from_bits(0x7ff8_0000_beef_beef);
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// Canaries on each side of a buffer.
const PAD: usize = 4;

/// A device buffer stand-in: its elements between canaries.
struct Buf<T: Elem> {
    mem: Vec<T>,
    len: usize,
}

impl<T: Elem> Buf<T> {
    fn new(data: &[T]) -> Self {
        let mut mem = vec![T::CANARY; data.len() + 2 * PAD];
        mem[PAD..PAD + data.len()].copy_from_slice(data);
        Buf {
            mem,
            len: data.len(),
        }
    }

    /// `len` elements of [`Elem::POISON`].
    fn poison(len: usize) -> Self {
        Self::new(&vec![T::POISON; len])
    }

    fn ptr(&mut self) -> *mut T {
        self.mem[PAD..].as_mut_ptr()
    }

    fn cptr(&self) -> *const T {
        self.mem[PAD..].as_ptr()
    }

    fn data_mut(&mut self) -> &mut [T] {
        &mut self.mem[PAD..PAD + self.len]
    }

    /// The contents, once the canaries are checked.
    fn get(&self, what: &str) -> Vec<T> {
        for (i, x) in self.mem.iter().enumerate() {
            if i < PAD || i >= PAD + self.len {
                assert_eq!(
                    x.bits(),
                    T::CANARY.bits(),
                    "{what}: wrote outside the buffer (offset {})",
                    i as isize - PAD as isize
                );
            }
        }
        self.mem[PAD..PAD + self.len].to_vec()
    }
}

/// Asserts that `got` and `want` are the same bits; returns how many
/// elements were compared.
fn same<T: Elem>(what: &str, got: &[T], want: &[T]) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.bits() == w.bits(),
            "{what}: element {i}: emulated kernel {g:?} ({:#x}), expected {w:?} ({:#x})",
            g.bits(),
            w.bits()
        );
    }
    got.len()
}

/// Launches and elements compared, printed at the end of each test.
#[derive(Default)]
struct Tally {
    launches: usize,
    exact: usize,
    bounded: usize,
    bounded_equal: usize,
}

impl Tally {
    /// One launch.
    fn launch(&mut self) {
        self.launches += 1;
    }

    /// Elements compared bit for bit.
    fn exact(&mut self, n: usize) {
        self.exact += n;
    }

    /// Elements compared within a bound, of which `equal` were the same bits.
    fn bounded(&mut self, (n, equal): (usize, usize)) {
        self.bounded += n;
        self.bounded_equal += equal;
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} emulated launches, {} elements equal bit for bit to the reference \
             or the order model, {} within the bounds ({} of them the same bits)",
            self.launches, self.exact, self.bounded, self.bounded_equal
        );
    }
}

// ---- GEMM ------------------------------------------------------------------

#[test]
fn gemm_empty_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (m, n, count, stride_c): gemm (count 1, stride 0), and gemm_strided
    // with contiguous outputs, gaps between them, one element each.
    for (s, &(m, n, count, stride_c)) in [
        (3usize, 5usize, 1usize, 0usize),
        (3, 5, 1, 15),
        (2, 3, 4, 6),
        (2, 3, 4, 9),
        (1, 1, 3, 2),
        (17, 33, 5, 600),
    ]
    .iter()
    .enumerate()
    {
        for (alpha, beta) in [(1.0, 0.0), (-1.25, 0.0), (0.1, 0.3), (-0.5, -1.0)] {
            let g = Gemm::new(m, n, 0).scaled(alpha, beta);
            let mn = m * n;
            let len = (count - 1) * stride_c + mn;
            // β = 0: c is not read (NaN stays out of the result).
            let c0 = if beta == 0.0 {
                vec![f32::NAN; len]
            } else {
                data(len, 10 + s as u64)
            };
            let mut want = c0.clone();
            if count == 1 && stride_c == 0 {
                r::gemm(&g, &[], &[], &mut want).expect("reference gemm");
            } else {
                let batch = GemmBatch {
                    count,
                    stride_a: 0,
                    stride_b: 0,
                    stride_c,
                };
                r::gemm_strided(&g, &batch, &[], &[], &mut want).expect("reference strided");
            }
            // src/tensor.rs's gemm_empty arguments.
            let (count64, stride64, mn64) = (count as u64, stride_c as u64, mn as u64);
            let (a32, b32, has_beta) = (alpha as f32, beta as f32, i32::from(beta != 0.0));
            for (gx, bx) in launches(count64 * mn64) {
                let what = format!(
                    "gemm_empty {m}x{n} count {count} stride_c {stride_c} \
                     α {alpha} β {beta} grid {gx}x{bx}"
                );
                let mut c = Buf::new(&c0);
                // SAFETY: c holds (count − 1)·stride_c + m·n floats.
                check(
                    unsafe {
                        (emu.gemm_empty)(
                            gx,
                            bx,
                            c.ptr(),
                            count64,
                            stride64,
                            mn64,
                            a32,
                            b32,
                            has_beta,
                        )
                    },
                    &what,
                );
                tally.launch();
                tally.exact(same(&what, &c.get(&what), &want));
            }
        }
    }
    tally.report("gemm_empty");
}

/// `gemm_summed` as src/tensor.rs runs it on the host's products: the
/// chunk loop (products of a chunk by `r::gemm_strided` with α = 1, β = 0,
/// standing in for cuBLAS), `gemm_sum_chunk` per chunk, `gemm_sum_finish`.
/// `chunk` overrides src/tensor.rs's chunk size. Returns c and the `f64`
/// sums.
#[allow(clippy::too_many_arguments)]
fn emulated_gemm_summed(
    emu: &Emu,
    g: &Gemm,
    batch: &GemmBatch,
    a: &[f32],
    b: &[f32],
    c0: &[f32],
    chunk: Option<usize>,
    (gx, bx): (u32, u32),
    what: &str,
    tally: &mut Tally,
) -> (Vec<f32>, Vec<f64>) {
    let (mn, mn64) = (g.m * g.n, (g.m * g.n) as u64);
    // Zero: the sum of no products (k = 0), as alloc_zeros. With products,
    // NaN instead: the first chunk must not read it (`first`), which
    // alloc_zeros would hide.
    let start = if g.k == 0 { 0.0 } else { f64::NAN };
    let mut acc = Buf::new(&vec![start; mn]);
    if g.k > 0 {
        let chunk = chunk.unwrap_or(SUM_CHUNK_ELEMS / mn).clamp(1, batch.count);
        let mut prod = Buf::<f32>::poison(chunk * mn);
        for first in (0..batch.count).step_by(chunk) {
            let len = chunk.min(batch.count - first);
            let products = GemmBatch {
                count: len,
                stride_a: batch.stride_a,
                stride_b: batch.stride_b,
                stride_c: mn,
            };
            r::gemm_strided(
                &g.scaled(1.0, 0.0),
                &products,
                &a[first * batch.stride_a..],
                &b[first * batch.stride_b..],
                prod.data_mut(),
            )
            .expect("products");
            let (len, is_first) = (len as u64, i32::from(first == 0));
            // SAFETY: prod holds chunk·m·n ≥ len·m·n floats, acc m·n doubles.
            check(
                unsafe {
                    (emu.gemm_sum_chunk)(gx, bx, prod.cptr(), len, mn64, is_first, acc.ptr())
                },
                what,
            );
            tally.launch();
        }
        prod.get(what);
    }
    let has_beta = i32::from(g.beta != 0.0);
    let mut c = Buf::new(c0);
    // SAFETY: acc holds m·n doubles, c at least m·n floats.
    check(
        unsafe {
            (emu.gemm_sum_finish)(gx, bx, acc.cptr(), mn64, g.alpha, g.beta, has_beta, c.ptr())
        },
        what,
    );
    tally.launch();
    (c.get(what), acc.get(what))
}

#[test]
fn gemm_summed_reduction_is_an_f64_sum_in_order() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (m, n, k, count, trans_a, trans_b, stride_a, stride_b): one product,
    // a shared a (stride 0), gaps, the weight-gradient shape of
    // tests/tensor.rs, and k = 0 (no products).
    for (s, &(m, n, k, count, ta, tb, sa, sb)) in [
        (1usize, 1usize, 1usize, 1usize, false, false, 1usize, 1usize),
        (3, 5, 7, 4, false, false, 21, 35),
        (3, 5, 7, 6, true, true, 0, 40),
        (2, 3, 4, 9, true, false, 8, 12),
        (16, 75, 64, 64, false, true, 16 * 64, 75 * 64),
        (4, 6, 0, 5, false, false, 0, 0),
    ]
    .iter()
    .enumerate()
    {
        let batch = GemmBatch {
            count,
            stride_a: sa,
            stride_b: sb,
            stride_c: 0,
        };
        let salt = 20 + 10 * s as u64;
        // Operands over many magnitudes, so that the order of a sum shows.
        let wide = |len: usize, salt: u64| -> Vec<f32> {
            data(len, salt)
                .iter()
                .enumerate()
                .map(|(i, v)| v * [1.0, 1e-3, 1e3, 0.5][i % 4])
                .collect()
        };
        let a = wide((count - 1) * sa + m * k, salt);
        let b = wide((count - 1) * sb + k * n, salt + 1);
        let mn = m * n;
        // Every product, in order.
        let mut prods = vec![0.0f32; count * mn];
        if k > 0 {
            let all = GemmBatch {
                stride_c: mn,
                ..batch
            };
            let g1 = Gemm::new(m, n, k).transposed(ta, tb);
            r::gemm_strided(&g1, &all, &a, &b, &mut prods).expect("products");
        }
        // The model's f64 sums: per element, the products in order from 0.0.
        let sums: Vec<f64> = (0..mn)
            .map(|e| (0..count).fold(0.0f64, |acc, i| acc + f64::from(prods[i * mn + e])))
            .collect();
        // Per element, Σ |a_ip · b_pj| over every product (the GEMM bound).
        let mags: Vec<f64> = (0..mn)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                (0..count)
                    .flat_map(|q| (0..k).map(move |p| (q, p)))
                    .map(|(q, p)| {
                        let x = if ta {
                            a[q * sa + p * m + i]
                        } else {
                            a[q * sa + i * k + p]
                        };
                        let y = if tb {
                            b[q * sb + j * k + p]
                        } else {
                            b[q * sb + p * n + j]
                        };
                        (f64::from(x) * f64::from(y)).abs()
                    })
                    .sum()
            })
            .collect();
        // α and β exact in f32, so that k = 0 is the reference's bits.
        for (alpha, beta) in [(1.0, 1.0), (-0.5, 0.0), (0.75, -2.0)] {
            let g = Gemm::new(m, n, k).transposed(ta, tb).scaled(alpha, beta);
            let c0 = if beta == 0.0 {
                vec![f32::NAN; mn]
            } else {
                data(mn, salt + 2)
            };
            // The model: α and β in f64 on the sums, one rounding.
            let want: Vec<f32> = (0..mn)
                .map(|e| {
                    let mut v = alpha * sums[e];
                    if beta != 0.0 {
                        v += beta * f64::from(c0[e]);
                    }
                    v as f32
                })
                .collect();
            let mut reference = c0.clone();
            r::gemm_summed(&g, &batch, &a, &b, &mut reference).expect("reference");
            let mut first: Option<Vec<f32>> = None;
            for chunk in [None, Some(1), Some(3)] {
                for l in launches(mn as u64) {
                    let what = format!(
                        "gemm_summed {m}x{n}x{k} count {count} α {alpha} β {beta} \
                         chunk {chunk:?} grid {}x{}",
                        l.0, l.1
                    );
                    let (c, acc) = emulated_gemm_summed(
                        emu, &g, &batch, &a, &b, &c0, chunk, l, &what, &mut tally,
                    );
                    tally.exact(same(&format!("{what} (f64 sums)"), &acc, &sums));
                    tally.exact(same(&what, &c, &want));
                    if let Some(f) = &first {
                        same(&format!("{what} (again)"), &c, f);
                    } else {
                        first = Some(c.clone());
                    }
                    if k == 0 {
                        tally.exact(same(&format!("{what} (reference)"), &c, &reference));
                    } else {
                        // tests/tensor.rs's bound: the GEMM bound with k
                        // replaced by count · k.
                        tally.bounded(within(
                            &format!("{what} (reference)"),
                            &c,
                            &reference,
                            |e| {
                                let old = if beta == 0.0 {
                                    0.0
                                } else {
                                    f64::from(c0[e]).abs()
                                };
                                gemm_summed_bound(count, k, alpha, beta, mags[e], old)
                            },
                        ));
                    }
                }
            }
        }
    }
    tally.report("gemm_sum_chunk, gemm_sum_finish");
}

// ---- Convolution -----------------------------------------------------------

/// src/tensor.rs's `conv_args`.
fn conv_args(c: &Conv2d) -> [u64; 10] {
    [
        c.batch,
        c.channels,
        c.height,
        c.width,
        c.kernel_h,
        c.kernel_w,
        c.stride,
        c.padding,
        c.out_h(),
        c.out_w(),
    ]
    .map(|v| v as u64)
}

#[test]
fn im2col_and_col2im_match_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (batch, channels, height, width, kh, kw, stride, padding): 3 × 3 and
    // 1 × 1 kernels at strides 1 and 2 with padding 1 (a 1 × 1 kernel with
    // padding reads only zeros at the border), a non-square kernel, 1 × 1
    // images, a stride larger than the kernel.
    for (s, &(batch, channels, height, width, kh, kw, stride, padding)) in [
        (
            2usize, 3usize, 5usize, 7usize, 3usize, 3usize, 1usize, 1usize,
        ),
        (2, 3, 5, 7, 3, 3, 2, 1),
        (2, 3, 5, 7, 3, 2, 2, 1),
        (2, 3, 5, 7, 1, 1, 2, 1),
        (8, 16, 8, 8, 3, 3, 1, 1),
        (8, 16, 8, 8, 3, 3, 2, 1),
        (8, 16, 8, 8, 1, 1, 1, 0),
        (8, 16, 8, 8, 1, 1, 2, 0),
        (300, 4, 1, 1, 1, 1, 1, 0),
        (300, 4, 1, 1, 3, 3, 1, 1),
        (1, 2, 6, 6, 2, 2, 2, 0),
        (1, 1, 7, 5, 2, 3, 3, 1),
    ]
    .iter()
    .enumerate()
    {
        let conv = Conv2d {
            batch,
            channels,
            height,
            width,
            kernel_h: kh,
            kernel_w: kw,
            stride,
            padding,
        };
        conv.validate().expect("a valid convolution");
        let [n, ch, h, w, kh, kw, st, p, oh, ow] = conv_args(&conv);
        let xn = batch * conv.image_len();
        let cn = batch * conv.col_rows() * conv.col_cols();
        let x = data(xn, 100 + 10 * s as u64);
        let cols = data(cn, 101 + 10 * s as u64);

        let mut want_col = vec![f32::NAN; cn];
        r::im2col(&conv, &x, &mut want_col).expect("reference im2col");
        // col2im accumulates into x (not zero).
        let x0 = data(xn, 102 + 10 * s as u64);
        let mut want_x = x0.clone();
        r::col2im(&conv, &cols, &mut want_x).expect("reference col2im");
        // (name, kernel, input, output before, reference output): the
        // output gives the grid-stride work.
        type Case<'a> = (&'a str, ConvFn, &'a [f32], &'a [f32], &'a [f32]);
        let cases: [Case<'_>; 2] = [
            ("im2col", emu.im2col, &x, &vec![f32::POISON; cn], &want_col),
            ("col2im", emu.col2im, &cols, &x0, &want_x),
        ];
        for (name, kernel, input, out0, want) in cases {
            for (gx, bx) in launches(out0.len() as u64) {
                let what = format!("{name} {conv:?} grid {gx}x{bx}");
                let ib = Buf::new(input);
                let mut ob = Buf::new(out0);
                // SAFETY: the input and output hold the sizes conv_args
                // describes (x, col for im2col; col, x for col2im).
                check(
                    unsafe {
                        kernel(
                            gx,
                            bx,
                            ib.cptr(),
                            ob.ptr(),
                            n,
                            ch,
                            h,
                            w,
                            kh,
                            kw,
                            st,
                            p,
                            oh,
                            ow,
                        )
                    },
                    &what,
                );
                tally.launch();
                same(&format!("{what} (input)"), &ib.get(&what), input);
                tally.exact(same(&what, &ob.get(&what), want));
            }
        }
    }
    tally.report("im2col, col2im");
}

// ---- Pooling ---------------------------------------------------------------

/// src/tensor.rs's `pool_args`.
fn pool_args(p: &Pool2d) -> ([u64; 8], i32) {
    let sizes = [
        p.planes(),
        p.height,
        p.width,
        p.kernel,
        p.stride,
        p.padding,
        p.out_h(),
        p.out_w(),
    ]
    .map(|v| v as u64);
    let kind = match p.kind {
        PoolKind::Max => 0,
        PoolKind::Avg => 1,
    };
    (sizes, kind)
}

/// Pooling input: multiples of 1/4 in [−1, 1] (ties, +0.0 and −0.0), a
/// NaN every 11 elements, −∞ every 37, and (with several planes) the
/// first plane all NaN, so that some windows are all NaN.
fn pool_input(p: &Pool2d, salt: u64) -> Vec<f32> {
    let plane = p.height * p.width;
    data(p.planes() * plane, salt)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if (p.planes() > 1 && i < plane) || i % 11 == 5 {
                f32::NAN
            } else if i % 37 == 36 {
                f32::NEG_INFINITY
            } else {
                (v * 4.0).round() / 4.0
            }
        })
        .collect()
}

#[test]
fn pooling_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (batch, channels, height, width, kernel, stride, padding): 3 × 3
    // stride 2 padding 1 and 2 × 2 stride 2, overlapping windows at stride
    // 1, a 1 × 1 image, testgen's tie case.
    for (s, &(batch, channels, height, width, kernel, stride, padding)) in [
        (2usize, 3usize, 5usize, 7usize, 3usize, 2usize, 1usize),
        (2, 3, 5, 7, 2, 2, 0),
        (8, 16, 8, 8, 3, 2, 1),
        (8, 16, 8, 8, 2, 2, 0),
        (2, 2, 6, 6, 3, 1, 1),
        (300, 4, 1, 1, 1, 1, 0),
        (300, 4, 1, 1, 2, 1, 1),
        (1, 1, 3, 3, 2, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let p = Pool2d {
                batch,
                channels,
                height,
                width,
                kernel,
                stride,
                padding,
                kind,
            };
            p.validate().expect("a valid pooling");
            let ([planes, h, w, k, st, pd, oh, ow], kind_c) = pool_args(&p);
            let salt = 200 + 10 * s as u64;
            let x = pool_input(&p, salt);
            let yn = p.planes() * p.out_h() * p.out_w();
            let dy = data(yn, salt + 1);

            let mut want = vec![f32::NAN; yn];
            r::pool_forward(&p, &x, &mut want).expect("reference forward");
            for (gx, bx) in launches(yn as u64) {
                let what = format!("pool_forward {p:?} grid {gx}x{bx}");
                let xb = Buf::new(&x);
                let mut y = Buf::<f32>::poison(yn);
                // SAFETY: x and y hold the sizes pool_args describes.
                check(
                    unsafe {
                        (emu.pool_forward)(
                            gx,
                            bx,
                            xb.cptr(),
                            y.ptr(),
                            planes,
                            h,
                            w,
                            k,
                            st,
                            pd,
                            oh,
                            ow,
                            kind_c,
                        )
                    },
                    &what,
                );
                tally.launch();
                tally.exact(same(&what, &y.get(&what), &want));
            }

            let mut want = vec![f32::NAN; x.len()];
            r::pool_backward(&p, &x, &dy, &mut want).expect("reference backward");
            for (gx, bx) in launches(x.len() as u64) {
                let what = format!("pool_backward {p:?} grid {gx}x{bx}");
                let (xb, dyb) = (Buf::new(&x), Buf::new(&dy));
                let mut dx = Buf::<f32>::poison(x.len());
                // SAFETY: x, dy and dx hold the sizes pool_args describes.
                check(
                    unsafe {
                        (emu.pool_backward)(
                            gx,
                            bx,
                            xb.cptr(),
                            dyb.cptr(),
                            dx.ptr(),
                            planes,
                            h,
                            w,
                            k,
                            st,
                            pd,
                            oh,
                            ow,
                            kind_c,
                        )
                    },
                    &what,
                );
                tally.launch();
                tally.exact(same(&what, &dx.get(&what), &want));
            }
        }
    }
    tally.report("pool_forward, pool_backward");
}

// ---- Per-channel reductions ------------------------------------------------

/// Index of term `t` of channel `ch` in a `[outer, channels, inner]`
/// tensor (tensor.cu's `so_channel_at`).
fn channel_at(t: u64, ch: u64, channels: u64, inner: u64) -> usize {
    let o = t / inner;
    ((o * channels + ch) * inner + (t - o * inner)) as usize
}

/// The order of tensor.cu's per-channel reductions, as its comments give
/// it: per slice `[k·per, (k + 1)·per) ∩ [0, m)` of src/tensor.rs's
/// `slices_of(m)`, thread `tid` sums terms `t0 + tid, + 256, …` from
/// `start`; the block adds its 256 sums with the tree `h = 128, 64, …, 1`;
/// then the slices are added in order, from `start`.
fn model_channel_sum(m: u64, start: f64, term: impl Fn(u64) -> f64) -> f64 {
    let (slices, per) = slices_of(m);
    let block = u64::from(THREADS);
    let mut total = start;
    for k in 0..slices {
        let (t0, t1) = (k * per, ((k + 1) * per).min(m));
        let mut sh: Vec<f64> = (0..block)
            .map(|tid| {
                (t0 + tid..t1)
                    .step_by(block as usize)
                    .fold(start, |acc, t| acc + term(t))
            })
            .collect();
        let mut h = sh.len() / 2;
        while h > 0 {
            for i in 0..h {
                sh[i] += sh[i + h];
            }
            h /= 2;
        }
        total += sh[0];
    }
    total
}

/// src/tensor.rs's `channel_sums`: `channel_partials` (every launch of
/// [`channel_launches`], which must agree bit for bit), then
/// `channel_finish` (every launch of [`launches`], likewise). Returns
/// `(out64, out32)`.
#[allow(clippy::too_many_arguments)]
fn channel_sums(
    emu: &Emu,
    x: &[f32],
    centre: Option<&[f64]>,
    channels: usize,
    inner: usize,
    divisor: f64,
    what: &str,
    tally: &mut Tally,
) -> (Vec<f64>, Vec<f32>) {
    let (channels, inner) = (channels as u64, inner as u64);
    let m = x.len() as u64 / channels;
    let (slices, per) = slices_of(m);
    let parts = (channels * slices) as usize;
    let xb = Buf::new(x);
    let (cb, squares) = match centre {
        Some(c) => (Buf::new(c), 1i32),
        None => (Buf::new(&[0.0f64]), 0),
    };
    let mut partial: Option<Vec<f64>> = None;
    for (gx, gy, order) in channel_launches(channels, slices) {
        let what = format!("{what}: channel_partials grid {gx}x{gy} order {order}");
        let mut pb = Buf::<f64>::poison(parts);
        // SAFETY: x holds channels·m floats, centre channels doubles (or the
        // unused dummy), partial channels·slices doubles.
        check(
            unsafe {
                (emu.channel_partials)(
                    gx,
                    gy,
                    THREADS,
                    order,
                    xb.cptr(),
                    cb.cptr(),
                    channels,
                    inner,
                    m,
                    per,
                    squares,
                    pb.ptr(),
                )
            },
            &what,
        );
        tally.launch();
        let got = pb.get(&what);
        match &partial {
            Some(p) => tally.exact(same(&what, &got, p)),
            None => partial = Some(got),
        }
    }
    let partial = Buf::new(&partial.expect("a launch"));
    let mut out: Option<(Vec<f64>, Vec<f32>)> = None;
    for (gx, bx) in launches(channels) {
        let what = format!("{what}: channel_finish grid {gx}x{bx}");
        let (mut o64, mut o32) = (
            Buf::<f64>::poison(channels as usize),
            Buf::<f32>::poison(channels as usize),
        );
        // SAFETY: partial holds channels·slices doubles, the outputs
        // channels elements each.
        check(
            unsafe {
                (emu.channel_finish)(
                    gx,
                    bx,
                    partial.cptr(),
                    channels,
                    slices,
                    divisor,
                    o64.ptr(),
                    o32.ptr(),
                )
            },
            &what,
        );
        tally.launch();
        let got = (o64.get(&what), o32.get(&what));
        match &out {
            Some((a, b)) => tally.exact(same(&what, &got.0, a) + same(&what, &got.1, b)),
            None => out = Some(got),
        }
    }
    partial.get(what);
    out.expect("a launch")
}

/// `(batch, channels, spatial, ε)` beyond tests/tensor.rs's shapes ([`BNS`]:
/// 2 × 3 × 5 × 7, 64 × 16 × 8 × 8, BatchNorm1d, odd sizes, one element,
/// ε = 0, 2 and 3 slices per channel): 8 × 16 × 8 × 8, 300 × 4 × 1 × 1, and
/// 3 slices of which the last is shorter (4 × 5000 = 20 000 = 6667 + 6667 +
/// 6666).
const MORE_BNS: [(usize, usize, usize, f64); 3] =
    [(8, 16, 64, 1e-5), (300, 4, 1, 1e-5), (4, 3, 5000, 1e-5)];

#[test]
fn batch_norm_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    let reference = Reference::<f32>::new();
    let mut multi_slice = 0;
    for (s, &(batch, channels, spatial, eps)) in BNS.iter().chain(&MORE_BNS).enumerate() {
        let bn = BatchNorm {
            batch,
            channels,
            spatial,
            eps,
        };
        let what = format!("{bn:?}");
        // tests/tensor.rs's data.
        let (x, dy, gamma, beta) = bn_inputs(&bn, s);
        let m = batch * spatial;
        let m64 = m as u64;
        let (slices, per) = slices_of(m64);
        multi_slice += usize::from(slices >= 2);
        let (ch64, sp64, n64) = (channels as u64, spatial as u64, bn.len() as u64);

        // Statistics: src/tensor.rs's batch_norm_stats.
        let (mut m0, mut v0) = (vec![f32::NAN; channels], vec![f32::NAN; channels]);
        reference
            .batch_norm_stats(&bn, &x, &mut m0, &mut v0)
            .expect("reference stats");
        let mf = m as f64;
        let (mean64, mean) = channel_sums(
            emu,
            &x,
            None,
            channels,
            spatial,
            mf,
            &format!("mean {what}"),
            &mut tally,
        );
        let (var64, var) = channel_sums(
            emu,
            &x,
            Some(&mean64),
            channels,
            spatial,
            mf,
            &format!("var {what}"),
            &mut tally,
        );
        // The order model, bit for bit.
        for c in 0..channels {
            let c64 = c as u64;
            let at = |t| channel_at(t, c64, ch64, sp64);
            let want_mean = model_channel_sum(m64, -0.0, |t| f64::from(x[at(t)])) / mf;
            let want_var = model_channel_sum(m64, -0.0, |t| {
                let d = f64::from(x[at(t)]) - mean64[c];
                d * d
            }) / mf;
            tally.exact(same(
                &format!("mean {what} channel {c} (model)"),
                &[mean64[c]],
                &[want_mean],
            ));
            tally.exact(same(
                &format!("var {what} channel {c} (model)"),
                &[var64[c]],
                &[want_var],
            ));
        }
        same(
            &format!("mean {what} (rounded)"),
            &mean,
            &mean64.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        );
        same(
            &format!("var {what} (rounded)"),
            &var,
            &var64.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        );
        // The reference, within tests/tensor.rs's bounds.
        for counts in check_bn_stats(&what, &bn, &x, (&mean, &var), (&m0, &v0)) {
            tally.bounded(counts);
        }

        // Forward with the reference's statistics: bit for bit.
        let mut y0 = vec![f32::NAN; bn.len()];
        reference
            .batch_norm_forward(
                &bn,
                &x,
                &gamma,
                &beta,
                BatchNormStats {
                    mean: &m0,
                    var: &v0,
                },
                &mut y0,
            )
            .expect("reference forward");
        let (xb, gb, bb) = (Buf::new(&x), Buf::new(&gamma), Buf::new(&beta));
        let (m0b, v0b) = (Buf::new(&m0), Buf::new(&v0));
        for (gx, bx) in launches(n64) {
            let w = format!("bn_forward {what} grid {gx}x{bx}");
            let mut y = Buf::<f32>::poison(bn.len());
            // SAFETY: x and y hold n floats, the per-channel buffers channels.
            check(
                unsafe {
                    (emu.bn_forward)(
                        gx,
                        bx,
                        xb.cptr(),
                        gb.cptr(),
                        bb.cptr(),
                        m0b.cptr(),
                        v0b.cptr(),
                        eps,
                        n64,
                        ch64,
                        sp64,
                        y.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            tally.exact(same(&w, &y.get(&w), &y0));
        }

        // Backward with the reference's statistics: src/tensor.rs's
        // batch_norm_backward.
        let dyb = Buf::new(&dy);
        let parts = channels * slices as usize;
        let mut grads: Option<(Vec<f64>, Vec<f64>)> = None;
        for (gx, gy, order) in channel_launches(ch64, slices) {
            let w = format!("bn_grad_partials {what} grid {gx}x{gy} order {order}");
            let (mut pg, mut pb) = (Buf::<f64>::poison(parts), Buf::<f64>::poison(parts));
            // SAFETY: x and dy hold n floats, mean and var channels, the
            // partials channels·slices doubles each.
            check(
                unsafe {
                    (emu.bn_grad_partials)(
                        gx,
                        gy,
                        THREADS,
                        order,
                        xb.cptr(),
                        dyb.cptr(),
                        m0b.cptr(),
                        v0b.cptr(),
                        eps,
                        ch64,
                        sp64,
                        m64,
                        per,
                        pg.ptr(),
                        pb.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            let got = (pg.get(&w), pb.get(&w));
            match &grads {
                Some((g, b)) => tally.exact(same(&w, &got.0, g) + same(&w, &got.1, b)),
                None => grads = Some(got),
            }
        }
        let (pg, pb) = grads.expect("a launch");
        let (pgb, pbb) = (Buf::new(&pg), Buf::new(&pb));
        let mut finished: Option<(Vec<f64>, Vec<f32>, Vec<f32>)> = None;
        for (gx, bx) in launches(ch64) {
            let w = format!("bn_grad_finish {what} grid {gx}x{bx}");
            let mut sums = Buf::<f64>::poison(2 * channels);
            let (mut dg, mut db) = (Buf::<f32>::poison(channels), Buf::<f32>::poison(channels));
            // SAFETY: the partials hold channels·slices doubles, sums
            // 2·channels, dgamma and dbeta channels floats.
            check(
                unsafe {
                    (emu.bn_grad_finish)(
                        gx,
                        bx,
                        pgb.cptr(),
                        pbb.cptr(),
                        ch64,
                        slices,
                        sums.ptr(),
                        dg.ptr(),
                        db.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            let got = (sums.get(&w), dg.get(&w), db.get(&w));
            match &finished {
                Some((s, g, b)) => {
                    tally.exact(same(&w, &got.0, s) + same(&w, &got.1, g) + same(&w, &got.2, b))
                }
                None => finished = Some(got),
            }
        }
        let (sums, dgamma, dbeta) = finished.expect("a launch");
        let centres = r::batch_norm_centres(&bn, &m0, &v0);
        // The order model, bit for bit.
        let (mut dg64, mut db64) = (vec![0.0f64; channels], vec![0.0f64; channels]);
        for c in 0..channels {
            let (mu, inv) = centres[c];
            let at = |t| channel_at(t, c as u64, ch64, sp64);
            let want_g = model_channel_sum(m64, 0.0, |t| {
                f64::from(dy[at(t)]) * ((f64::from(x[at(t)]) - mu) * inv)
            });
            let want_b = model_channel_sum(m64, 0.0, |t| f64::from(dy[at(t)]));
            let w = format!("bn grads {what} channel {c} (model)");
            tally.exact(same(&w, &sums[2 * c..2 * c + 2], &[want_g, want_b]));
            tally.exact(same(
                &w,
                &[dgamma[c], dbeta[c]],
                &[want_g as f32, want_b as f32],
            ));
            (dg64[c], db64[c]) = (sums[2 * c], sums[2 * c + 1]);
        }
        let (mut dx0, mut dg0, mut db0) = (
            vec![f32::NAN; bn.len()],
            vec![f32::NAN; channels],
            vec![f32::NAN; channels],
        );
        reference
            .batch_norm_backward(
                &bn,
                &x,
                &dy,
                &gamma,
                BatchNormStats {
                    mean: &m0,
                    var: &v0,
                },
                BatchNormGrads {
                    dx: &mut dx0,
                    dgamma: &mut dg0,
                    dbeta: &mut db0,
                },
            )
            .expect("reference backward");
        // dx from the emulated sums by the reference's own formula.
        let coefs = r::batch_norm_backward_coefs(&bn, &gamma, &centres, &dg64, &db64);
        let per_sample = channels * spatial;
        let mut dx_model = vec![f32::NAN; bn.len()];
        for ((xs, dys), dxs) in x
            .chunks(per_sample)
            .zip(dy.chunks(per_sample))
            .zip(dx_model.chunks_mut(per_sample))
        {
            r::batch_norm_backward_sample(&bn, xs, dys, &coefs, dxs);
        }
        let sb = Buf::new(&sums);
        let mut dx_first: Option<Vec<f32>> = None;
        for (gx, bx) in launches(n64) {
            let w = format!("bn_backward {what} grid {gx}x{bx}");
            let mut dx = Buf::<f32>::poison(bn.len());
            // SAFETY: x, dy and dx hold n floats, gamma, mean and var
            // channels, sums 2·channels doubles.
            check(
                unsafe {
                    (emu.bn_backward)(
                        gx,
                        bx,
                        xb.cptr(),
                        dyb.cptr(),
                        gb.cptr(),
                        m0b.cptr(),
                        v0b.cptr(),
                        sb.cptr(),
                        eps,
                        mf,
                        n64,
                        ch64,
                        sp64,
                        dx.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            let got = dx.get(&w);
            tally.exact(same(&format!("{w} (reference formula)"), &got, &dx_model));
            if dx_first.is_none() {
                dx_first = Some(got);
            }
        }
        let dx = dx_first.expect("a launch");
        // The reference, within tests/tensor.rs's bounds.
        for counts in check_bn_grads(
            &what,
            &bn,
            &x,
            &dy,
            &gamma,
            &centres,
            [&dgamma, &dbeta, &dx],
            [&dg0, &db0, &dx0],
        ) {
            tally.bounded(counts);
        }
    }
    assert!(multi_slice >= 3, "too few shapes with several slices");
    tally.report(
        "batch norm (channel_partials, channel_finish, bn_forward, bn_grad_partials, \
         bn_grad_finish, bn_backward)",
    );
}

/// src/tensor.rs's `bias_grad`: −0.0 (`fill`) for no rows, else
/// `channel_sums` with divisor 1.
fn emulated_bias_grad(
    emu: &Emu,
    dy: &[f32],
    channels: usize,
    inner: usize,
    what: &str,
    tally: &mut Tally,
) -> (Vec<f64>, Vec<f32>) {
    if dy.is_empty() {
        let n = channels as u64;
        let mut db = Buf::<f32>::poison(channels);
        // SAFETY: db holds channels floats.
        check(
            unsafe { (emu.map_fill)(grid(n), THREADS, -0.0, db.ptr(), n) },
            what,
        );
        tally.launch();
        return (vec![-0.0; channels], db.get(what));
    }
    channel_sums(emu, dy, None, channels, inner, 1.0, what, tally)
}

#[test]
fn bias_grad_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    let reference = Reference::<f32>::new();
    // tests/tensor.rs's shapes (outer, channels, inner) and salts, then
    // 300 × 4 × 1, no rows, and a channel of −0.0 only (its sum is −0.0:
    // every sum starts from −0.0, as Rust's f64 `sum`).
    for (s, &shape) in BIAS_GRADS
        .iter()
        .chain(&[(300, 4, 1), (0, 3, 2), (4, 3, 5)])
        .enumerate()
    {
        let (outer, channels, inner) = shape;
        let mut dy = bias_grad_input(shape, s);
        if (outer, channels, inner) == (4, 3, 5) {
            for o in 0..outer {
                dy[(o * channels + 1) * inner..(o * channels + 2) * inner].fill(-0.0);
            }
        }
        let what = format!("bias_grad {outer}×{channels}×{inner}");
        let mut want = vec![f32::NAN; channels];
        reference
            .bias_grad(&dy, inner, &mut want)
            .expect("reference");
        let (sums, got) = emulated_bias_grad(emu, &dy, channels, inner, &what, &mut tally);
        if dy.is_empty() {
            tally.exact(same(&what, &got, &want));
            continue;
        }
        let m = outer * inner;
        for c in 0..channels {
            let model = model_channel_sum(m as u64, -0.0, |t| {
                f64::from(dy[channel_at(t, c as u64, channels as u64, inner as u64)])
            });
            let w = format!("{what} channel {c} (model)");
            tally.exact(same(&w, &[sums[c]], &[model]) + same(&w, &[got[c]], &[model as f32]));
        }
        tally.bounded(check_bias_grad(&what, shape, &dy, &got, &want));
    }
    // The shapes and data of smoothout::testgen::tensor::maps, which the GPU
    // test compares bit for bit: tests/tensor.rs's table says these sums
    // round to the reference's bits.
    for (s, &(outer, channels, inner)) in [
        (1usize, 1usize, 1usize),
        (33, 10, 1),
        (3, 16, 25),
        (2, 5, 7),
    ]
    .iter()
    .enumerate()
    {
        let dy = data(outer * channels * inner, 700 + s as u64);
        let what = format!("bias_grad (maps) {outer}×{channels}×{inner}");
        let mut want = vec![f32::NAN; channels];
        reference
            .bias_grad(&dy, inner, &mut want)
            .expect("reference");
        let (_, got) = emulated_bias_grad(emu, &dy, channels, inner, &what, &mut tally);
        tally.exact(same(&what, &got, &want));
    }
    tally.report("bias_grad (channel_partials, channel_finish, map_fill)");
}

// ---- Softmax cross-entropy -------------------------------------------------

extern "C" fn libm_exp(x: f64) -> f64 {
    libm::exp(x)
}

extern "C" fn libm_log(x: f64) -> f64 {
    libm::log(x)
}

#[test]
fn softmax_xent_rows_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // tests/tensor.rs's (rows, classes, offset) and salts: one class, odd
    // sizes, CIFAR-10 and -100 batches, logits offset by ±10⁴.
    for (s, &case) in SOFTMAXES.iter().enumerate() {
        let (rows, classes, offset) = case;
        let (z, labels) = softmax_inputs(case, s);
        // The reference, row by row and in total.
        let mut d0 = vec![f32::NAN; z.len()];
        let row_loss0: Vec<f64> = z
            .chunks(classes)
            .zip(d0.chunks_mut(classes))
            .zip(&labels)
            .map(|((z, d), &l)| r::softmax_cross_entropy_row(z, l as usize, rows, d))
            .collect();
        let mut d_total = vec![f32::NAN; z.len()];
        let l0 = r::softmax_cross_entropy(classes, &z, &labels, &mut d_total).expect("reference");
        same("reference rows vs total", &d_total, &d0);
        let (rows64, classes64) = (rows as u64, classes as u64);
        let math: [(&str, MathFn, MathFn); 2] = [
            ("libm", Some(libm_exp), Some(libm_log)),
            ("host", None, None),
        ];
        for (name, exp_fn, log_fn) in math {
            for (gx, bx) in launches(rows64) {
                let what = format!(
                    "softmax_xent_rows {rows}×{classes} offset {offset} {name} exp/log \
                     grid {gx}x{bx}"
                );
                let zb = Buf::new(&z);
                let mut d = Buf::<f32>::poison(z.len());
                let mut losses = Buf::<f64>::poison(rows);
                // SAFETY: z and d hold rows·classes floats, labels rows
                // labels below classes, losses rows doubles.
                check(
                    unsafe {
                        (emu.softmax_xent_rows)(
                            gx,
                            bx,
                            exp_fn,
                            log_fn,
                            zb.cptr(),
                            labels.as_ptr(),
                            rows64,
                            classes64,
                            d.ptr(),
                            losses.ptr(),
                        )
                    },
                    &what,
                );
                tally.launch();
                let (d, losses) = (d.get(&what), losses.get(&what));
                // src/tensor.rs: the row losses added on the host in row
                // order from 0.0, over rows.
                let total = losses.iter().fold(0.0f64, |t, l| t + l) / rows as f64;
                if exp_fn.is_some() {
                    tally.exact(same(&format!("{what} (dlogits)"), &d, &d0));
                    tally.exact(same(&format!("{what} (row losses)"), &losses, &row_loss0));
                    tally.exact(same(&format!("{what} (loss)"), &[total], &[l0]));
                } else {
                    // tests/tensor.rs's bounds (each row's loss within
                    // the bound for one row).
                    tally.bounded(check_dlogits(&what, classes, rows, &d, &d0));
                    let mut equal = 0;
                    for (i, (&l, &w)) in losses.iter().zip(&row_loss0).enumerate() {
                        check_loss(&format!("{what} row {i}"), classes, 1, l, w);
                        equal += usize::from(l.to_bits() == w.to_bits());
                    }
                    tally.bounded((rows, equal));
                    check_loss(&what, classes, rows, total, l0);
                    tally.bounded((1, usize::from(total.to_bits() == l0.to_bits())));
                }
            }
        }
    }
    tally.report("softmax_xent_rows");
}

// ---- Maps ------------------------------------------------------------------

#[test]
fn maps_and_add_bias_match_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    let reference = Reference::<f32>::new();
    for (s, n) in [1usize, 3, 65, 1000, 4099, 100_003].into_iter().enumerate() {
        // testgen's maps data, with ±0, NaN, ±∞ and a subnormal.
        let mut x = data(n, 400 + s as u64);
        for (i, v) in [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40]
            .into_iter()
            .enumerate()
            .take(n)
        {
            x[i] = v;
        }
        let y = data(n, 500 + s as u64);
        let dy = data(n, 600);
        let n64 = n as u64;
        let alpha = -0.7f32;
        type Want = fn(&Reference<f32>, &[f32], &[f32], f32, &mut Vec<f32>);
        // (name, reference applied to y, the kernel launch).
        let cases: [(&str, Want); 7] = [
            ("relu", |b, x, _, _, y| b.relu(&x.to_vec(), y).unwrap()),
            ("relu_backward", |b, x, dy, _, y| {
                b.relu_backward(&x.to_vec(), &dy.to_vec(), y).unwrap()
            }),
            ("scale", |b, _, _, a, y| b.scale(a, y).unwrap()),
            ("add", |b, x, _, _, y| b.add(&x.to_vec(), y).unwrap()),
            ("mul", |b, x, _, _, y| b.mul(&x.to_vec(), y).unwrap()),
            ("fill", |b, _, _, a, y| b.fill(a, y).unwrap()),
            ("fill -0", |b, _, _, _, y| b.fill(-0.0, y).unwrap()),
        ];
        for (name, want_fn) in cases {
            let mut want = y.clone();
            want_fn(&reference, &x, &dy, alpha, &mut want);
            for (gx, bx) in launches(n64) {
                let what = format!("{name} n {n} grid {gx}x{bx}");
                let (xb, dyb) = (Buf::new(&x), Buf::new(&dy));
                let mut yb = Buf::new(&y);
                // SAFETY: every buffer holds n floats; the arguments are
                // src/tensor.rs's, in the kernel's order.
                let status = unsafe {
                    match name {
                        "relu" => (emu.map_relu)(gx, bx, xb.cptr(), yb.ptr(), n64),
                        "relu_backward" => {
                            (emu.map_relu_backward)(gx, bx, xb.cptr(), dyb.cptr(), yb.ptr(), n64)
                        }
                        "scale" => (emu.map_scale)(gx, bx, alpha, yb.ptr(), n64),
                        "add" => (emu.map_add)(gx, bx, xb.cptr(), yb.ptr(), n64),
                        "mul" => (emu.map_mul)(gx, bx, xb.cptr(), yb.ptr(), n64),
                        "fill" => (emu.map_fill)(gx, bx, alpha, yb.ptr(), n64),
                        _ => (emu.map_fill)(gx, bx, -0.0, yb.ptr(), n64),
                    }
                };
                check(status, &what);
                tally.launch();
                same(&format!("{what} (x)"), &xb.get(&what), &x);
                tally.exact(same(&what, &yb.get(&what), &want));
            }
        }
    }
    // add_bias: linear (inner 1) and convolution layouts, one block.
    for (s, &(outer, channels, inner)) in [
        (1usize, 1usize, 1usize),
        (33, 10, 1),
        (3, 16, 25),
        (2, 5, 7),
        (8, 16, 64),
        (300, 4, 1),
        (2, 3, 35),
    ]
    .iter()
    .enumerate()
    {
        let n = outer * channels * inner;
        let x = data(n, 700 + s as u64);
        let bias = data(channels, 800 + s as u64);
        let mut want = x.clone();
        reference
            .add_bias(&bias, inner, &mut want)
            .expect("reference");
        let (n64, c64, i64_) = (n as u64, channels as u64, inner as u64);
        for (gx, bx) in launches(n64) {
            let what = format!("add_bias {outer}×{channels}×{inner} grid {gx}x{bx}");
            let bb = Buf::new(&bias);
            let mut xb = Buf::new(&x);
            // SAFETY: bias holds channels floats, x n.
            check(
                unsafe { (emu.add_bias)(gx, bx, bb.cptr(), xb.ptr(), n64, c64, i64_) },
                &what,
            );
            tally.launch();
            tally.exact(same(&what, &xb.get(&what), &want));
        }
    }
    tally.report("maps, add_bias");
}

// ---- The emulation itself -------------------------------------------------

#[test]
fn block_emulation_catches_races_and_divergence() {
    let Some(emu) = emu_or_skip() else { return };
    // 256 values whose sum depends on which are added.
    let input: Vec<f64> = (0..256).map(|i| 1.0 + f64::from(i) * 0.5).collect();
    let run = |which: i32, order: i32| -> (Option<String>, f64) {
        let mut out = [f64::NAN];
        // SAFETY: input holds the 256 doubles the self-test kernels read,
        // out the one they write.
        let status = unsafe { (emu.selftest)(which, order, input.as_ptr(), out.as_mut_ptr()) };
        (status_message(status), out[0])
    };
    let exact: f64 = input.iter().sum();
    // With the barrier: the exact sum in every order.
    for order in [ASCENDING, DESCENDING, SHUFFLED] {
        let (err, sum) = run(1, order);
        assert_eq!(err, None);
        assert_eq!(sum, exact, "synced sum, order {order}");
    }
    // Without it: the orders disagree (a stale shared value is read).
    let racy: Vec<f64> = [ASCENDING, DESCENDING, SHUFFLED]
        .into_iter()
        .map(|order| {
            let (err, sum) = run(0, order);
            assert_eq!(err, None);
            sum
        })
        .collect();
    assert!(
        racy.iter().any(|&s| s != exact),
        "a missing __syncthreads went unnoticed: {racy:?}"
    );
    // Threads at different barriers, or returning while others wait.
    let (err, _) = run(2, ASCENDING);
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("different __syncthreads")),
        "{err:?}"
    );
    let (err, _) = run(3, ASCENDING);
    assert!(
        err.as_deref().is_some_and(|e| e.contains("returned")),
        "{err:?}"
    );
    eprintln!("block emulation: races and divergent barriers are reported ({racy:?} vs {exact})");
}
