"""Time of one F1 training step in PyTorch (CPU, 2 threads), for comparison
with `cargo bench -p smoothout-models --bench train_step`.

F1: 784 -> [Linear 512 -> BatchNorm1d -> ReLU] x 5 -> Linear 10, default
initialisation, CrossEntropyLoss, SGD(lr=0.1, momentum=0.9), float32. A step
is zero_grad, forward, loss, backward, optimiser step on a fixed random batch.

Besides the plain step ("baseline") it times a naive SmoothOut written the
way one would in PyTorch without this project: before the forward pass draw
uniform noise for every Linear weight and bias with torch.rand, keep it, add
it in place; after the backward pass subtract the kept noise, then step.
"smoothout" uses a fixed a = 0.0375; "adasmoothout" (a = 0.15) rescales each
weight row's noise to a * ||w_row|| (a bias element to a * |b|), as the
Rust trainer's per-filter scaling does.

The timing mirrors the Rust bench: warm-up, then rounds in which each of the
six configurations (batch 256 and 4096 x three methods) runs K steps, with
the method order rotating from round to round; medians over rounds, and
per-round ratios to the baseline of the same batch.

    python f1_step_torch.py [--quick] [--rounds R] [--json PATH]

OMP_WAIT_POLICY defaults to PASSIVE (see below); set it to override.
"""

import argparse
import json
import os
import statistics
import sys
import time

# Worker threads that spin at barriers collapse when the machine is shared:
# with another process on one of the two cores, a batch-256 step went from
# ~20 ms to ~800 ms. Sleeping waiters (rayon's threads also park when idle)
# keep the comparison about the arithmetic. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn

BATCHES = (256, 4096)
METHODS = (("baseline", 0.0), ("smoothout", 0.0375), ("adasmoothout", 0.15))
THREADS = 2


def f1():
    layers = []
    fan_in = 784
    for _ in range(5):
        layers += [nn.Linear(fan_in, 512), nn.BatchNorm1d(512), nn.ReLU()]
        fan_in = 512
    layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


class Case:
    """One (batch, method) configuration with its own model and optimiser."""

    def __init__(self, batch, method, a):
        self.batch, self.method, self.a = batch, method, a
        self.model = f1().train()
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.loss = nn.CrossEntropyLoss()
        self.ms = []

    @torch.no_grad()
    def perturb(self):
        """Adds fresh noise to every Linear weight and bias; returns it."""
        kept = []
        for lin in self.linears:
            for p in (lin.weight, lin.bias):
                u = torch.rand_like(p).mul_(2.0).sub_(1.0)
                if self.method == "adasmoothout":
                    if p.dim() == 2:
                        row = p.norm(dim=1, keepdim=True)
                        u.mul_(self.a * row / (u.norm(dim=1, keepdim=True) + 1e-6))
                    else:
                        u = self.a * p.abs() * torch.sign(u)
                else:
                    u.mul_(self.a)
                p.add_(u)
                kept.append((p, u))
        return kept

    def step(self, x, y):
        self.opt.zero_grad()
        kept = self.perturb() if self.method != "baseline" else ()
        loss = self.loss(self.model(x), y)
        loss.backward()
        with torch.no_grad():
            for p, u in kept:
                p.sub_(u)
        self.opt.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--json", default="target/bench-f1/torch.json")
    args = ap.parse_args()
    quick = args.quick or os.environ.get("F1_BENCH_QUICK", "0") not in ("", "0")
    rounds = max(1, args.rounds or (3 if quick else 9))
    warmup = 1 if quick else 2

    def steps(batch):
        if batch == 256:
            return 4 if quick else 8
        return 1

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    inputs = {
        b: (torch.randn(b, 784), torch.randint(0, 10, (b,))) for b in BATCHES
    }
    cases = [Case(b, m, a) for b in BATCHES for (m, a) in METHODS]
    print(
        f"PyTorch {torch.__version__} F1 train step, float32, "
        f"{torch.get_num_threads()} threads; {rounds} rounds, "
        f"{warmup} warm-up steps per configuration{' (quick)' if quick else ''}"
    )
    for c in cases:
        x, y = inputs[c.batch]
        for _ in range(warmup):
            c.step(x, y)

    started = time.perf_counter()
    for r in range(rounds):
        for bi, b in enumerate(BATCHES):
            x, y = inputs[b]
            k = steps(b)
            for m in range(len(METHODS)):
                c = cases[bi * len(METHODS) + (m + r) % len(METHODS)]
                t0 = time.perf_counter()
                for _ in range(k):
                    c.step(x, y)
                c.ms.append((time.perf_counter() - t0) * 1e3 / k)
        print(f"\rround {r + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    print(f" ({time.perf_counter() - started:.1f} s)", file=sys.stderr)

    base = {c.batch: c.ms for c in cases if c.method == "baseline"}
    print()
    print("| batch | method | ms/step (median) | min–max | images/s | × baseline (median of per-round ratios) |")
    print("|---:|---|---:|---:|---:|---:|")
    results = []
    for c in cases:
        ratios = [m / b for m, b in zip(c.ms, base[c.batch])]
        med = statistics.median(c.ms)
        print(
            f"| {c.batch} | {c.method}{'' if c.method == 'baseline' else ' (naive)'} | {med:.2f} | {min(c.ms):.2f}–{max(c.ms):.2f} "
            f"| {c.batch * 1e3 / med:.0f} | {statistics.median(ratios):.3f} |"
        )
        results.append(
            {
                "batch": c.batch,
                "method": c.method,
                "steps_per_measurement": steps(c.batch),
                "ms": c.ms,
                "ratio_to_baseline": ratios,
            }
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rounds": rounds,
                "quick": quick,
                "results": results,
            },
            f,
            indent=1,
        )
    print(f"\nper-round figures: {args.json}")


if __name__ == "__main__":
    main()
