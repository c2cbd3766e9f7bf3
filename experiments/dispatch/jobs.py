"""The jobs: one run as a picklable callable that trains and evaluates it (:class:`RunJob`), and the
measurement of one run's efficiency (:class:`EfficiencyJob`). submitit pickles them by this module's
path, and the job process imports it to unpickle them.

A job trains (resuming from its checkpoint), evaluates what its tables need, and writes its results
atomically. Its ``checkpoint()`` hands submitit a fresh copy of itself, so a preempted or timed-out
SLURM job is requeued and resumes from the last epoch's checkpoint.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import traceback
from dataclasses import dataclass
from pathlib import Path

import submitit
import torch

from experiments import store
from experiments.dispatch import continuation, runlock
from trans3dhead.config import RunConfig


class _RunFolders:
    """Where a job's run lives (``store.RunPaths``), from the job's ``run_id``, ``profile``,
    ``results_root`` and ``work_root`` (plain fields: a job is pickled)."""

    @property
    def paths(self) -> store.RunPaths:
        return store.RunPaths(self.profile, self.run_id, Path(self.results_root), Path(self.work_root))

    @property
    def result_dir(self) -> Path:
        return self.paths.result

    @property
    def work_dir(self) -> Path:
        return self.paths.work


@dataclass
class RunJob(_RunFolders):
    """One run as a picklable callable (paths and a config dict, nothing heavy)."""
    run_id: str
    profile: str
    seed: int
    variants: tuple[str, ...]
    config: dict
    evaluations: tuple[tuple[str, str], ...]
    results_root: str
    work_root: str
    threads: int = 0
    continue_shorter: bool = True      # start from a finished shorter run of the same config (continuation.py)
    runs_alone = False                 # trains beside other runs: one per core or GPU slot

    def __call__(self) -> str:
        """Trains and evaluates under the run's lock: a second job on the same run (another submitter,
        or a rerun while the killed submitter's jobs live on) waits, then reuses what the first finished."""
        def waiting(holder: dict) -> None:
            print(f"{self.run_id}: running elsewhere ({runlock.describe(holder)}); waiting for it", flush=True)

        with runlock.hold(self.work_dir, on_wait=waiting):
            if not store.training_problems(self.result_dir, self.evaluations):
                return self.run_id
            return self._train_and_evaluate()

    def _train_and_evaluate(self) -> str:
        # Imported here: the dispatcher itself should not pay for torch model code.
        from trans3dhead.engine import evaluate, train

        if self.threads:
            torch.set_num_threads(self.threads)
        cfg = RunConfig.from_dict(self.config)
        out = self.result_dir
        version = store.code_version()
        # A job that only adds an evaluation to a finished run keeps the training's provenance (start,
        # code version, date); each evaluation file records the code version that computed it.
        training = {"started": _now(), "code_version": version}
        store.clear_foreign(out)
        already_trained = (store.read_meta(out) or {}).get("status") == "done"
        if self.continue_shorter and not already_trained and not self.paths.checkpoint.is_file():
            prefix = continuation.find_prefix(self.config, Path(self.results_root), Path(self.work_root))
            if prefix:
                continuation.start_from(prefix, self.work_dir)
                training["continued_from"] = prefix.as_meta()
        store.write_config(out, self.config)
        store.update_meta(out, run_id=self.run_id, profile=self.profile, seed=self.seed, variants=list(self.variants),
                          benchmark=cfg.data.benchmark, status="running", error="", pid=os.getpid(),
                          host=platform.node(), log_dir=str(self.work_dir), **({} if already_trained else training))
        try:
            summary = train(cfg, self.work_dir, show_progress=False)
            store.atomic_write_bytes(out / "curve.csv", self.paths.curve.read_bytes())
            for dataset, split in self.evaluations:
                if store.has_evaluation(out, dataset, split):
                    continue
                result = evaluate(summary["checkpoint"], dataset, split)
                store.write_evaluation(out, dataset, split, result.aggregate, result.per_sample, result.marr,
                                       result.predictions, code_version=version)
            trained_by_this_job = summary["epochs_trained"] > 0 or not already_trained
            store.update_meta(out, status="done", device=summary["device"], amp=summary["amp"],
                              train_wall_s=round(summary["wall_s"], 1), epochs=summary["epochs"],
                              best_val_nme=summary["best_val_nme"], **({"trunk": summary["trunk"]} if summary.get("trunk") else {}),
                              **({**training, "finished": _now(), "date": _now()[:10]} if trained_by_this_job else {}))
        except Exception as err:
            try:
                store.update_meta(out, status="failed", error=f"{type(err).__name__}: {err}",
                                  traceback=traceback.format_exc(limit=8), finished=_now())
            except OSError:     # the disk is full: the lock is released anyway, so `status` calls it dead
                pass
            raise
        except KeyboardInterrupt:       # cancelled (Ctrl-C on the submitter, scancel): resumable, not failed
            store.update_meta(out, status="interrupted", finished=_now())
            raise
        return self.run_id

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue: a fresh instance resumes from the checkpoint in work_dir."""
        return submitit.helpers.DelayedSubmission(RunJob(**self.__dict__))


@dataclass
class EfficiencyJob(_RunFolders):
    """Measures one run's parameters, FLOPs, speed and memory (``efficiency.json``), alone on the machine:
    a job beside it would skew its speed. It builds the run's model afresh (the figures do not depend on the
    weights), so it takes seconds and needs no checkpoint, and the run itself trains in the shared slots."""
    run_id: str
    profile: str
    config: dict
    results_root: str
    work_root: str
    threads: int = 0
    runs_alone = True

    def __call__(self) -> str:
        from trans3dhead.engine.efficiency import measure_config

        if self.threads:
            torch.set_num_threads(self.threads)
        figures, device = measure_config(RunConfig.from_dict(self.config))
        store.write_efficiency(self.result_dir, figures, device=device, code_version=store.code_version())
        return self.run_id


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
