"""DAD-3DHeads reader (official layout, facts section 2), for the real dataset and for SynthHeads."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from trans3dhead.data import annotation_cache
from trans3dhead.data.errors import DatasetError
from trans3dhead.data.transforms import Crop, crop_geometry, crop_image, jittered_crop
from trans3dhead.flame.topology import load_topology
from trans3dhead.geometry import euler_from_rotation_np, project_official, rotation_from_model_view

# Evaluation crops keep the official random extension but draw it once per image, from the item's id: every run,
# variant and seed scores the same crop, so seed-to-seed noise is training noise, not crop noise (docs/fidelity.md).
EVAL_CROP_STREAM = 7_919


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise DatasetError(f"{what} {path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{what} {path} is not valid JSON ({err}); re-download or regenerate it") from err


def draft_factor(mean_crop_scale: float) -> int:
    """The largest JPEG reduction (1, 2, 4, 8) that keeps a decoded pixel per crop pixel for every
    jittered crop: crops vary around the mean extension (0.10 of the box per side) between 0.05 and
    0.15, so the smallest crop is at least 1.1 / 1.2 of the mean one; 0.75 leaves room for clipping."""
    usable = 0.75 * mean_crop_scale
    return next((f for f in (8, 4, 2) if f <= usable), 1)


# PIL's convert("RGB") clips a wide-range grayscale image at 255 (a 16-bit PNG turns all white):
# these modes are scaled to 8 bits by their bit depth first.
_WIDE_MODES = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 16}
_DECODABLE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "La"} | set(_WIDE_MODES)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, a 16-bit grayscale one scaled by its depth (not clipped to white); a mode
    with no such meaning (floating point, a 32-bit integer beyond 16 bits) raises ValueError naming it."""
    if image.mode not in _DECODABLE_MODES:
        raise ValueError(f"image mode {image.mode} has no 8-bit RGB reading; save it as 8-bit RGB or grayscale")
    if image.mode in _WIDE_MODES:
        pixels = np.asarray(image, dtype=np.int64)
        if pixels.size and (pixels.min() < 0 or pixels.max() >= 2 ** _WIDE_MODES[image.mode]):
            raise ValueError(f"image mode {image.mode} holds values outside 16 bits; save it as 8-bit RGB")
        gray = (pixels >> (_WIDE_MODES[image.mode] - 8)).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return image.convert("RGB")


