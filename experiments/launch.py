"""Dispatch of runs as jobs through submitit: in-process (debug), local processes, or a SLURM array.

A job trains (resuming from its checkpoint), evaluates what its tables need, and writes its results
atomically. Its ``checkpoint()`` hands submitit a fresh copy of itself, so a preempted or timed-out
SLURM job is requeued and resumes from the last epoch's checkpoint.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import subprocess

import submitit
import submitit.local.local as submitit_local
import torch
from tqdm import tqdm

from experiments import continuation, packing, runlock, store
from experiments.registry import ResolvedRun
from trans3dhead.atomic import naming_folder
from trans3dhead.config import RunConfig

EXECUTORS = ("debug", "local", "slurm")


class _RunFolders:
    """Where a job's run lives: its result folder in the store and its work folder (checkpoint, lock), from
    the job's ``run_id``, ``profile``, ``results_root`` and ``work_root``."""

    @property
    def result_dir(self) -> Path:
        return store.run_dir(Path(self.results_root), self.profile, self.run_id)

    @property
    def work_dir(self) -> Path:
        return Path(self.work_root) / self.profile / self.run_id


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
        if self.continue_shorter and not already_trained and not (self.work_dir / continuation.CHECKPOINT).is_file():
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
            store.atomic_write_bytes(out / "curve.csv", (self.work_dir / "curve.csv").read_bytes())
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


def make_jobs(runs: list[ResolvedRun], results_root: Path, work_root: Path, threads: int = 0,
              continue_shorter: bool = True) -> list[RunJob | EfficiencyJob]:
    """What each run still lacks, as jobs: a :class:`RunJob` where its training or an evaluation is missing,
    and an :class:`EfficiencyJob` where its table reports efficiency and none is stored (last: each takes
    seconds, alone, once the training jobs have left the machine). ``continue_shorter=False`` (``--force``)
    trains each from its first step."""
    measure, train = [], []
    for r in runs:
        path = store.run_dir(results_root, r.profile, r.run_id)
        if r.measure_efficiency and store.read_efficiency(path) is None:
            measure.append(EfficiencyJob(r.run_id, r.profile, r.config.to_dict(), str(results_root), str(work_root)))
        if store.training_problems(path, r.evaluations):
            train.append(RunJob(r.run_id, r.profile, r.seed, r.variants, r.config.to_dict(), r.evaluations,
                                str(results_root), str(work_root), threads, continue_shorter))
    return train + measure


def current_epochs(jobs: list) -> str:
    parts = []
    for job in (run for item in jobs for run in getattr(item, "jobs", [item])):     # a RunBatch holds several
        curve = job.work_dir / "curve.csv"
        if curve.is_file():
            lines = curve.read_text().strip().splitlines()
            parts.append(f"{job.run_id[:6]}:e{len(lines) - 1}")
    return " ".join(parts[-3:])


def _finished(running: dict, bar: tqdm) -> list[str]:
    """Removes the finished jobs from ``running`` (handle -> job); one error message per failed job."""
    errors = []
    for handle, job in list(running.items()):
        if handle.done():
            exc = handle.exception()
            if exc is not None:
                errors.append(f"{job.run_id}: {job_error(job, exc)}")      # before the mark: the job's own words
                _mark_failed_if_running(job, exc)
            del running[handle]
            bar.update(1)
    return errors


def _wait(jobs: list[RunJob], handles: list, bar: tqdm, poll_s: float) -> list[str]:
    """Waits for submitted jobs; returns an error message per failed job (others are not affected)."""
    errors, running = [], dict(zip(handles, jobs))
    while running:
        errors += _finished(running, bar)
        bar.set_postfix_str(current_epochs(list(running.values())))
        if running:
            time.sleep(poll_s)
    return errors


