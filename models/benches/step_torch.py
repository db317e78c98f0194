"""Time and peak memory of one training step of F1, C1 or ResNet-44 in
PyTorch (CPU, 2 threads), for comparison with
`cargo bench -p smoothout-models --bench train_step`.

The networks (--net, one per process, so that the peak memory is the
network's) are built to equal ours layer for layer, and the script stops
unless the parameter count equals ours:

  f1        784 -> [Linear 512 -> BatchNorm1d -> ReLU] x 5 -> Linear 10
            (networks::f1), batch 256 and 4096;
  c1        conv 5x5 3->64 pad 2 no bias, max-pool 3/2, BatchNorm2d, ReLU,
            conv 5x5 64->64 pad 2 no bias, max-pool 3/2, BatchNorm2d, ReLU,
            flatten 64*7*7 -> Linear 3136->384 no bias, BatchNorm1d, ReLU,
            Dropout 0.5, Linear 384->192 no bias, BatchNorm1d, ReLU,
            Dropout 0.5, Linear 192->10 (networks::cifar_shallow), batch 128;
  resnet44  conv 3x3 3->16 no bias, BatchNorm2d, ReLU; 3 stages of 7 basic
            blocks with 16/32/64 filters (stride 2 at the first block of
            stages 2 and 3; shortcut 1x1 conv no bias + BatchNorm2d where the
            shape changes, He et al.'s option B); global average pool;
            Linear 64->10 (networks::resnet_cifar, layers::BasicBlock),
            batch 128.

--batch N times batch N alone. Default initialisation, CrossEntropyLoss,
SGD(lr=0.1, momentum=0.9, weight_decay=0) as the Rust bench's TrainConfig
(lr 0.1 kept constant, momentum 0.9, no weight decay), float32, train mode
(BatchNorm batch statistics, dropout on). ReLUs of the convolutional nets
are in place, as usual in PyTorch CIFAR code. A step is zero_grad, forward,
loss, backward, optimiser step on a fixed random batch.

Besides the plain step ("baseline") it times a naive SmoothOut written the
way one would in PyTorch without this project: before the forward pass draw
uniform noise for every Conv2d and Linear weight and bias (the parameters
the Rust trainer perturbs by default; not BatchNorm's) with torch.rand, keep
it, add it in place; after the backward pass subtract the kept noise, then
step. "smoothout" draws U(-a, a); "adasmoothout" rescales each row's noise
(row = weight.flatten(1), a filter of a convolution) to norm a * ||w_row||
(a bias element to a * |b|), as the Rust trainer's per-filter scaling does.
The strengths are the Rust bench's: a = 0.0375 for both methods, except
F1's AdaSmoothOut at a = 0.15.

The timing mirrors the Rust bench: warm-up, then rounds in which each
configuration (batch x three methods) runs K steps, with the method order
rotating from round to round; medians over rounds, and per-round ratios to
the baseline of the same batch. Last, the process's peak resident memory
(getrusage ru_maxrss), with every configuration's model alive as in the
Rust bench.

    python step_torch.py [--net f1|c1|resnet44] [--batch N] [--quick]
                         [--rounds R] [--json PATH]

OMP_WAIT_POLICY defaults to PASSIVE (see below); set it to override.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

# Worker threads that spin at barriers collapse when the machine is shared:
# with another process on one of the two cores, a batch-256 step went from
# ~20 ms to ~800 ms. Sleeping waiters (rayon's threads also park when idle)
# keep the comparison about the arithmetic. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

# ResNet-44, shared with backend-cuda/bench/resnet44_torch.py (this
# script's folder is on sys.path).
from resnet_torch import ResNetCifar  # noqa: E402

THREADS = 2
CLASSES = 10


def f1():
    layers = []
    fan_in = 784
    for _ in range(5):
        layers += [nn.Linear(fan_in, 512), nn.BatchNorm1d(512), nn.ReLU()]
        fan_in = 512
    layers.append(nn.Linear(fan_in, CLASSES))
    return nn.Sequential(nn.Flatten(), *layers)


def c1():
    def conv_block(cin):
        return [
            nn.Conv2d(cin, 64, 5, padding=2, bias=False),
            nn.MaxPool2d(3, 2),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        ]

    def fc_block(fan_in, width):
        return [
            nn.Linear(fan_in, width, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        ]

    return nn.Sequential(
        *conv_block(3),
        *conv_block(64),
        nn.Flatten(),
        *fc_block(64 * 7 * 7, 384),
        *fc_block(384, 192),
        nn.Linear(192, CLASSES),
    )


# Per network: constructor, input shape, default batches, parameter count of
# our network (Sequential::num_params, printed by the Rust bench), and the
# strengths of the Rust bench's configurations.
NETS = {
    "f1": (f1, (1, 28, 28), (256, 4096), 1_462_794, {"smoothout": 0.0375, "adasmoothout": 0.15}),
    "c1": (c1, (3, 32, 32), (128,), 1_388_490, {"smoothout": 0.0375, "adasmoothout": 0.0375}),
    "resnet44": (
        lambda: ResNetCifar(44, CLASSES, inplace=True),
        (3, 32, 32),
        (128,),
        661_338,
        {"smoothout": 0.0375, "adasmoothout": 0.0375},
    ),
}
TITLES = {"f1": "F1", "c1": "C1", "resnet44": "ResNet-44"}
METHODS = ("baseline", "smoothout", "adasmoothout")


class Case:
    """One (batch, method) configuration with its own model and optimiser."""

    def __init__(self, net, batch, method, a):
        self.batch, self.method, self.a = batch, method, a
        self.model = NETS[net][0]().train()
        self.noisy = [
            p
            for m in self.model.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))
            for p in (m.weight, m.bias)
            if p is not None
        ]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.0)
        self.loss = nn.CrossEntropyLoss()
        self.ms = []

    @torch.no_grad()
    def perturb(self):
        """Adds fresh noise to every Conv2d and Linear weight and bias;
        returns it."""
        kept = []
        for p in self.noisy:
            u = torch.rand_like(p).mul_(2.0).sub_(1.0)
            if self.method == "adasmoothout":
                if p.dim() >= 2:
                    w, v = p.flatten(1), u.view(u.shape[0], -1)
                    row = w.norm(dim=1, keepdim=True)
                    v.mul_(self.a * row / (v.norm(dim=1, keepdim=True) + 1e-6))
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


def max_rss_mib():
    """Peak resident memory of this process (ru_maxrss: KiB on Linux,
    bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", choices=sorted(NETS), default="f1")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--json", default="target/bench-step/torch.json")
    args = ap.parse_args()
    quick = args.quick or os.environ.get("STEP_BENCH_QUICK", "0") not in ("", "0")
    rounds = max(1, args.rounds or (3 if quick else 9))
    warmup = 1 if quick else 2
    _, shape, default_batches, ours, strengths = NETS[args.net]
    batches = (args.batch,) if args.batch else default_batches

    def steps(batch):
        if args.net == "f1" and batch == 256:
            return 4 if quick else 8
        return 1

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    inputs = {b: (torch.randn(b, *shape), torch.randint(0, CLASSES, (b,))) for b in batches}
    cases = [Case(args.net, b, m, strengths.get(m, 0.0375)) for b in batches for m in METHODS]
    params = sum(p.numel() for p in cases[0].model.parameters())
    if params != ours:
        sys.exit(f"{args.net}: the PyTorch model has {params} parameters, ours {ours}: not the same network")
    print(
        f"PyTorch {torch.__version__} {TITLES[args.net]} train step ({params} parameters), float32, "
        f"{torch.get_num_threads()} threads; {rounds} rounds, "
        f"{warmup} warm-up steps per configuration{' (quick)' if quick else ''}"
    )
    for c in cases:
        x, y = inputs[c.batch]
        for _ in range(warmup):
            c.step(x, y)

    started = time.perf_counter()
    for r in range(rounds):
        for bi, b in enumerate(batches):
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
                "a": c.a,
                "steps_per_measurement": steps(c.batch),
                "ms": c.ms,
                "ratio_to_baseline": ratios,
            }
        )
    rss = max_rss_mib()
    print(f"\nmax RSS: {rss:.1f} MiB")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(
            {
                "net": args.net,
                "params": params,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rounds": rounds,
                "warmup": warmup,
                "quick": quick,
                "max_rss_mib": rss,
                "results": results,
            },
            f,
            indent=1,
        )
    print(f"per-round figures: {args.json}")


if __name__ == "__main__":
    main()
