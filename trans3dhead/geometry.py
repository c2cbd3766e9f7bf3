"""Rotations, Euler angles and projections in the project's frames (docs/architecture.md).

All torch functions are batched over leading axes, differentiable, and run on CPU or CUDA.
Functions marked "numpy or torch" return the type they are given (numpy inputs are computed
in float64 through torch and handed back as numpy), so data generation and the benchmark can
call them on plain arrays.

Conventions (facts sections 1-3):
* 6D rotation: b1 = norm(a1); b3 = norm(b1 x a2); b2 = -(b1 x b3); R = [b1 b2 b3] as columns.
* image-space rotation of a ground truth: ``R = (diag(1,-1,-1,1) @ MV)[:3, :3]``.
* Euler angles (official ``calculate_rpy``): ``a = Rotation.from_matrix(R.T).as_euler('xyz',
  degrees=True)``; roll = a[2], pitch = a[0] - 180, yaw = a[1], each wrapped to +-180;
  returned as ``(pitch, yaw, roll)``.
* original pixels: ``(P @ MV @ [v, 1])[:2] / w``, then ``y = H - y``.
* weak perspective into the crop: ``v' = R v * max(s + 1, 1e-8) + [tx, ty, 0]``.
* AFLW2000-3D ``Pose_Para[:3]`` (3DDFA convention, radians): ``R_aflw = Rx(pitch) Ry(yaw) Rz(roll)``
  acting on column vectors in 3DDFA's camera frame (x right, y up, z towards the viewer, i.e. the OpenGL
  camera frame), so ``R_image = diag(1, -1, -1) @ R_aflw``; see :func:`rotation_from_aflw_pose`.
"""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

import numpy as np
import torch
from scipy.spatial.transform import Rotation

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)

# OpenGL camera (looks along -z, y up) -> image space (y down, z away from the camera).
_GL_TO_IMAGE = (1.0, -1.0, -1.0)
_EPS = 1e-8


