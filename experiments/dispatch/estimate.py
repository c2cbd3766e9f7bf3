"""How long would (re)training a plan take on this machine?

Two answers. ``run TABLE --dry-run`` charges each run at the pace of the finished runs this host trained
of the same model size (their stored wall time: data loading and validation included), when it has
some; it reads stored results only. ``--dry-run --estimate`` measures instead: one model of each size
class in the plan (architecture, trunk, width, heads, input size, batch) takes a few training steps here
on random images, with the thread count a local job gets; every run of the class is charged its own
number of steps at that rate. Data loading, validation and evaluation are left out of that one (a few
percent on the cached embedded benchmark), so it is a floor, and it says so. Both spread the runs over
the local executor's slots.
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import yaml

from experiments import store
from experiments.dispatch.steptimer import time_steps
from trans3dhead.config import RunConfig

TIMED_STEPS = 2


def size_class(cfg: RunConfig) -> tuple:
    """What a step's cost depends on; switches (QAMem, MARR, depths) change it by far less."""
    m, d, t = cfg.model, cfg.data, cfg.train
    return (m.arch, m.backbone, m.backbone_stride, m.d_model, m.nheads, m.dim_feedforward, m.n_params,
            d.image_size, t.batch_size, t.device)


def seconds_per_step(cfg: RunConfig, flame_dir: Path, threads: int) -> float:
    """Mean seconds of ``TIMED_STEPS`` forward+backward+Adam steps of ``cfg``'s model on random images."""
    return time_steps(cfg, TIMED_STEPS, flame_dir=flame_dir, threads=threads).seconds


def training_steps(cfg: RunConfig, from_epoch: int = 0) -> int:
    """Optimiser steps of the run from epoch ``from_epoch`` (its own checkpoint's, or the run it continues) on."""
    return max(0, cfg.train.epochs - from_epoch) * (cfg.data.n_train // cfg.train.batch_size)


def spread(runs: list, per_class: dict[tuple, float], slots: int, start: dict[str, int] | None = None) -> float:
    """Wall seconds to train ``runs`` with ``slots`` jobs at once, at ``per_class`` seconds per step, each from
    its epoch in ``start`` (by run id; 0 when absent)."""
    start = start or {}
    seconds = [training_steps(r.config, start.get(r.run_id, 0)) * per_class[size_class(r.config)] for r in runs]
    return max(sum(seconds) / max(slots, 1), max(seconds, default=0.0))


def estimate(runs: list, slots: int, threads: int, start: dict[str, int] | None = None) -> tuple[float, dict[tuple, float]]:
    """(wall seconds to train ``runs`` with ``slots`` jobs at once, seconds per step of each size class)."""
    from trans3dhead.data.synth.head_model import write_assets

    per_class: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        flame_dir = write_assets(Path(tmp) / "flame")
        for run in runs:
            key = size_class(run.config)
            if key not in per_class:
                per_class[key] = seconds_per_step(run.config, flame_dir, threads)
    return spread(runs, per_class, slots, start), per_class


def past_pace(results_root: Path, host: str) -> dict[tuple, list[float]]:
    """Seconds per training step of every finished run ``host`` trained under ``results_root`` (any
    profile), by size class: whole runs, so data loading and validation are in."""
    pace: dict[tuple, list[float]] = {}
    for meta_file in sorted(Path(results_root).glob("*/*/meta.json")):
        meta = store.read_meta(meta_file.parent) or {}
        wall = meta.get("train_wall_s")
        if meta.get("status") != "done" or meta.get("host") != host or not isinstance(wall, (int, float)) or wall <= 0:
            continue
        try:
            cfg = RunConfig.from_dict(store.read_config(meta_file.parent))
        except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError):
            continue          # a broken result says so in `status`; it just cannot pace anything
        pace.setdefault(size_class(cfg), []).append(wall / training_steps(cfg))
    return pace


def from_history(runs: list, results_root: Path, host: str, slots: int,
                 start: dict[str, int] | None = None) -> tuple[float, int] | None:
    """(wall seconds to train ``runs`` with ``slots`` jobs at once at the median pace of ``host``'s
    finished runs of each size class, how many finished runs that pace rests on), or None when some
    run's size class has none."""
    pace = past_pace(results_root, host)
    classes = {size_class(r.config) for r in runs}
    if not classes <= pace.keys():
        return None
    per_class = {key: statistics.median(pace[key]) for key in classes}
    return spread(runs, per_class, slots, start), sum(len(pace[key]) for key in classes)


def describe(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
