"""Markdown reports of the paper's tables and figures, regenerated from the result store.

Every number comes from ``results/``; the paper's numbers sit beside ours; paper-only, missing,
running and failed rows are shown as such; each ablation step gets a paired bootstrap interval and
a verdict. Reports are byte-for-byte reproducible from the same results (``check_reports``): no
clock is read, floats have fixed formats, bootstraps fixed seeds, PNGs no version or date chunk.
"""
from __future__ import annotations

import filecmp
import math
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import figures, stats, store
from experiments.registry import DEFAULT_PROFILE, Registry, Row, Step, TableSpec

METRIC_NAMES = {"nme": "NME", "z5": "Z5 Acc.", "chamfer": "Cham. Dis.", "pose_error": "Pose Err.",
                "mae": "MAE", "pitch": "Pitch", "yaw": "Yaw", "roll": "Roll"}
DECIMALS = {"nme": 3, "z5": 4, "chamfer": 3, "pose_error": 3, "mae": 2, "pitch": 2, "yaw": 2, "roll": 2}
DATASET_NAMES = {"dad3dheads": "DAD-3DHeads", "aflw2000": "AFLW2000-3D"}
# (column title, efficiency key, scale, format); the paper's Table 1 has FPS, so a table that
# reports efficiency shows what we measured of it and of its cost.
EFFICIENCY_COLUMNS = (("Params (M)", "params", 1e-6, "{:.2f}"), ("GFLOPs", "flops", 1e-9, "{:.3f}"),
                      ("FPS b1", "fps_b1", 1.0, "{:.1f}"), ("FPS b32", "fps_b32", 1.0, "{:.1f}"),
                      ("Peak mem b1 (MB)", "peak_mem_b1_mb", 1.0, "{:.1f}"),
                      ("Peak mem b32 (MB)", "peak_mem_b32_mb", 1.0, "{:.1f}"),
                      ("Train wall (s)", "train_wall_s", 1.0, "{:.0f}"))
IMAGE_FIGURES = ("figure7.png", "gallery.png")   # drawn from the dataset's images (see check_reports)
FIGURE7_IMAGES = 4
GALLERY_CASES = 4


# -- formatting ----------------------------------------------------------------------------------
def benchmark_name(benchmark: str, dataset: str) -> str:
    """What the numbers were measured on; synthetic numbers never pass for the real benchmark's."""
    real = DATASET_NAMES.get(dataset, dataset)
    if benchmark == "synthheads":
        return (f"SynthHeads, the embedded procedural benchmark, in the {real} format "
                f"(these are NOT {real} numbers)")
    return real if benchmark == "dad3dheads" else benchmark

def arrow(metric: str) -> str:
    return "↓" if stats.METRIC_DIRECTIONS[metric] == "lower" else "↑"


def fmt(value, metric: str | None = None, spec: str | None = None) -> str:
    """Fixed-format number; '—' for none/NaN; never '-0.000'."""
    if value is None or not np.isfinite(value):
        return "—"
    text = spec.format(value) if spec else f"{value:.{DECIMALS.get(metric, 3)}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def _clean(text: str, limit: int = 120) -> str:
    """One line, no table-breaking pipes, bounded length."""
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- what the store holds for one table row ------------------------------------------------------
@dataclass
class SeedRun:
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

    def per_image(self, metric: str) -> pd.DataFrame:
        """item_id x seed table of one metric (the paired bootstrap averages it over seeds)."""
        columns = {}
        for run in self.done:
            frame = store.per_sample(run.path, self.spec.dataset, self.spec.split)
            if metric in frame:
                columns[run.seed] = frame.set_index("item_id")[metric]
        return pd.DataFrame(columns)

    @cached_property
    def convergence_changes(self) -> list[float | None]:
        """Each finished seed's relative change of validation NME over the last 20% of training (read once:
        the results table, every ablation step and the figures ask for it; rows are built before use)."""
        return [stats.window_change(store.curve(r.path)) for r in self.done]

    def convergence(self) -> list[bool | None]:
        return [stats.change_within(change) for change in self.convergence_changes]

    def efficiency(self, key: str) -> float:
        values = [r.efficiency.get(key) for r in self.done]
        if key == "train_wall_s":               # the run's own record, also when efficiency was not measured
            values = [r.meta.get("train_wall_s", r.efficiency.get(key)) for r in self.done]
        values = [float(v) for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(values)) if values else math.nan


