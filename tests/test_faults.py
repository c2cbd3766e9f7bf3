"""Faults: two submitters at once, a killed submitter whose job lives on, a truncated result, a full disk.

Training and evaluation are replaced by ``fakejob`` (seconds, same store files); the locks, the store,
the planner and the CLI are the real ones, in real processes where the fault needs them.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fakejob
from helpers import checkout_env
from experiments import run, store
from experiments.dispatch import runlock
from experiments.registry import load_registry
from trans3dhead import atomic
from trans3dhead.engine.checkpoint import atomic_save

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("dad3dnet", "baseline")


def _argv(tmp: Path, *extra: str) -> list[str]:
    return ["table3", "--profile", "smoke", "--only", ",".join(VARIANTS), "--executor", "debug",
            *[x for k in ("results", "reports", "work", "jobs") for x in (f"--{k}", str(tmp / k))], *extra]


def _run_ids() -> list[str]:
    registry = load_registry()
    return [registry.resolve(v, "smoke").run_id for v in VARIANTS]


def _trainings(tmp: Path) -> list[str]:
    log = tmp / "work" / "trainings.log"
    return log.read_text().split() if log.is_file() else []


def _env(delay_s: float) -> dict:
    return checkout_env(ROOT / "tests", FAKE_TRAIN_S=str(delay_s))


def _start_training_job(tmp: Path, seconds: float) -> subprocess.Popen:
    """A job process training the first row's run (as a killed submitter's job lives on); returns once it trains."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakejob.py"), "--job", str(tmp / "results"),
                             str(tmp / "work"), VARIANTS[0]], cwd=tmp, env=_env(seconds), start_new_session=True)
    deadline = time.time() + 120
    while not _trainings(tmp) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    return proc


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fakejob, "DELAY_S", 0.0)
    # Through monkeypatch only: fakejob.install() would outlive this test (monkeypatch restores the
    # value it found), and a later in-process training would write b"fake" checkpoints.
    import trans3dhead.engine as engine
    monkeypatch.setattr(engine, "train", fakejob.fake_train)
    monkeypatch.setattr(engine, "evaluate", fakejob.fake_evaluate)
    return tmp_path


def _tmp_files(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]


@pytest.mark.slow          # three interpreters with torch: about 35 s on 2 busy cores
def test_two_submitters_at_once_train_each_run_once(fake):
    tmp_path = fake
    command = [sys.executable, str(ROOT / "tests" / "fakejob.py"), *_argv(tmp_path)]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=_env(2.0), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    codes = [proc.returncode for proc in procs]
    assert all(code in (0, 3) for code in codes), outputs
    assert "Traceback" not in "".join(outputs)
    assert len(_trainings(tmp_path)) == len(VARIANTS), outputs            # each run trained exactly once
    for run_id in _run_ids():
        assert store.read_meta(store.run_dir(tmp_path / "results", "smoke", run_id))["status"] == "done"
    assert run.main(_argv(tmp_path)) == 0 and len(_trainings(tmp_path)) == len(VARIANTS)   # a rerun reuses both


def test_a_job_that_finds_its_run_locked_waits_then_reuses_it(fake, capsys):
    """The race two submitters can still run into: both planned the run before either job took its lock."""
    tmp = fake
    first = _start_training_job(tmp, 3.0)
    fakejob.job(str(tmp / "results"), str(tmp / "work"), VARIANTS[0])      # the second submitter's job
    assert "running elsewhere" in capsys.readouterr().out
    assert first.wait(timeout=120) == 0
    assert len(_trainings(tmp)) == 1
    assert store.read_meta(store.run_dir(tmp / "results", "smoke", _run_ids()[0]))["status"] == "done"


