"""The losses: ``build_loss`` picks the vertex subsets and weights of a model's loss (``multitask.py``:
``MultiTaskLoss``, eqs. 6-8; ``euler.py``: eq. 7; ``terms.py``: the single terms).

only-3DMM (Table 7) has no landmark branch, so no L_lmk: eq. 8 minus that term.
"""
from __future__ import annotations

import dataclasses

import torch

from trans3dhead.config import LossConfig, ModelConfig
from trans3dhead.flame.topology import FlameTopology
from trans3dhead.losses.multitask import MultiTaskLoss

HEAD_SUBSAMPLE = 2      # every 2nd "head" vertex (the paper subsamples the head set)
# DAD-3DNet's subset weights (facts section 4)
DAD_SHAPE_SUBSETS = {"head": 0.5, "face_w_ears": 0.75, "face": 1.0}
DAD_REPROJ_SUBSETS = {"face": 0.5, "face_w_ears": 0.5}

__all__ = ["DAD_REPROJ_SUBSETS", "DAD_SHAPE_SUBSETS", "HEAD_SUBSAMPLE", "MultiTaskLoss", "build_loss"]


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
