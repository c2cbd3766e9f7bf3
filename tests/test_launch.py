"""The local executor's scheduler: rolling slots, efficiency runs alone, failures and Ctrl-C."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from tqdm import tqdm

from experiments import store
from experiments.dispatch import launch

ROOT = Path(__file__).resolve().parents[1]


class FakeHandle:
    """Finishes after ``polls`` calls of done(); records what ran beside it."""

    def __init__(self, job, slot: int, log: list, polls: int, error: Exception | None = None):
        self.job, self.slot, self.log, self.polls, self.error = job, slot, log, polls, error
        self.cancelled = False

    def done(self) -> bool:
        self.polls -= 1
        return self.polls < 0

    def exception(self):
        return self.error

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True


def _job(tmp_path, name: str, efficiency: bool = False):
    return SimpleNamespace(run_id=name, runs_alone=efficiency, result_dir=tmp_path / "results" / name,
                           work_dir=tmp_path / "work" / name)


def _run(jobs, cap, durations, errors=None):
    running, log, handles = set(), [], []

    def submit(job, slot):
        handle = FakeHandle(job, slot, log, durations[job.run_id], (errors or {}).get(job.run_id))
        live = {h for h in handles if h.polls >= 0}
        log.append((job.run_id, slot, sorted(h.job.run_id for h in live), sorted(h.slot for h in live)))
        handles.append(handle)
        return handle

    with tqdm(total=len(jobs), disable=True) as bar:
        failures = launch.schedule(jobs, submit, cap, bar, poll_s=0)
    return failures, log


def test_rolling_slots_and_efficiency_runs_alone(tmp_path):
    jobs = [_job(tmp_path, n) for n in "abcd"] + [_job(tmp_path, "eff", efficiency=True), _job(tmp_path, "f")]
    durations = {"a": 6, "b": 1, "c": 1, "d": 1, "eff": 2, "f": 1}
    failures, log = _run(jobs, 2, durations)
    assert failures == []
    started = [entry[0] for entry in log]
    assert started == ["a", "b", "c", "d", "eff", "f"]
    for name, slot, beside, busy_slots in log:
        assert len(beside) < 2                          # never more than cap at once
        assert slot not in busy_slots                   # a free slot (GPU index) for every job
    assert log[started.index("c")][2] == ["a"]          # c replaced b while a still ran (no waves)
    assert log[started.index("eff")][2] == []           # the efficiency run waited until it was alone
    assert log[started.index("f")][2] == []             # ... and nothing started beside it


def test_a_failed_job_is_reported_and_marked(tmp_path):
    jobs = [_job(tmp_path, "ok"), _job(tmp_path, "bad")]
    failures, _ = _run(jobs, 2, {"ok": 1, "bad": 1}, errors={"bad": RuntimeError("boom\nNonFiniteLossError: x")})
    assert failures == ["bad: NonFiniteLossError: x"]
    assert store.read_meta(tmp_path / "results" / "bad")["status"] == "failed"


def test_interrupt_cancels_running_jobs(tmp_path):
    handles = []

    def submit(job, slot):
        handles.append(FakeHandle(job, slot, [], polls=10**9))
        if len(handles) == 2:
            raise KeyboardInterrupt
        return handles[-1]

    with pytest.raises(KeyboardInterrupt), tqdm(total=3, disable=True) as bar:
        launch.schedule([_job(tmp_path, n) for n in "abc"], submit, 3, bar, poll_s=0)
    assert handles[0].cancelled


BACKGROUND_SUBMITTER = """
import signal, sys, time
import submitit
from experiments.dispatch import launch
signal.signal(signal.SIGINT, signal.SIG_IGN)         # what a script's `cmd &` does to cmd
ex = submitit.LocalExecutor(folder=sys.argv[1])
with launch._cancellable_by_sigint():
    job = ex.submit(time.sleep, 600)
time.sleep(3)                                        # the job's interpreter is up
job.cancel()
deadline = time.time() + 30
while not job.done() and time.time() < deadline:
    time.sleep(0.2)
print("stopped" if job.done() else "still running")
"""


def test_cancel_stops_a_local_job_of_a_submitter_started_in_the_background(tmp_path):
    """A campaign starts the submitter with `nohup ... &`: its Ctrl-C / kill must still stop its jobs."""
    submitter = subprocess.Popen([sys.executable, "-c", BACKGROUND_SUBMITTER, str(tmp_path / "%j")], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = submitter.communicate(timeout=120)
    finally:        # a job that outlived the cancel is still in the submitter's process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(submitter.pid, signal.SIGKILL)
    assert out.strip() == "stopped", out + err


def test_local_slots(monkeypatch):
    monkeypatch.setattr(launch.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(launch, "_available_memory_gb", lambda: 64)
    assert launch.local_slots(None, n_gpus=0) == (8, 1)          # one thread per job on CPU
    assert launch.local_slots(2, n_gpus=0) == (2, 4)
    assert launch.local_slots(None, n_gpus=2) == (2, 4)          # one job per GPU
    monkeypatch.setattr(launch, "_available_memory_gb", lambda: 6)
    assert launch.local_slots(None, n_gpus=0) == (3, 2)          # RAM bounds the jobs


def _resolved(measure_efficiency: bool):
    from experiments.registry import load_registry
    run = load_registry().resolve("baseline", "smoke")
    return dataclasses.replace(run, evaluations=(("dad3dheads", "val"),), measure_efficiency=measure_efficiency)


def test_make_jobs_gives_each_run_only_what_it_lacks(tmp_path):
    run = _resolved(measure_efficiency=True)
    results, work = tmp_path / "results", tmp_path / "work"
    jobs = launch.make_jobs([run], results, work)
    assert [type(j).__name__ for j in jobs] == ["RunJob", "EfficiencyJob"]     # measured once training is done
    assert [j.runs_alone for j in jobs] == [False, True]
    out = store.run_dir(results, "smoke", run.run_id)
    store.write_meta(out, {"status": "done"})
    store.write_evaluation(out, "dad3dheads", "val", {"nme": 1.0}, pd.DataFrame({"item_id": ["a"], "nme": [1.0]}),
                           None, {})
    assert [type(j).__name__ for j in launch.make_jobs([run], results, work)] == ["EfficiencyJob"]   # no retraining
    assert launch.make_jobs([_resolved(measure_efficiency=False)], results, work) == []


def test_a_failed_measurement_leaves_the_trained_run_done(tmp_path):
    run = _resolved(measure_efficiency=True)
    job = launch.make_jobs([run], tmp_path / "results", tmp_path / "work")[-1]
    store.write_meta(job.result_dir, {"status": "done"})
    failures, _ = _run([job], 2, {job.run_id: 1}, errors={job.run_id: RuntimeError("CUDA out of memory")})
    assert failures == [f"{job.run_id}: CUDA out of memory"]
    assert store.read_meta(job.result_dir)["status"] == "done"
