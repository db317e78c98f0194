// kernels/tensor.cu compiled for the host (tests/host_emulated_tensor/):
// the shim, then common.cuh and tensor.cu as NVRTC sees them (one text), then
// one entry point per kernel that emulates a launch with the kernel's own
// arguments: grid × block threads one after another for the kernels whose
// threads do not communicate, blocks of coroutines that meet at every
// __syncthreads() for the per-channel reductions. Each returns nullptr, or
// what went wrong.
//
// softmax_xent_rows calls exp and log; here they go through a pointer that
// the caller may set (emu_softmax_xent_rows's exp_fn, log_fn: the Rust
// reference's libm, to compare bit for bit), the host's libm when null. The
// two macros below reroute exactly those calls of tensor.cu and nothing
// else (math.h is already included, so its declarations are untouched).

#include "cuda_shim.h"

#include "common.cuh"

typedef double (*so_math_fn)(double);
static thread_local so_math_fn so_exp_fn = nullptr, so_log_fn = nullptr;
static inline double so_exp(double x) { return so_exp_fn ? so_exp_fn(x) : ::exp(x); }
static inline double so_log(double x) { return so_log_fn ? so_log_fn(x) : ::log(x); }

#define exp(x) so_exp(x)
#define log(x) so_log(x)
#include "tensor.cu"
#undef exp
#undef log

#define SO_EMU extern "C" __attribute__((visibility("default"))) const char *

// ---- GEMM pieces (grid × block threads) ----------------------------------

SO_EMU emu_gemm_empty(unsigned grid, unsigned block, float *c, u64 count, u64 stride_c, u64 mn,
                      float alpha, float beta, int has_beta) {
    return so_run_threads(grid, block,
                          [=] { gemm_empty(c, count, stride_c, mn, alpha, beta, has_beta); });
}

SO_EMU emu_gemm_sum_chunk(unsigned grid, unsigned block, const float *prod, u64 count, u64 mn,
                          int first, double *acc) {
    return so_run_threads(grid, block, [=] { gemm_sum_chunk(prod, count, mn, first, acc); });
}

SO_EMU emu_gemm_sum_finish(unsigned grid, unsigned block, const double *acc, u64 mn,
                           double alpha, double beta, int has_beta, float *c) {
    return so_run_threads(grid, block,
                          [=] { gemm_sum_finish(acc, mn, alpha, beta, has_beta, c); });
}

// ---- Convolution and pooling ---------------------------------------------

// The convolution's and the pooling's sizes come as one array each (the
// test's `conv_args` and `pool_args`, which are src/tensor.rs's), read here
// through a struct that names them in the kernels' order. The launch runs
// before the entry point returns, so the caller's array outlives it.

struct so_conv_sizes {
    u64 batch, channels, height, width, kh, kw, stride, padding, oh, ow;
};

struct so_pool_sizes {
    u64 planes, height, width, kernel, stride, padding, oh, ow;
};

// The Rust side passes [u64; 10] and [u64; 8]: no padding may differ.
static_assert(sizeof(so_conv_sizes) == 10 * sizeof(u64), "so_conv_sizes is [u64; 10]");
static_assert(sizeof(so_pool_sizes) == 8 * sizeof(u64), "so_pool_sizes is [u64; 8]");

SO_EMU emu_im2col(unsigned grid, unsigned block, const float *x, float *col,
                  const so_conv_sizes *s) {
    return so_run_threads(grid, block, [=] {
        im2col(x, col, s->batch, s->channels, s->height, s->width, s->kh, s->kw, s->stride,
               s->padding, s->oh, s->ow);
    });
}

SO_EMU emu_col2im(unsigned grid, unsigned block, const float *col, float *x,
                  const so_conv_sizes *s) {
    return so_run_threads(grid, block, [=] {
        col2im(col, x, s->batch, s->channels, s->height, s->width, s->kh, s->kw, s->stride,
               s->padding, s->oh, s->ow);
    });
}

SO_EMU emu_pool_forward(unsigned grid, unsigned block, const float *x, float *y,
                        const so_pool_sizes *s, int kind) {
    return so_run_threads(grid, block, [=] {
        pool_forward(x, y, s->planes, s->height, s->width, s->kernel, s->stride, s->padding,
                     s->oh, s->ow, kind);
    });
}

SO_EMU emu_pool_backward(unsigned grid, unsigned block, const float *x, const float *dy,
                         float *dx, const so_pool_sizes *s, int kind) {
    return so_run_threads(grid, block, [=] {
        pool_backward(x, dy, dx, s->planes, s->height, s->width, s->kernel, s->stride,
                      s->padding, s->oh, s->ow, kind);
    });
}

// ---- Channel sums and batch normalisation --------------------------------
// The *_partials kernels run as grid_x × grid_y blocks of `block` threads
// (SO_THREADS for tensor.cu's block sums), in thread order `order`.

SO_EMU emu_channel_partials(unsigned grid_x, unsigned grid_y, unsigned block, int order,
                            const float *x, const double *centre, u64 channels, u64 inner, u64 m,
                            u64 per, int squares, double *partial) {
    return so_run_blocks(grid_x, grid_y, block, order, [=] {
        channel_partials(x, centre, channels, inner, m, per, squares, partial);
    });
}

SO_EMU emu_channel_finish(unsigned grid, unsigned block, const double *partial, u64 channels,
                          u64 slices, double divisor, double *out64, float *out32) {
    return so_run_threads(grid, block, [=] {
        channel_finish(partial, channels, slices, divisor, out64, out32);
    });
}

