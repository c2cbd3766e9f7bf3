"""Each ablation step of a table as a claim: the crossed seed x image interval of its change (its seed term pooled
over the table's rows), the Holm-adjusted p
in its table's family, its power (detectable effect, the seeds or images that would resolve the paper's change),
TOST equivalence, the probability of improvement, and the verdict. docs/statistics.md has the statistics."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.registry import Step, TableSpec
from experiments.report import stats
from experiments.report.cells import fmt
from experiments.report.gather import RowRuns
from trans3dhead.metrics import METRICS


@dataclass
class StepResult:
    """One (ablation step, metric): our change (None when not computable), the paper's change and the verdict."""
    step: Step
    metric: str
    paper_change: float
    verdict: str
    answer: stats.CrossedDelta | None = None
    p_improve: float = math.nan               # P(a run of `to` beats a run of `from`), over seed pairs
    holm_p: float = math.nan
    same_as: str = ""                         # 'table3: DAD-3DNet → Trans3DHead' when those runs are reported there
    caveat: str = ""                          # the runs' convergence, when it qualifies the verdict

    @property
    def interval(self) -> tuple[float, float]:
        return self.answer.interval() if self.answer else (math.nan, math.nan)

    @property
    def margin(self) -> float:
        """The equivalence margin: the size of the paper's own change (docs/statistics.md)."""
        return abs(self.paper_change) if np.isfinite(self.paper_change) else math.nan

    @property
    def mde(self) -> float:
        return self.answer.mde() if self.answer else math.nan

    def seeds_needed(self) -> int | None:
        return stats.seeds_to_detect(self.answer, self.paper_change) if self.answer else None

    def images_needed(self) -> int | None:
        return stats.images_to_detect(self.answer, self.paper_change) if self.answer else None


def step_matrix(before: RowRuns, after: RowRuns, metric: str) -> tuple[np.ndarray, pd.Series, pd.Series]:
    """The seeds x images matrix of after - before (seed s of one row paired with seed s of the other; images
    paired by item id, those scored by every run of both rows), and each row's run means over those images."""
    # a non-finite score (a diverged prediction) is an image that run did not score
    b, a = (rr.per_image(metric).replace([np.inf, -np.inf], np.nan) for rr in (before, after))
    items = b.index.intersection(a.index)
    both = pd.concat([b.loc[items], a.loc[items]], axis=1).dropna().index
    seeds = [s for s in b.columns if s in a.columns]
    d = (a.loc[both, seeds] - b.loc[both, seeds]).to_numpy(dtype=float).T
    return d, b.loc[both].mean(), a.loc[both].mean()


def table_pool(rows: list[RowRuns], metric: str, seeds: list[int]) -> stats.SeedPool | None:
    """The table's variant x seed interaction on ``seeds`` (``stats.seed_pool``): every row with a finished run
    on two or more of them (a row with fewer seeds than the step, the others' cells left empty), a row whose
    runs another row already brought counted once, each run averaged over the images all of them scored. None
    with fewer than 3 such rows."""
    frames, seen = [], set()
    for rr in rows:
        frame = rr.per_image(metric).replace([np.inf, -np.inf], np.nan)
        present = [seed for seed in seeds if seed in frame.columns]
        runs = tuple(sorted(run.run_id for run in rr.done if run.seed in present))
        if len(present) < 2 or runs in seen:
            continue
        seen.add(runs)
        frames.append(frame[present])
    if len(frames) < 3:
        return None
    common = functools.reduce(pd.Index.intersection, (f.dropna().index for f in frames))
    return (stats.seed_pool([f.loc[common].mean().reindex(seeds).to_numpy() for f in frames])
            if len(common) >= 2 else None)


UNCONVERGED = "rests on unconverged runs"


def _caveat(before: RowRuns, after: RowRuns) -> str:
    flags = [before.converged(), after.converged()]
    return (UNCONVERGED if any(f is False for f in flags)
            else "convergence unknown" if any(f is None for f in flags) else "")


def _compute(step: Step, metric: str, paper_change: float, before: RowRuns | None,
             after: RowRuns | None, pool_for) -> StepResult:
    result = StepResult(step, metric, paper_change, "")
    if before is None or after is None:
        result.verdict = "paper-only row: nothing to compare"
        return result
    missing = [rr.row.label for rr in (before, after) if not rr.done]
    if missing:
        result.verdict = f"not computed: no finished runs for {', '.join(missing)}"
        return result
    d, before_means, after_means = step_matrix(before, after, metric)
    if d.shape[0] == 0 or d.shape[1] < 2:
        result.verdict = ("not computed: no seed finished for both rows" if d.shape[0] == 0
                          else "not computed: fewer than 2 images scored by every run")
        return result
    seeds = [s for s in before.per_image(metric).columns if s in after.per_image(metric).columns]
    result.answer = stats.crossed_delta(d, pool_for(metric, tuple(seeds)))
    result.p_improve = stats.probability_of_improvement(before_means, after_means, METRICS[metric].direction)
    return result


