"""Reports from a synthetic result store with known numbers: every cell, interval and verdict,
paper-only / missing / running / failed rows, and byte-for-byte regeneration."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from experiments import report, store
from experiments.overrides import parse_overrides
from experiments.registry import REGISTRY_DIR, load_registry
from experiments.report import stats

PROFILE = "smoke"
N_IMAGES = 60
ITEMS = [f"val_{k:03d}" for k in range(N_IMAGES)]
FLAT = [8.0, 4.0, 2.02, 2.01, 2.0]            # moved < 2% over the last 20%: converged
FALLING = [8.0, 6.0, 4.0, 3.0, 2.0]           # still falling: not converged
JUMPY = [8.0, 4.0, 2.03, 2.05, 2.0]            # alone -2.4% (fails); its mean with FLAT moves -1.5% (passes)

# Paper numbers chosen so each step has a known paper direction.
MINI_TABLES = {"mini": {
    "title": "A table with both halves", "kind": "table", "dataset": "dad3dheads", "split": "val",
    "metrics": ["nme", "z5"], "efficiency": True, "figures": ["deltas", "curves"],
    "sections": [
        {"name": "First half", "rows": [
            {"label": "Published", "variant": None, "paper": {"nme": 9.0, "fps": 50}},
            {"label": "base", "variant": "baseline", "paper": {"nme": 2.0, "z5": 0.90}},
            {"label": "+QA", "variant": "qa", "paper": {"nme": 1.8, "z5": 0.91}}]},
        {"name": "Second half", "rows": [
            {"label": "+Euler", "variant": "euler_qa", "paper": {"nme": 1.7, "z5": 0.92}},
            {"label": "full", "variant": "trans3dhead", "paper": {"nme": 1.6, "z5": 0.93}},
            {"label": "dad", "variant": "dad3dnet", "paper": {"nme": 2.5, "z5": 0.85}}]}],
    "steps": [
        {"from": "base", "to": "+QA", "metrics": ["nme"], "claim": "QA improves NME"},
        {"from": "+QA", "to": "+Euler", "metrics": ["nme", "z5"], "claim": "Euler improves both"},
        {"from": "+Euler", "to": "full", "metrics": ["nme"], "claim": "MARR improves NME"},
        {"from": "base", "to": "dad", "metrics": ["nme"], "claim": ""}]}}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    for name in ("variants.yaml", "profiles.yaml"):
        shutil.copy(REGISTRY_DIR / name, root / name)
    shutil.copytree(REGISTRY_DIR / "clusters", root / "clusters")
    (root / "tables.yaml").write_text(yaml.safe_dump(MINI_TABLES, sort_keys=False))
    return load_registry(root)


def write_run(results, registry, variant, seed, *, status="done", per_sample=None, efficiency=None, curve=None,
              error="", code_version="abc1234", train_wall_s=100.0, profile=PROFILE):
    path = store.run_dir(results, profile, registry.resolve(variant, profile, seed).run_id)
    store.write_meta(path, {"variants": [variant], "seed": seed, "status": status, "error": error,
                            "benchmark": "synthheads", "code_version": code_version, "device": "cpu", "amp": "bf16",
                            "host": "testbox", "date": "2026-11-24", "train_wall_s": train_wall_s})
    if per_sample is not None:
        frame = pd.DataFrame({"item_id": ITEMS, **per_sample})
        aggregate = {m: float(np.mean(v)) for m, v in per_sample.items()}
        store.write_evaluation(path, "dad3dheads", "val", aggregate, frame, None, {})
    if efficiency is not None:
        store.write_efficiency(path, efficiency, device="cpu")
    if curve is not None:
        steps = 50 * np.arange(1, len(curve) + 1)
        store.atomic_write_bytes(path / "curve.csv", pd.DataFrame(
            {"epoch": range(1, len(curve) + 1), "step": steps, "val_nme": curve}).to_csv(index=False).encode())
    return path


def centred(rng, scale):
    noise = rng.normal(0, scale, N_IMAGES)
    return noise - noise.mean()                # exact mean 0: the aggregates are known by construction


@pytest.fixture()
def known(tmp_path, registry):
    """base and +QA with two seeds; +Euler seed 0 only (seed 1 done but never evaluated); full failed
    (seed 0) and running (seed 1); dad never run."""
    rng = np.random.default_rng(0)
    hardness = centred(rng, 0.3)
    data = {"base": [{"nme": 2.0 + hardness, "z5": 0.90 + centred(rng, 0.001)},
                     {"nme": 2.04 + hardness, "z5": 0.904 + centred(rng, 0.001)}]}
    data["qa"] = [{"nme": d["nme"] - 0.5 + centred(rng, 0.05), "z5": d["z5"]} for d in data["base"]]
    qa_mean = {m: (data["qa"][0][m] + data["qa"][1][m]) / 2 for m in ("nme", "z5")}
    data["euler"] = [{"nme": qa_mean["nme"] + 0.3 + centred(rng, 0.05), "z5": qa_mean["z5"] + centred(rng, 0.01)}]
    results = tmp_path / "results"
    efficiency = {"params": 1_500_000, "flops": 2.5e8, "fps_b1": 100.0, "fps_b32": 300.0,
                  "peak_mem_b1_mb": 1.0, "peak_mem_b32_mb": 20.0}
    write_run(results, registry, "baseline", 0, per_sample=data["base"][0], curve=FLAT, efficiency=efficiency)
    write_run(results, registry, "baseline", 1, per_sample=data["base"][1], curve=FLAT, train_wall_s=120.0,
              code_version="def5678", efficiency={**efficiency, "fps_b1": 120.0})
    write_run(results, registry, "qa", 0, per_sample=data["qa"][0], curve=FLAT)
    write_run(results, registry, "qa", 1, per_sample=data["qa"][1], curve=JUMPY)
    write_run(results, registry, "euler_qa", 0, per_sample=data["euler"][0], curve=FALLING, efficiency=efficiency)
    write_run(results, registry, "euler_qa", 1, curve=FALLING)
    write_run(results, registry, "trans3dhead", 0, status="failed",
              error="NonFiniteLossError: non-finite loss | at step 7\nTraceback ...")
    write_run(results, registry, "trans3dhead", 1, status="running")
    return results, data


def table_rows(md: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell."""
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip()[1:-1].split("|")]
                                              for line in md.splitlines() if line.startswith("| "))}


