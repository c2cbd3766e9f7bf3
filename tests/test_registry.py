"""Registry resolution and the bad-input table: each malformed input gives its clear message and exit
code 2, and nothing is submitted."""
import shutil
from pathlib import Path

import pytest
import yaml

from experiments import run
from experiments.registry import REGISTRY_DIR, load_registry

REGISTRY = load_registry()


def test_every_variant_resolves_under_every_profile():
    for variant in REGISTRY.variants:
        for profile in REGISTRY.profiles:
            resolved = REGISTRY.resolve(variant, profile)
            assert len(resolved.run_id) == 10


def test_identical_configs_share_one_run():
    plan = REGISTRY.plan("table3", "smoke")
    by_variant = {v: r.run_id for r in plan for v in r.variants}
    assert len(plan) == 13                       # 14 rows, "+QA" and "E/D 0/2" are the same run
    assert REGISTRY.resolve("qa", "smoke").run_id == by_variant["qa"]
    assert REGISTRY.resolve("qa", "smoke", seed=1).run_id != by_variant["qa"]
    everything = REGISTRY.plan("all", "smoke")
    assert len({r.run_id for r in everything}) == len(everything)


def test_variants_state_only_their_difference():
    assert REGISTRY.variant_dict("euler_qa") == {"model": {"qamem": "landmark", "mean_face": "none"},
                                                 "loss": {"euler": 0.05}}
    assert REGISTRY.resolve("dad3dnet", "paper").config.loss.heatmap == 1.0


def test_a_profile_states_only_what_differs_from_its_base(tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, registry)
    _edit(registry, "profiles.yaml", lambda d: _set(d, ["cpu_short"], {"base": "cpu", "train": {"epochs": 2}}))
    profiles = load_registry(registry)
    short, cpu = (profiles.resolve("trans3dhead", p).config.to_dict() for p in ("cpu_short", "cpu"))
    assert short["train"]["epochs"] == 2 and cpu["train"]["epochs"] != 2
    short["train"]["epochs"] = cpu["train"]["epochs"]
    assert short == cpu
    assert profiles.profiles["cpu_short"]["benchmark_note"] == profiles.profiles["cpu"]["benchmark_note"]
    assert profiles.profiles["cpu_short"]["description"] == ""


def _edit(path: Path, name: str, change) -> None:
    data = yaml.safe_load((path / name).read_text())
    change(data)
    (path / name).write_text(yaml.safe_dump(data))


def _set(data, keys, value):
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


CASES = [
    ("variant typo", "variants.yaml", lambda d: _set(d, ["qa", "model", "qamen"], "landmark"), [], "qa: unknown key 'model.qamen'; did you mean 'model.qamem'"),
    ("variant group typo", "variants.yaml", lambda d: _set(d, ["qa", "modle"], {}), [], "qa: unknown key 'modle'; did you mean 'model'"),
    ("wrong type", "variants.yaml", lambda d: _set(d, ["qa", "model", "decoder_layers"], "two"), [], "expected an integer"),
    ("bad choice", "variants.yaml", lambda d: _set(d, ["qa", "model", "qamem"], "all"), [], "model.qamem='all'"),
    ("bad n_params", "variants.yaml", lambda d: _set(d, ["qa", "model", "n_params"], 100), [], "model.n_params=100"),
    ("unknown base", "variants.yaml", lambda d: _set(d, ["qa", "base"], "basline"), [], "did you mean 'baseline'"),
    ("base cycle", "variants.yaml", lambda d: _set(d, ["trans3dhead", "base"], "qa"), [], "cycle"),
    ("row without variant", "tables.yaml",
     lambda d: _set(d["table3"]["sections"][0]["rows"][1], ["variant"], "basline"), [], "does not define"),
    ("unknown metric", "tables.yaml", lambda d: _set(d, ["table3", "metrics"], ["nme", "nmee"]), [], "unknown metric 'nmee'"),
    ("step label", "tables.yaml", lambda d: _set(d["table3"]["steps"][0], ["from"], "Baseline"), [], "not a row label"),
    ("row seeds not a count", "tables.yaml", lambda d: _set(d["table3"]["sections"][0]["rows"][1], ["seeds"], "six"), [],
     "row 'baseline' seeds 'six' must be a whole number >= 2"),
    ("row seeds of one", "tables.yaml", lambda d: _set(d["table3"]["sections"][0]["rows"][1], ["seeds"], 1), [],
     "row 'baseline' seeds 1 must be a whole number >= 2"),
    ("row seeds on a paper-only row", "tables.yaml", lambda d: _set(d["table1"]["sections"][0]["rows"][0], ["seeds"], 5),
     [], "row 'RingNet' has seeds but no variant"),
    ("profile changes a switch", "profiles.yaml", lambda d: _set(d, ["smoke", "model", "qamem"], "both"), [],
     "may not change the ablation switch 'model.qamem'"),
    ("profile changes a loss weight", "profiles.yaml", lambda d: _set(d, ["smoke", "loss"], {"euler": 0.0}), [],
     "may not change the ablation switch 'loss.euler'"),
    ("profile typo", "profiles.yaml", lambda d: _set(d, ["smoke", "trian"], {}), [], "did you mean 'train'"),
    ("profile unknown base", "profiles.yaml", lambda d: _set(d, ["smoke", "base"], "cpuu"), [], "unknown profile 'cpuu'; did you mean 'cpu'"),
    ("profile base cycle", "profiles.yaml", lambda d: (_set(d, ["smoke", "base"], "cpu"), _set(d, ["cpu", "base"], "smoke")),
     [], "profiles.yaml: 'base' cycle through"),
    ("unknown table", None, None, ["tabel3"], "did you mean 'table3'"),
    ("unknown profile", None, None, ["table3", "--profile", "smok"], "did you mean 'smoke'"),
    ("zero seeds", None, None, ["table3", "--profile", "smoke", "--seeds", "0"], "use 1 or more"),
    ("slurm without cluster", None, None, ["table3", "--profile", "smoke", "--executor", "slurm"], "needs --cluster"),
    ("cluster without slurm", None, None, ["table3", "--profile", "smoke", "--cluster", "x.yaml"], "only applies"),
    ("--only typo", None, None, ["table3", "--profile", "smoke", "--only", "trans3dhead,dad3dnt"],
     "--only dad3dnt: not a variant of table3; did you mean 'dad3dnet'"),
    ("stray argument", None, None, ["table3", "table4", "--profile", "smoke"], "unexpected argument"),
]


