"""ResNet for CIFAR in PyTorch, built as smoothout-models builds it
(`networks::resnet_cifar`, `layers::BasicBlock`; ResNet-44 at depth 44):
the one definition that both PyTorch step benches import,
models/benches/step_torch.py (CPU) and backend-cuda/bench/resnet44_torch.py
(GPU; backend-cuda/gpu-build.sh copies this file next to it).

    conv 3x3, 3 -> 16, padding 1, no bias; BatchNorm; ReLU
    three stages of (depth - 2) / 6 basic blocks with 16, 32, 64 filters,
    the first block of stages 2 and 3 with stride 2. A block:
        main     = BN(conv3x3(ReLU(BN(conv3x3_stride(x)))))   (no biases, padding 1)
        shortcut = x, or BN(conv1x1_stride(x)) where the shape changes
                   (He et al.'s option B)
        y        = ReLU(main + shortcut)
    global average pooling; Linear 64 -> classes with bias

`inplace=True` computes the same network with in-place ReLUs and an
in-place residual add, and pools with adaptive_avg_pool2d, as usual in
PyTorch CIFAR code (the CPU bench); `inplace=False` with out-of-place
operations and a mean over the image (the GPU bench). The layers, their
order and so their initialisation under one seed are the same either way.
"""

from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3x3 convs
    without bias; the shortcut a 1x1 conv + BN where the shape changes."""

    def __init__(self, cin, filters, stride, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(cin, filters, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.shortcut = None
        if stride != 1 or cin != filters:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, filters, 1, stride, 0, bias=False),
                nn.BatchNorm2d(filters),
            )

    def forward(self, x):
        if self.inplace:
            out = F.relu(self.bn1(self.conv1(x)), inplace=True)
            out = self.bn2(self.conv2(out))
            out += x if self.shortcut is None else self.shortcut(x)
            return F.relu(out, inplace=True)
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(h + s)


class ResNetCifar(nn.Module):
    def __init__(self, depth=44, classes=10, inplace=False):
        super().__init__()
        assert (depth - 2) % 6 == 0
        n = (depth - 2) // 6
        self.inplace = inplace
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for filters, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(cin, filters, stride if i == 0 else 1, inplace))
                cin = filters
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        if self.inplace:
            x = F.relu(self.bn1(self.conv1(x)), inplace=True)
            x = self.layers(x)
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layers(h)
        h = h.mean(dim=(2, 3))
        return self.fc(h)
