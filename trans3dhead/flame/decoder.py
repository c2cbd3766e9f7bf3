"""The differentiable FLAME layer of DAD-3DNet / Trans3DHead, on smplx (facts section 3).

``params (B, N)`` is split by :class:`ParamLayout` into shape | expression | jaw | rot6d |
translation | scale. Decoding:

1. ``model_vertices``: smplx LBS with the full pose ``[global 0, neck 0, jaw, eyes 0]``
   (axis-angle; layouts without jaw use a zero jaw). Model space, metres.
2. ``z += 0.05`` (as the official layer does after LBS), then the weak-perspective camera
   ``v' = R v * max(s + 1, 1e-8) + [tx, ty, 0]`` gives ``posed_vertices`` in image space,
   crop-normalised (xy in [-1, 1] spans the crop) and ``projected_vertices = (xy + 1) / 2``
   in crop units.
3. The 68 landmarks (official order, :mod:`.topology`) of both the model and the posed mesh.

In training, :meth:`FlameDecoder.decode_only` limits decoding to the vertices the loss reads (plus the landmarks'
triangle corners): a step decodes about a third of the mesh. The other vertices read NaN, so a term that reads one
stops the run at once instead of training on a wrong value. Evaluation always decodes the whole mesh.

The FLAME model is fixed: everything is a non-persistent buffer, so the layer adds no
trainable parameters and checkpoints do not carry the (licensed) model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import smplx
import torch
from smplx.lbs import lbs, vertices2landmarks
from torch import nn

from trans3dhead.flame import io
from trans3dhead.flame.params import ParamLayout
from trans3dhead.flame.topology import landmark_embedding
from trans3dhead.geometry import rot6d_to_matrix, weak_perspective

Z_OFFSET = 0.05          # metres added to z after LBS (official FLAME layer)
# the model tensors smplx's lbs reads, kept whole and (``decode_only``) for the decoded vertices
_COMPACT = ("v_template", "blend_dirs", "posedirs", "J_regressor", "lbs_weights")
N_JOINTS = 5             # root (global), neck, jaw, left eye, right eye
_JAW = 2


def load_smplx_flame(flame_dir: str | Path, n_shape: int, n_expression: int) -> smplx.FLAME:
    """smplx's FLAME for a checked folder, without its per-batch pose/shape parameters."""
    flame_dir = Path(flame_dir)
    io.check_flame_dir(flame_dir)
    # smplx unpickles with the standard unpickler: read once through ours so that the licensed
    # chumpy pickle fails with the converter hint instead of "No module named 'chumpy'".
    io.load_model(flame_dir / io.MODEL_FILE)
    return smplx.FLAME(
        model_path=str(flame_dir), num_betas=n_shape, num_expression_coeffs=n_expression,
        use_face_contour=True, batch_size=1,
        create_betas=False, create_expression=False, create_global_orient=False, create_neck_pose=False,
        create_jaw_pose=False, create_leye_pose=False, create_reye_pose=False, create_body_pose=False,
        create_transl=False)


