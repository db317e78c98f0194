// kernels/noise.cu compiled for the host (tests/host_emulated_kernels.rs):
// the shim, then common.cuh and noise.cu as NVRTC sees them (one text), then
// one entry point per kernel that emulates a launch of grid × block threads
// with the kernel's own arguments. Each returns nullptr, or what went wrong.

#include "cuda_shim.h"

#include "common.cuh"

#include "noise.cu"

#define SO_EMU extern "C" __attribute__((visibility("default"))) const char *

// θ's description, the arguments the noise kernels take after their buffers
// and length: the test's NoiseArgs (#[repr(C)], the same fields in the same
// order). The launch runs before the entry point returns, so the caller's
// struct outlives it.
struct so_noise {
    u32 key[2];
    int unit, mode;
    float s;
    const float *scales;
    u64 cols;
};

// An AdaSmoothOut draw, as filter_scales and perturb_filter_norm take it
// between w and their per-row output: the test's RowArgs.
struct so_rows {
    u64 rows, cols;
    u32 key[2];
    int unit;
    double strength;
};

SO_EMU emu_fill_noise(unsigned grid, unsigned block, float *out, u64 n, u32 k0, u32 k1, int kind,
                      float s, u32 threshold) {
    return so_run_threads(grid, block, [=] { fill_noise(out, n, k0, k1, kind, s, threshold); });
}

SO_EMU emu_perturb(unsigned grid, unsigned block, float *w, u64 n, const so_noise *a) {
    return so_run_threads(grid, block, [=] {
        perturb(w, n, a->key[0], a->key[1], a->unit, a->mode, a->s, a->scales, a->cols);
    });
}

SO_EMU emu_write_noise(unsigned grid, unsigned block, const float *w, float *out, u64 n,
                       const so_noise *a) {
    return so_run_threads(grid, block, [=] {
        write_noise(w, out, n, a->key[0], a->key[1], a->unit, a->mode, a->s, a->scales, a->cols);
    });
}

SO_EMU emu_denoise(unsigned grid, unsigned block, float *w, u64 n, const so_noise *a) {
    return so_run_threads(grid, block, [=] {
        denoise(w, n, a->key[0], a->key[1], a->unit, a->mode, a->s, a->scales, a->cols);
    });
}

SO_EMU emu_drop_out(unsigned grid, unsigned block, float *w, u64 n, u32 k0, u32 k1,
                    u32 threshold) {
    return so_run_threads(grid, block, [=] { drop_out(w, n, k0, k1, threshold); });
}

SO_EMU emu_denoise_sgd(unsigned grid, unsigned block, float *w, const float *grad, float *vel,
                       u64 n, int has_noise, const so_noise *a, float lr, float mu, float wd) {
    return so_run_threads(grid, block, [=] {
        denoise_sgd(w, grad, vel, n, has_noise, a->key[0], a->key[1], a->unit, a->mode, a->s, a->scales,
                    a->cols, lr, mu, wd);
    });
}

SO_EMU emu_axpy(unsigned grid, unsigned block, float alpha, const float *x, float *y, u64 n) {
    return so_run_threads(grid, block, [=] { axpy(alpha, x, y, n); });
}

SO_EMU emu_row_norms(unsigned grid, unsigned block, const float *w, u64 rows, u64 cols,
                     double *out) {
    return so_run_warps(grid, block, [=] { row_norms(w, rows, cols, out); });
}

SO_EMU emu_filter_scales(unsigned grid, unsigned block, const float *w, const so_rows *a,
                         float *out) {
    return so_run_warps(grid, block, [=] {
        filter_scales(w, a->rows, a->cols, a->key[0], a->key[1], a->unit, a->strength, out);
    });
}

SO_EMU emu_perturb_filter_norm(unsigned grid, unsigned block, float *w, const so_rows *a,
                               float *scales) {
    return so_run_warps(grid, block, [=] {
        perturb_filter_norm(w, a->rows, a->cols, a->key[0], a->key[1], a->unit, a->strength, scales);
    });
}