class DAD3DHeadsDataset(Dataset):
    """One split of a DAD-3DHeads-layout folder; items as in docs/architecture.md.

    Crop jitter is a pure function of (seed, epoch, index) in training, so a resumed run sees exactly the
    crops of an uninterrupted one, and of the item's id alone in evaluation, so every run scores the same crops.

    ``cache_in_memory`` keeps each decoded image and its crop-independent geometry after the first
    read, so later epochs only crop (about 3x faster per item on small images); it holds the whole
    split in RAM, so it suits SynthHeads-sized sets, not the real 37k-image training split.
    """

    def __init__(self, split_dir: str | Path, flame_dir: str | Path, image_size: int, train: bool, seed: int = 0,
                 cache_in_memory: bool = False):
        self.split_dir = Path(split_dir)
        self.split = self.split_dir.name
        self.entries = _read_json(self.split_dir / f"{self.split}.json", "split file")
        if not isinstance(self.entries, list):
            raise DatasetError(f"{self.split_dir / f'{self.split}.json'}: expected a list of items")
        for i, entry in enumerate(self.entries):
            if not isinstance(entry, dict):
                raise DatasetError(f"{self.split_dir / f'{self.split}.json'} item {i}: expected an object, "
                                   f"got {type(entry).__name__}")
            missing = {"item_id", "img_path", "bbox"} - set(entry)
            if missing:
                raise DatasetError(f"{self.split_dir / f'{self.split}.json'} item {i} lacks {sorted(missing)}")
        self.has_annotations = all("annotation_path" in e for e in self.entries) and all(
            (self.split_dir / e["annotation_path"]).is_file() for e in self.entries[:1])
        self.topology = load_topology(flame_dir)
        self.image_size, self.train, self.seed, self.epoch = image_size, train, seed, 0
        self._annotation_rows: np.ndarray | None = None     # annotation_cache.load_or_build
        self.cache_in_memory = cache_in_memory
        self._images: dict[int, tuple[Image.Image, tuple[int, int], tuple[float, float]]] = {}
        self._geometry: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def annotation(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index``'s vertices, model-view and projection matrices (float64), from the split's
        annotation cache (``annotation_cache.py``; built on first use by :meth:`parse_annotation`)."""
        if self._annotation_rows is None:
            files = [self.split_dir / e["annotation_path"] for e in self.entries]
            missing = next((f for f in files if not f.is_file()), None)
            if missing is not None:
                item = self.entries[files.index(missing)]["item_id"]
                raise DatasetError(f"annotation of item {item}: {missing} is missing")
            key = annotation_cache.cache_key(self.split_dir / f"{self.split}.json", files)
            self._annotation_rows = annotation_cache.load_or_build(
                self.split_dir, key, len(self.entries), self.topology.n_vertices, self.parse_annotation)
        return annotation_cache.unpack(self._annotation_rows[index], self.topology.n_vertices)

    def parse_annotation(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index``'s annotation read from its JSON file and checked."""
        path = self.split_dir / self.entries[index]["annotation_path"]
        raw = _read_json(path, f"annotation of item {self.entries[index]['item_id']}:")
        try:
            ann = {"vertices": np.asarray(raw["vertices"], dtype=np.float64),
                   "model_view": np.asarray(raw["model_view_matrix"], dtype=np.float64),
                   "projection": np.asarray(raw["projection_matrix"], dtype=np.float64)}
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"annotation {path} lacks or mangles {err}; expected vertices, "
                               "model_view_matrix and projection_matrix") from err
        if (ann["vertices"].shape != (self.topology.n_vertices, 3) or ann["model_view"].shape != (4, 4)
                or ann["projection"].shape != (4, 4)):
            raise DatasetError(f"annotation {path}: vertices {ann['vertices'].shape} / matrices "
                               f"{ann['model_view'].shape}; expected ({self.topology.n_vertices}, 3) and (4, 4)")
        return ann

    def image_path(self, index: int) -> Path:
        return self.split_dir / self.entries[index]["img_path"]

    def _open_image(self, index: int) -> Image.Image:
        path = self.image_path(index)
        if not path.is_file():
            raise DatasetError(f"image {path} is missing (listed in {self.split}.json)")
        try:
            return Image.open(path)
        except (OSError, ValueError) as err:
            raise DatasetError(self._undecodable(index, err)) from None

    def _undecodable(self, index: int, err: Exception) -> str:
        return (f"image {self.image_path(index)} of item {self.entries[index]['item_id']} cannot be decoded "
                f"({err}); re-download or regenerate it")

    def _rgb_image(self, index: int) -> tuple[Image.Image, tuple[int, int], tuple[float, float]]:
        """(decoded image, original (width, height), original pixels per decoded pixel in x and y).

        A JPEG is decoded at 1/2, 1/4 or 1/8 size (DCT scaling, PIL's draft mode: several times
        faster on a megapixel photograph) when every crop of the item still has at least one decoded
        pixel per crop pixel; the cache then also holds the smaller image."""
        if index in self._images:
            return self._images[index]
        try:
            with self._open_image(index) as image:
                size = image.size
                if image.format == "JPEG":
                    factor = draft_factor(self.crop(index, *size, jitter=False).scale)
                    if factor > 1:
                        image.draft("RGB", (size[0] // factor, size[1] // factor))
                rgb = to_rgb(image)
        except (OSError, SyntaxError, ValueError) as err:        # a truncated image fails only when decoded
            raise DatasetError(self._undecodable(index, err)) from None
        decoded = (rgb, size, (size[0] / rgb.width, size[1] / rgb.height))
        if self.cache_in_memory:
            self._images[index] = decoded
        return decoded

    def _pixel_geometry(self, index: int, image_height: int) -> dict[str, np.ndarray]:
        """Everything the crop does not change: landmarks and vertices in original pixels, the pose."""
        if index in self._geometry:
            return self._geometry[index]
        ann = self.annotation(index)
        vertices, mv, proj = ann["vertices"], ann["model_view"], ann["projection"]
        rotation = rotation_from_model_view(mv)
        geometry = {"landmarks": project_official(self.topology.landmarks_68(vertices), mv, proj, image_height),
                    "projected": project_official(vertices, mv, proj, image_height),
                    "model_vertices": torch.tensor(vertices, dtype=torch.float32),
                    "rotation": torch.tensor(rotation, dtype=torch.float32),
                    "euler": torch.tensor(euler_from_rotation_np(rotation), dtype=torch.float32),
                    "model_view": torch.tensor(mv, dtype=torch.float64),
                    "projection": torch.tensor(proj, dtype=torch.float64)}
        if self.cache_in_memory:
            self._geometry[index] = geometry
        return geometry

    def crop(self, index: int, width: int, height: int, jitter: bool = True) -> Crop:
        try:
            bbox = np.asarray(self.entries[index]["bbox"], dtype=np.float64).reshape(4)
        except (TypeError, ValueError):
            raise DatasetError(f"{self.split_dir / f'{self.split}.json'} item {self.entries[index]['item_id']}: "
                               f"bbox {self.entries[index]['bbox']!r} is not [x, y, w, h]") from None
        x, y, w, h = bbox
        if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise DatasetError(f"{self.split}.json item {self.entries[index]['item_id']}: bbox {bbox.tolist()} "
                               f"lies outside its {width}x{height} image")
        if self.train:
            key = [self.seed, self.epoch, index]      # a function of (seed, epoch, index): resume is bit-exact
        else:
            key = [EVAL_CROP_STREAM, zlib.crc32(str(self.entries[index]["item_id"]).encode())]
        return jittered_crop(bbox, width, height, self.image_size, np.random.default_rng(key) if jitter else None)

    def landmarks_in_crop(self, index: int) -> np.ndarray:
        """GT 68 landmarks in crop units with the mean jitter, without decoding the image (MARR eq. 4)."""
        ann = self.annotation(index)
        with self._open_image(index) as image:
            width, height = image.size
        crop = self.crop(index, width, height, jitter=False)
        pixels = project_official(self.topology.landmarks_68(ann["vertices"]), ann["model_view"], ann["projection"], height)
        return crop.to_crop_units(pixels)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        image, (width, height), reduction = self._rgb_image(index)
        crop = self.crop(index, width, height)
        item = {"image": crop_image(image, crop, reduction), "item_id": entry["item_id"],
                "bbox": torch.tensor(entry["bbox"], dtype=torch.float64), "image_height": height,
                **crop_geometry(crop)}
        if not self.has_annotations:
            return item
        geometry = self._pixel_geometry(index, height)
        landmarks = crop.to_crop_units(geometry["landmarks"])
        valid = crop.extent / crop.size
        item.update(
            landmarks_2d=torch.tensor(landmarks, dtype=torch.float32),
            presence=torch.tensor(((landmarks >= 0) & (landmarks <= valid)).all(-1)),
            projected_vertices=torch.tensor(crop.to_crop_units(geometry["projected"]), dtype=torch.float32),
            **{key: geometry[key] for key in ("model_vertices", "rotation", "euler", "model_view", "projection")})
        return item