def seed_noise(by_label: dict[str, RowRuns], metrics: list[str]) -> dict[str, stats.SeedNoise]:
    """Per metric, the seed-to-seed SD pooled over the table's rows; a run set that fills two rows
    (a variant listed twice, e.g. +QA and E/D 0/2 in Table 3) counts once."""
    distinct = {tuple(r.run_id for r in rr.done): rr for rr in by_label.values() if rr.done}
    return {m: stats.pooled_seed_noise(rr.values(m) for rr in distinct.values()) for m in metrics}


def _frame_row(frame: pd.DataFrame, run_id: str, dataset: str, split: str) -> dict | None:
    hits = frame[(frame["run_id"] == run_id) & (frame["dataset"] == dataset) & (frame["split"] == split)]
    return hits.iloc[0].to_dict() if not hits.empty else None


def _measured_efficiency(frame: pd.DataFrame, run_id: str) -> dict:
    """A run measures efficiency once, on its first evaluation; any table may report it."""
    hits = frame[(frame["run_id"] == run_id) & frame["params"].notna()]
    if hits.empty:
        return {}
    first = hits.iloc[0]
    return {key: first[key] for _, key, _, _ in EFFICIENCY_COLUMNS if pd.notna(first[key])}


def gather_row(registry: Registry, row: Row, spec: TableSpec, profile: str, frame: pd.DataFrame,
               results_root: Path, seeds: list[int]) -> RowRuns:
    result = RowRuns(row, spec, profile)
    for seed in seeds:
        run_id = registry.resolve(row.variant, profile, seed).run_id
        path = store.run_dir(results_root, profile, run_id)
        meta = store.read_meta(path) or {}
        evaluation = _frame_row(frame, run_id, spec.dataset, spec.split)
        status = meta.get("status", "missing")
        result.runs.append(SeedRun(seed, run_id, path, status, str(meta.get("error") or ""), meta, evaluation,
                                   _measured_efficiency(frame, run_id)))
    return result


def table_seeds(registry: Registry, spec: TableSpec, profile: str, frame: pd.DataFrame) -> list[int]:
    """The seeds any of this table's runs exist for (whatever their status); [0] when none exist yet."""
    stored = set(frame["run_id"].dropna())
    candidates = sorted({int(s) for s in frame["seed"].dropna()} | {0})
    seeds = [seed for seed in candidates
             if any(registry.resolve(row.variant, profile, seed).run_id in stored
                    for row in spec.rows if row.variant is not None)]
    return seeds or [0]


def run_command(table: str, seeds: list[int], profile: str) -> str:
    """The command that trains what a table lacks (the default profile goes unsaid)."""
    return (f"python -m experiments.run {table}" + (f" --profile {profile}" if profile != DEFAULT_PROFILE else "")
            + (f" --seeds {max(seeds) + 1}" if max(seeds) > 0 else ""))


def status_text(rr: RowRuns, table: str, seeds: list[int]) -> str:
    """'done', or every seed that is not, with why: failed (the error), running, missing (the command)."""
    problems = []
    for run in rr.runs:
        if run.usable:
            continue
        who = f"seed {run.seed}: " if len(rr.runs) > 1 else ""
        if run.status == "failed":
            problems.append(f"{who}failed: {_clean(run.error) or 'no error recorded'}")
        elif run.status in ("running", "queued"):
            problems.append(f"{who}{run.status}")
        elif run.status == "interrupted":
            problems.append(f"{who}interrupted — `{run_command(table, seeds, rr.profile)}` resumes it")
        else:
            lacking = "" if run.status == "missing" else f" ({rr.spec.dataset}/{rr.spec.split} not evaluated)"
            problems.append(f"{who}missing{lacking} — run `{run_command(table, seeds, rr.profile)}`")
    return "; ".join(problems) if problems else "done"


