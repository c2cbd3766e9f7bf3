"""Writes a SynthHeads benchmark in the official DAD-3DHeads and AFLW2000-3D file formats.

``python -m trans3dhead.data.synth --out DIR --train N --val N --test N --aflw N --image-size S --seed K``

Layout: ``DIR/flame/`` (procedural FLAME-format assets), ``DIR/dad3dheads/<split>/{<split>.json,
images/<id>.png, annotations/<id>.json}`` and ``DIR/aflw2000/<id>.{jpg,mat}``. Every image has its own
random stream derived from (seed, split, index), so the output is deterministic for a seed.
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image
from tqdm import tqdm

from trans3dhead.atomic import folder_problem
from trans3dhead.cli import guarded, summary
from trans3dhead.data.errors import DatasetError
from trans3dhead.data.synth.canvas import place_on_canvas
from trans3dhead.data.synth.scene import Scene, sample_scene
from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.flame.topology import load_topology
from trans3dhead.geometry import AFLW_TO_IMAGE, aflw_pose_from_rotation, project_official, rotation_from_model_view

SPLIT_CODES = {"train": 1, "val": 2, "test": 3, "aflw": 4}


def _attributes(scene: Scene) -> dict:
    pitch, yaw, roll = scene.euler
    if abs(pitch) > 35 or abs(roll) > 35:
        pose = "atypical"
    elif abs(yaw) > 35:
        pose = "sided"
    else:
        pose = "front"
    return {"quality": "hq", "gender": "undefined", "expression": bool(scene.expression), "age": "undefined",
            "occlusions": bool(scene.occluded), "pose": pose, "standard light": True}


def _bbox(pixels: np.ndarray) -> list[float]:
    lo, hi = pixels.min(0), pixels.max(0)
    return [round(float(lo[0]), 2), round(float(lo[1]), 2), round(float(hi[0] - lo[0]), 2), round(float(hi[1] - lo[1]), 2)]


_WORKER: dict = {}


def _init_worker(flame_dir: str) -> None:
    """Per-process FLAME model (workers are spawned, so nothing heavy is pickled)."""
    torch.set_num_threads(1)
    topology = load_topology(flame_dir)
    _WORKER.update(decoder=FlameDecoder(flame_dir, 413), topology=topology,
                   regions=np.load(Path(flame_dir) / "synthheads_regions.npy"))


def _dad_item(task: tuple) -> dict:
    split_dir, split, index, size, seed, canvas_size = task
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    scene = sample_scene(_WORKER["decoder"], _WORKER["regions"], size, rng)
    item_id = f"{split}_{index:06d}"
    image, projection, height = scene.image, scene.projection, size
    if canvas_size:           # a photograph-sized JPEG (the real data's decode path)
        image, projection = place_on_canvas(image, projection, canvas_size, rng)
        height, name = canvas_size, f"images/{item_id}.jpg"
        Image.fromarray(image).save(split_dir / name, quality=90)
    else:
        name = f"images/{item_id}.png"
        Image.fromarray(image).save(split_dir / name)
    vertices = np.round(scene.vertices, 6)
    annotation = {"vertices": vertices.tolist(), "model_view_matrix": scene.model_view.tolist(),
                  "projection_matrix": projection.tolist()}
    (split_dir / "annotations" / f"{item_id}.json").write_text(json.dumps(annotation))
    pixels = project_official(vertices[_WORKER["topology"].subsets["head"]], scene.model_view, projection, height)
    return {"item_id": item_id, "annotation_path": f"annotations/{item_id}.json", "img_path": name,
            "bbox": _bbox(pixels), "attributes": _attributes(scene)}


def aflw_scene(decoder: FlameDecoder, regions: np.ndarray, index: int, size: int, seed: int) -> Scene:
    """The scene behind AFLW2000 item ``index`` (its own random stream, as every SynthHeads image)."""
    return sample_scene(decoder, regions, size, np.random.default_rng([seed, SPLIT_CODES["aflw"], index]))


def aflw_annotation(scene: Scene, landmarks: np.ndarray) -> dict:
    """The AFLW2000-3D ``.mat`` fields of a scene, in the real (3DDFA) convention (geometry.py cites it).

    ``Pose_Para`` 1x7 = [pitch, yaw, roll, tx, ty, tz, s]: the angles (radians) decompose the head's true
    rotation ``R_aflw = AFLW_TO_IMAGE @ R_image = Rx(pitch) Ry(yaw) Rz(roll)``; ``s`` and ``t`` are 3DDFA's
    weak perspective ``s * R_aflw @ v + t`` (x right, y up in pixels; image row = H - y) fitted to our
    pinhole at the model origin's depth (``tz = 0``). ``pt3d_68`` 3x68: the exact pixels (x, row) of the
    68 landmarks and, as 3DDFA, ``z = s * (R_aflw @ v)_z`` (pixels, growing towards the viewer);
    ``pt2d`` 2x21: the first 21 of those pixels (no AFLW 21-point semantics).
    """
    size = scene.image.shape[0]
    rotation_aflw = AFLW_TO_IMAGE @ rotation_from_model_view(scene.model_view)
    angles = aflw_pose_from_rotation(rotation_aflw)
    focal, centre = scene.projection[0, 0], -scene.projection[0, 2]
    translation = scene.model_view[:3, 3]
    scale = focal / -translation[2]
    t3d = np.array([centre + scale * translation[0], centre + scale * translation[1], 0.0])
    pixels = project_official(landmarks, scene.model_view, scene.projection, size)
    depth = scale * (landmarks @ rotation_aflw.T)[:, 2]
    pose = np.concatenate([angles, t3d, [scale]])[None]
    return {"Pose_Para": pose, "pt3d_68": np.stack([pixels[:, 0], pixels[:, 1], depth]), "pt2d": pixels[:21].T}


def _aflw_item(task: tuple) -> None:
    """AFLW2000-3D format: ``<id>.jpg`` + ``<id>.mat`` (:func:`aflw_annotation`)."""
    folder, index, size, seed = task
    scene = aflw_scene(_WORKER["decoder"], _WORKER["regions"], index, size, seed)
    item_id = f"image{index:05d}"
    Image.fromarray(scene.image).save(folder / f"{item_id}.jpg", quality=95)
    _save_mat(folder / f"{item_id}.mat", aflw_annotation(scene, _WORKER["topology"].landmarks_68(scene.vertices)))


def _save_mat(path: Path, arrays: dict) -> None:
    """MATLAB 5 file with a fixed 116-byte header text (scipy stamps the creation time there, which
    would make generation non-deterministic)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays)
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by trans3dhead SynthHeads".ljust(116, b" ")
    path.write_bytes(bytes(data))


