// The stand-in libcuda: the part of the CUDA driver API that cudarc calls for
// this backend, on the CPU. Device memory is host memory (a CUdeviceptr is a
// host address), every operation runs at once on the calling thread (a
// stream has nothing to wait for), and a kernel launch runs the
// host-compiled build of the same kernels/*.cu source through cuda_shim.h.
// Only the functions this backend calls (through cudarc, and the tests
// through cudarc's `result` layer) are exported: cudarc resolves each on
// first use, so the rest are simply absent.
//
// What it checks, returning the code the real driver returns:
// - cuInit first (CUDA_ERROR_NOT_INITIALIZED), a current context for memory,
//   modules and launches (CUDA_ERROR_INVALID_CONTEXT), valid handles
//   (CUDA_ERROR_INVALID_HANDLE), device 0 only (CUDA_ERROR_INVALID_DEVICE);
// - cuMemAlloc of 0 bytes (CUDA_ERROR_INVALID_VALUE; cuMemAllocAsync of 0
//   bytes gives the null pointer, as cudarc's `null` expects);
// - copies and memsets: every device range inside one live allocation
//   (CUDA_ERROR_INVALID_VALUE);
// - modules: PTX text (CUDA_ERROR_INVALID_IMAGE otherwise) whose entries are
//   read for their parameter sizes and static shared memory; a kernel must
//   have a host build with the same parameter sizes (CUDA_ERROR_NOT_FOUND);
// - launches: block and grid within the device's limits, dynamic plus
//   static shared memory within 48 KiB (CUDA_ERROR_INVALID_VALUE); every
//   pointer argument inside a live allocation (CUDA_ERROR_ILLEGAL_ADDRESS,
//   which a real device reports at the next synchronisation).
// Each failure also prints one line on stderr saying what was wrong.

#include "standin.h"


#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda_shim.h"

#include "common.cuh"

#include "noise.cu"
#include "tensor.cu"

// ---- The device ----------------------------------------------------------

static const char *const SO_DEVICE_NAME = "smoothout CUDA stand-in (CPU)";
static const int SO_MAJOR = 9, SO_MINOR = 0;
static const unsigned SO_MAX_THREADS = 1024;
static const unsigned SO_MAX_BLOCK[3] = {1024, 1024, 64};
static const unsigned SO_MAX_GRID[3] = {2147483647u, 65535, 65535};
static const size_t SO_SHARED = 48 * 1024;

static int so_attribute(int attr, int *value) {
    switch (attr) {
        case 1: *value = (int)SO_MAX_THREADS; return 1;       // MAX_THREADS_PER_BLOCK
        case 2: *value = (int)SO_MAX_BLOCK[0]; return 1;      // MAX_BLOCK_DIM_X
        case 3: *value = (int)SO_MAX_BLOCK[1]; return 1;      // MAX_BLOCK_DIM_Y
        case 4: *value = (int)SO_MAX_BLOCK[2]; return 1;      // MAX_BLOCK_DIM_Z
        case 5: *value = (int)SO_MAX_GRID[0]; return 1;       // MAX_GRID_DIM_X
        case 6: *value = (int)SO_MAX_GRID[1]; return 1;       // MAX_GRID_DIM_Y
        case 7: *value = (int)SO_MAX_GRID[2]; return 1;       // MAX_GRID_DIM_Z
        case 8: *value = (int)SO_SHARED; return 1;            // MAX_SHARED_MEMORY_PER_BLOCK
        case 10: *value = 32; return 1;                       // WARP_SIZE
        case 16: *value = 1; return 1;                        // MULTIPROCESSOR_COUNT
        case 75: *value = SO_MAJOR; return 1;                 // COMPUTE_CAPABILITY_MAJOR
        case 76: *value = SO_MINOR; return 1;                 // COMPUTE_CAPABILITY_MINOR
        case 97: *value = (int)SO_SHARED; return 1;           // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        case 115: *value = 1; return 1;                       // MEMORY_POOLS_SUPPORTED
        default: return 0;
    }
}


// ---- Kernels: host builds, found by name ----------------------------------