def test_every_cell_of_a_table_report(known, registry, tmp_path):
    results, data = known
    report.write_reports(registry, PROFILE, ["mini"], results, tmp_path / "reports")
    md = (tmp_path / "reports" / PROFILE / "mini.md").read_text()
    assert "SynthHeads" in md and "NOT DAD-3DHeads numbers" in md
    assert "seeds 0, 1" in md and "abc1234, def5678" in md and "cpu (autocast: bf16)" in md and "2026-11-24" in md
    assert md.index("## First half") < md.index("| base |") < md.index("## Second half") < md.index("| +Euler |")
    rows = table_rows(md)
    header = rows["Method"]
    assert header == ["NME ↓ ours", "NME paper", "Z5 Acc. ↑ ours", "Z5 Acc. paper", "Params (M)", "GFLOPs",
                      "FPS b1", "FPS b32", "Peak mem b1 (MB)", "Peak mem b32 (MB)", "Train wall (s)", "FPS paper",
                      "converged", "status"]
    # Seed noise pooled over base (2.0, 2.04) and +QA (1.5, 1.54): sd = sqrt(2 * 0.0008 / 2) = 0.02828 with
    # 2 df, t(2) = 4.303; two seeds: mean ± 4.303 * 0.02828 / sqrt(2) = ± 0.0861 (Z5: ± 0.00861).
    assert "NME 0.028 (df 2), Z5 Acc. 0.0028 (df 2)" in md
    assert rows["base"] == ["2.020 [1.934, 2.106]", "2.000", "0.9020 [0.8934, 0.9106]", "0.9000",
                            "1.50", "0.250", "110.0", "300.0", "1.0", "20.0", "110", "—", "yes (-0.5%)", "done"]
    assert rows["+QA"][:4] == ["1.520 [1.434, 1.606]", "1.800", "0.9020 [0.8934, 0.9106]", "0.9100"]
    assert rows["+QA"][4:11] == ["—"] * 6 + ["100"]          # no efficiency measured; wall time from meta
    # the row is tested on its seed-mean curve, (2.0 - 2.03) / 2.03; one seed alone would fail
    assert rows["+QA"][-2] == "yes (-1.5%; per seed: 1/2 no)"
    assert "FPS and peak memory measured on the device above with nothing else running" in md
    command = "`python -m experiments.run mini --profile smoke --seeds 2`"
    assert rows["+QA"][-1] == f"seeds 0, 1: efficiency not measured — run {command}"     # one entry for both
    euler = data["euler"][0]["nme"].mean()                 # one seed: ± 4.303 * 0.02828 from the pooled noise
    assert rows["+Euler"][0] == f"{euler:.3f} [{euler - 0.1217:.3f}, {euler + 0.1217:.3f}] (1/2 seeds)"
    assert rows["+Euler"][-2:] == ["no (-33.3%)", f"seed 1: missing (dad3dheads/val not evaluated) — run {command}"]
    assert rows["full"][:4] == ["—", "1.600", "—", "0.9300"]
    assert rows["full"][-1] == ("seed 0: failed: NonFiniteLossError: non-finite loss / at step 7 Traceback ...; "
                                "seed 1: running")
    assert rows["dad"][-1] == f"seeds 0, 1: missing — run {command}"
    assert rows["Published (paper only)"] == ["paper only", "9.000", "paper only", "—"] + ["—"] * 7 + [
        "50", "—", "paper only: not implemented in this suite"]


