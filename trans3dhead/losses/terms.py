"""The baseline's loss terms (paper section 3.4, eq. 6) and DAD-3DNet's (facts section 4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

REPROJECTION_PIXELS = 256.0      # reprojection is measured in 256-pixel crop units (facts section 4)


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, presence: torch.Tensor | None) -> torch.Tensor:
    """SmoothL1 on the 68 2D landmarks in crop units, the official reduction (facts section 4): prediction and
    target multiplied by the presence mask, then the mean over all B x 68 x 2 coordinates, absent ones counted
    as zeros. (A per-point x+y sum over the present points weighs the term about 2.3x heavier.)"""
    pred, target = pred.float(), target.float()
    if presence is not None:
        mask = presence.to(pred.dtype)[..., None]
        pred, target = pred * mask, target * mask
    return F.smooth_l1_loss(pred, target)


def normalise_vertices(vertices: torch.Tensor) -> torch.Tensor:
    """Per sample: subtract per-axis min, subtract half the per-axis max, divide by the global max."""
    v = vertices - vertices.min(dim=-2, keepdim=True).values
    v = v - v.max(dim=-2, keepdim=True).values / 2
    return v / v.abs().flatten(-2).max(dim=-1).values.clamp(min=1e-8)[..., None, None]


def head_shape_loss(pred_vertices: torch.Tensor, target_vertices: torch.Tensor) -> torch.Tensor:
    """L2 (MSE) between normalised model-space vertex subsets."""
    return F.mse_loss(normalise_vertices(pred_vertices.float()), normalise_vertices(target_vertices.float()))


def reprojection_loss(pred_2d: torch.Tensor, target_2d: torch.Tensor) -> torch.Tensor:
    """SmoothL1 between reprojected vertex subsets, in 256-pixel units."""
    return F.smooth_l1_loss(pred_2d.float() * REPROJECTION_PIXELS, target_2d.float() * REPROJECTION_PIXELS)


def heatmap_targets(landmarks: torch.Tensor, size: tuple[int, int], sigma: float = 1.0) -> torch.Tensor:
    """Gaussian heatmaps (B, 68, h, w) centred on landmarks given in crop units."""
    h, w = size
    ys = torch.arange(h, device=landmarks.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=landmarks.device, dtype=torch.float32) + 0.5
    cx = landmarks[..., 0:1, None].float() * w
    cy = landmarks[..., 1:2, None].float() * h
    return torch.exp(-((xs[None, None, None, :] - cx) ** 2 + (ys[None, None, :, None] - cy) ** 2) / (2 * sigma**2))


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - softIoU(sigmoid(logits), target) (DAD-3DNet's heatmap loss)."""
    p = torch.sigmoid(logits.float())
    intersection = (p * target).flatten(2).sum(-1)
    union = (p + target - p * target).flatten(2).sum(-1)
    return 1.0 - (intersection / union.clamp(min=1e-6)).mean()
