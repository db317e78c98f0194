// kernels/noise.cu compiled for the host (tests/host_emulated_kernels.rs):
// the shim, then common.cuh and noise.cu as NVRTC sees them (one text), then
// one entry point per kernel that emulates a launch of grid × block threads
// with the kernel's own arguments. Each returns nullptr, or what went wrong.

#include "cuda_shim.h"

#include "common.cuh"

#include "noise.cu"

#define SO_EMU extern "C" __attribute__((visibility("default"))) const char *

SO_EMU emu_fill_noise(unsigned grid, unsigned block, float *out, u64 n, u32 k0, u32 k1, int kind,
                      float s, u32 threshold) {
    return so_run_threads(grid, block, [=] { fill_noise(out, n, k0, k1, kind, s, threshold); });
}

SO_EMU emu_perturb(unsigned grid, unsigned block, float *w, u64 n, u32 k0, u32 k1, int unit,
                   int mode, float s, const float *scales, u64 cols) {
    return so_run_threads(grid, block,
                          [=] { perturb(w, n, k0, k1, unit, mode, s, scales, cols); });
}

SO_EMU emu_write_noise(unsigned grid, unsigned block, const float *w, float *out, u64 n, u32 k0,
                       u32 k1, int unit, int mode, float s, const float *scales, u64 cols) {
    return so_run_threads(
        grid, block, [=] { write_noise(w, out, n, k0, k1, unit, mode, s, scales, cols); });
}

SO_EMU emu_denoise(unsigned grid, unsigned block, float *w, u64 n, u32 k0, u32 k1, int unit,
                   int mode, float s, const float *scales, u64 cols) {
    return so_run_threads(grid, block,
                          [=] { denoise(w, n, k0, k1, unit, mode, s, scales, cols); });
}

SO_EMU emu_drop_out(unsigned grid, unsigned block, float *w, u64 n, u32 k0, u32 k1,
                    u32 threshold) {
    return so_run_threads(grid, block, [=] { drop_out(w, n, k0, k1, threshold); });
}

SO_EMU emu_denoise_sgd(unsigned grid, unsigned block, float *w, const float *grad, float *vel,
                       u64 n, int has_noise, u32 k0, u32 k1, int unit, int mode, float s,
                       const float *scales, u64 cols, float lr, float mu, float wd) {
    return so_run_threads(grid, block, [=] {
        denoise_sgd(w, grad, vel, n, has_noise, k0, k1, unit, mode, s, scales, cols, lr, mu, wd);
    });
}

SO_EMU emu_axpy(unsigned grid, unsigned block, float alpha, const float *x, float *y, u64 n) {
    return so_run_threads(grid, block, [=] { axpy(alpha, x, y, n); });
}

SO_EMU emu_row_norms(unsigned grid, unsigned block, const float *w, u64 rows, u64 cols,
                     double *out) {
    return so_run_warps(grid, block, [=] { row_norms(w, rows, cols, out); });
}

SO_EMU emu_filter_scales(unsigned grid, unsigned block, const float *w, u64 rows, u64 cols, u32 k0,
                         u32 k1, int unit, double strength, float *out) {
    return so_run_warps(grid, block,
                        [=] { filter_scales(w, rows, cols, k0, k1, unit, strength, out); });
}

SO_EMU emu_perturb_filter_norm(unsigned grid, unsigned block, float *w, u64 rows, u64 cols, u32 k0,
                               u32 k1, int unit, double strength, float *scales) {
    return so_run_warps(grid, block, [=] {
        perturb_filter_norm(w, rows, cols, k0, k1, unit, strength, scales);
    });
}