// How a kernel's threads are run: one after another (no communication),
// warps of coroutines (shuffles), or blocks of coroutines (__syncthreads).
enum so_runner { SO_RUN_THREADS, SO_RUN_WARPS, SO_RUN_BLOCKS };

struct so_kernel {
    const char *name;
    so_runner runner;
    std::vector<size_t> sizes;   // each parameter's size in bytes
    std::vector<bool> pointer;   // whether it is a pointer
    // Runs the launch with the arguments read from `params`.
    const char *(*run)(void **params, unsigned gx, unsigned gy, unsigned bx);
};

template <class T>
static T so_load(void *p) {
    T v;
    memcpy(&v, p, sizeof(T));
    return v;
}

template <auto F, so_runner R>
struct so_host;

template <class... A, void (*F)(A...), so_runner R>
struct so_host<F, R> {
    template <size_t... I>
    static const char *run_with(void **p, unsigned gx, unsigned gy, unsigned bx,
                                std::index_sequence<I...>) {
        std::tuple<A...> args{so_load<A>(p[I])...};
        std::function<void()> body = [&args] { std::apply(F, args); };
        switch (R) {
            case SO_RUN_THREADS: return so_run_threads(gx, bx, body);
            case SO_RUN_WARPS: return so_run_warps(gx, bx, body);
            default: return so_run_blocks(gx, gy, bx, SO_ORDER_SHUFFLED, body);
        }
    }
    static const char *run(void **p, unsigned gx, unsigned gy, unsigned bx) {
        return run_with(p, gx, gy, bx, std::index_sequence_for<A...>{});
    }
    static so_kernel make(const char *name) {
        return so_kernel{name, R, {sizeof(A)...}, {std::is_pointer_v<A>...}, run};
    }
};

#define SO_THREADS_KERNEL(f) so_host<f, SO_RUN_THREADS>::make(#f)
#define SO_WARPS_KERNEL(f) so_host<f, SO_RUN_WARPS>::make(#f)
#define SO_BLOCKS_KERNEL(f) so_host<f, SO_RUN_BLOCKS>::make(#f)

// Every kernel of kernels/noise.cu and kernels/tensor.cu.
static const std::vector<so_kernel> &so_kernels() {
    static const std::vector<so_kernel> k = {
        SO_THREADS_KERNEL(fill_noise),
        SO_THREADS_KERNEL(perturb),
        SO_THREADS_KERNEL(write_noise),
        SO_THREADS_KERNEL(denoise),
        SO_THREADS_KERNEL(drop_out),
        SO_THREADS_KERNEL(denoise_sgd),
        SO_THREADS_KERNEL(axpy),
        SO_WARPS_KERNEL(row_norms),
        SO_WARPS_KERNEL(filter_scales),
        SO_WARPS_KERNEL(perturb_filter_norm),
        SO_THREADS_KERNEL(gemm_empty),
        SO_THREADS_KERNEL(gemm_sum_chunk),
        SO_THREADS_KERNEL(gemm_sum_finish),
        SO_THREADS_KERNEL(im2col),
        SO_THREADS_KERNEL(col2im),
        SO_THREADS_KERNEL(pool_forward),
        SO_THREADS_KERNEL(pool_backward),
        SO_BLOCKS_KERNEL(channel_partials),
        SO_THREADS_KERNEL(channel_finish),
        SO_THREADS_KERNEL(bn_forward),
        SO_BLOCKS_KERNEL(bn_grad_partials),
        SO_THREADS_KERNEL(bn_grad_finish),
        SO_THREADS_KERNEL(bn_backward),
        SO_THREADS_KERNEL(softmax_xent_rows),
        SO_THREADS_KERNEL(map_relu),
        SO_THREADS_KERNEL(map_relu_backward),
        SO_THREADS_KERNEL(map_scale),
        SO_THREADS_KERNEL(map_add),
        SO_THREADS_KERNEL(map_mul),
        SO_THREADS_KERNEL(map_fill),
        SO_THREADS_KERNEL(add_bias),
    };
    return k;
}

static const so_kernel *so_find_kernel(const std::string &name) {
    for (const so_kernel &k : so_kernels())
        if (name == k.name) return &k;
    return nullptr;
}

