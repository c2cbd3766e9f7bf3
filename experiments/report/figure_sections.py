"""Figure dispatch: each name a table's ``figures:`` key may hold (``registry.FIGURES``) -> the section that
draws it. A table's figures summarise the whole table; a figure's are drawn per row that has finished runs."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from experiments import store
from experiments.report import figures, stats
from experiments.report.cells import convergence_text, fmt, metric_title, status_text
from experiments.report.gather import RowRuns, TableContext
from experiments.report.image_figures import marr_layers_section
from experiments.report.sections import md_table
from experiments.report.steps import UNCONVERGED, StepResult


def _deltas_frame(results: list[StepResult]) -> pd.DataFrame:
    """Each computed step's change and its crossed-model interval (the steps table's), with its verdict."""
    return pd.DataFrame([{"step": f"{r.step.from_label} → {r.step.to_label}", "metric": metric_title(r.metric),
                          "delta": r.answer.delta, "lo": r.interval[0], "hi": r.interval[1], "verdict": r.verdict}
                         for r in results if r.answer is not None and np.isfinite(r.answer.delta)])


def deltas_section(ctx: TableContext) -> list[str]:
    """Each ablation step's change with its interval, one panel per metric."""
    deltas = _deltas_frame(ctx.steps)
    if deltas.empty:
        return []
    figures.ablation_deltas(deltas, ctx.out_dir / f"{ctx.name}-deltas.png")
    return [f"![ablation deltas]({ctx.name}-deltas.png)", ""]


def curves_section(ctx: TableContext) -> list[str]:
    """Training curves, one line per run (rows sharing a run share its line)."""
    labels: dict[tuple[str, int], list[str]] = {}
    paths: dict[tuple[str, int], Path] = {}
    for label, rr in ctx.by_label.items():
        for run in rr.done:
            labels.setdefault((run.run_id, run.seed), []).append(label)
            paths[(run.run_id, run.seed)] = run.path
    curves = {}
    for key, names in labels.items():
        curve = store.curve(paths[key])
        if curve is not None and "val_nme" in curve:
            curves[f"{' = '.join(names)} (seed {key[1]})"] = curve
    if not curves:
        return []
    figures.training_curves(curves, ctx.out_dir / f"{ctx.name}-curves.png")
    return ["## Training curves", "", f"![training curves]({ctx.name}-curves.png)", ""]


def row_png(ctx: TableContext, rr: RowRuns) -> str:
    """The picture's file name: ``<figure>.png`` for the figure's first row, ``<figure>-<variant>.png`` after."""
    first = next(iter(ctx.by_label.values()))
    return f"{ctx.name}.png" if rr is first else f"{ctx.name}-{rr.row.variant}.png"


def residual_histogram_section(ctx: TableContext, rr: RowRuns) -> list[str]:
    """Figure 8: the MARR residuals per decoder layer, and whether deeper layers' are smaller."""
    data = [store.marr(r.path, rr.spec.dataset, rr.spec.split) for r in rr.done]
    data = [d for d in data if d is not None and d["residuals"].size]
    if not data:
        return ["No MARR residuals stored for this run (a variant without MARR?).", ""]
    residuals = np.concatenate([d["residuals"] for d in data], axis=1)          # (L, n over seeds, 68, 2)
    png = row_png(ctx, rr)
    figures.residual_histogram(residuals, ctx.out_dir / png)
    magnitudes = np.abs(residuals)
    rows = [[f"layer {i + 1}", fmt(float(np.median(m)), spec="{:.4f}"), fmt(float(m.mean()), spec="{:.4f}"),
             fmt(100 * float((m < 0.01).mean()), spec="{:.1f}")] for i, m in enumerate(magnitudes)]
    lines = [f"![Figure 8: {rr.row.label}]({png})", "",
             f"Residuals of {residuals.shape[1]} images (all seeds' runs), normalised by the head box.", "",
             md_table(["decoder layer", "median of abs. residual", "mean of abs. residual", "% below 0.01"], rows), ""]
    if len(magnitudes) >= 2:      # the paper's claim: deeper layers predict residuals closer to 0
        lines += _deeper_layer_claim(rr, data)
    return lines


def _deeper_layer_claim(rr: RowRuns, data: list[dict]) -> list[str]:
    """Layer L − layer 1 of each image's mean absolute residual, seeds x images through the crossed model (images
    paired by item id where the store names them, seed s is seed s's run)."""
    per_seed = {}
    for seed, d in enumerate(data):
        per_image = np.abs(d["residuals"]).mean(axis=(2, 3))                   # (L, n)
        items = d["item_ids"] if "item_ids" in d and len(d["item_ids"]) == per_image.shape[1] else None
        per_seed[seed] = pd.Series(per_image[-1] - per_image[0], index=items)
    matrix = pd.DataFrame(per_seed).dropna().to_numpy(dtype=float).T
    answer = stats.crossed_delta(matrix)
    lo, hi = answer.interval()
    verdict = stats.verdict(answer.delta, answer.p_value(), -1.0)           # one claim: a family of one
    notes = ["one seed: images only"] if answer.images_only else []
    if rr.converged() is False:
        notes.append(UNCONVERGED)
    verdict += f" ({'; '.join(notes)})" if notes else ""
    return [f"Paper: residuals approach 0 as the decoder deepens. Ours, mean absolute residual per image, layer "
            f"{len(data[0]['residuals'])} − layer 1: {fmt(answer.delta, spec='{:.4f}')} "
            f"[{fmt(lo, spec='{:.4f}')}, {fmt(hi, spec='{:.4f}')}] over {answer.n_seeds} seed(s) × {answer.n_items} "
            f"images (crossed seed × image model, p {fmt(answer.p_value(), spec='{:.3g}')}; detectable "
            f"{fmt(answer.mde(), spec='{:.4f}')}): **{verdict}**.", ""]


TABLE_FIGURES: dict[str, Callable[[TableContext], list[str]]] = {
    "deltas": deltas_section, "curves": curves_section}
ROW_FIGURES: dict[str, Callable[[TableContext, RowRuns], list[str]]] = {
    "marr_layers": marr_layers_section, "residual_histogram": residual_histogram_section}


def table_figure_lines(ctx: TableContext) -> list[str]:
    """A table's figures, in the order its ``figures:`` key lists them."""
    return [line for key in ctx.spec.figures for line in TABLE_FIGURES[key](ctx)]


def figure_lines(ctx: TableContext) -> list[str]:
    """A figure's report: per row its runs' state, then each of its figures drawn from them."""
    lines = []
    for label, rr in ctx.by_label.items():
        status = status_text(rr, ctx.name, ctx.seeds, ctx.inputs.overrides)
        converged = convergence_text(rr.convergence_change, rr.seed_convergence_changes)
        lines += [f"Run: {label}; converged: {converged}; status: {status}", ""]
        if rr.done:
            lines += [line for key in ctx.spec.figures for line in ROW_FIGURES[key](ctx, rr)]
    return lines
