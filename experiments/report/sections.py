"""Markdown sections of the reports: the results table, the ablation steps and the index."""
from __future__ import annotations

import math

import pandas as pd

from experiments.overrides import describe
from experiments.report import convergence, stats
from experiments.report.cells import convergence_text, fmt, metric_cell, metric_title, status_text
from experiments.report.gather import Inputs, TableContext, gather_row, seeds_text, table_seeds
from experiments.report.provenance import training_cost
from experiments.report.steps import STEP_HEADER, StepResult, step_cells
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
    return cells + [convergence_text(rr.convergence_change, rr.seed_convergence_changes),
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
    counts = sorted({n for rr in ctx.by_label.values() for n in rr.n_items()})
    if counts:
        notes += [f"Ours: each finished seed's run averages its {' or '.join(f'{n:,}' for n in counts)} "
                  f"`{spec.dataset}`/`{spec.split}` images; a cell is the mean over the row's seeds with a 95% "
                  "t-interval from the seed-to-seed SD pooled over the table's rows (the images held fixed: every "
                  "row is scored on the same ones).", ""]
    notes += [f"converged: the row's validation NME (the mean over its seeds at each validation point, as its cells "
              f"average them) moved by less than {convergence.CONVERGENCE_TOL:.0%} over the last "
              f"{convergence.CONVERGENCE_WINDOW:.0%} of training, read from a Theil-Sen line through that window's "
              "points (robust to a noisy last epoch); in brackets that relative change, and 'per seed: k/n no' when "
              "k seeds' own curves would fail the same test (one seed's curve is noisier: docs/profiles.md); "
              "unknown: no validation curve stored."]
    if spec.efficiency:
        notes.append("Efficiency (mean over seeds): parameters, FLOPs, FPS and peak memory measured on the device "
                     "above with nothing else running; train wall is each run's training as it ran, beside the "
                     "other runs (one per core or device), so it follows the machine's load. FPS paper: one V100.")
    return lines + notes + [""]


STEPS_NOTE = (
    "Change = after − before on the same images and seeds: seed s of one row is paired with seed s of the other "
    "(the same data order), images by item id; 'seeds × images' is what it averages. Its 95% interval comes from "
    "the crossed seed × image model (docs/statistics.md): a two-way ANOVA of the seeds × images matrix of "
    "per-image differences, Var = σ²_seed/S + σ²_image/n + σ²_res/(S·n), Student's t with Satterthwaite's df; "
    "its seed term is the variant × seed interaction pooled over the table's rows on those seeds (the additive "
    "fit row + seed to their run means: (rows − 1)(S − 1) df when every row has every seed), or the pair's own "
    "seed spread where that is larger ('its own seed spread'); with one seed it covers images only. Holm p: the "
    "two-sided p, Holm-adjusted over {family}. MDE: the smallest true change this design detects with 80% power "
    "at α = 0.05; seeds needed (of the step's two rows, at these images) and images needed (at these seeds): the "
    "fewest whose MDE reaches the paper's change. P(better): the probability of improvement as rliable reports "
    "it, P(a run of `after` beats a run of `before`) over every pair of the two rows' seeds (ties count half), "
    "descriptive. Verdict: holds / reversed when the Holm p < 0.05; else 'smaller than the paper's change' when "
    "the 90% interval lies within ± the paper's change (TOST, α = 0.05); else not distinguishable from noise, "
    "beside the change it could have detected and the smallest bound TOST accepts (|change| < X: the 90% "
    "interval's far end). A verdict resting on unconverged runs ranks learning speed, not capacity.")
STEP_COLUMNS = ["change (paper)", *STEP_HEADER, "verdict"]


def _step_row(r: StepResult) -> list[str]:
    return [fmt(r.paper_change, r.metric), *step_cells(r), r.verdict]


def steps_section(results: list[StepResult]) -> list[str]:
    """The ablation steps: the paper's change, ours with its interval, power and verdict, and the paper's claims."""
    if not results:
        return []
    family = sum(r.answer is not None for r in results)
    rows = [[f"{r.step.from_label} → {r.step.to_label}", metric_title(r.metric), *_step_row(r)] for r in results]
    claims = list(dict.fromkeys((r.step.from_label, r.step.to_label, r.step.claim) for r in results))
    return ["## Ablation steps", "", STEPS_NOTE.format(family=f"the {family} step(s) of this table computed (its "
                                                          "family; a step on runs another table reports is "
                                                          "counted there)"), "",
            md_table(["step", "metric", *STEP_COLUMNS], rows), "",
            "The paper's claims:", "", *[f"- {a} → {b}: {claim}" for a, b, claim in claims if claim], ""]


CLAIMS = "claims.md"
# the index's line on what the profile's evidence cost, which the README's headline quotes
EVIDENCE_COST = "Training of every finished run above, each counted once"


def _tally(results: list[StepResult]) -> str:
    kinds = [stats.verdict_kind(r.verdict) for r in results if r.answer is not None]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in stats.VERDICT_KINDS if k in kinds)
    return f"{len(kinds)} claim(s) computed" + (f": {counts}" if counts else "")