// ---- State ------------------------------------------------------------------

struct CUctx_st { int device; };
struct CUstream_st { int unused; };
struct CUfunc_st;
struct CUmod_st {
    std::map<std::string, CUfunc_st *> functions;
};
struct CUfunc_st {
    const so_kernel *kernel;  // null: the PTX entry has no host build
    std::string name;
    std::vector<size_t> ptx_sizes;
    size_t static_shared;
};

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef CUctx_st *CUcontext;
typedef CUstream_st *CUstream;
typedef CUmod_st *CUmodule;
typedef CUfunc_st *CUfunction;

static std::mutex so_mu;
static std::atomic<bool> so_initialised{false};
static CUctx_st so_primary{0};
static std::atomic<int> so_primary_refs{0};
static std::set<CUstream> so_streams;
static std::set<CUmodule> so_modules;
static std::map<uintptr_t, size_t> so_allocs;  // base → bytes
thread_local CUcontext so_current = nullptr;

#define SO_LOCK std::lock_guard<std::mutex> so_guard(so_mu)
#define SO_NEED_INIT \
    if (!so_initialised) return SO_NOT_INITIALIZED
#define SO_NEED_CONTEXT                                        \
    SO_NEED_INIT;                                              \
    if (so_current == nullptr || so_primary_refs == 0) return SO_INVALID_CONTEXT

// Whether [p, p + bytes) lies in one live allocation (lock held).
static bool so_in_allocation(uintptr_t p, size_t bytes) {
    auto it = so_allocs.upper_bound(p);
    if (it == so_allocs.begin()) return false;
    --it;
    uintptr_t base = it->first;
    size_t size = it->second;
    if (p >= base + size) return false;
    return bytes <= size - (p - base);
}

SO_API int so_standin_device_range(unsigned long long ptr, size_t bytes) {
    SO_LOCK;
    return so_in_allocation((uintptr_t)ptr, bytes);
}

static bool so_stream_ok(CUstream s) { return s == nullptr || so_streams.count(s) != 0; }

// ---- Initialisation, devices, contexts -----------------------------------------

SO_API CUresult cuInit(unsigned flags) {
    if (flags != 0) return so_report(SO_INVALID_VALUE, "cuda", "cuInit: flags must be 0");
    SO_LOCK;
    so_initialised = true;
    return SO_SUCCESS;
}

SO_API CUresult cuDeviceGetCount(int *count) {
    SO_NEED_INIT;
    if (!count) return SO_INVALID_VALUE;
    *count = 1;
    return SO_SUCCESS;
}

SO_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    SO_NEED_INIT;
    if (!device) return SO_INVALID_VALUE;
    if (ordinal != 0) return SO_INVALID_DEVICE;
    *device = 0;
    return SO_SUCCESS;
}

SO_API CUresult cuDeviceGetAttribute(int *value, int attr, CUdevice device) {
    SO_NEED_INIT;
    if (!value) return SO_INVALID_VALUE;
    if (device != 0) return SO_INVALID_DEVICE;
    if (!so_attribute(attr, value))
        return so_report(SO_INVALID_VALUE, "cuda", "cuDeviceGetAttribute: attribute %d is not emulated",
                            attr);
    return SO_SUCCESS;
}

SO_API CUresult cuDeviceGetName(char *name, int len, CUdevice device) {
    SO_NEED_INIT;
    if (!name || len <= 0) return SO_INVALID_VALUE;
    if (device != 0) return SO_INVALID_DEVICE;
    snprintf(name, (size_t)len, "%s", SO_DEVICE_NAME);
    return SO_SUCCESS;
}

SO_API CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice device) {
    SO_NEED_INIT;
    if (!ctx) return SO_INVALID_VALUE;
    if (device != 0) return SO_INVALID_DEVICE;
    SO_LOCK;
    ++so_primary_refs;
    *ctx = &so_primary;
    return SO_SUCCESS;
}

SO_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
    SO_NEED_INIT;
    if (device != 0) return SO_INVALID_DEVICE;
    SO_LOCK;
    if (so_primary_refs == 0) return SO_INVALID_CONTEXT;
    --so_primary_refs;
    return SO_SUCCESS;
}

