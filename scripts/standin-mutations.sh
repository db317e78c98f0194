#!/usr/bin/env bash
# Mutation checks of the CUDA backend through the CPU stand-in for the driver
# and cuBLAS: each mutation below is a bug the stand-in must expose. For each
# one the script edits the backend's source, runs the GPU tests (which run
# through the stand-in on a machine without a GPU), expects at least one of
# them to fail, and puts the file back. It prints one line per mutation: the
# tests that caught it, or MISSED. Exits 1 if any mutation was missed.
#
#   scripts/standin-mutations.sh          # about 7 minutes on 2 cores
#
# Needs what the GPU tests need: `c++`, and NVRTC (fetched here from PyPI).
# Refuses to run when a file it mutates has uncommitted changes.
set -euo pipefail
cd "$(dirname "$0")/.."

nvrtc_lib="$(scripts/fetch-nvrtc.sh)"
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SMOOTHOUT_REQUIRE_NVRTC=1

lib=backend-cuda/src/lib.rs
tensor=backend-cuda/src/tensor.rs
for f in "$lib" "$tensor"; do
    git diff --quiet -- "$f" || { echo "standin-mutations: $f has uncommitted changes" >&2; exit 2; }
done
backup="$(mktemp -d)"
restore() { cp "$backup"/lib.rs "$lib"; cp "$backup"/tensor.rs "$tensor"; }
cp "$lib" "$backup"/lib.rs
cp "$tensor" "$backup"/tensor.rs
trap 'restore; rm -rf "$backup"' EXIT

# replace FILE OLD NEW: OLD must occur exactly once.
replace() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"{path}: the text to mutate occurs {text.count(old)} times: {old!r}")
open(path, "w").write(text.replace(old, new))
PY
}

# The GPU tests: the backend's shared bodies and tensor ops, and the F1/C1
# training steps against the CPU. Their whole output goes to $backup/log.
run_tests() {
    {
        cargo test --release -p smoothout-cuda --test noise --test tensor --no-fail-fast 2>&1 || true
        cargo test --release -p smoothout-models --features cuda --test gpu_step --no-fail-fast 2>&1 || true
    } >"$backup/log"
}

missed=0
check() {
    local name="$1" caught standin
    run_tests
    restore
    if grep -q '^error\[' "$backup/log"; then
        printf '%-44s MISSED: the mutation does not compile\n' "$name"
        missed=1
        return
    fi
    caught="$(sed -nE 's/^test (.*) \.\.\. FAILED$/\1/p' "$backup/log" | sort -u | head -4 | paste -sd ' ' -)"
    # The first message of the stand-in, or of the backend's own argument check.
    standin="$(grep -m1 -oE "(cuda|cublas) stand-in: .*|kernel arguments do not match the kernel's PTX parameters" "$backup/log" || true)"
    if [ -n "$caught" ]; then
        printf '%-44s caught by: %s%s\n' "$name" "$caught" "${standin:+  [$standin]}"
    else
        printf '%-44s MISSED\n' "$name"
        missed=1
    fi
}

replace "$tensor" "        transa: op(g.trans_b),
        transb: op(g.trans_a)," "        transa: op(g.trans_a),
        transb: op(g.trans_b),"
check "cuBLAS call with its transposes swapped"

replace "$tensor" "        ldb: if g.trans_a { m } else { k }," "        ldb: if g.trans_a { m } else { k + 1 },"
check "cuBLAS call with a wrong leading dimension"

replace "$lib" "            w, &n, &k0, &k1, &unit, &a.mode, &a.s, a.scales, &a.cols)
    }" "            w, &n, &k1, &k0, &unit, &a.mode, &a.s, a.scales, &a.cols)
    }"
check "two kernel arguments swapped (same size)"

replace "$lib" "            w, &n, &k0, &k1, &unit, &a.mode, &a.s, a.scales, &a.cols)
    }" "            w, &n, &k0, &k1, &unit, &a.mode, a.scales, &a.s, &a.cols)
    }"
check "two kernel arguments swapped (other sizes)"

replace "$lib" "        block_dim: (THREADS, 1, 1)," "        block_dim: (2 * 1024, 1, 1),"
check "launches with 2048 threads per block"

# A raw copy (as code that works with device pointers writes it) of one
# element more than the range: past the end of the destination.
replace "$lib" "        self.stream()
            .memcpy_dtod(&from, &mut to)
            .map_err(device(\"copy_range\"))" "        let stream = self.stream();
        let (src_ptr, _r) = cudarc::driver::DevicePtr::device_ptr(&from, stream);
        let (dst_ptr, _w) = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut to, stream);
        // SAFETY: none — this is the mutation.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst_ptr, src_ptr, (len + 1) * 4, stream.cu_stream())
        }
        .map_err(device(\"copy_range\"))"
check "a copy one element past an allocation"

exit "$missed"
