"""A report's header: which benchmark, split, profile, overrides, seeds, code, hardware and dates produced
its numbers, the seed noise, and the mean-face floor."""
from __future__ import annotations

from collections import Counter

import numpy as np

from experiments.overrides import describe
from experiments.registry import TableSpec
from experiments.report import stats
from experiments.report.cells import fmt
from experiments.report.gather import RowRuns, seeds_text
from trans3dhead.metrics import METRICS

DATASET_NAMES = {"dad3dheads": "DAD-3DHeads", "aflw2000": "AFLW2000-3D"}


def benchmark_name(benchmark: str, dataset: str) -> str:
    """What the numbers were measured on; synthetic numbers never pass for the real benchmark's."""
    real = DATASET_NAMES.get(dataset, dataset)
    if benchmark == "synthheads":
        return (f"SynthHeads, the embedded procedural benchmark, in the {real} format "
                f"(these are NOT {real} numbers)")
    return real if benchmark == "dad3dheads" else benchmark


def code_versions(rows: list[RowRuns], trained_with: list[str]) -> str:
    """The training code versions, and those of evaluations added later by other code, if any."""
    evaluated_with = sorted({str(r.evaluation["eval_code_version"]) for rr in rows for r in rr.done
                             if isinstance(r.evaluation.get("eval_code_version"), str)})
    if not trained_with:
        return "—"
    if set(evaluated_with) <= set(trained_with):
        return ", ".join(trained_with)
    return f"{', '.join(trained_with)} (training); {', '.join(evaluated_with)} (evaluation)"


def training_cost(metas: list[dict]) -> str:
    """The runs' training wall time: what regenerating the table's numbers costs on that hardware."""
    walls = [float(m["train_wall_s"]) for m in metas if isinstance(m.get("train_wall_s"), (int, float))]
    if not walls:
        return "—"
    text = (f"{len(walls)} run(s), {sum(walls) / 3600:.2f} h of training in all "
            f"(median {np.median(walls) / 60:.1f} min per run, one run per core or device)")
    continued = [m["continued_from"] for m in metas if isinstance(m.get("continued_from"), dict)]
    if continued:
        sources = ", ".join(f"`{p}` ({n} at {e} epochs)" for (p, e), n in sorted(
            Counter((c.get("profile"), c.get("epochs")) for c in continued).items()))
        text += (f"; {len(continued)} of them continued a finished shorter run "
                 f"({sources}; experiments/dispatch/continuation.py), whose time is included")
    return text


def trunk_origin(metas: list[dict]) -> str:
    """Where the runs' trunk weights came from, and what pretraining them cost (once, shared by every run)."""
    trunks = {str(m["trunk"].get("path", "")).rsplit("/", 1)[-1]: m["trunk"] for m in metas
              if isinstance(m.get("trunk"), dict)}
    random_runs = sum(1 for m in metas if not isinstance(m.get("trunk"), dict))
    parts = [f"`{name}` (SynthHeads rotation pretraining on images of no benchmark split: rotation "
             f"accuracy {t.get('rotation_accuracy', float('nan')):.3f}, {t.get('pretrain_wall_s', 0) / 60:.0f} min "
             f"once, shared by every run)" for name, t in sorted(trunks.items())]
    if random_runs:
        parts.append(f"random initialisation ({random_runs} run(s); the paper starts from ImageNet weights)")
    return "; ".join(parts) if parts else "—"


def provenance(spec: TableSpec, profile: str, rows: list[RowRuns], seeds: list[int],
               noise: dict[str, stats.SeedNoise], overrides: tuple = ()) -> list[str]:
    """The header's bullet lines (the overrides line only when ``--set`` was given)."""
    metas = list({r.meta.get("run_id", id(r)): r.meta for rr in rows for r in rr.done}.values())  # a run in two rows counts once
    values = lambda key: sorted({str(m[key]) for m in metas if m.get(key)})  # noqa: E731
    benchmarks = values("benchmark")
    benchmark = ("; ".join(benchmark_name(b, spec.dataset) for b in benchmarks) if benchmarks
                 else "— (no finished runs)")
    hardware = ", ".join(values("device")) or "—"
    if values("amp"):
        hardware += f" (autocast: {', '.join(values('amp'))})"
    if values("host"):
        hardware += f"; host(s) {', '.join(values('host'))}"
    lines = [f"- Benchmark: {benchmark}",
             f"- Evaluation: `{spec.dataset}` format, `{spec.split}` split; profile `{profile}`; "
             f"seeds {seeds_text(spec, seeds)}"
             + ("" if len(seeds) > 1 else " (one seed: seed-to-seed noise unknown, no interval over seeds)")]
    if overrides:
        lines.append(f"- Overrides: `{describe(overrides)}` on top of the profile (part of every run id)")
    lines += [f"- Code version(s): {code_versions(rows, values('code_version'))}",
              f"- Hardware: {hardware}",
              f"- Training: {training_cost(metas)}",
              f"- Trunk: {trunk_origin(metas)}",
              f"- Date(s) of the runs: {', '.join(values('date')) or '—'}",
              "- Paper: the published DAD-3DHeads / AFLW2000-3D numbers, beside ours for direction, "
              "not for equality."]
    known = {m: n for m, n in noise.items() if n.known}
    if known:
        spread = ", ".join(f"{METRICS[m].title} {fmt(n.sd, m)} (df {n.df})" for m, n in known.items())
        lines.append(f"- Ours: mean over seeds [95% t-interval]; the seed-to-seed SD is pooled over this "
                     f"table's rows: {spread}.")
    reference = [r.evaluation.get("mean_face_nme") for rr in rows for r in rr.done]
    reference = [v for v in reference if v is not None and np.isfinite(v)]
    if reference:
        lines.append(f"- Reference: always predicting the training set's mean face scores NME "
                     f"{fmt(float(np.mean(reference)), 'nme')} on this evaluation set.")
    return lines
