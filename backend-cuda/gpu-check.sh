#!/usr/bin/env bash
# The one GPU run: runs what backend-cuda/gpu-build.sh gathered in .gpu/ on a
# machine with an NVIDIA GPU, and summarises it. Builds nothing (no cargo
# there). Run from the repository root, with .gpu/ carried over:
#
#   bash .gpu/gpu-check.sh                  # or backend-cuda/gpu-check.sh
#   OUT=/some/dir bash .gpu/gpu-check.sh    # default OUT: /tmp/gpu-check
#
# Steps, each under its own timeout inside a total budget (GPU_CHECK_BUDGET,
# 450 s by default), so that one hanging step cannot eat the others:
#
#   1. find libcuda (the driver), libnvrtc and libcublas (ldconfig, CUDA
#      toolkits, the driver's folder, PyTorch's nvidia-* wheels), pick an
#      NVRTC no newer than the driver, export LD_LIBRARY_PATH; nvidia-smi
#   2. every test binary, --test-threads=1 --nocapture
#   3. the kernel bandwidth bench        -> $OUT/kernels.json
#   4. the ResNet-44 step bench           -> $OUT/gpu_step.json
#   5. the PyTorch ResNet-44 step script  -> $OUT/torch.json (with the
#      environment as found: PyTorch brings its own CUDA libraries)
#
# Writes $OUT/gpu-check.log (everything) and $OUT/gpu-check.md (test counts,
# the three tables, perturb/copy, de-noise/copy, AdaSmoothOut/baseline at
# 2048, ours/PyTorch images/s at 128 and 2048). Exits non-zero when a test
# failed or timed out, or when a GPU is present but the CUDA backend could
# not start; the summary is written in every case. Without a GPU every step
# says why it skipped and the script finishes in seconds.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -f "$PWD/.gpu/manifest.tsv" ]; then
    root="$PWD"
elif [ -f "$here/manifest.tsv" ]; then
    root="$(dirname "$here")"
elif [ -f "$here/../.gpu/manifest.tsv" ]; then
    root="$(cd "$here/.." && pwd)"
else
    echo "gpu-check: no .gpu/manifest.tsv: run backend-cuda/gpu-build.sh first (on the build machine) and carry .gpu/" >&2
    exit 2
fi
cd "$root" || exit 2
gpu=.gpu

out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out" || exit 2
out="$(cd "$out" && pwd)"
log="$out/gpu-check.log"
summary="$out/gpu-check.md"
: >"$log"
steps="$(mktemp -d /tmp/gpu-check-steps.XXXXXX)"
budget="${GPU_CHECK_BUDGET:-450}"
started=$(date +%s)
deadline=$((started + budget))
py="${PYTHON:-python3}"

say() { printf '%s\n' "$*" | tee -a "$log"; }

say "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), root $root, budget ${budget} s"
[ -f "$gpu/build-info.txt" ] && sed 's/^/  /' "$gpu/build-info.txt" | tee -a "$log"

# ------------------------------------------------------------------ paths ----
# The test binaries carry the build machine's absolute paths (a test reads
# backend-cuda/kernels/ through CARGO_MANIFEST_DIR). Where this copy lives
# elsewhere, point the old root at it.
build_root="$(sed -n 's/^root: //p' "$gpu/build-info.txt" 2>/dev/null)"
if [ -n "$build_root" ] && [ "$build_root" != "$root" ] && [ ! -e "$build_root" ]; then
    if mkdir -p "$(dirname "$build_root")" 2>/dev/null && ln -s "$root" "$build_root" 2>/dev/null; then
        say "paths: linked $build_root -> $root (the binaries' build-time paths)"
    else
        say "paths: could not link $build_root -> $root; tests that read source files may fail"
    fi
fi

# -------------------------------------------------------------- libraries ----
orig_ld="${LD_LIBRARY_PATH:-}"
driver_cuda=""
if command -v nvidia-smi >/dev/null 2>&1; then
    driver_cuda="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n1)"
fi

