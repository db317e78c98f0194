// The CUDA built-ins that kernels/common.cuh, kernels/noise.cu and
// kernels/tensor.cu use, emulated on the host, so that the kernels compile
// as C++ and run on a CPU (tests/host_emulated_kernels.rs,
// tests/host_emulated_tensor/). Compile with -ffp-contract=off
// -fno-fast-math: every float and double operation then rounds once, as on
// the device with --fmad=false.
//
// Threads: blockIdx, threadIdx, blockDim and gridDim are thread_local, so
// several host threads may emulate launches at once. so_run_threads runs
// every (block, thread) of a grid one after another (enough for kernels
// whose threads do not communicate). so_run_warps runs each warp's 32 lanes
// as coroutines (so_ctx, below) on the calling thread: a lane runs until it
// reaches a shuffle, and when all 32 lanes have reached it, every lane gets
// the value of its source lane and they run on, one after another again. It
// is deterministic, and a warp whose lanes do not all meet at a shuffle
// (divergence, or a lane that returns early) is reported as an error.
//
// Blocks (kernels/tensor.cu): so_run_blocks runs a gridDim.x × gridDim.y
// grid block after block, each block's threads as coroutines on the
// calling thread. A thread runs until it reaches __syncthreads(); when
// every thread of the block has reached the same __syncthreads() (the same
// call site), they all run on. A thread that returns while others wait,
// or threads waiting at different call sites, is reported as an error.
// Between two barriers the threads run one after another in a chosen
// order (ascending, descending, or shuffled afresh at every barrier), so
// that a missing __syncthreads() (a shared-memory race) shows as results
// that depend on the order. __shared__ variables are `static
// thread_local`: one copy per host thread, which the blocks of a launch
// (run one after another on that thread) reuse, as blocks reuse a
// multiprocessor's shared memory; it is not cleared between blocks.

#ifndef SO_CUDA_SHIM_H
#define SO_CUDA_SHIM_H

#if defined(__APPLE__) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 600  // ucontext
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <bit>
#include <functional>
#include <vector>

// float and double arithmetic must round to its own type at every step (SSE,
// not x87 extended precision), as the device does.
static_assert(FLT_EVAL_METHOD == 0, "the emulation needs FLT_EVAL_METHOD == 0");

// common.cuh takes the path NVRTC compiles: SO_FN is __device__
// __forceinline__ and the bit casts and high multiply are the built-ins
// below (its plain-C path is checked by host_device_functions.rs).
#define __CUDACC_RTC__ 1

#define __global__
#define __device__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static thread_local

struct dim3 {
    unsigned x, y, z;
};
thread_local dim3 blockIdx, threadIdx, blockDim, gridDim;

struct alignas(16) float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

static inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
static inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
static inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
static inline double __longlong_as_double(unsigned long long u) {
    return std::bit_cast<double>(u);
}

// Round-to-nearest IEEE operations: the host's plain operators.
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }

// CUDA's integer min (only the 64-bit overload noise.cu uses; another use
// fails to compile rather than convert silently).
static inline unsigned long long min(unsigned long long a, unsigned long long b) {
    return a < b ? a : b;
}

// ---- Launches ---------------------------------------------------------

static inline void so_fail(const char *what) {
    fprintf(stderr, "cuda_shim: %s\n", what);
    abort();
}

// Every (block, thread) of a gridDim.x × blockDim.x launch, in order.
static inline const char *so_run_threads(unsigned grid, unsigned block,
                                         const std::function<void()> &body) {
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx = dim3{b, 0, 0};
            threadIdx = dim3{t, 0, 0};
            body();
        }
    return nullptr;
}

// ---- Coroutines ---------------------------------------------------------
//
// so_ctx is a suspended coroutine; so_ctx_switch(from, to) suspends the
// caller into `from` and resumes `to`. On x86-64 the switch saves the
// callee-saved registers on the coroutine's own stack and swaps the stack
// pointer (no system call); elsewhere it is ucontext's swapcontext, which
// also saves the signal mask with a system call per switch (correct, about
// 20 times slower). A coroutine's entry function never returns: it ends by
// switching back to its scheduler.

#if defined(__x86_64__) && !defined(SO_SHIM_UCONTEXT)
struct so_ctx {
    void *sp;
};
extern "C" void so_ctx_swap(void **save_sp, void *load_sp);
extern "C" void so_ctx_start();
// so_ctx_swap pushes rbp, rbx, r12–r15, stores rsp, loads the other rsp and
// pops the same six; so_ctx_start is where a new coroutine's first swap
// "returns" to: it calls the entry function left in r12.
__asm__(R"(
    .text
    .p2align 4
    .weak so_ctx_swap
    .hidden so_ctx_swap
    .type so_ctx_swap, @function
so_ctx_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size so_ctx_swap, .-so_ctx_swap
    .weak so_ctx_start
    .hidden so_ctx_start
    .type so_ctx_start, @function
so_ctx_start:
    callq *%r12
    ud2
    .size so_ctx_start, .-so_ctx_start
)");

