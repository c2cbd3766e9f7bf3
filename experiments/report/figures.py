"""Figures of the reports (matplotlib / seaborn, PNG). Pure plotting: arrays in, a PNG out.

PNGs are byte-for-byte reproducible: no 'Software' (version) or date chunk in the file, a fixed
DPI and size, and no randomness in what is drawn.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PNG_METADATA = {"Software": None}                 # matplotlib would stamp its version otherwise
VERDICT_COLOURS = {"holds": "tab:green", "reversed": "tab:red", "smaller than the paper's change": "tab:blue"}
AXIS_COLOURS = ("red", "green", "blue")           # the head's x, y, z axes


class Window(NamedTuple):
    """The square of the original image to show (x0, y0, side in pixels)."""
    x0: float
    y0: float
    size: float


class Panel(NamedTuple):
    """One image of Figure 7: the image, the window to show, and the landmarks of each stage (pixels)."""
    image: np.ndarray
    window: Window
    stages: list[np.ndarray]


class GalleryCase(NamedTuple):
    """One row of the gallery: the image and, per method, its landmarks, rotation and NME on it."""
    item_id: str
    image: np.ndarray
    window: Window
    methods: dict[str, dict]                      # name -> {"landmarks" (68,2) px, "rotation" (3,3), "nme"}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def _show(ax, image: np.ndarray, window: Window) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xlim(window.x0, window.x0 + window.size)
    ax.set_ylim(window.y0 + window.size, window.y0)       # image rows grow downwards
    ax.set_axis_off()


def residual_histogram(residuals: np.ndarray, path: Path) -> Path:
    """Figure 8: distribution of |residual coordinate| / head box size for each decoder layer.

    ``residuals``: (L, n, 68, 2). Outlines on one axis with shared bins, so the layer-by-layer
    shift towards 0 that the paper shows is read off directly; log counts keep the tail visible.
    """
    magnitudes = [np.abs(np.asarray(r, dtype=float)).reshape(-1) for r in residuals]
    frame = pd.concat([pd.DataFrame({"value": m, "layer": f"layer {i + 1} (median {np.median(m):.3f})"})
                       for i, m in enumerate(magnitudes)], ignore_index=True)
    bins = np.linspace(0.0, max(float(frame["value"].max()), 1e-6), 51)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.histplot(frame, x="value", hue="layer", bins=bins, element="step", fill=False, stat="percent",
                 common_norm=False, ax=ax, linewidth=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("|residual coordinate| / head bounding-box size")
    ax.set_ylabel("% of coordinates")
    ax.set_title("Histogram of normalised residual coordinates per decoder layer", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def marr_layers(panels: list[Panel], titles: list[str], path: Path) -> Path:
    """Figure 7: one row per image, one column per stage (mean face, then each decoder layer)."""
    n_cols = len(titles)
    fig, axes = plt.subplots(len(panels), n_cols, figsize=(2.2 * n_cols, 2.2 * len(panels)), squeeze=False)
    for r, panel in enumerate(panels):
        for c, (points, title) in enumerate(zip(panel.stages, titles)):
            ax = axes[r, c]
            _show(ax, panel.image, panel.window)
            ax.scatter(points[:, 0], points[:, 1], s=5, c="lime", edgecolors="black", linewidths=0.2)
            if r == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _pose_axes(ax, rotation: np.ndarray, centre: np.ndarray, length: float) -> None:
    """The head's axes in image space (x right, y down): the columns of R_image, seen from the camera."""
    for axis, colour in zip(np.asarray(rotation).T, AXIS_COLOURS):
        ax.plot([centre[0], centre[0] + axis[0] * length], [centre[1], centre[1] + axis[1] * length],
                c=colour, lw=1.6)


def gallery(cases: list[GalleryCase], path: Path) -> Path:
    """Qualitative comparison: one row per image, one column per method, landmarks and pose axes drawn."""
    names = list(cases[0].methods)
    fig, axes = plt.subplots(len(cases), len(names), figsize=(2.6 * len(names), 2.7 * len(cases)), squeeze=False)
    for r, case in enumerate(cases):
        for c, name in enumerate(names):
            ax = axes[r, c]
            _show(ax, case.image, case.window)
            pred = case.methods.get(name)
            if pred is None:
                ax.set_title(f"{name}: no prediction", fontsize=8)
                continue
            landmarks = np.asarray(pred["landmarks"], dtype=float)
            ax.scatter(landmarks[:, 0], landmarks[:, 1], s=5, c="lime", edgecolors="black", linewidths=0.2)
            _pose_axes(ax, pred["rotation"], landmarks.mean(axis=0), 0.3 * case.window.size)
            nme = pred.get("nme")
            score = "" if nme is None or not np.isfinite(nme) else f", NME {nme:.2f}"
            ax.set_title(f"{name}{score}\n{case.item_id}", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    """Per run: training loss and validation NME against epoch (log scale: both fall by orders)."""
    fig, (loss_ax, nme_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = sns.color_palette("tab20", n_colors=max(len(curves), 1))   # distinct for up to 20 runs
    for colour, (label, curve) in zip(colours, curves.items()):
        style = {"marker": "o", "ms": 2, "lw": 1, "c": colour, "label": label}
        if "train_loss" in curve:
            points = curve.dropna(subset=["train_loss"])
            loss_ax.plot(points["epoch"], points["train_loss"], **style)
        points = curve.dropna(subset=["val_nme"])
        nme_ax.plot(points["epoch"], points["val_nme"], **style)
    for ax, name in ((loss_ax, "training loss"), (nme_ax, "validation NME")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))   # 1-2-5 ticks, readable
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
    nme_ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return _save(fig, path)


def ablation_deltas(rows: pd.DataFrame, path: Path) -> Path:
    """One panel per metric: each step's change (after - before) with its 95% interval, coloured by verdict.

    ``rows``: columns step, metric (display name), delta, lo, hi, verdict; the steps run top to bottom
    in the order the report lists them.
    """
    metrics = list(dict.fromkeys(rows["metric"]))
    n_steps = rows["step"].nunique()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.9 + 0.42 * n_steps), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        part = rows[rows["metric"] == metric].reset_index(drop=True)
        y = -np.arange(len(part))
        for yi, (_, row) in zip(y, part.iterrows()):
            verdict = str(row["verdict"])
            colour = next((c for kind, c in VERDICT_COLOURS.items() if verdict.startswith(kind)), "tab:gray")
            ax.errorbar([row["delta"]], [yi], xerr=[[row["delta"] - row["lo"]], [row["hi"] - row["delta"]]],
                        fmt="o", ms=4, c=colour, capsize=2)
        ax.axvline(0, c="black", lw=0.8)
        ax.set_yticks(y, part["step"], fontsize=7)
        ax.set_ylim(y.min() - 0.6, 0.6)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("change after − before, 95% interval (crossed seed × image model)\ngreen: holds, red: reversed "
                 "(Holm p < 0.05); blue: smaller than the paper's change (TOST); grey: noise", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