def _numpy_or_torch(fn: Callable) -> Callable:
    """Let a torch implementation accept numpy arrays: compute in float64, return numpy."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values())):
            return fn(*args, **kwargs)
        conv = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64)) if isinstance(a, np.ndarray) else a
        out = fn(*(conv(a) for a in args), **{k: conv(v) for k, v in kwargs.items()})
        return out.numpy() if isinstance(out, torch.Tensor) else out

    return wrapper


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """``(..., 6) -> (..., 3, 3)`` exactly as DAD-3DNet (facts section 3).

    ``b1 = norm(a1); b3 = norm(b1 x a2); b2 = -(b1 x b3)``; columns ``[b1 b2 b3]``.
    ``[1, 0, 0, 0, 1, 0]`` gives the identity.
    """
    a1, a2 = rot6d[..., 0:3], rot6d[..., 3:6]
    b1 = _normalize(a1)
    b3 = _normalize(torch.cross(b1, a2, dim=-1))
    b2 = -torch.cross(b1, b3, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


@_numpy_or_torch
def matrix_to_rot6d(rotation: ArrayLike) -> ArrayLike:
    """Inverse of :func:`rot6d_to_matrix` for a rotation: ``(..., 3, 3) -> (..., 6)``.

    ``a1 = b1`` (first column) and ``a2 = b2`` (second column) reproduce the matrix exactly,
    since ``b1 x b2 = b3`` for a proper rotation. Numpy or torch.
    """
    return torch.cat([rotation[..., :, 0], rotation[..., :, 1]], dim=-1)


def _gl_to_image(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.diag(torch.tensor(_GL_TO_IMAGE, dtype=dtype, device=device))


@_numpy_or_torch
def rotation_from_model_view(model_view: ArrayLike) -> ArrayLike:
    """Image-space rotation of a GT model-view matrix: ``(diag(1,-1,-1,1) @ MV)[:3, :3]``.

    ``(..., 4, 4) -> (..., 3, 3)``; if MV carries a (uniform or not) scale, the nearest rotation
    (polar decomposition) is returned so the pose error stays a rotation distance (facts 1, 7).
    Numpy or torch.
    """
    linear = _gl_to_image(model_view.dtype, model_view.device) @ model_view[..., :3, :3]
    u, _, vh = torch.linalg.svd(linear)
    # Keep det = +1 even for a degenerate (reflecting) input.
    det = torch.linalg.det(u @ vh)
    fix = torch.ones_like(linear[..., 0, :])
    fix[..., 2] = torch.sign(det)
    return (u * fix.unsqueeze(-2)) @ vh


@_numpy_or_torch
def model_view_from_rotation(rotation: ArrayLike, translation: ArrayLike) -> ArrayLike:
    """A model-view matrix whose :func:`rotation_from_model_view` is ``rotation``.

    ``rotation (..., 3, 3)`` in image space, ``translation (..., 3)`` in OpenGL camera space
    (the head in front of the camera has negative z). Numpy or torch; for data generation.
    """
    gl = _gl_to_image(rotation.dtype, rotation.device)  # its own inverse
    mv = torch.zeros(*rotation.shape[:-2], 4, 4, dtype=rotation.dtype, device=rotation.device)
    mv[..., :3, :3] = gl @ rotation
    mv[..., :3, 3] = translation
    mv[..., 3, 3] = 1.0
    return mv


def _wrap_degrees(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + 180.0, 360.0) - 180.0


def euler_from_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """Differentiable ``(..., 3, 3) -> (..., 3)`` Euler angles (pitch, yaw, roll) in degrees.

    Closed form of scipy's extrinsic 'xyz' decomposition of ``M = R^T`` (``M = Rz(c) Ry(b) Rx(a)``):
    ``a = atan2(M21, M22)``, ``b = atan2(-M20, hypot(M00, M10))``, ``c = atan2(M10, M00)``; then the
    official mapping pitch = a - 180, yaw = b, roll = c, wrapped to +-180 (facts section 4,
    ``calculate_rpy``). Matches :func:`euler_from_rotation_np` away from gimbal lock (|yaw| = 90).
    """
    m = rotation.transpose(-1, -2)
    a = torch.atan2(m[..., 2, 1], m[..., 2, 2])
    cos_b = torch.sqrt((m[..., 0, 0] ** 2 + m[..., 1, 0] ** 2).clamp_min(1e-12))
    b = torch.atan2(-m[..., 2, 0], cos_b)
    c = torch.atan2(m[..., 1, 0], m[..., 0, 0])
    pitch, yaw, roll = (torch.rad2deg(x) for x in (a, b, c))
    return torch.stack([_wrap_degrees(pitch - 180.0), _wrap_degrees(yaw), _wrap_degrees(roll)], dim=-1)


def euler_from_rotation_np(rotation: np.ndarray) -> np.ndarray:
    """The official Euler angles with scipy: ``(..., 3, 3) -> (..., 3)`` (pitch, yaw, roll), degrees."""
    rotation = np.asarray(rotation, dtype=np.float64)
    flat = rotation.reshape(-1, 3, 3)
    angles = Rotation.from_matrix(np.swapaxes(flat, -1, -2)).as_euler("xyz", degrees=True)
    pitch, yaw, roll = angles[:, 0] - 180.0, angles[:, 1], angles[:, 2]
    wrapped = (np.stack([pitch, yaw, roll], axis=-1) + 180.0) % 360.0 - 180.0
    return wrapped.reshape(*rotation.shape[:-2], 3)


def rotation_from_euler(euler: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_from_rotation_np`: ``(..., 3)`` (pitch, yaw, roll) degrees -> ``(..., 3, 3)``.

    ``R^T = Rz(roll) Ry(yaw) Rx(pitch + 180)``; a frontal head (0, 0, 0) gives ``diag(1, -1, -1)``
    in image space. For data generation.
    """
    euler = np.asarray(euler, dtype=np.float64)
    flat = euler.reshape(-1, 3)
    xyz = np.stack([flat[:, 0] + 180.0, flat[:, 1], flat[:, 2]], axis=-1)
    transposed = Rotation.from_euler("xyz", xyz, degrees=True).as_matrix()
    return np.swapaxes(transposed, -1, -2).reshape(*euler.shape[:-1], 3, 3)


