// Shared device functions: Philox4x32-10, the unit-noise layout of
// smoothout::unit, and the row sums of squares of smoothout::reference.
//
// Every function here must give core's bits exactly. The kernels are
// compiled with --fmad=false (no fused multiply-add contraction), so each
// `a * b + c` rounds twice, as in the Rust reference. This header also
// compiles as plain C (gcc -ffp-contract=off), which is how the CPU-only
// test `host_compiled_device_functions_match_core` checks it without a GPU.

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SO_FN __device__ __forceinline__
#define SO_BITS(x) __float_as_uint(x)
#define SO_FLOAT(u) __uint_as_float(u)
#define SO_MULHI(a, b) __umulhi((a), (b))
#else
#include <math.h>
#include <string.h>
#define SO_FN static inline
static inline unsigned int so_bits(float x) { unsigned int u; memcpy(&u, &x, 4); return u; }
static inline float so_float(unsigned int u) { float x; memcpy(&x, &u, 4); return x; }
#define SO_BITS(x) so_bits(x)
#define SO_FLOAT(u) so_float(u)
#define SO_MULHI(a, b) ((unsigned int)(((unsigned long long)(a) * (b)) >> 32))
#endif

typedef unsigned int u32;
typedef unsigned long long u64;

#define SO_M0 0xD2511F53u
#define SO_M1 0xCD9E8D57u
#define SO_W0 0x9E3779B9u
#define SO_W1 0xBB67AE85u

// Philox4x32-10 of the block at counter [lo32(b), hi32(b), 0, 0] under key
// (k0, k1): the four words of elements 4b .. 4b + 3.
SO_FN void so_philox(u64 b, u32 k0, u32 k1, u32 out[4]) {
    u32 c0 = (u32)b, c1 = (u32)(b >> 32), c2 = 0, c3 = 0;
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            k0 += SO_W0;
            k1 += SO_W1;
        }
        u32 hi0 = SO_MULHI(SO_M0, c0), lo0 = SO_M0 * c0;
        u32 hi1 = SO_MULHI(SO_M1, c2), lo1 = SO_M1 * c2;
        u32 n0 = hi1 ^ c1 ^ k0;
        u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// (2k + 1)·2^-24 − 1 for k = x >> 8, in two exact steps.
SO_FN float so_uniform(u32 x) {
    return (float)(x >> 8) * 1.1920928955078125e-07f + -0.999999940395355224609375f;
}

// libm's logf (FreeBSD e_logf.c), for 0 < x < inf (the Gaussian's u1).
SO_FN float so_logf(float x) {
    u32 ix = SO_BITS(x);
    int k = 0;
    if (ix < 0x00800000u) {  // subnormal: scale up by 2^25
        k -= 25;
        x = x * 33554432.0f;
        ix = SO_BITS(x);
    } else if (ix == 0x3f800000u) {
        return 0.0f;
    }
    ix += 0x3f800000u - 0x3f3504f3u;
    k += (int)(ix >> 23) - 0x7f;
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    x = SO_FLOAT(ix);
    float f = x - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float w = z * z;
    float t1 = w * (0.40000972152f + w * 0.24279078841f);
    float t2 = z * (0.66666662693f + w * 0.28498786688f);
    float r = t2 + t1;
    float hfsq = 0.5f * f * f;
    float dk = (float)k;
    return s * (hfsq + r) + dk * 9.0580006145e-06f - hfsq + f + dk * 6.9313812256e-01f;
}

// libm's k_sinf and k_cosf (FreeBSD), on [-pi/4, pi/4] in double.
SO_FN float so_k_sinf(double x) {
    double z = x * x;
    double w = z * z;
    double r = -0.000198393348360966317347 + z * 0.0000027183114939898219064;
    double s = z * x;
    return (float)((x + s * (-0.166666666416265235595 + z * 0.0083333293858894631756)) + s * w * r);
}

SO_FN float so_k_cosf(double x) {
    double z = x * x;
    double w = z * z;
    double r = -0.00138867637746099294692 + z * 0.0000243904487962774090654;
    return (float)(((1.0 + z * -0.499999997251031003120) + w * 0.0416666233237390631894) + (w * z) * r);
}

