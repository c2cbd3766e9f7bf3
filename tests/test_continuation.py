"""Training a run longer continues its finished shorter run (step schedule), bit for bit as if trained in one go."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from experiments import store
from experiments.dispatch import continuation
from experiments.bench import convergence
from experiments.overrides import parse_override
from experiments.registry import run_id_of
from experiments.run import main as run_main
from trans3dhead.config import RunConfig
from trans3dhead.engine import train
from trans3dhead.engine.checkpoint import load_checkpoint
from trans3dhead.engine.train import CHECKPOINT, CURVE


def _config(root, **train_keys) -> RunConfig:
    return RunConfig.from_dict({
        "model": {"backbone": "resnet18", "backbone_stride": 8, "d_model": 32, "nheads": 4, "dim_feedforward": 32},
        "data": {"root": str(root), "image_size": 64, "render_size": 64, "n_train": 16, "n_val": 8, "n_test": 8,
                 "n_aflw": 4},
        "train": {"epochs": 3, "batch_size": 8, "lr": 1e-3, "schedule": "step", "lr_drop_epoch": 2, "amp": "off",
                  "device": "cpu", **train_keys}})


def test_the_file_names_are_the_trainings():
    paths = store.RunPaths("p", "r", work_root=Path("w"))
    assert (paths.checkpoint, paths.curve) == (Path("w/p/r") / CHECKPOINT, Path("w/p/r") / CURVE)


def test_a_continued_step_run_equals_the_longer_run_trained_in_one_go(tmp_path):
    # the longer run also drops the lr a second time where the shorter one ended: a drop it never reached
    longer = _config(tmp_path / "data", lr_drop_epoch=1, lr_second_drop_epoch=2)
    short = train(_config(tmp_path / "data", epochs=2, lr_drop_epoch=1), tmp_path / "short", show_progress=False)
    assert continuation.is_prefix(_config(tmp_path / "data", epochs=2, lr_drop_epoch=1), longer)
    prefix = continuation.Prefix("p", "short", 2, tmp_path / "short")
    continuation.start_from(prefix, tmp_path / "continued")
    continued = train(longer, tmp_path / "continued", show_progress=False)
    whole = train(longer, tmp_path / "whole", show_progress=False)
    assert short["epochs"] == 2 and continued["epochs_trained"] == 1 and whole["epochs_trained"] == 3
    a, b = load_checkpoint(continued["checkpoint"]), load_checkpoint(whole["checkpoint"])
    for name, tensor in b["model"].items():
        assert torch.equal(a["model"][name], tensor), f"continuing changed {name}"
    assert [r["val_nme"] for r in a["curve"]] == [r["val_nme"] for r in b["curve"]]
    assert load_checkpoint(short["checkpoint"])["epoch"] == 2       # the prefix run itself is left as it was


def _store_run(results, work, profile: str, config: RunConfig, status: str = "done", checkpoint: bool = True):
    run_id = run_id_of(config)
    store.write_config(results / profile / run_id, config.to_dict())
    store.write_meta(results / profile / run_id, {"status": status, "epochs": config.train.epochs})
    if checkpoint:
        (work / profile / run_id).mkdir(parents=True)
        for file in store.work_files(work / profile / run_id):
            file.write_text(run_id)
    return run_id


def test_find_prefix_takes_the_longest_finished_step_run_of_the_same_config(tmp_path):
    results, work, data = tmp_path / "results", tmp_path / "work", tmp_path / "data"
    longest = _store_run(results, work, "a", _config(data, epochs=4))
    _store_run(results, work, "b", _config(data, epochs=3))
    _store_run(results, work, "c", _config(data, epochs=5), status="running")   # unfinished
    _store_run(results, work, "d", _config(data, epochs=5, lr=2e-3))                           # another config
    _store_run(results, work, "e", _config(data, epochs=5, sync_every=5), checkpoint=False)   # checkpoint gone
    target = _config(data, epochs=8, sync_every=7).to_dict()     # an execution-only key may differ
    prefix = continuation.find_prefix(target, results, work)
    assert (prefix.profile, prefix.run_id, prefix.epochs) == ("a", longest, 4)
    continuation.start_from(prefix, tmp_path / "new")
    assert (tmp_path / "new" / CHECKPOINT).read_text() == longest
    assert continuation.find_prefix(_config(data, epochs=4).to_dict(), results, work).epochs == 3
    assert continuation.find_prefix(_config(data, epochs=3).to_dict(), results, work) is None


def test_a_shorter_run_is_a_prefix_only_if_it_dropped_the_lr_where_the_longer_one_does(tmp_path):
    data = tmp_path / "data"
    short = _config(data, epochs=4, lr_drop_epoch=2)
    assert continuation.is_prefix(short, _config(data, epochs=8, lr_drop_epoch=2, lr_second_drop_epoch=4))
    assert continuation.is_prefix(short, _config(data, epochs=8, lr_drop_epoch=2, lr_second_drop_epoch=6))
    assert not continuation.is_prefix(short, _config(data, epochs=8, lr_drop_epoch=2, lr_second_drop_epoch=3))
    assert not continuation.is_prefix(short, _config(data, epochs=8, lr_drop_epoch=3))
    assert not continuation.is_prefix(_config(data, epochs=4, lr_drop_epoch=4), _config(data, epochs=8, lr_drop_epoch=3))
    assert continuation.is_prefix(_config(data, epochs=4, lr_drop_epoch=4), _config(data, epochs=8, lr_drop_epoch=6))


def test_a_cosine_run_is_never_continued(tmp_path):
    results, work, data = tmp_path / "results", tmp_path / "work", tmp_path / "data"
    _store_run(results, work, "a", _config(data, epochs=2, schedule="cosine"))
    assert continuation.find_prefix(_config(data, epochs=4, schedule="cosine").to_dict(), results, work) is None


def test_run_with_more_epochs_continues_the_finished_run_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    paths = [x for k in ("results", "reports", "work", "jobs") for x in (f"--{k}", str(tmp_path / k))]
    step = ["--set", "train.schedule=step", "--set", "train.lr_drop_epoch=1"]
    argv = ["table3", "--profile", "smoke", "--only", "dad3dnet", "--executor", "debug", *paths, *step]
    assert run_main(argv) == 0
    assert run_main([*argv, "--set", "train.epochs=3"]) == 0
    runs = {yaml.safe_load((d / "config.yaml").read_text())["train"]["epochs"]: d
            for d in (tmp_path / "results" / "smoke").iterdir()}
    longer = store.read_meta(runs[3])
    assert longer["continued_from"] == {"profile": "smoke", "run_id": runs[2].name, "epochs": 2}
    assert longer["epochs"] == 3 and "continued_from" not in store.read_meta(runs[2])
    short_curve = (runs[2] / "curve.csv").read_text().splitlines()
    assert (runs[3] / "curve.csv").read_text().splitlines()[:3] == short_curve     # header and the 2 epochs
    assert json.loads((runs[3] / "meta.json").read_text())["status"] == "done"

    # the convergence bench measures a longer schedule the same way, from the longest finished run (3 epochs)
    assert convergence.main(["--profile", "smoke", "--variants", "dad3dnet", *step, "--set", "train.epochs=4",
                             "--continue", "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work")]) == 0
    assert "from_epoch=3" in capsys.readouterr().out


def test_dry_run_says_which_run_it_continues_and_charges_only_the_added_epochs(tmp_path, capsys):
    import platform

    from experiments.dispatch import estimate
    from experiments.registry import load_registry

    step = ("train.schedule=step", "train.lr_drop_epoch=1")
    registry = load_registry()
    overrides = tuple(parse_override(o) for o in (*step, "train.epochs=2"))
    short = registry.resolve("trans3dhead", "smoke", 0, overrides).config
    results, work = tmp_path / "results", tmp_path / "work"
    run_id = _store_run(results, work, "short", short)
    seconds_per_step = 100.0
    store.write_meta(results / "short" / run_id, {"status": "done", "epochs": 2, "host": platform.node(),
                                                  "train_wall_s": seconds_per_step * estimate.training_steps(short)})
    argv = ["table3", "--profile", "smoke", "--only", "trans3dhead", "--dry-run", "--max-parallel", "1",
            "--results", str(results), "--work", str(work), "--jobs", str(tmp_path / "jobs"),
            *[x for o in (*step, "train.epochs=6") for x in ("--set", o)]]
    assert run_main(argv) == 0
    out = capsys.readouterr().out
    assert f"continues short/{run_id} from epoch 2" in out
    four_epochs = estimate.describe(seconds_per_step * 2 * estimate.training_steps(short))
    assert f"how long: about {four_epochs} for the 1 run(s)" in out
    assert run_main([*argv, "--force"]) == 0                  # --force retrains from the first step
    out = capsys.readouterr().out
    assert "continues short/" not in out
    assert f"how long: about {estimate.describe(seconds_per_step * 3 * estimate.training_steps(short))} " in out