def convergence_text(changes: list[float | None]) -> str:
    """'yes' / 'no' / 'no, k/n seeds', then the mean last-20% change over seeds: how far from converged."""
    if not changes:
        return "—"
    if any(c is None for c in changes):
        return "unknown"
    n_no = sum(not stats.change_within(c) for c in changes)
    text = "yes" if n_no == 0 else "no" if n_no == len(changes) else f"no, {n_no}/{len(changes)} seeds"
    mean = float(np.mean(changes))
    return f"{text} ({mean:+.1%})" if np.isfinite(mean) else text


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


# -- the report's parts --------------------------------------------------------------------------
def code_versions(rows: list[RowRuns], trained_with: list[str]) -> str:
    """The training code versions, and those of evaluations added later by other code, if any."""
    evaluated_with = sorted({str(r.evaluation["eval_code_version"]) for rr in rows for r in rr.done
                             if isinstance(r.evaluation.get("eval_code_version"), str)})
    if not trained_with:
        return "—"
    if set(evaluated_with) <= set(trained_with):
        return ", ".join(trained_with)
    return f"{', '.join(trained_with)} (training); {', '.join(evaluated_with)} (evaluation)"


def provenance(spec: TableSpec, profile: str, rows: list[RowRuns], seeds: list[int],
               noise: dict[str, stats.SeedNoise]) -> list[str]:
    metas = [r.meta for rr in rows for r in rr.done]
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
             f"seeds {', '.join(map(str, seeds))}"
             + ("" if len(seeds) > 1 else " (one seed: seed-to-seed noise unknown, no interval over seeds)"),
             f"- Code version(s): {code_versions(rows, values('code_version'))}",
             f"- Hardware: {hardware}",
             f"- Date(s) of the runs: {', '.join(values('date')) or '—'}",
             "- Paper: the published DAD-3DHeads / AFLW2000-3D numbers, beside ours for direction, "
             "not for equality."]
    known = {m: n for m, n in noise.items() if n.known}
    if known:
        spread = ", ".join(f"{METRIC_NAMES[m]} {fmt(n.sd, m)} (df {n.df})" for m, n in known.items())
        lines.append(f"- Ours: mean over seeds [95% t-interval]; the seed-to-seed SD is pooled over this "
                     f"table's rows: {spread}.")
    reference = [r.evaluation.get("mean_face_nme") for rr in rows for r in rr.done]
    reference = [v for v in reference if v is not None and np.isfinite(v)]
    if reference:
        lines.append(f"- Reference: always predicting the training set's mean face scores NME "
                     f"{fmt(float(np.mean(reference)), 'nme')} on this evaluation set.")
    return lines


def results_tables(spec: TableSpec, table: str, by_label: dict[str, RowRuns], seeds: list[int],
                   noise: dict[str, stats.SeedNoise]) -> list[str]:
    header = ["Method"]
    for metric in spec.metrics:
        header += [f"{METRIC_NAMES[metric]} {arrow(metric)} ours", f"{METRIC_NAMES[metric]} paper"]
    if spec.efficiency:
        header += [title for title, *_ in EFFICIENCY_COLUMNS] + ["FPS paper"]
    header += ["converged", "status"]
    lines = []
    for section in spec.sections:
        rows = []
        for row in section.rows:
            paper = [fmt(row.paper.get(m, math.nan), m) for m in spec.metrics]
            if row.variant is None:
                cells = [f"{row.label} (paper only)"]
                cells += [c for p in paper for c in ("paper only", p)]
                if spec.efficiency:
                    cells += ["—"] * len(EFFICIENCY_COLUMNS) + [fmt(row.paper.get("fps"), spec="{:.0f}")]
                rows.append(cells + ["—", "paper only: not implemented in this suite"])
                continue
            rr = by_label[row.label]
            n = len(rr.done)
            cells = [row.label]
            for metric, p in zip(spec.metrics, paper):
                cells += [metric_cell(rr.summary(metric, noise[metric]), n, metric, len(rr.runs)), p]
            if spec.efficiency:
                cells += [fmt(rr.efficiency(key) * scale, spec=form) for _, key, scale, form in EFFICIENCY_COLUMNS]
                cells.append(fmt(row.paper.get("fps"), spec="{:.0f}"))
            cells += [convergence_text(rr.convergence_changes), status_text(rr, table, seeds)]
            rows.append(cells)
        if section.name:
            lines += [f"## {section.name}", ""]
        lines += [md_table(header, rows), ""]
    notes = [f"converged: validation NME moved by less than {stats.CONVERGENCE_TOL:.0%} over the last "
             f"{stats.CONVERGENCE_WINDOW:.0%} of training; in brackets its "
             "mean relative change over seeds (unknown: no validation curve stored)."]
    if spec.efficiency:
        notes.append("Efficiency: ours measured on the device above (mean over seeds); FPS paper: one V100.")
    return lines + notes + [""]


