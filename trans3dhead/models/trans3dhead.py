"""Trans3DHead (paper section 3, Figure 1): a CNN memory read by two transformer decoder branches.

The 3DMM branch (N = 413 / 160 / 60 queries, one per FLAME parameter) regresses the parameters
that the fixed FLAME layer decodes into the head mesh; the auxiliary landmark branch (68 queries)
regresses the 2D landmarks through MARR. QAMem and MQinit are placed per branch by the caller.
"""
from __future__ import annotations

import torch
from torch import nn

from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.models.backbone import Backbone
from trans3dhead.models.heads import PerQueryParameterHead, initial_pose
from trans3dhead.models.marr import N_LANDMARKS, AdditiveResidualRegression
from trans3dhead.models.mqinit import MemoryQueryInit
from trans3dhead.models.position_encoding import sine_position_encoding
from trans3dhead.models.transformer import DecoderBranch, EncoderLayer


class Trans3DHead(nn.Module):
    def __init__(self, backbone: Backbone, flame: FlameDecoder, mean_face: torch.Tensor, *,
                 d_model: int, nheads: int, dim_feedforward: int, dropout: float,
                 encoder_layers: int, decoder_layers: int, landmark_branch: bool,
                 qamem_landmark: bool, qamem_3dmm: bool, mqinit_landmark: bool, mqinit_3dmm: bool,
                 mean_face_mode: str):
        super().__init__()
        self.backbone, self.flame, self.d_model = backbone, flame, d_model
        self.encoder = nn.ModuleList(EncoderLayer(d_model, nheads, dim_feedforward, dropout)
                                     for _ in range(encoder_layers))
        layout = flame.layout
        self.param_branch = DecoderBranch(
            layout.total, decoder_layers, d_model, nheads, dim_feedforward, dropout, qamem=qamem_3dmm,
            mqinit=MemoryQueryInit(layout.total, d_model) if mqinit_3dmm else None)
        with torch.no_grad():
            template = flame.landmarks(flame.v_template[None])[0]
        self.param_head = PerQueryParameterHead(layout, d_model, initial_pose(template, torch.as_tensor(mean_face)))
        self.landmark_branch = self.marr = None
        if landmark_branch:
            self.landmark_branch = DecoderBranch(
                N_LANDMARKS, decoder_layers, d_model, nheads, dim_feedforward, dropout, qamem=qamem_landmark,
                mqinit=MemoryQueryInit(N_LANDMARKS, d_model) if mqinit_landmark else None)
            self.marr = AdditiveResidualRegression(d_model, decoder_layers, mean_face, mean_face_mode)

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
        else:   # only-3DMM (Table 7): landmarks from the projected 3D landmarks
            lmk = (out["landmarks_3d"][..., :2] + 1.0) / 2.0
            out.update(landmarks_2d=lmk, landmarks_per_layer=[lmk], residuals_per_layer=[], mean_face=None)
        return out
