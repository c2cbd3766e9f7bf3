"""Several runs per GPU: a small run (the cpu profile's 48-px model) uses a few percent of an H200, so
one run per GPU leaves it idle most of the time.

Local executor: ``--jobs-per-gpu N|auto``; auto fits as many copies of one job's measured peak memory
as the GPU holds (with headroom), bounded by the CPU cores (every job needs a training thread and
loader workers). SLURM: the cluster file's ``runs_per_job: N`` runs N runs side by side inside one job.
"""
from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable

import submitit

MEMORY_HEADROOM = 0.85            # of the GPU's memory: allocator fragmentation, the CUDA context
CONTEXT_GB = 0.6                  # each process's CUDA context and cuDNN workspace, beside its tensors
MIN_CORES_PER_JOB = 2             # a training thread and at least one loader worker
MAX_JOBS_PER_GPU = 16


@dataclass(frozen=True)
class GpuFacts:
    count: int
    memory_gb: float              # per GPU


@dataclass(frozen=True)
class Slots:
    jobs: int                     # jobs at once
    threads: int                  # CPU threads per job (its loader workers come out of these)
    per_gpu: int                  # jobs sharing one GPU (0 on a CPU-only machine)

    def gpu_of(self, slot: int) -> int:
        return slot // self.per_gpu


def gpu_facts() -> GpuFacts:
    """The visible GPUs; (0, 0.0) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return GpuFacts(0, 0.0)
    return GpuFacts(torch.cuda.device_count(), torch.cuda.get_device_properties(0).total_memory / 2**30)


def jobs_per_gpu(requested: int | str, gpu: GpuFacts, cores: int, job_peak_gb: Callable[[], float]) -> int:
    """``requested`` (a count, or 'auto': from ``job_peak_gb()``, called only then) jobs per GPU."""
    if requested != "auto":
        if int(requested) < 1:
            raise ValueError(f"--jobs-per-gpu={requested}: use a count >= 1 or auto")
        return int(requested)
    by_memory = math.floor(gpu.memory_gb * MEMORY_HEADROOM / (job_peak_gb() + CONTEXT_GB))
    by_cores = cores // (MIN_CORES_PER_JOB * gpu.count)
    return max(1, min(MAX_JOBS_PER_GPU, by_memory, by_cores))


def plan_slots(gpu: GpuFacts, cores: int, requested: int | str, job_peak_gb: Callable[[], float],
               max_parallel: int | None = None) -> Slots:
    """Jobs at once and threads per job on a GPU box; slot s runs on GPU ``s // per_gpu``."""
    per_gpu = jobs_per_gpu(requested, gpu, cores, job_peak_gb)
    jobs = min(max_parallel or per_gpu * gpu.count, per_gpu * gpu.count)
    return Slots(jobs, max(1, cores // jobs), per_gpu)


def measure_peak_gb(config: dict, steps: int = 3) -> float:
    """Peak GPU memory of a few training steps of ``config`` (forward, backward, Adam state), in a fresh
    process so that the submitter itself never holds a CUDA context."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_peak_gb, config, steps).result()


def largest_peak_gb(jobs: list) -> float:
    """The largest peak of the jobs' distinct models and input sizes (one measurement each)."""
    import json

    distinct = {json.dumps([job.config["model"], job.config["data"]["image_size"], job.config["train"]["batch_size"]],
                           sort_keys=True): job.config for job in jobs}
    return max(measure_peak_gb(config) for config in distinct.values())


def _peak_gb(config: dict, steps: int) -> float:
    import torch

    from experiments.dispatch.steptimer import time_steps
    from trans3dhead.config import RunConfig

    return time_steps(RunConfig.from_dict(config), steps, device=torch.device("cuda", 0)).peak_gb


@dataclass
class RunBatch:
    """Several runs side by side inside one SLURM job (``runs_per_job``); CPUs split between them.
    Requeued as a whole: each run resumes from its own checkpoint."""
    jobs: list
    cpus: int

    @property
    def run_id(self) -> str:
        return "+".join(job.run_id for job in self.jobs)

    def __call__(self) -> str:
        threads = max(1, self.cpus // len(self.jobs))
        for job in self.jobs:
            job.threads = threads
        # Not multiprocessing.Pool: its daemonic workers could not start a run's loader workers.
        with ProcessPoolExecutor(len(self.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = [(job, pool.submit(job)) for job in self.jobs]
            failures = []
            for job, result in pending:
                try:
                    result.result()
                except Exception as err:        # the other runs of the batch keep going
                    failures.append(f"{job.run_id}: {type(err).__name__}: {err}")
        if failures:
            raise RuntimeError("; ".join(failures))
        return self.run_id

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(RunBatch(self.jobs, self.cpus))


def batches(jobs: list, runs_per_job: int, cpus: int) -> list[RunBatch]:
    """Consecutive groups of ``runs_per_job`` training runs (efficiency measurements are never batched:
    ``launch`` submits them apart, alone)."""
    return [RunBatch(jobs[i:i + runs_per_job], cpus) for i in range(0, len(jobs), runs_per_job)]


def cores() -> int:
    return os.cpu_count() or 1
