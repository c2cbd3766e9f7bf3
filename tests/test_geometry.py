"""Geometry conventions against scipy and hand cases (facts sections 1-3)."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from trans3dhead.geometry import (euler_from_rotation, euler_from_rotation_np, matrix_to_rot6d,
                                  model_view_from_rotation, project_official, rot6d_to_matrix,
                                  rotation_from_euler, rotation_from_model_view, weak_perspective)


def _angle_diff(a, b):
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def rotations() -> np.ndarray:
    return Rotation.random(500, random_state=0).as_matrix()


def test_rot6d_identity_and_round_trip(rotations):
    eye = rot6d_to_matrix(torch.tensor([1.0, 0, 0, 0, 1, 0]))
    assert torch.allclose(eye, torch.eye(3), atol=1e-7)
    six = matrix_to_rot6d(torch.from_numpy(rotations))
    assert torch.allclose(rot6d_to_matrix(six), torch.from_numpy(rotations), atol=1e-12)
    assert isinstance(matrix_to_rot6d(rotations), np.ndarray)


def test_rot6d_follows_the_official_gram_schmidt_and_is_a_rotation():
    raw = torch.randn(64, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = rot6d_to_matrix(raw)
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(64, dtype=torch.float64))
    b1 = raw[:, :3] / raw[:, :3].norm(dim=-1, keepdim=True)
    assert torch.allclose(r[:, :, 0], b1)                     # first column = norm(a1)
    b3 = torch.cross(b1, raw[:, 3:], dim=-1)
    assert torch.allclose(r[:, :, 2], b3 / b3.norm(dim=-1, keepdim=True))


def test_rot6d_gradients_flow():
    raw = torch.randn(4, 6, requires_grad=True)
    rot6d_to_matrix(raw).sum().backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()


def test_torch_euler_matches_scipy_away_from_gimbal_lock(rotations):
    official = euler_from_rotation_np(rotations)
    keep = np.abs(official[:, 1]) < 85.0
    ours = euler_from_rotation(torch.from_numpy(rotations)).numpy()
    assert _angle_diff(ours[keep], official[keep]).max() < 1e-4
    ours32 = euler_from_rotation(torch.from_numpy(rotations).float()).numpy()
    assert _angle_diff(ours32[keep], official[keep]).max() < 1e-2


def test_euler_official_convention_hand_cases():
    # A frontal GT (MV without rotation) is diag(1,-1,-1) in image space: all angles zero.
    assert np.allclose(euler_from_rotation_np(np.diag([1.0, -1.0, -1.0])), 0.0, atol=1e-9)
    # The official recipe written out with scipy, for one pose.
    r = rotation_from_euler(np.array([20.0, -35.0, 10.0]))
    a = Rotation.from_matrix(r.T).as_euler("xyz", degrees=True)
    expected = (np.array([a[0] - 180.0, a[1], a[2]]) + 180.0) % 360.0 - 180.0
    assert np.allclose(euler_from_rotation_np(r), expected)
    assert np.allclose(expected, [20.0, -35.0, 10.0])
    assert euler_from_rotation_np(np.stack([r, r])).shape == (2, 3)


def test_euler_round_trip_and_gradient():
    euler = np.array([[10.0, 60.0, -30.0], [-45.0, -80.0, 170.0], [0.0, 0.0, 0.0]])
    r = rotation_from_euler(euler)
    assert np.allclose(euler_from_rotation_np(r), euler, atol=1e-9)
    raw = torch.randn(3, 6, requires_grad=True)
    euler_from_rotation(rot6d_to_matrix(raw)).sum().backward()
    assert torch.isfinite(raw.grad).all()


def test_rotation_from_model_view_removes_scale_and_flips_axes(rotations):
    r = rotations[:5]
    mv = model_view_from_rotation(r, np.array([0.1, -0.2, -1.5]))
    assert np.allclose(rotation_from_model_view(mv), r)
    scaled = mv.copy()
    scaled[:, :3, :3] *= 3.7
    assert np.allclose(rotation_from_model_view(scaled), r)
    # Identity MV: image space flips y and z.
    assert np.allclose(rotation_from_model_view(np.eye(4)), np.diag([1.0, -1.0, -1.0]))
    as_torch = rotation_from_model_view(torch.from_numpy(mv))
    assert isinstance(as_torch, torch.Tensor)


def test_project_official_pinhole_hand_case():
    # Camera at the origin looking along -z; P maps x/(-z) * f + c (pixels), w = -z.
    f, cx, cy, height = 500.0, 320.0, 240.0, 480
    proj = np.array([[f, 0, -cx, 0], [0, f, -cy, 0], [0, 0, 1, 0], [0, 0, -1, 0]], dtype=np.float64)
    mv = np.eye(4)
    mv[2, 3] = -2.0
    v = np.array([[0.0, 0.0, 0.0], [0.2, 0.1, 0.0]])
    px = project_official(v, mv, proj, height)
    assert np.allclose(px[0], [cx, height - cy])
    assert np.allclose(px[1], [cx + f * 0.2 / 2.0, height - (cy + f * 0.1 / 2.0)])
    batched = project_official(torch.from_numpy(np.stack([v, v])), torch.from_numpy(np.stack([mv, mv])),
                               torch.from_numpy(np.stack([proj, proj])), torch.tensor([height, height]))
    assert torch.allclose(batched[1], torch.from_numpy(px))


def test_weak_perspective_matches_the_formula():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 7, 3, generator=g)
    r = rot6d_to_matrix(torch.randn(2, 6, generator=g))
    t = torch.randn(2, 3, generator=g)
    s = torch.tensor([[0.5], [-3.0]])
    out = weak_perspective(v, r, t, s)
    expected0 = (v[0] @ r[0].T) * 1.5 + torch.stack([t[0, 0], t[0, 1], torch.tensor(0.0)])
    assert torch.allclose(out[0], expected0, atol=1e-6)
    # s + 1 <= 0 clamps to 1e-8: the head collapses onto the translation.
    assert torch.allclose(out[1, :, :2], t[1, :2].expand(7, 2), atol=1e-6)
    assert torch.allclose(out[1, :, 2], torch.zeros(7), atol=1e-6)
