// What the stand-in's two libraries share: the driver's result codes they
// return, the export macro, and the driver's check of device ranges, which
// the stand-in libcublas calls (it links against the stand-in libcuda).

#ifndef SO_STANDIN_H
#define SO_STANDIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define SO_API extern "C" __attribute__((visibility("default")))

// CUresult values, as in cuda.h.
enum {
    SO_SUCCESS = 0,
    SO_INVALID_VALUE = 1,
    SO_OUT_OF_MEMORY = 2,
    SO_NOT_INITIALIZED = 3,
    SO_NO_DEVICE = 100,
    SO_INVALID_DEVICE = 101,
    SO_INVALID_IMAGE = 200,
    SO_INVALID_CONTEXT = 201,
    SO_INVALID_PTX = 218,
    SO_INVALID_HANDLE = 400,
    SO_NOT_FOUND = 500,
    SO_ILLEGAL_ADDRESS = 700,
    SO_NOT_SUPPORTED = 801,
};

// Prints "<who> stand-in: <message>" on stderr and returns `code`: every
// failure of the stand-in says what was wrong.
__attribute__((format(printf, 3, 4))) static inline int so_report(int code, const char *who,
                                                                   const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s stand-in: ", who);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

// 1 when [ptr, ptr + bytes) lies inside one live allocation (bytes may be
// 0: then ptr must point into one), else 0.
SO_API int so_standin_device_range(unsigned long long ptr, size_t bytes);

#endif
