"""Runs in the store: where a run lives (:class:`RunPaths`), what state it is in (:class:`RunState`, with
its reasons, from :func:`assess`), and the whole store as one table (:func:`collect`).

Every reader of a run's state (``run status``, ``--dry-run``, the planner, ``launch.make_jobs``) asks
:func:`assess`; none decides it from a message's wording.
"""
from __future__ import annotations

import enum
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from experiments.registry import run_id_of
from experiments.store.files import (EFFICIENCY_COLUMNS, EFFICIENCY_FILE, METRIC_COLUMNS, NO_EFFICIENCY,
                                     CorruptResultError, CorruptResultWarning, curve, efficiency_problem,
                                     eval_name, evaluation_problem, load_evaluation, read_efficiency, read_meta)
from trans3dhead.config import ConfigError, RunConfig

__all__ = ["LOCK_NAME", "RunPaths", "RunState", "RunStatus", "assess", "describe_holder", "run_dir", "jobs_dir", "work_files",
           "identity_problem", "clear_foreign", "corrupt_files", "training_problems", "run_problems", "collect"]

LOCK_NAME = "run.lock"            # in the work folder: ``experiments.dispatch.runlock`` holds it


@dataclass(frozen=True)
class RunPaths:
    """Where one run lives, the one place these paths are built: its result folder in the store
    (``results/<profile>/<run_id>``), its work folder (``work/<profile>/<run_id>``: checkpoint, curve,
    TensorBoard events, lock; it stays on the machine that trained the run) and the submitit folder of
    its profile's jobs (``jobs/<profile>``: pickles and logs)."""
    profile: str
    run_id: str
    results_root: Path = Path("results")
    work_root: Path = Path("work")
    jobs_root: Path = Path("jobs")

    @classmethod
    def of_result(cls, result: Path, work_root: Path = Path("work")) -> "RunPaths":
        """The paths of the run whose result folder is ``result`` (``<results_root>/<profile>/<run_id>``)."""
        result = Path(result)
        return cls(result.parent.name, result.name, result.parent.parent, Path(work_root))

    @property
    def result(self) -> Path:
        return Path(self.results_root) / self.profile / self.run_id

    @property
    def work(self) -> Path:
        return Path(self.work_root) / self.profile / self.run_id

    @property
    def jobs(self) -> Path:
        return jobs_dir(self.jobs_root, self.profile)

    @property
    def lock(self) -> Path:
        return self.work / LOCK_NAME

    @property
    def checkpoint(self) -> Path:
        return work_files(self.work)[0]

    @property
    def curve(self) -> Path:
        """The curve the training writes in the work folder (the store keeps a copy in ``result``)."""
        return work_files(self.work)[1]


def work_files(work_dir: Path) -> tuple[Path, Path]:
    """The checkpoint and the curve that the training writes in ``work_dir`` (and resumes from)."""
    # The training names them; imported on first use, since it loads torch and the models.
    from trans3dhead.engine.train import CHECKPOINT, CURVE
    return Path(work_dir) / CHECKPOINT, Path(work_dir) / CURVE


def jobs_dir(jobs_root: Path, profile: str) -> Path:
    """submitit's folder of a profile's jobs (one per job id inside): shared by the profile's runs."""
    return Path(jobs_root) / profile


def run_dir(results_root: Path, profile: str, run_id: str) -> Path:
    return RunPaths(profile, run_id, Path(results_root)).result


class RunState(str, enum.Enum):
    """A run's state, as ``status`` shows it."""
    DONE = "done"                   # trained and evaluated (its efficiency: ``RunStatus.measure``)
    RUNNING = "running"             # a live job holds its lock, or its meta says so on another host
    QUEUED = "queued"               # submitted to SLURM, not started
    INTERRUPTED = "interrupted"     # cancelled (Ctrl-C, scancel); resumable
    FAILED = "failed"               # its job raised; meta.json keeps the error line
    DEAD = "dead"                   # its meta says running, but no job holds its lock (killed, disk full)
    BROKEN = "broken"               # stored files that do not parse, validate or belong to this run
    MISSING = "missing"             # never run


