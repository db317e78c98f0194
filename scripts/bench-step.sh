#!/usr/bin/env bash
# Training-step benchmark: smoothout (baseline, SmoothOut, AdaSmoothOut)
# against PyTorch on the CPU, both with 2 threads, for F1, C1 and ResNet-44,
# in one table.
#
#   scripts/bench-step.sh [--quick] [--pairs N] [--nets f1,c1,resnet44]
#
#   --quick     fewer rounds inside each run, and 2 pairs unless --pairs says
#               otherwise (also STEP_BENCH_QUICK=1)
#   --pairs N   how many times to run Rust then PyTorch, per network
#               (default 3)
#   --nets L    comma-separated networks among f1 (batch 256 and 4096), c1
#               and resnet44 (batch 128); default all three
#
# Environment:
#   TORCH_PYTHON  a python that already imports torch; skips the venv
#   TORCH_SPEC    what pip installs into the venv (default "torch==2.15.*")
#   OMP_WAIT_POLICY  PyTorch's OpenMP waiters; the PyTorch side defaults it to
#                 PASSIVE, since spinning waiters collapse on a shared machine
#
# The Rust side is the bench `train_step` of smoothout-models (built once, by
# `cargo bench -p smoothout-models --bench train_step --no-run`, and the
# same executable run every time), the PyTorch side
# models/benches/step_torch.py, run with the python of a scratch venv in
# target/bench-venv that is created, with torch installed by pip, when it
# is missing (the Linux wheel from PyPI brings CUDA libraries, several GB;
# only the CPU is used). Each process runs one network, so that its peak
# memory (max RSS) is that network's. For each network the two sides take
# turns, so that each Rust run has a PyTorch run next to it under similar
# machine load; ratios between methods of one side come from the same
# rounds of one process, and the two sides' parameter counts and noise
# strengths are checked to be equal. Per-run tables and JSON go to
# target/bench-step/; the combined table is printed last and also written
# to target/bench-step/table.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/target/bench-step"
VENV="$ROOT/target/bench-venv"
TORCH_SPEC="${TORCH_SPEC:-torch==2.15.*}"
script_started=$(date +%s)

quick=""
pairs=""
nets="f1,c1,resnet44"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --pairs | --nets)
            [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
            if [ "$1" = --pairs ]; then pairs="$2"; else nets="$2"; fi
            shift
            ;;
        -h | --help)
            sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "${STEP_BENCH_QUICK:-0}" in "" | 0) ;; *) quick=1 ;; esac
pairs="${pairs:-$([ -n "$quick" ] && echo 2 || echo 3)}"
case "$pairs" in '' | *[!0-9]* | 0) echo "--pairs: '$pairs' is not a positive number" >&2; exit 2 ;; esac
IFS=, read -r -a net_list <<< "$nets"
[ ${#net_list[@]} -gt 0 ] || { echo "--nets: no network given" >&2; exit 2; }
for net in "${net_list[@]}"; do
    case "$net" in f1 | c1 | resnet44) ;; *) echo "--nets: '$net' is not f1, c1 or resnet44" >&2; exit 2 ;; esac
done
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
# The executable cargo built, run directly: every pair times the same code,
# even if the sources change while the benchmark runs.
RUST_BENCH="$(
    cargo bench -q -p smoothout-models --bench train_step --no-run \
        --message-format=json-render-diagnostics \
        | "$PY" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "train_step" and m.get("executable"):
        print(m["executable"])'
)"
[ -x "$RUST_BENCH" ] || { echo "no train_step executable from cargo" >&2; exit 1; }

mkdir -p "$OUT"
rm -f "$OUT"/rust-*.json "$OUT"/torch-*.json "$OUT"/rust-*.md "$OUT"/torch-*.md
started=$(date +%s)
for net in "${net_list[@]}"; do
    for i in $(seq 1 "$pairs"); do
        echo "== $net, pair $i/$pairs: Rust" >&2
        "$RUST_BENCH" --net "$net" "${quick_flag[@]}" --json "$OUT/rust-$net-$i.json" \
            | tee "$OUT/rust-$net-$i.md" >&2
        echo "== $net, pair $i/$pairs: PyTorch" >&2
        "$PY" models/benches/step_torch.py --net "$net" "${quick_flag[@]}" \
            --json "$OUT/torch-$net-$i.json" | tee "$OUT/torch-$net-$i.md" >&2
    done
