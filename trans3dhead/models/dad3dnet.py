"""DAD-3DNet baseline (facts section 5): ResNet + BiFPN + stride-4 heatmaps, fused, MLP heads."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trans3dhead.config import ModelConfig
from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.models.backbone import resnet_stages
from trans3dhead.models.bifpn import BiFPN
from trans3dhead.models.heads import pose_offset, squash_params
from trans3dhead.models.marr import N_LANDMARKS


def _mlp_head(in_features: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(0.3),
                         nn.Linear(hidden, out))


class DAD3DNet(nn.Module):
    """The DAD-3DNet baseline (facts section 5): ResNet stages, a BiFPN neck whose stride-4 landmark heatmaps
    are fused back into stage 3, then MLP heads on the pooled last stage for the FLAME parameters and the
    68 landmarks. ``forward`` returns the FLAME outputs, ``landmarks_2d`` (crop units) and ``heatmaps`` (logits)."""

    def __init__(self, backbone_name: str, pretrained: bool, flame: FlameDecoder, mean_face: torch.Tensor,
                 *, neck_channels: int, bifpn_layers: int, head_hidden: int, pose_init: str):
        super().__init__()
        self.stages, channels = resnet_stages(backbone_name, pretrained)
        self.neck = BiFPN(channels[:3], neck_channels, bifpn_layers)
        self.heatmap_head = nn.Conv2d(neck_channels, N_LANDMARKS, 3, padding=1)
        self.fuse = nn.Conv2d(channels[2] + N_LANDMARKS + neck_channels, channels[2], 1)
        self.flame = flame
        layout = flame.layout
        self.shape_head = _mlp_head(channels[3], head_hidden, layout.n_shape_like)
        self.pose_head = _mlp_head(channels[3], head_hidden, layout.n_pose)
        self.landmark_head = _mlp_head(channels[3], head_hidden, N_LANDMARKS * 2)
        self.register_buffer("pose_offset", pose_offset(pose_init, flame, mean_face))

    @classmethod
    def from_config(cls, cfg: ModelConfig, flame: FlameDecoder, mean_face: torch.Tensor) -> "DAD3DNet":
        """The baseline a ``ModelConfig`` describes; it reads only the trunk, DAD-3DNet and pose fields."""
        return cls(cfg.backbone, cfg.pretrained, flame, mean_face, neck_channels=cfg.neck_channels,
                   bifpn_layers=cfg.bifpn_layers, head_hidden=cfg.head_hidden, pose_init=cfg.pose_init)

    @property
    def trunk(self) -> nn.Module:
        """The ResNet stages (ImageNet-initialised; lr x0.1 under the paper's recipe, as for Trans3DHead)."""
        return self.stages

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunk.parameters()

    def forward(self, images: torch.Tensor) -> dict[str, object]:
        s1 = self.stages[0](images)
        s2 = self.stages[1](s1)
        s3 = self.stages[2](s2)
        p3, _, p5 = self.neck(s1, s2, s3)
        heatmaps = self.heatmap_head(p3)                                  # stride 4
        small = torch.sigmoid(F.interpolate(heatmaps, size=s3.shape[-2:], mode="bilinear", align_corners=False))
        fused = self.fuse(torch.cat([s3, small, F.interpolate(p5, size=s3.shape[-2:])], dim=1)) * s3
        pooled = self.stages[3](fused).mean(dim=(2, 3))
        raw = torch.cat([self.shape_head(pooled), self.pose_head(pooled)], dim=-1)
        params = squash_params(raw, self.flame.layout, self.pose_offset)
        out: dict[str, object] = dict(self.flame(params.float()))
        landmarks = F.relu(self.landmark_head(pooled)).float().reshape(-1, N_LANDMARKS, 2)
        out.update(landmarks_2d=landmarks, landmarks_per_layer=[landmarks], residuals_per_layer=[],
                   mean_face=None, heatmaps=heatmaps.float())
        return out
