"""``build_model``: the only place where a ModelConfig becomes a network."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trans3dhead.config import ModelConfig
from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.models.dad3dnet import DAD3DNet
from trans3dhead.models.trans3dhead import Trans3DHead


def build_model(cfg: ModelConfig, flame_dir: str | Path, mean_face: torch.Tensor,
                trunk_state: dict | None = None) -> nn.Module:
    """``mean_face`` (68, 2): mean GT landmarks of the training set in crop units (paper eq. 4).

    ``trunk_state``: weights for the model's ``trunk`` (a pretrained ResNet, ``engine/pretrain.py``).
    """
    cfg.validate()
    flame = FlameDecoder(flame_dir, cfg.n_params)
    mean_face = torch.as_tensor(mean_face, dtype=torch.float32)
    if cfg.arch == "dad3dnet":
        model = DAD3DNet(cfg.backbone, cfg.pretrained, flame, mean_face, neck_channels=cfg.neck_channels,
                         bifpn_layers=cfg.bifpn_layers, head_hidden=cfg.head_hidden, pose_init=cfg.pose_init)
    else:
        model = Trans3DHead(cfg, flame, mean_face)
    if trunk_state is not None:
        model.trunk.load_state_dict(trunk_state)
    return model
