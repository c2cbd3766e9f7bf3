"""Colours of a SynthHeads image: per-region albedo, Lambert shading, textured backgrounds, occluders."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trans3dhead.data.synth.head_features import REGIONS


def region_albedo(regions: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Per-vertex RGB in [0, 1]: a sampled skin tone with darker lips, brows, pupils and nostrils,
    bright eye whites, so that the landmarks sit on visible features."""
    skin = np.array([0.87, 0.68, 0.55]) * rng.uniform(0.35, 1.1) + rng.normal(0, 0.03, 3)
    hair = rng.uniform(0.05, 0.45) * np.array([1.0, 0.8, 0.6])
    colours = {
        "skin": skin, "ear": skin * 0.95, "neck": skin * 0.9,
        "lips": skin * np.array([0.75, 0.45, 0.45]), "brows": hair * 0.6, "scalp": hair,
        "eye_white": np.array([0.92, 0.92, 0.9]), "iris": rng.uniform(0.05, 0.3) * np.array([1.0, 0.8, 0.6]),
        "nostril": skin * 0.3, "mouth": np.array([0.25, 0.06, 0.06]),
    }
    table = np.zeros((max(REGIONS.values()) + 1, 3))
    for name, idx in REGIONS.items():
        table[idx] = colours[name]
    return torch.as_tensor(np.clip(table[regions], 0, 1), dtype=torch.float32)


def shade(albedo: torch.Tensor, normals: torch.Tensor, light_dir: np.ndarray, ambient: float) -> torch.Tensor:
    """Lambertian shading of per-pixel albedo (H, W, 3) with unit normals (H, W, 3) in camera space."""
    light = torch.as_tensor(light_dir / np.linalg.norm(light_dir), dtype=torch.float32)
    diffuse = (normals @ light).clamp(min=0)[..., None]
    return albedo * (ambient + (1 - ambient) * diffuse)


def textured_background(size: int, rng: np.random.Generator) -> torch.Tensor:
    """(size, size, 3): smooth colour noise at a few scales plus stripes, so the background is not flat."""
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    image = torch.zeros(3, size, size)
    for cells, weight in ((3, 0.6), (9, 0.3), (27, 0.15)):
        noise = torch.rand(1, 3, cells, cells, generator=gen)
        image += weight * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0]
    freq, angle = rng.uniform(2, 12), rng.uniform(0, np.pi)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    stripes = torch.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    image += rng.uniform(0, 0.15) * stripes
    image = image / image.amax().clamp(min=1e-6) * rng.uniform(0.4, 1.0)
    return image.clamp(0, 1).permute(1, 2, 0)


def draw_occluder(image: torch.Tensor, centre: np.ndarray, radii: np.ndarray, angle: float,
                  rng: np.random.Generator) -> torch.Tensor:
    """Paints a textured ellipse over ``image`` (H, W, 3); returns its mask (H, W)."""
    h, w, _ = image.shape
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    dx, dy = xx - centre[0], yy - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = (dx * c + dy * s) / radii[0], (-dx * s + dy * c) / radii[1]
    mask = u**2 + v**2 <= 1
    colour = torch.as_tensor(rng.uniform(0.1, 0.9, 3), dtype=torch.float32)
    texture = 0.85 + 0.15 * torch.sin(u * rng.uniform(3, 10))[..., None]
    image[mask] = (colour * texture)[mask].clamp(0, 1)
    return mask
