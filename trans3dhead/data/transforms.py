"""The official crop (facts section 2): jittered bbox, longest side to the input size, zero padding."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXTEND_RANGE = (0.05, 0.15)


@dataclass(frozen=True)
class Crop:
    """original pixel = crop pixel * scale + origin."""
    origin: np.ndarray      # (2,) x0, y0 in original pixels
    scale: float            # original pixels per crop pixel
    size: int               # crop side in pixels (the network input size)
    extent: np.ndarray      # (2,) width, height of the valid (unpadded) region, crop pixels

    def to_crop_units(self, pixels: np.ndarray) -> np.ndarray:
        return (pixels - self.origin) / self.scale / self.size

    def to_original(self, crop_units: np.ndarray) -> np.ndarray:
        return crop_units * self.size * self.scale + self.origin


def jittered_crop(bbox: np.ndarray, image_width: int, image_height: int, size: int,
                  rng: np.random.Generator | None) -> Crop:
    """Each bbox side extended by U(0.05, 0.15) of w or h (0.10 without an rng), clipped to the image."""
    x, y, w, h = (float(v) for v in bbox)
    ext = rng.uniform(*EXTEND_RANGE, 4) if rng is not None else np.full(4, sum(EXTEND_RANGE) / 2)
    x0, x1 = max(0.0, x - ext[0] * w), min(float(image_width), x + w + ext[1] * w)
    y0, y1 = max(0.0, y - ext[2] * h), min(float(image_height), y + h + ext[3] * h)
    scale = max(x1 - x0, y1 - y0) / size
    return Crop(np.array([x0, y0]), scale, size, np.array([(x1 - x0) / scale, (y1 - y0) / scale]))


def crop_image(image: Image.Image, crop: Crop, reduction: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """(3, size, size) ImageNet-normalised crop; outside the clipped box is 0 before normalisation.
    ``reduction``: original pixels per pixel of ``image`` in x and y (a JPEG decoded at reduced size)."""
    s = crop.scale
    rx, ry = reduction
    data = (s / rx, 0.0, float(crop.origin[0]) / rx, 0.0, s / ry, float(crop.origin[1]) / ry)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    warped = rgb.transform((crop.size, crop.size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    array = torch.from_numpy(np.asarray(warped, dtype=np.float32) / 255.0).permute(2, 0, 1).clone()
    w, h = (int(np.ceil(v)) for v in crop.extent)
    array[:, :, w:] = 0
    array[:, h:, :] = 0
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (array - mean) / std


def crop_geometry(crop: Crop) -> dict[str, torch.Tensor]:
    """The crop as batch entries ``crop_origin`` (2,) and ``crop_scale`` (), in float64: the mapping back
    to original pixels (``engine.batches.crop_units_to_original``) is done in double precision."""
    return {"crop_origin": torch.tensor(crop.origin, dtype=torch.float64),
            "crop_scale": torch.tensor(crop.scale, dtype=torch.float64)}
