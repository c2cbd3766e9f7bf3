"""Multi-information loss (paper eqs. 6-8) and DAD-3DNet's loss (facts section 4).

L = l1 L_lmk + l2 L_3D + l3 L_reproj + l4 L_euler (eq. 8; paper weights 300, 50, 0.05, 0.05);
the baseline is eq. 6 (l4 = 0). A zero weight skips its term. ``forward`` returns every weighted
term by name beside ``total``, so that a non-finite loss can be traced to its term.

only-3DMM (Table 7) has no landmark branch, so no L_lmk: eq. 8 minus that term. With
``supervise_every_layer`` the landmark loss also supervises every earlier decoder layer's landmark estimate
(``landmark_layers``, DETR's auxiliary losses, same weight), with MARR or without it, so that a MARR step
measures MARR and not an auxiliary loss; the last layer stays ``landmark``.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trans3dhead.config import LossConfig, ModelConfig
from trans3dhead.flame.topology import FlameTopology
from trans3dhead.losses.euler import euler_angles_loss
from trans3dhead.losses.terms import (head_shape_loss, heatmap_targets, landmark_loss, reprojection_loss,
                                      soft_iou_loss)

HEAD_SUBSAMPLE = 2      # every 2nd "head" vertex (the paper subsamples the head set)
# DAD-3DNet's subset weights (facts section 4)
DAD_SHAPE_SUBSETS = {"head": 0.5, "face_w_ears": 0.75, "face": 1.0}
DAD_REPROJ_SUBSETS = {"face": 0.5, "face_w_ears": 0.5}


class MultiTaskLoss(nn.Module):
    """The multi-information loss, eq. 8 (eq. 6 with a zero Euler weight), and with a heatmap weight DAD-3DNet's.

    ``forward(out, batch)`` returns each weighted term by name and their sum as ``total``; L_3D and
    L_reproj are sums over vertex subsets with the subset weights given (see :func:`build_loss`).
    """

    def __init__(self, weights: LossConfig, subsets: dict[str, torch.Tensor], subset_weights_3d: dict[str, float],
                 subset_weights_reproj: dict[str, float]):
        super().__init__()
        self.weights = weights
        for name, idx in subsets.items():
            self.register_buffer(f"subset_{name}", torch.as_tensor(idx, dtype=torch.long), persistent=False)
        self.subset_weights_3d, self.subset_weights_reproj = subset_weights_3d, subset_weights_reproj

    def _subset(self, name: str) -> torch.Tensor:
        return getattr(self, f"subset_{name}")

    def forward(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.landmark:
            presence = batch.get("presence")
            terms["landmark"] = w.landmark * landmark_loss(out["landmarks_2d"], batch["landmarks_2d"], presence)
            earlier = out["landmarks_per_layer"][:-1] if w.supervise_every_layer else []
            if earlier:
                terms["landmark_layers"] = w.landmark * sum(
                    landmark_loss(layer, batch["landmarks_2d"], presence) for layer in earlier)
        if w.shape3d:
            terms["shape3d"] = w.shape3d * sum(
                sw * head_shape_loss(out["model_vertices"][:, self._subset(s)], batch["model_vertices"][:, self._subset(s)])
                for s, sw in self.subset_weights_3d.items())
        if w.reproj:
            terms["reproj"] = w.reproj * sum(
                sw * reprojection_loss(out["projected_vertices"][:, self._subset(s)],
                                       batch["projected_vertices"][:, self._subset(s)])
                for s, sw in self.subset_weights_reproj.items())
        if w.euler:
            terms["euler"] = w.euler * euler_angles_loss(out["rotation"], batch["euler"])
        if w.heatmap and "heatmaps" in out:
            targets = heatmap_targets(batch["landmarks_2d"], tuple(out["heatmaps"].shape[-2:]))
            terms["heatmap"] = w.heatmap * soft_iou_loss(out["heatmaps"], targets)
        terms["total"] = sum(terms.values())
        return terms


def build_loss(loss_cfg: LossConfig, model_cfg: ModelConfig, topology: FlameTopology) -> MultiTaskLoss:
    """The loss of a model: Trans3DHead's L_3D and L_reproj on every 2nd "head" vertex, DAD-3DNet's on its
    weighted subsets (facts section 4); only-3DMM gets no landmark term (nothing predicts landmarks)."""
    if not model_cfg.has_landmark_branch:       # only-3DMM: nothing predicts landmarks to supervise
        loss_cfg = dataclasses.replace(loss_cfg, landmark=0.0)
    subsets = {name: torch.as_tensor(idx) for name, idx in topology.subsets.items()}
    if model_cfg.arch == "dad3dnet":
        return MultiTaskLoss(loss_cfg, subsets, DAD_SHAPE_SUBSETS, DAD_REPROJ_SUBSETS)
    subsets["head_sub"] = subsets["head"][::HEAD_SUBSAMPLE]
    return MultiTaskLoss(loss_cfg, subsets, {"head_sub": 1.0}, {"head_sub": 1.0})