def test_convergence_cell_reads_the_row_and_counts_the_seeds_that_fail_alone():
    assert report.convergence_text(-0.169, [-0.005, -0.333]) == "no (-16.9%; per seed: 1/2 no)"
    assert report.convergence_text(-0.012, [-0.021, -0.003]) == "yes (-1.2%; per seed: 1/2 no)"
    assert report.convergence_text(0.0, [0.019, -0.02]) == "yes (+0.0%)"
    assert report.convergence_text(-0.333, [-0.333]) == "no (-33.3%)"          # one seed: no count beside it
    assert report.convergence_text(float("nan"), [0.01, float("nan")]) == "no (per seed: 1/2 no)"
    assert report.convergence_text(None, [0.01, None]) == "unknown"
    assert report.convergence_text(None, []) == "—"


def step_rows(md: str) -> dict[tuple[str, str], list[str]]:
    """The ablation steps table by (step, metric): change (paper), ours, seeds × images, Holm p, MDE, seeds
    needed, images needed, P(better), verdict."""
    return {(c[0], c[1]): c[2:] for c in ([x.strip() for x in line.strip()[1:-1].split(" | ")]
                                         for line in md.split("## Ablation steps")[1].splitlines()
                                         if line.startswith("| ") and "→" in line)}


def test_ablation_steps_intervals_and_verdicts(known, registry, tmp_path):
    results, data = known
    report.write_reports(registry, PROFILE, ["mini"], results, tmp_path / "reports")
    md = (tmp_path / "reports" / PROFILE / "mini.md").read_text()
    steps = step_rows(md)
    # Seeds pair by number: base -> +QA on seeds 0 and 1; +QA -> +Euler on seed 0 only (+Euler's seed 1 was
    # never evaluated), images only. Three steps computed: the table's Holm family has three members.
    matrices = {("base → +QA", "NME ↓"): [data["qa"][s]["nme"] - data["base"][s]["nme"] for s in (0, 1)],
                ("+QA → +Euler", "NME ↓"): [data["euler"][0]["nme"] - data["qa"][0]["nme"]],
                ("+QA → +Euler", "Z5 Acc. ↑"): [data["euler"][0]["z5"] - data["qa"][0]["z5"]]}
    answers = {key: stats.crossed_delta(np.array(d)) for key, d in matrices.items()}
    ranked = sorted(answer.p_value() for answer in answers.values())         # Holm: max over j <= k of (m - j) p_(j)
    holm = {p: min(1.0, max((3 - j) * ranked[j] for j in range(k + 1))) for k, p in enumerate(ranked)}
    for key, answer in answers.items():
        paper, ours, design, holm_p, mde = steps[key][:5]
        value, lo, hi = (float(x) for x in ours.replace("[", "").replace("]", "").replace(",", "").split())
        decimals = 1e-3 if key[1] == "NME ↓" else 1e-4
        assert value == pytest.approx(np.mean(matrices[key]), abs=decimals)
        assert (lo, hi) == pytest.approx(answer.interval(), abs=decimals)
        assert design == f"{len(matrices[key])} × {N_IMAGES}"
        assert holm_p == ("< 0.001" if holm[answer.p_value()] < 0.001 else f"{holm[answer.p_value()]:.3f}")
        assert float(mde) == pytest.approx(answer.mde(), abs=decimals)
    # base -> +QA: NME falls by 0.5 on every image, the paper's way; both runs converged: no caveat.
    assert steps[("base → +QA", "NME ↓")][0] == "-0.200" and steps[("base → +QA", "NME ↓")][-1] == "holds"
    # +QA -> +Euler: NME rises by 0.3 where the paper's fell (reversed); Z5 moves by 0.002 while the paper's moved
    # by 0.01: TOST finds our change smaller than the paper's.
    assert steps[("+QA → +Euler", "NME ↓")][-1] == "reversed (one seed: images only; rests on unconverged runs)"
    z5 = answers[("+QA → +Euler", "Z5 Acc. ↑")]
    assert z5.within(0.01) and not z5.within(0.001)
    assert steps[("+QA → +Euler", "Z5 Acc. ↑")][-1] == (
        f"smaller than the paper's change (|change| < 0.0100, TOST; detectable: {z5.mde():.4f}; one seed: images "
        "only; rests on unconverged runs)")
    assert steps[("+QA → +Euler", "Z5 Acc. ↑")][5] == "—"         # one seed: what more seeds would do is unknown
    assert steps[("+Euler → full", "NME ↓")] == ["-0.100", *["—"] * 7, "not computed: no finished runs for full"]
    assert steps[("base → dad", "NME ↓")][-1] == "not computed: no finished runs for dad"
    assert "- base → +QA: QA improves NME" in md
    assert "![ablation deltas](mini-deltas.png)" in md and "![training curves](mini-curves.png)" in md
    for name in ("mini-deltas.png", "mini-curves.png"):
        assert (tmp_path / "reports" / PROFILE / name).stat().st_size > 5000


