"""Markdown reports of the paper's tables and figures, regenerated from the result store.

Every number comes from ``results/``; the paper's numbers sit beside ours; missing and failed runs
are shown as such; each ablation step gets a paired bootstrap interval and a verdict. Reports are
byte-for-byte reproducible from the same results (``check_reports``).
"""
from __future__ import annotations

import filecmp
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import figures, stats, store
from experiments.registry import Registry, Row, TableSpec
from trans3dhead.metrics import METRIC_DIRECTIONS

METRIC_NAMES = {"nme": "NME", "z5": "Z5 Acc.", "chamfer": "Cham. Dis.", "pose_error": "Pose Err.", "mae": "MAE",
                "pitch": "Pitch", "yaw": "Yaw", "roll": "Roll"}
DECIMALS = {"nme": 3, "z5": 4, "chamfer": 3, "pose_error": 3, "mae": 2, "pitch": 2, "yaw": 2, "roll": 2}
BENCHMARK_NAMES = {"synthheads": "SynthHeads (the embedded procedural benchmark: these are NOT DAD-3DHeads numbers)",
                   "dad3dheads": "DAD-3DHeads"}
IMAGE_FIGURES = ("figure7.png", "gallery.png")     # need the dataset's images; see check_reports


def _arrow(metric: str) -> str:
    return "↓" if METRIC_DIRECTIONS[metric] == "lower" else "↑"


def _fmt(value: float, metric: str) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{DECIMALS.get(metric, 3)}f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


class RowRuns:
    """The runs of one table row across seeds, with their status and results."""

    def __init__(self, registry: Registry, row: Row, profile: str, frame: pd.DataFrame, spec: TableSpec,
                 results_root: Path, seeds: list[int]):
        self.row, self.spec = row, spec
        self.runs: list[dict] = []
        for seed in seeds:
            run_id = registry.resolve(row.variant, profile, seed).run_id
            hits = frame[frame["run_id"] == run_id]
            meta = store.read_meta(store.run_dir(results_root, profile, run_id)) or {}
            evals = hits[(hits["dataset"] == spec.dataset) & (hits["split"] == spec.split)]
            status = meta.get("status", "missing")
            if status == "done" and evals.empty:
                status = "missing"
            self.runs.append({"run_id": run_id, "seed": seed, "status": status, "error": meta.get("error", ""),
                              "path": store.run_dir(results_root, profile, run_id),
                              "eval": evals.iloc[0].to_dict() if not evals.empty else None, "meta": meta})
        self.done = [r for r in self.runs if r["status"] == "done" and r["eval"] is not None]

    def summary(self, metric: str) -> stats.Interval:
        return stats.seed_summary([r["eval"].get(metric, np.nan) for r in self.done])

    def per_image(self, metric: str) -> pd.Series:
        parts = [store.per_sample(r["path"], self.spec.dataset, self.spec.split).set_index("item_id")[metric]
                 for r in self.done]
        return pd.concat(parts, axis=1).mean(axis=1) if parts else pd.Series(dtype=float)

    def status_text(self, table: str) -> str:
        if len(self.done) == len(self.runs):
            return "done"
        failed = [r for r in self.runs if r["status"] == "failed"]
        if failed:
            return f"failed: {failed[0]['error'][:80]}".replace("|", "/")
        return f"missing — run `python -m experiments.run {table}`"

    def converged(self) -> bool | None:
        flags = [stats.converged(store.curve(r["path"])) for r in self.done]
        if not flags or any(f is None for f in flags):
            return None
        return all(flags)


def _cell(interval: stats.Interval, metric: str) -> str:
    if interval.n == 0:
        return "—"
    text = _fmt(interval.value, metric)
    if interval.n > 1:
        text += f" [{_fmt(interval.lo, metric)}, {_fmt(interval.hi, metric)}]"
    return text