@dataclass(frozen=True)
class RunStatus:
    """A run's state and why: ``reasons`` are what keeps it from counting as finished (the planner's
    words), ``detail`` the one line ``status`` adds (the failed job's error, the live job holding it)."""
    state: RunState
    reasons: tuple[str, ...] = ()
    detail: str = ""
    train: bool = False             # a job must train or evaluate it
    measure: bool = False           # a job must measure its efficiency (its table reports it)
    holder: dict | None = None      # the live job holding its lock

    @property
    def busy(self) -> bool:
        """Trained by a live job elsewhere: neither submitted again nor deleted."""
        return self.holder is not None

    @property
    def todo(self) -> bool:
        return (self.train or self.measure) and not self.busy

    @property
    def redo(self) -> bool:
        """Stored work that is replaced: broken files, or a finished run lacking an evaluation."""
        return self.todo and (self.state is RunState.BROKEN or (self.state is RunState.DONE and self.train))


def describe_holder(info: dict) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}"


def assess(paths: RunPaths, evaluations, measure_efficiency: bool = False, holder: dict | None = None) -> RunStatus:
    """The run's state from its stored files and ``holder``, the live job holding its lock (the caller
    reads the lock: ``experiments.dispatch.runlock.holder(paths.work)``)."""
    result = paths.result
    meta = read_meta(result)
    stored = meta.get("status", "missing") if meta else "missing"
    train = training_problems(result, evaluations)
    efficiency = _unmeasured(result, measure_efficiency)
    facts = {"train": bool(train), "measure": bool(efficiency), "holder": holder}
    if holder is not None:
        return RunStatus(RunState.RUNNING, tuple(train + efficiency), f"live job: {describe_holder(holder)}", **facts)
    if stored == "running":
        if (meta or {}).get("host") not in (None, platform.node()):      # its lock may live on that host's disk
            detail = f"on {meta.get('host')} (pid {meta.get('pid', '?')}): not verifiable from here"
            return RunStatus(RunState.RUNNING, tuple(train + efficiency), detail, **facts)
        detail = (f"its job ({describe_holder(meta)}) ended without finishing (killed, or its disk filled up); "
                  "rerun the same command to resume it from its checkpoint")
        return RunStatus(RunState.DEAD, tuple(train + efficiency), detail, **facts)
    if stored in ("done", "missing") and (corrupt := corrupt_files(result, evaluations)):
        reasons = corrupt + ([NO_EFFICIENCY] if efficiency and not (result / EFFICIENCY_FILE).is_file() else [])
        return RunStatus(RunState.BROKEN, tuple(reasons), "; ".join(reasons), **facts)
    if stored == "missing":                 # "not run yet" is what the state says; what else it lacks:
        return RunStatus(RunState.MISSING, tuple(efficiency), "", **facts)
    return RunStatus(RunState(stored), tuple(train + efficiency), (meta or {}).get("error", ""), **facts)


def identity_problem(path: Path, meta: dict | None = None) -> str | None:
    """Why the folder's files are not this run's own, or None: its meta.json names another run id, or its
    config.yaml resolves to another run id (a copied or moved folder). A folder without config.yaml is not
    checked on that count; one whose config no longer resolves is not this run's either."""
    path = Path(path)
    run_id = (meta or {}).get("run_id")
    if run_id is not None and run_id != path.name:
        return f"{path / 'meta.json'} belongs to run {run_id!r}, not to the folder {path.name} (copied or moved from another run)"
    file = path / "config.yaml"
    if not file.is_file():
        return None
    try:
        config = RunConfig.from_dict(yaml.safe_load(file.read_text()))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError, TypeError, AttributeError, ValueError) as err:
        return f"{file} does not resolve to a config ({type(err).__name__}: {err})"
    if (actual := run_id_of(config)) != path.name:
        return f"{file} is the config of run {actual!r}, not of the folder {path.name} (copied or moved from another run)"
    return None


def clear_foreign(path: Path) -> list[Path]:
    """Removes the result files of a folder that holds another run's files (they are that run's, which
    keeps its own folder), so that its redo starts clean; returns what it removed."""
    path = Path(path)
    if not path.is_dir() or identity_problem(path, read_meta(path)) is None:
        return []
    removed = [f for f in path.iterdir() if f.is_file()]
    for file in removed:
        file.unlink()
    return removed


def _unreadable_or_foreign(path: Path) -> str | None:
    """A meta.json that does not read, or files of another run: nothing else in the folder counts."""
    if (path / "meta.json").is_file() and read_meta(path) is None:
        return f"{path / 'meta.json'} is corrupt"
    return identity_problem(path, read_meta(path))