class FlameDecoder(nn.Module):
    """FLAME parameters -> vertices, rotation and landmarks (keys in docs/architecture.md)."""

    def __init__(self, flame_dir: str | Path, layout: ParamLayout | int = 413):
        super().__init__()
        self.layout = layout if isinstance(layout, ParamLayout) else ParamLayout.for_count(layout)
        flame = load_smplx_flame(flame_dir, self.layout.n_shape, self.layout.n_expression)
        n_shape_file = flame.shapedirs.shape[-1]
        n_expr_file = flame.expr_dirs.shape[-1]
        if n_shape_file < self.layout.n_shape or n_expr_file < self.layout.n_expression:
            raise io.FlameAssetError(
                f"{Path(flame_dir) / io.MODEL_FILE} has {n_shape_file} shape and {n_expr_file} expression "
                f"components; the {self.layout.total}-parameter layout needs {self.layout.n_shape} and "
                f"{self.layout.n_expression}")
        landmark_faces, landmark_bary = landmark_embedding(flame_dir)
        buffers = {
            "v_template": flame.v_template,
            "blend_dirs": torch.cat([flame.shapedirs, flame.expr_dirs], dim=-1),   # (V, 3, S+E)
            "posedirs": flame.posedirs,
            "J_regressor": flame.J_regressor,
            "parents": flame.parents,
            "lbs_weights": flame.lbs_weights,
            "faces": flame.faces_tensor,
            "landmark_faces": torch.as_tensor(landmark_faces, dtype=torch.long),
            "landmark_bary": torch.as_tensor(landmark_bary, dtype=torch.float32),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.detach().clone(), persistent=False)
        self.decode_only(None)

    def decode_only(self, vertex_ids: Sequence[int] | torch.Tensor | None) -> None:
        """In training mode, decode only ``vertex_ids`` and the landmarks' triangle corners; the other vertices of
        ``model_vertices``, ``posed_vertices`` and ``projected_vertices`` read NaN. None decodes the whole mesh.

        The joints regress from the whole shaped mesh (J = J_regressor v_shaped), so they enter smplx's ``lbs`` as
        extra rows with the regressed template and blend shapes, J_regressor v_template and J_regressor S: the same
        joints, the same LBS, on a third of the vertices.
        """
        if vertex_ids is None:        # buffers (not checkpointed) so that .to(device) carries them
            for name in ("decoded", *_COMPACT):
                self.register_buffer(name if name == "decoded" else f"compact_{name}", None, persistent=False)
            return
        corners = self.faces[self.landmark_faces].flatten()
        ids = torch.unique(torch.cat([torch.as_tensor(vertex_ids, dtype=torch.long).flatten().cpu(), corners.cpu()]))
        if ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < self.n_vertices:
            raise ValueError(f"vertex ids outside the mesh's {self.n_vertices} vertices")
        device = self.v_template.device
        ids = ids.to(device)
        n_joints, n_ids = self.J_regressor.shape[0], ids.numel()
        posedirs = self.posedirs.reshape(self.posedirs.shape[0], self.n_vertices, 3)
        regressor = torch.zeros(n_joints, n_ids + n_joints, device=device)
        regressor[:, n_ids:] = torch.eye(n_joints, device=device)
        compact = {
            "v_template": torch.cat([self.v_template[ids], self.J_regressor @ self.v_template]),
            "blend_dirs": torch.cat([self.blend_dirs[ids], torch.einsum("jv,vkl->jkl", self.J_regressor, self.blend_dirs)]),
            "posedirs": torch.cat([posedirs[:, ids], posedirs.new_zeros(posedirs.shape[0], n_joints, 3)], 1).flatten(1),
            "J_regressor": regressor,
            "lbs_weights": torch.cat([self.lbs_weights[ids], torch.eye(n_joints, device=device)]),
        }
        self.register_buffer("decoded", ids, persistent=False)
        for name in _COMPACT:
            self.register_buffer(f"compact_{name}", compact[name], persistent=False)

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def _compute_dtype(self, reference: torch.Tensor) -> torch.dtype:
        # FLAME in float32 even under autocast (bf16 vertices are off by ~1 mm); float64 if asked.
        return torch.float64 if reference.dtype == torch.float64 else torch.float32

    def model_vertices_from(self, shape: torch.Tensor, expression: torch.Tensor,
                            jaw: torch.Tensor | None = None, compact: bool = False) -> torch.Tensor:
        """LBS of ``shape (B,S)``, ``expression (B,E)``, optional ``jaw (B,3)`` axis-angle -> ``(B,V,3)``, or with
        ``compact`` the ``decode_only`` vertices ``(B, len(self.decoded), 3)`` in their order.

        Zero global, neck and eye rotations; model space (no z offset, no camera).
        """
        dtype = self._compute_dtype(shape)
        batch = shape.shape[0]
        if jaw is None or jaw.shape[-1] == 0:
            jaw = shape.new_zeros(batch, 3)
        zeros = shape.new_zeros(batch, 3)
        pose = torch.cat([zeros, zeros, jaw, zeros, zeros], dim=-1).to(dtype)
        coefficients = torch.cat([shape, expression], dim=-1).to(dtype)
        if coefficients.shape[-1] != self.blend_dirs.shape[-1]:
            raise ValueError(f"expected {self.layout.n_shape} shape + {self.layout.n_expression} expression "
                             f"values, got {shape.shape[-1]} + {expression.shape[-1]}")
        model = {name: getattr(self, f"compact_{name}" if compact else name) for name in _COMPACT}
        with torch.autocast(device_type=shape.device.type, enabled=False):
            vertices, _ = lbs(coefficients, pose, model["v_template"].to(dtype), model["blend_dirs"].to(dtype),
                              model["posedirs"].to(dtype), model["J_regressor"].to(dtype), self.parents,
                              model["lbs_weights"].to(dtype), pose2rot=True)
        return vertices[:, :self.decoded.numel()] if compact else vertices

    def _spread(self, compact: torch.Tensor) -> torch.Tensor:
        """``(B, n, C)`` values of the decoded vertices -> ``(B, V, C)``, NaN where a vertex was not decoded."""
        full = compact.new_full((compact.shape[0], self.n_vertices, compact.shape[-1]), float("nan"))
        return full.index_copy(1, self.decoded, compact)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The official 68 landmarks ``(B, 68, 3)`` of ``(B, V, 3)`` vertices (any frame)."""
        batch = vertices.shape[0]
        faces_idx = self.landmark_faces.unsqueeze(0).expand(batch, -1).contiguous()
        bary = self.landmark_bary.to(vertices.dtype).unsqueeze(0).expand(batch, -1, -1)
        return vertices2landmarks(vertices, self.faces, faces_idx, bary)

    def forward(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """``params (B, N)`` -> ``params, model_vertices, posed_vertices, projected_vertices,
        rotation, landmarks_3d, model_landmarks`` (shapes in docs/architecture.md)."""
        parts = self.layout.split(params)
        dtype = self._compute_dtype(params)
        compact = self.training and self.decoded is not None
        model_vertices = self.model_vertices_from(parts["shape"], parts["expression"], parts["jaw"], compact)
        with torch.autocast(device_type=params.device.type, enabled=False):
            rotation = rot6d_to_matrix(parts["rot6d"].to(dtype))
            shifted = model_vertices + model_vertices.new_tensor([0.0, 0.0, Z_OFFSET])
            posed = weak_perspective(shifted, rotation, parts["translation"].to(dtype), parts["scale"].to(dtype))
            projected = (posed[..., :2] + 1.0) / 2.0
            if compact:
                model_vertices, posed, projected = map(self._spread, (model_vertices, posed, projected))
            return {
                "params": params,
                "model_vertices": model_vertices,
                "posed_vertices": posed,
                "projected_vertices": projected,
                "rotation": rotation,
                "landmarks_3d": self.landmarks(posed),
                "model_landmarks": self.landmarks(model_vertices),
            }
