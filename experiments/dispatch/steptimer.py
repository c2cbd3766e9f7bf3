"""One training step of a run's model, timed and its peak memory read: what ``estimate`` charges a plan
per step and what ``packing`` fits on a GPU. Random images and a loss on the model's two outputs stand in
for the data and the full loss: the step's cost is the model's forward, backward and Adam update, whose
saved activations are also what fills the GPU."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trans3dhead.config import RunConfig

WARMUP_STEPS = 1             # the first step allocates and picks kernels


@dataclass(frozen=True)
class StepTiming:
    seconds: float           # per step, after the warm-up
    peak_gb: float           # peak device memory over the warm-up and the steps (0 on the CPU)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(cfg: RunConfig, steps: int, *, flame_dir: Path | None = None, threads: int | None = None,
               device: torch.device | None = None) -> StepTiming:
    """``steps`` forward+backward+Adam steps of ``cfg``'s model on random images, after ``WARMUP_STEPS``,
    under the bf16 autocast its training would use; ``threads`` CPU threads (None: as set), on ``device``
    (None: the config's). ``flame_dir``: the FLAME-format assets to build the decoder from (None: the
    procedural head model's, written to a temporary folder)."""
    if flame_dir is None:
        from trans3dhead.data.synth.head_model import write_assets

        with tempfile.TemporaryDirectory() as tmp:
            return time_steps(cfg, steps, flame_dir=write_assets(Path(tmp) / "flame"), threads=threads, device=device)
    # Building models is what makes this heavy: imported here, so a plain --dry-run stays quick.
    from trans3dhead.engine.batches import autocast
    from trans3dhead.engine.runtime import select_device, use_bf16
    from trans3dhead.engine.schedule import build_optimizer
    from trans3dhead.models import build_model

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        device = device or select_device(cfg.train.device)
        bf16 = use_bf16(cfg.train.amp, device)
        model = build_model(cfg.model, flame_dir, torch.full((68, 2), 0.5)).to(device).train()
        optimizer = build_optimizer(model, cfg.train)
        images = torch.randn(cfg.train.batch_size, 3, cfg.data.image_size, cfg.data.image_size, device=device)

        def step() -> None:
            with autocast(device, bf16):
                out = model(images)
            loss = out["params"].float().square().mean() + out["landmarks_2d"].float().square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":       # the warm-up included: its kernel choice may take the most memory
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(WARMUP_STEPS):
            step()
        _synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        _synchronize(device)
        seconds = (time.perf_counter() - started) / steps
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        return StepTiming(seconds, peak)
    finally:
        torch.set_num_threads(previous)
