"""A vectorised z-buffered triangle rasteriser in torch (no per-pixel or per-triangle Python loops).

Each triangle tests the pixels of a small window at its bounding box's corner (triangles are
bucketed by size); candidates inside the triangle compete in a z-buffer
through ``scatter_reduce(amin)`` on packed (quantised depth, triangle id) keys. Pixel (i, j) has its
centre at (i + 0.5, j + 0.5) in the same continuous pixel coordinates as the official projection.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

_DEPTH_BITS = 40


@dataclass
class Fragments:
    """The rasteriser's output per pixel: the visible triangle (``face_id``, -1 where none) and its
    barycentric weights; ``mask`` is True where a triangle covers the pixel."""
    face_id: torch.Tensor       # (H, W) long, -1 where no triangle covers the pixel
    bary: torch.Tensor          # (H, W, 3) barycentric weights of the visible triangle

    @property
    def mask(self) -> torch.Tensor:
        return self.face_id >= 0


_WINDOW_BUCKETS = (2, 4, 8, 16, 32, 64)


def _edge(p0: torch.Tensor, p1: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p1[..., 0] - p0[..., 0]) * (q[..., 1] - p0[..., 1]) - (p1[..., 1] - p0[..., 1]) * (q[..., 0] - p0[..., 0])


def _candidates(tri: torch.Tensor, tri_depth: torch.Tensor, lo: torch.Tensor, window: int, width: int,
                height: int) -> tuple[torch.Tensor, ...]:
    """(triangle, pixel) pairs inside the triangle: local triangle index, pixel index, depth, barycentrics."""
    offsets = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="xy"), -1).reshape(-1, 2)
    px = lo[:, None, :] + offsets[None].to(lo)                            # (F, K, 2) pixel indices
    centre = px + 0.5
    a, b, c = tri[:, 0:1], tri[:, 1:2], tri[:, 2:3]
    area = _edge(a, b, c)
    safe_area = torch.where(area.abs() < 1e-9, torch.full_like(area, 1e-9), area)
    w0, w1, w2 = _edge(b, c, centre) / safe_area, _edge(c, a, centre) / safe_area, _edge(a, b, centre) / safe_area
    inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6) & (area.abs() > 1e-9)
    inside &= (px[..., 0] >= 0) & (px[..., 0] < width) & (px[..., 1] >= 0) & (px[..., 1] < height)
    tri_i, k = torch.nonzero(inside, as_tuple=True)
    w = torch.stack([w0[tri_i, k], w1[tri_i, k], w2[tri_i, k]], -1)
    z = (w * tri_depth[tri_i]).sum(-1)
    pixel_index = (px[tri_i, k, 1] * width + px[tri_i, k, 0]).long()
    return tri_i, pixel_index, z, w


def rasterize(pixels: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Fragments:
    """``pixels`` (V, 2) image coordinates (x right, y down), ``depth`` (V,) positive away from the
    camera, ``faces`` (F, 3) -> the nearest triangle and its barycentrics at every pixel.

    Triangles are bucketed by bounding-box size so that each tests a window barely larger than
    itself (a loop over at most six buckets, never over triangles); larger ones are clipped at 64 px.
    """
    tri = pixels[faces]                                   # (F, 3, 2)
    tri_depth = depth[faces]                              # (F, 3)
    lo = torch.floor(tri.min(dim=1).values - 0.5)
    hi = torch.ceil(tri.max(dim=1).values - 0.5)
    extent = (hi - lo).max(dim=1).values + 1
    visible = (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < width) & (lo[:, 1] < height) & (tri_depth.min(1).values > 0)
    parts = []
    lower = 0
    for window in _WINDOW_BUCKETS:
        in_bucket = visible & (extent > lower) & ((extent <= window) | (window == _WINDOW_BUCKETS[-1]))
        lower = window
        face_idx = torch.nonzero(in_bucket).squeeze(1)
        if len(face_idx):
            tri_i, pixel_index, z, w = _candidates(tri[face_idx], tri_depth[face_idx], lo[face_idx], window, width, height)
            parts.append((face_idx[tri_i], pixel_index, z, w))
    face_id = torch.full((height * width,), -1, dtype=torch.long)
    bary = torch.zeros(height * width, 3)
    if not parts:
        return Fragments(face_id.reshape(height, width), bary.reshape(height, width, 3))
    cand_face, pixel_index, z, w = (torch.cat(t) for t in zip(*parts))
    quantised = (z / (float(z.max()) * 1.0001) * (2**_DEPTH_BITS - 1)).long()
    key = quantised * (len(faces) + 1) + cand_face       # nearest first, then the lower face id
    zbuf = torch.full((height * width,), torch.iinfo(torch.long).max, dtype=torch.long)
    zbuf = zbuf.scatter_reduce(0, pixel_index, key, "amin")
    winners = key == zbuf[pixel_index]
    face_id[pixel_index[winners]] = cand_face[winners]
    bary[pixel_index[winners]] = w[winners].float()
    return Fragments(face_id.reshape(height, width), bary.reshape(height, width, 3))


def interpolate(fragments: Fragments, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``attributes`` (V, C) -> per-pixel (H, W, C), zero where the mask is empty."""
    face_id = fragments.face_id.clamp(min=0)
    corner = attributes[faces[face_id]]                                    # (H, W, 3, C)
    values = (corner * fragments.bary[..., None]).sum(-2)
    return values * fragments.mask[..., None]


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals of a mesh (V, 3)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, 0))
    return normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-12)