SO_EMU emu_bn_forward(unsigned grid, unsigned block, const float *x, const float *gamma,
                      const float *beta, const float *mean, const float *var, double eps, u64 n,
                      u64 channels, u64 spatial, float *y) {
    return so_run_threads(grid, block, [=] {
        bn_forward(x, gamma, beta, mean, var, eps, n, channels, spatial, y);
    });
}

SO_EMU emu_bn_grad_partials(unsigned grid_x, unsigned grid_y, unsigned block, int order,
                            const float *x, const float *dy, const float *mean, const float *var,
                            double eps, u64 channels, u64 spatial, u64 m, u64 per, double *pg,
                            double *pb) {
    return so_run_blocks(grid_x, grid_y, block, order, [=] {
        bn_grad_partials(x, dy, mean, var, eps, channels, spatial, m, per, pg, pb);
    });
}

SO_EMU emu_bn_grad_finish(unsigned grid, unsigned block, const double *pg, const double *pb,
                          u64 channels, u64 slices, double *sums, float *dgamma, float *dbeta) {
    return so_run_threads(grid, block, [=] {
        bn_grad_finish(pg, pb, channels, slices, sums, dgamma, dbeta);
    });
}

SO_EMU emu_bn_backward(unsigned grid, unsigned block, const float *x, const float *dy,
                       const float *gamma, const float *mean, const float *var,
                       const double *sums, double eps, double m, u64 n, u64 channels,
                       u64 spatial, float *dx) {
    return so_run_threads(grid, block, [=] {
        bn_backward(x, dy, gamma, mean, var, sums, eps, m, n, channels, spatial, dx);
    });
}

// ---- Softmax cross-entropy -----------------------------------------------

SO_EMU emu_softmax_xent_rows(unsigned grid, unsigned block, so_math_fn exp_fn,
                             so_math_fn log_fn, const float *z, const u32 *labels, u64 rows,
                             u64 classes, float *d, double *loss) {
    so_exp_fn = exp_fn;
    so_log_fn = log_fn;
    const char *err = so_run_threads(
        grid, block, [=] { softmax_xent_rows(z, labels, rows, classes, d, loss); });
    so_exp_fn = nullptr;
    so_log_fn = nullptr;
    return err;
}

// ---- Maps ------------------------------------------------------------------

SO_EMU emu_map_relu(unsigned grid, unsigned block, const float *x, float *y, u64 n) {
    return so_run_threads(grid, block, [=] { map_relu(x, y, n); });
}

SO_EMU emu_map_relu_backward(unsigned grid, unsigned block, const float *x, const float *dy,
                             float *dx, u64 n) {
    return so_run_threads(grid, block, [=] { map_relu_backward(x, dy, dx, n); });
}

SO_EMU emu_map_scale(unsigned grid, unsigned block, float alpha, float *x, u64 n) {
    return so_run_threads(grid, block, [=] { map_scale(alpha, x, n); });
}

SO_EMU emu_map_add(unsigned grid, unsigned block, const float *x, float *y, u64 n) {
    return so_run_threads(grid, block, [=] { map_add(x, y, n); });
}

SO_EMU emu_map_mul(unsigned grid, unsigned block, const float *x, float *y, u64 n) {
    return so_run_threads(grid, block, [=] { map_mul(x, y, n); });
}

SO_EMU emu_map_fill(unsigned grid, unsigned block, float value, float *x, u64 n) {
    return so_run_threads(grid, block, [=] { map_fill(value, x, n); });
}

SO_EMU emu_add_bias(unsigned grid, unsigned block, const float *bias, float *x, u64 n,
                    u64 channels, u64 inner) {
    return so_run_threads(grid, block, [=] { add_bias(bias, x, n, channels, inner); });
}

// ---- The block emulation's own checks ------------------------------------
// Kernels that are wrong on purpose, to show that the emulation notices.

// A block sum without the barrier before the tree: thread t reads
// sh[t + h] before or after its owner wrote it, depending on the order.
// Both sums leave -1 in shared memory, so that a stale read is seen.
extern "C" __global__ void so_racy_sum(const double *in, double *out) {
    __shared__ double sh[256];
    sh[threadIdx.x] = in[threadIdx.x];
    for (u32 h = 128; h > 0; h >>= 1) {
        if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = sh[0];
    __syncthreads();
    sh[threadIdx.x] = -1.0;
}

// The same block sum with the barrier: the same bits in every order.
extern "C" __global__ void so_synced_sum(const double *in, double *out) {
    __shared__ double sh[256];
    sh[threadIdx.x] = in[threadIdx.x];
    so_block_sum(sh);
    if (threadIdx.x == 0) out[0] = sh[0];
    __syncthreads();
    sh[threadIdx.x] = -1.0;
}

// Half the block waits at one barrier, half at another.
extern "C" __global__ void so_divergent_barrier() {
    if (threadIdx.x < 128) {
        __syncthreads();
    } else {
        __syncthreads();
    }
}

// Thread 0 returns while the others wait.
extern "C" __global__ void so_early_return() {
    if (threadIdx.x == 0) return;
    __syncthreads();
}

SO_EMU emu_selftest(int which, int order, const double *in, double *out) {
    switch (which) {
        case 0: return so_run_blocks(1, 1, 256, order, [=] { so_racy_sum(in, out); });
        case 1: return so_run_blocks(1, 1, 256, order, [=] { so_synced_sum(in, out); });
        case 2: return so_run_blocks(1, 1, 256, order, [] { so_divergent_barrier(); });
        default: return so_run_blocks(1, 1, 256, order, [] { so_early_return(); });
    }
}
