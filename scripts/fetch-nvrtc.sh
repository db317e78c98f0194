#!/usr/bin/env bash
# Fetches NVRTC (the CUDA run-time compiler, no GPU needed) from PyPI's
# `nvidia-cuda-nvrtc` wheel into .nvrtc/ (git-ignored) and prints the folder
# to put on LD_LIBRARY_PATH. The library is never committed.
#
#   export LD_LIBRARY_PATH="$(scripts/fetch-nvrtc.sh)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.nvrtc
lib="$PWD/$dest/nvidia/cu13/lib"
if [ ! -e "$lib/libnvrtc.so.13" ]; then
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_17_x86_64 \
        --python-version 3.11 'nvidia-cuda-nvrtc==13.0.*' -d "$dest.tmp" >&2
    python3 - "$dest.tmp" <<'PY'
import pathlib, sys, zipfile
d = pathlib.Path(sys.argv[1])
for wheel in d.glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(d)
    wheel.unlink()
PY
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
test -e "$lib/libnvrtc.so.13" || { echo "fetch-nvrtc: $lib/libnvrtc.so.13 missing after unpacking" >&2; exit 1; }
echo "$lib"
