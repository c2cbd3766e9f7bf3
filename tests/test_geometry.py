"""Geometry conventions against scipy and hand cases (facts sections 1-3)."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from trans3dhead.geometry import (AFLW_TO_IMAGE, aflw_euler_from_image_rotation, aflw_pose_from_rotation,
                                  euler_from_rotation, euler_from_rotation_np, image_rotation_from_aflw_pose,
                                  matrix_to_rot6d, model_view_from_rotation, project_official, rot6d_to_matrix,
                                  rotation_from_aflw_pose, rotation_from_euler, rotation_from_model_view,
                                  weak_perspective)


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


# ---- AFLW2000-3D Pose_Para (3DDFA convention: face3d angle2matrix_3ddfa, cited in geometry.py) ----

def test_aflw_pose_hand_computed_case():
    """Pose_Para pitch = 0.3, yaw = -0.5, roll = 0.2 rad through R = Rx(p) Ry(y) Rz(r) with 3DDFA's factors
    Rx = [[1,0,0],[0,cp,sp],[0,-sp,cp]], Ry = [[cy,0,-sy],[0,1,0],[sy,0,cy]], Rz = [[cr,sr,0],[-sr,cr,0],[0,0,1]],
    multiplied out by hand (cp .955336, sp .295520, cy .877583, sy -.479426, cr .980067, sr .198669):
      row 0 = [cy cr, cy sr, -sy]
      row 1 = [sp sy cr - cp sr, sp sy sr + cp cr, sp cy]
      row 2 = [cp sy cr + sp sr, cp sy sr - sp cr, cp cy]"""
    expected = np.array([[0.860089, 0.174349, 0.479426],
                         [-0.328652, 0.908146, 0.259343],
                         [-0.390172, -0.380623, 0.838387]])
    r = rotation_from_aflw_pose(0.3, -0.5, 0.2)
    assert np.allclose(r, expected, atol=5e-6)
    assert np.allclose(aflw_pose_from_rotation(r), [0.3, -0.5, 0.2], atol=1e-12)
    # The protocol compares Pose_Para[:3] * 180 / pi with the prediction's angles: a prediction equal to
    # this head's image-space rotation diag(1,-1,-1) @ R must give exactly those degrees.
    r_image = np.diag([1.0, -1.0, -1.0]) @ expected
    assert np.allclose(image_rotation_from_aflw_pose(np.array([0.3, -0.5, 0.2, 10.0, 20.0, 0.0, 1e-3])), r_image,
                       atol=5e-6)
    assert np.allclose(aflw_euler_from_image_rotation(r_image), np.rad2deg([0.3, -0.5, 0.2]), atol=1e-3)


def test_aflw_pose_round_trip_within_the_protocol_range(rotations):
    rng = np.random.default_rng(7)
    angles = np.deg2rad(rng.uniform(-99.0, 99.0, (2000, 3)))
    angles[:, 1] = np.deg2rad(rng.uniform(-89.9, 89.9, 2000))    # the decomposition returns |yaw| <= 90
    r = rotation_from_aflw_pose(angles[:, 0], angles[:, 1], angles[:, 2])
    assert r.shape == (2000, 3, 3)
    assert np.allclose(r @ np.swapaxes(r, -1, -2), np.eye(3), atol=1e-12) and np.allclose(np.linalg.det(r), 1.0)
    assert np.abs(aflw_pose_from_rotation(r) - angles).max() < 1e-9
    # Any rotation survives rotation -> angles -> rotation, gimbal lock and |yaw| in (90, 99] included
    # (the latter come back on the other branch: same rotation, |yaw| <= 90).
    locked = rotation_from_aflw_pose(np.array([0.4, -0.7]), np.array([np.pi / 2, -np.pi / 2]), np.array([0.1, 0.3]))
    wide = rotation_from_aflw_pose(0.2, np.deg2rad(95.0), -0.1)[None]
    for rs in (rotations, locked, wide):
        back = aflw_pose_from_rotation(rs)
        assert np.allclose(rotation_from_aflw_pose(back[:, 0], back[:, 1], back[:, 2]), rs, atol=1e-9)
    assert abs(np.rad2deg(aflw_pose_from_rotation(wide)[0, 1])) <= 90.0


def test_aflw_frame_relation_to_image_space(rotations):
    """R_image = diag(1,-1,-1) @ R_aflw, R_aflw = MV[:3, :3]; the protocol's angles of an image-space
    rotation are the official DAD-3DHeads (calculate_rpy) angles wherever |yaw| < 90."""
    assert np.allclose(AFLW_TO_IMAGE, np.diag([1.0, -1.0, -1.0]))
    assert np.allclose(image_rotation_from_aflw_pose(np.zeros(3)), np.diag([1.0, -1.0, -1.0]))
    rng = np.random.default_rng(3)
    pose = np.deg2rad(rng.uniform(-89.0, 89.0, (200, 3)))
    r_image = image_rotation_from_aflw_pose(pose)
    mv = model_view_from_rotation(r_image, np.array([0.0, 0.0, -1.0]))
    assert np.allclose(mv[:, :3, :3], rotation_from_aflw_pose(pose[:, 0], pose[:, 1], pose[:, 2]))
    assert np.allclose(rotation_from_model_view(mv), r_image)
    assert np.allclose(aflw_euler_from_image_rotation(r_image), np.rad2deg(pose), atol=1e-9)
    assert np.allclose(r_image, rotation_from_euler(np.rad2deg(pose)), atol=1e-12)
    official = euler_from_rotation_np(rotations)
    keep = np.abs(official[:, 1]) < 89.0
    assert _angle_diff(aflw_euler_from_image_rotation(rotations)[keep], official[keep]).max() < 1e-6


@pytest.mark.parametrize("axis, moves", [(1, "nose to -x"), (0, "nose up (-row)"), (2, "crown to +x")])
def test_aflw_positive_angle_turns_the_synthetic_head_the_cited_way(flame_dir, axis, moves):
    """Through the synthetic camera (scene.projection_matrix + project_official, the pixels the rasteriser
    draws), +0.4 rad of Pose_Para yaw moves the FLAME-format nose tip (landmark 30) towards image -x (the
    subject turns to their right), pitch raises it, roll tips the crown (top vertex) towards +x: the
    directions 3DDFA's Ry(y) @ [0,0,1] = [-sin y, 0, cos y] etc. give in its y-up frame."""
    from trans3dhead.data.synth.scene import projection_matrix
    from trans3dhead.flame.decoder import FlameDecoder
    from trans3dhead.flame.topology import load_topology
    decoder = FlameDecoder(flame_dir, 413)
    with torch.no_grad():
        n = decoder.layout
        verts = decoder.model_vertices_from(torch.zeros(1, n.n_shape), torch.zeros(1, n.n_expression),
                                            torch.zeros(1, 3))[0].double().numpy()
    verts = verts - verts.mean(0)
    nose = load_topology(flame_dir).landmarks_68(verts)[30]
    crown = verts[np.argmax(verts[:, 1])]
    size = 256

    def pixels(pose):
        mv = model_view_from_rotation(image_rotation_from_aflw_pose(np.array(pose)), np.array([0.0, 0.0, -1.0]))
        return project_official(np.stack([np.zeros(3), nose, crown]), mv, projection_matrix(2.0 * size, size), size)

    frontal = pixels([0.0, 0.0, 0.0])
    assert abs(frontal[1, 0] - frontal[0, 0]) < 2.0 and frontal[1, 1] > frontal[2, 1]   # nose below the crown
    pose = [0.0, 0.0, 0.0]
    pose[axis] = 0.4
    turned = pixels(pose)
    centre = size / 2.0
    if axis == 1:
        assert turned[1, 0] < centre - 5.0, turned          # positive yaw: nose tip towards image -x
        assert pixels([0.0, -0.4, 0.0])[1, 0] > centre + 5.0
    elif axis == 0:
        assert turned[1, 1] < frontal[1, 1] - 5.0, turned   # positive pitch: nose tip moves up the image
    else:
        assert turned[2, 0] > centre + 5.0, turned          # positive roll: crown towards image +x