def _provenance(spec: TableSpec, profile: str, rows: list[RowRuns], seeds: list[int]) -> list[str]:
    metas = [r["meta"] for rr in rows for r in rr.done]
    benchmarks = sorted({m.get("benchmark", "?") for m in metas}) or ["(no finished runs)"]
    pick = lambda key: ", ".join(sorted({str(m.get(key)) for m in metas if m.get(key)})) or "—"  # noqa: E731
    reference = [r["eval"].get("mean_face_nme") for rr in rows for r in rr.done]
    reference = [v for v in reference if v is not None and np.isfinite(v)]
    lines = [f"- Benchmark: {'; '.join(BENCHMARK_NAMES.get(b, b) for b in benchmarks)}",
            f"- Evaluation: {spec.dataset} / {spec.split}; profile `{profile}`; seeds {seeds}",
            f"- Code version(s): {pick('code_version')}; device(s): {pick('device')} ({pick('amp')}); "
            f"run date(s): {pick('date')}",
            "- Paper numbers are the published DAD-3DHeads / AFLW2000-3D results, shown for direction only."]
    if reference:
        lines.append(f"- Reference: always predicting the training set's mean face scores NME {reference[0]:.3f} here.")
    return lines


def _steps_section(spec: TableSpec, by_label: dict[str, RowRuns]) -> tuple[list[str], pd.DataFrame]:
    lines, plot_rows = [], []
    table_rows = []
    for step in spec.steps:
        before, after = by_label[step.from_label], by_label[step.to_label]
        if before.row.variant is None or after.row.variant is None:
            continue
        unconverged = before.converged() is False or after.converged() is False
        for metric in step.metrics:
            paper_a, paper_b = before.row.paper.get(metric, np.nan), after.row.paper.get(metric, np.nan)
            paper_delta = paper_b - paper_a
            if before.done and after.done:
                delta = stats.paired_delta(before.per_image(metric), after.per_image(metric))
                verdict = stats.verdict(delta, paper_delta)
                if unconverged and verdict != stats.NO_CLAIM:
                    verdict += " (unconverged runs: ranks learning speed)"
                ours = f"{_fmt(delta.value, metric)} [{_fmt(delta.lo, metric)}, {_fmt(delta.hi, metric)}]"
                plot_rows.append({"step": f"{step.from_label} → {step.to_label}", "metric": metric,
                                  "delta": delta.value, "lo": delta.lo, "hi": delta.hi})
            else:
                ours, verdict = "—", "missing runs"
            table_rows.append([f"{step.from_label} → {step.to_label}", f"{METRIC_NAMES[metric]} {_arrow(metric)}",
                               ours, _fmt(paper_delta, metric), verdict])
    if table_rows:
        lines += ["## Ablation steps", "",
                  "Change = after − before on the same evaluation images (per-image values averaged over seeds), "
                  "with a paired bootstrap 95% interval. Verdict: does our change go the paper's way?", "",
                  _md_table(["step", "metric", "change (ours) [95% CI]", "change (paper)", "verdict"], table_rows), ""]
    return lines, pd.DataFrame(plot_rows)


def _efficiency_cells(rr: RowRuns) -> list[str]:
    if not rr.done:
        return ["—"] * 6
    e = rr.done[0]["eval"]
    get = lambda k: e.get(k, np.nan)  # noqa: E731
    fmt = lambda v, f: "—" if v is None or not np.isfinite(v) else f.format(v)  # noqa: E731
    return [fmt(get("params") / 1e6, "{:.2f}"), fmt(get("flops") / 1e9, "{:.3f}"), fmt(get("fps_b1"), "{:.1f}"),
            fmt(get("fps_b32"), "{:.1f}"), fmt(get("peak_mem_b32_mb"), "{:.1f}"),
            fmt(rr.done[0]["meta"].get("train_wall_s", np.nan), "{:.0f}")]


