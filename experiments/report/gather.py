"""What the result store holds for a report: one table row's runs across seeds, read through ``store`` only."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import store
from experiments.registry import Registry, Row, TableSpec
from experiments.report import convergence, stats


@dataclass(frozen=True)
class Inputs:
    """What every report of one profile reads: the registry, the command line's ``--set`` overrides (they
    pick the runs) and the store (``frame`` is ``store.collect`` of the profile)."""
    registry: Registry
    profile: str
    overrides: tuple
    results_root: Path
    frame: pd.DataFrame

    def run_id(self, variant: str, seed: int) -> str:
        return self.registry.resolve(variant, self.profile, seed, self.overrides).run_id

    def run_dir(self, run_id: str) -> Path:
        return store.run_dir(self.results_root, self.profile, run_id)

    @cached_property
    def claim_owners(self) -> dict[tuple, str]:
        """Each comparison (the two rows' runs, the evaluation, the metric) -> the first step that makes it,
        in the registry's table order, as 'table3: DAD-3DNet → Trans3DHead'. Run ids name the runs: a row
        of another table on the same variant and profile is the same runs. Read from the registry alone, so
        a table reported by itself points where the full report does."""
        owners: dict[tuple, str] = {}
        for name, spec in self.registry.tables.items():
            for step in spec.steps:
                key = self._comparison(spec, step)
                for metric in step.metrics if key else ():
                    owners.setdefault((*key, metric), f"{name}: {step.from_label} → {step.to_label}")
        return owners

    def _comparison(self, spec: TableSpec, step) -> tuple | None:
        variants = [spec.row(label).variant for label in (step.from_label, step.to_label)]
        if None in variants:
            return None
        return (*(self.run_id(v, 0) for v in variants), spec.dataset, spec.split)

    def same_runs(self, name: str, spec: TableSpec) -> dict[tuple[str, str, str], str]:
        """This table's steps that an earlier step reports on the same runs: (from, to, metric) -> that step."""
        out = {}
        for step in spec.steps:
            key = self._comparison(spec, step)
            for metric in step.metrics if key else ():
                first = self.claim_owners[(*key, metric)]
                if first != f"{name}: {step.from_label} → {step.to_label}":
                    out[(step.from_label, step.to_label, metric)] = first
        return out


@dataclass
class SeedRun:
    """One seed's run of a table row as the store holds it."""
    seed: int
    run_id: str
    path: Path
    status: str                                   # done | failed | running | missing
    error: str
    meta: dict
    evaluation: dict | None                       # the collect() row of this table's (dataset, split)
    efficiency: dict                              # from whichever evaluation of the run measured it

    @property
    def usable(self) -> bool:
        return self.status == "done" and self.evaluation is not None


@dataclass
class RowRuns:
    """One table row (a variant) across the table's seeds."""
    row: Row
    spec: TableSpec
    profile: str
    runs: list[SeedRun] = field(default_factory=list)

    @property
    def done(self) -> list[SeedRun]:
        return [r for r in self.runs if r.usable]

    def values(self, metric: str) -> list[float]:
        """The run-level metric of each finished seed."""
        return [r.evaluation.get(metric, math.nan) for r in self.done]

    def summary(self, metric: str, noise: stats.SeedNoise | None = None) -> stats.SeedSummary:
        return stats.seed_summary(self.values(metric), noise)

    @cached_property
    def _per_sample(self) -> dict[int, pd.DataFrame]:
        """Each finished seed's per-image scores, indexed by item id (read once: every step and metric asks)."""
        return {run.seed: store.per_sample(run.path, self.spec.dataset, self.spec.split).set_index("item_id")
                for run in self.done}

    def per_image(self, metric: str) -> pd.DataFrame:
        """item_id x seed table of one metric (an ablation step pairs it with another row's by seed and item)."""
        return pd.DataFrame({seed: frame[metric] for seed, frame in self._per_sample.items() if metric in frame})

    def n_items(self) -> list[int]:
        """How many images each finished seed's run was scored on (the run's mean averages them)."""
        return [len(frame) for frame in self._per_sample.values()]

    @cached_property
    def _curves(self) -> list[pd.DataFrame | None]:
        """Each finished seed's validation curve (read once: the results table, every ablation step and the
        figures ask; rows are built before use)."""
        return [store.curve(r.path) for r in self.done]

    @cached_property
    def convergence_change(self) -> float | None:
        """The row's relative change of validation NME over the last 20% of training, on its seed-mean curve
        (what its cells average): the reports' convergence test reads this."""
        return convergence.row_window_change(self._curves) if self.done else None

    @cached_property
    def seed_convergence_changes(self) -> list[float | None]:
        """Each finished seed's own change over the same window: shown beside the row's, never deciding."""
        return [convergence.window_change(curve) for curve in self._curves]

    def converged(self) -> bool | None:
        """The reports' convergence test on the row (None: no finished seed or no curve to tell)."""
        return convergence.change_within(self.convergence_change)

    def efficiency(self, key: str) -> float:
        """The mean over finished seeds of one efficiency measure (NaN when none measured it)."""
        values = [r.efficiency.get(key) for r in self.done]
        if key == "train_wall_s":               # the run's own record, also when efficiency was not measured
            values = [r.meta.get("train_wall_s", r.efficiency.get(key)) for r in self.done]
        values = [float(v) for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(values)) if values else math.nan


@dataclass
class TableContext:
    """One table's report in the making: what its sections and figures read."""
    name: str
    spec: TableSpec
    inputs: Inputs
    seeds: list[int]
    by_label: dict[str, RowRuns]
    noise: dict[str, stats.SeedNoise]
    out_dir: Path
    steps: list = field(default_factory=list)          # steps.StepResult, once computed


def seed_noise(by_label: dict[str, RowRuns], metrics: list[str]) -> dict[str, stats.SeedNoise]:
    """Per metric, the seed-to-seed SD pooled over the table's rows; a run set that fills two rows
    (a variant listed twice, e.g. +QA and E/D 0/2 in Table 3) counts once."""
    distinct = {tuple(r.run_id for r in rr.done): rr for rr in by_label.values() if rr.done}
    return {m: stats.pooled_seed_noise(rr.values(m) for rr in distinct.values()) for m in metrics}


def _frame_row(frame: pd.DataFrame, run_id: str, dataset: str, split: str) -> dict | None:
    hits = frame[(frame["run_id"] == run_id) & (frame["dataset"] == dataset) & (frame["split"] == split)]
    return hits.iloc[0].to_dict() if not hits.empty else None


def _measured_efficiency(frame: pd.DataFrame, run_id: str) -> dict:
    """The run's efficiency as ``store.collect`` puts it on each of its rows; any table may report it."""
    hits = frame[(frame["run_id"] == run_id) & frame["params"].notna()]
    if hits.empty:
        return {}
    first = hits.iloc[0]
    return {key: first[key] for key in store.EFFICIENCY_COLUMNS if pd.notna(first[key])}


def gather_row(inputs: Inputs, row: Row, spec: TableSpec, seeds: list[int]) -> RowRuns:
    """Every seed's run of one row on a table of ``seeds`` (and the row's own further seeds, ``row_seeds``):
    its status, error, provenance and this table's evaluation."""
    result = RowRuns(row, spec, inputs.profile)
    for seed in row_seeds(row, seeds):
        run_id = inputs.run_id(row.variant, seed)
        path = inputs.run_dir(run_id)
        meta = store.read_meta(path) or {}
        evaluation = _frame_row(inputs.frame, run_id, spec.dataset, spec.split)
        status = meta.get("status", "missing")
        result.runs.append(SeedRun(seed, run_id, path, status, str(meta.get("error") or ""), meta, evaluation,
                                   _measured_efficiency(inputs.frame, run_id)))
    return result


def table_seeds(inputs: Inputs, spec: TableSpec) -> list[int]:
    """The table's own seeds (whatever their runs' status); [0] when none exist yet. A row counts the seeds it
    has runs for, except a row of a variant that some row of the registry trains on extra seeds (``Row.seeds``):
    it counts only the seeds that the table asking for more has on its other rows, since its further seeds were
    trained for that table's claim, not asked of this one (a figure of Trans3DHead alone has Table 3's seeds).
    Where that table has no other row trained yet, the variant counts the seeds it was evaluated on for this
    table. ``row_seeds`` adds a row's own extra seeds."""
    frame = inputs.frame
    runs = set(frame["run_id"].dropna())
    tables = inputs.registry.tables.values()
    extra = {row.variant for table in tables for row in table.rows if row.seeds}
    candidates = sorted({int(s) for s in frame["seed"].dropna()} | {0})

    def seeds_of(variants: set, among: list[int], found: set) -> set[int]:
        return {seed for seed in among if any(inputs.run_id(variant, seed) in found for variant in variants)}

    def others(table: TableSpec) -> set:
        return {row.variant for row in table.rows if row.variant is not None and row.variant not in extra}

    variants = {row.variant for row in spec.rows if row.variant is not None}
    seeds = seeds_of(others(spec), candidates, runs)
    evaluated = set(frame.loc[(frame["dataset"] == spec.dataset) & (frame["split"] == spec.split), "run_id"])
    studies = {table.name: seeds_of(others(table), candidates, runs)       # each table asking for extra seeds, once
               for table in tables if any(row.seeds for row in table.rows)}
    for variant in variants & extra:
        asked = set().union(*(studies[table.name] for table in tables
                              if any(row.variant == variant and row.seeds for row in table.rows)))
        # no other row trained yet anywhere: the seeds this table's evaluation has of the variant
        seeds |= seeds_of({variant}, sorted(asked), runs) if asked else seeds_of({variant}, candidates, evaluated)
    return sorted(seeds) or [0]


def row_seeds(row: Row, seeds: list[int]) -> list[int]:
    """The seeds a row of a table on ``seeds`` is expected to have: the table's, and, where the table has
    several, the row's own further ones (``Row.seed_count``, as the plan trains them)."""
    return sorted(set(seeds) | set(range(row.seed_count(max(seeds) + 1)))) if len(seeds) > 1 else seeds


def seeds_text(spec: TableSpec, seeds: list[int]) -> str:
    """'0, 1, 2' or '0, 1, 2 (+Euler+QA, Trans3DHead: 0-7)': the table's seeds and the rows that have more."""
    more: dict[str, list[str]] = {}
    for row in spec.rows:
        own = row_seeds(row, seeds) if row.variant is not None else seeds
        if own != seeds:
            more.setdefault(f"{own[0]}-{own[-1]}" if own == list(range(own[0], own[-1] + 1)) else
                            ", ".join(map(str, own)), []).append(row.label)
    return ", ".join(map(str, seeds)) + "".join(f" ({', '.join(labels)}: {span})" for span, labels in more.items())
