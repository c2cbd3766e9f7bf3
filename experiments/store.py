"""The result store: ``results/<profile>/<run_id>/`` per run, every file written atomically.

Files: ``config.yaml`` (resolved), ``meta.json`` (variants, seed, status, error, provenance),
``curve.csv`` (validation curve), and per evaluation ``eval-<dataset>-<split>.json`` (aggregate +
efficiency), ``.csv`` (per sample), ``marr-...npz`` (Figures 7-8), ``predictions-...json`` (68
landmarks and rotation, for the gallery) and ``images-...json`` (each item's image and evaluation crop,
for Figure 7 and the gallery). Checkpoints live in ``work/``, outside the store.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

EFFICIENCY_COLUMNS = ("params", "flops", "fps_b1", "fps_b32", "peak_mem_b1_mb", "peak_mem_b32_mb", "train_wall_s")
METRIC_COLUMNS = ("nme", "z5", "chamfer", "pose_error", "mae", "pitch", "yaw", "roll", "mean_face_nme")


class CorruptResultWarning(UserWarning):
    """A result file could not be read; collect() skips it and says which."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n").encode())


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def code_version() -> str:
    """git sha (+dirty) of the checkout, or 'unknown' outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "trans3dhead", "experiments"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_dir(results_root: Path, profile: str, run_id: str) -> Path:
    return Path(results_root) / profile / run_id


def eval_name(dataset: str, split: str) -> str:
    return f"{dataset}-{split}"


def read_meta(path: Path) -> dict | None:
    try:
        return json.loads((Path(path) / "meta.json").read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        warnings.warn(f"{Path(path) / 'meta.json'} is corrupt ({err}); ignored", CorruptResultWarning)
        return None


def write_meta(path: Path, meta: dict) -> None:
    atomic_write_json(Path(path) / "meta.json", meta)


def update_meta(path: Path, **fields) -> dict:
    meta = read_meta(path) or {}
    meta.update(fields)
    write_meta(path, meta)
    return meta


def write_config(path: Path, config: dict) -> None:
    atomic_write_bytes(Path(path) / "config.yaml", yaml.safe_dump(config, sort_keys=True).encode())


def write_evaluation(path: Path, dataset: str, split: str, aggregate: dict, per_sample: pd.DataFrame,
                     efficiency: dict, marr: dict | None, predictions: dict, code_version: str | None = None) -> None:
    name = eval_name(dataset, split)
    path = Path(path)
    buffer = io.StringIO()
    per_sample.to_csv(buffer, index=False, float_format="%.6g")
    atomic_write_bytes(path / f"eval-{name}.csv", buffer.getvalue().encode())
    if marr is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: (np.asarray(v) if v is not None else np.zeros(0)) for k, v in marr.items()})
        atomic_write_bytes(path / f"marr-{name}.npz", buffer.getvalue())
    slim = {item_id: {"68_landmarks_2d": np.round(np.asarray(p["68_landmarks_2d"]), 2).tolist(),
                      "rotation_matrix": np.round(np.asarray(p["rotation_matrix"]), 5).tolist()}
            for item_id, p in predictions.items()}
    atomic_write_json(path / f"predictions-{name}.json", slim)
    images = {item_id: p["image"] for item_id, p in predictions.items() if "image" in p}
    if images:
        atomic_write_json(path / f"images-{name}.json", images)
    # The aggregate goes last: its presence marks the evaluation complete.
    atomic_write_json(path / f"eval-{name}.json", {"dataset": dataset, "split": split, "aggregate": aggregate,
                                                   "efficiency": efficiency, "code_version": code_version})


def has_evaluation(path: Path, dataset: str, split: str) -> bool:
    return (Path(path) / f"eval-{eval_name(dataset, split)}.json").is_file()


def collect(results_root: str | Path, profile: str) -> pd.DataFrame:
    """One row per (run, evaluation); a run without evaluations gives one row with its status."""
    rows = []
    base = Path(results_root) / profile
    for path in sorted(p for p in base.glob("*") if p.is_dir()) if base.is_dir() else []:
        meta = read_meta(path)
        if meta is None:
            warnings.warn(f"{path} has no readable meta.json; ignored", CorruptResultWarning)
            continue
        common = {"run_id": path.name, "variants": ",".join(meta.get("variants", [])), "seed": meta.get("seed"),
                  "profile": profile, "benchmark": meta.get("benchmark"), "status": meta.get("status", "missing"),
                  "error": meta.get("error", ""), "code_version": meta.get("code_version"),
                  "device": meta.get("device"), "date": meta.get("date"), "path": str(path),
                  "train_wall_s": meta.get("train_wall_s")}
        evals = sorted(path.glob("eval-*.json"))
        if not evals:
            rows.append({**common, "dataset": None, "split": None})
        for eval_file in evals:
            try:
                data = json.loads(eval_file.read_text())
                row = {**common, "dataset": data["dataset"], "split": data["split"],
                       "eval_code_version": data.get("code_version") or meta.get("code_version")}
                row.update({k: v for k, v in data["aggregate"].items() if k in METRIC_COLUMNS})
                row.update({k: v for k, v in (data.get("efficiency") or {}).items() if k in EFFICIENCY_COLUMNS})
                rows.append(row)
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
                warnings.warn(f"{eval_file} is corrupt or partial ({err}); ignored", CorruptResultWarning)
    columns = ["run_id", "variants", "seed", "profile", "benchmark", "dataset", "split", "status", "error",
               *METRIC_COLUMNS, *EFFICIENCY_COLUMNS, "code_version", "eval_code_version", "device", "date", "path"]
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    return frame[columns]


def per_sample(path: Path, dataset: str, split: str) -> pd.DataFrame:
    return pd.read_csv(Path(path) / f"eval-{eval_name(dataset, split)}.csv")


def curve(path: Path) -> pd.DataFrame | None:
    file = Path(path) / "curve.csv"
    return pd.read_csv(file) if file.is_file() else None


def marr(path: Path, dataset: str, split: str) -> dict | None:
    file = Path(path) / f"marr-{eval_name(dataset, split)}.npz"
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def predictions(path: Path, dataset: str, split: str) -> dict | None:
    file = Path(path) / f"predictions-{eval_name(dataset, split)}.json"
    return json.loads(file.read_text()) if file.is_file() else None


def images(path: Path, dataset: str, split: str) -> dict | None:
    """Per item id: ``path`` of its image, the evaluation crop (``crop_origin``, ``crop_scale``,
    ``input_size``: original px = crop units * input_size * crop_scale + crop_origin) and ``bbox``."""
    file = Path(path) / f"images-{eval_name(dataset, split)}.json"
    return json.loads(file.read_text()) if file.is_file() else None
