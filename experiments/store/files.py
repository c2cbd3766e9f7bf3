"""The store's files, each read, written (atomically) and checked here; one run's folder holds:

``config.yaml`` (resolved), ``meta.json`` (variants, seed, status, error, provenance),
``curve.csv`` (validation curve), ``efficiency.json`` (parameters, FLOPs, speed and memory, measured
alone on the machine), and per evaluation
``eval-<dataset>-<split>.json`` (aggregate), ``.csv`` (per sample), ``marr-...npz`` (Figures 7-8), ``predictions-...json`` (68
landmarks and rotation, for the gallery) and ``images-...json`` (each item's image and evaluation crop,
for Figure 7 and the gallery). Checkpoints live in ``work/``, outside the store (``runs.RunPaths``).
"""
from __future__ import annotations

import io
import json
import subprocess
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from trans3dhead.atomic import atomic_write_bytes, atomic_write_json  # noqa: F401  (the store's writers)

__all__ = ["EFFICIENCY_COLUMNS", "METRIC_COLUMNS", "CorruptResultWarning", "CorruptResultError", "RUN_STATUSES",
           "code_version", "eval_name", "read_meta", "write_meta", "update_meta", "write_config", "read_config",
           "write_evaluation", "EFFICIENCY_FILE", "NO_EFFICIENCY", "write_efficiency", "read_efficiency",
           "efficiency_problem", "load_evaluation", "evaluation_problem", "has_evaluation", "per_sample", "curve",
           "marr", "predictions", "images", "atomic_write_bytes", "atomic_write_json"]

EFFICIENCY_COLUMNS = ("params", "flops", "fps_b1", "fps_b32", "peak_mem_b1_mb", "peak_mem_b32_mb", "train_wall_s")
METRIC_COLUMNS = ("nme", "z5", "chamfer", "pose_error", "mae", "pitch", "yaw", "roll", "mean_face_nme")


class CorruptResultWarning(UserWarning):
    """A result file could not be read; collect() skips it and says which."""


class CorruptResultError(ValueError):
    """A result file does not parse or has the wrong shape; the message names the file."""


RUN_STATUSES = ("done", "failed", "interrupted", "queued", "running", "missing")


def code_version() -> str:
    """git sha of the checkout, '+dirty' when a tracked file of the code differs from it (an untracked
    file alone cannot change what the tracked code runs), or 'unknown' outside git."""
    root = Path(__file__).resolve().parents[2]          # the checkout: experiments/store/files.py
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "trans3dhead", "experiments"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def eval_name(dataset: str, split: str) -> str:
    return f"{dataset}-{split}"


def read_meta(path: Path) -> dict | None:
    """The run's meta.json, or None when it is missing or unusable (a warning names the file)."""
    file = Path(path) / "meta.json"
    try:
        meta = json.loads(file.read_text())
        _check_meta(meta)
        return meta
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, CorruptResultError) as err:
        warnings.warn(f"{file} is corrupt ({err}); ignored", CorruptResultWarning)
        return None


def _check_meta(meta: object) -> None:
    if not isinstance(meta, dict):
        raise CorruptResultError(f"expected an object, got {type(meta).__name__}")
    if meta.get("status", "missing") not in RUN_STATUSES:
        raise CorruptResultError(f"status {meta.get('status')!r} is not one of {list(RUN_STATUSES)}")
    variants = meta.get("variants", [])
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        raise CorruptResultError(f"variants {variants!r} is not a list of names")
    if not isinstance(meta.get("error", ""), str):
        raise CorruptResultError(f"error {meta.get('error')!r} is not a string")


def write_meta(path: Path, meta: dict) -> None:
    atomic_write_json(Path(path) / "meta.json", meta)


def update_meta(path: Path, **fields) -> dict:
    meta = read_meta(path) or {}
    meta.update(fields)
    write_meta(path, meta)
    return meta


def write_config(path: Path, config: dict) -> None:
    atomic_write_bytes(Path(path) / "config.yaml", yaml.safe_dump(config, sort_keys=True).encode())


def read_config(path: Path) -> dict:
    """The run's resolved config as written by :func:`write_config` (OSError / YAMLError when unreadable)."""
    return yaml.safe_load((Path(path) / "config.yaml").read_text())


