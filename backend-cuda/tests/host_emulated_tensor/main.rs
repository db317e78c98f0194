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
//! ([`emulation::block_emulation_catches_races_and_divergence`] shows that
//! it does).
//!
//! Every kernel is launched as `src/tensor.rs` launches it: the same
//! argument order, and the same grids, whose arithmetic is private to that
//! file and `src/lib.rs` and is therefore replicated here (`grid`,
//! `slices_of`, `channel_grid`, the `gemm_summed` chunk plan; nothing new is
//! exposed by the crate); the sizes of the convolution and of the pooling
//! (`conv_args`, `pool_args`) reach the driver as one array each, which it
//! passes on in the kernel's order. Grid-stride kernels run again with a
//! small grid (3 blocks of 64) that goes round its loop several times; the
//! reductions run again with one and two blocks along x (blocks stepping
//! over the channels) and in every thread order. Buffers sit between canaries that
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
//!   this crate): the statistics, `dγ`, `dβ` and `bias_grad` (per slice, per
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

mod batch_norm;
mod bias_grad;
mod conv;
mod emulation;
mod gemm;
mod maps;
mod pool;
mod reductions;
mod softmax;

#[path = "../emu/buf.rs"]
mod buf;
use buf::{same, Buf, Elem};
#[path = "../emu/build.rs"]
mod build;
#[path = "../support/compile.rs"]
mod compile;
use build::{check, emu_driver, grid, launches, status_message, Status, THREADS};
#[path = "../../src/launch_sizes.rs"]
mod launch_sizes;
use launch_sizes::{conv_args, pool_args};
#[path = "../support/tensor_bounds.rs"]
mod bounds;
use bounds::{
    bias_grad_input, bn_inputs, check_bias_grad, check_bn_grads, check_bn_stats, check_dlogits,
    check_loss, data, gemm_summed_bound, softmax_inputs, within, BIAS_GRADS, BNS, SOFTMAXES,
};
use smoothout::tensor::reference as r;
use smoothout::tensor::{
    BatchNorm, BatchedGemm, Conv2d, Gemm, GemmBatch, MapOps, Pool2d, PoolKind,
};
use smoothout::testgen::tensor::{batch_norm_layouts, batch_norm_passes};
use smoothout::Reference;

type GemmEmptyFn = unsafe extern "C" fn(u32, u32, *mut f32, u64, u64, u64, f32, f32, i32) -> Status;
type GemmSumChunkFn = unsafe extern "C" fn(u32, u32, *const f32, u64, u64, i32, *mut f64) -> Status;
type GemmSumFinishFn =
    unsafe extern "C" fn(u32, u32, *const f64, u64, f64, f64, i32, *mut f32) -> Status;
/// `(grid, block, input, output, sizes)`: `conv_args`, the driver's
/// `so_conv_sizes`.
type ConvFn = unsafe extern "C" fn(u32, u32, *const f32, *mut f32, *const [u64; 10]) -> Status;
/// `(grid, block, x, y, sizes, kind)`: `pool_args`, the driver's
/// `so_pool_sizes`.
type PoolForwardFn =
    unsafe extern "C" fn(u32, u32, *const f32, *mut f32, *const [u64; 8], i32) -> Status;
/// `(grid, block, x, dy, dx, sizes, kind)`, as [`PoolForwardFn`].
type PoolBackwardFn = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *mut f32,
    *const [u64; 8],
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

emu_driver! {
    /// The compiled driver's entry points: `emu_<kernel>(grid, block, the
    /// kernel's own arguments…)`; the block reductions take `(grid_x, grid_y,
    /// block, order, …)`.
    struct Emu from ("tensor_driver.cpp", "tensor.cu") {
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

/// A launch's outputs, compared bit for bit with another launch's.
trait Outputs {
    /// Asserts that `self` and `other` are the same bits; returns how many
    /// elements were compared.
    fn same_as(&self, what: &str, other: &Self) -> usize;
}

impl<T: Elem> Outputs for Vec<T> {
    fn same_as(&self, what: &str, other: &Self) -> usize {
        same(what, self, other)
    }
}

impl<A: Outputs, B: Outputs> Outputs for (A, B) {
    fn same_as(&self, what: &str, other: &Self) -> usize {
        self.0.same_as(what, &other.0) + self.1.same_as(what, &other.1)
    }
}

impl<A: Outputs, B: Outputs, C: Outputs> Outputs for (A, B, C) {
    fn same_as(&self, what: &str, other: &Self) -> usize {
        self.0.same_as(what, &other.0)
            + self.1.same_as(what, &other.1)
            + self.2.same_as(what, &other.2)
    }
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

    /// A repeated launch: keeps the first launch's outputs in `first`;
    /// every later launch's must be the same bits (run to run, and in
    /// every grid and thread order).
    fn repeat<O: Outputs>(&mut self, what: &str, first: &mut Option<O>, got: O) {
        match first {
            Some(f) => self.exact(got.same_as(what, f)),
            None => *first = Some(got),
        }
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} emulated launches, {} elements equal bit for bit to the reference \
             or the order model, {} within the bounds ({} of them the same bits)",
            self.launches, self.exact, self.bounded, self.bounded_equal
        );
    }
}
