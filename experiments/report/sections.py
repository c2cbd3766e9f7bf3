"""Markdown sections of the reports: the results table, the ablation steps and the index."""
from __future__ import annotations

import math

import pandas as pd

from experiments import stats
from experiments.overrides import describe
from experiments.report.cells import (StepResult, convergence_text, fmt, metric_cell, metric_title,
                                      status_text)
from experiments.report.gather import Inputs, TableContext, gather_row, table_seeds
from trans3dhead.metrics import METRICS

# (column title, efficiency key, scale, format); the paper's Table 1 has FPS, so a table that
# reports efficiency shows what we measured of it and of its cost.
EFFICIENCY_COLUMNS = (("Params (M)", "params", 1e-6, "{:.2f}"), ("GFLOPs", "flops", 1e-9, "{:.3f}"),
                      ("FPS b1", "fps_b1", 1.0, "{:.1f}"), ("FPS b32", "fps_b32", 1.0, "{:.1f}"),
                      ("Peak mem b1 (MB)", "peak_mem_b1_mb", 1.0, "{:.1f}"),
                      ("Peak mem b32 (MB)", "peak_mem_b32_mb", 1.0, "{:.1f}"),
                      ("Train wall (s)", "train_wall_s", 1.0, "{:.0f}"))
STATUSES = ("done", "failed", "interrupted", "queued", "running", "missing")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def _paper_only_cells(row, spec) -> list[str]:
    cells = [f"{row.label} (paper only)"]
    cells += [c for m in spec.metrics for c in ("paper only", fmt(row.paper.get(m, math.nan), m))]
    if spec.efficiency:
        cells += ["—"] * len(EFFICIENCY_COLUMNS) + [fmt(row.paper.get("fps"), spec="{:.0f}")]
    return cells + ["—", "paper only: not implemented in this suite"]


def _row_cells(ctx: TableContext, row) -> list[str]:
    spec, rr = ctx.spec, ctx.by_label[row.label]
    n = len(rr.done)
    cells = [row.label]
    for metric in spec.metrics:
        cells += [metric_cell(rr.summary(metric, ctx.noise[metric]), n, metric, len(rr.runs)),
                  fmt(row.paper.get(metric, math.nan), metric)]
    if spec.efficiency:
        cells += [fmt(rr.efficiency(key) * scale, spec=form) for _, key, scale, form in EFFICIENCY_COLUMNS]
        cells.append(fmt(row.paper.get("fps"), spec="{:.0f}"))
    return cells + [convergence_text(rr.convergence_changes),
                    status_text(rr, ctx.name, ctx.seeds, ctx.inputs.overrides)]


def results_tables(ctx: TableContext) -> list[str]:
    """One markdown table per section of the paper's table: ours beside the paper's, per metric."""
    spec = ctx.spec
    header = ["Method"]
    for metric in spec.metrics:
        header += [f"{metric_title(metric)} ours", f"{METRICS[metric].title} paper"]
    if spec.efficiency:
        header += [title for title, *_ in EFFICIENCY_COLUMNS] + ["FPS paper"]
    header += ["converged", "status"]
    lines = []
    for section in spec.sections:
        rows = [_paper_only_cells(row, spec) if row.variant is None else _row_cells(ctx, row) for row in section.rows]
        if section.name:
            lines += [f"## {section.name}", ""]
        lines += [md_table(header, rows), ""]
    notes = [spec.note, ""] if spec.note else []
    notes += [f"converged: validation NME moved by less than {stats.CONVERGENCE_TOL:.0%} over the last "
             f"{stats.CONVERGENCE_WINDOW:.0%} of training, read from a Theil-Sen line through that window's "
             "validation points (robust to a noisy last epoch); in brackets its "
             "mean relative change over seeds (unknown: no validation curve stored)."]
    if spec.efficiency:
        notes.append("Efficiency (mean over seeds): parameters, FLOPs, FPS and peak memory measured on the device "
                     "above with nothing else running; train wall is each run's training as it ran, beside the "
                     "other runs (one per core or device), so it follows the machine's load. FPS paper: one V100.")
    return lines + notes + [""]


def steps_section(results: list[StepResult]) -> list[str]:
    """The ablation steps: our change [95% CI] beside the paper's, the verdict, and the paper's claims."""
    if not results:
        return []
    rows = []
    for r in results:
        d = r.delta
        ours = "—" if d is None else f"{fmt(d.delta, r.metric)} [{fmt(d.lo, r.metric)}, {fmt(d.hi, r.metric)}]"
        rows.append([f"{r.step.from_label} → {r.step.to_label}", metric_title(r.metric),
                     ours, "—" if d is None else str(d.n_items), fmt(r.paper_change, r.metric), r.verdict])
    claims = list(dict.fromkeys((r.step.from_label, r.step.to_label, r.step.claim) for r in results))
    return ["## Ablation steps", "",
            "Change = after − before on the same evaluation images (per-image values averaged over seeds "
            "first), with a 95% interval: a paired bootstrap over the images, widened, where seeds were "
            "repeated, by the seed-to-seed noise of the two means (SD pooled over the table's rows, "
            "Student's t). With one seed per run it covers image variation only, and a 'holds' or "
            "'reversed' may still be a seed effect. Verdict: does our change go the paper's way "
            "(holds / reversed), or does its interval cover 0 (not distinguishable from noise)? A verdict "
            "resting on unconverged runs ranks learning speed, not capacity.", "",
            md_table(["step", "metric", "change (ours) [95% CI]", "images", "change (paper)", "verdict"], rows), "",
            "The paper's claims:", "", *[f"- {a} → {b}: {claim}" for a, b, claim in claims if claim], ""]


