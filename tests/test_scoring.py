"""Scoring against official-format ground truth: round trips, perturbations, bad input, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from helpers import HEIGHT, as_json, submission_from_gt, write_split
from trans3dhead import metrics, scoring
from trans3dhead.data.synth.head_model import write_assets
from trans3dhead.flame.topology import FlameTopology, load_topology


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    flame_dir = write_assets(root / "flame", seed=0)
    split_dir = write_split(root / "dad3dheads", flame_dir)
    topology = load_topology(flame_dir)
    gt_items = scoring.make_gt(split_dir)
    return root, split_dir, topology, gt_items


# ---- make_gt ---------------------------------------------------------------------------------------

def test_make_gt_official_fields(setup):
    _, split_dir, topology, gt_items = setup
    assert [g["id"] for g in gt_items] == ["val_000", "val_001", "val_002"]
    for gt in gt_items:
        assert set(gt) == {"id", "bbox", "vertices", "model_view_matrix", "projection_matrix", "image_height",
                           "attributes"}
        assert gt["image_height"] == HEIGHT
        assert np.asarray(gt["vertices"]).shape == (topology.n_vertices, 3)
        assert np.asarray(gt["model_view_matrix"]).shape == (4, 4)
    assert gt_items[1]["attributes"] == {"pose": "sided"}


def test_make_gt_reports_a_missing_annotation(tmp_path, setup):
    _, split_dir, _, _ = setup
    broken = tmp_path / "val"
    broken.mkdir()
    entries = json.loads((split_dir / "val.json").read_text())
    (broken / "val.json").write_text(json.dumps(entries))
    with pytest.raises(FileNotFoundError, match="val_000"):
        scoring.make_gt(broken)
    with pytest.raises(FileNotFoundError, match="split folder"):
        scoring.make_gt(tmp_path)


# ---- round trip and perturbations ------------------------------------------------------------------

@pytest.mark.parametrize("z5_mode", ["official", "readme"])
def test_submission_built_from_gt_scores_perfectly(setup, z5_mode):
    _, _, topology, gt_items = setup
    result = scoring.score(gt_items, submission_from_gt(gt_items, topology), topology, z5_mode=z5_mode)
    assert result.problems == []
    per = result.per_item
    np.testing.assert_allclose(per["nme"], 0.0, atol=1e-9)
    np.testing.assert_array_equal(per["z5"], 1.0)
    np.testing.assert_allclose(per["chamfer"], 0.0, atol=1e-12)
    np.testing.assert_allclose(per["pose_error"], 0.0, atol=1e-9)
    assert result.aggregate["nme_n"] == 3 and result.aggregate["n_problems"] == 0
    assert list(per["item_id"]) == [g["id"] for g in gt_items]


def test_perturbed_submission_scores_as_expected(setup):
    _, _, topology, gt_items = setup
    submission = submission_from_gt(gt_items, topology)
    theta = np.deg2rad(10.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    for pred in submission.values():
        pred["68_landmarks_2d"] = pred["68_landmarks_2d"] + [3.0, 4.0]          # 5 px everywhere
        pred["rotation_matrix"] = tilt @ pred["rotation_matrix"]                 # 10 deg off
        pred["N_landmarks_3d"] = pred["N_landmarks_3d"] * [1.0, 1.0, -1.0]       # depth order reversed
        pred["7_landmarks_3d"] = pred["7_landmarks_3d"] * [1.0, 1.0, -1.0]
    result = scoring.score(gt_items, submission, topology)
    assert result.problems == []
    per = result.per_item
    sizes = np.array([np.sqrt(g["bbox"][2] * g["bbox"][3]) for g in gt_items])
    np.testing.assert_allclose(per["nme"], 5.0 / sizes * 100.0, rtol=1e-9)
    np.testing.assert_allclose(per["pose_error"], 2 * np.sqrt(2) * np.sin(theta / 2), rtol=1e-9)
    assert (per["z5"] < 0.05).all()            # only self-comparisons and exactly equal depths still agree
    # The official alignment allows reflections, so a mirrored depth axis costs no Chamfer.
    np.testing.assert_allclose(per["chamfer"], 0.0, atol=1e-12)
    readme = scoring.score(gt_items, submission, topology, z5_mode="readme").per_item
    assert (readme["z5"] < 0.05).all()


def _literal_official_item(gt: dict, pred: dict, topology: FlameTopology) -> dict[str, float]:
    """The facts' formulas written out step by step, independently of trans3dhead.metrics."""
    vertices, mv, proj = (np.asarray(gt[k], float) for k in ("vertices", "model_view_matrix", "projection_matrix"))
    homogeneous = np.hstack([vertices, np.ones((len(vertices), 1))])
    world = (mv @ homogeneous.T).T[:, :3]
    landmarks = topology.landmarks_68(vertices)
    clip = (proj @ mv @ np.hstack([landmarks, np.ones((68, 1))]).T).T
    gt_2d = np.stack([clip[:, 0] / clip[:, 3], gt["image_height"] - clip[:, 1] / clip[:, 3]], axis=1)
    w, h = gt["bbox"][2:]
    nme = np.mean(np.linalg.norm(np.asarray(pred["68_landmarks_2d"]) - gt_2d, axis=1)) / np.sqrt(w * h) * 100

    ears = topology.subsets["face_w_ears"]
    order = np.argsort(cdist(world[ears], world[ears]), axis=0, kind="stable")
    gt_z, pred_z = -world[ears, 2], np.asarray(pred["N_landmarks_3d"])[ears, 2]
    agree = [(gt_z[i] >= gt_z[order[i, j]]) == (pred_z[i] >= pred_z[order[i, j]])
             for i in range(len(ears)) for j in range(1, 6)]

    world_landmarks = topology.landmarks_68(world)
    factor = 20.0 / np.linalg.norm(world_landmarks[39] - world_landmarks[42])
    target, source = world_landmarks[list(metrics.SEVEN_LANDMARKS)] * factor, np.asarray(pred["7_landmarks_3d"])
    target_c, source_c = target - target.mean(0), source - source.mean(0)
    u, singular, vt = np.linalg.svd(source_c.T @ target_c)   # max trace(R^T S^T T) over orthogonal R
    rotation = u @ vt
    scale = singular.sum() / (source_c**2).sum()
    aligned = scale * (np.asarray(pred["N_landmarks_3d"]) - source.mean(0)) @ rotation + target.mean(0)
    chamfer = cdist(world[topology.subsets["face"]] * factor, aligned).min(axis=1) ** 2

    r_gt = (np.diag([1.0, -1.0, -1.0, 1.0]) @ mv)[:3, :3]
    pose = np.linalg.norm(np.eye(3) - np.asarray(pred["rotation_matrix"]) @ r_gt.T)
    return {"nme": nme, "z5": np.mean(agree), "chamfer": chamfer.mean(), "pose_error": pose}