def test_index_lists_every_report_with_its_runs(known, registry, tmp_path):
    results, _ = known
    report.write_reports(registry, PROFILE, ["mini"], results, tmp_path / "reports")
    index = (tmp_path / "reports" / PROFILE / "README.md").read_text()
    assert "| [mini](mini.md) | A table with both halves | 5 done, 1 failed, 1 running, 3 missing | 0, 1 |" in index
    assert "SynthHeads" in index
    # the five evaluated runs (100 s each, one of 120 s); a done run never evaluated is missing, not counted
    assert index.splitlines()[-1] == ("Training of every finished run above, each counted once: 5 run(s), 0.14 h of "
                                      "training in all (median 1.7 min per run, one run per core or device).")


def test_the_claims_page_says_per_table_how_decisive_its_claims_are():
    from types import SimpleNamespace as NS
    from experiments.report.sections import decisiveness_lines
    claim = lambda verdict, metric="nme", mde=0.1, same_as="": NS(answer=object(), verdict=verdict,  # noqa: E731
                                                                  metric=metric, mde=mde, same_as=same_as)
    table3 = NS(name="table3", steps=[claim("holds"), claim("not distinguishable from noise (detectable: 0.08)", mde=0.08),
                                      claim("not distinguishable from noise", mde=0.12),
                                      claim("not distinguishable from noise", metric="pose_error", mde=0.004),
                                      claim("smaller than the paper's change (|change| < 0.02)"),
                                      NS(answer=None, verdict="not computed", metric="nme", mde=0.0, same_as="")])
    table8 = NS(name="table8", steps=[NS(answer=None, verdict="same runs as table3", metric="nme", mde=0.0,
                                         same_as="table3: a → b")])
    lines = decisiveness_lines([table3, table8])
    table = lines[4].splitlines()
    assert table[2] == "| [table3](table3.md) | 5 | 1 | 0 | 1 | 3 | NME 0.120, Pose Err. 0.004 |"
    assert len(table) == 3                                   # table8's only claim is counted on table3
    assert decisiveness_lines([table8]) == []


def test_the_readme_summary_quotes_the_cost_and_the_tally_of_the_pages():
    from experiments.report import readme
    index = ("# Reports\n\n| report | paper's table or figure | runs | seeds |\n|---|---|---|---|\n"
             "| [table1](table1.md) | x | 2 done | 0 |\n| [table3](table3.md) | y | 1 done, 12 missing | 0 |\n\n"
             "Training of every finished run above, each counted once: 3 run(s), 1.00 h.\n")
    claims = "# claims\n\nOne row per claim; 4 claim(s) computed: 1 holds, 3 noise. A claim on ...\n"
    assert readme.summary(claims, index) == ("Evidence so far: 3 run(s), 1.00 h; 1 of 2 reports have every run of "
                                             "their seeds finished (their runs: 3 done, 12 missing; a run two reports "
                                             "share counts in each). Claims: 4 claim(s) computed: 1 holds, "
                                             "3 noise (every claim of every table; the verdicts are explained on the "
                                             "claims page).")
    assert readme.summary("# claims", "# index").startswith("Evidence so far: no finished runs yet; 0 of 0 reports")
    # verdicts resting on unconverged runs are counted from the page's own verdict column, not another profile's
    claims += ("\n| table | step | verdict | verdict, profile `cpu` |\n|---|---|---|---|\n"
               "| [table8](table8.md) | a → b | holds (rests on unconverged runs) | holds |\n"
               "| [table8](table8.md) | a → c | reversed (rests on unconverged runs) | holds |\n"
               "| [table3](table3.md) | a → d | holds | holds (rests on unconverged runs) |\n")
    assert readme.summary(claims, index).endswith("claims page). 2 of them rest on runs that fail the convergence "
                                                  "test (table8: the converged column of its rows says which and "
                                                  "by how much).")


