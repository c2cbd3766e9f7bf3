"""Helpers shared by test modules (a test module imports from here, never from another test module): a tiny
split in the official DAD-3DHeads layout and the perfect submission for it, and the environment a subprocess needs
to import this checkout."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from trans3dhead import metrics
from trans3dhead.flame import io
from trans3dhead.flame.topology import FlameTopology
from trans3dhead.geometry import (model_view_from_rotation, project_official, rotation_from_euler,
                                  rotation_from_model_view)

CHECKOUT = Path(__file__).resolve().parents[1]


def checkout_env(*extra_paths: Path, **variables: str) -> dict[str, str]:
    """This process's environment for a subprocess that must import this checkout's packages, whether or not
    (or wherever) pip installed them: a stale editable install elsewhere would otherwise win."""
    path = os.pathsep.join([str(CHECKOUT), *map(str, extra_paths), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, **variables, "PYTHONPATH": path}


WIDTH, HEIGHT = 120, 100                        # not square: the GT must read the height, not the width
POSES = [(0.0, 0.0, 0.0), (10.0, -35.0, 5.0), (-15.0, 60.0, -10.0)]   # (pitch, yaw, roll) degrees
GL_TO_IMAGE = np.diag([1.0, -1.0, -1.0])


def projection(focal: float = 250.0) -> np.ndarray:
    """A plain OpenGL-style pinhole: pixels = focal * (x, y) / -z + centre, w = -z."""
    return np.array([[focal, 0, -WIDTH / 2, 0], [0, focal, -HEIGHT / 2, 0], [0, 0, -1, -0.2], [0, 0, -1, 0.0]])


def write_split(root: Path, flame_dir: Path, name: str = "val") -> Path:
    """A tiny DAD-3DHeads-layout split: the template head under three poses, 1 m from the camera."""
    split_dir = root / name
    (split_dir / "images").mkdir(parents=True)
    (split_dir / "annotations").mkdir()
    template = io.load_model(flame_dir / io.MODEL_FILE)["v_template"]
    entries = []
    for index, pose in enumerate(POSES):
        item_id = f"{name}_{index:03d}"
        vertices = template * (1.0 + 0.05 * index)            # a different head size per item
        mv = model_view_from_rotation(rotation_from_euler(np.array(pose)), np.array([0.01 * index, 0.0, -1.0]))
        Image.new("RGB", (WIDTH, HEIGHT)).save(split_dir / "images" / f"{item_id}.png")
        annotation = {"vertices": vertices.tolist(), "model_view_matrix": mv.tolist(),
                      "projection_matrix": projection().tolist()}
        (split_dir / "annotations" / f"{item_id}.json").write_text(json.dumps(annotation))
        pixels = project_official(vertices, mv, projection(), HEIGHT)
        lo, hi = pixels.min(0), pixels.max(0)
        entries.append({"item_id": item_id, "annotation_path": f"annotations/{item_id}.json",
                        "img_path": f"images/{item_id}.png", "bbox": [*lo.tolist(), *(hi - lo).tolist()],
                        "attributes": {"pose": "front" if index == 0 else "sided"}})
    (split_dir / f"{name}.json").write_text(json.dumps(entries))
    return split_dir


def submission_from_gt(gt_items: list[dict], topology: FlameTopology) -> dict:
    """A perfect prediction: GT pixels, the GT world mesh in image-space axes (x right, y down,
    z away from the camera) scaled to pixel-like units, and the GT rotation."""
    submission = {}
    for gt in gt_items:
        vertices, mv = np.asarray(gt["vertices"]), np.asarray(gt["model_view_matrix"])
        world = vertices @ mv[:3, :3].T + mv[:3, 3]
        image_space = world @ GL_TO_IMAGE * 300.0 + [60.0, 50.0, 0.0]
        landmarks = topology.landmarks_68(vertices)
        submission[gt["id"]] = {
            "68_landmarks_2d": project_official(landmarks, mv, np.asarray(gt["projection_matrix"]), gt["image_height"]),
            "N_landmarks_3d": image_space,
            "7_landmarks_3d": topology.landmarks_68(image_space)[list(metrics.SEVEN_LANDMARKS)],
            "rotation_matrix": rotation_from_model_view(mv),
        }
    return submission


def as_json(submission: dict) -> dict:
    return {item_id: {key: np.asarray(value).tolist() for key, value in pred.items()}
            for item_id, pred in submission.items()}
