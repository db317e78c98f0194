"""Time of one ResNet-44 training step in PyTorch on the GPU, for comparison
with `cargo bench -p smoothout-models --features cuda --bench gpu_step`.

The network is smoothout-models' ResNet-44 (models/src/networks/nets.rs,
`resnet_cifar` with depth 44), as models/benches/resnet_torch.py defines it
for both PyTorch benches (imported from this script's folder, where
gpu-build.sh puts a copy, or else from models/benches/ of the repository):

    conv 3x3, 3 -> 16, padding 1, no bias; BatchNorm; ReLU
    three stages of 7 basic blocks with 16, 32, 64 filters, the first block
    of stages 2 and 3 with stride 2. A block:
        main     = BN(conv3x3(ReLU(BN(conv3x3_stride(x)))))   (no biases, padding 1)
        shortcut = x, or BN(conv1x1_stride(x)) where the shape changes
        y        = ReLU(main + shortcut)
    global average pooling; Linear 64 -> 10 with bias

661,338 parameters (checked below). BatchNorm with PyTorch's defaults
(momentum 0.1, eps 1e-5), as ours. A step is zero_grad, copying the batch
from (pageable) host memory to the GPU as our trainer does (`--data-on-gpu`
skips it), forward, cross-entropy, backward, SGD step (lr 0.1, momentum
0.9), in float32 with TF32 off for matrix products and cuDNN (our backend
computes in full FP32) and `cudnn.benchmark = True`.

"adasmoothout" is AdaSmoothOut written naively with torch ops: before the
forward pass, for every convolution and Linear weight, uniform noise
u ~ U(-1, 1) is drawn per element and scaled per filter (output channel) to
a * ||w_filter|| / (||u_filter|| + 1e-6), a = 0.15 (the fc bias: a * |b|
with u's sign); the noise is kept, added in place, and subtracted again
after the backward pass, before the optimiser step. BatchNorm's
parameters are not perturbed (as ours).

Timing: after warm-up, rounds in which every configuration runs K steps
between two torch.cuda.synchronize() calls, the method order alternating
from round to round; the median over rounds of ms/step, images/s, and the
median of the per-round ratio to the baseline of the same batch. Rounds
stop at --rounds or when the batch's time budget is spent.

    python3 resnet44_torch.py [--quick] [--json PATH] [--batches 128,2048]
                              [--device cuda|cpu] [--data-on-gpu]

Needs only torch (no torchvision). Without a GPU it prints
`skipped: <reason>` and exits 0 (or runs on the CPU with --device cpu, for
trying the script out with small batches).
"""

import argparse
import json
import os
import statistics
import sys
import time

try:
    import torch
    from torch import nn
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: PyTorch is not installed ({e})")
    sys.exit(0)

_here = os.path.dirname(os.path.abspath(__file__))
for _d in (_here, os.path.join(_here, "..", "..", "models", "benches")):
    if os.path.exists(os.path.join(_d, "resnet_torch.py")):
        sys.path.insert(0, _d)
        break
from resnet_torch import ResNetCifar  # noqa: E402

EXPECTED_PARAMS = 661_338
A = 0.15
METHODS = ("baseline", "adasmoothout")