# Folders that may hold CUDA libraries, most trusted first: a toolkit (its
# NVRTC matches the driver it was installed with), the driver's folders,
# the loader's cache, then PyTorch's wheels.
candidate_dirs() {
    local d
    for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} ${CUDA_PATH:+"$CUDA_PATH/lib64"} \
        /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
        /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib \
        /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib; do
        [ -d "$d" ] && echo "$d"
    done
    if command -v ldconfig >/dev/null 2>&1; then
        ldconfig -p 2>/dev/null | sed -n 's/.*\(libcuda\.so\.1\|libnvrtc\.so\.13\|libcublas\.so\.13\) .*=> \(.*\)/\2/p' |
            while read -r f; do dirname "$f"; done
    fi
    if command -v "$py" >/dev/null 2>&1; then
        "$py" - 2>/dev/null <<'PY'
import glob, os, site, sys
roots = []
try:
    import nvidia
    roots += list(nvidia.__path__)
except Exception:
    pass
for s in site.getsitepackages() + [site.getusersitepackages()]:
    roots.append(os.path.join(s, "nvidia"))
try:
    import torch
    roots.append(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia"))
    print(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
seen = set()
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "*", "lib"))):
        d = os.path.realpath(d)
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            print(d)
PY
    fi
    [ -d "$root/.nvrtc/nvidia/cu13/lib" ] && echo "$root/.nvrtc/nvidia/cu13/lib"
}

mapfile -t dirs < <(candidate_dirs | awk '!seen[$0]++')

# The first folder holding `file` (for NVRTC: whose builtins are no newer
# than the driver's CUDA version, when that is known).
nvrtc_minor() { # folder -> minor version of its libnvrtc-builtins.so.13.N, or empty
    local f
    for f in "$1"/libnvrtc-builtins.so.13.*; do
        [ -e "$f" ] && { echo "${f##*.so.13.}" | cut -d. -f1; return; }
    done
}
find_lib() {
    local file="$1" d first="" m dmin
    for d in "${dirs[@]}"; do
        [ -e "$d/$file" ] || continue
        [ -z "$first" ] && first="$d"
        if [ "$file" = libnvrtc.so.13 ] && [ -n "$driver_cuda" ]; then
            m="$(nvrtc_minor "$d")"
            dmin="${driver_cuda#*.}"
            if [ -n "$m" ] && [ "$m" -gt "$dmin" ] 2>/dev/null; then
                continue
            fi
        fi
        echo "$d"
        return
    done
    echo "$first"
}

lib_cuda="$(find_lib libcuda.so.1)"
lib_nvrtc="$(find_lib libnvrtc.so.13)"
lib_cublas="$(find_lib libcublas.so.13)"
ld_add=""
for d in "$lib_cuda" "$lib_nvrtc" "$lib_cublas"; do
    [ -n "$d" ] || continue
    case ":$ld_add:" in *":$d:"*) ;; *) ld_add="${ld_add:+$ld_add:}$d" ;; esac
done
export LD_LIBRARY_PATH="${ld_add}${orig_ld:+:$orig_ld}"
lib_note=""
{
    echo "libraries (driver CUDA ${driver_cuda:-unknown}):"
    echo "  libcuda.so.1    ${lib_cuda:-NOT FOUND}"
    echo "  libnvrtc.so.13  ${lib_nvrtc:-NOT FOUND}${lib_nvrtc:+ (builtins 13.$(nvrtc_minor "$lib_nvrtc"))}"
    echo "  libcublas.so.13 ${lib_cublas:-NOT FOUND}"
    echo "  LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
} >"$steps/libraries.txt"
if [ -n "$lib_nvrtc" ] && [ -n "$driver_cuda" ]; then
    m="$(nvrtc_minor "$lib_nvrtc")"
    if [ -n "$m" ] && [ "$m" -gt "${driver_cuda#*.}" ] 2>/dev/null; then
        lib_note="NVRTC 13.$m is newer than the driver's CUDA $driver_cuda: the driver may refuse its PTX (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)"
        echo "  warning: $lib_note" >>"$steps/libraries.txt"
    fi
