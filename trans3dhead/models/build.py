"""``build_model``: the only place where a ModelConfig becomes a network."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from trans3dhead.config import ModelConfig
from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.models.dad3dnet import DAD3DNet
from trans3dhead.models.trans3dhead import Trans3DHead

# ``model.arch`` -> the factory that maps a ModelConfig onto that model's constructor; a new architecture
# is one entry here plus its name in config.ARCHS (tests/test_models.py checks the two agree).
ARCHITECTURES: dict[str, Callable[[ModelConfig, FlameDecoder, torch.Tensor], nn.Module]] = {
    "trans3dhead": Trans3DHead.from_config,
    "dad3dnet": DAD3DNet.from_config,
}


def build_model(cfg: ModelConfig, flame_dir: str | Path, mean_face: torch.Tensor,
                trunk_state: dict | None = None) -> nn.Module:
    """``mean_face`` (68, 2): mean GT landmarks of the training set in crop units (paper eq. 4).

    ``trunk_state``: weights for the model's ``trunk`` (a pretrained ResNet, ``engine/pretrain.py``).
    """
    cfg.validate()
    flame = FlameDecoder(flame_dir, cfg.n_params)
    model = ARCHITECTURES[cfg.arch](cfg, flame, torch.as_tensor(mean_face, dtype=torch.float32))
    if trunk_state is not None:
        model.trunk.load_state_dict(trunk_state)
    return model
