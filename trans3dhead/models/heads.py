"""The 3DMM parameter head (one decoder query per parameter) and the optional starting pose.

Both papers read the 10 pose values (rot6d, translation, scale) raw from the network (facts section 3);
``pose_init: mean_face`` adds a constant offset that puts the template's landmarks on the mean face at
initialisation, which neither paper has: it is a registry switch (docs/fidelity.md).
"""
from __future__ import annotations

import torch
from torch import nn

from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.flame.params import ParamLayout

SHAPE_LIKE_RANGE = 3.0      # shape, expression and jaw values go through tanh * 3 (facts section 3)
# A frontal head in image space (x right, y down, z away): R = diag(1, -1, -1); 6D = its first two columns.
FRONTAL_ROT6D = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def squash_params(raw: torch.Tensor, layout: ParamLayout, pose_offset: torch.Tensor) -> torch.Tensor:
    """Raw network outputs -> FLAME parameters: tanh*3 on shape-like values, offset raw pose values."""
    n = layout.n_shape_like
    shape_like = torch.tanh(raw[..., :n]) * SHAPE_LIKE_RANGE
    return torch.cat([shape_like, raw[..., n:] + pose_offset], dim=-1)


class PerQueryParameterHead(nn.Module):
    """One scalar per query: query i (B, N, d) -> parameter i, with its own linear read-out."""

    def __init__(self, layout: ParamLayout, d_model: int, pose_offset: torch.Tensor):
        super().__init__()
        self.layout = layout
        self.weight = nn.Parameter(torch.randn(layout.total, d_model) * d_model ** -0.5 * 0.1)
        self.bias = nn.Parameter(torch.zeros(layout.total))
        self.register_buffer("pose_offset", torch.as_tensor(pose_offset, dtype=torch.float32))

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        raw = torch.einsum("bnd,nd->bn", queries, self.weight) + self.bias
        return squash_params(raw, self.layout, self.pose_offset)


def pose_offset(mode: str, flame: FlameDecoder, mean_face: torch.Tensor) -> torch.Tensor:
    """The constant added to the raw pose values: zeros (``none``, the papers) or ``initial_pose``."""
    if mode == "none":
        return torch.zeros(flame.layout.n_pose)
    if mode != "mean_face":
        raise ValueError(f"model.pose_init={mode!r}: use none or mean_face")
    with torch.no_grad():
        template = flame.landmarks(flame.v_template[None])[0]
    return initial_pose(template, torch.as_tensor(mean_face, dtype=torch.float32))


def initial_pose(template_landmarks: torch.Tensor, mean_face: torch.Tensor) -> torch.Tensor:
    """The 10 pose values (rot6d, t, s) that put the template's landmarks on the mean face.

    Starting the weak-perspective camera near the data (instead of scale 1 on a 0.2 m head, a
    speck in the crop) saves thousands of optimiser steps; the network learns the rest.
    ``template_landmarks`` (68, 3) model space; ``mean_face`` (68, 2) crop units.
    """
    target = mean_face * 2 - 1                                        # crop units -> [-1, 1]
    rotation = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    posed = template_landmarks @ rotation.T
    extent_target = (target.max(0).values - target.min(0).values).mean()
    extent_model = (posed[:, :2].max(0).values - posed[:, :2].min(0).values).mean()
    scale = (extent_target / extent_model).clamp(min=1e-3)
    translation = target.mean(0) - posed[:, :2].mean(0) * scale
    return torch.cat([torch.tensor(FRONTAL_ROT6D), translation, torch.zeros(1), (scale - 1).reshape(1)])