static inline void so_make_context(so_ctx *ctx, char *stack, size_t size, void (*entry)()) {
    // The six registers so_ctx_swap pops, then so_ctx_start as the return
    // address; sp ≡ 8 (mod 16), so that so_ctx_start's call enters `entry`
    // with the stack aligned as the ABI requires.
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    void **sp = (void **)(top - 72);
    for (int i = 0; i < 6; ++i) sp[i] = nullptr;
    sp[3] = (void *)entry;  // r12
    sp[6] = (void *)so_ctx_start;
    ctx->sp = sp;
}

static inline void so_ctx_switch(so_ctx *from, so_ctx *to) { so_ctx_swap(&from->sp, to->sp); }
#else
struct so_ctx {
    ucontext_t uc;
};

// (Out of line: getcontext returns twice as far as the compiler knows.)
__attribute__((noinline)) static void so_make_context(so_ctx *ctx, char *stack, size_t size,
                                                      void (*entry)()) {
    if (getcontext(&ctx->uc) != 0) so_fail("getcontext");
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = nullptr;
    makecontext(&ctx->uc, entry, 0);
}

static inline void so_ctx_switch(so_ctx *from, so_ctx *to) {
    if (swapcontext(&from->uc, &to->uc) != 0) so_fail("swapcontext");
}
#endif

enum { SO_LANE_RUNNING, SO_LANE_AT_SHUFFLE, SO_LANE_DONE };
enum { SO_SHFL_DOWN, SO_SHFL_IDX };

struct so_warp_state {
    so_ctx sched;
    so_ctx ctx[32];
    int state[32];
    int op[32];
    int arg[32];
    int size[32];
    unsigned long long in[32], out[32];
    int current;
    const std::function<void()> *body;
};
thread_local so_warp_state *so_warp = nullptr;

static void so_lane_entry() {
    (*so_warp->body)();
    int lane = so_warp->current;
    so_warp->state[lane] = SO_LANE_DONE;
    so_ctx_switch(&so_warp->ctx[lane], &so_warp->sched);
    so_fail("a finished lane was resumed");
}

// Every warp of a gridDim.x × blockDim.x launch, one after another, its 32
// lanes as coroutines. Returns nullptr, or what went wrong.
static inline const char *so_run_warps(unsigned grid, unsigned block,
                                       const std::function<void()> &body) {
    if (block % 32 != 0) return "blockDim.x is not a multiple of 32";
    const size_t stack = 256 * 1024;
    // The stacks, kept from launch to launch on this host thread.
    thread_local std::vector<char> stacks(32 * stack);
    so_warp_state st;
    st.body = &body;
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    const char *err = nullptr;
    so_warp = &st;
    for (unsigned b = 0; b < grid && !err; ++b) {
        for (unsigned w = 0; w < block / 32 && !err; ++w) {
            for (int l = 0; l < 32; ++l) {
                so_make_context(&st.ctx[l], &stacks[l * stack], stack, so_lane_entry);
                st.state[l] = SO_LANE_RUNNING;
            }
            for (;;) {
                for (int l = 0; l < 32; ++l) {
                    if (st.state[l] != SO_LANE_RUNNING) continue;
                    blockIdx = dim3{b, 0, 0};
                    threadIdx = dim3{w * 32 + (unsigned)l, 0, 0};
                    st.current = l;
                    so_ctx_switch(&st.sched, &st.ctx[l]);
                }
                int done = 0;
                for (int l = 0; l < 32; ++l) done += st.state[l] == SO_LANE_DONE;
                if (done == 32) break;
                if (done > 0) {
                    err = "divergent warp: some lanes returned while others wait at a shuffle";
                    break;
                }
                for (int l = 0; l < 32; ++l)
                    if (st.op[l] != st.op[0] || st.size[l] != st.size[0]) {
                        err = "divergent warp: lanes at different shuffles";
                        break;
                    }
                if (err) break;
                for (int l = 0; l < 32; ++l) {
                    int src = l;
                    if (st.op[l] == SO_SHFL_DOWN) {
                        if (st.arg[l] >= 0 && l + st.arg[l] < 32) src = l + st.arg[l];
                    } else {
                        src = st.arg[l] & 31;
                    }
                    st.out[l] = st.in[src];
                    st.state[l] = SO_LANE_RUNNING;
                }
            }
        }
    }
    so_warp = nullptr;
    return err;
}

template <class T>
static inline T so_shuffle(unsigned mask, T v, int op, int arg) {
    static_assert(sizeof(T) <= 8);
    if (!so_warp) so_fail("a shuffle outside so_run_warps");
    if (mask != 0xffffffffu) so_fail("only full-warp shuffles are emulated");
    so_warp_state &st = *so_warp;
    int lane = st.current;
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    st.in[lane] = bits;
    st.op[lane] = op;
    st.arg[lane] = arg;
    st.size[lane] = (int)sizeof(T);
    st.state[lane] = SO_LANE_AT_SHUFFLE;
    so_ctx_switch(&st.ctx[lane], &st.sched);
    T r;
    memcpy(&r, &st.out[lane], sizeof(T));
    return r;
}

