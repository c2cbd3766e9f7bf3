"""Trans3DHead (paper section 3, Figure 1): a CNN memory read by two transformer decoder branches.

The 3DMM branch (N = 413 / 160 / 60 queries, one per FLAME parameter) regresses the parameters
that the fixed FLAME layer decodes into the head mesh; the auxiliary landmark branch (68 queries)
regresses the 2D landmarks through MARR. QAMem and MQinit sit in the branches the config places them in.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from trans3dhead.config import ModelConfig
from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.models.backbone import Backbone
from trans3dhead.models.heads import PerQueryParameterHead, pose_offset
from trans3dhead.models.marr import N_LANDMARKS, AdditiveResidualRegression
from trans3dhead.models.position_encoding import sine_position_encoding
from trans3dhead.models.transformer import DecoderBranch, EncoderLayer


class Trans3DHead(nn.Module):
    """The paper's model (Figure 1): a ResNet memory, optional encoder layers, a 3DMM decoder branch whose
    per-query head gives the FLAME parameters, and (unless only-3DMM) a landmark branch read by MARR (eqs. 4-5).
    ``forward`` returns the FLAME outputs plus ``landmarks_2d`` (crop units) and the per-layer MARR values."""

    def __init__(self, cfg: ModelConfig, flame: FlameDecoder, mean_face: torch.Tensor):
        super().__init__()
        self.backbone = Backbone(cfg.backbone, cfg.backbone_stride, cfg.d_model, cfg.pretrained)
        self.flame = flame
        self.encoder = nn.ModuleList(EncoderLayer(cfg.d_model, cfg.nheads, cfg.dim_feedforward, cfg.dropout,
                                                  cfg.attention_precision) for _ in range(cfg.encoder_layers))
        self.param_branch = DecoderBranch(cfg, flame.layout.total, "3dmm")
        self.param_head = PerQueryParameterHead(flame.layout, cfg.d_model, pose_offset(cfg.pose_init, flame, mean_face))
        self.landmark_branch = self.marr = None
        if cfg.has_landmark_branch:
            self.landmark_branch = DecoderBranch(cfg, N_LANDMARKS, "landmark")
            self.marr = AdditiveResidualRegression(cfg.d_model, cfg.decoder_layers, mean_face, cfg.mean_face)

    @classmethod
    def from_config(cls, cfg: ModelConfig, flame: FlameDecoder, mean_face: torch.Tensor) -> "Trans3DHead":
        """The builder table's entry (``models/build.py``): the model reads its many switches from the config."""
        return cls(cfg, flame, mean_face)

    @property
    def trunk(self) -> nn.Module:
        """The ResNet (ImageNet-initialised in the paper; its lr is x0.1). The 1x1 input projection is
        new, so it trains with the transformer (docs/fidelity.md)."""
        return self.backbone.body

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunk.parameters()

    def forward(self, images: torch.Tensor) -> dict[str, object]:
        features = self.backbone(images)                                  # (B, d, h, w)
        b, d, h, w = features.shape
        memory = features.flatten(2).transpose(1, 2)                      # (B, S, d)
        pos = sine_position_encoding(h, w, d, features.device).to(memory.dtype).unsqueeze(0)
        for layer in self.encoder:
            memory = layer(memory, pos)

        params = self.param_head(self.param_branch(memory, pos)[-1])
        out: dict[str, object] = dict(self.flame(params.float()))
        if self.landmark_branch is not None:
            out.update(self.marr(self.landmark_branch(memory, pos)))
            out["landmarks_2d"] = out["landmarks_2d"].float()
        else:
            # only-3DMM (Table 7) has no landmark branch: the projected FLAME landmarks stand in for the
            # submission format's 68 landmarks, but train no landmark loss and report no NME.
            lmk = (out["landmarks_3d"][..., :2] + 1.0) / 2.0
            out.update(landmarks_2d=lmk, landmarks_per_layer=[lmk], residuals_per_layer=[], mean_face=None)
        return out