done
elapsed=$(($(date +%s) - started))

"$PY" - "$OUT" "$pairs" "$elapsed" "${net_list[@]}" << 'EOF' | tee "$OUT/table.md"
import json, statistics, sys

out, pairs, elapsed, nets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
med = statistics.median
nan = float("nan")
titles = {"f1": "F1", "c1": "C1", "resnet44": "ResNet-44"}


def load(side, net):
    return [json.load(open(f"{out}/{side}-{net}-{i}.json")) for i in range(1, pairs + 1)]


def rows(runs):
    """(batch, method) -> list over runs of that run's result."""
    table = {}
    for run in runs:
        for r in run["results"]:
            table.setdefault((r["batch"], r["method"]), []).append(r)
    return table


pooled = lambda rs, key: [v for r in rs for v in r[key]]
lines, notes = [], []
first_rust = first_torch = None
for net in nets:
    rust, torch = load("rust", net), load("torch", net)
    first_rust, first_torch = first_rust or rust[0], first_torch or torch[0]
    for run in rust + torch:
        if run["params"] != rust[0]["params"]:
            sys.exit(f"{net}: {run['params']} parameters in one run, {rust[0]['params']} in another: not the same network")
    R, T = rows(rust), rows(torch)
    rss = med([r["max_rss_mib"] for r in rust]) if all(r["max_rss_mib"] is not None for r in rust) else None
    t_rss = med([t["max_rss_mib"] for t in torch])
    for (batch, method), rs in R.items():
        ts = T.get((batch, method), [])
        for t in ts:
            if abs(t["a"] - rs[0]["a"]) > 1e-12:
                sys.exit(f"{net} {batch} {method}: a = {rs[0]['a']} in Rust, {t['a']} in PyTorch")
        ms = med(pooled(rs, "ms"))
        ratio = med(pooled(rs, "ratio_to_baseline"))
        t_ms = med(pooled(ts, "ms")) if ts else nan
        t_ratio = med(pooled(ts, "ratio_to_baseline")) if ts else nan
        # ours / PyTorch: per pair (neighbouring runs), ratio of the two
        # runs' medians; then the median over pairs.
        vs = med([med(r["ms"]) / med(t["ms"]) for r, t in zip(rs, ts)]) if ts else nan
        allocs = med([r["allocs_per_step"] for r in rs])
        mib = med([r["alloc_mib_per_step"] for r in rs])
        name = method if method == "baseline" else f"{method} (a = {rs[0]['a']:g})"
        lines.append(
            f"| {titles[net]} | {batch} | {name} | {ms:.2f} | {t_ms:.2f} | {vs:.2f} | {ratio:.3f} "
            f"| {t_ratio:.3f} | {allocs:.0f} ({mib:.1f} MiB) | {'n/a' if rss is None else f'{rss:.0f}'} "
            f"| {t_rss:.0f} |"
        )
    notes.append(f"{titles[net]} {rust[0]['params']:,} parameters, {rust[0]['rounds']} rounds per run")

print(
    f"Training step, f32, {first_rust['threads']} threads ({first_rust['isa']} kernels) vs "
    f"PyTorch {first_torch['torch']} ({first_torch['threads']} threads); {pairs} Rust/PyTorch "
    f"pairs per network{' (quick)' if first_rust['quick'] else ''} ({'; '.join(notes)}); runs took {elapsed} s\n"
)
print(
    "| network | batch | method | ours ms/step | PyTorch ms/step | ours / PyTorch | ours × plain "
    "| PyTorch × plain | allocations/step (ours) | ours max RSS MiB | PyTorch max RSS MiB |"
)
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
print("\n".join(lines))
print(
    "\nms/step: median over all rounds of all runs. × plain: median of per-round ratios to the "
    "baseline of the same batch (same process, same round). ours / PyTorch: median over pairs "
    "of (Rust run median / PyTorch run median). Allocations: heap allocations of one step after "
    "warm-up, every thread, and the MiB they asked for. Max RSS: peak resident memory of the "
    "process (median over runs), which holds every configuration of its network. PyTorch's "
    "SmoothOut rows are naive in-place noise (torch.rand, kept and subtracted after backward)."
)
EOF
echo "total: $(($(date +%s) - script_started)) s (runs: $elapsed s)" >&2