SO_API CUresult cuCtxSetCurrent(CUcontext ctx) {
    SO_NEED_INIT;
    if (ctx != nullptr && ctx != &so_primary) return SO_INVALID_CONTEXT;
    so_current = ctx;
    return SO_SUCCESS;
}

SO_API CUresult cuCtxGetCurrent(CUcontext *ctx) {
    SO_NEED_INIT;
    if (!ctx) return SO_INVALID_VALUE;
    *ctx = so_current;
    return SO_SUCCESS;
}

// ---- Streams (work runs when queued: nothing to wait for) -----------------------

SO_API CUresult cuStreamCreate(CUstream *stream, unsigned flags) {
    SO_NEED_CONTEXT;
    if (!stream || flags > 1) return SO_INVALID_VALUE;
    SO_LOCK;
    *stream = new CUstream_st{0};
    so_streams.insert(*stream);
    return SO_SUCCESS;
}

SO_API CUresult cuStreamDestroy_v2(CUstream stream) {
    SO_NEED_CONTEXT;
    SO_LOCK;
    if (!so_streams.erase(stream)) return SO_INVALID_HANDLE;
    delete stream;
    return SO_SUCCESS;
}

SO_API CUresult cuStreamSynchronize(CUstream stream) {
    SO_NEED_CONTEXT;
    SO_LOCK;
    return so_stream_ok(stream) ? SO_SUCCESS : SO_INVALID_HANDLE;
}

// ---- Memory ----------------------------------------------------------------------

static CUresult so_alloc(CUdeviceptr *ptr, size_t bytes) {
    // 256-byte alignment, as cudaMalloc's.
    size_t rounded = (bytes + 255) / 256 * 256;
    void *p = aligned_alloc(256, rounded);
    if (!p) return SO_OUT_OF_MEMORY;
    SO_LOCK;
    so_allocs[(uintptr_t)p] = bytes;
    *ptr = (CUdeviceptr)(uintptr_t)p;
    return SO_SUCCESS;
}

static CUresult so_free(CUdeviceptr ptr, bool null_ok) {
    if (ptr == 0 && null_ok) return SO_SUCCESS;
    SO_LOCK;
    auto it = so_allocs.find((uintptr_t)ptr);
    if (it == so_allocs.end())
        return so_report(SO_INVALID_VALUE, "cuda", "cuMemFree: 0x%llx is not an allocation's start",
                            ptr);
    so_allocs.erase(it);
    free((void *)(uintptr_t)ptr);
    return SO_SUCCESS;
}

SO_API CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
    SO_NEED_CONTEXT;
    if (!ptr) return SO_INVALID_VALUE;
    if (bytes == 0) return so_report(SO_INVALID_VALUE, "cuda", "cuMemAlloc: 0 bytes");
    return so_alloc(ptr, bytes);
}

SO_API CUresult cuMemAllocAsync(CUdeviceptr *ptr, size_t bytes, CUstream stream) {
    SO_NEED_CONTEXT;
    if (!ptr) return SO_INVALID_VALUE;
    {
        SO_LOCK;
        if (!so_stream_ok(stream)) return SO_INVALID_HANDLE;
    }
    if (bytes == 0) {
        *ptr = 0;
        return SO_SUCCESS;
    }
    return so_alloc(ptr, bytes);
}

SO_API CUresult cuMemFree_v2(CUdeviceptr ptr) {
    SO_NEED_CONTEXT;
    return so_free(ptr, false);
}

SO_API CUresult cuMemFreeAsync(CUdeviceptr ptr, CUstream stream) {
    SO_NEED_CONTEXT;
    {
        SO_LOCK;
        if (!so_stream_ok(stream)) return SO_INVALID_HANDLE;
    }
    return so_free(ptr, true);
}