@_numpy_or_torch
def project_official(vertices: ArrayLike, model_view: ArrayLike, projection: ArrayLike,
                     image_height: float | ArrayLike) -> ArrayLike:
    """Model-space vertices ``(..., V, 3)`` -> original-image pixels ``(..., V, 2)`` (facts section 2).

    ``clip = P @ MV @ [v, 1]``; ``(x, y) = clip[:2] / w``; ``y = H - y``. ``model_view`` and
    ``projection`` are ``(..., 4, 4)``; ``image_height`` a number or ``(...)``. Numpy or torch.
    """
    ones = torch.ones_like(vertices[..., :1])
    homogeneous = torch.cat([vertices, ones], dim=-1)
    clip = homogeneous @ (projection @ model_view).transpose(-1, -2)
    xy = clip[..., :2] / clip[..., 3:4]
    height = torch.as_tensor(image_height, dtype=xy.dtype, device=xy.device)
    if height.ndim:
        height = height[..., None]
    return torch.stack([xy[..., 0], height - xy[..., 1]], dim=-1)


def weak_perspective(vertices: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """DAD-3DNet's camera: ``v' = R v * max(s + 1, 1e-8) + [tx, ty, 0]`` (facts section 3).

    ``vertices (B, V, 3)``, ``rotation (B, 3, 3)``, ``translation (B, 3)`` (only x, y are used, as
    in the official code), ``scale (B, 1)`` or ``(B,)``. The result is crop-normalised: xy in
    [-1, 1] spans the crop, ``pixel = (v' + 1) / 2 * size``.
    """
    factor = torch.clamp(scale.reshape(scale.shape[0], 1, 1) + 1.0, min=1e-8)
    rotated = vertices @ rotation.transpose(-1, -2)
    shift = torch.cat([translation[..., :2], torch.zeros_like(translation[..., :1])], dim=-1)
    return rotated * factor + shift[:, None, :]


# --------------------------------------------------------------------------------------------------
# AFLW2000-3D / 300W-LP pose (the 3DDFA convention)
#
# Source (convention re-derived, no code copied): YadiraF/face3d, face3d/mesh/transform.py,
# ``angle2matrix_3ddfa`` ("the same as in 3DDFA"): angles (x = pitch, y = yaw, z = roll) in radians,
#   Rx = [[1, 0, 0], [0, cos x, sin x], [0, -sin x, cos x]]
#   Ry = [[cos y, 0, -sin y], [0, 1, 0], [sin y, 0, cos y]]
#   Rz = [[cos z, sin z, 0], [-sin z, cos z, 0], [0, 0, 1]]
#   R  = Rx @ Ry @ Rz        (each factor is the transpose of the right-handed elementary rotation)
# applied as ``v' = s * R @ v + t3d`` (face3d ``similarity_transform``; ``transform_3ddfa``), with the
# image row then ``h - y'`` (face3d examples/8_generate_posmap_300WLP.py reads ``Pose_Para`` this way:
# angles = Pose_Para[:3], t3d = Pose_Para[3:6], s = Pose_Para[6]). So 3DDFA's frame has x right, y up
# and z towards the viewer (the OpenGL camera frame of ``MV``), and the model frame (BFM, like FLAME)
# has y up and the face towards +z: ``R_aflw`` plays the role of ``MV[:3, :3]`` and
# ``R_image = diag(1, -1, -1) @ R_aflw``.
# Sign consequences (tested): positive yaw turns the nose towards image -x (the subject's right),
# positive pitch raises the nose (towards image -y, looking up), positive roll tips the crown towards
# image +x.
# Protocol (Hopenet / FSA-Net / 6DRepNet, e.g. shamangary/FSA-Net data/type1/TYY_create_db_type1.py,
# thohemp/6DRepNet sixdrepnet/test.py): GT degrees = Pose_Para[:3] * 180 / pi, compared angle by angle
# with the prediction's (pitch, yaw, roll); samples with any |angle| > 99 degrees are dropped (1969 of
# 2000 remain). These angles coincide with the DAD-3DHeads ``calculate_rpy`` angles of ``R_image``
# (:func:`euler_from_rotation_np`) wherever |yaw| < 90 degrees; both decompositions return
# |yaw| <= 90, the other branch of a rotation is not recovered.
# --------------------------------------------------------------------------------------------------

AFLW_TO_IMAGE = np.diag([1.0, -1.0, -1.0])      # R_image = AFLW_TO_IMAGE @ R_aflw (its own inverse)


def rotation_from_aflw_pose(pitch, yaw, roll) -> np.ndarray:
    """AFLW2000-3D ``Pose_Para[:3]`` (radians) -> ``R_aflw = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` (3DDFA).

    Scalars or broadcastable arrays; returns ``(..., 3, 3)`` float64. Frame and citation: the block
    comment above (face3d ``angle2matrix_3ddfa``). ``R_image = AFLW_TO_IMAGE @ R_aflw``.
    """
    p, y, r = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (pitch, yaw, roll)))
    zero, one = np.zeros_like(p), np.ones_like(p)

    def matrix(rows):
        return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)

    rx = matrix([[one, zero, zero], [zero, np.cos(p), np.sin(p)], [zero, -np.sin(p), np.cos(p)]])
    ry = matrix([[np.cos(y), zero, -np.sin(y)], [zero, one, zero], [np.sin(y), zero, np.cos(y)]])
    rz = matrix([[np.cos(r), np.sin(r), zero], [-np.sin(r), np.cos(r), zero], [zero, zero, one]])
    return rx @ ry @ rz


