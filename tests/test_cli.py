"""The suite end to end on the smoke profile: a failing variant fails alone, kill -9 resumes, reruns are free."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from experiments import run, store
from experiments.registry import REGISTRY_DIR, load_registry, run_id_of
from trans3dhead.config import RunConfig
from trans3dhead.engine.steplog import INJECT_NAN_ENV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A registry with a two-row table and a second variant (its own run id) that a test makes fail."""
    base = tmp_path_factory.mktemp("mini")
    registry = base / "registry"
    shutil.copytree(REGISTRY_DIR, registry)
    variants = yaml.safe_load((registry / "variants.yaml").read_text())
    variants["broken"] = {"base": "baseline", "label": "broken", "train": {"grad_clip": 1.0e6}}
    (registry / "variants.yaml").write_text(yaml.safe_dump(variants))
    tables = yaml.safe_load((registry / "tables.yaml").read_text())
    tables["mini"] = {"title": "mini", "kind": "table", "dataset": "dad3dheads", "split": "val",
                      "metrics": ["nme", "z5", "chamfer", "pose_error"],
                      "sections": [{"name": "", "rows": [{"label": "baseline", "variant": "baseline", "paper": {"nme": 1.847}},
                                                         {"label": "broken", "variant": "broken", "paper": {}}]}],
                      "steps": [{"from": "baseline", "to": "broken", "metrics": ["nme"], "claim": "none"}]}
    tables["mini_fps"] = {**tables["mini"], "title": "mini with efficiency columns", "efficiency": True,
                          "sections": [{"name": "", "rows": tables["mini"]["sections"][0]["rows"][:1]}], "steps": []}
    (registry / "tables.yaml").write_text(yaml.safe_dump(tables))
    dirs = {k: base / k for k in ("results", "reports", "work", "jobs")}
    return registry, dirs


def _argv(target, registry, dirs, *extra):
    return [target, "--profile", "smoke", "--registry", str(registry), *extra,
            *[x for k, v in dirs.items() for x in (f"--{k}", str(v))]]


def test_failing_variant_fails_alone_and_shows_everywhere(mini, capsys, monkeypatch):
    registry, dirs = mini
    monkeypatch.setenv(INJECT_NAN_ENV, f"0@{load_registry(registry).resolve('broken', 'smoke').run_id}")
    code = run.main(_argv("mini", registry, dirs, "--executor", "debug"))
    out, err = capsys.readouterr()
    assert code == 1 and "NonFiniteLossError" in err
    reg = load_registry(registry)
    good = store.read_meta(store.run_dir(dirs["results"], "smoke", reg.resolve("baseline", "smoke").run_id))
    bad = store.read_meta(store.run_dir(dirs["results"], "smoke", reg.resolve("broken", "smoke").run_id))
    assert good["status"] == "done" and bad["status"] == "failed" and "step 0" in bad["error"]
    md = (dirs["reports"] / "smoke" / "mini.md").read_text()
    assert "| baseline |" in md and "failed: NonFiniteLossError" in md
    assert run.main(["status", "mini", "--profile", "smoke", "--registry", str(registry),
                     "--results", str(dirs["results"])]) == 0
    status = capsys.readouterr().out
    assert "failed" in status and "done" in status

    good_path = store.run_dir(dirs["results"], "smoke", reg.resolve("baseline", "smoke").run_id)
    started = store.read_meta(good_path)["started"]
    assert run.main(_argv("mini", registry, dirs, "--executor", "debug")) == 1   # only the broken run is retried
    capsys.readouterr()
    assert store.read_meta(good_path)["started"] == started                      # the finished run was not redone


def test_kill_9_then_rerun_completes_from_the_checkpoint(mini, tmp_path):
    registry, _ = mini
    dirs = {k: tmp_path / k for k in ("results", "reports", "work", "jobs")}
    reg = load_registry(registry)
    resolved = reg.resolve("baseline", "smoke")
    raw = resolved.config.to_dict()
    raw["train"]["epochs"] = 4
    run_id = run_id_of(RunConfig.from_dict(raw))          # the id of the config it trains
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r});"
            "from experiments.dispatch.jobs import RunJob;"
            f"RunJob('{run_id}', 'smoke', 0, ('baseline',), {raw!r}, (('dad3dheads', 'val'),), "
            f"{str(dirs['results'])!r}, {str(dirs['work'])!r})()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True)
    ckpt = dirs["work"] / "smoke" / run_id / "checkpoint.pt"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads((dirs["results"] / "smoke" / run_id / "meta.json").read_text())
    assert before["status"] == "running"                       # killed mid-training
    import torch
    epoch_at_kill = torch.load(ckpt, weights_only=False)["epoch"]
    assert 1 <= epoch_at_kill < 4
    # Rerunning completes the same run from its checkpoint (same job, as the CLI would submit it).
    from experiments.dispatch.jobs import RunJob
    RunJob(run_id, "smoke", 0, ("baseline",), raw, (("dad3dheads", "val"),),
           str(dirs["results"]), str(dirs["work"]))()
    after = store.read_meta(dirs["results"] / "smoke" / run_id)
    assert after["status"] == "done" and after["epochs"] == 4
    curve = store.curve(dirs["results"] / "smoke" / run_id)
    assert list(curve["epoch"]) == [1, 2, 3, 4]