// Checks a copy's or memset's device ranges and stream.
static CUresult so_check_ranges(const char *op, CUstream stream, CUdeviceptr dst, bool dst_dev,
                                CUdeviceptr src, bool src_dev, size_t bytes) {
    SO_LOCK;
    if (!so_stream_ok(stream)) return SO_INVALID_HANDLE;
    if (bytes == 0) return SO_SUCCESS;
    if (dst_dev && !so_in_allocation((uintptr_t)dst, bytes))
        return so_report(SO_INVALID_VALUE, "cuda", "%s: destination 0x%llx + %zu bytes is not inside one allocation", op,
                            dst, bytes);
    if (src_dev && !so_in_allocation((uintptr_t)src, bytes))
        return so_report(SO_INVALID_VALUE, "cuda", "%s: source 0x%llx + %zu bytes is not inside one allocation", op, src,
                            bytes);
    return SO_SUCCESS;
}

static CUresult so_copy(const char *op, CUstream stream, void *dst, bool dst_dev, const void *src,
                        bool src_dev, size_t bytes) {
    SO_NEED_CONTEXT;
    if ((!dst || !src) && bytes != 0) return SO_INVALID_VALUE;
    CUresult r = so_check_ranges(op, stream, (CUdeviceptr)(uintptr_t)dst, dst_dev,
                                 (CUdeviceptr)(uintptr_t)src, src_dev, bytes);
    if (r != SO_SUCCESS) return r;
    if (bytes) memmove(dst, src, bytes);
    return SO_SUCCESS;
}

SO_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes) {
    return so_copy("cuMemcpyHtoD", nullptr, (void *)(uintptr_t)dst, true, src, false, bytes);
}
SO_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes, CUstream s) {
    return so_copy("cuMemcpyHtoDAsync", s, (void *)(uintptr_t)dst, true, src, false, bytes);
}
SO_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
    return so_copy("cuMemcpyDtoH", nullptr, dst, false, (const void *)(uintptr_t)src, true, bytes);
}
SO_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes, CUstream s) {
    return so_copy("cuMemcpyDtoHAsync", s, dst, false, (const void *)(uintptr_t)src, true, bytes);
}
SO_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return so_copy("cuMemcpyDtoD", nullptr, (void *)(uintptr_t)dst, true,
                   (const void *)(uintptr_t)src, true, bytes);
}
SO_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s) {
    return so_copy("cuMemcpyDtoDAsync", s, (void *)(uintptr_t)dst, true,
                   (const void *)(uintptr_t)src, true, bytes);
}

static CUresult so_memset(const char *op, CUstream stream, CUdeviceptr dst, unsigned char value,
                          size_t bytes) {
    SO_NEED_CONTEXT;
    CUresult r = so_check_ranges(op, stream, dst, true, 0, false, bytes);
    if (r != SO_SUCCESS) return r;
    if (bytes) memset((void *)(uintptr_t)dst, value, bytes);
    return SO_SUCCESS;
}

SO_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t n) {
    return so_memset("cuMemsetD8", nullptr, dst, value, n);
}
SO_API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t n, CUstream s) {
    return so_memset("cuMemsetD8Async", s, dst, value, n);
}

// ---- Modules: PTX text, entries read for their parameters and shared memory ------

// The size in bytes of a PTX scalar type (".u64" → 8), or 0.
static size_t so_ptx_type_size(const std::string &t) {
    if (t.size() < 3 || t[0] != '.') return 0;
    char k = t[1];
    if (k != 'u' && k != 's' && k != 'b' && k != 'f') return 0;
    std::string bits = t.substr(2);
    if (bits == "8") return 1;
    if (bits == "16") return 2;
    if (bits == "32") return 4;
    if (bits == "64") return 8;
    return 0;
}

// The array length of a declaration's name (`x[16]` → 16, `x` → 1).
static size_t so_array_len(const std::string &name) {
    size_t open = name.find('['), close = name.find(']');
    if (open == std::string::npos || close == std::string::npos || close < open) return 1;
    return strtoull(name.c_str() + open + 1, nullptr, 10);
}

// The size of the declaration on `line` (a `.param` or `.shared` line): its
// scalar type's size times its name's array length, or 0.
static size_t so_declared_size(const std::string &line) {
    size_t size = 0, count = 1;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (isspace((unsigned char)line[i]) || line[i] == ',')) ++i;
        size_t j = i;
        while (j < line.size() && !isspace((unsigned char)line[j]) && line[j] != ',' &&
               line[j] != ';')
            ++j;
        std::string tok = line.substr(i, j - i);
        if (!tok.empty()) {
            if (size_t s = so_ptx_type_size(tok)) size = s;
            else if (tok[0] != '.' && size) count = so_array_len(tok);
        }
        i = j + (j < line.size() && line[j] == ';');
        if (j == i && i < line.size()) ++i;
    }
    return size * count;
}

