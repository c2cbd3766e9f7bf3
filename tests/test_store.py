"""Result store: atomic writes, concurrent writers, corrupt files reported and ignored."""
import json
import multiprocessing as mp
import warnings

import numpy as np
import pandas as pd
import pytest

from experiments import store


def _write(path, run_id, metrics, seed=0, status="done", n=20, offset=0.0):
    out = path / run_id
    store.write_meta(out, {"variants": ["v"], "seed": seed, "status": status, "benchmark": "synthheads",
                           "code_version": "abc", "device": "cpu", "date": "2026-11-24", "error": ""})
    per = pd.DataFrame({"item_id": [f"i{k}" for k in range(n)], **{m: np.full(n, v) + offset for m, v in metrics.items()}})
    store.write_evaluation(out, "dad3dheads", "val", {m: float(per[m].mean()) for m in metrics}, per, None, {})
    return out


def _hammer(root, worker):
    for i in range(30):
        _write(root, "shared", {"nme": float(worker * 100 + i)})


def test_collect_reads_what_was_written(tmp_path):
    _write(tmp_path / "cpu", "r1", {"nme": 1.5, "z5": 0.9})
    frame = store.collect(tmp_path, "cpu")
    assert frame.loc[0, "nme"] == 1.5 and frame.loc[0, "z5"] == pytest.approx(0.9) and frame.loc[0, "status"] == "done"
    assert list(store.per_sample(tmp_path / "cpu" / "r1", "dad3dheads", "val")["nme"]) == [1.5] * 20


def test_two_concurrent_writers_corrupt_nothing(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(tmp_path / "cpu", w)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # any corrupt-file warning fails the test
        frame = store.collect(tmp_path, "cpu")
    assert frame.loc[0, "nme"] in {129.0, 229.0}
    per = store.per_sample(tmp_path / "cpu" / "shared", "dad3dheads", "val")
    assert len(per) == 20 and per["nme"].nunique() == 1
    assert not list((tmp_path / "cpu" / "shared").glob(".*tmp*"))


def test_corrupt_and_partial_results_are_reported_and_ignored(tmp_path):
    _write(tmp_path / "cpu", "good", {"nme": 1.0})
    bad = _write(tmp_path / "cpu", "bad", {"nme": 2.0})
    (bad / "eval-dad3dheads-val.json").write_text('{"dataset": "dad3dheads", "aggr')
    (tmp_path / "cpu" / "nometa").mkdir()
    with pytest.warns(store.CorruptResultWarning) as caught:
        frame = store.collect(tmp_path, "cpu")
    messages = " ".join(str(w.message) for w in caught)
    assert "eval-dad3dheads-val.json is corrupt" in messages and "nometa" in messages
    assert frame[frame["run_id"] == "good"]["nme"].item() == 1.0
    assert "bad" not in set(frame["run_id"].dropna()) or frame[frame["run_id"] == "bad"]["nme"].isna().all()


def test_atomic_json_leaves_the_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "x.json"
    store.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        store.atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}


def test_a_run_that_must_report_efficiency_is_unfinished_without_it(tmp_path):
    out = _write(tmp_path / "cpu", "r1", {"nme": 1.5})
    evaluations = (("dad3dheads", "val"),)
    assert store.run_problems(out, evaluations) == []
    assert store.run_problems(out, evaluations, measure_efficiency=True) == [store.NO_EFFICIENCY]
    assert store.training_problems(out, evaluations) == []          # training and evaluations are finished
    store.write_efficiency(out, {"params": 10, "fps_b1": 5.0}, device="cpu")
    assert store.run_problems(out, evaluations, measure_efficiency=True) == []
    assert store.collect(tmp_path, "cpu").loc[0, "params"] == 10     # on each of the run's evaluation rows
    (out / store.EFFICIENCY_FILE).write_text('{"efficiency": {"params": "ten"}}')
    with pytest.warns(store.CorruptResultWarning, match="efficiency.json"):
        problems = store.run_problems(out, evaluations, measure_efficiency=True)
    assert problems == [f"{out / store.EFFICIENCY_FILE} is corrupt"]
    assert store.training_problems(out, evaluations) == []          # a corrupt measurement retrains nothing
    alone = tmp_path / "cpu" / "measured-before-training"
    alone.mkdir()
    (alone / store.EFFICIENCY_FILE).write_text("{")
    assert store.training_problems(alone, evaluations) == ["not run yet"]


def test_efficiency_timed_inside_an_older_evaluation_is_measured_again(tmp_path):
    out = _write(tmp_path / "cpu", "old", {"nme": 1.5})
    data = json.loads((out / "eval-dad3dheads-val.json").read_text())
    (out / "eval-dad3dheads-val.json").write_text(json.dumps({**data, "efficiency": {"params": 7, "fps_b1": 1.9}}))
    assert store.read_efficiency(out) is None
    assert store.run_problems(out, (("dad3dheads", "val"),), measure_efficiency=True) == [store.NO_EFFICIENCY]
    assert store.collect(tmp_path, "cpu").loc[0, ["params", "fps_b1"]].isna().all()


