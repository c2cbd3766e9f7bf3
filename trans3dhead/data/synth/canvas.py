"""Large photograph-like canvases for SynthHeads: the rendered head scaled up and placed in a bigger
picture, as in DAD-3DHeads' full photographs (often megapixel JPEGs), so the loader's decode path for
such files is exercised and measured on the embedded benchmark."""
from __future__ import annotations

import numpy as np
from PIL import Image


def place_on_canvas(image: np.ndarray, projection: np.ndarray, canvas_size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(canvas, projection'): ``image`` scaled by up to ``canvas_size / 2`` of its side and placed at a
    random position of a ``canvas_size`` square with a smooth random background. The official pixels
    are ``(P @ MV @ v)[:2] / w`` with y flipped about the image height, so scaling by ``s`` and shifting
    by ``(tx, ty)`` (in OpenGL pixels, y up) is ``A @ P`` with A's rows 0, 1 scaled by ``s`` plus the
    shift times the w row."""
    size = image.shape[0]
    scale = rng.uniform(0.3, 0.5) * canvas_size / size
    side = int(round(size * scale))
    scale = side / size
    tx, ty = (float(v) for v in rng.integers(0, canvas_size - side + 1, 2))
    affine = np.eye(4)
    affine[0, 0] = affine[1, 1] = scale
    affine[0, 3], affine[1, 3] = tx, ty
    coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    canvas = np.asarray(Image.fromarray(coarse).resize((canvas_size, canvas_size), Image.Resampling.BICUBIC)).copy()
    top = canvas_size - side - int(ty)              # y down: the image's top row sits at H - (ty + side)
    head = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))
    canvas[top:top + side, int(tx):int(tx) + side] = head
    noise = rng.normal(0, 4, canvas.shape)
    return np.clip(canvas + noise, 0, 255).astype(np.uint8), affine @ projection
