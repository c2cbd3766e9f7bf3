"""``--set SECTION.KEY=VALUE``: typed like the registry, refused for ablation switches, part of the run id,
shared by ``experiments.run`` and the convergence bench."""
import pytest

from experiments import run
from experiments.bench import convergence
from experiments.overrides import describe, parse_override, parse_overrides, parse_sweep, yaml_value
from experiments.registry import ABLATION_SWITCHES, RegistryError, load_registry

REGISTRY = load_registry()


def _run(argv, tmp_path):
    return run.main([*argv, "--results", str(tmp_path / "r"), "--jobs", str(tmp_path / "j"),
                     "--reports", str(tmp_path / "reports")])


def _planned_ids(out: str) -> set[str]:
    return {line.split()[2] for line in out.splitlines() if line.strip().startswith("[run ]")}


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("-2.5E+2", -250.0), ("true", True), ("16", 16),
                                         ("[a, b]", ["a", "b"]), ("cosine", "cosine"), ("'1e-3'", "1e-3"),
                                         ("off", "off"), ("on", "on"), ("no", "no"), ("False", False)])
def test_values_are_yaml_with_exponent_numbers(text, value):
    assert yaml_value(text) == value


def test_an_override_changes_the_config_and_so_the_run_id():
    plain = REGISTRY.resolve("trans3dhead", "smoke")
    changed = REGISTRY.resolve("trans3dhead", "smoke", overrides=parse_overrides(["model.d_model=16", "train.lr=1e-3"]))
    assert changed.config.model.d_model == 16 and changed.config.train.lr == 0.001
    assert changed.run_id != plain.run_id
    assert REGISTRY.resolve("trans3dhead", "smoke", overrides=()).run_id == plain.run_id


def test_dry_run_with_set_plans_other_run_ids(tmp_path, capsys):
    assert _run(["table3", "--profile", "smoke", "--dry-run"], tmp_path) == 0
    plain = _planned_ids(capsys.readouterr().out)
    assert _run(["table3", "--profile", "smoke", "--set", "model.d_model=16", "--dry-run"], tmp_path) == 0
    out = capsys.readouterr().out
    assert "--set model.d_model=16" in out
    overridden = _planned_ids(out)
    assert len(plain) == len(overridden) == len(REGISTRY.plan("table3", "smoke")) and not plain & overridden
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["table3", "--set", "model.d_modle=16"], "unknown key 'model.d_modle'; did you mean 'model.d_model'?"),
    (["table3", "--set", "modle.d_model=16"], "unknown section 'modle'; did you mean 'model'?"),
    (["table3", "--set", "model.qamem=both"], "'model.qamem' is an ablation switch"),
    (["table3", "--set", "loss.euler=0.1"], "'loss.euler' is an ablation switch"),
    (["table3", "--set", "train.seed=3"], "use --seeds instead"),
    (["table3", "--set", "train.epochs"], "use SECTION.KEY=VALUE"),
    (["table3", "--set", "train.epochs=2", "--set", "train.epochs=3"], "given twice"),
    (["table3", "--set", "train.epochs=abc"], "train.epochs: expected an integer, got 'abc'"),
    (["table3", "--set", "train.compile=yes"], "train.compile: expected true/false, got 'yes'"),
    (["status", "table3", "--set", "model.d_modle=16"], "did you mean 'model.d_model'?"),
    (["report", "table3", "--set", "model.mqinit=none"], "is an ablation switch"),
])
def test_bad_overrides_exit_2_with_the_reason(argv, message, tmp_path, capsys):
    assert _run([*argv, "--profile", "smoke", "--dry-run"], tmp_path) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "reports").exists()


def test_every_ablation_switch_is_refused():
    for section, keys in ABLATION_SWITCHES.items():
        for key in keys:
            with pytest.raises(RegistryError, match="ablation switch"):
                parse_override(f"{section}.{key}=1")


def test_status_plans_with_the_overrides(tmp_path, capsys):
    assert _run(["status", "table3", "--profile", "smoke", "--set", "model.d_model=16"], tmp_path) == 0
    out = capsys.readouterr().out
    wanted = REGISTRY.resolve("trans3dhead", "smoke", overrides=parse_overrides(["model.d_model=16"])).run_id
    assert wanted in out and REGISTRY.resolve("trans3dhead", "smoke").run_id not in out


def test_the_convergence_bench_shares_the_parser():
    axis, overrides = parse_sweep("train.epochs=8,16")
    assert axis == "train.epochs" and [o.value for o in overrides] == [8, 16]
    assert [o.value for o in parse_sweep("train.lr=1e-3,2e-3")[1]] == [0.001, 0.002]
    assert describe(tuple(overrides)) == "--set train.epochs=8 --set train.epochs=16"
    with pytest.raises(SystemExit) as exit_info:
        convergence.main(["--set", "model.qamem=both,none"])
    assert exit_info.value.code == 2


def test_amp_off_as_the_docs_spell_it_on_the_command_line_and_in_a_registry_file(tmp_path):
    """YAML 1.1 read `off` as False ("train.amp: expected a string, got False"); the registry's loader and
    --set read YAML 1.2's booleans (true/false), so `off` is the string train.amp expects."""
    import shutil

    from experiments.registry import REGISTRY_DIR

    resolved = REGISTRY.resolve("trans3dhead", "smoke", overrides=parse_overrides(["train.amp=off"]))
    assert resolved.config.train.amp == "off"
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, registry)
    profiles = registry / "profiles.yaml"
    profiles.write_text(profiles.read_text() + "\nunquoted:\n  base: smoke\n  train:\n    amp: off\n")
    assert load_registry(registry).resolve("trans3dhead", "unquoted").config.train.amp == "off"
