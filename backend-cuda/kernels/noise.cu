// Noise, perturbation, de-noising and the fused SGD update (see
// smoothout::reference for the arithmetic each kernel reproduces).
//
// Element-wise kernels give one Philox block (four consecutive elements)
// to each thread, in grid-stride loops; the noise is made in registers, so
// perturb and de-noise read and write w once. Per-row kernels give one warp
// to each row: lane l sums elements l, l + 32, ... in f64 and the warp
// combines the lanes with shfl_down (h = 16, 8, 4, 2, 1), the order of the
// reference's 32-lane sums, so row norms and AdaSmoothOut scales are
// bit-identical to the CPU's.

// Scaling modes of perturb / denoise / denoise_sgd (smoothout::reference::Scale).
#define SO_FIXED 0
#define SO_PER_ELEMENT 1
#define SO_ROWS 2

#define SO_GRID_STRIDE(b, blocks) \
    for (u64 b = (u64)blockIdx.x * blockDim.x + threadIdx.x; b < (blocks); \
         b += (u64)gridDim.x * blockDim.x)

// Elements 4b .. 4b + 3 of p (zeros past n): one 16-byte load when all four
// exist and p is 16-byte aligned (cudaMalloc'd buffers are), else one by one.
SO_FN void so_load4(const float *p, u64 b, u64 n, float x[4]) {
    if (4 * b + 3 < n && (((u64)p) & 15) == 0) {
        float4 v = reinterpret_cast<const float4 *>(p)[b];
        x[0] = v.x;
        x[1] = v.y;
        x[2] = v.z;
        x[3] = v.w;
    } else {
        for (int j = 0; j < 4; ++j) x[j] = 4 * b + j < n ? p[4 * b + j] : 0.0f;
    }
}

SO_FN void so_store4(float *p, u64 b, u64 n, const float x[4]) {
    if (4 * b + 3 < n && (((u64)p) & 15) == 0) {
        reinterpret_cast<float4 *>(p)[b] = make_float4(x[0], x[1], x[2], x[3]);
    } else {
        for (int j = 0; j < 4; ++j)
            if (4 * b + j < n) p[4 * b + j] = x[j];
    }
}

// kind 0: s·uniform, 1: s·gaussian, 2: Bernoulli indicator (1 = dropped).
extern "C" __global__ void fill_noise(float *out, u64 n, u32 k0, u32 k1, int kind, float s,
                                      u32 threshold) {
    SO_GRID_STRIDE(b, (n + 3) / 4) {
        float x[4];
        if (kind == 2) {
            u32 w[4];
            so_philox(b, k0, k1, w);
            for (int j = 0; j < 4; ++j) x[j] = (w[j] >> 8) < threshold ? 1.0f : 0.0f;
        } else {
            so_unit_block(b, k0, k1, kind, x);
            for (int j = 0; j < 4; ++j) x[j] = __fmul_rn(s, x[j]);
        }
        so_store4(out, b, n, x);
    }
}

SO_FN float so_scale(int mode, float s, const float *scales, u64 cols, u64 i) {
    return mode == SO_ROWS ? scales[i / cols] : s;
}

// θ for one element of weight x and unit draw u: sc·|x|·u with per-element
// scaling, sc·u otherwise.
SO_FN float so_theta(int mode, float sc, float x, float u) {
    return mode == SO_PER_ELEMENT ? __fmul_rn(__fmul_rn(sc, fabsf(x)), u) : __fmul_rn(sc, u);
}

// out_i ← f(w_i, u_i, sc_i) for every element, u_i the unit draw and sc_i
// the scale of element i: the loop perturb, write_noise and denoise share
// (out may be w).
template <class F>
SO_FN void so_each_element(const float *w, float *out, u64 n, u32 k0, u32 k1, int unit, int mode,
                           float s, const float *scales, u64 cols, F f) {
    SO_GRID_STRIDE(b, (n + 3) / 4) {
        float u[4], x[4];
        so_unit_block(b, k0, k1, unit, u);
        so_load4(w, b, n, x);
        for (int j = 0; j < 4; ++j)
            x[j] = f(x[j], u[j], so_scale(mode, s, scales, cols, min(4 * b + j, n - 1)));
        so_store4(out, b, n, x);
    }
}

// w ← w + θ.
extern "C" __global__ void perturb(float *w, u64 n, u32 k0, u32 k1, int unit, int mode, float s,
                                   const float *scales, u64 cols) {
    so_each_element(w, w, n, k0, k1, unit, mode, s, scales, cols, [=](float x, float u, float sc) {
        return __fadd_rn(x, so_theta(mode, sc, x, u));
    });
}

// out ← θ, the noise perturb adds to w (w is read for per-element scaling).
extern "C" __global__ void write_noise(const float *w, float *out, u64 n, u32 k0, u32 k1,
                                       int unit, int mode, float s, const float *scales,
                                       u64 cols) {
    so_each_element(w, out, n, k0, k1, unit, mode, s, scales, cols,
                    [=](float x, float u, float sc) { return so_theta(mode, sc, x, u); });
}

SO_FN float so_denoise_one(float x, float u, int mode, float sc) {
    if (mode == SO_PER_ELEMENT) {
        float su = __fmul_rn(sc, u);
        float f = signbit(x) ? __fsub_rn(1.0f, su) : __fadd_rn(1.0f, su);
        return __fdiv_rn(x, f);
    }
    return __fsub_rn(x, __fmul_rn(sc, u));
}