# ---- issue 28: what the store reads is checked against what it expects ----------------------------

def test_collect_never_shows_a_folder_whose_meta_names_another_run(tmp_path):
    out = _write(tmp_path / "cpu", "aaaaaaaaaa", {"nme": 1.5})
    store.update_meta(out, run_id="bbbbbbbbbb")
    with pytest.warns(store.CorruptResultWarning, match="belongs to run 'bbbbbbbbbb'"):
        frame = store.collect(tmp_path, "cpu")
    assert frame.empty
    assert store.training_problems(out, [("dad3dheads", "val")]) and store.clear_foreign(out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("aggregate, rows, message", [
    ({"nme": 1.5, "n_items": 20}, 19, "has 19 row(s) but"),
    ({"nme": -0.1}, 20, "'nme' is -0.1"),
    ({"nme": 1.0, "z5": 1.2}, 20, "'z5' is 1.2"),
    ({"nme": 1.0, "pose_error": -1.0}, 20, "'pose_error' is -1.0"),
    ({"nme": float("nan")}, 20, "'nme' is nan"),
    ({"n_items": 20}, 20, "holds none of the metrics"),
])
def test_an_impossible_or_partial_evaluation_is_a_problem_and_not_collected(tmp_path, aggregate, rows, message):
    out = tmp_path / "cpu" / "r1"
    store.write_meta(out, {"variants": ["v"], "seed": 0, "status": "done"})
    per = pd.DataFrame({"item_id": [f"i{k}" for k in range(rows)], "nme": np.ones(rows)})
    store.write_evaluation(out, "dad3dheads", "val", aggregate, per, None, {})
    assert message in store.evaluation_problem(out, "dad3dheads", "val")
    with pytest.warns(store.CorruptResultWarning):
        frame = store.collect(tmp_path, "cpu")
    assert frame["nme"].isna().all()


def test_every_committed_result_still_validates():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "results"
    checked = 0
    for path in sorted(p for p in root.glob("*/*") if p.is_dir()):
        evaluations = [tuple(f.stem.split("-", 2)[1:]) for f in path.glob("eval-*.json")]
        assert store.corrupt_files(path, evaluations) == [], path
        # current: its config still resolves to its own run id (a registry or profile change retires runs)
        assert store.identity_problem(path) is None, path
        checked += 1
    if not checked:
        import pytest
        pytest.skip("no committed results: issue 25 retired them; the evidence issue (30) commits the new runs")


def test_a_folder_whose_config_is_another_runs_is_broken_not_collected_and_redone(tmp_path):
    """Issue 28: the run id is recomputed from the stored config.yaml; a folder holding another run's config
    (copied or moved, its meta naming no run id) is broken, left out of the reports and redone."""
    from experiments.dispatch.plan import make_plan
    from experiments.registry import load_registry

    registry = load_registry()
    run = registry.plan("table3", "smoke")[0]
    other = next(r for r in registry.plan("table3", "smoke") if r.run_id != run.run_id)
    out = _write(tmp_path / "smoke", run.run_id, {"nme": 1.5})
    store.write_config(out, run.config.to_dict())
    assert store.identity_problem(out) is None and store.corrupt_files(out, run.evaluations) == []
    store.write_config(out, other.config.to_dict())
    problem = store.identity_problem(out)
    assert f"config of run '{other.run_id}'" in problem and run.run_id in problem
    status = make_plan([run], tmp_path, tmp_path / "work").status[run.run_id]
    assert status.state is store.RunState.BROKEN and status.train and status.redo
    assert store.run_problems(out, run.evaluations) == [problem]
    with pytest.warns(store.CorruptResultWarning, match=f"config of run '{other.run_id}'"):
        assert store.collect(tmp_path, "smoke").empty
    (out / "config.yaml").write_text("model: [unclosed")
    assert "does not resolve to a config" in store.identity_problem(out)
    assert store.clear_foreign(out) and list(out.iterdir()) == []     # its redo starts clean


def test_run_paths_are_the_one_layout_of_a_run(tmp_path):
    paths = store.RunPaths("cpu", "abc", tmp_path / "results", tmp_path / "work", tmp_path / "jobs")
    assert paths.result == store.run_dir(tmp_path / "results", "cpu", "abc") == tmp_path / "results/cpu/abc"
    assert paths.work == tmp_path / "work/cpu/abc" and paths.lock == paths.work / store.LOCK_NAME
    assert paths.jobs == store.jobs_dir(tmp_path / "jobs", "cpu") == tmp_path / "jobs/cpu"
    assert store.RunPaths.of_result(paths.result, tmp_path / "work") == store.RunPaths(
        "cpu", "abc", tmp_path / "results", tmp_path / "work")