@pytest.mark.parametrize("name, file, change, argv, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(name, file, change, argv, message, tmp_path, capsys):
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, registry)
    if file:
        _edit(registry, file, change)
    argv = argv or ["table3", "--profile", "smoke"]
    code = run.main([*argv, "--registry", str(registry), "--results", str(tmp_path / "results"),
                     "--work", str(tmp_path / "work"), "--jobs", str(tmp_path / "jobs")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "jobs").exists()


def test_invalid_yaml_and_cluster_typo(tmp_path, capsys):
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, registry)
    (registry / "clusters" / "bad.yaml").write_text("partiton: gpu\n")
    code = run.main(["table3", "--profile", "smoke", "--executor", "slurm", "--cluster", str(registry / "clusters" / "bad.yaml"),
                     "--registry", str(registry), "--dry-run"])
    assert code == 2 and "did you mean 'partition'" in capsys.readouterr().err
    (registry / "variants.yaml").write_text("qa: {base: [unclosed\n")
    assert run.main(["table3", "--registry", str(registry)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_submits_nothing(tmp_path, capsys):
    code = run.main(["table3", "--profile", "smoke", "--dry-run", "--results", str(tmp_path / "r"),
                     "--jobs", str(tmp_path / "j")])
    out = capsys.readouterr().out
    assert code == 0 and "13 runs, 0 reused, 13 to run" in out and "training images" in out
    assert not (tmp_path / "r").exists() and not (tmp_path / "j").exists()


def test_only_restricts_the_plan_to_the_named_rows(tmp_path, capsys):
    code = run.main(["table3", "--profile", "smoke", "--seeds", "2", "--only", "trans3dhead, dad3dnet", "--dry-run",
                     "--results", str(tmp_path / "r"), "--jobs", str(tmp_path / "j")])
    out = capsys.readouterr().out
    assert code == 0 and "10 runs, 0 reused, 10 to run" in out    # Trans3DHead's row asks for 8 seeds in Table 3
    planned = {(line.split()[5], int(line.split()[4])) for line in out.splitlines() if line.strip().startswith("[run ]")}
    assert planned == {("dad3dnet", 0), ("dad3dnet", 1), *(("trans3dhead", s) for s in range(8))}


def test_a_row_that_asks_for_more_seeds_gets_them_only_in_a_seed_study():
    """tables.yaml's row ``seeds``: the row's fewest seeds whenever its table is planned for several; a quick
    look (one seed) stays one seed, and more seeds than the row asks for reach every row."""
    targets = {row.variant: row.seeds for row in REGISTRY.table("table3").rows if row.seeds}
    assert targets == {"euler_qa": 8, "trans3dhead": 8}     # the MARR claim's two rows (tables.yaml says why)

    def seeds_of(table, seeds):
        plan = REGISTRY.plan(table, "smoke", seeds)
        return {v: sorted(r.seed for r in plan if v in r.variants) for v in ("euler_qa", "trans3dhead", "qa", "dad3dnet")}

    assert seeds_of("table3", 1) == {v: [0] for v in ("euler_qa", "trans3dhead", "qa", "dad3dnet")}
    assert seeds_of("table3", 3) == {"euler_qa": list(range(8)), "trans3dhead": list(range(8)), "qa": [0, 1, 2],
                                     "dad3dnet": [0, 1, 2]}
    assert seeds_of("table3", 9) == {v: list(range(9)) for v in ("euler_qa", "trans3dhead", "qa", "dad3dnet")}
    table1 = {r.seed for r in REGISTRY.plan("table1", "smoke", 3) if "trans3dhead" in r.variants}
    assert table1 == {0, 1, 2}                                # Table 1's row asks nothing more
    test_evaluated = {r.seed for r in REGISTRY.plan("all", "smoke", 3)
                      if "trans3dhead" in r.variants and ("dad3dheads", "test") in r.evaluations}
    assert test_evaluated == {0, 1, 2}                        # the extra seeds are evaluated where asked: val only


def test_dry_run_estimate_times_each_model_size_here(tmp_path, capsys):
    code = run.main(["table3", "--profile", "smoke", "--dry-run", "--estimate", "--only", "trans3dhead,dad3dnet",
                     "--results", str(tmp_path / "r"), "--jobs", str(tmp_path / "j")])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("estimate on this machine"))
    assert code == 0 and "trans3dhead" in line and "dad3dnet" in line and "ms/step" in line
    assert "retraining all 2 runs takes about" in line and "the 2 still to run" in line
    assert not (tmp_path / "r").exists()
    assert run.main(["table3", "--profile", "smoke", "--estimate"]) == 2       # --estimate alone submits nothing


def test_dry_run_charges_runs_at_the_pace_of_this_hosts_finished_runs(tmp_path, capsys):
    import platform

    from experiments import store
    from experiments.dispatch import estimate

    pace = {"trans3dhead": 0.5, "dad3dnet": 1.5}           # seconds per step, whole runs
    for host in (platform.node(), "another-host"):
        for variant, seconds in pace.items():
            config = REGISTRY.resolve(variant, "smoke").config
            path = tmp_path / "r" / "elsewhere" / f"{host}-{variant}"    # any profile paces the same models
            path.mkdir(parents=True)
            store.write_config(path, config.to_dict())
            wall = seconds * estimate.training_steps(config) * (1 if host == platform.node() else 100)
            store.write_meta(path, {"status": "done", "host": host, "train_wall_s": wall, "variants": [variant]})
    argv = ["table3", "--profile", "smoke", "--dry-run", "--max-parallel", "1", "--results", str(tmp_path / "r"),
            "--jobs", str(tmp_path / "j"), "--work", str(tmp_path / "w")]    # not this checkout's own work/
    assert run.main([*argv, "--only", "trans3dhead,dad3dnet"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("how long"))
    steps = estimate.training_steps(REGISTRY.resolve("trans3dhead", "smoke").config)
    expected = estimate.describe(steps * (pace["trans3dhead"] + pace["dad3dnet"]))     # one at a time
    assert f"about {expected} for the 2 run(s) still to run, 1 at once" in line
    assert f"the 2 finished run(s) of the same models this host ({platform.node()}) trained" in line
    assert run.main([*argv, "--only", "trans3dhead", "--set", "model.d_model=48"]) == 0   # a size never trained here
    assert "add --estimate" in capsys.readouterr().out


def test_dry_run_points_to_the_estimate_and_names_trunks_still_to_pretrain(tmp_path, capsys):
    common = ["table3", "--profile", "smoke", "--dry-run", "--only", "trans3dhead", "--results", str(tmp_path / "r"),
              "--jobs", str(tmp_path / "j"), "--set", "model.trunk_init=synthheads-rotation",
              "--set", f"data.root={tmp_path / 'data'}"]
    assert run.main(common) == 0
    assert "add --estimate" in capsys.readouterr().out
    assert run.main([*common, "--estimate"]) == 0
    trunk_line = next(line for line in capsys.readouterr().out.splitlines() if "plus pretraining" in line)
    assert "1 trunk(s) not cached here" in trunk_line and str(tmp_path / "data" / "trunks") in trunk_line