def test_regeneration_is_byte_for_byte_and_check_finds_changes(known, registry, tmp_path):
    results, _ = known
    reports = tmp_path / "reports"
    report.write_reports(registry, PROFILE, ["mini"], results, reports)
    first = {p.name: p.read_bytes() for p in (reports / PROFILE).iterdir()}
    report.write_reports(registry, PROFILE, ["mini"], results, reports)
    assert first == {p.name: p.read_bytes() for p in (reports / PROFILE).iterdir()}
    assert report.check_reports(registry, PROFILE, results, reports) == []

    (reports / PROFILE / "old-figure.png").write_bytes(b"stale")
    assert report.check_reports(registry, PROFILE, results, reports) == [
        f"{reports / PROFILE / 'old-figure.png'} is stale: regeneration does not write it"]
    (reports / PROFILE / "old-figure.png").unlink()

    path = store.run_dir(results, PROFILE, registry.resolve("qa", PROFILE, 1).run_id)
    per = store.per_sample(path, "dad3dheads", "val")
    per.loc[0, "nme"] += 1.0                    # one image of one run changes
    store.write_evaluation(path, "dad3dheads", "val", {"nme": float(per["nme"].mean()), "z5": float(per["z5"].mean())},
                           per, None, {})
    problems = report.check_reports(registry, PROFILE, results, reports)
    assert any(p.startswith(str(reports / PROFILE / "mini.md")) and "differs" in p for p in problems)
    assert any("mini-deltas.png" in p for p in problems)


def test_real_table3_layout_with_nothing_run(tmp_path):
    """The paper's Table 3, both halves, every row present and marked missing on an empty store."""
    registry = load_registry()
    report.write_reports(registry, PROFILE, ["table3"], tmp_path / "results", tmp_path / "reports")
    md = (tmp_path / "reports" / PROFILE / "table3.md").read_text()
    assert "## Component effectiveness" in md and "## Encoder/decoder layers (on +QA)" in md
    rows = table_rows(md)
    for row in registry.table("table3").rows:
        assert rows[row.label][-1] == "missing — run `python -m experiments.run table3 --profile smoke`"
        assert rows[row.label][1] == report.fmt(row.paper.get("nme", float("nan")), "nme")   # "—" where the paper has none
    assert rows["baseline"][1:8:2] == ["1.847", "0.9578", "2.791", "0.126"]
    assert "— (no finished runs)" in md and "## Ablation steps" in md


def test_overridden_runs_report_apart_with_their_overrides(known, registry, tmp_path):
    """--set picks other runs (none here), writes to a folder of its own and says so in the provenance."""
    results, _ = known
    overrides = parse_overrides(["train.epochs=3", "train.lr=1e-3"])
    report.write_reports(registry, PROFILE, ["mini"], results, tmp_path / "reports", overrides)
    folder = tmp_path / "reports" / "smoke+train.epochs=3+train.lr=1e-3"
    md = (folder / "mini.md").read_text()
    assert "- Overrides: `--set train.epochs=3 --set train.lr=1e-3` on top of the profile" in md
    command = "python -m experiments.run mini --profile smoke --set train.epochs=3 --set train.lr=1e-3"
    assert table_rows(md)["base"][-1] == f"missing — run `{command}`"
    assert not (tmp_path / "reports" / PROFILE).exists()
    assert report.check_reports(registry, PROFILE, results, tmp_path / "reports", overrides) == []
    assert "Overrides" not in report.write_reports(registry, PROFILE, ["mini"], results, tmp_path / "r2")[0].read_text()


def test_formatting_is_stable():
    assert report.fmt(-0.0001, "nme") == "0.000" and report.fmt(float("nan"), "nme") == "—"
    assert report.fmt(0.95781, "z5") == "0.9578" and report.fmt(None) == "—"
    assert report.metric_cell(stats.SeedSummary(1.0, float("nan"), float("nan")), 1, "nme") == "1.000"


def test_synthetic_numbers_never_pass_for_the_real_benchmark():
    assert "NOT AFLW2000-3D numbers" in report.benchmark_name("synthheads", "aflw2000")
    assert "NOT DAD-3DHeads numbers" in report.benchmark_name("synthheads", "dad3dheads")
    assert report.benchmark_name("dad3dheads", "aflw2000") == "AFLW2000-3D"
    assert report.benchmark_name("dad3dheads", "dad3dheads") == "DAD-3DHeads"


