"""FLAME mesh topology without torch: faces, the official 68 landmarks, vertex subsets.

The 68 landmarks follow the official order (facts section 2-3): the 17 contour points of the
dynamic embedding's frontal row (row 0), then the 51 static barycentric landmarks
(brows, nose, eyes, mouth). Used by metrics and the benchmark; the decoder uses the same
embedding in torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trans3dhead.flame import io

N_LANDMARKS = 68
N_CONTOUR = 17


@dataclass(frozen=True)
class FlameTopology:
    """The torch-free part of a FLAME folder (:func:`load_topology`): faces, the 68 landmarks as (face,
    barycentric weights) in the official order (17 contour, then 51 static), the vertex subsets and count."""
    faces: np.ndarray                 # (F, 3) int64
    landmark_faces: np.ndarray        # (68,) int64: face index of each landmark
    landmark_bary: np.ndarray         # (68, 3) barycentric weights on that face's corners
    subsets: dict[str, np.ndarray] = field(default_factory=dict)   # face / head / face_w_ears
    n_vertices: int = 0

    @property
    def landmark_vertices(self) -> np.ndarray:
        """``(68, 3)`` vertex indices of the corners each landmark interpolates."""
        return self.faces[self.landmark_faces]

    def landmarks_68(self, vertices: np.ndarray) -> np.ndarray:
        """``(..., V, 3) -> (..., 68, 3)`` barycentric interpolation of the 68 landmarks."""
        vertices = np.asarray(vertices)
        if vertices.shape[-2] != self.n_vertices:
            raise ValueError(f"expected {self.n_vertices} vertices, got array of shape {vertices.shape}")
        corners = vertices[..., self.landmark_vertices, :]          # (..., 68, 3, 3)
        return np.einsum("...lkc,lk->...lc", corners, self.landmark_bary)


def landmark_embedding(flame_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(faces (68,), bary (68,3))``: contour (dynamic row 0) first, then the 51 static ones."""
    flame_dir = Path(flame_dir)
    static_faces, static_bary = io.load_static_embedding(flame_dir / io.STATIC_EMBEDDING_FILE)
    dynamic_faces, dynamic_bary = io.load_dynamic_embedding(flame_dir / io.DYNAMIC_EMBEDDING_FILE)
    path = flame_dir / io.DYNAMIC_EMBEDDING_FILE
    if dynamic_faces.ndim != 2 or dynamic_faces.shape[1] != N_CONTOUR:
        raise io.FlameAssetError(f"{path}: lmk_face_idx must be (rows, {N_CONTOUR}), got {dynamic_faces.shape}")
    if static_faces.shape != (N_LANDMARKS - N_CONTOUR,):
        raise io.FlameAssetError(f"{flame_dir / io.STATIC_EMBEDDING_FILE}: expected "
                                 f"{N_LANDMARKS - N_CONTOUR} static landmarks, got {static_faces.shape}")
    faces = np.concatenate([dynamic_faces[0], static_faces])
    bary = np.concatenate([dynamic_bary[0], static_bary])
    return faces, bary


def load_topology(flame_dir: str | Path) -> FlameTopology:
    """Read faces, the 68-landmark embedding and the subsets of a FLAME folder (see :mod:`.io`)."""
    flame_dir = Path(flame_dir)
    io.check_flame_dir(flame_dir)
    model_path = flame_dir / io.MODEL_FILE
    model = io.load_model(model_path)
    faces = np.asarray(model["f"], dtype=np.int64)
    n_vertices = int(np.asarray(model["v_template"]).shape[0])
    landmark_faces, landmark_bary = landmark_embedding(flame_dir)
    if landmark_faces.max() >= len(faces):
        raise io.FlameAssetError(f"{flame_dir}: a landmark names face {landmark_faces.max()} but "
                                 f"{model_path} has {len(faces)} faces; the embedding belongs to another mesh")
    subsets = {}
    for name in io.SUBSET_NAMES:
        path = flame_dir / io.INDEX_DIR / f"{name}.npy"
        subset = io.load_subset(path)
        if subset.size and (subset.min() < 0 or subset.max() >= n_vertices):
            raise io.FlameAssetError(f"{path}: indices outside 0..{n_vertices - 1}; it belongs to another mesh")
        subsets[name] = subset
    return FlameTopology(faces=faces, landmark_faces=landmark_faces, landmark_bary=landmark_bary,
                         subsets=subsets, n_vertices=n_vertices)
