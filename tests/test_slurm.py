"""The suite on a real SLURM cluster (scripts/slurm-local): job arrays (training, then the efficiency
measurements alone), and requeue + resume."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from experiments import run, store
from experiments.dispatch.jobs import RunJob
from experiments.registry import REGISTRY_DIR, load_registry, run_id_of
from trans3dhead.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "experiments" / "registry" / "clusters" / "local.yaml"


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(state in out.stdout for state in ("idle", "mix", "alloc"))


pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """A cluster that already answers is used as it is; otherwise scripts/slurm-local starts one for this
    module (installing its Debian packages on a fresh machine) and stops it afterwards. T3H_SKIP_SLURM=1
    skips instead."""
    if _cluster_answers():
        yield
        return
    if os.environ.get("T3H_SKIP_SLURM") == "1":
        pytest.skip("T3H_SKIP_SLURM=1")
    started = subprocess.run(["bash", str(ROOT / "scripts" / "slurm-local" / "start.sh")],
                             capture_output=True, text=True, timeout=1200)
    if started.returncode != 0 or not _cluster_answers():
        pytest.skip("the local SLURM cluster did not start (scripts/slurm-local/start.sh): "
                    + (started.stderr.strip().splitlines() or ["no message"])[-1])
    try:
        yield
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "slurm-local" / "stop.sh")], capture_output=True, timeout=120)


def test_a_table_runs_as_one_job_array_and_is_reported(tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, registry)
    tables = yaml.safe_load((registry / "tables.yaml").read_text())
    tables["mini"] = {"title": "mini", "kind": "table", "dataset": "dad3dheads", "split": "val",
                      "metrics": ["nme", "z5", "chamfer", "pose_error"], "efficiency": True,
                      "sections": [{"name": "", "rows": [{"label": "baseline", "variant": "baseline", "paper": {}},
                                                         {"label": "+QA", "variant": "qa", "paper": {}}]}]}
    (registry / "tables.yaml").write_text(yaml.safe_dump(tables))
    dirs = {k: tmp_path / k for k in ("results", "reports", "work", "jobs")}
    code = run.main(["mini", "--profile", "smoke", "--executor", "slurm", "--cluster", str(CLUSTER),
                     "--registry", str(registry), *[x for k, v in dirs.items() for x in (f"--{k}", str(v))]])
    assert code == 0
    reg = load_registry(registry)
    metas = [store.read_meta(store.run_dir(dirs["results"], "smoke", reg.resolve(v, "smoke").run_id)) for v in ("baseline", "qa")]
    assert all(m["status"] == "done" for m in metas)
    array_ids = {m["slurm_job_id"].split("_")[0] for m in metas}
    assert len(array_ids) == 1 and all("_" in m["slurm_job_id"] for m in metas)     # one sbatch --array
    paths = [store.run_dir(dirs["results"], "smoke", reg.resolve(v, "smoke").run_id) for v in ("baseline", "qa")]
    assert all(store.read_efficiency(path)["params"] > 0 for path in paths)   # a second array, after the first
    report = (dirs["reports"] / "smoke" / "mini.md").read_text()
    assert "| baseline |" in report and "efficiency not measured" not in report


def test_a_preempted_job_is_requeued_and_resumes_to_the_same_result(tmp_path):
    import submitit
    resolved = load_registry().resolve("baseline", "smoke")
    raw = resolved.config.to_dict()
    raw["train"]["epochs"] = 5
    run_id = run_id_of(RunConfig.from_dict(raw))          # the id of the config it trains
    evaluations = (("dad3dheads", "val"),)

    def job(results, work):
        return RunJob(run_id, "smoke", 0, ("baseline",), raw, evaluations, str(results), str(work), threads=1)

    executor = submitit.AutoExecutor(folder=tmp_path / "jobs" / "%j", cluster="slurm")
    executor.update_parameters(timeout_min=30, cpus_per_task=1, mem_gb=2, slurm_partition="debug")
    handle = executor.submit(job(tmp_path / "results", tmp_path / "work"))
    ckpt = tmp_path / "work" / "smoke" / run_id / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.5)
    assert ckpt.exists(), "the job never wrote its first checkpoint"
    handle._interrupt()                                 # preemption: USR2 -> checkpoint() -> requeue
    handle.result()                                     # the requeued job runs to the end
    interrupted = torch.load(ckpt, weights_only=False)

    job(tmp_path / "results2", tmp_path / "work2")()    # the same run, uninterrupted, in-process
    straight = torch.load(tmp_path / "work2" / "smoke" / run_id / "checkpoint.pt", weights_only=False)
    assert interrupted["epoch"] == straight["epoch"] == 5
    for name, value in straight["model"].items():
        assert torch.equal(value, interrupted["model"][name]), name
    a = store.read_meta(tmp_path / "results" / "smoke" / run_id)
    log = "".join(p.read_text() for p in (tmp_path / "jobs").rglob("*.err"))
    assert a["status"] == "done"
    assert "requeue" in log.lower() or "checkpoint" in log.lower()