def test_code_versions_name_later_evaluations_apart():
    from types import SimpleNamespace as NS
    rows = lambda *versions: [NS(done=[NS(evaluation={"eval_code_version": v}) for v in versions])]  # noqa: E731
    assert report.code_versions(rows("aaa"), ["aaa"]) == "aaa"
    assert report.code_versions(rows("aaa", "bbb"), ["aaa", "bbb"]) == "aaa, bbb"
    assert report.code_versions(rows("aaa", "ccc"), ["aaa"]) == "aaa (training); aaa, ccc (evaluation)"
    assert report.code_versions(rows(float("nan")), ["aaa"]) == "aaa"
    assert report.code_versions(rows(), []) == "—"


def test_provenance_names_the_trunk_and_the_training_cost():
    from experiments.report.provenance import training_cost, trunk_origin
    trunk = {"init": "synthheads-rotation", "path": "data/trunks/resnet18-s8-abc.pt", "rotation_accuracy": 0.994,
             "pretrain_wall_s": 2234.0}
    metas = [{"train_wall_s": 60.0, "trunk": trunk}, {"train_wall_s": 180.0, "trunk": trunk}, {"train_wall_s": 120.0}]
    origin = trunk_origin(metas)
    assert "`resnet18-s8-abc.pt`" in origin and "0.994" in origin and "37 min" in origin
    assert origin.count("resnet18-s8-abc.pt") == 1                    # pretrained once, shared
    assert "random initialisation (1 run(s)" in origin
    assert trunk_origin([{"train_wall_s": 1.0}]).startswith("random initialisation")
    assert training_cost(metas) == "3 run(s), 0.10 h of training in all (median 2.0 min per run, one run per core or device)"
    assert training_cost([{}]) == "—"
    continued = [{"train_wall_s": 60.0, "continued_from": {"profile": "short", "run_id": "x", "epochs": 64}}] * 2
    assert training_cost(continued + metas).endswith(
        "; 2 of them continued a finished shorter run (`short` (2 at 64 epochs); "
        "experiments/dispatch/continuation.py), whose time is included")


