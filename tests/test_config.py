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
