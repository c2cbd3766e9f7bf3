"""Per-sample metrics: hand-computed cases, the official Z5 indexing, and property tests."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from trans3dhead import metrics

FEW = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    return Rotation.random(random_state=rng.integers(2**31)).as_matrix()


def _official_z5_reference(gt_points: np.ndarray, gt_z: np.ndarray, pred_z: np.ndarray) -> float:
    """The official algorithm written out literally: the full S = argsort(cdist, dim=0), S[i, j]."""
    order = np.argsort(cdist(gt_points, gt_points), axis=0, kind="stable")
    agree = [(gt_z[i] >= gt_z[order[i, j]]) == (pred_z[i] >= pred_z[order[i, j]])
             for i in range(len(gt_points)) for j in range(1, 6)]
    return float(np.mean(agree))


# ---- NME -------------------------------------------------------------------------------------------

def test_nme_hand_computed():
    gt = np.zeros((68, 2))
    pred = gt + [3.0, 4.0]                      # every point 5 px off
    bbox = np.array([10.0, 20.0, 4.0, 25.0])    # sqrt(4 * 25) = 10
    assert metrics.nme(pred, gt, bbox) == pytest.approx(5 / 10 * 100)


def test_nme_is_per_sample_and_accepts_torch():
    gt = np.zeros((2, 68, 2))
    pred = gt.copy()
    pred[1, :34] += [6.0, 8.0]                  # half the points 10 px off: mean error 5
    bbox = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    expected = [0.0, 50.0]
    np.testing.assert_allclose(metrics.nme(pred, gt, bbox), expected)
    as_torch = torch.tensor(pred, requires_grad=True)
    np.testing.assert_allclose(metrics.nme(as_torch, torch.tensor(gt), torch.tensor(bbox)), expected)


@FEW
@given(seeds, st.floats(1.0, 500.0), st.floats(1.0, 500.0))
def test_nme_zero_for_identical_inputs(seed, w, h):
    points = np.random.default_rng(seed).uniform(-1000, 1000, (68, 2))
    assert metrics.nme(points, points.copy(), np.array([0.0, 0.0, w, h])) == 0.0


# ---- Z5 --------------------------------------------------------------------------------------------
# Seven points on a line at x = 0, 1, 3, 7, 15, 31, 63 (all distances distinct). Column j of the
# official S = argsort(cdist, dim=0) orders all points by distance to point j:
#   j=1: [1,0,2,3,4,5,6]  j=2: [2,1,0,3,4,5,6]  j=3: [3,2,1,0,4,5,6]  j=4: [4,3,2,1,0,5,6]  j=5: [5,4,3,2,1,0,6]
# and vertex i is compared with S[i, j]. Where S[i, j] == i a vertex meets itself: 5+5+3+3+1 = 17
# of the 35 pairs, which agree whatever the prediction.
LINE = np.array([[x, 0.0, 0.0] for x in (0, 1, 3, 7, 15, 31, 63)])
OFFICIAL_COLUMNS = [[1, 0, 2, 3, 4, 5, 6], [2, 1, 0, 3, 4, 5, 6], [3, 2, 1, 0, 4, 5, 6],
                    [4, 3, 2, 1, 0, 5, 6], [5, 4, 3, 2, 1, 0, 6]]


def test_z5_official_pairs_hand_computed():
    i, k = metrics.z5_pairs(LINE, "official")
    np.testing.assert_array_equal(i, np.tile(np.arange(7), 5))
    np.testing.assert_array_equal(k, np.concatenate(OFFICIAL_COLUMNS))


def test_z5_readme_pairs_are_each_vertex_own_five_neighbours():
    i, k = metrics.z5_pairs(LINE, "readme")
    assert (i != k).all()
    # Point 0's five nearest: 1, 3, 7, 15, 31 (indices 1..5); point 6's: 31, 15, 7, 3, 1 (indices 5..1).
    assert sorted(k[i == 0]) == [1, 2, 3, 4, 5]
    assert sorted(k[i == 6]) == [1, 2, 3, 4, 5]


def test_z5_flipped_depths_hand_computed():
    gt_z = LINE[:, 0]
    pred_z = -gt_z                               # every depth order reversed
    official = metrics.z5_accuracy(pred_z, gt_z, metrics.z5_pairs(LINE, "official"))
    readme = metrics.z5_accuracy(pred_z, gt_z, metrics.z5_pairs(LINE, "readme"))
    assert official == pytest.approx(17 / 35)    # only the self-comparisons agree (quirk)
    assert readme == 0.0


def test_z5_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="official or readme"):
        metrics.z5_pairs(LINE, "readme-ish")


@FEW
@given(seeds)
def test_z5_official_matches_the_literal_algorithm(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(40, 3))
    gt_z, pred_z = points[:, 2], points[:, 2] + rng.normal(scale=0.5, size=40)
    ours = metrics.z5_accuracy(pred_z, gt_z, metrics.z5_pairs(points, "official"))
    assert ours == pytest.approx(_official_z5_reference(points, gt_z, pred_z))


@FEW
@given(seeds, st.sampled_from(["official", "readme"]))
def test_z5_one_for_identical_and_drops_when_flipped(seed, mode):
    points = np.random.default_rng(seed).normal(size=(60, 3))
    pairs = metrics.z5_pairs(points, mode)
    depth = points[:, 2]
    assert metrics.z5_accuracy(depth.copy(), depth, pairs) == 1.0
    assert metrics.z5_accuracy(-depth, depth, pairs) < 0.6
    # Any increasing map of the depths keeps every order: Z5 only sees ordering.
    assert metrics.z5_accuracy(np.exp(depth) * 3 + 1, depth, pairs) == 1.0


# ---- Chamfer ---------------------------------------------------------------------------------------

def _chamfer_scene():
    """Seven well-spread GT points (also the predicted mesh) and one extra GT point 0.5 from point 0."""
    seven = np.array([[0, 0, 0], [10, 0, 0], [20, 0, 0], [30, 0, 0], [15, -10, 5], [8, -20, 2], [22, -20, 2.0]])
    extra = seven[0] + [0.5, 0.0, 0.0]
    gt_world = np.vstack([seven, extra])
    eye_inner = (seven[1], seven[2])             # 10 apart: the GT is rescaled by 2
    return seven, gt_world, eye_inner


def test_chamfer_hand_computed():
    seven, gt_world, eye_inner = _chamfer_scene()
    # The prediction is the 7 points themselves; after alignment onto the rescaled GT, the extra
    # GT point lies 2 * 0.5 = 1 from its nearest predicted point: squared distance 1.
    one_point = metrics.chamfer(seven, seven, gt_world, seven, eye_inner, np.array([7]))
    assert one_point == pytest.approx(1.0)
    all_points = metrics.chamfer(seven, seven, gt_world, seven, eye_inner, np.arange(8))
    assert all_points == pytest.approx(1.0 / 8)  # seven exact matches and one at squared distance 1


def test_chamfer_is_squared_distance_not_distance():
    seven, gt_world, eye_inner = _chamfer_scene()
    gt_world = gt_world.copy()
    gt_world[7] = seven[0] + [1.5, 0.0, 0.0]     # 3 apart after the rescale: 9, not 3
    assert metrics.chamfer(seven, seven, gt_world, seven, eye_inner, np.array([7])) == pytest.approx(9.0)


def test_chamfer_rejects_degenerate_eyes():
    seven, gt_world, _ = _chamfer_scene()
    with pytest.raises(ValueError, match="coincide"):
        metrics.chamfer(seven, seven, gt_world, seven, (seven[1], seven[1]), np.arange(8))


@FEW
@given(seeds, st.floats(0.05, 20.0), st.booleans())
def test_chamfer_invariant_to_similarity_of_prediction(seed, scale, reflect):
    rng = np.random.default_rng(seed)
    gt_world = rng.normal(size=(80, 3))
    seven_idx = np.arange(7)
    pred = gt_world + rng.normal(scale=0.05, size=gt_world.shape)
    face = np.arange(10, 80)
    before = metrics.chamfer(pred, pred[seven_idx], gt_world, gt_world[seven_idx], (gt_world[0], gt_world[1]), face)

    linear = scale * _random_rotation(rng) @ np.diag([-1.0 if reflect else 1.0, 1.0, 1.0])
    moved = pred @ linear.T + rng.normal(scale=100, size=3)
    after = metrics.chamfer(moved, moved[seven_idx], gt_world, gt_world[seven_idx], (gt_world[0], gt_world[1]), face)
    assert after == pytest.approx(before, rel=1e-6, abs=1e-9)


def test_similarity_procrustes_recovers_a_reflection():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(7, 3))
    reflection = _random_rotation(rng) @ np.diag([1.0, 1.0, -1.0])
    target = 2.5 * source @ reflection + [1.0, 2.0, 3.0]
    scale, rotation, translation = metrics.similarity_procrustes(source, target)
    assert scale == pytest.approx(2.5)
    np.testing.assert_allclose(rotation, reflection, atol=1e-9)
    np.testing.assert_allclose(translation, [1.0, 2.0, 3.0], atol=1e-9)


# ---- pose ------------------------------------------------------------------------------------------

def test_pose_error_hand_computed():
    quarter_turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])   # 90 deg about z
    # I - Rz = [[1, 1, 0], [-1, 1, 0], [0, 0, 0]]: Frobenius norm sqrt(4) = 2 = 2 sqrt(2) sin(45 deg)
    assert metrics.pose_error(quarter_turn, np.eye(3)) == pytest.approx(2.0)
    half_turn = np.diag([-1.0, -1.0, 1.0])
    assert metrics.pose_error(half_turn, np.eye(3)) == pytest.approx(2 * np.sqrt(2))


@FEW
@given(seeds)
def test_pose_error_zero_for_identical_rotations(seed):
    rotation = _random_rotation(np.random.default_rng(seed))
    assert metrics.pose_error(rotation, rotation.copy()) == pytest.approx(0.0, abs=1e-12)


@FEW
@given(seeds, st.floats(0.0, np.pi))
def test_pose_error_is_chord_of_the_angle(seed, theta):
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    gt = _random_rotation(rng)
    pred = Rotation.from_rotvec(theta * axis).as_matrix() @ gt
    assert metrics.pose_error(pred, gt) == pytest.approx(2 * np.sqrt(2) * np.sin(theta / 2), abs=1e-9)


def test_pose_error_is_batched():
    batch = np.stack([np.eye(3), np.diag([-1.0, -1.0, 1.0])])
    np.testing.assert_allclose(metrics.pose_error(batch, np.eye(3)[None].repeat(2, 0)), [0.0, 2 * np.sqrt(2)])


def test_aflw_pose_errors_hand_computed_with_wrapping():
    pred = np.array([[10.0, -170.0, 5.0]])
    gt = np.array([[-5.0, 175.0, 0.0]])          # yaw: -170 vs 175 is 15 deg across the +-180 seam
    errors = metrics.pose_errors(pred, gt)
    assert errors["pitch"][0] == pytest.approx(15.0)
    assert errors["yaw"][0] == pytest.approx(15.0)
    assert errors["roll"][0] == pytest.approx(5.0)
    assert errors["mae"][0] == pytest.approx(35.0 / 3)


# ---- aggregation and names -------------------------------------------------------------------------

def test_aggregate_counts_failures_instead_of_dropping_them():
    summary = metrics.aggregate({"nme": np.array([1.0, np.nan, 3.0]), "z5": [1.0, 1.0, np.inf]})
    assert summary["nme"] == 2.0 and summary["nme_n"] == 2 and summary["nme_failed"] == 1
    assert summary["z5"] == 1.0 and summary["z5_n"] == 2 and summary["z5_failed"] == 1
    empty = metrics.aggregate({"chamfer": [np.nan]})
    assert np.isnan(empty["chamfer"]) and empty["chamfer_failed"] == 1


def test_one_table_of_metric_facts_covers_every_metric_name():
    assert set(metrics.METRICS) == {"nme", "z5", "chamfer", "pose_error", "mae", "pitch", "yaw", "roll"}
    assert metrics.METRICS["z5"].direction == "higher"
    assert {f.direction for m, f in metrics.METRICS.items() if m != "z5"} == {"lower"}
    assert all(f.title and f.unit and f.decimals > 0 for f in metrics.METRICS.values())