def test_score_matches_the_literal_official_formulas(setup):
    _, _, topology, gt_items = setup
    rng = np.random.default_rng(1)
    submission = submission_from_gt(gt_items, topology)
    for pred in submission.values():
        for key in scoring.SUBMISSION_SHAPES:           # noise everywhere, rotations included (not orthogonal)
            pred[key] = pred[key] + rng.normal(scale=2.0 if key != "rotation_matrix" else 0.05, size=pred[key].shape)
    per = scoring.score(gt_items, submission, topology).per_item.set_index("item_id")
    for gt in gt_items:
        expected = _literal_official_item(gt, submission[gt["id"]], topology)
        for name, value in expected.items():
            assert per.loc[gt["id"], name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
        assert 0.5 < expected["z5"] < 1.0 and expected["chamfer"] > 0


def test_chamfer_grows_with_vertex_noise(setup):
    _, _, topology, gt_items = setup
    submission = submission_from_gt(gt_items, topology)
    rng = np.random.default_rng(0)
    chamfers = []
    for noise in (0.5, 2.0):                     # pixel-like units of the submission
        noisy = {}
        for item_id, pred in submission.items():
            jitter = rng.normal(scale=noise, size=pred["N_landmarks_3d"].shape)
            noisy[item_id] = dict(pred, N_landmarks_3d=pred["N_landmarks_3d"] + jitter)
        chamfers.append(scoring.score(gt_items, noisy, topology).aggregate["chamfer"])
    assert 0 < chamfers[0] < chamfers[1]


# ---- bad input -------------------------------------------------------------------------------------

def test_bad_items_are_listed_never_dropped(setup):
    _, _, topology, gt_items = setup
    submission = submission_from_gt(gt_items, topology)
    del submission["val_000"]                                              # missing item
    submission["val_001"]["N_landmarks_3d"] = submission["val_001"]["N_landmarks_3d"][:-1]   # wrong shape
    submission["val_002"]["rotation_matrix"] = np.full((3, 3), np.nan)    # non-finite
    submission["ghost"] = submission["val_001"]                            # unknown id
    result = scoring.score(gt_items, submission, topology)
    text = "\n".join(result.problems)
    assert "val_000: missing from the submission" in text
    n = topology.n_vertices
    assert f"val_001: 'N_landmarks_3d' has shape ({n - 1}, 3), expected ({n}, 3)" in text
    assert "val_002: 'rotation_matrix' holds non-finite numbers" in text
    assert "ghost: not in the ground truth" in text
    assert len(result.problems) == 4 and result.aggregate["n_problems"] == 4
    assert result.aggregate["nme_n"] == 0 and result.aggregate["nme_failed"] == 3
    assert result.per_item["error"].str.len().gt(0).all()


def test_missing_key_and_non_object_prediction(setup):
    _, _, topology, gt_items = setup
    submission = submission_from_gt(gt_items, topology)
    del submission["val_000"]["7_landmarks_3d"]
    submission["val_001"] = [1, 2, 3]
    submission["val_002"]["68_landmarks_2d"] = "oops"
    problems = scoring.score(gt_items, submission, topology).problems
    assert problems == ["val_000: missing key '7_landmarks_3d'",
                        "val_001: prediction is list, expected an object with ['68_landmarks_2d', 'N_landmarks_3d', "
                        "'7_landmarks_3d', 'rotation_matrix']",
                        "val_002: '68_landmarks_2d' is not a numeric array"]


def test_malformed_gt_item_is_a_per_item_problem(setup):
    _, _, topology, gt_items = setup
    submission = submission_from_gt(gt_items, topology)
    broken = [dict(gt_items[0], vertices=np.asarray(gt_items[0]["vertices"])[:10].tolist()), *gt_items[1:]]
    result = scoring.score(broken, submission, topology)
    assert len(result.problems) == 1 and result.problems[0].startswith("val_000: scoring failed (ValueError")
    assert result.aggregate["nme_n"] == 2


def test_duplicate_gt_ids_are_reported(setup):
    _, _, topology, gt_items = setup
    result = scoring.score([*gt_items, gt_items[0]], submission_from_gt(gt_items, topology), topology)
    assert result.problems == ["val_000: appears 2 times in the ground truth (scored each time)"]
    assert result.aggregate["nme_n"] == 4


def test_unknown_z5_mode_is_rejected(setup):
    _, _, topology, gt_items = setup
    with pytest.raises(ValueError, match="z5_mode"):
        scoring.score(gt_items, {}, topology, z5_mode="paper")


# ---- CLI -------------------------------------------------------------------------------------------

def test_cli_make_gt_then_score(setup, tmp_path, capsys):
    root, split_dir, topology, gt_items = setup
    gt_path, pred_path, out_path = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "scores.json"
    assert scoring.main(["make-gt", "--split-dir", str(split_dir), "--out", str(gt_path)]) == 0
    assert json.loads(gt_path.read_text()) == json.loads(json.dumps(gt_items))
    pred_path.write_text(json.dumps(as_json(submission_from_gt(gt_items, topology))))
    args = ["score", "--gt", str(gt_path), "--pred", str(pred_path), "--flame-dir", str(root / "flame")]
    assert scoring.main([*args, "--out", str(out_path)]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("nme", "z5", "chamfer", "pose_error"))
    scores = json.loads(out_path.read_text())
    assert scores["aggregate"]["z5"] == 1.0 and scores["problems"] == []
    assert [row["item_id"] for row in scores["per_item"]] == ["val_000", "val_001", "val_002"]


def test_cli_exit_codes_on_problems(setup, tmp_path, capsys):
    root, _, topology, gt_items = setup
    gt_path, pred_path = tmp_path / "gt.json", tmp_path / "pred.json"
    gt_path.write_text(json.dumps(gt_items))
    submission = as_json(submission_from_gt(gt_items, topology))
    del submission["val_002"]
    pred_path.write_text(json.dumps(submission))
    args = ["score", "--gt", str(gt_path), "--pred", str(pred_path), "--flame-dir", str(root / "flame")]
    assert scoring.main(args) == 1
    err = capsys.readouterr().err
    assert "val_002: missing from the submission" in err and "--allow-missing" in err
    assert scoring.main([*args, "--allow-missing"]) == 0
    pred_path.write_text(json.dumps({}))                   # nothing scorable: null means, strict JSON
    assert scoring.main([*args, "--allow-missing", "--out", str(tmp_path / "s.json")]) == 0
    scores = json.loads((tmp_path / "s.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert scores["aggregate"]["nme"] is None and scores["aggregate"]["nme_failed"] == 3
    assert len(scores["problems"]) == 3
    assert scoring.main(["score", "--gt", str(tmp_path / "nope.json"), "--pred", str(pred_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    pred_path.write_text("{not json")
    assert scoring.main(args) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert scoring.main(["make-gt", "--split-dir", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2


def test_cli_finds_the_flame_folder_above_the_gt_file(setup, tmp_path):
    root, split_dir, topology, gt_items = setup
    gt_path = split_dir / "gt_for_cli_test.json"        # root/dad3dheads/val/: flame/ is two levels up
    gt_path.write_text(json.dumps(gt_items))
    pred_path = tmp_path / "pred.json"
    pred_path.write_text(json.dumps(as_json(submission_from_gt(gt_items, topology))))
    try:
        assert scoring.main(["score", "--gt", str(gt_path), "--pred", str(pred_path)]) == 0
    finally:
        gt_path.unlink()


# ---- SynthHeads round trip -------------------------------------------------------------------------

def test_synthheads_round_trip(tmp_path):
    from trans3dhead.data.synth.generate import generate

    out = generate(tmp_path / "synth", train=0, val=3, test=0, aflw=0, image_size=64, seed=0)
    gt_path = tmp_path / "gt.json"
    assert scoring.main(["make-gt", "--split-dir", str(out / "dad3dheads" / "val"), "--out", str(gt_path)]) == 0
    gt_items = json.loads(gt_path.read_text())
    assert len(gt_items) == 3 and all(g["image_height"] == 64 for g in gt_items)
    topology = load_topology(out / "flame")
    result = scoring.score(gt_items, as_json(submission_from_gt(gt_items, topology)), topology)
    assert result.problems == []
    assert result.aggregate["nme"] == pytest.approx(0.0, abs=1e-9)
    assert result.aggregate["z5"] == 1.0
    assert result.aggregate["chamfer"] == pytest.approx(0.0, abs=1e-9)
    assert result.aggregate["pose_error"] == pytest.approx(0.0, abs=1e-6)


def test_the_former_module_name_forwards_to_scoring(tmp_path):
    """``python -m trans3dhead.benchmark`` (the name before scoring.py) still runs the same command line."""
    import subprocess
    import sys

    from trans3dhead import benchmark

    assert benchmark.main is scoring.main and benchmark.score is scoring.score
    done = subprocess.run([sys.executable, "-m", "trans3dhead.benchmark", "make-gt", "--split-dir", str(tmp_path),
                           "--out", str(tmp_path / "gt.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
