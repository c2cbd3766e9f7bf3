"""Statistics to table cells: fixed-format numbers, intervals, convergence and status texts (the ablation
steps' cells: ``steps``)."""
from __future__ import annotations

import numpy as np

from experiments.overrides import describe
from experiments.registry import DEFAULT_PROFILE
from experiments.report import convergence, stats
from experiments.report.gather import RowRuns
from trans3dhead.metrics import METRICS


def fmt(value, metric: str | None = None, spec: str | None = None) -> str:
    """Fixed-format number (the metric's decimals, or ``spec``); '—' for none/NaN; never '-0.000'."""
    if value is None or not np.isfinite(value):
        return "—"
    decimals = METRICS[metric].decimals if metric in METRICS else 3
    text = spec.format(value) if spec else f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def metric_title(metric: str) -> str:
    """'NME ↓': the metric's display name and which way is better."""
    fact = METRICS[metric]
    return f"{fact.title} {'↓' if fact.direction == 'lower' else '↑'}"


def clean(text: str, limit: int = 120) -> str:
    """One line, no table-breaking pipes, bounded length."""
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_command(table: str, seeds: list[int], profile: str, overrides: tuple = ()) -> str:
    """The command that trains what a table lacks (the default profile goes unsaid)."""
    return (f"python -m experiments.run {table}" + (f" --profile {profile}" if profile != DEFAULT_PROFILE else "")
            + (f" --seeds {max(seeds) + 1}" if max(seeds) > 0 else "")
            + (f" {describe(overrides)}" if overrides else ""))


def status_text(rr: RowRuns, table: str, seeds: list[int], overrides: tuple = ()) -> str:
    """'done', or every seed that is not, with why: failed (the error), running, missing (the command); in
    a table that reports efficiency, also a finished seed whose efficiency was not measured. Seeds with the
    same problem share one entry ('seeds 1, 2: missing — run ...')."""
    command = run_command(table, seeds, rr.profile, overrides)
    seeds_of: dict[str, list[int]] = {}
    for run in rr.runs:
        for problem in _seed_problems(run, rr.spec, command):
            seeds_of.setdefault(problem, []).append(run.seed)
    if len(rr.runs) == 1:
        return "; ".join(seeds_of) or "done"
    return "; ".join(f"seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, ss))}: {problem}"
                     for problem, ss in seeds_of.items()) or "done"


def _seed_problems(run, spec, command: str) -> list[str]:
    if run.usable:
        return [f"efficiency not measured — run `{command}`"] if spec.efficiency and not run.efficiency else []
    if run.status == "failed":
        return [f"failed: {clean(run.error) or 'no error recorded'}"]
    if run.status in ("running", "queued"):
        return [run.status]
    if run.status == "interrupted":
        return [f"interrupted — `{command}` resumes it"]
    lacking = "" if run.status == "missing" else f" ({spec.dataset}/{spec.split} not evaluated)"
    return [f"missing{lacking} — run `{command}`"]


def convergence_text(row_change: float | None, seed_changes: list[float | None]) -> str:
    """'yes' / 'no' from the row's seed-mean curve, then that change over the last 20% of training; beside it,
    when the row has several seeds and some fail alone, 'per seed: k/n no' (a single seed's curve is noisier)."""
    if not seed_changes:
        return "—"
    if row_change is None:
        return "unknown"
    text = "yes" if convergence.change_within(row_change) else "no"
    details = [f"{row_change:+.1%}"] if np.isfinite(row_change) else []
    n_no = sum(c is not None and not convergence.change_within(c) for c in seed_changes)
    if n_no and len(seed_changes) > 1:
        details.append(f"per seed: {n_no}/{len(seed_changes)} no")
    return f"{text} ({'; '.join(details)})" if details else text


def metric_cell(summary: stats.SeedSummary, n_seeds: int, metric: str, of_seeds: int | None = None) -> str:
    """'mean' for one seed, 'mean [lo, hi]' for several; says so when only some of the table's seeds finished."""
    if n_seeds == 0:
        return "—"
    text = fmt(summary.mean, metric)
    if np.isfinite(summary.lo) and np.isfinite(summary.hi):
        text += f" [{fmt(summary.lo, metric)}, {fmt(summary.hi, metric)}]"
    if of_seeds is not None and n_seeds < of_seeds:
        text += f" ({n_seeds}/{of_seeds} seeds)"
    return text
