"""Train a run longer by continuing a finished shorter run of the same config, not by retraining its prefix.

Under the step schedule every random draw and every learning rate is a function of (seed, step), never of
``train.epochs`` (``trans3dhead/engine/train.py``, ``schedule.lr_factor``), so a run of E epochs is, bit for
bit on CPU, the first E epochs of the same run trained longer, or with an lr drop it never reached. A job whose
work folder has no checkpoint therefore starts from the longest finished run whose config differs from its own
only in that way (``is_prefix``), in any profile of the store, and records it in ``meta.json`` as
``continued_from``. A cosine schedule decays over the whole run, so a shorter cosine run is never continued.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiments import store
from experiments.registry import run_identity
from trans3dhead.config import ConfigError, RunConfig

@dataclass(frozen=True)
class Prefix:
    """A finished run that a longer one can continue: where its checkpoint is and how far it trained."""
    profile: str
    run_id: str
    epochs: int
    work_dir: Path

    def as_meta(self) -> dict:
        return {"profile": self.profile, "run_id": self.run_id, "epochs": self.epochs}


# What a run and the shorter run it continues may differ in (the lr drops only past the shorter run's end).
LENGTH_KEYS = ("epochs", "lr_drop_epoch", "lr_second_drop_epoch")


def _without_length(config: RunConfig) -> str:
    identity = run_identity(config)
    for key in LENGTH_KEYS:
        identity["train"].pop(key, None)
    return json.dumps(identity, sort_keys=True, default=list)


def _drops_before(config: RunConfig, epoch: int) -> tuple[int, ...]:
    return tuple(d for d in config.train.lr_drops() if d < epoch)


def is_prefix(shorter: RunConfig, longer: RunConfig) -> bool:
    """Is ``shorter`` the first ``shorter.train.epochs`` epochs of ``longer``? The configs must agree on all
    but their length and on every lr drop within the shorter run (a drop it never reached may differ); keys
    that change only how a run executes (``registry.EXECUTION_ONLY``) may differ too."""
    epochs = shorter.train.epochs
    return (shorter.train.schedule == longer.train.schedule == "step"
            and epochs < longer.train.epochs
            and _without_length(shorter) == _without_length(longer)
            and _drops_before(shorter, epochs) == _drops_before(longer, epochs))


class Prefixes:
    """The finished step-schedule runs of a store whose checkpoints are still in ``work_root``: read once,
    then asked for the longest prefix of each run of a plan."""

    def __init__(self, results_root: Path, work_root: Path):
        self._runs: list[tuple[str, RunConfig, Prefix]] = []
        for config_file in sorted(Path(results_root).glob("*/*/config.yaml")):
            run = config_file.parent
            meta = store.read_meta(run) or {}
            paths = store.RunPaths.of_result(run, work_root)
            if meta.get("status") != "done" or not paths.checkpoint.is_file() or store.identity_problem(run, meta):
                continue            # unfinished, its checkpoint gone, or another run's files: not a candidate
            try:
                config = RunConfig.from_dict(store.read_config(run))
            except (OSError, yaml.YAMLError, ConfigError, TypeError, AttributeError):
                continue            # an unreadable or older-format run is simply not a candidate
            if config.train.schedule == "step" and meta.get("epochs") == config.train.epochs:
                prefix = Prefix(paths.profile, paths.run_id, config.train.epochs, paths.work)
                self._runs.append((_without_length(config), config, prefix))

    def longest_for(self, config: dict) -> Prefix | None:
        """The longest finished run that ``config`` continues, or None."""
        try:
            longer = RunConfig.from_dict(config)
        except ConfigError:
            return None
        if longer.train.schedule != "step":
            return None
        key = _without_length(longer)      # is_prefix's costliest test, kept per candidate: a quick filter first
        matches = [prefix for k, config, prefix in self._runs if k == key and is_prefix(config, longer)]
        return max(matches, key=lambda p: p.epochs, default=None)


def find_prefix(config: dict, results_root: Path, work_root: Path) -> Prefix | None:
    """The longest finished run in ``results_root`` (any profile) that ``config`` continues and whose
    checkpoint is still in ``work_root``; None when there is none."""
    return Prefixes(results_root, work_root).longest_for(config)


def epochs_done(work_dir: Path) -> int:
    """Epochs a run's own work folder has trained (its curve's rows), 0 when it has no checkpoint."""
    checkpoint, curve = store.work_files(work_dir)
    try:
        return max(0, len(curve.read_text().strip().splitlines()) - 1) if checkpoint.is_file() else 0
    except OSError:
        return 0


def start_from(prefix: Prefix, work_dir: Path) -> None:
    """Copies the prefix's checkpoint and curve into ``work_dir``, which the training then resumes from;
    each file lands whole (copied beside, then renamed) so an interruption leaves no half checkpoint."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    (source_checkpoint, source_curve), (checkpoint, curve) = store.work_files(prefix.work_dir), store.work_files(work_dir)
    # The checkpoint last: its presence is what the training resumes from.
    for source, target in ((source_curve, curve), (source_checkpoint, checkpoint)):
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, partial)
        partial.replace(target)