// lane l gets lane l + delta's value, its own where l + delta > 31.
static inline double __shfl_down_sync(unsigned mask, double v, unsigned delta) {
    return so_shuffle(mask, v, SO_SHFL_DOWN, (int)delta);
}
static inline float __shfl_down_sync(unsigned mask, float v, unsigned delta) {
    return so_shuffle(mask, v, SO_SHFL_DOWN, (int)delta);
}
// every lane gets lane src's value.
static inline double __shfl_sync(unsigned mask, double v, int src) {
    return so_shuffle(mask, v, SO_SHFL_IDX, src);
}
static inline float __shfl_sync(unsigned mask, float v, int src) {
    return so_shuffle(mask, v, SO_SHFL_IDX, src);
}

// ---- Blocks and __syncthreads ------------------------------------------

enum { SO_THREAD_RUNNING, SO_THREAD_AT_BARRIER, SO_THREAD_DONE };
// The order in which a block's threads run between two barriers.
enum { SO_ORDER_ASCENDING, SO_ORDER_DESCENDING, SO_ORDER_SHUFFLED };

struct so_block_state {
    so_ctx sched;
    std::vector<so_ctx> ctx;
    std::vector<int> state;
    std::vector<void *> site;  // where each waiting thread called __syncthreads
    unsigned current;
    const std::function<void()> *body;
};
thread_local so_block_state *so_block = nullptr;

static void so_thread_entry() {
    (*so_block->body)();
    unsigned t = so_block->current;
    so_block->state[t] = SO_THREAD_DONE;
    so_ctx_switch(&so_block->ctx[t], &so_block->sched);
    so_fail("a finished thread was resumed");
}

// Waits until every thread of the block is here (out of line, so that its
// return address names the call site).
__attribute__((noinline, unused)) static void __syncthreads() {
    if (!so_block) so_fail("__syncthreads outside so_run_blocks");
    so_block_state &st = *so_block;
    unsigned t = st.current;
    st.site[t] = __builtin_return_address(0);
    st.state[t] = SO_THREAD_AT_BARRIER;
    so_ctx_switch(&st.ctx[t], &st.sched);
}

// Every block of a gridDim.x × gridDim.y launch of `block` threads, one
// after another (x fastest), its threads as coroutines that meet at every
// __syncthreads(); `order` is an SO_ORDER_*. Returns nullptr, or what went
// wrong.
static inline const char *so_run_blocks(unsigned grid_x, unsigned grid_y, unsigned block,
                                        int order, const std::function<void()> &body) {
    if (block == 0 || block > 1024) return "blockDim.x outside 1 ..= 1024";
    const size_t stack = 64 * 1024;
    // The stacks, kept from launch to launch on this host thread.
    thread_local std::vector<char> stacks;
    if (stacks.size() < block * stack) stacks.resize(block * stack);
    so_block_state st;
    st.ctx.resize(block);
    st.state.assign(block, SO_THREAD_DONE);
    st.site.assign(block, nullptr);
    st.body = &body;
    std::vector<unsigned> perm(block);
    unsigned long long rng = 0x9E3779B97F4A7C15ull;  // the shuffles' xorshift state
    gridDim = dim3{grid_x, grid_y, 1};
    blockDim = dim3{block, 1, 1};
    const char *err = nullptr;
    so_block = &st;
    for (unsigned by = 0; by < grid_y && !err; ++by) {
        for (unsigned bx = 0; bx < grid_x && !err; ++bx) {
            for (unsigned t = 0; t < block; ++t) {
                so_make_context(&st.ctx[t], &stacks[t * stack], stack, so_thread_entry);
                st.state[t] = SO_THREAD_RUNNING;
            }
            for (;;) {
                for (unsigned i = 0; i < block; ++i)
                    perm[i] = order == SO_ORDER_DESCENDING ? block - 1 - i : i;
                if (order == SO_ORDER_SHUFFLED) {
                    for (unsigned i = block - 1; i > 0; --i) {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        unsigned j = (unsigned)(rng % (i + 1));
                        unsigned tmp = perm[i];
                        perm[i] = perm[j];
                        perm[j] = tmp;
                    }
                }
                for (unsigned i = 0; i < block; ++i) {
                    unsigned t = perm[i];
                    if (st.state[t] != SO_THREAD_RUNNING) continue;
                    blockIdx = dim3{bx, by, 0};
                    threadIdx = dim3{t, 0, 0};
                    st.current = t;
                    so_ctx_switch(&st.sched, &st.ctx[t]);
                }
                unsigned done = 0;
                for (unsigned t = 0; t < block; ++t) done += st.state[t] == SO_THREAD_DONE;
                if (done == block) break;
                if (done > 0) {
                    err = "divergent block: some threads returned while others wait at "
                          "__syncthreads";
                    break;
                }
                for (unsigned t = 0; t < block; ++t)
                    if (st.site[t] != st.site[0]) {
                        err = "divergent block: threads at different __syncthreads";
                        break;
                    }
                if (err) break;
                for (unsigned t = 0; t < block; ++t) st.state[t] = SO_THREAD_RUNNING;
            }
        }
    }
    so_block = nullptr;
    return err;
}

#endif
