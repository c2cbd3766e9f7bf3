"""The multi-information loss (paper eqs. 6-8), which with a heatmap weight is also DAD-3DNet's (facts section 4).

L = l1 L_lmk + l2 L_3D + l3 L_reproj + l4 L_euler (eq. 8; paper weights 300, 50, 0.05, 0.05);
the baseline is eq. 6 (l4 = 0). A zero weight skips its term. ``forward`` returns every weighted
term by name beside ``total``, so that a non-finite loss can be traced to its term. With
``supervise_every_layer`` the landmark loss also supervises every earlier decoder layer's landmark estimate
(``landmark_layers``, DETR's auxiliary losses, same weight), with MARR or without it, so that a MARR step
measures MARR and not an auxiliary loss; the last layer stays ``landmark``.
"""
from __future__ import annotations

import torch
from torch import nn

from trans3dhead.config import LossConfig
from trans3dhead.losses.euler import euler_angles_loss
from trans3dhead.losses.terms import (head_shape_loss, heatmap_targets, landmark_loss, reprojection_loss,
                                      soft_iou_loss)


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

    def vertices_read(self) -> torch.Tensor:
        """The mesh vertices a step of this loss reads (its weighted subsets): all a training step must decode
        (``FlameDecoder.decode_only``)."""
        names = [*(self.subset_weights_3d if self.weights.shape3d else ()),
                 *(self.subset_weights_reproj if self.weights.reproj else ())]
        return torch.unique(torch.cat([self._subset(n) for n in names])) if names else torch.zeros(0, dtype=torch.long)

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
