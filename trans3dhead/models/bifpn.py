"""BiFPN neck of DAD-3DNet as the official code builds it (facts section 5).

Inputs P3..P5 are 1x1 projections of ResNet stages 1-3, P6 a 3x3 stride-2 conv of the raw stage-3 map and
P7 a 3x3 stride-2 conv + BN + ReLU of P6. Each layer fuses top-down (P6..P3) then bottom-up (P4..P7); every
node is a fast normalised weighted sum, w_i = relu(v_i) / (sum_j relu(v_j) + 1e-4), followed by a
depthwise-separable block with kernel 1 (depthwise 1x1, pointwise 1x1, BN, ReLU). Levels are resized by
nearest interpolation both ways (no max-pool), so the neck is cheap next to the ResNet.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_LEVELS = 5                     # P3..P7
FUSION_EPS = 1e-4
# The official BatchNorm constants (TensorFlow's EfficientDet values passed to torch as they are: in torch's
# convention momentum 0.9997 makes the running statistics nearly those of the last batch).
BN_MOMENTUM, BN_EPS = 0.9997, 4e-5


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


def separable_block(channels: int, kernel_size: int = 1) -> nn.Sequential:
    """Depthwise conv (groups = channels, no bias), pointwise 1x1 (no bias), BN, ReLU: the official fusion block."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False), _batch_norm(channels), nn.ReLU(inplace=True))


class WeightedFusion(nn.Module):
    """sum_i w_i x_i with w = relu(learned, initialised to 1) / (sum relu + 1e-4), then the separable block."""

    def __init__(self, n_inputs: int, channels: int):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(n_inputs))
        self.block = separable_block(channels)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        w = F.relu(self.weights)
        w = w / (w.sum() + FUSION_EPS)
        return self.block(sum(wi * x for wi, x in zip(w, inputs)))


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class BiFPNLayer(nn.Module):
    """One top-down + bottom-up pass over P3..P7: 2-input top-down nodes P6..P3, 3-input bottom-up nodes
    P4..P7 (input, its top-down node, the level below; P7's top-down node is P7 itself); P3's output is its
    top-down node. ``n_outputs`` < 5 stops the bottom-up path early (the last layer of DAD-3DNet's neck: only
    P3..P5 are read, so its P6/P7 nodes would be weights no gradient reaches)."""

    def __init__(self, channels: int, n_outputs: int = N_LEVELS):
        super().__init__()
        self.n_outputs = n_outputs
        self.top_down = nn.ModuleList(WeightedFusion(2, channels) for _ in range(N_LEVELS - 1))
        self.bottom_up = nn.ModuleList(WeightedFusion(3, channels) for _ in range(1, n_outputs))

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """``levels``: P3..P7, finest first; returns the first ``n_outputs`` fused maps at the same sizes."""
        td = list(levels)
        for i in range(N_LEVELS - 2, -1, -1):
            td[i] = self.top_down[i]([levels[i], _resize(td[i + 1], levels[i])])
        out = [td[0]]
        for i in range(1, self.n_outputs):
            out.append(self.bottom_up[i - 1]([levels[i], td[i], _resize(out[-1], levels[i])]))
        return out


class BiFPN(nn.Module):
    """Projects s1..s3 to ``channels`` (1x1 convs with bias, no BN), adds P6 (3x3 stride-2 conv of s3) and P7
    (3x3 stride-2 conv + BN + ReLU of P6), runs ``n_layers`` BiFPN layers; returns P3..P(2 + n_outputs)."""

    def __init__(self, in_channels: tuple[int, int, int], channels: int, n_layers: int, n_outputs: int = 3):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.p6 = nn.Conv2d(in_channels[2], channels, 3, stride=2, padding=1)
        self.p7 = nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
                                _batch_norm(channels), nn.ReLU(inplace=True))
        self.layers = nn.ModuleList(BiFPNLayer(channels, n_outputs if i == n_layers - 1 else N_LEVELS)
                                    for i in range(n_layers))

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, s3: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(s3)
        levels = [conv(x) for conv, x in zip(self.lateral, (s1, s2, s3))] + [p6, self.p7(p6)]
        for layer in self.layers:
            levels = layer(levels)
        return levels