def decisiveness_lines(contexts: list) -> list[str]:
    """Per table, how its computed claims came out, and for those left undecided the largest change the design
    could have missed (their MDE, per metric): whether 'not distinguishable' means 'no effect this large' or
    'not enough evidence' is read here at a glance."""
    rows = []
    for ctx in contexts:
        computed = [r for r in ctx.steps if r.answer is not None]    # a claim on another table's runs has none
        if not computed:
            continue
        kinds = [stats.verdict_kind(r.verdict) for r in computed]
        undecided = [r for r, k in zip(computed, kinds) if k == stats.NOISE]
        largest = {}
        for r in undecided:
            largest[r.metric] = max(largest.get(r.metric, 0.0), r.mde)
        rows.append([f"[{ctx.name}]({ctx.name}.md)", str(len(computed)),
                     *[str(kinds.count(k)) for k in stats.VERDICT_KINDS],
                     ", ".join(f"{METRICS[m].title} {fmt(v, m)}" for m, v in largest.items()) or "—"])
    if not rows:
        return []
    return ["## How decisive each table's claims are", "",
            "Claims computed per table (one reported on another table's runs counts there), by verdict:", "",
            md_table(["table", "claims computed", "holds", "reversed", "smaller than the paper's change",
                      "not distinguishable", "not distinguishable: largest MDE (80%)"], rows), ""]


def claims_lines(inputs: Inputs, contexts: list, beside: tuple[str, list, bool] | None = None) -> list[str]:
    """Every claim of the paper's ablations in one table: the paper's change, ours with its interval, Holm p,
    power and verdict (``reports/<profile>/claims.md``). ``beside`` = (another profile, its table contexts,
    whether it has committed results) adds that profile's verdict on each claim and marks where the two differ:
    what a quick profile's verdicts are worth against a converged one's."""
    note = inputs.registry.profiles.get(inputs.profile, {}).get("benchmark_note", "")
    other_verdicts = {}
    if beside:
        other_verdicts = {(ctx.name, r.step.from_label, r.step.to_label, r.metric): r.verdict
                          for ctx in beside[1] for r in ctx.steps}
    rows, differ = [], 0
    for ctx in contexts:
        for r in ctx.steps:
            row = [f"[{ctx.name}]({ctx.name}.md)", r.step.claim or "—",
                   f"{r.step.from_label} → {r.step.to_label}", metric_title(r.metric), *_step_row(r)]
            if beside:
                other = other_verdicts.get((ctx.name, r.step.from_label, r.step.to_label, r.metric), "—")
                changed = _verdict_changed(r.verdict, other)
                differ += changed is True
                row += [other, {True: "**changed**", False: "same", None: "—"}[changed]]
            rows.append(row)
    header = ["table", "claim", "step", "metric", *STEP_COLUMNS]
    lines = [f"# The paper's claims on the embedded benchmark, profile `{inputs.profile}`", "",
             f"Benchmark: {note or '—'}. One row per claim and metric, from the tables' ablation steps; "
             f"{_tally([r for ctx in contexts for r in ctx.steps])}. A claim on the same runs as an earlier one "
             "(e.g. a pair another table also compares) is reported once and points there.", "",
             STEPS_NOTE.format(family="the claims of its table computed (one family per table)"), ""]
    if beside:
        header += [f"verdict, profile `{beside[0]}`", "the two verdicts"]
        compared = sum(1 for row in rows if row[-1] != "—")
        # its reports exist only where it has committed results: a link to a page that is not there is broken
        where = (f"its own reports: [reports/{beside[0]}/claims.md](../{beside[0]}/claims.md)" if beside[2]
                 else f"it has no committed results yet: `python -m experiments.run all --profile {beside[0]}`")
        lines += [f"Beside each verdict, the profile `{beside[0]}`'s on the same claim ({where}): {differ} of "
                  f"{compared} verdicts that both profiles could give differ.", ""]
    return lines + [md_table(header, rows), "", *decisiveness_lines(contexts)]


def _verdict_changed(verdict: str, other: str) -> bool | None:
    """Whether two verdicts differ in kind (holds / reversed / smaller / noise), ignoring their notes;
    None when either profile has no verdict yet."""
    kinds = [stats.verdict_kind(v) for v in (verdict, other)]
    return None if None in kinds else kinds[0] != kinds[1]


def index_lines(inputs: Inputs, out_dir) -> list[str]:
    """The reports folder's README: every table or figure, its runs by status and its seeds."""
    registry, profile = inputs.registry, inputs.profile
    note = registry.profiles.get(profile, {}).get("benchmark_note", "")
    rows, finished = [], {}
    for name, spec in registry.tables.items():
        if not (out_dir / f"{name}.md").is_file():
            rows.append([name, spec.title, "not generated", "—"])
            continue
        seeds = table_seeds(inputs, spec)
        runs = {(r.run_id, r.seed): r for row in spec.rows if row.variant is not None
                for r in gather_row(inputs, row, spec, seeds).runs}
        finished.update({r.run_id: r.meta for r in runs.values() if r.usable})
        counts = pd.Series([r.status if r.usable or r.status != "done" else "missing" for r in runs.values()])
        summary = ", ".join(f"{counts.eq(s).sum()} {s}" for s in STATUSES if counts.eq(s).any())
        rows.append([f"[{name}]({name}.md)", spec.title, summary or "no runs", seeds_text(spec, seeds)])
    return [f"# Reports, profile `{profile}`", "", f"Benchmark: {note or '—'}.", "",
            f"Regenerate with `python -m experiments.run report --profile {profile}"
            + (f" {describe(inputs.overrides)}" if inputs.overrides else "") + "`; check that the committed "
            "reports match the committed results with `--check`.", "",
            md_table(["report", "paper's table or figure", "runs", "seeds"], rows), "",
            f"{EVIDENCE_COST}: {training_cost(list(finished.values()))}."]