@dataclass
class StepResult:
    step: Step
    metric: str
    delta: stats.Delta | None
    paper_change: float
    verdict: str


def step_results(spec: TableSpec, by_label: dict[str, RowRuns],
                 noise: dict[str, stats.SeedNoise]) -> list[StepResult]:
    results = []
    for step in spec.steps:
        before, after = by_label.get(step.from_label), by_label.get(step.to_label)
        flags = (before.convergence() + after.convergence()) if before and after else []
        caveat = (" (rests on unconverged runs)" if any(f is False for f in flags)
                  else " (convergence unknown)" if any(f is None for f in flags) else "")
        for metric in step.metrics:
            paper_change = spec.row(step.to_label).paper.get(metric, math.nan) - \
                spec.row(step.from_label).paper.get(metric, math.nan)
            if before is None or after is None:
                results.append(StepResult(step, metric, None, paper_change, "paper-only row: nothing to compare"))
                continue
            missing = [rr.row.label for rr in (before, after) if not rr.done]
            if missing:
                results.append(StepResult(step, metric, None, paper_change,
                                          f"not computed: no finished runs for {', '.join(missing)}"))
                continue
            delta = stats.paired_delta(before.per_image(metric), after.per_image(metric),
                                       direction=stats.METRIC_DIRECTIONS[metric], noise=noise.get(metric))
            verdict = stats.verdict(delta.delta, delta.lo, delta.hi, paper_change)
            if verdict in (stats.HOLDS, stats.REVERSED, stats.NOISE):
                verdict += caveat
            results.append(StepResult(step, metric, delta, paper_change, verdict))
    return results


