"""Optimiser and learning-rate schedule (paper section 4.1.1).

"Adam ... learning rate initialized to 0.0001 and then decayed by 10 at 240th epoch, while the
learning rate of the backbone is multiplied by 0.1." The model names its pretrained trunk
(``trunk_parameters()``, as nanoGPT's ``configure_optimizers`` lets the model decide its groups), so no
parameter is sorted by its name.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trans3dhead.config import TrainConfig


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Two Adam groups: the model's pretrained trunk at ``lr * backbone_lr_mult``, everything else at ``lr``."""
    trunk = [p for p in model.trunk_parameters() if p.requires_grad]
    trunk_ids = {id(p) for p in trunk}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in trunk_ids]
    groups = [{"params": rest, "lr": cfg.lr, "name": "head"}]
    if trunk:
        groups.append({"params": trunk, "lr": cfg.lr * cfg.backbone_lr_mult, "name": "trunk"})
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (paper section 4.1.1) over :func:`parameter_groups` (trunk at ``lr * backbone_lr_mult``, the
    rest at ``lr``) with ``train.weight_decay``, which the paper does not mention (0 by default)."""
    # foreach: one multi-tensor kernel per update instead of one per parameter (the default on CUDA;
    # on CPU it made the cpu model's Adam step 1.6x faster, 9.5 -> 5.8 ms, with bit-identical weights).
    return torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def lr_factor(step: int, total_steps: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at ``step``: linear warmup, then x0.1 from the first step of epoch
    ``lr_drop_epoch`` (exact, whatever the epoch length) and x0.1 again from ``lr_second_drop_epoch`` when set,
    or cosine to zero."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "step":
        return 0.1 ** sum(step >= epoch * steps_per_epoch for epoch in cfg.lr_drops())
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def restore_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict) -> None:
    """Loads a checkpoint's scheduler ``state``, then sets each group's lr from this run's schedule at the
    restored step: the checkpoint holds the lr that the saving run's schedule gave its next step, and a run
    that continues a shorter one (experiments/dispatch/continuation.py) may drop the lr right there."""
    scheduler.load_state_dict(state)
    for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base_lr * factor(scheduler.last_epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, cfg: TrainConfig):
    """A ``LambdaLR`` of :func:`lr_factor` counted in optimiser steps, not epochs, so that the step schedule
    drops exactly at the first step of epoch ``lr_drop_epoch``: call ``step()`` after every optimiser step."""
    total_steps = steps_per_epoch * cfg.epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, cfg, steps_per_epoch))