def table_report(registry: Registry, name: str, profile: str, frame: pd.DataFrame, results_root: Path,
                 out_dir: Path, seeds: list[int]) -> Path:
    spec = registry.table(name)
    by_label = {row.label: RowRuns(registry, row, profile, frame, spec, results_root, seeds)
                for row in spec.rows if row.variant is not None}
    lines = [f"# {name}: {spec.title}", "", *_provenance(spec, profile, list(by_label.values()), seeds), ""]
    if spec.kind == "table":
        header = ["Method"] + [f"{METRIC_NAMES[m]} {_arrow(m)} (ours / paper)" for m in spec.metrics]
        if spec.efficiency:
            header += ["Params (M)", "GFLOPs", "FPS b1", "FPS b32", "Peak mem b32 (MB)", "Train (s)", "FPS paper"]
        header += ["converged", "status"]
        for section in spec.sections:
            if section.name:
                lines += [f"## {section.name}", ""]
            rows = []
            for row in section.rows:
                if row.variant is None:
                    cells = [f"{row.label} (paper only: not implemented here)"]
                    cells += [f"— / {_fmt(row.paper.get(m, np.nan), m)}" for m in spec.metrics]
                    if spec.efficiency:
                        cells += ["—"] * 6 + [str(row.paper.get("fps", "—"))]
                    rows.append(cells + ["—", "paper only"])
                    continue
                rr = by_label[row.label]
                cells = [row.label] + [f"{_cell(rr.summary(m), m)} / {_fmt(row.paper.get(m, np.nan), m)}"
                                       for m in spec.metrics]
                if spec.efficiency:
                    cells += _efficiency_cells(rr) + [str(row.paper.get("fps", "—"))]
                flag = rr.converged()
                cells += ["—" if flag is None else ("yes" if flag else "no"), rr.status_text(name)]
                rows.append(cells)
            lines += [_md_table(header, rows), ""]
        step_lines, plot_rows = _steps_section(spec, by_label)
        lines += step_lines
        if not plot_rows.empty:
            figures.ablation_deltas(plot_rows, out_dir / f"{name}-deltas.png")
            lines += [f"![ablation deltas]({name}-deltas.png)", ""]
        curves = {label: store.curve(rr.done[0]["path"]) for label, rr in by_label.items() if rr.done}
        curves = {k: v for k, v in curves.items() if v is not None}
        if curves:
            figures.training_curves(curves, out_dir / f"{name}-curves.png")
            lines += ["Validation NME during training (first seed):", "", f"![training curves]({name}-curves.png)", ""]
    else:
        lines += _figure_lines(name, spec, by_label, out_dir)
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _figure_lines(name: str, spec: TableSpec, by_label: dict[str, RowRuns], out_dir: Path) -> list[str]:
    rr = next(iter(by_label.values()))
    if not rr.done:
        return [f"{rr.status_text(name)}", ""]
    data = store.marr(rr.done[0]["path"], spec.dataset, spec.split)
    if data is None:
        return ["No MARR data stored for this run (the variant has no MARR).", ""]
    if name == "figure8":
        figures.residual_histogram(data["residuals"], out_dir / "figure8.png")
        means = [f"layer {i + 1}: mean |residual| {np.abs(r).mean():.4f}, median {np.median(np.abs(r)):.4f}"
                 for i, r in enumerate(data["residuals"])]
        return ["![Figure 8](figure8.png)", "", *[f"- {m}" for m in means], "",
                "The paper's claim: deeper layers predict residuals closer to 0."]
    _image_figures(rr, spec, data, out_dir)
    return ["![Figure 7](figure7.png)", "",
            "Left to right: the fixed mean face (eq. 4), then the landmarks after each decoder layer (eq. 5), "
            "on the first validation images.", "", "Qualitative gallery (hardest cases for Trans3DHead; "
            "DAD-3DNet beside it when its run exists):", "", "![gallery](gallery.png)"]