CLAIMS = "claims.md"


def claims_lines(inputs: Inputs, contexts: list, beside: tuple[str, list] | None = None) -> list[str]:
    """Every claim of the paper's ablations in one table: the paper's change, ours with its interval, the
    verdict, and whether the runs behind it converged (``reports/<profile>/claims.md``). ``beside`` =
    (another profile, its table contexts) adds that profile's verdict on each claim and marks where the
    two differ: what a quick profile's verdicts are worth against a converged one's."""
    note = inputs.registry.profiles.get(inputs.profile, {}).get("benchmark_note", "")
    other_verdicts = {}
    if beside:
        other_verdicts = {(ctx.name, r.step.from_label, r.step.to_label, r.metric): r.verdict
                          for ctx in beside[1] for r in ctx.steps}
    rows, differ = [], 0
    for ctx in contexts:
        for r in ctx.steps:
            d = r.delta
            ours = "—" if d is None else f"{fmt(d.delta, r.metric)} [{fmt(d.lo, r.metric)}, {fmt(d.hi, r.metric)}]"
            row = [f"[{ctx.name}]({ctx.name}.md)", r.step.claim or "—",
                   f"{r.step.from_label} → {r.step.to_label}", metric_title(r.metric),
                   fmt(r.paper_change, r.metric), ours, r.verdict]
            if beside:
                other = other_verdicts.get((ctx.name, r.step.from_label, r.step.to_label, r.metric), "—")
                changed = _verdict_changed(r.verdict, other)
                differ += changed is True
                row += [other, {True: "**changed**", False: "same", None: "—"}[changed]]
            rows.append(row)
    header = ["table", "claim", "step", "metric", "change (paper)", "change (ours) [95% CI]", "verdict"]
    lines = [f"# The paper's claims on the embedded benchmark, profile `{inputs.profile}`", "",
             f"Benchmark: {note or '—'}. One row per claim and metric, from the tables' ablation steps "
             "(change = after − before; the interval and verdict as in each table's report). A verdict "
             "that rests on unconverged runs says so: it ranks learning speed, not capacity.", ""]
    if beside:
        header += [f"verdict, profile `{beside[0]}`", "the two verdicts"]
        compared = sum(1 for row in rows if row[-1] != "—")
        lines += [f"Beside each verdict, the profile `{beside[0]}`'s on the same claim (its own reports: "
                  f"[reports/{beside[0]}/claims.md](../{beside[0]}/claims.md)): {differ} of {compared} verdicts "
                  "that both profiles could give differ.", ""]
    return lines + [md_table(header, rows), ""]


def _verdict_changed(verdict: str, other: str) -> bool | None:
    """Whether two verdicts differ in kind (holds / reversed / noise), ignoring their unconverged notes;
    None when either profile has no verdict yet."""
    kinds = [next((k for k in (stats.HOLDS, stats.REVERSED, stats.NOISE) if v.startswith(k)), None)
             for v in (verdict, other)]
    return None if None in kinds else kinds[0] != kinds[1]


def index_lines(inputs: Inputs, out_dir) -> list[str]:
    """The reports folder's README: every table or figure, its runs by status and its seeds."""
    registry, profile = inputs.registry, inputs.profile
    note = registry.profiles.get(profile, {}).get("benchmark_note", "")
    rows = []
    for name, spec in registry.tables.items():
        if not (out_dir / f"{name}.md").is_file():
            rows.append([name, spec.title, "not generated", "—"])
            continue
        seeds = table_seeds(inputs, spec)
        runs = {(r.run_id, r.seed): r for row in spec.rows if row.variant is not None
                for r in gather_row(inputs, row, spec, seeds).runs}
        counts = pd.Series([r.status if r.usable or r.status != "done" else "missing" for r in runs.values()])
        summary = ", ".join(f"{counts.eq(s).sum()} {s}" for s in STATUSES if counts.eq(s).any())
        rows.append([f"[{name}]({name}.md)", spec.title, summary or "no runs", ", ".join(map(str, seeds))])
    return [f"# Reports, profile `{profile}`", "", f"Benchmark: {note or '—'}.", "",
            f"Regenerate with `python -m experiments.run report --profile {profile}"
            + (f" {describe(inputs.overrides)}" if inputs.overrides else "") + "`; check that the committed "
            "reports match the committed results with `--check`.", "",
            md_table(["report", "paper's table or figure", "runs", "seeds"], rows)]
