"""Weight averaging: the model a run validates, evaluates and reports may be an exponential moving average (EMA)
of the weights it trains (``train.ema_decay``), a lever for reaching the same validation NME in fewer steps and
with less seed-to-seed spread (issue 26; calibrated with ``python -m experiments.bench convergence``).

torch's ``AveragedModel`` keeps the average. Only parameters are averaged: the buffers (BatchNorm statistics,
the FLAME decoder's constant tensors) are copied from the trained model before the average is used, which costs
nothing per step where averaging FLAME's large constant buffers every step would.
"""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def build_ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An EMA of ``model``'s parameters with ``decay`` per update; None when ``decay`` is 0 (off)."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def averaged(ema: AveragedModel, model: torch.nn.Module) -> torch.nn.Module:
    """The averaged model, its buffers made the trained model's own (read before validating or saving)."""
    for mine, theirs in zip(ema.module.buffers(), model.buffers()):
        mine.copy_(theirs)
    return ema.module


def ema_state(ema: AveragedModel, model: torch.nn.Module) -> dict:
    """What a checkpoint keeps: the averaged weights (buffers included, ready to evaluate) and the count."""
    return {"ema_model": averaged(ema, model).state_dict(), "ema_updates": int(ema.n_averaged)}


def restore_ema(ema: AveragedModel, checkpoint: dict) -> None:
    """Restores :func:`ema_state` on resume, so that a resumed run averages as an uninterrupted one."""
    ema.module.load_state_dict(checkpoint["ema_model"])
    ema.n_averaged.fill_(checkpoint["ema_updates"])
