#!/usr/bin/env bash
# F1 training-step benchmark: smoothout (baseline, SmoothOut, AdaSmoothOut)
# against PyTorch on the CPU, both with 2 threads, in one table.
#
#   scripts/bench-f1.sh [--quick] [--pairs N]
#
#   --quick     fewer rounds inside each run, and 2 pairs unless --pairs says
#               otherwise (also F1_BENCH_QUICK=1)
#   --pairs N   how many times to run Rust then PyTorch (default 3)
#
# Environment:
#   TORCH_PYTHON  a python that already imports torch; skips the venv
#   TORCH_SPEC    what pip installs into the venv (default "torch==2.15.*")
#   OMP_WAIT_POLICY  PyTorch's OpenMP waiters; the PyTorch side defaults it to
#                 PASSIVE, since spinning waiters collapse on a shared machine
#
# The Rust side is `cargo bench -p smoothout-models --bench train_step`, the
# PyTorch side models/benches/f1_step_torch.py, run with the python of a
# scratch venv in target/bench-venv that is created, with torch installed by
# pip, when it is missing (the Linux wheel from PyPI brings CUDA libraries,
# several GB; only the CPU is used). The two sides take turns, so that each
# Rust run has a PyTorch run next to it under similar machine load; ratios
# between methods of one side come from the same rounds of one process.
# Per-run tables and JSON go to target/bench-f1/; the combined table is
# printed last and also written to target/bench-f1/table.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/target/bench-f1"
VENV="$ROOT/target/bench-venv"
TORCH_SPEC="${TORCH_SPEC:-torch==2.15.*}"

quick=""
pairs=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --pairs)
            [ $# -ge 2 ] || { echo "--pairs needs a number" >&2; exit 2; }
            pairs="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "${F1_BENCH_QUICK:-0}" in "" | 0) ;; *) quick=1 ;; esac
pairs="${pairs:-$([ -n "$quick" ] && echo 2 || echo 3)}"
case "$pairs" in '' | *[!0-9]* | 0) echo "--pairs: '$pairs' is not a positive number" >&2; exit 2 ;; esac
quick_flag=()
[ -n "$quick" ] && quick_flag=(--quick)

# The python that runs the PyTorch side.
if [ -n "${TORCH_PYTHON:-}" ]; then
    PY="$TORCH_PYTHON"
else
    PY="$VENV/bin/python"
    if ! "$PY" -c "import torch" > /dev/null 2>&1; then
        echo "== creating $VENV and installing $TORCH_SPEC (several GB, once)" >&2
        [ -x "$PY" ] || python3 -m venv "$VENV"
        "$VENV/bin/pip" install --progress-bar off "$TORCH_SPEC" numpy
    fi
fi
"$PY" -c "import torch" || { echo "$PY cannot import torch" >&2; exit 1; }

echo "== building the Rust bench (release)" >&2
cd "$ROOT"
cargo bench -q -p smoothout-models --bench train_step --no-run

mkdir -p "$OUT"
rm -f "$OUT"/rust-*.json "$OUT"/torch-*.json "$OUT"/rust-*.md "$OUT"/torch-*.md
started=$(date +%s)
for i in $(seq 1 "$pairs"); do
    echo "== pair $i/$pairs: Rust" >&2
    cargo bench -q -p smoothout-models --bench train_step -- \
        "${quick_flag[@]}" --json "$OUT/rust-$i.json" | tee "$OUT/rust-$i.md" >&2
    echo "== pair $i/$pairs: PyTorch" >&2
    "$PY" models/benches/f1_step_torch.py "${quick_flag[@]}" --json "$OUT/torch-$i.json" \
        | tee "$OUT/torch-$i.md" >&2
done
elapsed=$(($(date +%s) - started))

"$PY" - "$OUT" "$pairs" "$elapsed" << 'EOF' | tee "$OUT/table.md"
import json, statistics, sys

out, pairs, elapsed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda side: [json.load(open(f"{out}/{side}-{i}.json")) for i in range(1, pairs + 1)]
rust, torch = load("rust"), load("torch")
med = statistics.median


def rows(runs):
    """(batch, method) -> list over runs of that run's result."""
    table = {}
    for run in runs:
        for r in run["results"]:
            table.setdefault((r["batch"], r["method"]), []).append(r)
    return table


R, T = rows(rust), rows(torch)
pooled = lambda rs, key: [v for r in rs for v in r[key]]
rounds = sum(len(r["ms"]) for r in rust[0]["results"][:1])
print(
    f"F1 training step, f32, {rust[0]['threads']} threads ({rust[0]['isa']} kernels) vs "
    f"PyTorch {torch[0]['torch']} ({torch[0]['threads']} threads); {pairs} Rust/PyTorch pairs "
    f"of {rounds} rounds each{' (quick)' if rust[0]['quick'] else ''}; {elapsed} s\n"
)
print("| batch | method | ours ms/step | ours img/s | ours × baseline | PyTorch ms/step | PyTorch × baseline | ours / PyTorch |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for (batch, method), rs in R.items():
    ms = med(pooled(rs, "ms"))
    ratio = med(pooled(rs, "ratio_to_baseline"))
    ts = T.get((batch, method), [])
    t_ms = med(pooled(ts, "ms")) if ts else float("nan")
    t_ratio = med(pooled(ts, "ratio_to_baseline")) if ts else float("nan")
    # ours / PyTorch: per pair (neighbouring runs), ratio of the two runs'
    # medians; then the median over pairs.
    vs = med([med(r["ms"]) / med(t["ms"]) for r, t in zip(rs, ts)]) if ts else float("nan")
    name = method if method == "baseline" else f"{method} (PyTorch: naive)"
    print(
        f"| {batch} | {name} | {ms:.2f} | {batch * 1e3 / ms:.0f} | {ratio:.3f} "
        f"| {t_ms:.2f} | {t_ratio:.3f} | {vs:.2f} |"
    )
print(
    "\nms/step: median over all rounds of all runs. × baseline: median of per-round ratios "
    "to the baseline of the same batch (same process, same round). ours / PyTorch: median "
    "over pairs of (Rust run median / PyTorch run median). PyTorch's SmoothOut rows are "
    "naive in-place noise (torch.rand, kept and subtracted after backward)."
)
EOF
