"""Fixed 2D sine positional encoding of the memory grid (as in DETR, normalised coordinates)."""
from __future__ import annotations

import math

import torch


def sine_position_encoding(height: int, width: int, d_model: int, device: torch.device | None = None,
                           temperature: float = 10000.0) -> torch.Tensor:
    """(height*width, d_model): half the channels encode y, half x, as interleaved sin/cos."""
    if d_model % 4:
        raise ValueError(f"d_model={d_model} must be divisible by 4 for a 2D sine encoding")
    n_freq = d_model // 4
    scale = 2 * math.pi
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * scale
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * scale
    freqs = temperature ** (torch.arange(n_freq, device=device, dtype=torch.float32) / n_freq)

    def encode(coord: torch.Tensor) -> torch.Tensor:
        angles = coord[:, None] / freqs[None, :]
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)     # (n, 2*n_freq)

    enc_y = encode(ys)[:, None, :].expand(height, width, -1)
    enc_x = encode(xs)[None, :, :].expand(height, width, -1)
    return torch.cat([enc_y, enc_x], dim=-1).reshape(height * width, d_model)
