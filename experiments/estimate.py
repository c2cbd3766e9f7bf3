"""How long would (re)training a plan take on this machine? ``run TABLE --dry-run --estimate``.

Measured, not guessed: one model of each size class in the plan (architecture, trunk, width, heads,
input size, batch) takes a few training steps here on random images, with the thread count a local job
gets; every run of the class is charged its own number of steps at that rate, and the runs are spread
over the local executor's slots. Data loading, validation and evaluation are left out (a few percent on
the cached embedded benchmark), so the figure is a floor, and it says so.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from trans3dhead.config import RunConfig
from trans3dhead.data.synth.head_model import write_assets
from trans3dhead.engine.runtime import select_device
from trans3dhead.engine.schedule import build_optimizer
from trans3dhead.models import build_model

WARMUP_STEPS, TIMED_STEPS = 1, 2


def size_class(cfg: RunConfig) -> tuple:
    """What a step's cost depends on; switches (QAMem, MARR, depths) change it by far less."""
    m, d, t = cfg.model, cfg.data, cfg.train
    return (m.arch, m.backbone, m.backbone_stride, m.d_model, m.nheads, m.dim_feedforward, m.n_params,
            d.image_size, t.batch_size, t.device)


def seconds_per_step(cfg: RunConfig, flame_dir: Path, threads: int) -> float:
    """Median-free mean of ``TIMED_STEPS`` forward+backward+Adam steps of ``cfg``'s model on random images."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        device = select_device(cfg.train.device)
        model = build_model(cfg.model, flame_dir, torch.full((68, 2), 0.5)).to(device).train()
        optimizer = build_optimizer(model, cfg.train)
        images = torch.randn(cfg.train.batch_size, 3, cfg.data.image_size, cfg.data.image_size, device=device)

        def step() -> None:
            out = model(images)
            loss = out["params"].square().mean() + out["landmarks_2d"].square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for _ in range(WARMUP_STEPS):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(TIMED_STEPS):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / TIMED_STEPS
    finally:
        torch.set_num_threads(previous)


def training_steps(cfg: RunConfig) -> int:
    return cfg.train.epochs * (cfg.data.n_train // cfg.train.batch_size)


def estimate(runs: list, slots: int, threads: int) -> tuple[float, dict[tuple, float]]:
    """(wall seconds to train ``runs`` with ``slots`` jobs at once, seconds per step of each size class)."""
    per_class: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        flame_dir = write_assets(Path(tmp) / "flame")
        for run in runs:
            key = size_class(run.config)
            if key not in per_class:
                per_class[key] = seconds_per_step(run.config, flame_dir, threads)
    total = sum(training_steps(r.config) * per_class[size_class(r.config)] for r in runs)
    longest = max((training_steps(r.config) * per_class[size_class(r.config)] for r in runs), default=0.0)
    return max(total / max(slots, 1), longest), per_class


def describe(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