def write_evaluation(path: Path, dataset: str, split: str, aggregate: dict, per_sample: pd.DataFrame,
                     marr: dict | None, predictions: dict, code_version: str | None = None) -> None:
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
                                                   "code_version": code_version})


EFFICIENCY_FILE = "efficiency.json"
NO_EFFICIENCY = "efficiency not measured"


def write_efficiency(path: Path, efficiency: dict, *, device: str, code_version: str | None = None) -> None:
    """The run's efficiency figures (``EFFICIENCY_COLUMNS``) and where they were measured."""
    atomic_write_json(Path(path) / EFFICIENCY_FILE, {"efficiency": efficiency, "device": device,
                                                     "code_version": code_version})


def _efficiency_file(path: Path) -> dict:
    """``efficiency.json``'s figures (CorruptResultError naming the file when it does not parse)."""
    file = Path(path) / EFFICIENCY_FILE
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptResultError(f"{file} is not valid JSON ({err})") from None
    figures = data.get("efficiency") if isinstance(data, dict) else None
    if not isinstance(figures, dict) or "params" not in figures \
            or not all(_is_number(v) for k, v in figures.items() if k in EFFICIENCY_COLUMNS):
        raise CorruptResultError(f"{file}: expected {{'efficiency': {{'params': ..., ...}}}} of numbers")
    return figures


def read_efficiency(path: Path) -> dict | None:
    """The run's ``efficiency.json``; None when it was not measured or the file is corrupt. (Runs evaluated
    before it existed kept figures in their first evaluation, timed within the evaluation job, some with
    other jobs on the machine: the same model's FPS differed 40-fold between seeds. Those are ignored, so
    the next run of their table measures them again, alone.)"""
    path = Path(path)
    if not (path / EFFICIENCY_FILE).is_file():
        return None
    try:
        return _efficiency_file(path)
    except CorruptResultError as err:
        warnings.warn(f"{err}; ignored", CorruptResultWarning)
        return None


def efficiency_problem(path: Path) -> str | None:
    """Why the run's stored ``efficiency.json`` cannot be read, or None (also when there is none)."""
    if not (Path(path) / EFFICIENCY_FILE).is_file():
        return None
    try:
        _efficiency_file(Path(path))
    except CorruptResultError as err:
        return str(err)
    return None