fi
tee -a "$log" <"$steps/libraries.txt"
# cuBLAS and PyTorch in full FP32 whatever the image sets (our bounds and
# the comparison with PyTorch assume it).
export NVIDIA_TF32_OVERRIDE=0
# On a machine with a GPU a missing NVRTC must fail the NVRTC test, not skip it.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    export SMOOTHOUT_REQUIRE_NVRTC=1
fi

# ------------------------------------------------------------------ steps ----
# name|cap seconds|minimum kept for it|command…
plan=()
plan+=("nvidia-smi|20|10|nvidia-smi -L && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv")
while IFS=$'\t' read -r kind file; do
    [ "$kind" = test ] || continue
    cap=120
    [ "$file" = test-smoothout-models-gpu_step ] && cap=150
    plan+=("$file|$cap|20|$gpu/$file --test-threads=1 --nocapture")
done <"$gpu/manifest.tsv"
q() { printf '%q' "$1"; }
plan+=("bench-kernels|90|20|$gpu/bench-kernels --json $(q "$out/kernels.json")")
plan+=("bench-gpu_step|210|90|$gpu/bench-gpu_step --json $(q "$out/gpu_step.json")")
plan+=("resnet44_torch|150|60|TORCH:$(q "$py") $gpu/resnet44_torch.py --json $(q "$out/torch.json")")

: >"$steps/results.tsv"
n=${#plan[@]}
for ((i = 0; i < n; i++)); do
    IFS='|' read -r name cap mine cmd <<<"${plan[$i]}"
    reserve=0
    for ((j = i + 1; j < n; j++)); do
        IFS='|' read -r _ _ keep _ <<<"${plan[$j]}"
        reserve=$((reserve + keep))
    done
    # Up to the cap, leaving the later steps their minimums; but at least
    # this step's own minimum while any time is left (earlier steps first).
    left=$((deadline - $(date +%s)))
    t=$((left - reserve))
    [ "$t" -gt "$cap" ] && t=$cap
    if [ "$t" -lt "$mine" ]; then
        t=$mine
        [ "$t" -gt "$left" ] && t=$left
    fi
    step_log="$steps/$name.log"
    say ""
    say "=== $name (timeout ${t} s): ${cmd#TORCH:}"
    if [ "$t" -lt 3 ]; then
        say "not run: no time left in the ${budget} s budget"
        printf '%s\t%s\t%s\t%s\n' "$name" "notime" 0 "$step_log" >>"$steps/results.tsv"
        : >"$step_log"
        continue
    fi
    t0=$(date +%s)
    if [[ "$cmd" == TORCH:* ]]; then
        # PyTorch loads its own CUDA libraries: the environment as found.
        LD_LIBRARY_PATH="$orig_ld" PYTHONUNBUFFERED=1 timeout -k 10 "$t" bash -c "${cmd#TORCH:}" >"$step_log" 2>&1
        rc=$?
    else
        RUST_BACKTRACE=1 timeout -k 10 "$t" bash -c "$cmd" >"$step_log" 2>&1
        rc=$?
    fi
    tee -a "$log" <"$step_log" >/dev/null
    tail -n 40 "$step_log"
    secs=$(($(date +%s) - t0))
    case $rc in
        124 | 137) say "--- $name: TIMED OUT after ${secs} s" ;;
        *) say "--- $name: exit $rc after ${secs} s" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$step_log" >>"$steps/results.tsv"
done

# ---------------------------------------------------------------- summary ----
status=0
if command -v python3 >/dev/null 2>&1; then
    python3 - "$steps" "$out" "$summary" "$gpu/build-info.txt" "$lib_note" <<'PY'
import json, os, re, sys

steps, out, summary, info, lib_note = sys.argv[1:6]
results = []
with open(os.path.join(steps, "results.tsv")) as f:
    for line in f:
        name, rc, secs, path = line.rstrip("\n").split("\t")
        text = open(path, errors="replace").read() if os.path.exists(path) else ""
        results.append({"name": name, "rc": rc, "secs": secs, "text": text})