// Reads every `.entry` of PTX text: its name, parameter sizes and static
// shared memory. False when the text has no `.version` line (not PTX).
static bool so_parse_ptx(const char *text, std::vector<CUfunc_st> &entries) {
    std::string ptx(text);
    if (ptx.find(".version") == std::string::npos) return false;
    size_t pos = 0;
    CUfunc_st *cur = nullptr;
    bool in_params = false;
    while (pos < ptx.size()) {
        size_t end = ptx.find('\n', pos);
        if (end == std::string::npos) end = ptx.size();
        std::string line = ptx.substr(pos, end - pos);
        pos = end + 1;
        size_t e = line.find(".entry ");
        if (e != std::string::npos) {
            size_t n0 = e + 7;
            while (n0 < line.size() && isspace((unsigned char)line[n0])) ++n0;
            size_t n1 = n0;
            while (n1 < line.size() && (isalnum((unsigned char)line[n1]) || line[n1] == '_'))
                ++n1;
            entries.push_back(CUfunc_st{nullptr, line.substr(n0, n1 - n0), {}, 0});
            cur = &entries.back();
            in_params = line.find('(') != std::string::npos && line.find(')') == std::string::npos;
            continue;
        }
        if (!cur) continue;
        if (in_params) {
            if (line.find(".param") != std::string::npos)
                cur->ptx_sizes.push_back(so_declared_size(line));
            if (line.find(')') != std::string::npos) in_params = false;
        } else if (line.find(".shared") != std::string::npos &&
                   line.find(".extern") == std::string::npos) {
            cur->static_shared += so_declared_size(line);
        }
    }
    return true;
}

SO_API CUresult cuModuleLoadData(CUmodule *module, const void *image) {
    SO_NEED_CONTEXT;
    if (!module || !image) return SO_INVALID_VALUE;
    std::vector<CUfunc_st> entries;
    if (!so_parse_ptx((const char *)image, entries))
        return so_report(SO_INVALID_IMAGE, "cuda", "cuModuleLoadData: not PTX text (the stand-in loads PTX only)");
    CUmodule m = new CUmod_st;
    for (CUfunc_st &f : entries) {
        f.kernel = so_find_kernel(f.name);
        m->functions[f.name] = new CUfunc_st(f);
    }
    SO_LOCK;
    so_modules.insert(m);
    *module = m;
    return SO_SUCCESS;
}

SO_API CUresult cuModuleUnload(CUmodule module) {
    SO_NEED_CONTEXT;
    SO_LOCK;
    if (!so_modules.erase(module)) return SO_INVALID_HANDLE;
    // The functions stay allocated: a CUfunction outlives a careless unload
    // in user code, and reading a freed one would crash instead of failing.
    delete module;
    return SO_SUCCESS;
}

SO_API CUresult cuModuleGetFunction(CUfunction *fn, CUmodule module, const char *name) {
    SO_NEED_CONTEXT;
    if (!fn || !name) return SO_INVALID_VALUE;
    SO_LOCK;
    if (!so_modules.count(module)) return SO_INVALID_HANDLE;
    auto it = module->functions.find(name);
    if (it == module->functions.end()) return SO_NOT_FOUND;
    CUfunction f = it->second;
    if (!f->kernel)
        return so_report(SO_NOT_FOUND, "cuda", "cuModuleGetFunction: %s has no host build", name);
    if (f->ptx_sizes != f->kernel->sizes)
        return so_report(SO_NOT_FOUND, "cuda", "cuModuleGetFunction: %s: the PTX's %zu parameters and the host "
                            "build's %zu differ in number or size",
                            name, f->ptx_sizes.size(), f->kernel->sizes.size());
    *fn = f;
    return SO_SUCCESS;
}