def test_an_added_evaluation_keeps_the_training_provenance(mini, tmp_path):
    registry, _ = mini
    from experiments.dispatch.jobs import RunJob
    resolved = load_registry(registry).resolve("baseline", "smoke")
    raw = resolved.config.to_dict()
    raw["train"]["epochs"] = 1
    run_id = run_id_of(RunConfig.from_dict(raw))          # the id of the config it trains
    job = lambda *evaluations: RunJob(run_id, "smoke", 0, ("baseline",), raw, evaluations,  # noqa: E731
                                      str(tmp_path / "results"), str(tmp_path / "work"))
    out = store.run_dir(tmp_path / "results", "smoke", run_id)
    job(("dad3dheads", "val"))()
    store.update_meta(out, code_version="trained-by-old-code")    # as if trained at an older commit
    trained = store.read_meta(out)
    job(("dad3dheads", "val"), ("dad3dheads", "test"))()           # Table 1 reuses the run on the test split
    after = store.read_meta(out)
    assert after["status"] == "done"
    assert {k: after[k] for k in ("code_version", "started", "finished", "date")} == \
           {k: trained[k] for k in ("code_version", "started", "finished", "date")}
    rows = store.collect(tmp_path / "results", "smoke").set_index("split")
    assert rows.loc["test", "eval_code_version"] == store.code_version()
    assert rows.loc["val", "eval_code_version"] == store.code_version()   # written by the training job itself
    assert rows.loc["test", "code_version"] == "trained-by-old-code"


def test_a_finished_run_gets_its_efficiency_measured_without_retraining(mini, capsys):
    registry, dirs = mini
    run.main(_argv("mini", registry, dirs, "--executor", "debug", "--only", "baseline"))   # free when done
    path = store.run_dir(dirs["results"], "smoke", load_registry(registry).resolve("baseline", "smoke").run_id)
    trained = store.read_meta(path)
    capsys.readouterr()
    assert run.main(_argv("mini_fps", registry, dirs, "--dry-run")) == 0
    assert f"[run ] {path.name}" in capsys.readouterr().out          # it lacks only the measurement
    assert run.main(_argv("mini_fps", registry, dirs, "--executor", "debug")) == 0
    capsys.readouterr()
    assert store.read_meta(path) == trained                           # not retrained, not touched
    assert store.read_efficiency(path)["params"] > 0
    md = (dirs["reports"] / "smoke" / "mini_fps.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| baseline |"))
    assert row.endswith("| done |") and "| — | — | — | — | — | — |" not in row
    assert run.main(_argv("mini_fps", registry, dirs, "--dry-run")) == 0
    assert f"[done] {path.name}" in capsys.readouterr().out


def test_help_descriptions_keep_the_docstrings_whole_first_paragraph():
    from trans3dhead.cli import summary
    assert summary("One sentence that\n    wraps here.\n\nDetails.") == "One sentence that wraps here."
    assert summary(None) == ""


# ---- issue 28: first use -------------------------------------------------------------------------

def test_dry_run_names_the_seeds_the_report_shows_and_prints_no_python_tuples(tmp_path, capsys):
    registry = load_registry()
    for seed in (1, 2):
        run_id = registry.resolve("dad3dnet", "smoke", seed).run_id
        store.write_meta(store.run_dir(tmp_path / "results", "smoke", run_id),
                         {"run_id": run_id, "variants": ["dad3dnet"], "seed": seed, "status": "done"})
    assert run.main(["table3", "--profile", "smoke", "--dry-run", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "--seeds 1: seed 0; the report shows every stored seed (1, 2): --seeds 3 plans them all" in out
    assert "evaluated on dad3dheads/val" in out and "('" not in out


def test_bench_qamem_on_cpu_prints_no_cuda_error(capfd):
    import torch

    from experiments.bench.qamem import main
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the CPU profiler's message does not arise")
    assert main(["--queries", "4", "--grid", "2", "--d-model", "8", "--heads", "2", "--batch", "1",
                 "--repeats", "1", "--device", "cpu"]) == 0
    out, err = capfd.readouterr()
    assert "peak" in out and "gpuGetDeviceCount" not in out + err and "ERROR" not in err
