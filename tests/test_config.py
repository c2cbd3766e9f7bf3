import pytest

from trans3dhead.config import ConfigError, ModelConfig, RunConfig


def test_round_trip_keeps_every_field():
    cfg = RunConfig.from_dict({"model": {"n_params": 160, "branches": ["3dmm"]}, "train": {"lr": 1}})
    assert cfg.model.n_params == 160
    assert cfg.model.branches == ("3dmm",)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"model": {"qamen": "landmark"}}, "did you mean 'model.qamem'"),
        ({"modle": {}}, "did you mean 'model'"),
        ({"model": {"n_params": 100}}, "model.n_params=100"),
        ({"model": {"qamem": "all"}}, "model.qamem='all'"),
        ({"model": {"decoder_layers": "2"}}, "expected an integer"),
        ({"train": {"lr": "fast"}}, "expected a number"),
        ({"model": {"pretrained": 1}}, "expected true/false"),
        ({"model": {"branches": ["landmark"]}}, "only-3DMM"),
        ({"model": "trans3dhead"}, "model: expected a mapping"),
        ({"model": {"d_model": 30, "nheads": 8}}, "divisible"),
        ({"train": {"lr_drop_epoch": 240, "lr_second_drop_epoch": 200}}, "train.lr_second_drop_epoch=200"),
        ({"train": {"schedule": "cosine", "lr_second_drop_epoch": 300}}, "0 turns it off"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        RunConfig.from_dict(raw)


def test_defaults_are_the_papers_trans3dhead():
    m = ModelConfig()
    assert (m.n_params, m.d_model, m.encoder_layers, m.decoder_layers) == (413, 256, 0, 2)
    assert (m.qamem, m.mqinit, m.mean_face) == ("landmark", "landmark", "fixed")


def _with_extra_model_switch(cfg: RunConfig, extra):
    """``cfg`` under a RunConfig whose ModelConfig has one more field, declared as ``extra``: what adding an
    ablation switch to ``trans3dhead/config.py`` does to an existing run."""
    import dataclasses

    extended_model = dataclasses.make_dataclass("ModelConfig", [("new_switch", str, extra)],
                                                bases=(ModelConfig,), frozen=True)
    extended_run = dataclasses.make_dataclass(
        "RunConfig", [("model", extended_model, dataclasses.field(default_factory=extended_model))],
        bases=(RunConfig,), frozen=True)
    model = extended_model(**{f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(ModelConfig)})
    return extended_run(model=model, loss=cfg.loss, data=cfg.data, train=cfg.train)


def test_adding_a_defaulted_introduced_switch_keeps_every_run_id():
    """docs/architecture.md's "Adding an ablation switch": ``switch(default, introduced=True)`` keeps every run
    id of every table under every profile; a plain ``switch(default)`` would retire them all."""
    from experiments.registry import load_registry, run_id_of
    from trans3dhead.config import switch

    registry = load_registry()
    runs = [run for profile in registry.profiles for run in registry.plan("all", profile, seeds=1)]
    assert len(runs) > 50
    for run in runs:
        kept = _with_extra_model_switch(run.config, switch("identity", introduced=True))
        assert "new_switch" in type(kept).ablation_switches()["model"]
        assert run_id_of(kept) == run.run_id, run.variant
    retired = [run for run in runs if run_id_of(_with_extra_model_switch(run.config, switch("identity"))) != run.run_id]
    assert len(retired) == len(runs)
    # away from its default, the introduced switch is part of the identity: a variant that sets it is a new run
    changed = _with_extra_model_switch(runs[0].config, switch("identity", introduced=True))
    import dataclasses
    changed = dataclasses.replace(changed, model=dataclasses.replace(changed.model, new_switch="other"))
    assert run_id_of(changed) != runs[0].run_id


def test_the_nan_fault_hook_is_no_config_key_yet_every_run_id_and_stored_config_keeps():
    """issue 29.5: ``inject_nan_at_step`` left TrainConfig for $T3H_INJECT_NAN_AT_STEP. The run id still
    hashes its old value (-1), so no run changes id; a config.yaml written before loads; another value is
    refused, naming where the hook went."""
    from experiments.registry import run_id_of

    cfg = RunConfig()
    assert not hasattr(cfg.train, "inject_nan_at_step")
    assert run_id_of(cfg) == "0121a0eb2f"        # the default config's id when the field was still in it (9cec8ff)
    older = cfg.to_dict()
    older["train"]["inject_nan_at_step"] = -1
    assert RunConfig.from_dict(older) == cfg
    older["train"]["inject_nan_at_step"] = 3
    with pytest.raises(ConfigError, match="train.inject_nan_at_step is no longer a config key.*T3H_INJECT_NAN_AT_STEP"):
        RunConfig.from_dict(older)


@pytest.mark.parametrize("value, run, expected", [("", "r1", None), ("3", "r1", 3), ("0@r1", "r1", 0),
                                                  ("0@r1", "r2", None)])
def test_the_nan_fault_hook_reads_its_environment_variable(monkeypatch, value, run, expected):
    from trans3dhead.engine.steplog import INJECT_NAN_ENV, nan_injection_step

    monkeypatch.setenv(INJECT_NAN_ENV, value)
    assert nan_injection_step(run) == expected
    monkeypatch.setenv(INJECT_NAN_ENV, "soon")
    with pytest.raises(ValueError, match="T3H_INJECT_NAN_AT_STEP='soon': give STEP or STEP@RUN"):
        nan_injection_step(run)