def test_claims_show_another_profiles_verdicts_and_count_the_changes(tmp_path):
    """A long profile's claims page beside the quick one's: QA's step holds quickly, reverses when longer."""
    root = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, root)
    (root / "tables.yaml").write_text(yaml.safe_dump(MINI_TABLES, sort_keys=False))
    profiles = yaml.safe_load((root / "profiles.yaml").read_text())
    profiles["smoke-long"] = {"base": PROFILE, "verdicts_beside": PROFILE, "train": {"epochs": 4}}
    (root / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    registry = load_registry(root)
    rng = np.random.default_rng(1)
    hardness = centred(rng, 0.3)
    for profile, qa_change in ((PROFILE, -0.5), ("smoke-long", +0.5)):
        for seed in (0, 1):
            write_run(tmp_path / "results", registry, "baseline", seed, per_sample={"nme": 2.0 + hardness + 0.01 * seed},
                      curve=FLAT, profile=profile)
            write_run(tmp_path / "results", registry, "qa", seed, curve=FLAT, profile=profile,
                      per_sample={"nme": 2.0 + qa_change + hardness + centred(rng, 0.05)})
    report.write_reports(registry, "smoke-long", list(registry.tables), tmp_path / "results", tmp_path / "reports")
    page = (tmp_path / "reports" / "smoke-long" / "claims.md").read_text()
    qa_row = next(line for line in page.splitlines() if "base → +QA" in line)
    assert qa_row.endswith("| reversed | holds | **changed** |")
    assert "verdict, profile `smoke`" in page and "1 of 1 verdicts that both profiles could give differ" in page
    euler_row = next(line for line in page.splitlines() if "+QA → +Euler" in line)
    assert euler_row.endswith("| — |")                      # neither profile ran it: nothing to compare
    quick = (tmp_path / "reports" / PROFILE / "claims.md")
    report.write_reports(registry, PROFILE, list(registry.tables), tmp_path / "results", tmp_path / "reports")
    assert "verdict, profile" not in quick.read_text()      # only the profile that asks gets the column

    profiles["smoke-long"]["verdicts_beside"] = "smoek"
    (root / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    with pytest.raises(Exception, match="verdicts_beside 'smoek' must name another profile.*smoke"):
        load_registry(root)


ROOT = Path(__file__).resolve().parents[1]
COMMITTED_PROFILES = sorted(p.name for p in (ROOT / "results").iterdir() if p.is_dir())


@pytest.mark.parametrize("profile", COMMITTED_PROFILES)
def test_the_committed_reports_regenerate_byte_for_byte(profile):
    assert report.check_reports(load_registry(), profile, ROOT / "results", ROOT / "reports") == []


def test_the_claims_page_has_one_row_per_claim_and_metric(tmp_path):
    registry = load_registry()
    report.write_reports(registry, PROFILE, list(registry.tables), tmp_path / "results", tmp_path / "reports")
    rows = [line for line in (tmp_path / "reports" / PROFILE / "claims.md").read_text().splitlines()
            if line.startswith("| [table")]
    expected = sum(len(step.metrics) for spec in registry.tables.values() for step in spec.steps)
    assert len(rows) == expected > 0
    # an empty store claims nothing; a claim on runs an earlier table compares points there, whatever was run
    same = [row for row in rows if "same runs as" in row]
    assert all("not computed: no finished runs" in row for row in rows if row not in same)
    assert len(same) == 4 and all(row.startswith(("| [table5]", "| [table8]")) for row in same)
    assert any("DAD-3DNet 413 → Trans3DHead 413 | Pose Err. ↓" in row and
               row.endswith("| same runs as [table3](table3.md) DAD-3DNet → Trans3DHead: reported there |")
               for row in same)


def test_the_readme_headline_keeps_table3s_rows_beside_the_paper_and_its_claims():
    from experiments.report import readme
    table = "\n".join(["# table3", "", "## Component effectiveness", "",
                       "| Method | NME ↓ ours | NME paper | Z5 Acc. ↑ ours | Pose Err. ↓ ours | Pose Err. paper | converged | status |",
                       "|---|---|---|---|---|---|---|---|",
                       "| baseline | 3.99 [3.9, 4.1] | 1.847 | 0.96 | 0.173 | 0.126 | yes | done |", "",
                       "## Encoder/decoder layers", "", "| Method | NME ↓ ours |", "|---|---|", "| E/D 0/1 | 3.9 |", ""])
    claims = "\n".join(["# claims", "", "| table | claim | step | metric | change (paper) | change (ours) [95% CI] | MDE | verdict |",
                        "|---|---|---|---|---|---|---|---|",
                        "| [table3](table3.md) | QA helps | a → b | NME ↓ | -0.016 | -0.1 [-0.2, 0.0] | 0.2 | holds |",
                        "| [table4](table4.md) | x | c → d | NME ↓ | 1 | 2 | 3 | reversed |", ""])
    lines = readme.headline(table, claims).splitlines()
    assert lines[0] == "| Method | NME ↓ ours | NME paper | Pose Err. ↓ ours | Pose Err. paper | converged | status |"
    assert lines[2] == "| baseline | 3.99 [3.9, 4.1] | 1.847 | 0.173 | 0.126 | yes | done |"
    assert "E/D 0/1" not in "\n".join(lines)                 # only the component section
    assert lines[3] == ""                                     # two tables, not one
    assert lines[4] == "| step | metric | change (paper) | change (ours) [95% CI] | MDE | verdict |"
    assert lines[6] == "| a → b | NME ↓ | -0.016 | -0.1 [-0.2, 0.0] | 0.2 | holds |" and len(lines) == 7   # Table 3's only


def test_the_readme_headline_matches_the_committed_reports():
    from experiments.report import readme
    assert readme.current_block((ROOT / "README.md").read_text()) == readme.committed_block(ROOT), \
        "README.md's headline table is stale: python -m experiments.report.readme"


def test_the_readme_says_the_evidence_is_being_regenerated_exactly_while_it_is():
    """The paragraph on the campaign is generated with the headline from the reports' index: "being regenerated"
    while a report lacks a run, "complete" once none does (the committed README is kept in step by the test above)."""
    from experiments.report import readme
    header = "| report | t | runs | seeds |\n|---|---|---|---|\n"
    done, missing = header + "| [a](a.md) | A | 3 done | 0 |", header + "| [a](a.md) | A | 3 done, 1 missing | 0 |"
    assert readme.evidence_complete(done) and not readme.evidence_complete(missing)
    assert not readme.evidence_complete(header)                      # no report yet is not complete evidence
    assert readme.status(missing).startswith("**The evidence is being regenerated.**")
    assert readme.status(done).startswith("**The evidence is complete**")
    assert "Evidence so far:" in readme.summary("", missing) and "Evidence:" in readme.summary("", done)
    committed = readme.current_block((ROOT / "README.md").read_text())
    index = (ROOT / "reports" / readme.DEFAULT_PROFILE / "README.md").read_text()
    assert readme.status(index) in committed


def test_rows_that_ask_for_more_seeds_are_reported_on_them_and_leave_the_rest_whole(tmp_path):
    """tables.yaml's row ``seeds``: +Euler and full train on 4 seeds in a 2-seed table. Their table shows
    the rest on 2 seeds with nothing missing, the two rows on their 4 (one missing), the step between them on
    the seeds both have; another table of the same variants, asking nothing more, keeps to 2 seeds."""
    tables = yaml.safe_load(yaml.safe_dump(MINI_TABLES))
    rows = {row["label"]: row for section in tables["mini"]["sections"] for row in section["rows"]}
    rows["+Euler"]["seeds"] = rows["full"]["seeds"] = 4
    tables["mini"]["efficiency"] = False
    tables["other"] = {**tables["mini"], "title": "The same runs, no extra seeds",
                       "sections": [{"name": "", "rows": [{"label": "base", "variant": "baseline", "paper": {"nme": 2.0}},
                                                          {"label": "full", "variant": "trans3dhead", "paper": {"nme": 1.6}}]}],
                       "steps": [{"from": "base", "to": "full", "metrics": ["nme"], "claim": ""}]}
    untrained = [{"label": "full", "variant": "trans3dhead", "paper": {}},
                 {"label": "averinit", "variant": "mean_face_averinit", "paper": {}}]
    tables["untrained"] = {**tables["other"], "sections": [{"name": "", "rows": untrained}], "steps": []}
    tables["alone"] = {**tables["other"], "sections": [{"name": "", "rows": untrained[:1]}], "steps": []}
    root = tmp_path / "registry"
    shutil.copytree(REGISTRY_DIR, root)
    (root / "tables.yaml").write_text(yaml.safe_dump(tables, sort_keys=False))
    registry = load_registry(root)
    rng = np.random.default_rng(3)
    results = tmp_path / "results"
    seeds = {"baseline": 2, "qa": 2, "dad3dnet": 2, "euler_qa": 3, "trans3dhead": 4}
    for variant, count in seeds.items():
        for seed in range(count):
            write_run(results, registry, variant, seed, curve=FLAT,
                      per_sample={"nme": 2.0 + centred(rng, 0.3), "z5": 0.9 + centred(rng, 0.01)})
    report.write_reports(registry, PROFILE, ["mini", "other", "untrained", "alone"], results, tmp_path / "reports")
    folder = tmp_path / "reports" / PROFILE
    md = (folder / "mini.md").read_text()
    assert "seeds 0, 1 (+Euler, full: 0-3)" in md
    table = table_rows(md)
    for label in ("base", "+QA", "dad", "full"):
        assert table[label][-1] == "done" and "seeds)" not in table[label][0]
    assert "(3/4 seeds)" in table["+Euler"][0]
    assert table["+Euler"][-1] == "seed 3: missing — run `python -m experiments.run mini --profile smoke --seeds 2`"
    steps = step_rows(md)
    assert steps[("+Euler → full", "NME ↓")][2] == f"3 × {N_IMAGES}"          # the seeds both rows have
    assert steps[("base → +QA", "NME ↓")][2] == f"2 × {N_IMAGES}"
    other = (folder / "other.md").read_text()
    assert "; seeds 0, 1\n" in other and ": 0-3)" not in other and table_rows(other)["full"][-1] == "done"
    assert step_rows(other)[("base → full", "NME ↓")][2] == f"2 × {N_IMAGES}"
    # a table of full and a row not trained yet, or of full alone: the seeds full was trained on for mini's study,
    # not its extras
    assert table_rows((folder / "untrained.md").read_text())["averinit"][-1].startswith("seeds 0, 1: missing")
    assert "; seeds 0, 1\n" in (folder / "alone.md").read_text()
    # nothing else trained yet: full's own evaluated seeds
    lone = tmp_path / "lone"
    for seed in range(3):
        write_run(lone, registry, "trans3dhead", seed, curve=FLAT, per_sample={"nme": 2.0 + centred(rng, 0.3)})
    report.write_reports(registry, PROFILE, ["alone"], lone, tmp_path / "lone-reports")
    assert "; seeds 0, 1, 2\n" in (tmp_path / "lone-reports" / PROFILE / "alone.md").read_text()
    index = (folder / "README.md").read_text()
    assert "| 0, 1 (+Euler, full: 0-3) |" in index and "| [other](other.md) |" in index
    assert "1 missing" in index.split("[mini](mini.md)")[1].splitlines()[0]
