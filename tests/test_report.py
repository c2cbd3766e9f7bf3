"""Reports from a synthetic result store with known numbers: cells, intervals, verdicts, missing/failed."""
import numpy as np
import pandas as pd
import pytest

from experiments import report, stats, store
from experiments.registry import load_registry

REGISTRY = load_registry()
N = 40


def _run(results, variant, per_sample: dict, status="done", error="", curve=None):
    run_id = REGISTRY.resolve(variant, "smoke", 0).run_id
    out = store.run_dir(results, "smoke", run_id)
    store.write_meta(out, {"variants": [variant], "seed": 0, "status": status, "error": error, "benchmark": "synthheads",
                           "code_version": "abc123", "device": "cpu", "amp": "bf16", "date": "2026-11-24"})
    if status == "done":
        frame = pd.DataFrame({"item_id": [f"img{k}" for k in range(N)], **per_sample})
        store.write_evaluation(out, "dad3dheads", "val", {m: float(frame[m].mean()) for m in per_sample}, frame, {}, None, {})
    if curve is not None:
        pd.DataFrame({"epoch": range(1, len(curve) + 1), "val_nme": curve}).to_csv(out / "curve.csv", index=False)
    return out


@pytest.fixture()
def results(tmp_path):
    rng = np.random.default_rng(0)
    base = {"nme": 2.0 + rng.normal(0, 0.1, N), "z5": 0.95 + rng.normal(0, 0.001, N),
            "chamfer": np.full(N, 3.0), "pose_error": 0.13 + rng.normal(0, 0.01, N)}
    qa = {**base, "nme": base["nme"] - 0.5 + rng.normal(0, 0.05, N)}
    euler = {**qa, "pose_error": qa["pose_error"] + 0.05 + rng.normal(0, 0.005, N), "z5": qa["z5"] + rng.normal(0, 0.001, N)}
    root = tmp_path / "results"
    _run(root, "baseline", base, curve=[10, 5, 3, 2.01, 2.0])
    _run(root, "qa", qa, curve=[10, 8, 6, 4, 2])
    _run(root, "euler_qa", euler)
    _run(root, "trans3dhead", {}, status="failed", error="NonFiniteLossError: non-finite loss at step 7")
    return root, base, qa, euler


def _row(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {label}")


def test_cells_intervals_verdicts_and_missing_runs(results, tmp_path):
    root, base, qa, euler = results
    report.write_reports(REGISTRY, "smoke", ["table3"], root, tmp_path / "reports")
    md = (tmp_path / "reports" / "smoke" / "table3.md").read_text()
    assert "SynthHeads" in md and "NOT DAD-3DHeads" in md and "abc123" in md
    row = _row(md, "baseline")
    assert row[1] == f"{base['nme'].mean():.3f} / 1.847"
    assert row[2] == f"{base['z5'].mean():.4f} / 0.9578"
    assert row[5] == "yes"                                  # curve flat over its last 20%
    assert _row(md, "+QA")[5] == "no"
    assert _row(md, "E/D 0/2")[1] == _row(md, "+QA")[1]     # one run serves both rows
    assert _row(md, "Trans3DHead")[-1].startswith("failed: NonFiniteLossError")
    assert "missing — run `python -m experiments.run table3`" in _row(md, "+MARR+QA")[-1]
    assert "missing" in _row(md, "DAD-3DNet")[-1]

    step = _row(md, "baseline → +QA")
    delta = stats.paired_delta(pd.Series(base["nme"]), pd.Series(qa["nme"]))
    assert step[2] == f"{delta.value:.3f} [{delta.lo:.3f}, {delta.hi:.3f}]"
    assert delta.hi < 0 and step[4].startswith("holds")
    verdicts = {(r[0], r[1]): r[4] for r in (line.strip("|").split("|") for line in md.splitlines()
                                             if line.startswith("| +QA → +Euler+QA"))}
    # +QA's curve is still falling: the verdict says it rests on an unconverged run.
    assert verdicts[(" +QA → +Euler+QA ", " Pose Err. ↓ ")].strip() == "reversed (unconverged runs: ranks learning speed)"
    assert verdicts[(" +QA → +Euler+QA ", " Z5 Acc. ↑ ")].strip().startswith("not distinguishable from noise")
    assert "missing runs" in _row(md, "+Euler+QA → Trans3DHead")[4]
    assert (tmp_path / "reports" / "smoke" / "table3-deltas.png").stat().st_size > 1000


def test_regeneration_is_byte_for_byte_and_check_catches_changes(results, tmp_path):
    root = results[0]
    reports = tmp_path / "reports"
    report.write_reports(REGISTRY, "smoke", ["table3"], root, reports)
    first = {p.name: p.read_bytes() for p in (reports / "smoke").iterdir()}
    report.write_reports(REGISTRY, "smoke", ["table3"], root, reports)
    assert first == {p.name: p.read_bytes() for p in (reports / "smoke").iterdir()}
    assert report.check_reports(REGISTRY, "smoke", root, reports) == []
    run_id = REGISTRY.resolve("baseline", "smoke", 0).run_id
    per = store.per_sample(root / "smoke" / run_id, "dad3dheads", "val")
    per["nme"] += 1.0
    store.write_evaluation(root / "smoke" / run_id, "dad3dheads", "val", {"nme": float(per["nme"].mean())}, per, {}, None, {})
    problems = report.check_reports(REGISTRY, "smoke", root, reports)
    assert any("table3.md differs" in p for p in problems)


def test_stats_verdicts():
    assert stats.verdict(stats.Interval(-1.0, -1.5, -0.5, 10), paper_delta=-0.1) == stats.HOLDS
    assert stats.verdict(stats.Interval(1.0, 0.5, 1.5, 10), paper_delta=-0.1) == stats.REVERSED
    assert stats.verdict(stats.Interval(0.1, -0.5, 0.7, 10), paper_delta=-0.1) == stats.NOISE
    assert stats.seed_summary([1.0]).lo != stats.seed_summary([1.0]).lo     # NaN with a single seed
    interval = stats.seed_summary([1.0, 2.0, 3.0, 4.0])
    assert interval.lo < 2.5 < interval.hi
    assert stats.converged(pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "val_nme": [9, 5, 3, 2.0, 1.99]}))
    assert not stats.converged(pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "val_nme": [9, 5, 3, 2.0, 1.5]}))
    assert stats.converged(pd.DataFrame({"epoch": [1, 2], "val_nme": [9, 5]})) is None
