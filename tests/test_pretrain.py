"""The pretrained trunk (issue 14): cached once per config, from images no benchmark split has, loaded
into the model's trunk, and invisible to the run ids of runs that do not use it."""
import dataclasses

import pytest
import torch

from experiments.registry import load_registry
from trans3dhead.config import RunConfig
from trans3dhead.data.embedded import synth_dir
from trans3dhead.engine import pretrain, train
from trans3dhead.engine.checkpoint import load_checkpoint


@pytest.fixture
def tiny_pretraining(monkeypatch):
    for key, value in {"images": 8, "steps": 3, "batch_size": 4}.items():
        monkeypatch.setitem(pretrain.PRETRAIN, key, value)


def _cfg(root, **model):
    return RunConfig.from_dict({
        "model": {"backbone": "resnet18", "backbone_stride": 8, "d_model": 16, "nheads": 2, "dim_feedforward": 16,
                  "trunk_init": "synthheads-rotation", **model},
        "data": {"root": str(root), "image_size": 32, "render_size": 48, "n_train": 8, "n_val": 4, "n_test": 1,
                 "n_aflw": 1},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "schedule": "cosine", "device": "cpu"}})


def test_rotation_labels_say_how_the_crop_was_turned():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    turned, labels = pretrain.rotated_batch(images, torch.Generator().manual_seed(0))
    for image, back, k in zip(images, turned, labels):
        assert torch.equal(torch.rot90(back, -int(k), dims=(1, 2)), image)


def test_trunk_is_cached_once_and_loaded_into_the_models_trunk(tmp_path, monkeypatch, flame_dir):
    from trans3dhead.models import build_model
    from trans3dhead.models.backbone import trunk_body
    calls = []

    def fake_pretraining(model_cfg, data_cfg, **kwargs):
        calls.append(1)
        body, _ = trunk_body(model_cfg.backbone, pretrain.trunk_stride(model_cfg), pretrained=False)
        return {"state_dict": body.state_dict(), "params": pretrain.trunk_params(model_cfg, data_cfg),
                "accuracy": 0.5, "wall_s": 0.0}
    monkeypatch.setattr(pretrain, "pretrain_trunk", fake_pretraining)
    for arch in ("trans3dhead", "dad3dnet"):
        cfg = _cfg(tmp_path, arch=arch)
        path = pretrain.ensure_trunk(cfg.model, cfg.data)
        assert pretrain.ensure_trunk(cfg.model, cfg.data) == path
        state = pretrain.load_trunk(path)["state_dict"]
        model = build_model(cfg.model, flame_dir, torch.full((68, 2), 0.5), trunk_state=state)
        for name, value in model.trunk.state_dict().items():
            assert torch.equal(value, state[name]), (arch, name)
    assert calls == [1, 1]


@pytest.mark.slow
def test_trunk_is_pretrained_once_on_disjoint_images_and_loaded_into_the_run(tmp_path, tiny_pretraining, monkeypatch):
    cfg = _cfg(tmp_path)
    assert synth_dir(pretrain.pretraining_data(cfg.data)) != synth_dir(cfg.data)
    calls = []
    real = pretrain.pretrain_trunk
    monkeypatch.setattr(pretrain, "pretrain_trunk", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = pretrain.ensure_trunk(cfg.model, cfg.data)
    assert pretrain.ensure_trunk(cfg.model, cfg.data) == path and calls == [1]
    cached = pretrain.load_trunk(path)
    assert 0.0 <= cached["accuracy"] <= 1.0 and cached["params"]["stride"] == 8

    summary = train(cfg, tmp_path / "run", show_progress=False, stop_after_epochs=1)
    assert summary["trunk"]["path"] == str(path) and calls == [1]
    # The run starts from the cached trunk: after 2 small steps its first conv is still close to it.
    start = cached["state_dict"]["0.0.weight"]
    trained = load_checkpoint(summary["checkpoint"])["model"]["backbone.body.0.0.weight"]
    assert trained.shape == start.shape and (trained - start).abs().max() < 0.1


def test_dad3dnet_pretrains_its_whole_resnet_and_keys_differ_by_trunk(tmp_path):
    t3 = _cfg(tmp_path)
    dad = _cfg(tmp_path, arch="dad3dnet")
    assert pretrain.trunk_stride(dad.model) == 32 and pretrain.trunk_stride(t3.model) == 8
    assert pretrain.trunk_path(t3.model, t3.data) != pretrain.trunk_path(dad.model, dad.data)
    wider = dataclasses.replace(t3.data, image_size=48)
    assert pretrain.trunk_path(t3.model, wider) != pretrain.trunk_path(t3.model, t3.data)


def test_a_new_field_at_its_default_leaves_run_ids_alone():
    registry = load_registry()
    run = registry.resolve("trans3dhead", "smoke")
    assert "trunk_init" not in run.config.identity()["model"]
    changed = dataclasses.replace(run.config, model=dataclasses.replace(run.config.model, trunk_init="synthheads-rotation"))
    from experiments.registry import run_id_of
    assert run_id_of(changed) != run.run_id and "trunk_init" in changed.identity()["model"]
