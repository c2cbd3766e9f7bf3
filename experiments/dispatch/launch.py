"""Dispatch of runs as jobs (``jobs.RunJob``, ``jobs.EfficiencyJob``) through submitit: in-process
(debug), local processes, or a SLURM array; rolling slots, waiting, failures in the run's own words."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import submitit
import submitit.local.local as submitit_local
from tqdm import tqdm

from experiments import store
from experiments.dispatch import packing
from experiments.dispatch.jobs import EfficiencyJob, RunJob
from experiments.registry import ResolvedRun
from trans3dhead.atomic import naming_folder

EXECUTORS = ("debug", "local", "slurm")


def make_jobs(runs: list[ResolvedRun], results_root: Path, work_root: Path, threads: int = 0,
              continue_shorter: bool = True) -> list[RunJob | EfficiencyJob]:
    """What each run still lacks, as jobs: a :class:`RunJob` where its training or an evaluation is missing,
    and an :class:`EfficiencyJob` where its table reports efficiency and none is stored (last: each takes
    seconds, alone, once the training jobs have left the machine). ``continue_shorter=False`` (``--force``)
    trains each from its first step."""
    measure, train = [], []
    for r in runs:
        status = store.assess(store.RunPaths(r.profile, r.run_id, Path(results_root), Path(work_root)),
                              r.evaluations, r.measure_efficiency)
        if status.measure:
            measure.append(EfficiencyJob(r.run_id, r.profile, r.config.to_dict(), str(results_root), str(work_root)))
        if status.train:
            train.append(RunJob(r.run_id, r.profile, r.seed, r.variants, r.config.to_dict(), r.evaluations,
                                str(results_root), str(work_root), threads, continue_shorter))
    return train + measure


def current_epochs(jobs: list) -> str:
    parts = []
    for job in (run for item in jobs for run in getattr(item, "jobs", [item])):     # a RunBatch holds several
        curve = store.work_files(job.work_dir)[1]
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
    """Local jobs started inside it run under :mod:`experiments.dispatch.local_controller` (quiet on Ctrl-C)
    instead of submitit's stock controller; submitit builds the command itself, so the one Popen it
    makes is rewritten."""
    from experiments.dispatch import local_controller

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