class Case:
    """One (batch, method) configuration with its own model and optimiser."""

    def __init__(self, batch, method, device, seed):
        torch.manual_seed(seed)
        self.batch, self.method, self.device = batch, method, device
        self.model = ResNetCifar().to(device).train()
        # Every convolution and Linear weight and bias (not BatchNorm's).
        self.perturbed = [
            p
            for m in self.model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
            for p in m.parameters(recurse=False)
        ]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.loss_fn = nn.CrossEntropyLoss()
        self.ms = []
        self.loss = float("nan")

    @torch.no_grad()
    def perturb(self):
        """Adds per-filter-scaled uniform noise in place; returns it."""
        kept = []
        for p in self.perturbed:
            u = torch.rand_like(p).mul_(2.0).sub_(1.0)
            if p.dim() > 1:
                w = p.reshape(p.shape[0], -1)
                uf = u.reshape(u.shape[0], -1)
                scale = A * w.norm(dim=1, keepdim=True) / (uf.norm(dim=1, keepdim=True) + 1e-6)
                uf.mul_(scale)
            else:
                u = A * p.abs() * torch.sign(u)
            p.add_(u)
            kept.append((p, u))
        return kept

    def step(self, x_host, y_host, data_on_gpu):
        if data_on_gpu:
            x, y = x_host, y_host
        else:
            x, y = x_host.to(self.device), y_host.to(self.device)
        self.opt.zero_grad(set_to_none=True)
        kept = self.perturb() if self.method == "adasmoothout" else ()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        with torch.no_grad():
            for p, u in kept:
                p.sub_(u)
        self.opt.step()
        return loss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(case, data, steps, device, data_on_gpu):
    sync(device)
    t0 = time.perf_counter()
    loss = None
    for _ in range(steps):
        loss = case.step(*data, data_on_gpu)
    sync(device)
    ms = (time.perf_counter() - t0) * 1e3 / steps
    case.loss = float(loss.detach())
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, smaller budgets")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--batches", default="128,2048")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-on-gpu", action="store_true", help="keep the batch on the GPU")
    args = ap.parse_args()

    def write_json(obj):
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(obj, f, indent=1)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        reason = f"torch {torch.__version__} sees no CUDA device"
        print(f"skipped: {reason}")
        write_json({"skipped": reason})
        return 0
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    batches = [int(b) for b in args.batches.split(",") if b]

    params = sum(p.numel() for p in ResNetCifar().parameters())
    if params != EXPECTED_PARAMS:
        print(f"error: this ResNet-44 has {params} parameters, ours {EXPECTED_PARAMS}")
        return 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    print(
        f"PyTorch {torch.__version__} ResNet-44 train step on {name} (cuDNN {cudnn}), float32, "
        f"TF32 off, cudnn.benchmark on, SGD momentum 0.9, lr 0.1; AdaSmoothOut (naive) a = {A}; "
        f"{'batch kept on the GPU' if args.data_on_gpu else 'batch copied from the host every step'}"
        f"{' (quick)' if args.quick else ''}"
    )

    gen = torch.Generator().manual_seed(0x5EED)
    results, endings = [], []
    for batch in batches:
        big = batch >= 1024
        steps = 3 if big else 5
        rounds = (3 if big else 5) if args.quick else (5 if big else 9)
        budget = (20 if big else 10) if args.quick else (45 if big else 25)
        warmup = 3
        x = torch.rand(batch, 3, 32, 32, generator=gen).mul_(3.4).sub_(1.7)
        y = torch.randint(0, 10, (batch,), generator=gen)
        if args.data_on_gpu:
            x, y = x.to(device), y.to(device)
        elif device.type == "cuda":
            x, y = x.contiguous(), y.contiguous()
        cases = [Case(batch, m, device, seed=1) for m in METHODS]
        failed = {}
        for c in cases:
            try:
                for _ in range(warmup):
                    c.step(x, y, args.data_on_gpu)
                sync(device)
            except RuntimeError as e:  # e.g. out of memory
                failed[c.method] = str(e).splitlines()[0]
        started = time.perf_counter()
        longest = 0.0
        r = 0
        ended = f"all {rounds} rounds ran"
        while r < rounds:
            if r > 0 and time.perf_counter() - started + longest > budget:
                ended = f"stopped after {r} of {rounds} rounds: the {budget} s budget was spent"
                break
            t_round = time.perf_counter()
            for k in range(len(cases)):
                c = cases[(k + r) % len(cases)]
                if c.method in failed:
                    continue
                try:
                    c.ms.append(timed(c, (x, y), steps, device, args.data_on_gpu))
                except RuntimeError as e:
                    failed[c.method] = str(e).splitlines()[0]
            longest = max(longest, time.perf_counter() - t_round)
            r += 1
            print(f"\rbatch {batch}: round {r}/{rounds}", end="", file=sys.stderr, flush=True)
        print(f" ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
        print(f"batch {batch}: {steps} steps per measurement; {ended}")
        endings.append({"batch": batch, "steps_per_measurement": steps, "ended": ended})
        base = next(c for c in cases if c.method == "baseline")
        for c in cases:
            ratios = [m / b for m, b in zip(c.ms, base.ms)]
            med = statistics.median(c.ms) if c.ms else None
            results.append(
                {
                    "batch": batch,
                    "method": c.method,
                    "ms": c.ms,
                    "ms_median": med,
                    "images_per_s": batch * 1e3 / med if med else None,
                    "ratio_to_baseline": ratios,
                    "ratio_median": statistics.median(ratios) if ratios else None,
                    "last_loss": c.loss,
                    "failed": failed.get(c.method),
                }
            )
        del cases
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print()
    print("| batch | method | ms/step (median) | min–max | images/s | × baseline (median of per-round ratios) | rounds |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        label = r["method"] + ("" if r["method"] == "baseline" else " (naive)")
        if not r["ms"]:
            print(f"| {r['batch']} | {label} | failed | | | | 0 |")
            continue
        print(
            f"| {r['batch']} | {label} | {r['ms_median']:.2f} | {min(r['ms']):.2f}–{max(r['ms']):.2f} "
            f"| {r['images_per_s']:.0f} | {r['ratio_median']:.3f} | {len(r['ms'])} |"
        )
    for r in results:
        if r["failed"]:
            print(f"\nbatch {r['batch']} {r['method']} failed: {r['failed']}")
    print(
        "\nlast losses (ln 10 = 2.303 at chance): "
        + ", ".join(f"{r['batch']} {r['method']} {r['last_loss']:.3f}" for r in results)
    )
    write_json(
        {
            "torch": torch.__version__,
            "device": name,
            "cudnn": cudnn,
            "data_on_gpu": args.data_on_gpu,
            "quick": args.quick,
            "batches": endings,
            "results": results,
        }
    )
    if args.json:
        print(f"figures: {args.json}")
    return 1 if any(r["failed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
