"""Timing pieces of ``bench train``: the per-phase clock the training loop reports to, the pure
forward+backward+step on one resident batch, and the loader alone."""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Callable

import torch

from trans3dhead.config import RunConfig
from trans3dhead.data import build_dataset, flame_dir_for, mean_landmarks
from trans3dhead.engine.batches import autocast, to_device
from trans3dhead.engine.loading import loader_options, train_loader
from trans3dhead.engine.schedule import build_optimizer, build_scheduler
from trans3dhead.flame.topology import load_topology
from trans3dhead.losses import build_loss
from trans3dhead.models import build_model

STEP_PHASES = ("data", "h2d", "forward", "loss", "backward", "optimizer", "other")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Receives the training loop's laps; keeps the phases of steps from ``first_step`` on.

    Without ``sync`` a GPU's kernels run ahead of the host, so a phase is the host's time in it (the
    wait shows up where the host blocks); with ``sync`` each lap waits for the device (serialised)."""

    def __init__(self, device: torch.device, first_step: int, sync: bool = False,
                 between_steps: Callable[[], float] | None = None):
        self.device, self.first_step, self.sync, self.between_steps = device, first_step, sync, between_steps
        self.steps: list[dict[str, float]] = []
        self.between: list[float] = []        # seconds of ``between_steps`` after each measured step
        # Outside the steps: 'setup' (datasets, model) before the first step, then the epoch ends
        # (validation, checkpoint) once measuring has begun.
        self.overhead: dict[str, float] = defaultdict(float)
        self._current: dict[str, float] = defaultdict(float)
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.sync:
            _synchronize(self.device)
        now = time.perf_counter()
        if phase in STEP_PHASES:
            self._current[phase] += now - self._last
        elif not self.overhead:
            self.overhead["setup"] = now - self._last
        elif self.steps and phase == "epoch_end":
            self.overhead["epoch_end"] += now - self._last
        self._last = now

    def end_step(self, step: int) -> None:
        if step >= self.first_step - 3 and self.between_steps:     # 3 warm-up calls before the first measured step
            seconds = self.between_steps()
            if step >= self.first_step:
                self.between.append(seconds)
        if step >= self.first_step:
            self.steps.append(dict(self._current))
        self._current = defaultdict(float)
        self._last = time.perf_counter()          # the time spent here belongs to no phase

    def seconds_per_step(self) -> dict[str, float]:
        """Mean seconds per measured step, per phase, and their sum ('step')."""
        per_phase = {p: statistics.fmean(s.get(p, 0.0) for s in self.steps) for p in STEP_PHASES}
        return {**per_phase, "step": sum(per_phase.values())}


class ResidentStep:
    """The same model, loss and optimiser as ``train``, stepping on one batch resident on the device:
    the ceiling the training loop can reach (no data, no bookkeeping). Calling it runs one step and
    returns its seconds."""

    def __init__(self, cfg: RunConfig, device: torch.device, bf16: bool):
        tc = cfg.train
        train_set = build_dataset(cfg.data, "dad3dheads", "train", train=True, seed=tc.seed)
        flame_dir = flame_dir_for(cfg.data)
        mean_face = torch.tensor(mean_landmarks(train_set), dtype=torch.float32)
        self.model = build_model(cfg.model, flame_dir, mean_face).to(device).train()
        self.loss_fn = build_loss(cfg.loss, cfg.model, load_topology(flame_dir)).to(device)
        self.model.flame.decode_only(self.loss_fn.vertices_read())
        self.optimizer = build_optimizer(self.model, tc)
        self.scheduler = build_scheduler(self.optimizer, len(train_set) // tc.batch_size, tc)
        loader = train_loader(train_set, tc.batch_size, loader_options(0, device))
        self.batch = to_device(next(iter(loader)), device)
        self.device, self.bf16, self.grad_clip, self.images = device, bf16, tc.grad_clip, tc.batch_size

    def __call__(self) -> float:
        _synchronize(self.device)
        started = time.perf_counter()
        with autocast(self.device, self.bf16):
            out = self.model(self.batch["image"])
        terms = self.loss_fn(out, self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        _synchronize(self.device)
        return time.perf_counter() - started


def step_gflop(step: ResidentStep) -> float:
    """GFLOP of one forward+backward+step as torch's FlopCounterMode counts it (matmuls, convolutions,
    attention; elementwise ops count zero, so the achieved rate is a lower bound on the work done)."""
    from trans3dhead.engine.efficiency import flop_counter_mode

    counter = flop_counter_mode()
    with counter:
        step()
    return counter.get_total_flops() / 1e9


def matmul_gflop_per_s(dtype: torch.dtype, size: int = 1024, repeats: int = 20) -> float:
    """This core's (threads') square matmul rate in ``dtype``: the ceiling a step's GFLOP/s is read against."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e9


def fwd_bwd_images_per_s(cfg: RunConfig, steps: int, device: torch.device, bf16: bool) -> float:
    """Images/s of :class:`ResidentStep` over ``steps`` steps after three warm-up steps."""
    step = ResidentStep(cfg, device, bf16)
    for _ in range(3):      # first steps allocate and pick kernels
        step()
    return steps * step.images / sum(step() for _ in range(steps))


def loader_images_per_s(cfg: RunConfig, workers: int, device: torch.device, epochs: int = 2) -> list[float]:
    """Images/s the training loader delivers, per epoch (with the in-RAM cache, epoch 1 decodes)."""
    dataset = build_dataset(cfg.data, "dad3dheads", "train", train=True, seed=cfg.train.seed)
    loader = train_loader(dataset, cfg.train.batch_size, loader_options(workers, device))
    rates = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch, shuffle_seed=epoch)
        started, images = time.perf_counter(), 0
        for batch in loader:
            images += len(batch["image"])
        rates.append(images / (time.perf_counter() - started))
    return rates


def jpeg_loader_images_per_s(canvas_size: int, image_size: int, batch_size: int, workers: int,
                             images: int = 64) -> dict[str, float]:
    """Loader images/s on photograph-sized SynthHeads JPEG canvases (no cache: every item decoded), with
    the reduced-size (draft) decode and with the full decode."""
    import tempfile
    from pathlib import Path
    from unittest import mock

    from trans3dhead.data import dad3dheads
    from trans3dhead.data.synth.generate import generate

    rates = {}
    with tempfile.TemporaryDirectory(prefix="t3h-bench-jpeg-") as tmp:
        out = generate(Path(tmp), train=images, val=0, test=0, aflw=0, image_size=128, seed=0,
                       canvas_size=canvas_size, workers=min(4, workers or 1))
        for label, factor in (("draft", dad3dheads.draft_factor), ("full", lambda scale: 1)):
            with mock.patch.object(dad3dheads, "draft_factor", factor):
                dataset = dad3dheads.DAD3DHeadsDataset(out / "dad3dheads" / "train", out / "flame", image_size, train=True)
                loader = train_loader(dataset, batch_size, loader_options(workers, torch.device("cpu")))
                started, count = time.perf_counter(), 0
                for batch in loader:
                    count += len(batch["image"])
                rates[label] = count / (time.perf_counter() - started)
    return rates