// w ← w − θ (θ regenerated).
extern "C" __global__ void denoise(float *w, u64 n, u32 k0, u32 k1, int unit, int mode, float s,
                                   const float *scales, u64 cols) {
    so_each_element(w, w, n, k0, k1, unit, mode, s, scales, cols,
                    [=](float x, float u, float sc) { return so_denoise_one(x, u, mode, sc); });
}

// w_i ← 0 where the Bernoulli draw drops it.
extern "C" __global__ void drop_out(float *w, u64 n, u32 k0, u32 k1, u32 threshold) {
    SO_GRID_STRIDE(b, (n + 3) / 4) {
        u32 x[4];
        so_philox(b, k0, k1, x);
        for (int j = 0; j < 4 && 4 * b + j < n; ++j)
            if ((x[j] >> 8) < threshold) w[4 * b + j] = 0.0f;
    }
}

SO_FN void so_sgd(float *w, float g, float *v, float lr, float mu, float wd) {
    float gg = __fadd_rn(g, __fmul_rn(wd, *w));
    *v = __fadd_rn(__fmul_rn(mu, *v), gg);
    *w = __fsub_rn(*w, __fmul_rn(lr, *v));
}

// De-noise (when has_noise) and SGD with momentum and weight decay, one pass.
extern "C" __global__ void denoise_sgd(float *w, const float *grad, float *vel, u64 n, int has_noise,
                                       u32 k0, u32 k1, int unit, int mode, float s,
                                       const float *scales, u64 cols, float lr, float mu, float wd) {
    SO_GRID_STRIDE(b, (n + 3) / 4) {
        float u[4] = {0.0f, 0.0f, 0.0f, 0.0f}, x[4], g[4], v[4];
        if (has_noise) so_unit_block(b, k0, k1, unit, u);
        so_load4(w, b, n, x);
        so_load4(grad, b, n, g);
        so_load4(vel, b, n, v);
        for (int j = 0; j < 4; ++j) {
            if (has_noise)
                x[j] = so_denoise_one(x[j], u[j], mode, so_scale(mode, s, scales, cols, min(4 * b + j, n - 1)));
            so_sgd(&x[j], g[j], &v[j], lr, mu, wd);
        }
        so_store4(w, b, n, x);
        so_store4(vel, b, n, v);
    }
}

// y ← y + alpha · x.
extern "C" __global__ void axpy(float alpha, const float *x, float *y, u64 n) {
    SO_GRID_STRIDE(i, n) { y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i])); }
}

// The reference's 32-lane tree: lane l adds lane l + h, h = 16 .. 1; lane 0
// holds the total.
SO_FN double so_warp_total(double v) {
    for (int h = 16; h > 0; h /= 2) v += __shfl_down_sync(0xffffffffu, v, h);
    return v;
}

// Per row r (one warp each): the L2 norm of w's row and of the unit draws of
// the row's elements (parameter indices r·cols ..).
SO_FN void so_row_norms(const float *w, u64 r, u64 cols, u32 k0, u32 k1, int unit, int lane,
                        int want_unit, double *wn, double *un) {
    double sw = 0.0, su = 0.0;
    for (u64 k = lane; k < cols; k += 32) {
        double x = (double)w[r * cols + k];
        sw += x * x;
        if (want_unit) {
            double u = (double)so_unit_at(r * cols + k, k0, k1, unit);
            su += u * u;
        }
    }
    *wn = sqrt(so_warp_total(sw));
    *un = sqrt(so_warp_total(su));
}

#define SO_WARP_ROWS(r, rows)                                                          \
    int lane = threadIdx.x & 31;                                                       \
    u64 warps = ((u64)gridDim.x * blockDim.x) / 32;                                    \
    for (u64 r = ((u64)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < (rows); r += warps)

// out_r ← ‖w_r‖ in f64.
extern "C" __global__ void row_norms(const float *w, u64 rows, u64 cols, double *out) {
    SO_WARP_ROWS(r, rows) {
        double wn, un;
        so_row_norms(w, r, cols, 0, 0, SO_UNIFORM, lane, 0, &wn, &un);
        if (lane == 0) out[r] = wn;
    }
}

SO_FN float so_filter_scale(double strength, double wn, double un) {
    return (float)(strength * wn / (un + 1e-6));
}

// out_r ← strength · ‖w_r‖ / (‖u_r‖ + 1e-6), rounded to f32 once.
extern "C" __global__ void filter_scales(const float *w, u64 rows, u64 cols, u32 k0, u32 k1,
                                         int unit, double strength, float *out) {
    SO_WARP_ROWS(r, rows) {
        double wn, un;
        so_row_norms(w, r, cols, k0, k1, unit, lane, 1, &wn, &un);
        if (lane == 0) out[r] = so_filter_scale(strength, wn, un);
    }
}

// AdaSmoothOut in one launch: each row's scale, then w_r ← w_r + s_r · u_r.
extern "C" __global__ void perturb_filter_norm(float *w, u64 rows, u64 cols, u32 k0, u32 k1,
                                               int unit, double strength, float *scales) {
    SO_WARP_ROWS(r, rows) {
        double wn, un;
        so_row_norms(w, r, cols, k0, k1, unit, lane, 1, &wn, &un);
        float s = __shfl_sync(0xffffffffu, so_filter_scale(strength, wn, un), 0);
        if (lane == 0) scales[r] = s;
        for (u64 k = lane; k < cols; k += 32) {
            u64 i = r * cols + k;
            w[i] = __fadd_rn(w[i], __fmul_rn(s, so_unit_at(i, k0, k1, unit)));
        }
    }
}
