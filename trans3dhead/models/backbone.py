"""ResNet trunks from torchvision: the low-resolution memory of Trans3DHead, the stages of DAD-3DNet."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from trans3dhead.config import BACKBONES

_STAGES_FOR_STRIDE = {8: 2, 16: 3, 32: 4}


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but cannot be loaded (typically: no internet)."""


class ChannelsLastMaxPool(nn.MaxPool2d):
    """The stem's max pool, run channels-last on a CPU: torch's NCHW CPU kernel is some 20x slower at the trunk's
    shapes (9.2 ms against 0.45 ms for 32x64x24x24, one thread), though the layout copies around it give back about
    half of that: a converged step of Trans3DHead 0.978x, DAD-3DNet 0.992x (docs/running.md). The maxima and their
    indices do not depend on the layout, so the output and the gradients are bit-identical (tests/test_models.py);
    the output goes back to the input's layout, so the convolutions after it run exactly as before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or x.dim() != 4 or self.return_indices
                or x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


def resnet_stages(name: str, pretrained: bool) -> tuple[nn.ModuleList, tuple[int, ...]]:
    """The four stages of a torchvision ResNet (stem folded into s1) and their channel counts."""
    if name not in BACKBONES:
        raise ValueError(f"model.backbone={name!r}: use one of {list(BACKBONES)}")
    weights = None
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        net = getattr(torchvision.models, name)(weights=weights)
    except Exception as err:  # urllib / hub errors differ across versions
        raise PretrainedWeightsUnavailable(
            f"could not load ImageNet weights for {name} ({err}). Offline machines: copy the file "
            f"{weights.url.rsplit('/', 1)[-1] if weights else ''} into $TORCH_HOME/hub/checkpoints "
            "(default ~/.cache/torch/hub/checkpoints), or set model.pretrained: false") from err
    pool = net.maxpool
    pool = ChannelsLastMaxPool(pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.return_indices,
                               pool.ceil_mode)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, pool, net.layer1)
    # every ResNet doubles its channels from stage to stage, ending at the classifier's input
    channels = tuple(net.fc.in_features >> (3 - stage) for stage in range(4))
    return nn.ModuleList([stem, net.layer2, net.layer3, net.layer4]), channels


def trunk_body(name: str, stride: int, pretrained: bool) -> tuple[nn.Sequential, int]:
    """The ResNet's stages up to ``stride`` (8, 16 or 32) and the channels of the last one."""
    stages, channels = resnet_stages(name, pretrained)
    n_stages = _STAGES_FOR_STRIDE[stride]
    return nn.Sequential(*stages[:n_stages]), channels[n_stages - 1]


class Backbone(nn.Module):
    """ResNet trunk cut at ``stride`` (8, 16 or 32), projected to ``d_model`` channels by a 1x1 conv.

    Trans3DHead keeps only this single low-resolution map (paper section 3.1); a stride-16 or
    stride-8 cut keeps the paper's 8x8 memory grid at the small input sizes of the CPU profiles.
    """

    def __init__(self, name: str, stride: int, d_model: int, pretrained: bool = False):
        super().__init__()
        self.body, channels = trunk_body(name, stride, pretrained)
        self.input_proj = nn.Conv2d(channels, d_model, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.input_proj(self.body(images))
