#!/usr/bin/env bash
# Builds, on a machine WITHOUT a GPU, everything the one GPU run needs, and
# gathers it in .gpu/ (git-ignored) for backend-cuda/gpu-check.sh:
#
#   test-smoothout-cuda-<name>      every integration test of smoothout-cuda (tests/*.rs, tests/*/main.rs)
#   test-smoothout-models-gpu_step  models' CPU-against-CUDA step test
#   bench-kernels                   smoothout-cuda's kernel bandwidth bench
#   bench-gpu_step                  models' ResNet-44 step bench
#   resnet44_torch.py and the network it imports (models/benches/resnet_torch.py),
#   gpu-check.sh, manifest.tsv, build-info.txt
#
# Release builds, debug info stripped (the working tree that travels to the
# GPU machine is limited to 64 MiB). CUDA is loaded at run time, so nothing
# here needs CUDA installed.
#
#   bash backend-cuda/gpu-build.sh          # from the repository root (or anywhere in it)
#
# Then, on the GPU machine, from the repository root with .gpu/ carried:
#
#   bash .gpu/gpu-check.sh                  # or: OUT=/some/dir bash .gpu/gpu-check.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dest=.gpu

command -v cargo >/dev/null || { echo "gpu-build: cargo is not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "gpu-build: python3 is needed to read cargo's JSON" >&2; exit 1; }

# Reads cargo's --message-format=json on stdin and prints one line per
# executable: "<kind>\t<package>\t<target>\t<path>", kind being test or bench.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    kinds = m["target"]["kind"]
    if "test" in kinds:
        kind = "test"
    elif "bench" in kinds:
        kind = "bench"
    else:
        continue
    pkg = m["package_id"]
    # "path+file:///…/backend-cuda#smoothout-cuda@0.1.0", "path+file:///…/name#0.1.0"
    # (the folder is the name) or, before cargo 1.77, "smoothout-cuda 0.1.0 (…)"
    if "#" in pkg:
        url, frag = pkg.split("#", 1)
        name = frag.split("@")[0] if "@" in frag else url.rstrip("/").split("/")[-1]
    else:
        name = pkg.split(" ")[0]
    print("\t".join([kind, name, m["target"]["name"], m["executable"]]))
'
}

# cargo <args…> --message-format=json, its diagnostics on stderr, the
# executables on stdout.
build() {
    cargo "$@" --message-format=json-render-diagnostics | executables
}

echo "gpu-build: building in release mode (the first time takes a few minutes)" >&2
list=$(mktemp)
trap 'rm -f "$list"' EXIT
{
    build test --release --no-run -p smoothout-cuda --tests
    build test --release --no-run -p smoothout-models --features cuda --test gpu_step
    build bench --no-run -p smoothout-cuda --bench kernels
    build bench --no-run -p smoothout-models --features cuda --bench gpu_step
} >"$list"

rm -rf "$dest"
mkdir -p "$dest"
: >"$dest/manifest.tsv"
while IFS=$'\t' read -r kind pkg target exe; do
    case "$kind/$pkg/$target" in
        test/smoothout-cuda/*) file="test-smoothout-cuda-$target" ;;
        test/smoothout-models/gpu_step) file="test-smoothout-models-gpu_step" ;;
        bench/smoothout-cuda/kernels) file="bench-kernels" ;;
        bench/smoothout-models/gpu_step) file="bench-gpu_step" ;;
        # lib unit tests of smoothout-cuda (`--tests` builds them too) are
        # not GPU checks
        *) continue ;;
    esac
    [ -e "$dest/$file" ] && continue
    cp "$exe" "$dest/$file"
    if command -v strip >/dev/null; then
        strip --strip-debug "$dest/$file"
    fi
    printf '%s\t%s\n' "$kind" "$file" >>"$dest/manifest.tsv"
done <"$list"

for want in test-smoothout-models-gpu_step bench-kernels bench-gpu_step; do
    grep -q "	$want\$" "$dest/manifest.tsv" || {
        echo "gpu-build: $want was not built (cargo's JSON named no such executable)" >&2
        exit 1
    }
done
grep -q "	test-smoothout-cuda-" "$dest/manifest.tsv" || {
    echo "gpu-build: no test binary of smoothout-cuda was built" >&2
    exit 1
}

cp backend-cuda/bench/resnet44_torch.py models/benches/resnet_torch.py backend-cuda/gpu-check.sh "$dest/"
{
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "root: $root"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "rustc: $(rustc --version)"
} >"$dest/build-info.txt"

echo "gpu-build: $dest/ holds:" >&2
(cd "$dest" && ls -l) >&2
size=$(du -sk "$dest" | cut -f1)
echo "gpu-build: $((size / 1024)) MiB in $dest/ (the travelling tree is limited to 64 MiB)" >&2
if [ "$size" -gt $((56 * 1024)) ]; then
    echo "gpu-build: warning: $dest/ is large; with the rest of the tree it may not travel" >&2
fi
