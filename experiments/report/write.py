"""Whole reports: ``reports/<profile>/<table>.md`` (+ PNGs) and the index, written or checked byte for byte."""
from __future__ import annotations

import filecmp
import hashlib
import re
import tempfile
from pathlib import Path

from experiments import store
from experiments.registry import Registry
from experiments.report.figure_sections import figure_lines, table_figure_lines
from experiments.report.gather import Inputs, TableContext, gather_row, seed_noise, table_seeds
from experiments.report.image_figures import IMAGE_FIGURES
from experiments.report.provenance import provenance
from experiments.report.sections import CLAIMS, claims_lines, index_lines, results_tables, steps_section
from experiments.report.steps import step_results

MAX_FOLDER_NAME = 80


def report_folder(profile: str, overrides: tuple = ()) -> str:
    """``reports/`` subfolder: the profile, or the profile and its ``--set`` overrides (so overridden runs
    never overwrite the profile's own reports), e.g. ``smoke+model.d_model=16``."""
    if not overrides:
        return profile
    name = "+".join([profile, *(re.sub(r"[^A-Za-z0-9._=,-]+", "_", o.text) for o in overrides)])
    if len(name) > MAX_FOLDER_NAME:
        name = f"{profile}+set-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name


def table_context(inputs: Inputs, name: str, out_dir: Path) -> TableContext:
    """One table's runs, seed noise and ablation steps (with their Holm family), gathered from the store
    (nothing written)."""
    spec = inputs.registry.table(name)
    seeds = table_seeds(inputs, spec)
    by_label = {row.label: gather_row(inputs, row, spec, seeds) for row in spec.rows if row.variant is not None}
    ctx = TableContext(name, spec, inputs, seeds, by_label, seed_noise(by_label, spec.metrics), out_dir)
    if spec.kind == "table":
        ctx.steps = step_results(spec, by_label, inputs.same_runs(name, spec))
    return ctx


def table_report(inputs: Inputs, name: str, out_dir: Path) -> TableContext:
    """Writes one table's or figure's report (markdown and its PNGs) into ``out_dir``; returns its context
    (with the ablation steps it computed, which the claims page gathers)."""
    ctx = table_context(inputs, name, out_dir)
    spec = ctx.spec
    lines = [f"# {name}: {spec.title}", "",
             *provenance(spec, inputs.profile, list(ctx.by_label.values()), ctx.seeds, ctx.noise, inputs.overrides), ""]
    if spec.kind == "table":
        lines += results_tables(ctx)
        lines += steps_section(ctx.steps)
        lines += table_figure_lines(ctx)
    else:
        lines += figure_lines(ctx)
    (out_dir / f"{name}.md").write_text("\n".join(lines).rstrip() + "\n")
    return ctx


def _write(registry: Registry, profile: str, tables: list[str], results_root: Path, out_dir: Path,
           overrides: tuple) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(registry, profile, tuple(overrides), Path(results_root), store.collect(results_root, profile))
    contexts = [table_report(inputs, name, out_dir) for name in tables]
    index, claims = out_dir / "README.md", out_dir / CLAIMS
    index.write_text("\n".join(index_lines(inputs, out_dir)) + "\n")
    every_table = set(tables) == set(registry.tables)
    if every_table:       # the claims page summarises every table, so only a full report writes it
        beside = registry.profiles.get(profile, {}).get("verdicts_beside")
        other = None
        if beside and not overrides:
            other_inputs = Inputs(registry, beside, (), Path(results_root), store.collect(results_root, beside))
            other = (beside, [table_context(other_inputs, c.name, out_dir) for c in contexts if c.steps],
                     not other_inputs.frame.empty)
        claims.write_text("\n".join(claims_lines(inputs, [c for c in contexts if c.steps], other)) + "\n")
    return [out_dir / f"{c.name}.md" for c in contexts] + [index] + ([claims] if every_table else [])


def write_reports(registry: Registry, profile: str, tables: list[str], results_root: Path,
                  reports_root: Path, overrides: tuple = ()) -> list[Path]:
    """Writes ``reports/<profile>/<table>.md`` (+ PNGs) for each table and the index README.md
    (``reports/<profile>+<overrides>/`` for runs made with ``--set``)."""
    out_dir = Path(reports_root) / report_folder(profile, overrides)
    return _write(registry, profile, tables, results_root, out_dir, overrides)


def check_reports(registry: Registry, profile: str, results_root: Path, reports_root: Path,
                  overrides: tuple = ()) -> list[str]:
    """Regenerates every committed report into a temporary folder; lists each file that differs.

    Markdown and PNGs are compared byte for byte, and a committed file that regeneration would not
    write is reported as stale. One exception: Figure 7 and the gallery are drawn from the dataset's
    images, which a checkout without the (generated) dataset does not have; when regeneration could
    not draw them they are not compared, and the problem list says nothing about them.
    """
    folder = report_folder(profile, overrides)
    committed = Path(reports_root) / folder
    if not committed.is_dir():
        return [f"{committed} does not exist: nothing to check"]
    tables = sorted(p.stem for p in committed.glob("*.md") if p.stem in registry.tables)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / folder
        _write(registry, profile, tables, results_root, fresh, overrides)
        problems = []
        fresh_names = {p.name for p in fresh.iterdir()}
        for path in sorted(fresh.iterdir()):
            old = committed / path.name
            if not old.is_file():
                problems.append(f"{old} is missing (regeneration writes it)")
            elif not filecmp.cmp(old, path, shallow=False):
                problems.append(f"{old} differs from a regeneration from {Path(results_root) / profile}")
        for old in sorted(committed.iterdir()):
            if old.is_file() and old.name not in fresh_names and old.name not in IMAGE_FIGURES:
                problems.append(f"{old} is stale: regeneration does not write it")
        return problems