def _corrupt_training_files(path: Path, evaluations) -> list[str]:
    """The stored files of the training and its evaluations that exist but do not parse, validate or
    belong to this run (a missing file is not corrupt)."""
    if problem := _unreadable_or_foreign(path):
        return [problem]
    problems = [p for d, s in evaluations
                if (path / f"eval-{eval_name(d, s)}.json").is_file() and (p := evaluation_problem(path, d, s))]
    if (path / "curve.csv").is_file() and curve(path) is None:
        problems.append(f"{path / 'curve.csv'} is corrupt")
    return problems


def corrupt_files(path: Path, evaluations) -> list[str]:
    """The run's stored files that exist but do not parse, validate or belong to it (a missing file is
    not corrupt)."""
    path = Path(path)
    if problem := _unreadable_or_foreign(path):
        return [problem]
    return _corrupt_training_files(path, evaluations) + ([p] if (p := efficiency_problem(path)) else [])


def _unmeasured(path: Path, measure_efficiency: bool) -> list[str]:
    """For a run whose table reports efficiency: its measurement, when missing or corrupt."""
    if not measure_efficiency or read_efficiency(path) is not None:
        return []
    file = Path(path) / EFFICIENCY_FILE
    return [f"{file} is corrupt" if file.is_file() else NO_EFFICIENCY]


def training_problems(path: Path, evaluations) -> list[str]:
    """What keeps a run's training and evaluations from counting as finished: its status, each missing
    or unusable evaluation, a corrupt curve, files of another run. (A corrupt efficiency measurement is
    not among them: it is measured again without retraining.)"""
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        return _corrupt_training_files(path, ()) or ["not run yet"]
    if meta.get("status") != "done":
        return [f"status {meta.get('status', 'missing')}"]
    missing = [p for d, s in evaluations
               if not (path / f"eval-{eval_name(d, s)}.json").is_file() and (p := evaluation_problem(path, d, s))]
    return missing + _corrupt_training_files(path, evaluations)


def run_problems(path: Path, evaluations, measure_efficiency: bool = False) -> list[str]:
    """:func:`training_problems`, and for a run whose table reports efficiency, a missing or corrupt
    measurement of it."""
    return training_problems(path, evaluations) + _unmeasured(path, measure_efficiency)


def collect(results_root: str | Path, profile: str) -> pd.DataFrame:
    """One row per (run, evaluation); a run without evaluations gives one row with its status. A folder
    holding another run's files is left out (its numbers would show under the wrong row)."""
    rows = []
    base = Path(results_root) / profile
    for path in sorted(p for p in base.glob("*") if p.is_dir()) if base.is_dir() else []:
        meta = read_meta(path)
        if meta is None:
            warnings.warn(f"{path} has no readable meta.json; ignored", CorruptResultWarning)
            continue
        if problem := identity_problem(path, meta):
            warnings.warn(f"{problem}; ignored", CorruptResultWarning)
            continue
        measured = {k: v for k, v in (read_efficiency(path) or {}).items()
                    if k in EFFICIENCY_COLUMNS and k != "train_wall_s"}    # the training's wall time: from meta
        common = {"run_id": path.name, "variants": ",".join(meta.get("variants", [])), "seed": meta.get("seed"),
                  "profile": profile, "benchmark": meta.get("benchmark"), "status": meta.get("status", "missing"),
                  "error": meta.get("error", ""), "code_version": meta.get("code_version"),
                  "device": meta.get("device"), "date": meta.get("date"), "path": str(path),
                  "train_wall_s": meta.get("train_wall_s")}
        evals = sorted(path.glob("eval-*.json"))
        if not evals:
            rows.append({**common, "dataset": None, "split": None})
        for eval_file in evals:
            try:
                data = load_evaluation(eval_file)
                problem = evaluation_problem(path, data["dataset"], data["split"])
                if problem:
                    raise CorruptResultError(problem)
            except CorruptResultError as err:
                warnings.warn(f"{eval_file} is corrupt or partial ({err}); ignored", CorruptResultWarning)
                continue
            row = {**common, "dataset": data["dataset"], "split": data["split"],
                   "eval_code_version": data.get("code_version") or meta.get("code_version")}
            row.update({k: v for k, v in data["aggregate"].items() if k in METRIC_COLUMNS})
            row.update(measured)            # a run-level measure: on every evaluation's row
            rows.append(row)
    columns = ["run_id", "variants", "seed", "profile", "benchmark", "dataset", "split", "status", "error",
               *METRIC_COLUMNS, *EFFICIENCY_COLUMNS, "code_version", "eval_code_version", "device", "date", "path"]
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    return frame[columns]
