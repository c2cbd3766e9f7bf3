"""BiFPN neck of DAD-3DNet (facts section 5): top-down then bottom-up fusion with fast normalised weights."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))


class WeightedFusion(nn.Module):
    """sum_i w_i x_i / (sum w + eps) with w = relu(learned), then a 3x3 conv."""

    def __init__(self, n_inputs: int, channels: int):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(n_inputs))
        self.conv = _conv_bn_relu(channels)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        w = F.relu(self.weights)
        w = w / (w.sum() + 1e-4)
        return self.conv(sum(wi * x for wi, x in zip(w, inputs)))


class BiFPNLayer(nn.Module):
    """One top-down + bottom-up pass. ``n_outputs`` < ``n_levels`` stops the bottom-up path early
    (the last layer of DAD-3DNet's neck: only P3..P5 are read, so P6/P7 fusions would be dead weights)."""

    def __init__(self, channels: int, n_levels: int, n_outputs: int | None = None):
        super().__init__()
        self.n_outputs = n_outputs or n_levels
        self.top_down = nn.ModuleList(WeightedFusion(2, channels) for _ in range(n_levels - 1))
        self.bottom_up = nn.ModuleList(WeightedFusion(3 if i < n_levels - 1 else 2, channels)
                                       for i in range(1, self.n_outputs))

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """``levels``: finest first; returns the first ``n_outputs`` maps at the same sizes."""
        n = len(levels)
        td = list(levels)
        for i in range(n - 2, -1, -1):
            up = F.interpolate(td[i + 1], size=levels[i].shape[-2:], mode="nearest")
            td[i] = self.top_down[i]([levels[i], up])
        out = [td[0]]
        for i in range(1, self.n_outputs):
            down = F.adaptive_max_pool2d(out[-1], levels[i].shape[-2:])
            inputs = [levels[i], td[i], down] if i < n - 1 else [levels[i], down]
            out.append(self.bottom_up[i - 1](inputs))
        return out


class BiFPN(nn.Module):
    """Projects s1..s3 to ``channels``, adds P6 and P7 by striding, runs ``n_layers`` BiFPN layers;
    returns P3..P(2 + n_outputs)."""

    def __init__(self, in_channels: tuple[int, int, int], channels: int, n_layers: int, n_outputs: int = 3):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.p6 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.layers = nn.ModuleList(BiFPNLayer(channels, 5, n_outputs if i == n_layers - 1 else 5)
                                    for i in range(n_layers))

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, s3: torch.Tensor) -> list[torch.Tensor]:
        p3, p4, p5 = (conv(x) for conv, x in zip(self.lateral, (s1, s2, s3)))
        p6 = self.p6(p5)
        levels = [p3, p4, p5, p6, self.p7(F.relu(p6))]
        for layer in self.layers:
            levels = layer(levels)
        return levels
