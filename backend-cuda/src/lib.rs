//! The CUDA backend (cudarc with dynamic loading, NVRTC kernels, cuBLAS) will live here; nothing is implemented yet.
