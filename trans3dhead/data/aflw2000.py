"""AFLW2000-3D reader (facts section 6): pose evaluation on samples with all |angles| <= 99 deg.

``Pose_Para`` = [pitch, yaw, roll (radians, 3DDFA convention: ``geometry.rotation_from_aflw_pose``), tx, ty,
tz, s]. The protocol's GT is ``Pose_Para[:3] * 180 / pi`` as stored (no re-decomposition), and a sample
is kept only if all three are within +-99 degrees (Hopenet / FSA-Net / 6DRepNet; cited in geometry.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image
from torch.utils.data import Dataset

from trans3dhead.data.errors import DatasetError
from trans3dhead.data.transforms import crop_geometry, crop_image, jittered_crop

MAX_ANGLE_DEG = 99.0


def _read_mat(path: Path) -> dict:
    try:
        mat = scipy.io.loadmat(path)
        pose = np.asarray(mat["Pose_Para"], dtype=np.float64).reshape(-1)
        pt3d = np.asarray(mat["pt3d_68"], dtype=np.float64)
    except (KeyError, ValueError, OSError) as err:
        raise DatasetError(f"AFLW2000-3D annotation {path} is unreadable or lacks Pose_Para/pt3d_68 ({err})") from err
    if pose.size < 3 or pt3d.shape != (3, 68):
        raise DatasetError(f"{path}: Pose_Para {pose.shape} / pt3d_68 {pt3d.shape}; expected 1x7 and 3x68")
    if not (np.isfinite(pose[:3]).all() and np.isfinite(pt3d).all()):
        # A NaN angle fails the |angle| <= 99 test and would be dropped as if it were a profile pose.
        raise DatasetError(f"{path}: Pose_Para {pose[:3].tolist()} / pt3d_68 hold non-finite numbers; "
                           "re-download the file or remove it from the folder")
    return {"euler": protocol_euler(pose), "landmarks": pt3d[:2].T}


def protocol_euler(pose_para: np.ndarray) -> np.ndarray:
    """The GT angles the AFLW2000-3D protocol compares: (pitch, yaw, roll) degrees = ``Pose_Para[:3] * 180 / pi``."""
    return np.rad2deg(np.asarray(pose_para, dtype=np.float64).reshape(-1)[:3])


class AFLW2000Dataset(Dataset):
    """Crops from the box of the 68 GT points (extended like DAD-3DHeads' crop, without jitter);
    targets: Euler angles (pitch, yaw, roll) in degrees from Pose_Para, and 68 2D landmarks."""

    def __init__(self, root: str | Path, image_size: int):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"AFLW2000-3D folder {self.root} is missing")
        self.items = []
        for mat in sorted(self.root.glob("*.mat")):
            ann = _read_mat(mat)
            if np.all(np.abs(ann["euler"]) <= MAX_ANGLE_DEG):
                self.items.append((mat.stem, ann))
        if not self.items:
            raise DatasetError(f"no usable AFLW2000-3D .mat files in {self.root}")
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, index: int) -> dict:
        item_id, ann = self.items[index]
        path = self.root / f"{item_id}.jpg"
        if not path.is_file():
            raise DatasetError(f"AFLW2000-3D image {path} is missing")
        landmarks = ann["landmarks"]
        lo, hi = landmarks.min(0), landmarks.max(0)
        bbox = np.concatenate([lo, hi - lo])
        with Image.open(path) as image:
            crop = jittered_crop(bbox, image.width, image.height, self.image_size, None)
            return {"image": crop_image(image, crop), "item_id": item_id, "image_height": image.height,
                    "bbox": torch.tensor(bbox, dtype=torch.float64),
                    "euler": torch.tensor(ann["euler"], dtype=torch.float32),
                    "landmarks_2d": torch.tensor(crop.to_crop_units(landmarks), dtype=torch.float32),
                    **crop_geometry(crop)}