def _run(fn, tasks: list, desc: str, pool) -> list:
    iterator = pool.imap(fn, tasks, chunksize=8) if pool else map(fn, tasks)
    return list(tqdm(iterator, total=len(tasks), desc=desc, leave=False))


MIN_IMAGE_SIZE = 16        # the smallest render whose head box the crop and the 68 landmarks survive


def check_sizes(*, image_size: int, workers: int = 1, **counts: int) -> None:
    """Negative counts, a render smaller than MIN_IMAGE_SIZE or no worker are errors naming the option."""
    for split, count in counts.items():
        if count < 0:
            raise DatasetError(f"SynthHeads {split} count {count}: use 0 or more (--{split})")
    if image_size < MIN_IMAGE_SIZE:
        raise DatasetError(f"SynthHeads image size {image_size}: use {MIN_IMAGE_SIZE} pixels or more (--image-size)")
    if workers < 1:
        raise DatasetError(f"SynthHeads workers {workers}: use 1 or more (--workers)")


def generate(out: Path, *, train: int, val: int, test: int, aflw: int, image_size: int, seed: int,
             workers: int = 1, canvas_size: int = 0) -> Path:
    """Every image has its own random stream, so the output is identical whatever ``workers`` is.
    ``canvas_size`` > 0 writes the DAD-3DHeads-format images as JPEG canvases of that side (the head
    scaled up and placed in a bigger picture, like the real data's photographs)."""
    # Imported here, not at the top: `trans3dhead.data` imports this module, and `python -m
    # trans3dhead.data.synth.head_model` must not find itself imported before it runs.
    from trans3dhead.data.synth.head_model import write_assets

    out = Path(out)
    check_sizes(train=train, val=val, test=test, aflw=aflw, image_size=image_size, workers=workers)
    flame_dir = write_assets(out / "flame", seed=0)
    pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (str(flame_dir),)) if workers > 1 else None
    if pool is None:
        _init_worker(str(flame_dir))
    try:
        for split, count in (("train", train), ("val", val), ("test", test)):
            split_dir = out / "dad3dheads" / split
            (split_dir / "images").mkdir(parents=True, exist_ok=True)
            (split_dir / "annotations").mkdir(parents=True, exist_ok=True)
            entries = _run(_dad_item, [(split_dir, split, i, image_size, seed, canvas_size) for i in range(count)],
                           f"SynthHeads {split}", pool)
            (split_dir / f"{split}.json").write_text(json.dumps(entries, indent=1))
        folder = out / "aflw2000"
        folder.mkdir(parents=True, exist_ok=True)
        _run(_aflw_item, [(folder, i, image_size, seed) for i in range(aflw)], "SynthHeads aflw2000", pool)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return out


def main(argv: list[str] | None = None) -> int:
    """The ``python -m trans3dhead.data.synth`` CLI (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m trans3dhead.data.synth", description=summary(__doc__))
    parser.add_argument("--out", type=Path, required=True)
    for split, default in (("train", 64), ("val", 16), ("test", 16), ("aflw", 16)):
        parser.add_argument(f"--{split}", type=int, default=default)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--canvas-size", type=int, default=0, help="write photograph-sized JPEG canvases (0: PNG crops)")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.seed < 0:
            raise DatasetError(f"--seed={args.seed}: use 0 or more")
        check_sizes(train=args.train, val=args.val, test=args.test, aflw=args.aflw, image_size=args.image_size,
                    workers=args.workers)
        if problem := folder_problem(args.out, "--out"):
            raise DatasetError(problem)
        generate(args.out, train=args.train, val=args.val, test=args.test, aflw=args.aflw,
                 image_size=args.image_size, seed=args.seed, workers=args.workers,
                 canvas_size=args.canvas_size)
        print(f"SynthHeads written to {args.out}")
        return 0
    return guarded(body, (DatasetError,))