// libm's sincosf (FreeBSD s_sincosf.c) for |x| < 2^28·pi/2; the Gaussian
// only ever asks for x in [0, 2pi).
SO_FN void so_sincosf(float x, float *sin_out, float *cos_out) {
    const double p1 = 1.5707963267948966;  // 0.5 * 3.1415926535897931160, 1..4 times
    const double p2 = 2.0 * p1, p3 = 3.0 * p1, p4 = 4.0 * p1;
    u32 ix = SO_BITS(x);
    int sign = (int)(ix >> 31);
    ix &= 0x7fffffffu;
    double xd = (double)x;
    float s, c;
    if (ix <= 0x3f490fdau) {
        if (ix < 0x39800000u) {
            s = x;
            c = 1.0f;
        } else {
            s = so_k_sinf(xd);
            c = so_k_cosf(xd);
        }
    } else if (ix <= 0x407b53d1u) {
        if (ix <= 0x4016cbe3u) {
            if (sign) {
                s = -so_k_cosf(xd + p1);
                c = so_k_sinf(xd + p1);
            } else {
                s = so_k_cosf(p1 - xd);
                c = so_k_sinf(p1 - xd);
            }
        } else if (sign) {
            s = -so_k_sinf(xd + p2);
            c = -so_k_cosf(xd + p2);
        } else {
            s = -so_k_sinf(xd - p2);
            c = -so_k_cosf(xd - p2);
        }
    } else if (ix <= 0x40e231d5u) {
        if (ix <= 0x40afeddfu) {
            if (sign) {
                s = so_k_cosf(xd + p3);
                c = -so_k_sinf(xd + p3);
            } else {
                s = -so_k_cosf(xd - p3);
                c = so_k_sinf(xd - p3);
            }
        } else if (sign) {
            s = so_k_sinf(xd + p4);
            c = so_k_cosf(xd + p4);
        } else {
            s = so_k_sinf(xd - p4);
            c = so_k_cosf(xd - p4);
        }
    } else if (ix >= 0x7f800000u) {
        s = x - x;
        c = s;
    } else {
        // Medium-size reduction of rem_pio2f (round to nearest multiple of pi/2).
        const double toint = 6755399441055744.0;  // 1.5 / DBL_EPSILON
        double fn = (xd * 6.36619772367581382433e-01 + toint) - toint;
        int n = (int)fn;
        double y = xd - fn * 1.57079631090164184570e+00 - fn * 1.58932547735281966916e-08;
        float ks = so_k_sinf(y), kc = so_k_cosf(y);
        switch (n & 3) {
            case 0: s = ks; c = kc; break;
            case 1: s = kc; c = -ks; break;
            case 2: s = -ks; c = -kc; break;
            default: s = -kc; c = ks; break;
        }
    }
    *sin_out = s;
    *cos_out = c;
}

// The Gaussian pair of words (xa, xb): Box–Muller with libm's functions.
SO_FN void so_gaussian(u32 xa, u32 xb, float *z0, float *z1) {
    float u1 = (float)((xa >> 8) + 1u) * 5.9604644775390625e-08f;
    float u2 = (float)(xb >> 8) * 5.9604644775390625e-08f;
    float r = sqrtf(-2.0f * so_logf(u1));
    float phi = 6.28318530717958647692f * u2;
    float s, c;
    so_sincosf(phi, &s, &c);
    *z0 = r * c;
    *z1 = r * s;
}

// Unit kinds, as smoothout::Unit.
#define SO_UNIFORM 0
#define SO_GAUSSIAN 1

// The unit draw of parameter element i alone (one Philox block).
SO_FN float so_unit_at(u64 i, u32 k0, u32 k1, int unit) {
    u32 w[4];
    so_philox(i >> 2, k0, k1, w);
    if (unit == SO_UNIFORM) return so_uniform(w[i & 3]);
    u32 pair = (u32)(i & 2);
    float z0, z1;
    so_gaussian(w[pair], w[pair + 1], &z0, &z1);
    return (i & 1) ? z1 : z0;
}

// The four unit draws of block b (elements 4b .. 4b + 3).
SO_FN void so_unit_block(u64 b, u32 k0, u32 k1, int unit, float u[4]) {
    u32 w[4];
    so_philox(b, k0, k1, w);
    if (unit == SO_UNIFORM) {
        for (int j = 0; j < 4; ++j) u[j] = so_uniform(w[j]);
    } else {
        so_gaussian(w[0], w[1], &u[0], &u[1]);
        so_gaussian(w[2], w[3], &u[2], &u[3]);
    }
}