def aflw_pose_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_from_aflw_pose`: ``(..., 3, 3)`` -> ``(..., 3)`` (pitch, yaw, roll), radians.

    From ``R = Rx(p) Ry(y) Rz(r)``: ``R[0] = [cos y cos r, cos y sin r, -sin y]`` and
    ``R[:, 2] = [-sin y, sin p cos y, cos p cos y]``, so ``yaw = atan2(-R02, hypot(R00, R01))`` in
    [-pi/2, pi/2], ``pitch = atan2(R12, R22)``, ``roll = atan2(R01, R00)``. At gimbal lock
    (|yaw| = pi/2) only ``pitch -/+ roll`` is defined: roll is set to 0 and
    ``pitch = atan2(sin(yaw) * R10, R11)``.
    """
    m = np.asarray(rotation, dtype=np.float64)
    cos_yaw = np.hypot(m[..., 0, 0], m[..., 0, 1])
    yaw = np.arctan2(-m[..., 0, 2], cos_yaw)
    locked = cos_yaw < 1e-9
    pitch = np.where(locked, np.arctan2(np.sign(-m[..., 0, 2]) * m[..., 1, 0], m[..., 1, 1]),
                     np.arctan2(m[..., 1, 2], m[..., 2, 2]))
    roll = np.where(locked, 0.0, np.arctan2(m[..., 0, 1], m[..., 0, 0]))
    return np.stack([pitch, yaw, roll], axis=-1)


def image_rotation_from_aflw_pose(pose: np.ndarray) -> np.ndarray:
    """``(..., >=3)`` Pose_Para (radians; only the first three values are read) -> ``R_image (..., 3, 3)``."""
    pose = np.asarray(pose, dtype=np.float64)
    return AFLW_TO_IMAGE @ rotation_from_aflw_pose(pose[..., 0], pose[..., 1], pose[..., 2])


def aflw_euler_from_image_rotation(rotation_image: np.ndarray) -> np.ndarray:
    """The angles the AFLW2000-3D protocol compares, from an image-space rotation (a prediction):
    ``(..., 3, 3)`` -> ``(..., 3)`` (pitch, yaw, roll) in degrees, i.e. ``Pose_Para[:3] * 180 / pi`` of
    the same head. ``R_aflw = AFLW_TO_IMAGE @ R_image``, then :func:`aflw_pose_from_rotation`."""
    rotation_aflw = AFLW_TO_IMAGE @ np.asarray(rotation_image, dtype=np.float64)
    return np.rad2deg(aflw_pose_from_rotation(rotation_aflw))
