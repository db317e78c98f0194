#!/usr/bin/env bash
# Fetches nvcc 13.0 (with cicc, ptxas, the CUDA runtime and CCCL headers,
# libcudart and NVRTC) from PyPI's `nvidia-cuda-nvcc`, `nvidia-nvvm`,
# `nvidia-cuda-crt`, `nvidia-cuda-runtime`, `nvidia-cuda-cccl` and
# `nvidia-cuda-nvrtc` wheels into .nvcc/ (git-ignored): the toolkit candle's
# `cuda` feature needs at build time (candle-kernels runs nvcc from its build
# script). No GPU is needed to build with it. Prints the environment to set:
#
#   eval "$(scripts/fetch-nvcc.sh)"
#
# PATH finds nvcc (which finds its headers and cicc next to itself);
# CUDA_COMPUTE_CAP is the architecture candle's kernels are built for (there
# is no nvidia-smi to ask; 90 unless already set); CUDA_HOME is where cudarc's
# `dynamic-linking` (which candle turns on) looks for libraries to link (lib/,
# lib/stubs/); LD_LIBRARY_PATH lets the binaries find them when they start.
# Nothing here is committed.
#
# With `dynamic-linking` every binary needs libcuda, libnvrtc, libcurand and
# libcublas(Lt) to link and to start; lib/ has the real NVRTC and libcudart.
# Where no NVIDIA driver is installed (`ldconfig` knows no libcuda.so.1), the
# script also builds stubs of libcuda, libcurand and libcublas(Lt) into
# lib/stubs/: every function of cudarc's bindings, returning an error
# (libcuda's CUDA_ERROR_STUB_LIBRARY, as the toolkit's own stub does), so
# that test binaries link, start, and find no device. On a machine with a GPU
# the driver's libcuda is used, and real cuBLAS and cuRAND (the
# `nvidia-cublas`, `nvidia-curand` wheels) must be on LD_LIBRARY_PATH. The
# stubs need cudarc's source in cargo's registry (`cargo fetch` first).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.nvcc
root="$PWD/$dest/nvidia/cu13"
if [ ! -x "$root/bin/nvcc" ] || [ ! -e "$root/lib/libcudart.so" ] || [ ! -e "$root/lib/libnvrtc.so" ]; then
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_17_x86_64 \
        --python-version 3.11 \
        'nvidia-cuda-nvcc==13.0.*' 'nvidia-nvvm==13.0.*' 'nvidia-cuda-crt==13.0.*' \
        'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-cccl==13.0.*' 'nvidia-cuda-nvrtc==13.0.*' \
        -d "$dest.tmp" >&2
    python3 - "$dest.tmp" <<'PY'
import pathlib, sys, zipfile
d = pathlib.Path(sys.argv[1])
wheels = sorted(d.glob("*.whl"))
if len(wheels) != 6:
    sys.exit(f"fetch-nvcc: expected 6 wheels, got {[w.name for w in wheels]}")
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            path = z.extract(info, d)
            # Wheels keep Unix modes in the high bits; zipfile drops them.
            mode = info.external_attr >> 16
            if mode & 0o111:
                pathlib.Path(path).chmod(mode & 0o777)
    wheel.unlink()
PY
    # The wheels ship only the versioned names; the linker's -lcudart and
    # -lnvrtc need the plain ones.
    ln -sf libcudart.so.13 "$dest.tmp/nvidia/cu13/lib/libcudart.so"
    ln -sf libnvrtc.so.13 "$dest.tmp/nvidia/cu13/lib/libnvrtc.so"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
for f in bin/nvcc bin/ptxas nvvm/bin/cicc include/cuda_runtime.h include/crt/host_defines.h \
    include/cccl/cub/cub.cuh lib/libcudart.so lib/libnvrtc.so.13; do
    test -e "$root/$f" || { echo "fetch-nvcc: $root/$f missing after unpacking" >&2; exit 1; }
done
for f in bin/nvcc bin/ptxas nvvm/bin/cicc; do
    test -x "$root/$f" || { echo "fetch-nvcc: $root/$f is not executable" >&2; exit 1; }
done
"$root/bin/nvcc" --version | grep -q 'release 13\.0' \
    || { echo "fetch-nvcc: $root/bin/nvcc is not CUDA 13.0" >&2; exit 1; }
libs="$root/lib"
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    stubs="$root/lib/stubs"
    if [ ! -e "$stubs/libcuda.so.1" ]; then
        cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | sort -V | tail -n 1)
        test -n "$cudarc" || { echo "fetch-nvcc: no cudarc 0.19 source in cargo's registry: run \`cargo fetch\` first" >&2; exit 1; }
        rm -rf "$stubs.tmp" && mkdir -p "$stubs.tmp"
        python3 - "$cudarc/src" "$stubs.tmp" <<'PY'
import pathlib, re, subprocess, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
libs = {  # cudarc module: soname, the error every function returns
    "driver": ("libcuda.so.1", 34),  # CUDA_ERROR_STUB_LIBRARY
    "curand": ("libcurand.so.10", 203),  # CURAND_STATUS_INITIALIZATION_FAILED
    "cublas": ("libcublas.so.13", 1),  # CUBLAS_STATUS_NOT_INITIALIZED
    "cublaslt": ("libcublasLt.so.13", 1),
}
sig = re.compile(r"^pub unsafe fn (\w+)\((.*?)\)\s*(->\s*([^{]+))?\{", re.M | re.S)
for mod, (soname, code) in libs.items():
    names = {}
    for m in sig.finditer((src / mod / "sys" / "mod.rs").read_text()):
        ret = (m.group(4) or "").strip()
        names.setdefault(m.group(1), "0" if not ret or ret.startswith("*") else str(code))
    if len(names) < 10:
        sys.exit(f"fetch-nvcc: only {len(names)} functions found in cudarc's {mod} bindings")
    c = out / f"{mod}.c"
    c.write_text("".join(f"long {n}(void) {{ return {v}; }}\n" for n, v in sorted(names.items())))
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out / soname), f"-Wl,-soname,{soname}", str(c)], check=True)
    (out / soname.split(".so")[0]).with_suffix(".so").symlink_to(soname)
    c.unlink()
PY
        rm -rf "$stubs" && mv "$stubs.tmp" "$stubs"
    fi
    libs="$stubs:$libs"
fi
echo "export PATH=\"$root/bin:\$PATH\""
echo "export CUDA_HOME=\"$root\""
echo "export CUDA_COMPUTE_CAP=\"${CUDA_COMPUTE_CAP:-90}\""
echo "export LD_LIBRARY_PATH=\"$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