// ---- Launches -----------------------------------------------------------------------

static bool so_is_function(CUfunction f) {
    for (CUmodule m : so_modules)
        for (auto &e : m->functions)
            if (e.second == f) return true;
    return false;
}

SO_API CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                               unsigned by, unsigned bz, unsigned shared, CUstream stream,
                               void **params, void **extra) {
    SO_NEED_CONTEXT;
    {
        SO_LOCK;
        if (!so_is_function(f) || !f->kernel) return SO_INVALID_HANDLE;
        if (!so_stream_ok(stream)) return SO_INVALID_HANDLE;
    }
    const so_kernel &k = *f->kernel;
    const char *name = k.name;
    unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    for (int d = 0; d < 3; ++d) {
        if (grid[d] == 0 || grid[d] > SO_MAX_GRID[d])
            return so_report(SO_INVALID_VALUE, "cuda", "cuLaunchKernel(%s): grid dimension %d is %u",
                                name, d, grid[d]);
        if (block[d] == 0 || block[d] > SO_MAX_BLOCK[d])
            return so_report(SO_INVALID_VALUE, "cuda", "cuLaunchKernel(%s): block dimension %d is %u",
                                name, d, block[d]);
    }
    if ((unsigned long long)bx * by * bz > SO_MAX_THREADS)
        return so_report(SO_INVALID_VALUE, "cuda", "cuLaunchKernel(%s): %llu threads per block, the limit is %u", name,
                            (unsigned long long)bx * by * bz, SO_MAX_THREADS);
    if (shared + f->static_shared > SO_SHARED)
        return so_report(SO_INVALID_VALUE, "cuda", "cuLaunchKernel(%s): %u bytes of dynamic and %zu of static shared "
                            "memory, the limit is %zu",
                            name, shared, f->static_shared, SO_SHARED);
    if (extra)
        return so_report(SO_NOT_SUPPORTED, "cuda", "cuLaunchKernel(%s): `extra` is not emulated; pass kernelParams",
                            name);
    if (!params && !k.sizes.empty()) return SO_INVALID_VALUE;
    // What the emulation runs: one-dimensional blocks, and a second grid
    // dimension only for the block-synchronised kernels.
    if (by != 1 || bz != 1 || gz != 1 || (gy != 1 && k.runner != SO_RUN_BLOCKS))
        return so_report(SO_NOT_SUPPORTED, "cuda", "cuLaunchKernel(%s): grid %ux%ux%u of blocks %ux%ux%u is not "
                            "emulated",
                            name, gx, gy, gz, bx, by, bz);
    {
        SO_LOCK;
        for (size_t i = 0; i < k.sizes.size(); ++i) {
            if (!k.pointer[i]) continue;
            uintptr_t p = so_load<uintptr_t>(params[i]);
            if (!so_in_allocation(p, 0))
                return so_report(SO_ILLEGAL_ADDRESS, "cuda", "cuLaunchKernel(%s): pointer argument %zu (0x%llx) is not "
                                    "in a live allocation",
                                    name, i, (unsigned long long)p);
        }
    }
    if (const char *err = k.run(params, gx, gy, bx))
        return so_report(SO_ILLEGAL_ADDRESS, "cuda", "cuLaunchKernel(%s): %s", name, err);
    return SO_SUCCESS;
}

// ---- Errors -------------------------------------------------------------------------

static const char *so_error_name(CUresult r) {
    switch (r) {
        case SO_SUCCESS: return "CUDA_SUCCESS";
        case SO_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
        case SO_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
        case SO_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
        case SO_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
        case SO_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
        case SO_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
        case SO_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
        case SO_INVALID_PTX: return "CUDA_ERROR_INVALID_PTX";
        case SO_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
        case SO_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
        case SO_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
        case SO_NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
        default: return nullptr;
    }
}

SO_API CUresult cuGetErrorName(CUresult r, const char **name) {
    if (!name) return SO_INVALID_VALUE;
    *name = so_error_name(r);
    return *name ? SO_SUCCESS : SO_INVALID_VALUE;
}

SO_API CUresult cuGetErrorString(CUresult r, const char **text) {
    return cuGetErrorName(r, text);
}