def _is_number(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def load_evaluation(file: Path) -> dict:
    """An ``eval-*.json`` checked for shape: dataset and split names, numeric aggregate (and the efficiency
    older evaluations kept, no longer read: :func:`read_efficiency`)."""
    try:
        data = json.loads(Path(file).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptResultError(f"{file} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CorruptResultError(f"{file}: expected an object, got {type(data).__name__}")
    for key in ("dataset", "split"):
        if not isinstance(data.get(key), str):
            raise CorruptResultError(f"{file}: '{key}' is {data.get(key)!r}, expected a name")
    for key in ("aggregate", "efficiency"):
        section = data.get(key) if key == "aggregate" else (data.get(key) or {})
        if not isinstance(section, dict):
            raise CorruptResultError(f"{file}: '{key}' is {type(section).__name__}, expected an object of numbers")
        wrong = {k: v for k, v in section.items() if (k in METRIC_COLUMNS or k in EFFICIENCY_COLUMNS)
                 and not _is_number(v)}
        if wrong:
            raise CorruptResultError(f"{file}: '{key}' holds non-numbers {wrong}")
    if problem := _range_problem(data["aggregate"]):
        raise CorruptResultError(f"{file}: {problem}")
    return data


# What a stored metric can be: a distance, error or angle is >= 0, Z5 a fraction of pairs.
_METRIC_RANGES = {"z5": (0.0, 1.0)}


def _range_problem(aggregate: dict) -> str | None:
    """Why an aggregate's values cannot be a scorer's output (non-finite, negative, a fraction above 1)."""
    for key in METRIC_COLUMNS:
        value = aggregate.get(key)
        if value is None:
            continue
        low, high = _METRIC_RANGES.get(key, (0.0, float("inf")))
        if not np.isfinite(value) or not low <= value <= high:
            return f"'{key}' is {value}, outside [{low}, {high}] (no scorer writes that)"
    counts = [aggregate.get(k) for k in ("n_items",) if aggregate.get(k) is not None]
    if counts and (not _is_number(counts[0]) or counts[0] < 0 or counts[0] != int(counts[0])):
        return f"'n_items' is {counts[0]!r}, not a count"
    if not any(aggregate.get(k) is not None for k in METRIC_COLUMNS):
        return f"holds none of the metrics {list(METRIC_COLUMNS)}"
    return None


def evaluation_problem(path: Path, dataset: str, split: str) -> str | None:
    """Why the stored evaluation cannot be used (missing, unparsable, wrong shape), or None when it can."""
    name = eval_name(dataset, split)
    file, table = Path(path) / f"eval-{name}.json", Path(path) / f"eval-{name}.csv"
    if not file.is_file():
        return f"{file.name} is missing"
    try:
        data = load_evaluation(file)
        if (data["dataset"], data["split"]) != (dataset, split):
            return f"{file} holds {data['dataset']}/{data['split']}, not {dataset}/{split}"
        rows = len(_read_per_sample(table))
        expected = data["aggregate"].get("n_items")
        if expected is not None and rows != expected:
            return f"{table} has {rows} row(s) but {file.name} scored {expected} item(s) (cut short)"
        for problem in _companion_problems(Path(path), name):
            return problem
    except CorruptResultError as err:
        return str(err)
    return None


def _companion_problems(path: Path, name: str) -> list[str]:
    """The evaluation's MARR, predictions and images files that exist but do not read (Figures 7-8 and the
    gallery draw from them: a corrupt one redoes the evaluation rather than linking pictures never written)."""
    problems = []
    marr_file = path / f"marr-{name}.npz"
    if marr_file.is_file():
        try:
            with np.load(marr_file, allow_pickle=False) as data:
                for key in data.files:
                    data[key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            problems.append(f"{marr_file} is corrupt ({err})")
    for kind in ("predictions", "images"):
        file = path / f"{kind}-{name}.json"
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.append(f"{file} is corrupt ({err})")
            continue
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            problems.append(f"{file} is corrupt (expected an object of items)")
    return problems


def has_evaluation(path: Path, dataset: str, split: str) -> bool:
    """True when the evaluation is stored and readable (a corrupt one counts as missing: it is redone)."""
    return evaluation_problem(path, dataset, split) is None


def _read_per_sample(file: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(file)
    except FileNotFoundError:
        raise CorruptResultError(f"{file} is missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CorruptResultError(f"{file} does not parse ({err})") from None
    if "item_id" not in frame:
        raise CorruptResultError(f"{file} has no item_id column")
    return frame


def per_sample(path: Path, dataset: str, split: str) -> pd.DataFrame:
    return _read_per_sample(Path(path) / f"eval-{eval_name(dataset, split)}.csv")


def curve(path: Path) -> pd.DataFrame | None:
    """The validation curve, or None when there is none or it does not parse (a warning names it)."""
    file = Path(path) / "curve.csv"
    if not file.is_file():
        return None
    try:
        frame = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        warnings.warn(f"{file} is corrupt ({err}); ignored", CorruptResultWarning)
        return None
    if "val_nme" not in frame or not all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame):
        warnings.warn(f"{file} is corrupt (non-numeric columns or no val_nme); ignored", CorruptResultWarning)
        return None
    return frame


def marr(path: Path, dataset: str, split: str) -> dict | None:
    file = Path(path) / f"marr-{eval_name(dataset, split)}.npz"
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"{file} is corrupt ({err}); ignored", CorruptResultWarning)
        return None


def predictions(path: Path, dataset: str, split: str) -> dict | None:
    file = Path(path) / f"predictions-{eval_name(dataset, split)}.json"
    return _read_json_object(file)


def images(path: Path, dataset: str, split: str) -> dict | None:
    """Per item id: ``path`` of its image, the evaluation crop (``crop_origin``, ``crop_scale``,
    ``input_size``: original px = crop units * input_size * crop_scale + crop_origin) and ``bbox``."""
    return _read_json_object(Path(path) / f"images-{eval_name(dataset, split)}.json")


def _read_json_object(file: Path) -> dict | None:
    """A JSON object file, or None when it is missing or not one (a warning names a corrupt file)."""
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        warnings.warn(f"{file} is corrupt ({err}); ignored", CorruptResultWarning)
        return None
    return data if isinstance(data, dict) else None