def jload(name):
    p = os.path.join(out, name)
    try:
        with open(p) as f:
            return json.load(f)
    except Exception:
        return None

def tables(text):
    """Blocks of consecutive markdown table lines."""
    blocks, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return ["\n".join(b) for b in blocks if len(b) > 2]

def fmt(x, spec=".3f"):
    return "n/a" if x is None else format(x, spec)

md = ["# GPU check", ""]
if os.path.exists(info):
    md += ["```", open(info).read().strip(), "```", ""]
smi = next((r for r in results if r["name"] == "nvidia-smi"), None)
gpu_seen = bool(smi and smi["rc"] == "0" and "GPU" in smi["text"])
md += ["## Device and libraries", "", "```",
       (smi["text"].strip() if smi else "nvidia-smi not run") or "(no output)",
       open(os.path.join(steps, "libraries.txt")).read().strip(), "```", ""]

md += ["## Tests", "", "| binary | result | passed | failed | ignored | skips printed | seconds |",
       "|---|---|---:|---:|---:|---:|---:|"]
failing, skips = [], []
tot = [0, 0, 0]
for r in results:
    if not r["name"].startswith("test-"):
        continue
    counts = [0, 0, 0]
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", r["text"]):
        for k in range(3):
            counts[k] += int(m.group(k + 1))
    for k in range(3):
        tot[k] += counts[k]
    for l in r["text"].splitlines():
        if "skipped:" in l:
            skips.append((r["name"], l.split("skipped:", 1)[1].strip()))
    if r["rc"] == "notime":
        res = "not run (no time left)"
    elif r["rc"] in ("124", "137"):
        res = "TIMED OUT"
    elif r["rc"] == "0":
        res = "ok"
    elif counts[1]:
        res = "FAILED"
    else:
        res = f"CRASHED (exit {r['rc']})"
    if res != "ok":
        failing.append(r)
    md.append(f"| {r['name']} | {res} | {counts[0]} | {counts[1]} | {counts[2]} | {sum(1 for l in r['text'].splitlines() if 'skipped:' in l)} | {r['secs']} |")
md += ["", f"Total: {tot[0]} passed, {tot[1]} failed, {tot[2]} ignored; {len(failing)} binar{'y' if len(failing) == 1 else 'ies'} not ok.", ""]
if skips:
    distinct = {}
    for name, why in skips:
        distinct.setdefault(why, []).append(name)
    md += [f"{len(skips)} skip(s) printed, {len(distinct)} distinct reason(s):", ""]
    for why, names in list(distinct.items())[:10]:
        md.append(f"- {len(names)}× ({', '.join(sorted(set(names)))}): `{why[:400]}`")
    md.append("")
for r in failing:
    if r["rc"] == "notime":
        continue
    lines = r["text"].splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("failures:")), max(0, len(lines) - 60))
    md += [f"### {r['name']} (exit {r['rc']})", "", "```", *lines[start:start + 80], "```", ""]

kern, step, torch = jload("kernels.json"), jload("gpu_step.json"), jload("torch.json")
ratios = []
md += ["## Kernel bandwidth (2^26 f32)", ""]
r = next((x for x in results if x["name"] == "bench-kernels"), None)
if kern and "skipped" not in kern:
    md += tables(r["text"])[-1:] if r else []
    by = {p["name"]: p for p in kern["passes"]}
else:
    by = {}
    md.append(f"skipped: {kern['skipped']}" if kern else f"no figures (exit {r['rc'] if r else 'not run'})")
def ratio(prefix):
    p = next((v for k, v in by.items() if k.startswith(prefix)), None)
    return None if p is None else p["ratio_to_copy"]
ratios.append(("perturb / copy bandwidth (target ≥ 0.80)", ratio("perturb (SmoothOut")))
ratios.append(("de-noise / copy bandwidth (target ≥ 0.80)", ratio("de-noise")))
ratios.append(("fused de-noise + SGD / copy bandwidth", ratio("fused")))
ratios.append(("AdaSmoothOut perturb / copy bandwidth", ratio("perturb (Ada")))
md.append("")