def test_a_rerun_while_the_killed_submitters_job_lives_on_trains_nothing_twice(fake, capsys):
    tmp = fake
    # The job of a killed submitter, still training (a separate process holding the run's lock).
    orphan = _start_training_job(tmp, 6.0)
    run_id = _run_ids()[0]
    assert runlock.holder(tmp / "work" / "smoke" / run_id)["pid"] == orphan.pid
    assert run.main(["status", "table3", "--profile", "smoke", "--results", str(tmp / "results"),
                     "--work", str(tmp / "work")]) == 0
    assert f"held by: live job: pid {orphan.pid}" in capsys.readouterr().out     # not "error:": it is running
    code = run.main(_argv(tmp))                                  # the rerun
    err = capsys.readouterr().err
    assert code == 3 and f"running elsewhere: {run_id}" in err
    assert len(_trainings(tmp)) == 2                             # the orphan's run and the other row, once each
    orphan.wait(timeout=120)
    assert run.main(_argv(tmp)) == 0                             # the orphan finished: reused, nothing trained
    assert len(_trainings(tmp)) == 2


def test_kill_9_of_a_job_shows_dead_and_the_rerun_resumes_it(fake, capsys):
    tmp = fake
    job = _start_training_job(tmp, 60.0)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    status_argv = ["status", "table3", "--profile", "smoke", "--results", str(tmp / "results"),
                   "--work", str(tmp / "work")]
    run.main(status_argv)
    out = capsys.readouterr().out
    assert "dead" in out and f"pid {job.pid}" in out and "rerun the same command" in out
    assert run.main(_argv(tmp)) == 0
    assert len(_trainings(tmp)) == 3                             # killed once, resumed once, the other row once
    assert store.read_meta(store.run_dir(tmp / "results", "smoke", _run_ids()[0]))["status"] == "done"


