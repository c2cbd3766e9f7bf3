"""Figures of the reports (matplotlib / seaborn, PNG). Written deterministically (no timestamps)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PNG_METADATA = {"Software": None}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def residual_histogram(residuals: np.ndarray, path: Path) -> Path:
    """Figure 8: |normalised residual coordinates| of each decoder layer (residuals (L, n, 68, 2))."""
    frame = pd.concat([pd.DataFrame({"|residual| / head box": np.abs(r).reshape(-1), "layer": f"decoder layer {i + 1}"})
                       for i, r in enumerate(residuals)], ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.histplot(frame, x="|residual| / head box", hue="layer", bins=50, element="step", stat="density",
                 common_norm=False, log_scale=(False, True), ax=ax)
    ax.set_title("Histogram of normalised residual coordinates")
    fig.tight_layout()
    return _save(fig, path)


def marr_layers(images: list[np.ndarray], mean_face: np.ndarray, layers: np.ndarray, path: Path) -> Path:
    """Figure 7: per image, the mean face then each layer's landmarks (crop units), on the crop."""
    n_cols = 1 + len(layers)
    fig, axes = plt.subplots(len(images), n_cols, figsize=(2.2 * n_cols, 2.2 * len(images)), squeeze=False)
    for r, image in enumerate(images):
        size = image.shape[0]
        stages = [mean_face] + [layer[r] for layer in layers]
        titles = ["mean face"] + [f"layer {i + 1}" for i in range(len(layers))]
        for c, (points, title) in enumerate(zip(stages, titles)):
            ax = axes[r, c]
            ax.imshow(image)
            ax.scatter(points[:, 0] * size, points[:, 1] * size, s=4, c="lime")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _pose_axes(ax, rotation: np.ndarray, centre: np.ndarray, length: float) -> None:
    for axis, colour in zip(rotation.T, ("red", "green", "blue")):
        ax.plot([centre[0], centre[0] + axis[0] * length], [centre[1], centre[1] + axis[1] * length], c=colour, lw=1.5)


def gallery(images: list[np.ndarray], methods: dict[str, list[dict]], path: Path) -> Path:
    """Qualitative comparison: one row per image, one column per method (landmarks + pose axes)."""
    fig, axes = plt.subplots(len(images), len(methods), figsize=(2.6 * len(methods), 2.6 * len(images)), squeeze=False)
    for c, (name, preds) in enumerate(methods.items()):
        for r, (image, pred) in enumerate(zip(images, preds)):
            ax = axes[r, c]
            ax.imshow(image)
            landmarks = np.asarray(pred["68_landmarks_2d"])
            ax.scatter(landmarks[:, 0], landmarks[:, 1], s=4, c="lime")
            _pose_axes(ax, np.asarray(pred["rotation_matrix"]), landmarks.mean(0), 0.25 * image.shape[0])
            ax.set_xlim(0, image.shape[1])
            ax.set_ylim(image.shape[0], 0)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, curve in curves.items():
        points = curve.dropna(subset=["val_nme"])
        ax.plot(points["epoch"], points["val_nme"], marker="o", ms=2, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NME")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def ablation_deltas(rows: pd.DataFrame, path: Path) -> Path:
    """One panel per metric: each step's change with its 95% interval (rows: step, metric, delta, lo, hi)."""
    metrics = list(dict.fromkeys(rows["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.5 + 0.4 * rows["step"].nunique()),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        part = rows[rows["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(part))
        ax.errorbar(part["delta"], y, xerr=[part["delta"] - part["lo"], part["hi"] - part["delta"]], fmt="o", ms=3)
        ax.axvline(0, c="grey", lw=0.8)
        ax.set_yticks(y, part["step"], fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