def step_results(spec: TableSpec, by_label: dict[str, RowRuns],
                 same_runs: dict[tuple[str, str, str], str]) -> list[StepResult]:
    """Every ablation step of ``spec`` on every metric it names, with its verdict after Holm over the table's
    family. ``same_runs``: (from, to, metric) -> where a step on the same runs is reported first; such a step
    is pointed there, computed once, and left out of this table's family."""
    results, table_rows, pools = [], [rr for rr in by_label.values() if rr is not None], {}

    def pool_for(metric: str, seeds: tuple) -> stats.SeedPool | None:
        """The table's pool on those seeds, computed once: every step on them shares it."""
        if (metric, seeds) not in pools:
            pools[metric, seeds] = table_pool(table_rows, metric, list(seeds))
        return pools[metric, seeds]

    for step in spec.steps:
        before, after = by_label.get(step.from_label), by_label.get(step.to_label)
        for metric in step.metrics:
            paper_change = spec.row(step.to_label).paper.get(metric, math.nan) - \
                spec.row(step.from_label).paper.get(metric, math.nan)
            first = same_runs.get((step.from_label, step.to_label, metric))
            if first:
                table, pair = first.split(": ", 1)
                results.append(StepResult(step, metric, paper_change,
                                          f"same runs as [{table}]({table}.md) {pair}: reported there", same_as=first))
                continue
            result = _compute(step, metric, paper_change, before, after, pool_for)
            result.caveat = _caveat(before, after) if result.answer else ""
            results.append(result)
    family = [r for r in results if r.answer is not None]
    for r, p in zip(family, stats.holm([r.answer.p_value() for r in family])):
        r.holm_p = float(p)
        r.verdict = verdict_text(r)
    return results


def verdict_text(r: StepResult) -> str:
    """The verdict and, in brackets, what qualifies it: TOST's bound (the paper's change, or beside a 'not
    distinguishable' the smallest bound TOST accepts), the detectable effect, images only (one seed),
    unconverged runs."""
    within = bool(r.answer.within(r.margin)) if np.isfinite(r.margin) and r.margin > 0 else False
    kind = stats.verdict(r.answer.delta, r.holm_p, r.paper_change, within_margin=within)
    notes = []
    if within:
        notes.append(f"|change| < {fmt(r.margin, r.metric)}, TOST")
    if kind in (stats.NOISE, stats.EQUIVALENT):
        notes.append(f"detectable: {fmt(r.mde, r.metric)}")
    if kind == stats.NOISE and np.isfinite(bound := r.answer.equivalence_bound()):
        notes.append(f"|change| < {fmt(bound, r.metric)}, TOST")
    if r.answer.images_only:
        notes.append("one seed: images only")
    if r.answer.own_seed_term:
        notes.append("its own seed spread, above the table's")
    if r.caveat:
        notes.append(r.caveat)
    return kind + (f" ({'; '.join(notes)})" if notes else "")


def count_text(n: int | None, limit: int) -> str:
    """'7' seeds, '19,280' images; '> limit' when not even that many would resolve it."""
    return f"> {limit:,}" if n is None else f"{n:,}"


def step_cells(r: StepResult) -> list[str]:
    """change (ours) [95% CI], seeds × images, Holm p, MDE, seeds needed, images needed, P(better)."""
    if r.answer is None:
        return ["—"] * 7
    a, (lo, hi) = r.answer, r.interval
    resolvable = np.isfinite(r.paper_change) and r.paper_change != 0
    seeds = ("—" if not resolvable or not np.isfinite(a.components.seed)       # one seed: the seed term is unknown
             else count_text(r.seeds_needed(), stats.MAX_SEEDS))
    images = "—" if not resolvable else count_text(r.images_needed(), stats.MAX_IMAGES)
    return [f"{fmt(a.delta, r.metric)} [{fmt(lo, r.metric)}, {fmt(hi, r.metric)}]", f"{a.n_seeds} × {a.n_items}",
            "< 0.001" if r.holm_p < 0.001 else fmt(r.holm_p, spec="{:.3f}"), fmt(r.mde, r.metric), seeds, images,
            fmt(r.p_improve, spec="{:.2f}")]


STEP_HEADER = ["change (ours) [95% CI]", "seeds × images", "Holm p", "MDE (80%)", "seeds needed", "images needed",
               "P(better)"]
