"""``python -m trans3dhead.predict CKPT IMAGES... --out DIR [--bbox X Y W H]``

For each image: 68 landmarks (JSON, original pixels), the head mesh (.obj, image space in pixels),
the pose (Euler angles in the official convention and the rotation matrix, JSON) and a picture
(PNG with the landmarks and the pose axes drawn).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trans3dhead.atomic import describe_os_error, folder_problem
from trans3dhead.data import flame_dir_for
from trans3dhead.data.transforms import crop_geometry, crop_image, jittered_crop
from trans3dhead.engine.batches import autocast, crop_units_to_original, posed_to_original
from trans3dhead.engine.checkpoint import CheckpointError
from trans3dhead.engine.evaluate import load_model
from trans3dhead.flame.topology import load_topology
from trans3dhead.geometry import euler_from_rotation_np
from trans3dhead.cli import summary


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Writes a Wavefront OBJ: the ``vertices`` (V, 3) as given and the 0-based ``faces`` (F, 3) as 1-based."""
    lines = [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def draw(path: Path, image: Image.Image, landmarks: np.ndarray, rotation: np.ndarray) -> None:
    """Saves a PNG of ``image`` with the ``landmarks`` (original pixels) and the pose axes: the columns of the
    image-space ``rotation`` (x right, y down) drawn red, green, blue from the landmarks' centroid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 4 * image.height / image.width))
    ax.imshow(image)
    ax.scatter(landmarks[:, 0], landmarks[:, 1], s=6, c="lime")
    centre, length = landmarks.mean(0), 0.3 * (landmarks[:, 1].max() - landmarks[:, 1].min() + 1)
    for axis, colour in zip(rotation.T, ("red", "green", "blue")):
        ax.plot([centre[0], centre[0] + axis[0] * length], [centre[1], centre[1] + axis[1] * length], c=colour)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


class PredictInputError(ValueError):
    """An input image, box or device that cannot be used; the message names it."""


def _read_image(path: Path, decode: bool = True) -> Image.Image:
    """The RGB image, or (``decode=False``) just its header, for checking every input before any work."""
    if not path.is_file():
        raise PredictInputError(f"image {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with Image.open(path) as raw:
            return raw.convert("RGB") if decode else raw
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise PredictInputError(f"image {path} is not a readable image ({err})") from None


def _check_box(bbox: list[float] | None, image: Image.Image, path: Path) -> np.ndarray:
    """The head box (default: the whole image); it must have an area and overlap the image."""
    if not bbox:
        return np.asarray([0, 0, image.width, image.height], dtype=np.float64)
    x, y, w, h = box = np.asarray(bbox, dtype=np.float64)
    if not np.isfinite(box).all() or w <= 0 or h <= 0:
        raise PredictInputError(f"--bbox {bbox}: width and height must be finite and > 0")
    if x >= image.width or y >= image.height or x + w <= 0 or y + h <= 0:
        raise PredictInputError(f"--bbox {bbox} lies outside {path} ({image.width}x{image.height} pixels)")
    return box


def check_device(device: str) -> None:
    """``auto``, ``cpu`` or a visible CUDA device; anything else is an error naming it."""
    try:
        parsed = torch.device(device) if device != "auto" else None
    except RuntimeError:
        raise PredictInputError(f"--device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if parsed is None or parsed.type == "cpu":
        return
    if parsed.type != "cuda":
        raise PredictInputError(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    visible = torch.cuda.device_count()
    if (parsed.index or 0) >= visible:
        raise PredictInputError(f"--device {device}: {visible} CUDA device(s) visible here; use auto or cpu")


@torch.no_grad()
def predict(checkpoint: Path, images: list[Path], out: Path, bbox: list[float] | None = None,
            device: str = "auto") -> list[Path]:
    """Runs ``checkpoint`` on each image, cropped like evaluation around ``bbox`` (X Y W H pixels; default the
    whole image), and writes ``<stem>.landmarks.json``, ``.pose.json``, ``.obj`` and ``.png`` to ``out``.
    Returns the paths written. Every input (file, box) is checked before the model loads or anything is written."""
    check_device(device)
    if problem := folder_problem(out, "--out"):
        raise PredictInputError(problem)
    for path in images:             # every input checked before the model loads and anything is written
        _check_box(bbox, _read_image(path, decode=False), path)
    model, cfg, data_cfg, dev, bf16 = load_model(checkpoint, device=device)
    faces = load_topology(flame_dir_for(data_cfg)).faces
    size = data_cfg.image_size
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        image = _read_image(path)
        box = _check_box(bbox, image, path)
        crop = jittered_crop(box, image.width, image.height, size, None)
        batch = {"image": crop_image(image, crop)[None], **{k: v[None] for k, v in crop_geometry(crop).items()}}
        with autocast(dev, bf16):
            result = model(batch["image"].to(dev))
        landmarks = crop_units_to_original(result["landmarks_2d"].float().cpu(), batch, size)[0].numpy()
        vertices = posed_to_original(result["posed_vertices"].float().cpu(), batch, size)[0].numpy()
        rotation = result["rotation"].float().cpu()[0].numpy()
        pitch, yaw, roll = euler_from_rotation_np(rotation)
        stem = out / path.stem
        Path(f"{stem}.landmarks.json").write_text(json.dumps({"68_landmarks_2d": landmarks.round(2).tolist()}))
        Path(f"{stem}.pose.json").write_text(json.dumps({"pitch": float(pitch), "yaw": float(yaw), "roll": float(roll),
                                                         "rotation_matrix": rotation.round(6).tolist()}, indent=1))
        write_obj(Path(f"{stem}.obj"), vertices, faces)
        draw(Path(f"{stem}.png"), image, landmarks, rotation)
        written += [Path(f"{stem}.{ext}") for ext in ("landmarks.json", "pose.json", "obj", "png")]
    return written


def main(argv: list[str] | None = None) -> int:
    """The ``python -m trans3dhead.predict`` CLI; returns the exit status (2: bad input, 1: cannot write)."""
    parser = argparse.ArgumentParser(prog="python -m trans3dhead.predict", description=summary(__doc__))
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bbox", type=float, nargs=4, metavar=("X", "Y", "W", "H"),
                        help="head box in pixels (default: the whole image)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        files = predict(args.checkpoint, args.images, args.out, args.bbox, args.device)
    except (CheckpointError, PredictInputError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:                  # --out read-only, not a folder, or the disk full
        print(f"error: cannot write the results: {describe_os_error(err)}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