def img_s(doc, batch, method):
    if not doc or "results" not in doc:
        return None
    x = next((v for v in doc["results"] if v["batch"] == batch and v["method"] == method), None)
    return None if x is None else x.get("images_per_s")

md += ["## ResNet-44 step, ours (CUDA backend)", ""]
r = next((x for x in results if x["name"] == "bench-gpu_step"), None)
if step and "skipped" not in step:
    md += (tables(r["text"])[-1:] if r else [])
    md += [""] + [f"- batch {b['batch']}: {b['ended']}" for b in step.get("batches", [])]
else:
    md.append(f"skipped: {step['skipped']}" if step else f"no figures (exit {r['rc'] if r else 'not run'})")
for b in (128, 2048):
    ada = next((v for v in (step or {}).get("results", []) if v["batch"] == b and v["method"] == "adasmoothout"), None)
    ratios.append((f"AdaSmoothOut / baseline step time, batch {b} (ours)", ada and ada.get("ratio_median")))
tada = next((v for v in (torch or {}).get("results", []) if v["batch"] == 2048 and v["method"] == "adasmoothout"), None)
ratios.append(("naive AdaSmoothOut / baseline step time, batch 2048 (PyTorch)", tada and tada.get("ratio_median")))
md.append("")

md += ["## ResNet-44 step, PyTorch", ""]
r = next((x for x in results if x["name"] == "resnet44_torch"), None)
if torch and "skipped" not in torch:
    md += [f"PyTorch {torch.get('torch')} on {torch.get('device')}, cuDNN {torch.get('cudnn')}", ""]
    md += (tables(r["text"])[-1:] if r else [])
    md += [""] + [f"- batch {b['batch']}: {b['ended']}" for b in torch.get("batches", [])]
else:
    reason = torch["skipped"] if torch else None
    if reason is None and r:
        reason = next((l for l in r["text"].splitlines() if "skipped:" in l), None)
    md.append(reason or f"no figures (exit {r['rc'] if r else 'not run'})")
md.append("")

for b in (128, 2048):
    for m, label in (("baseline", "baseline"), ("adasmoothout", "AdaSmoothOut (PyTorch: naive)")):
        o, t = img_s(step, b, m), img_s(torch, b, m)
        ratios.append((f"ours / PyTorch images/s, batch {b}, {label}", o / t if o and t else None))

md += ["## Ratios", "", "| quantity | value |", "|---|---:|"]
md += [f"| {k} | {fmt(v)} |" for k, v in ratios]
md.append("")
if lib_note:
    md += [f"**Warning:** {lib_note}", ""]

exit_code = 0
problems = []
if failing:
    problems.append(f"{len(failing)} test binar{'y' if len(failing) == 1 else 'ies'} not ok")
    exit_code = 1
if gpu_seen and kern and "skipped" in kern:
    problems.append("a GPU is present but the CUDA backend did not start: " + kern["skipped"])
    exit_code = 1
if gpu_seen and skips:
    problems.append(f"{len(skips)} test(s) skipped although a GPU is present (see Tests)")
md += ["## Verdict", "", "; ".join(problems) if problems else
       ("all tests passed" if gpu_seen else "no GPU: every step skipped (expected on a machine without one)"), ""]
with open(summary, "w") as f:
    f.write("\n".join(md))
sys.exit(exit_code)
PY
    status=$?
else
    say "python3 is missing: the summary holds only the step results"
    status=0
    while IFS=$'\t' read -r name rc secs _; do
        echo "$name: exit $rc after $secs s"
        [[ $name == test-* && $rc != 0 ]] && status=1
    done <"$steps/results.tsv" >"$summary"
fi

say ""
say "=== summary: $summary"
tee -a "$log" <"$summary" 2>/dev/null
say ""
say "gpu-check: done in $(($(date +%s) - started)) s, exit $status"
rm -rf "$steps"
exit "$status"
