"""Scoring a submission in the official DAD-3DHeads format against an official ground-truth file.

``python -m trans3dhead.scoring make-gt --split-dir DIR --out GT.json``
``python -m trans3dhead.scoring score --gt GT.json --pred PRED.json [--flame-dir DIR] [--out S.json]``

Unlike the official script, an item that cannot be scored (missing, malformed, non-finite) is
counted and listed, never dropped silently; ``score`` exits non-zero unless ``--allow-missing``.
The training engine's ``evaluate`` scores through :func:`score` too: one implementation per metric.
(Named for what it does: the speed benchmarks are ``experiments/bench/``, the embedded data set is SynthHeads;
``python -m trans3dhead.benchmark``, its former name, still forwards here.)
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from trans3dhead import metrics
from trans3dhead.atomic import atomic_write_text, describe_os_error
from trans3dhead.flame.topology import FlameTopology, load_topology
from trans3dhead.geometry import project_official, rotation_from_model_view

DAD_METRICS = ("nme", "z5", "chamfer", "pose_error")
SUBMISSION_SHAPES = {"68_landmarks_2d": (68, 2), "N_landmarks_3d": None, "7_landmarks_3d": (7, 3),
                     "rotation_matrix": (3, 3)}


@dataclass
class ScoreResult:
    """``aggregate``: metric means and counts; ``per_item``: one row per GT item; ``problems``: messages."""

    aggregate: dict[str, float]
    per_item: pd.DataFrame
    problems: list[str] = field(default_factory=list)


def _non_finite_reason(gt: dict, pred: dict[str, np.ndarray]) -> str:
    bbox = np.asarray(gt.get("bbox", [0, 0, 0, 0]), dtype=np.float64).ravel()
    if bbox.size == 4 and not (bbox[2] > 0 and bbox[3] > 0):
        return f"the ground-truth bbox {bbox.tolist()} has no area"
    largest = max(float(np.abs(v).max()) for v in pred.values())
    return f"the prediction overflows (largest value {largest:.3g})" if largest > 1e150 else "degenerate input"


class InputFileError(ValueError):
    """A --gt / --pred file that cannot be read at all (the CLI exits with status 2)."""


def _load_json(path: Path, what: str) -> object:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputFileError(f"{what} file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputFileError(f"{what} file {path} is not valid JSON ({err})") from None
    except IsADirectoryError:
        raise InputFileError(f"{what} file {path} is a folder, not a JSON file") from None
    except OSError as err:
        raise InputFileError(f"{what} file {path} cannot be read ({err.strerror or err})") from None


def make_gt(split_dir: str | Path) -> list[dict]:
    """The official ``generate_gt`` list from a DAD-3DHeads-layout split with annotations (facts section 2).

    ``split_dir`` holds ``<split>.json`` (entries with item_id, annotation_path, img_path, bbox,
    attributes; paths relative to ``split_dir``) and the annotation JSONs. The image height comes
    from the image header (PIL reads it lazily, without decoding the pixels).
    """
    split_dir = Path(split_dir)
    split_file = split_dir / f"{split_dir.name}.json"
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file} is missing: --split-dir must be a DAD-3DHeads split folder")
    items = []
    entries = _load_json(split_file, "split")
    if not isinstance(entries, list):
        raise InputFileError(f"split file {split_file}: expected a list of items, got {type(entries).__name__}")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputFileError(f"split file {split_file} entry {position}: expected an object, "
                                 f"got {type(entry).__name__}")
        missing = [key for key in ("item_id", "annotation_path", "img_path", "bbox") if key not in entry]
        if missing:
            raise InputFileError(f"split file {split_file} entry {position} lacks {missing}")
        item_id = entry["item_id"]
        ann_path = split_dir / str(entry["annotation_path"])
        if not ann_path.is_file():
            raise FileNotFoundError(f"annotation {ann_path} of item {item_id} is missing (a test split has none)")
        ann = _load_json(ann_path, f"annotation of item {item_id}:")
        missing = [key for key in ("vertices", "model_view_matrix", "projection_matrix")
                   if not isinstance(ann, dict) or key not in ann]
        if missing:
            raise InputFileError(f"annotation {ann_path} of item {item_id} lacks {missing}")
        image_path = split_dir / str(entry["img_path"])
        try:
            with Image.open(image_path) as image:     # header only
                height = image.height
        except (OSError, ValueError) as err:
            raise InputFileError(f"image {image_path} of item {item_id} is missing or not an image ({err})") from None
        if problem := _vertices_problem(ann["vertices"]):
            raise InputFileError(f"annotation {ann_path} of item {item_id}: vertices {problem}; re-download or "
                                 "regenerate it")
        items.append({"id": item_id, "bbox": entry["bbox"], "vertices": ann["vertices"],
                      "model_view_matrix": ann["model_view_matrix"], "projection_matrix": ann["projection_matrix"],
                      "image_height": height, "attributes": entry.get("attributes", {})})
    if not items:
        raise InputFileError(f"split file {split_file} lists no items: nothing to score against "
                             "(is --split-dir the right split?)")
    return items


def _vertices_problem(vertices: object) -> str | None:
    """Why GT vertices cannot be scored against (not numbers, not Nx3, not finite), or None."""
    try:
        raw = np.asarray(vertices)
        array = raw.astype(np.float64)
    except (TypeError, ValueError):
        return "are not a numeric array"
    if raw.dtype.kind not in "iuf":         # text ("0.1") would be read as a number
        return "are not a numeric array"
    if array.ndim != 2 or array.shape[1] != 3:
        return f"have shape {array.shape}, expected (N, 3)"
    if not np.isfinite(array).all():
        return f"hold {int((~np.isfinite(array)).any(1).sum())} non-finite vertex(es)"
    return None


def _check_prediction(item_id: str, pred: object, n_vertices: int) -> tuple[dict[str, np.ndarray] | None, str | None]:
    if not isinstance(pred, dict):
        expected = list(SUBMISSION_SHAPES)
        return None, f"{item_id}: prediction is {type(pred).__name__}, expected an object with {expected}"
    arrays = {}
    for key, shape in SUBMISSION_SHAPES.items():
        if key not in pred:
            return None, f"{item_id}: missing key '{key}'"
        try:
            raw = np.asarray(pred[key])
            value = raw.astype(np.float64)
        except (TypeError, ValueError):
            return None, f"{item_id}: '{key}' is not a numeric array"
        if raw.dtype.kind not in "iuf":         # numpy would read "1" or true as a number
            return None, f"{item_id}: '{key}' is not a numeric array (holds {raw.dtype.kind == 'U' and 'text' or raw.dtype})"
        expected = shape or (n_vertices, 3)
        if value.shape != expected:
            return None, f"{item_id}: '{key}' has shape {value.shape}, expected {expected}"
        if not np.isfinite(value).all():
            return None, f"{item_id}: '{key}' holds non-finite numbers"
        arrays[key] = value
    return arrays, None


def score_item(gt: dict, pred: dict[str, np.ndarray], topology: FlameTopology, z5_mode: str) -> dict[str, float]:
    """The four metrics of one item, with the GT side computed as the official code does (facts 1-2)."""
    vertices = np.asarray(gt["vertices"], dtype=np.float64)
    mv, proj = np.asarray(gt["model_view_matrix"], float), np.asarray(gt["projection_matrix"], float)
    landmarks = topology.landmarks_68(vertices)
    gt_2d = project_official(landmarks, mv, proj, float(gt["image_height"]))
    world = vertices @ mv[:3, :3].T + mv[:3, 3]
    world_landmarks = landmarks @ mv[:3, :3].T + mv[:3, 3]
    ears = topology.subsets["face_w_ears"]
    pairs = metrics.z5_pairs(world[ears], z5_mode)
    seven = list(metrics.SEVEN_LANDMARKS)
    return {
        "nme": float(metrics.nme(pred["68_landmarks_2d"], gt_2d, np.asarray(gt["bbox"], float))),
        "z5": metrics.z5_accuracy(pred["N_landmarks_3d"][ears, 2], -world[ears, 2], pairs),
        "chamfer": metrics.chamfer(pred["N_landmarks_3d"], pred["7_landmarks_3d"], world, world_landmarks[seven],
                                   (world_landmarks[39], world_landmarks[42]), topology.subsets["face"]),
        "pose_error": float(metrics.pose_error(pred["rotation_matrix"], rotation_from_model_view(mv))),
    }


def score(gt_items: list[dict], submission: dict, topology: FlameTopology, *, z5_mode: str = "official") -> ScoreResult:
    """Score ``submission`` (official format, keyed by item id) against official GT items.

    ``aggregate`` has per metric the mean over scored items, ``<m>_n`` and ``<m>_failed``, plus
    ``n_items`` and ``n_problems``; ``per_item`` one row per GT item (``item_id``, the four metrics,
    ``error``: empty when scored); ``problems`` one message per missing / malformed / non-finite /
    unknown item. ``z5_mode``: ``official`` (the benchmark code's indexing) or ``readme``.
    """
    if z5_mode not in ("official", "readme"):
        raise ValueError(f"z5_mode {z5_mode!r}: use official or readme")
    rows, problems = [], []
    by_id = {str(key): value for key, value in submission.items()}     # JSON keys are strings, GT ids may not be
    gt_ids = [str(item["id"]) for item in gt_items]
    for unknown in sorted(set(by_id) - set(gt_ids)):
        problems.append(f"{unknown}: not in the ground truth (unknown item id)")
    for duplicate, count in sorted(Counter(gt_ids).items()):
        if count > 1:
            problems.append(f"{duplicate}: appears {count} times in the ground truth (scored each time)")
    for gt, item_id in zip(gt_items, gt_ids):
        row = {"item_id": item_id, **{m: np.nan for m in DAD_METRICS}, "error": ""}
        gt_problem = _vertices_problem(gt.get("vertices")) if isinstance(gt, dict) else "missing"
        if gt_problem:
            row["error"] = f"{item_id}: the ground-truth vertices {gt_problem} (the GT file is damaged: remake it)"
        elif item_id not in by_id:
            row["error"] = f"{item_id}: missing from the submission"
        else:
            pred, error = _check_prediction(item_id, by_id[item_id], topology.n_vertices)
            if error:
                row["error"] = error
            else:
                try:
                    with np.errstate(all="ignore"):         # overflow shows as a non-finite value, named below
                        values = score_item(gt, pred, topology, z5_mode)
                except (KeyError, TypeError, IndexError, ValueError, np.linalg.LinAlgError) as err:
                    # A malformed GT item (or a degenerate one) is reported like a bad prediction.
                    row["error"] = f"{item_id}: scoring failed ({type(err).__name__}: {err})"
                else:
                    # A finite submission can still overflow a metric (landmarks of 1e308) or meet a
                    # degenerate GT (a zero-size box): that metric is left out of its mean, and said so.
                    bad = [m for m, v in values.items() if not np.isfinite(v)]
                    row.update({m: (np.nan if m in bad else v) for m, v in values.items()})
                    if bad:
                        row["error"] = f"{item_id}: {', '.join(bad)} not finite ({_non_finite_reason(gt, pred)})"
        if row["error"]:
            problems.append(row["error"])
        rows.append(row)
    per_item = pd.DataFrame(rows, columns=["item_id", *DAD_METRICS, "error"])
    result = metrics.aggregate({m: per_item[m].to_numpy() for m in DAD_METRICS})
    result["n_items"] = len(gt_items)
    result["n_problems"] = len(problems)
    return ScoreResult(result, per_item, problems)


def _default_flame_dir(gt_path: Path) -> Path:
    """The nearest ``flame/`` folder beside the GT file or above it (SynthHeads: ``DIR/flame``)."""
    for folder in [gt_path.resolve().parent, *gt_path.resolve().parents]:
        if (folder / "flame").is_dir():
            return folder / "flame"
    return gt_path.parent / "flame"


def main(argv: list[str] | None = None) -> int:
    """The ``make-gt`` / ``score`` CLI; returns the exit status: 0, 1 (items left unscored without
    ``--allow-missing``, or ``--out`` unwritable) or 2 (an unreadable or malformed input)."""
    parser = argparse.ArgumentParser(prog="python -m trans3dhead.scoring", description="Official-format scoring")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-gt", help="write the official GT file of a DAD-3DHeads-layout split")
    make.add_argument("--split-dir", type=Path, required=True)
    make.add_argument("--out", type=Path, required=True)
    sc = sub.add_parser("score", help="score a submission")
    sc.add_argument("--gt", type=Path, required=True)
    sc.add_argument("--pred", type=Path, required=True)
    sc.add_argument("--flame-dir", type=Path, help="FLAME folder (default: the nearest flame/ beside or above --gt)")
    sc.add_argument("--out", type=Path)
    sc.add_argument("--allow-missing", action="store_true")
    sc.add_argument("--z5-mode", choices=("official", "readme"), default="official")
    args = parser.parse_args(argv)

    if args.command == "make-gt":
        try:
            items = make_gt(args.split_dir)
        except (OSError, InputFileError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _write_output(args.out, json.dumps(items), f"wrote {len(items)} GT items to {args.out}")

    try:
        gt_items = _load_json(args.gt, "ground-truth")
        submission = _load_json(args.pred, "submission")
    except InputFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not isinstance(gt_items, list) or not isinstance(submission, dict):
        print(f"error: --gt {args.gt} must hold a list of items and --pred {args.pred} an object keyed by item_id",
              file=sys.stderr)
        return 2
    malformed = [i for i, item in enumerate(gt_items) if not isinstance(item, dict) or "id" not in item]
    if malformed:
        print(f"error: ground-truth file {args.gt}: item(s) at position {malformed[:5]} are not objects with an "
              "'id' (make it with python -m trans3dhead.scoring make-gt)", file=sys.stderr)
        return 2
    flame_dir = args.flame_dir or _default_flame_dir(args.gt)
    try:
        topology = load_topology(flame_dir)
    except (OSError, ValueError) as err:
        print(f"error: {err} (pass --flame-dir)", file=sys.stderr)
        return 2
    result = score(gt_items, submission, topology, z5_mode=args.z5_mode)
    # Each metric's own count: an item can fail one metric (an overflow) and be scored by the others.
    table = pd.DataFrame({m: [result.aggregate[m], result.aggregate[f"{m}_n"]] for m in DAD_METRICS},
                         index=["mean", f"items averaged (of {result.aggregate['n_items']})"])
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if args.out:
        # NaN (nothing scored) becomes null: strict JSON, readable by any tool.
        aggregate = {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in result.aggregate.items()}
        text = json.dumps({"aggregate": aggregate, "problems": result.problems,
                           "per_item": json.loads(result.per_item.to_json(orient="records"))}, indent=1)
        if _write_output(args.out, text, f"wrote {args.out}"):
            return 1
    if result.problems and not args.allow_missing:
        print(f"{len(result.problems)} item(s) could not be scored; fix them or pass --allow-missing", file=sys.stderr)
        return 1
    if result.problems:
        counts = ", ".join(f"{m} {result.aggregate[f'{m}_n']} of {result.aggregate['n_items']}" for m in DAD_METRICS)
        print(f"--allow-missing: each mean is over its scored items only ({counts})", file=sys.stderr)
    return 0


def _write_output(path: Path, text: str, done: str) -> int:
    """Writes a CLI output file atomically; a bad path is an error naming it (exit 1), not a traceback."""
    try:
        atomic_write_text(path, text)
    except OSError as err:
        print(f"error: cannot write {path}: {describe_os_error(err)}", file=sys.stderr)
        return 1
    print(done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