def local_slots(max_parallel: int | None, n_gpus: int) -> tuple[int, int]:
    """(jobs at once, CPU threads per job) for the local executor.

    On CPU, one thread per job and as many jobs as cores (and RAM, ~2 GB a job) beat one job using
    every core: two 1-thread jobs finished in 75 s what one 2-thread job after the other took 104 s
    on a 2-core machine, since small ops scale poorly and each job's single-threaded parts (start-up,
    annotation parsing, scoring) overlap. On a GPU box, one job per GPU.
    """
    cores = os.cpu_count() or 1
    if n_gpus:
        cap = min(max_parallel or n_gpus, n_gpus)
    else:
        cap = max_parallel or max(1, min(cores, _available_memory_gb() // 2))
    return cap, max(1, cores // cap)


def _available_memory_gb() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**30
    except (ValueError, OSError, AttributeError):       # not every OS names it
        return 2 * (os.cpu_count() or 1)


def schedule(jobs: list[RunJob], submit: Callable[[RunJob, int], object], cap: int, bar: tqdm,
             poll_s: float) -> list[str]:
    """Keeps ``cap`` jobs running (a finished one is replaced at once) through ``submit(job, slot)``;
    returns the failures. A job that ``runs_alone`` (an :class:`EfficiencyJob`: speed, memory) waits for
    the running ones and starts nothing beside it, so that no other job skews its numbers. Ctrl-C cancels
    the running jobs (their checkpoints stay)."""
    pending, running, slots = list(jobs), {}, {}
    errors: list[str] = []
    try:
        while pending or running:
            while pending and len(running) < cap:
                job = pending[0]
                alone = job.runs_alone or any(j.runs_alone for j in running.values())
                if running and alone:
                    break
                slot = min(set(range(cap)) - set(slots.values()))
                handle = submit(pending.pop(0), slot)
                running[handle], slots[handle] = job, slot
            errors += _finished(running, bar)
            slots = {handle: slot for handle, slot in slots.items() if handle in running}
            bar.set_postfix_str(current_epochs(list(running.values())))
            if running:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        # submitit's local jobs outlive their submitter by design; an interrupted table must not
        # leave orphans competing for the cores.
        for handle in running:
            handle.cancel(check=False)
        raise
    return errors


def job_error(job, exc: BaseException) -> str:
    """The failed job's own error line (what its meta.json keeps), and its log; submitit's message alone
    ends with the log's path, which says where the reason is but not what it is."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    log = lines[-1].strip() if lines else ""
    own = []
    for run in getattr(job, "jobs", [job]):          # a RunBatch holds several runs
        meta = store.read_meta(run.result_dir) or {}
        if not run.runs_alone and meta.get("status") == "failed" and (error := meta.get("error")):
            own.append(error.strip().splitlines()[0] if len(getattr(job, "jobs", [job])) == 1
                       else f"{run.run_id}: {error.strip().splitlines()[0]}")
    if not own:
        return log or f"{type(exc).__name__}: {exc}"
    return "; ".join(own) + (f" (log: {log})" if log and log not in own[0] else "")


@contextlib.contextmanager
def jobs_folder(root: Path):
    """Submitting writes each job's pickle under --jobs: a full disk there names the folder, and the
    empty or partial pickle it left is removed (submitit would read it as a job)."""
    before = {p: p.stat().st_size for p in Path(root).rglob("*.pkl")} if Path(root).is_dir() else {}
    try:
        with naming_folder(root, "--jobs"):
            yield
    except OSError:
        for pickle in Path(root).rglob("*.pkl") if Path(root).is_dir() else []:
            if pickle not in before or pickle.stat().st_size != before[pickle]:
                pickle.unlink(missing_ok=True)
        raise


def _mark_failed_if_running(job: RunJob, exc: BaseException) -> None:
    """A job killed from outside (OOM, scancel) never wrote its own failure; record it."""
    for run in getattr(job, "jobs", [job]):          # a RunBatch holds several runs
        if run.runs_alone:                           # a failed measurement leaves the training's status as it is
            continue
        meta = store.read_meta(run.result_dir) or {}
        if meta.get("status") not in ("failed", "interrupted"):
            try:
                store.update_meta(run.result_dir, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            except OSError:         # a full disk: keep waiting for the other jobs; `status` shows this one dead
                pass


def dispatch(jobs: list[RunJob], executor: str, jobs_root: Path, *, cluster: dict | None = None,
             max_parallel: int | None = None, poll_s: float = 2.0,
             job_fn: Callable[[RunJob], object] | None = None, jobs_per_gpu: int | str = "auto") -> list[str]:
    """Runs ``jobs``; returns the failures as messages. ``job_fn`` replaces ``job()`` in tests.
    ``jobs_per_gpu`` (local executor on a GPU box): a count, or auto (see ``packing``)."""
    if not jobs:
        return []
    bar = tqdm(total=len(jobs), desc="runs", unit="run")
    try:
        if executor == "debug":
            errors = []
            for job in jobs:
                try:
                    (job_fn or (lambda j: j()))(job)
                except Exception as err:     # one failing variant must not stop the others
                    errors.append(f"{job.run_id}: {type(err).__name__}: {err}")
                bar.update(1)
            return errors
        folder = Path(jobs_root) / "%j"
        if executor == "local":
            gpu = packing.gpu_facts()
            n_gpus = gpu.count
            if n_gpus:
                plan = packing.plan_slots(gpu, packing.cores(), jobs_per_gpu,
                                          lambda: packing.largest_peak_gb(jobs), max_parallel)
                cap, threads = plan.jobs, plan.threads
            else:
                cap, threads = local_slots(max_parallel, n_gpus)

            def submit(job: RunJob, slot: int):
                job.threads = (os.cpu_count() or 1) if job.runs_alone else threads
                ex = submitit.LocalExecutor(folder=folder)
                ex.update_parameters(timeout_min=24 * 60,
                                     **({"gpus_per_node": 1, "visible_gpus": (plan.gpu_of(slot),)} if n_gpus else {}))
                with _cancellable_by_sigint(), jobs_folder(jobs_root), _quiet_controllers():
                    return ex.submit(job)

            return schedule(jobs, submit, cap, bar, poll_s)
        if executor == "slurm":
            return _dispatch_slurm(jobs, folder, cluster or {}, bar, poll_s)
        raise ValueError(f"executor {executor!r}: use one of {EXECUTORS}")
    finally:
        bar.close()


@contextlib.contextmanager
def _cancellable_by_sigint():
    """Lets a local job started inside it be cancelled. submitit cancels a local job with SIGINT, and a
    submitter that a script started in the background (``nohup ... &``, the campaign) ignores SIGINT, as
    shells do to background commands; its job processes would inherit that, so Ctrl-C or a kill of the
    submitter would leave them training beside the next command's jobs. An ignored signal is inherited
    across exec, a handled one is not: handled for the instant of the submit, it reaches the job."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if not ignored or threading.current_thread() is not threading.main_thread():     # signal() needs main
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _quiet_controllers():
    """Local jobs started inside it run under :mod:`experiments.local_controller` (quiet on Ctrl-C)
    instead of submitit's stock controller; submitit builds the command itself, so the one Popen it
    makes is rewritten."""
    from experiments import local_controller

    real = subprocess.Popen

    def popen(command, *args, **kwargs):
        if isinstance(command, list):
            command = [local_controller.__name__ if part == local_controller.STOCK_MODULE else part for part in command]
        elif isinstance(command, str):
            command = command.replace(f"-m {local_controller.STOCK_MODULE}", f"-m {local_controller.__name__}")
        return real(command, *args, **kwargs)

    submitit_local.subprocess.Popen = popen
    try:
        yield
    finally:
        submitit_local.subprocess.Popen = real


def _slurm_parameters(cluster: dict) -> dict:
    """submitit's parameters for a cluster file (``registry.cluster`` checked its keys)."""
    params = {"timeout_min": cluster.get("timeout_min", 60), "cpus_per_task": cluster.get("cpus_per_task", 1),
              "mem_gb": cluster.get("mem_gb", 4), "slurm_array_parallelism": cluster.get("array_parallelism", 16)}
    for key in ("partition", "account", "qos", "constraint"):
        if cluster.get(key):
            params[f"slurm_{key}"] = cluster[key]
    if cluster.get("gpus_per_node"):
        params["gpus_per_node"] = cluster["gpus_per_node"]
    if cluster.get("setup"):
        params["slurm_setup"] = list(cluster["setup"])
    if cluster.get("additional_parameters"):
        params["slurm_additional_parameters"] = dict(cluster["additional_parameters"])
    return params


def _dispatch_slurm(jobs: list, folder: Path, cluster: dict, bar: tqdm, poll_s: float) -> list[str]:
    """The training jobs as one array (``runs_per_job`` runs per array task); then the efficiency
    measurements as a second array that waits for the first and runs one task at a time on a node of its
    own (``--exclusive``), so that no job skews their timing."""
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = _slurm_parameters(cluster)
    ex.update_parameters(**params)
    training = [job for job in jobs if not job.runs_alone]
    measuring = [job for job in jobs if job.runs_alone]
    runs_per_job = cluster.get("runs_per_job", 1)
    items = packing.batches(training, runs_per_job, params["cpus_per_task"]) if runs_per_job > 1 else training
    handles = _submit_array(ex, items)
    for item, handle in zip(items, handles):
        for job in getattr(item, "jobs", [item]):
            store.update_meta(job.result_dir, slurm_job_id=handle.job_id, status="queued",
                              log=str(Path(str(folder).replace("%j", handle.job_id))))
    if measuring:
        after = {"slurm_dependency": f"afterany:{handles[0].job_id.split('_')[0]}"} if handles else {}
        ex.update_parameters(slurm_exclusive=True, slurm_array_parallelism=1, **after)
        items, handles = items + measuring, handles + _submit_array(ex, measuring)
    bar.total = len(items)
    return _wait(items, handles, bar, poll_s)


def _submit_array(ex: submitit.AutoExecutor, items: list) -> list:
    if not items:
        return []
    with jobs_folder(Path(str(ex.folder)).parent), ex.batch():
        return [ex.submit(item) for item in items]