def _image_figures(rr: RowRuns, spec: TableSpec, data: dict, out_dir: Path) -> None:
    """Figure 7 and the gallery need the dataset's images; skipped (the committed PNGs kept) without them."""
    from trans3dhead.config import RunConfig
    from trans3dhead.data.embedded import MARKER, synth_dir
    cfg = RunConfig.from_dict(store_config(rr.done[0]["path"]))
    root = synth_dir(cfg.data)
    if cfg.data.benchmark != "synthheads" or not (root / MARKER).is_file():
        return
    from trans3dhead.data import DAD3DHeadsDataset
    ds = DAD3DHeadsDataset(root / "dad3dheads" / spec.split, root / "flame", cfg.data.image_size, train=False,
                           seed=cfg.train.seed)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    crops = [np.clip(ds[i]["image"].permute(1, 2, 0).numpy() * std + mean, 0, 1) for i in range(4)]
    figures.marr_layers(crops, data["mean_face"], data["landmarks"][:, :4], out_dir / "figure7.png")
    per = store.per_sample(rr.done[0]["path"], spec.dataset, spec.split)
    hardest = per.sort_values("nme", ascending=False)["item_id"].head(4).tolist()
    index = {e["item_id"]: i for i, e in enumerate(ds.entries)}
    from PIL import Image
    images = [np.asarray(Image.open(ds.image_path(index[i])).convert("RGB")) for i in hardest]
    methods = {"Trans3DHead": store.predictions(rr.done[0]["path"], spec.dataset, spec.split)}
    dad_dir = rr.done[0]["path"].parent
    for candidate in sorted(dad_dir.iterdir()):
        meta = store.read_meta(candidate) or {}
        if "dad3dnet" in meta.get("variants", []) and meta.get("status") == "done":
            preds = store.predictions(candidate, spec.dataset, spec.split)
            if preds:
                methods = {"DAD-3DNet": preds, **methods}
                break
    figures.gallery(images, {k: [v[i] for i in hardest] for k, v in methods.items()}, out_dir / "gallery.png")


def store_config(path: Path) -> dict:
    import yaml
    return yaml.safe_load((Path(path) / "config.yaml").read_text())


def _seeds(frame: pd.DataFrame) -> list[int]:
    seeds = sorted({int(s) for s in frame["seed"].dropna()}) if not frame.empty else []
    return seeds or [0]


def write_reports(registry: Registry, profile: str, tables: list[str], results_root: Path,
                  reports_root: Path) -> list[Path]:
    results_root, out_dir = Path(results_root), Path(reports_root) / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = store.collect(results_root, profile)
    seeds = _seeds(frame)
    written = [table_report(registry, name, profile, frame, results_root, out_dir, seeds) for name in tables]
    index = [f"# Reports, profile `{profile}`", "",
             f"Benchmark: {BENCHMARK_NAMES.get(registry.profiles[profile].get('data', {}).get('benchmark', ''), '?')}.",
             "Regenerate with `python -m experiments.run report --profile " + profile + "`; "
             "check with `--check`.", ""]
    for name, spec in registry.tables.items():
        exists = (out_dir / f"{name}.md").is_file()
        index.append(f"- [{name}]({name}.md): {spec.title}" if exists else f"- {name}: {spec.title} (not generated)")
    (out_dir / "README.md").write_text("\n".join(index) + "\n")
    return written + [out_dir / "README.md"]


def check_reports(registry: Registry, profile: str, results_root: Path, reports_root: Path) -> list[str]:
    """Regenerates every report into a temporary folder and lists what differs from the committed one.

    Image-based figures (Figure 7, the gallery) need the dataset's images, which a checkout does not
    have, so they are not compared; every markdown file and every other PNG is compared byte for byte.
    """
    committed = Path(reports_root) / profile
    if not committed.is_dir():
        return [f"{committed} does not exist: nothing to check"]
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        tables = [p.stem for p in committed.glob("*.md") if p.stem in registry.tables]
        write_reports(registry, profile, tables, results_root, fresh_root)
        fresh = fresh_root / profile
        problems = []
        for path in sorted(fresh.iterdir()):
            if path.name in IMAGE_FIGURES:
                continue
            old = committed / path.name
            if not old.is_file():
                problems.append(f"{old} is missing (regeneration writes it)")
            elif not filecmp.cmp(old, path, shallow=False):
                problems.append(f"{old} differs from a regeneration from {results_root}/{profile}")
        return problems
