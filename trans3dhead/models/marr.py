"""Multi-layer additive residual regression, MARR (paper section 3.3, eqs. 4-5).

The landmarks start at the mean face F_a of the training set (eq. 4, computed by the data module
from GT landmarks) and every decoder layer adds a residual: P_L = F_a + sum_i res_i (eq. 5).
Modes (Table 4): ``fixed`` F_a; ``learnable_average`` a parameter initialised to F_a;
``learnable_random`` a parameter initialised at random; ``none`` no MARR: the last decoder layer
predicts the landmarks directly (the models without MARR in Table 3); every layer's queries go through that
one head, so each layer has a landmark estimate to supervise, as with MARR (``loss.supervise_every_layer``).
"""
from __future__ import annotations

import torch
from torch import nn

N_LANDMARKS = 68


def _mlp(d_model: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, out))


class AdditiveResidualRegression(nn.Module):
    """Per-layer landmark heads of the landmark branch; returns all layers for Figures 7-8."""

    def __init__(self, d_model: int, n_layers: int, mean_face: torch.Tensor, mode: str = "fixed"):
        super().__init__()
        self.mode = mode
        mean_face = torch.as_tensor(mean_face, dtype=torch.float32).reshape(N_LANDMARKS, 2)
        if mode == "fixed":
            self.register_buffer("mean_face", mean_face.clone())
        elif mode == "learnable_average":
            self.mean_face = nn.Parameter(mean_face.clone())
        elif mode == "learnable_random":
            self.mean_face = nn.Parameter(torch.rand(N_LANDMARKS, 2) * 0.5 + 0.25)
        elif mode == "none":
            self.register_buffer("mean_face", mean_face.clone())   # reported, never used
        else:
            raise ValueError(f"mean_face mode {mode!r}: use fixed, learnable_average, learnable_random or none")
        n_heads = 1 if mode == "none" else n_layers
        self.heads = nn.ModuleList(_mlp(d_model, 2) for _ in range(n_heads))
        if mode != "none":
            for head in self.heads:     # start exactly at the mean face
                nn.init.zeros_(head[-1].weight)
                nn.init.zeros_(head[-1].bias)

    def forward(self, layer_queries: list[torch.Tensor]) -> dict[str, object]:
        """``layer_queries``: every decoder layer's landmark queries (B, 68, d)."""
        if self.mode == "none":
            per_layer = [torch.sigmoid(self.heads[0](queries)) for queries in layer_queries]
            return {"landmarks_2d": per_layer[-1], "landmarks_per_layer": per_layer,
                    "residuals_per_layer": [], "mean_face": self.mean_face}
        current = self.mean_face.expand(layer_queries[0].shape[0], -1, -1)
        residuals, per_layer = [], []
        for head, queries in zip(self.heads, layer_queries):
            residual = head(queries)
            current = current + residual
            residuals.append(residual)
            per_layer.append(current)
        return {"landmarks_2d": current, "landmarks_per_layer": per_layer,
                "residuals_per_layer": residuals, "mean_face": self.mean_face}