def test_a_truncated_result_is_named_and_redone(fake, capsys):
    tmp = fake
    assert run.main(_argv(tmp)) == 0
    out_dir = store.run_dir(tmp / "results", "smoke", _run_ids()[0])
    eval_file = out_dir / "eval-dad3dheads-val.json"
    eval_file.write_text(eval_file.read_text()[:25])
    capsys.readouterr()
    assert run.main([*_argv(tmp), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert f"[run ] {_run_ids()[0]}" in plan and "eval-dad3dheads-val.json is not valid JSON" in plan
    assert f"[done] {_run_ids()[1]}" in plan
    assert run.main(_argv(tmp)) == 0
    assert f"redo {_run_ids()[0]}" in capsys.readouterr().err
    assert store.has_evaluation(out_dir, "dad3dheads", "val")
    assert json.loads(eval_file.read_text())["aggregate"]["nme"] == 9.0


def _disk_full_after(monkeypatch, trigger: str, times: int) -> None:
    """Every atomic write fails with ENOSPC, ``times`` times, once a file whose name holds ``trigger`` is written."""
    armed = {"left": 0}
    write = atomic.atomic_write

    def failing(path, body):
        if trigger in Path(path).name and armed["left"] == 0:
            armed["left"] = times
        if armed["left"] > 0:
            armed["left"] -= 1

            def body_then_full(f):
                body(f)
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(path, body_then_full)
        return write(path, body)
    monkeypatch.setattr(atomic, "atomic_write", failing)
    monkeypatch.setattr(atomic, "atomic_write_bytes", lambda path, data: failing(path, lambda f: f.write(data)))
    import experiments.store.files
    for module in (experiments.store, experiments.store.files):      # the store's writers, bound by name
        monkeypatch.setattr(module, "atomic_write_bytes", atomic.atomic_write_bytes)


def test_a_full_disk_names_the_path_leaves_no_temp_file_and_fails_the_run(fake, monkeypatch, capsys):
    tmp = fake
    _disk_full_after(monkeypatch, "eval-", times=1)        # the evaluation's first file; the disk then frees up
    code = run.main(_argv(tmp))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "no space left on the device writing" in err and "eval-dad3dheads-val.csv" in err
    assert _tmp_files(tmp) == []
    meta = store.read_meta(store.run_dir(tmp / "results", "smoke", _run_ids()[0]))
    assert meta["status"] == "failed" and "eval-dad3dheads-val.csv" in meta["error"]


def test_a_disk_that_stays_full_shows_the_run_dead_not_running(fake, monkeypatch, capsys):
    tmp = fake
    _disk_full_after(monkeypatch, "eval-", times=10**6)
    assert run.main(_argv(tmp)) == 1
    assert _tmp_files(tmp) == []
    capsys.readouterr()
    run.main(["status", "table3", "--profile", "smoke", "--results", str(tmp / "results"), "--work", str(tmp / "work")])
    out = capsys.readouterr().out
    assert f"{_run_ids()[0]}  seed 0  dead" in out and "disk" in out


@pytest.mark.parametrize("writer", ["bytes", "json", "checkpoint"])
def test_atomic_writes_keep_the_old_file_and_no_temp_file_on_enospc(tmp_path, monkeypatch, writer):
    path = tmp_path / "f"
    write = {"bytes": lambda: atomic.atomic_write_bytes(path, b"new"),
             "json": lambda: atomic.atomic_write_json(path, {"a": 2}),
             "checkpoint": lambda: atomic_save({"a": 2}, path)}[writer]
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.DiskFullError, match=f"writing {path}"):
        write()
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.slow          # real smoke training through the local executor: a minute or more on 2 cores
def test_kill_9_of_the_submitter_then_rerun_trains_nothing_twice(tmp_path, capsys):
    argv = ["table3", "--profile", "smoke", "--only", "dad3dnet", "--max-parallel", "1",
            *[x for k in ("results", "reports", "work", "jobs") for x in (f"--{k}", str(tmp_path / k))]]
    run_id = load_registry().resolve("dad3dnet", "smoke").run_id
    work, out = tmp_path / "work" / "smoke" / run_id, store.run_dir(tmp_path / "results", "smoke", run_id)
    submitter = subprocess.Popen([sys.executable, "-m", "experiments.run", *argv], cwd=tmp_path, env=checkout_env(),
                                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job_pid = None
    try:
        deadline = time.time() + 300
        while (runlock.holder(work) is None or (store.read_meta(out) or {}).get("status") != "running") \
                and time.time() < deadline:
            time.sleep(0.2)
        job_pid = runlock.holder(work)["pid"]
        os.kill(submitter.pid, signal.SIGKILL)                 # the submitter only: its job lives on
        submitter.wait()
        started = store.read_meta(out)["started"]
        assert run.main([*argv, "--executor", "debug"]) == 3   # the rerun does not train it a second time
        assert f"running elsewhere: {run_id}" in capsys.readouterr().err
        deadline = time.time() + 600
        while runlock.holder(work) is not None and time.time() < deadline:
            time.sleep(0.5)
        assert store.read_meta(out)["status"] == "done"
        assert run.main([*argv, "--executor", "debug"]) == 0   # finished by the orphan: reused
        assert store.read_meta(out)["started"] == started
        assert list(store.curve(out)["epoch"]) == [1, 2]
    finally:
        if job_pid and runlock.holder(work):
            os.kill(job_pid, signal.SIGKILL)


# ---- issue 28 (round two) ------------------------------------------------------------------------

def test_a_folder_holding_another_runs_results_is_redone_with_its_own_numbers(fake, capsys):
    tmp = fake
    assert run.main(_argv(tmp)) == 0
    mine, other = (store.run_dir(tmp / "results", "smoke", rid) for rid in _run_ids())
    store.update_meta(mine, run_id=other.name)          # a copied folder: the meta names the other run
    eval_file = mine / "eval-dad3dheads-val.json"
    eval_file.write_text(eval_file.read_text().replace('"nme": 9.0', '"nme": 4.25'))
    assert not any(store.collect(tmp / "results", "smoke")["nme"] == 4.25)     # never shown under this row
    capsys.readouterr()
    assert run.main(_argv(tmp)) == 0
    assert f"redo {mine.name}" in capsys.readouterr().err
    assert store.read_meta(mine)["run_id"] == mine.name
    assert json.loads(eval_file.read_text())["aggregate"]["nme"] == 9.0


def test_the_table_command_prints_its_verdicts(fake, capsys):
    assert run.main(_argv(fake)) == 0
    out = capsys.readouterr().out
    steps = load_registry().table("table3").steps
    assert f"table3: {steps[0].from_label} -> {steps[0].to_label}, {steps[0].metrics[0]}:" in out


def test_a_failed_job_prints_its_own_error_not_only_its_log(tmp_path):
    from experiments.dispatch import launch
    job = launch.RunJob("r1", "smoke", 0, ("v",), {}, (), str(tmp_path / "results"), str(tmp_path / "work"))
    store.write_meta(job.result_dir, {"status": "failed", "error": "DatasetError: image x.png is missing"})
    exc = RuntimeError("Job (task=0) failed during processing with trace:\n...\nYou can check full logs with "
                       "'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - /jobs/123_0_log.err")
    line = launch.job_error(job, exc)
    assert line.startswith("DatasetError: image x.png is missing") and "123_0_log.err" in line


def test_torch_save_on_a_full_disk_names_the_checkpoint(tmp_path, monkeypatch):
    import torch

    def full(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")
    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "work" / "checkpoint.pt"
    with pytest.raises(atomic.DiskFullError, match=f"cannot write {path}.*is its disk full"):
        atomic_save({"a": 1}, path)
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("what", ["--reports", "data.root", "--jobs"])
def test_a_full_disk_under_a_folder_names_the_folder_and_the_option(tmp_path, what):
    folder = tmp_path / "out"
    with pytest.raises(atomic.DiskFullError) as caught, atomic.naming_folder(folder, what):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert what in str(caught.value) and str(folder) in str(caught.value)
    assert run.describe_os_error(caught.value).count(str(folder)) >= 1


def test_a_full_jobs_folder_leaves_no_empty_pickle(tmp_path):
    from experiments.dispatch import launch
    jobs = tmp_path / "jobs"
    (jobs / "1").mkdir(parents=True)
    (jobs / "1" / "kept.pkl").write_bytes(b"whole")
    with pytest.raises(atomic.DiskFullError, match="--jobs"), launch.jobs_folder(jobs):
        (jobs / "2").mkdir()
        (jobs / "2" / "2_submitted.pkl").write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert [p.name for p in jobs.rglob("*.pkl")] == ["kept.pkl"]


def test_ctrl_c_stops_a_local_controller_without_a_traceback(tmp_path):
    env = checkout_env(**{"SUBMITIT_LOCAL_NTASKS": "1", "SUBMITIT_LOCAL_COMMAND": f"{sys.executable} -c "
           "'import time; time.sleep(60)'", "SUBMITIT_LOCAL_TIMEOUT_S": "120", "SUBMITIT_LOCAL_SIGNAL_DELAY_S": "5",
           "SUBMITIT_STDERR_TO_STDOUT": "", "SUBMITIT_LOCAL_WITH_SHELL": "", "SUBMITIT_LOCAL_NODEID": "0",
           "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_EXECUTOR": "local"})
    proc = subprocess.Popen([sys.executable, "-m", "experiments.dispatch.local_controller", str(tmp_path)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not list(tmp_path.glob("*_log.out")) and time.time() < deadline:     # its task has started
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_local_jobs_run_under_the_quiet_controller(tmp_path):
    import submitit

    from experiments.dispatch import launch
    ex = submitit.LocalExecutor(folder=tmp_path / "%j")
    ex.update_parameters(timeout_min=2)
    with launch._quiet_controllers():
        job = ex.submit(int, "1")      # a builtin: the job's interpreter can unpickle it
    assert "experiments.dispatch.local_controller" in job._process.args and job.result() == 1