def steps_section(results: list[StepResult]) -> list[str]:
    if not results:
        return []
    rows = []
    for r in results:
        d = r.delta
        ours = "—" if d is None else f"{fmt(d.delta, r.metric)} [{fmt(d.lo, r.metric)}, {fmt(d.hi, r.metric)}]"
        rows.append([f"{r.step.from_label} → {r.step.to_label}", f"{METRIC_NAMES[r.metric]} {arrow(r.metric)}",
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


def _deltas_frame(results: list[StepResult]) -> pd.DataFrame:
    return pd.DataFrame([{"step": f"{r.step.from_label} → {r.step.to_label}",
                          "metric": f"{METRIC_NAMES[r.metric]} {arrow(r.metric)}", "delta": r.delta.delta,
                          "lo": r.delta.lo, "hi": r.delta.hi, "verdict": r.verdict}
                         for r in results if r.delta is not None and np.isfinite(r.delta.delta)])


def curves_section(name: str, by_label: dict[str, RowRuns], out_dir: Path) -> list[str]:
    """One line per run (rows sharing a run share its line)."""
    labels: dict[tuple[str, int], list[str]] = {}
    paths: dict[tuple[str, int], Path] = {}
    for label, rr in by_label.items():
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
    figures.training_curves(curves, out_dir / f"{name}-curves.png")
    return ["## Training curves", "", f"![training curves]({name}-curves.png)", ""]


# -- figures 7 and 8 -----------------------------------------------------------------------------
def figure8_section(rr: RowRuns, out_dir: Path) -> list[str]:
    data = [store.marr(r.path, rr.spec.dataset, rr.spec.split) for r in rr.done]
    data = [d for d in data if d is not None and d["residuals"].size]
    if not data:
        return ["No MARR residuals stored for this run (a variant without MARR?).", ""]
    residuals = np.concatenate([d["residuals"] for d in data], axis=1)          # (L, n over seeds, 68, 2)
    figures.residual_histogram(residuals, out_dir / "figure8.png")
    magnitudes = np.abs(residuals)
    rows = [[f"layer {i + 1}", fmt(float(np.median(m)), spec="{:.4f}"), fmt(float(m.mean()), spec="{:.4f}"),
             fmt(100 * float((m < 0.01).mean()), spec="{:.1f}")] for i, m in enumerate(magnitudes)]
    lines = ["![Figure 8](figure8.png)", "",
             f"Residuals of {residuals.shape[1]} images (all seeds' runs), normalised by the head box.", "",
             md_table(["decoder layer", "median of abs. residual", "mean of abs. residual", "% below 0.01"], rows), ""]
    if len(magnitudes) >= 2:      # the paper's claim: deeper layers predict residuals closer to 0
        per_image = magnitudes.mean(axis=(2, 3))                              # (L, n)
        delta = stats.paired_delta(pd.Series(per_image[0]), pd.Series(per_image[-1]), direction="lower")
        verdict = stats.verdict(delta.delta, delta.lo, delta.hi, -1.0)
        flags = rr.convergence()
        if any(f is False for f in flags):
            verdict += " (rests on unconverged runs)"
        lines += [f"Paper: residuals approach 0 as the decoder deepens. Ours, mean absolute residual per image, layer "
                  f"{len(magnitudes)} − layer 1: {fmt(delta.delta, spec='{:.4f}')} "
                  f"[{fmt(delta.lo, spec='{:.4f}')}, {fmt(delta.hi, spec='{:.4f}')}] over {delta.n_items} images: "
                  f"**{verdict}**.", ""]
    return lines


def _split_dir(run: SeedRun, split: str) -> Path:
    """Where the evaluation images live: the generated SynthHeads folder, or the user's DAD-3DHeads root."""
    import yaml
    from trans3dhead.config import RunConfig
    config = RunConfig.from_dict(yaml.safe_load((run.path / "config.yaml").read_text()))
    if config.data.benchmark == "synthheads":
        from trans3dhead.data.embedded import synth_dir     # a pure function of the config: no generation
        return synth_dir(config.data) / "dad3dheads" / split
    return Path(config.data.root) / split


def _split_entries(split_dir: Path) -> dict[str, dict] | None:
    import json
    listing = split_dir / f"{split_dir.name}.json"
    if not listing.is_file():
        return None
    return {entry["item_id"]: entry for entry in json.loads(listing.read_text())}


def _load_image(split_dir: Path, entry: dict) -> np.ndarray:
    from PIL import Image
    with Image.open(split_dir / entry["img_path"]) as image:
        return np.asarray(image.convert("RGB"))


def _crop_mapping(crop_units: np.ndarray, pixels: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Fit pixels = k * crop_units + origin (the evaluation crop); returns (k, origin, worst residual px).

    The stored predictions are the last layer's landmarks mapped to the original image, so the store
    alone recovers each image's crop, and every MARR stage can be drawn on the original image.
    """
    n = len(crop_units)
    design = np.zeros((2 * n, 3))
    design[0::2, 0], design[1::2, 0] = crop_units[:, 0], crop_units[:, 1]
    design[0::2, 1], design[1::2, 2] = 1.0, 1.0
    target = np.asarray(pixels, dtype=float).reshape(-1)
    (k, ox, oy), *_ = np.linalg.lstsq(design, target, rcond=None)
    worst = float(np.abs(design @ np.array([k, ox, oy]) - target).max())
    return float(k), np.array([ox, oy]), worst


def _bbox_window(bbox, margin: float = 1.5) -> figures.Window:
    x, y, w, h = map(float, bbox)
    side = margin * max(w, h)
    return figures.Window(x + w / 2 - side / 2, y + h / 2 - side / 2, side)


def figure7_section(registry: Registry, profile: str, rr: RowRuns, frame: pd.DataFrame, results_root: Path,
                    out_dir: Path) -> list[str]:
    """Figure 7 (MARR stages on the same images) and the gallery. Both need the dataset's images; without
    them the PNGs are left as they are and the text says why (the markdown itself does not change)."""
    run = rr.done[0]
    spec = rr.spec
    data = store.marr(run.path, spec.dataset, spec.split)
    predictions = store.predictions(run.path, spec.dataset, spec.split) or {}
    lines = ["![Figure 7](figure7.png)", "",
             f"Left to right: the fixed mean face (eq. 4), then the landmarks after each decoder layer (eq. 5), on the "
             f"first {FIGURE7_IMAGES} {spec.split} images (seed {run.seed}'s run).", "",
             f"Qualitative gallery: the {GALLERY_CASES} {spec.split} images where this run's NME is worst, DAD-3DNet "
             "beside it when its run exists (landmarks; head axes x red, y green, z blue).", "",
             "![gallery](gallery.png)", "",
             "Both pictures are drawn from the dataset's images; where the dataset is absent they are left as "
             "committed (and `--check` does not compare them).", ""]
    split_dir = _split_dir(run, spec.split)
    entries = _split_entries(split_dir)
    if entries is None:
        return lines
    if data is not None and data.get("mean_face") is not None and data["mean_face"].size:
        _draw_figure7(data, predictions, entries, split_dir, out_dir / "figure7.png")
    per_sample = store.per_sample(run.path, spec.dataset, spec.split)
    if "nme" not in per_sample:             # a split without annotations has no hardest cases
        return lines
    per_sample = per_sample[per_sample["item_id"].isin(list(entries))]
    hardest = per_sample.sort_values(["nme", "item_id"], ascending=[False, True])["item_id"].head(GALLERY_CASES)
    methods = {}
    dad_id = registry.resolve("dad3dnet", profile, run.seed).run_id if "dad3dnet" in registry.variants else None
    dad_dir = store.run_dir(results_root, profile, dad_id) if dad_id else None
    if dad_dir is not None and store.predictions(dad_dir, spec.dataset, spec.split):
        methods["DAD-3DNet"] = dad_dir
    methods[rr.row.label] = run.path
    stored = {name: (store.predictions(path, spec.dataset, spec.split) or {},
                     store.per_sample(path, spec.dataset, spec.split).set_index("item_id")["nme"])
              for name, path in methods.items()}
    cases = []
    for item_id in hardest:
        per_method = {}
        for name, (preds, nmes) in stored.items():
            if item_id in preds:
                per_method[name] = {"landmarks": np.asarray(preds[item_id]["68_landmarks_2d"]),
                                    "rotation": np.asarray(preds[item_id]["rotation_matrix"]),
                                    "nme": nmes.get(item_id)}
        entry = entries[item_id]
        cases.append(figures.GalleryCase(item_id, _load_image(split_dir, entry), _bbox_window(entry["bbox"]),
                                         {name: per_method.get(name) for name in methods}))
    if cases:
        figures.gallery(cases, out_dir / "gallery.png")
    return lines


def _draw_figure7(data: dict, predictions: dict, entries: dict, split_dir: Path, path: Path) -> None:
    item_ids = [str(i) for i in data["item_ids"]]
    panels = []
    for index in np.argsort(item_ids, kind="stable")[:FIGURE7_IMAGES]:
        item_id = item_ids[index]
        if item_id not in predictions or item_id not in entries:
            continue
        last_layer = data["landmarks"][-1, index]
        k, origin, worst = _crop_mapping(last_layer, np.asarray(predictions[item_id]["68_landmarks_2d"]))
        if worst > 1.0:       # the stored landmarks are not this crop's last layer: drawing would mislead
            continue
        stages = [data["mean_face"]] + [layer[index] for layer in data["landmarks"]]
        panels.append(figures.Panel(_load_image(split_dir, entries[item_id]), figures.Window(origin[0], origin[1], k),
                                    [stage * k + origin for stage in stages]))
    if panels:
        titles = ["mean face"] + [f"decoder layer {i + 1}" for i in range(len(data["landmarks"]))]
        figures.marr_layers(panels, titles, path)


# -- whole reports -------------------------------------------------------------------------------
def table_report(registry: Registry, name: str, profile: str, frame: pd.DataFrame, results_root: Path,
                 out_dir: Path) -> Path:
    spec = registry.table(name)
    seeds = table_seeds(registry, spec, profile, frame)
    by_label = {row.label: gather_row(registry, row, spec, profile, frame, results_root, seeds)
                for row in spec.rows if row.variant is not None}
    noise = seed_noise(by_label, spec.metrics)
    lines = [f"# {name}: {spec.title}", "", *provenance(spec, profile, list(by_label.values()), seeds, noise), ""]
    if spec.kind == "table":
        lines += results_tables(spec, name, by_label, seeds, noise)
        results = step_results(spec, by_label, noise)
        lines += steps_section(results)
        deltas = _deltas_frame(results)
        if not deltas.empty:
            figures.ablation_deltas(deltas, out_dir / f"{name}-deltas.png")
            lines += [f"![ablation deltas]({name}-deltas.png)", ""]
        lines += curves_section(name, by_label, out_dir)
    else:
        lines += figure_lines(registry, name, spec, profile, by_label, frame, results_root, out_dir, seeds)
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def figure_lines(registry: Registry, name: str, spec: TableSpec, profile: str, by_label: dict[str, RowRuns],
                 frame: pd.DataFrame, results_root: Path, out_dir: Path, seeds: list[int]) -> list[str]:
    lines = []
    for label, rr in by_label.items():
        status = status_text(rr, name, seeds)
        lines += [f"Run: {label}; converged: {convergence_text(rr.convergence_changes)}; status: {status}", ""]
        if not rr.done:
            continue
        if name == "figure8":
            lines += figure8_section(rr, out_dir)
        else:
            lines += figure7_section(registry, profile, rr, frame, results_root, out_dir)
    return lines


def index_lines(registry: Registry, profile: str, out_dir: Path, frame: pd.DataFrame, results_root: Path) -> list[str]:
    note = registry.profiles.get(profile, {}).get("benchmark_note", "")
    rows = []
    for name, spec in registry.tables.items():
        if not (out_dir / f"{name}.md").is_file():
            rows.append([name, spec.title, "not generated", "—"])
            continue
        seeds = table_seeds(registry, spec, profile, frame)
        runs = {(r.run_id, r.seed): r for row in spec.rows if row.variant is not None
                for r in gather_row(registry, row, spec, profile, frame, results_root, seeds).runs}
        counts = pd.Series([r.status if r.usable or r.status != "done" else "missing" for r in runs.values()])
        summary = ", ".join(f"{counts.eq(s).sum()} {s}" for s in ("done", "failed", "interrupted", "queued", "running", "missing")
                            if counts.eq(s).any())
        rows.append([f"[{name}]({name}.md)", spec.title, summary or "no runs", ", ".join(map(str, seeds))])
    return [f"# Reports, profile `{profile}`", "", f"Benchmark: {note or '—'}.", "",
            f"Regenerate with `python -m experiments.run report --profile {profile}`; check that the committed "
            "reports match the committed results with `--check`.", "",
            md_table(["report", "paper's table or figure", "runs", "seeds"], rows)]


def _write(registry: Registry, profile: str, tables: list[str], results_root: Path, reports_root: Path) -> list[Path]:
    results_root, out_dir = Path(results_root), Path(reports_root) / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = store.collect(results_root, profile)
    written = [table_report(registry, name, profile, frame, results_root, out_dir) for name in tables]
    index = out_dir / "README.md"
    index.write_text("\n".join(index_lines(registry, profile, out_dir, frame, results_root)) + "\n")
    return written + [index]


def write_reports(registry: Registry, profile: str, tables: list[str], results_root: Path,
                  reports_root: Path) -> list[Path]:
    """Writes ``reports/<profile>/<table>.md`` (+ PNGs) for each table and the index README.md."""
    return _write(registry, profile, tables, results_root, reports_root)


def check_reports(registry: Registry, profile: str, results_root: Path, reports_root: Path) -> list[str]:
    """Regenerates every committed report into a temporary folder; lists each file that differs.

    Markdown and PNGs are compared byte for byte, and a committed file that regeneration would not
    write is reported as stale. One exception: Figure 7 and the gallery are drawn from the dataset's
    images, which a checkout without the (generated) dataset does not have; when regeneration could
    not draw them they are not compared, and the problem list says nothing about them.
    """
    committed = Path(reports_root) / profile
    if not committed.is_dir():
        return [f"{committed} does not exist: nothing to check"]
    tables = sorted(p.stem for p in committed.glob("*.md") if p.stem in registry.tables)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / profile
        _write(registry, profile, tables, results_root, Path(tmp))
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
