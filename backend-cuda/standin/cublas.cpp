// The stand-in libcublas: a handle, its stream, and single-precision GEMM
// (`cublasSgemm_v2`, `cublasSgemmStridedBatched`) with cuBLAS's column-major
// semantics: op(A) is m × k, op(B) is k × n, C is m × n, element (i, j) of a
// matrix with leading dimension ld at i + j·ld. Each element of C is
// α·Σ_p op(A)[i,p]·op(B)[p,j] + β·C[i,j], the sum accumulated in f64 in
// order p = 0, 1, … and the result rounded once to f32; β = 0 ignores C's old
// values (NaN included), as cuBLAS does.
//
// Arguments are checked as cuBLAS checks them (CUBLAS_STATUS_INVALID_VALUE:
// negative sizes, an unknown operation, a leading dimension below the rows it
// must hold, a negative batch count); a null handle is
// CUBLAS_STATUS_NOT_INITIALIZED. The matrices' extents must lie inside live
// allocations of the stand-in driver; where they do not, a real GPU faults and
// cuBLAS reports CUBLAS_STATUS_EXECUTION_FAILED, which is what the stand-in
// returns (with a line on stderr).

#include "standin.h"

#include <stdio.h>

#include <vector>

enum {
    SO_BLAS_SUCCESS = 0,
    SO_BLAS_NOT_INITIALIZED = 1,
    SO_BLAS_INVALID_VALUE = 7,
    SO_BLAS_EXECUTION_FAILED = 13,
};

struct so_blas_handle {
    void *stream;
};

typedef so_blas_handle *cublasHandle_t;
typedef int cublasStatus_t;


SO_API cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return SO_BLAS_INVALID_VALUE;
    *handle = new so_blas_handle{nullptr};
    return SO_BLAS_SUCCESS;
}

SO_API cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return SO_BLAS_NOT_INITIALIZED;
    delete handle;
    return SO_BLAS_SUCCESS;
}

SO_API cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, void *stream) {
    if (!handle) return SO_BLAS_NOT_INITIALIZED;
    handle->stream = stream;
    return SO_BLAS_SUCCESS;
}

static bool so_op_ok(int op) { return op == 0 || op == 1 || op == 2; }

// Whether a rows × cols matrix with leading dimension ld at `p` lies inside
// one allocation (an empty one needs nothing).
static bool so_matrix_ok(const float *p, long long rows, long long cols, long long ld) {
    if (rows == 0 || cols == 0) return true;
    size_t last = (size_t)(rows - 1) + (size_t)(cols - 1) * (size_t)ld;
    return so_standin_device_range((unsigned long long)p, (last + 1) * sizeof(float)) != 0;
}

static long long so_max1(long long x) { return x > 1 ? x : 1; }

// Checks every argument of a (strided-batched) GEMM; `count` is 1 and the
// strides 0 for the plain call.
static int so_gemm_check(const char *op, cublasHandle_t handle, int ta, int tb, int m, int n,
                         int k, const float *alpha, const float *a, int lda, long long sa,
                         const float *b, int ldb, long long sb, const float *beta, float *c,
                         int ldc, long long sc, int count) {
    if (!handle) return SO_BLAS_NOT_INITIALIZED;
    long long ar = ta == 0 ? m : k, ac = ta == 0 ? k : m;
    long long br = tb == 0 ? k : n, bc = tb == 0 ? n : k;
    if (!so_op_ok(ta) || !so_op_ok(tb) || m < 0 || n < 0 || k < 0 || count < 0 ||
        lda < so_max1(ar) || ldb < so_max1(br) || ldc < so_max1(m) || !alpha || !beta)
        return so_report(SO_BLAS_INVALID_VALUE, "cublas", "%s: invalid argument (transa %d, transb %d, m %d, n %d, k %d, lda "
                            "%d, ldb %d, ldc %d, batch %d)",
                            op, ta, tb, m, n, k, lda, ldb, ldc, count);
    for (int i = 0; i < count; ++i) {
        bool reads_ab = k > 0 && *alpha != 0.0f;
        if ((reads_ab && !so_matrix_ok(a + i * sa, ar, ac, lda)) ||
            (reads_ab && !so_matrix_ok(b + i * sb, br, bc, ldb)) ||
            !so_matrix_ok(c + i * sc, m, n, ldc))
            return so_report(SO_BLAS_EXECUTION_FAILED, "cublas", "%s: batch %d: a matrix reaches outside its allocation (m %d, n "
                                "%d, k %d, lda %d, ldb %d, ldc %d)",
                                op, i, m, n, k, lda, ldb, ldc);
    }
    return SO_BLAS_SUCCESS;
}

// One GEMM, f64 accumulation, one rounding per element of C.
static void so_gemm_one(int ta, int tb, int m, int n, int k, double alpha, const float *a,
                        int lda, const float *b, int ldb, double beta, float *c, int ldc) {
    // op(A) as a dense m × k column-major f64 matrix.
    std::vector<double> opa((size_t)m * (size_t)k);
    for (int p = 0; p < k; ++p)
        for (int i = 0; i < m; ++i)
            opa[(size_t)p * m + i] =
                ta == 0 ? a[i + (size_t)p * lda] : a[p + (size_t)i * lda];
    std::vector<double> acc((size_t)m);
    for (int j = 0; j < n; ++j) {
        for (int i = 0; i < m; ++i) acc[i] = 0.0;
        if (alpha != 0.0)
            for (int p = 0; p < k; ++p) {
                double bv = tb == 0 ? b[p + (size_t)j * ldb] : b[j + (size_t)p * ldb];
                const double *col = &opa[(size_t)p * m];
                for (int i = 0; i < m; ++i) acc[i] += col[i] * bv;
            }
        float *cj = c + (size_t)j * ldc;
        for (int i = 0; i < m; ++i) {
            double v = alpha * acc[i];
            if (beta != 0.0) v += beta * (double)cj[i];
            cj[i] = (float)v;
        }
    }
}

SO_API cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, int ta, int tb, int m, int n, int k,
                                     const float *alpha, const float *a, int lda, const float *b,
                                     int ldb, const float *beta, float *c, int ldc) {
    int r = so_gemm_check("cublasSgemm", handle, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0,
                          beta, c, ldc, 0, 1);
    if (r != SO_BLAS_SUCCESS) return r;
    if (m == 0 || n == 0) return SO_BLAS_SUCCESS;
    so_gemm_one(ta, tb, m, n, k, *alpha, a, lda, b, ldb, *beta, c, ldc);
    return SO_BLAS_SUCCESS;
}

SO_API cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, int ta, int tb, int m,
                                                int n, int k, const float *alpha, const float *a,
                                                int lda, long long sa, const float *b, int ldb,
                                                long long sb, const float *beta, float *c,
                                                int ldc, long long sc, int count) {
    int r = so_gemm_check("cublasSgemmStridedBatched", handle, ta, tb, m, n, k, alpha, a, lda,
                          sa, b, ldb, sb, beta, c, ldc, sc, count);
    if (r != SO_BLAS_SUCCESS) return r;
    if (m == 0 || n == 0) return SO_BLAS_SUCCESS;
    for (int i = 0; i < count; ++i)
        so_gemm_one(ta, tb, m, n, k, *alpha, a + i * sa, lda, b + i * sb, ldb, *beta, c + i * sc,
                    ldc);
    return SO_BLAS_SUCCESS;
}
