"""SynthHeads generation and the official-format loaders."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import checkout_env

from trans3dhead.config import DataConfig
from trans3dhead.data import (AFLW2000Dataset, DAD3DHeadsDataset, DatasetError, ensure_synthheads, flame_dir_for,
                              flame_model_of, mean_landmarks)
from trans3dhead.data.synth.render import rasterize
from trans3dhead.flame.topology import load_topology
from trans3dhead.geometry import project_official


def _dataset(root, split="val", train=False, size=64):
    return DAD3DHeadsDataset(root / "dad3dheads" / split, root / "flame", size, train=train, seed=0)


def test_official_layout_is_written(synth_root):
    split = json.loads((synth_root / "dad3dheads" / "train" / "train.json").read_text())
    assert len(split) == 24
    entry = split[0]
    assert set(entry) == {"item_id", "annotation_path", "img_path", "bbox", "attributes"}
    assert entry["attributes"]["pose"] in {"front", "sided", "atypical"}
    ann = json.loads((synth_root / "dad3dheads" / "train" / entry["annotation_path"]).read_text())
    assert np.asarray(ann["model_view_matrix"]).shape == (4, 4) and np.asarray(ann["vertices"]).shape[1] == 3
    assert len(list((synth_root / "aflw2000").glob("*.mat"))) == 6


def test_loader_targets_reproject_within_half_a_pixel(synth_root):
    ds = _dataset(synth_root, "train", train=True)
    topo = load_topology(synth_root / "flame")
    for index in range(6):
        item = ds[index]
        ann = ds.annotation(index)
        pixels = project_official(topo.landmarks_68(ann["vertices"]), ann["model_view"], ann["projection"],
                                  item["image_height"])
        crop_px = (pixels - item["crop_origin"].numpy()) / item["crop_scale"].item()
        assert np.abs(crop_px - item["landmarks_2d"].numpy() * 64).max() < 0.5
        assert item["image"].shape == (3, 64, 64)
        assert torch.allclose(item["rotation"] @ item["rotation"].T, torch.eye(3), atol=1e-5)


def test_visible_landmarks_are_on_head_pixels(synth_root):
    """Re-rasterise the head alone: the 68 landmarks of a head facing the camera land on head pixels."""
    ds = _dataset(synth_root, "train")
    topo = load_topology(synth_root / "flame")
    checked = 0
    for index, entry in enumerate(ds.entries):
        ann = ds.annotation(index)
        from trans3dhead.geometry import euler_from_rotation_np, rotation_from_model_view
        pitch, yaw, roll = euler_from_rotation_np(rotation_from_model_view(ann["model_view"]))
        if abs(yaw) > 25 or abs(pitch) > 20:
            continue
        height = 96
        verts = ann["vertices"]
        pix = torch.tensor(project_official(verts, ann["model_view"], ann["projection"], height), dtype=torch.float32)
        depth = torch.tensor(-(verts @ ann["model_view"][:3, :3].T + ann["model_view"][:3, 3])[:, 2], dtype=torch.float32)
        mask = rasterize(pix, depth, torch.as_tensor(topo.faces.astype(np.int64)), height, height).mask.numpy()
        lmk = project_official(topo.landmarks_68(verts), ann["model_view"], ann["projection"], height)
        inner = lmk[17:]                         # the contour may sit on the silhouette
        cols, rows = np.clip(inner.astype(int), 0, height - 1).T
        assert mask[rows, cols].mean() > 0.95
        checked += 1
    assert checked >= 1


def test_generation_is_deterministic_and_cached(tmp_path):
    cfg = DataConfig(root=str(tmp_path), n_train=3, n_val=2, n_test=1, n_aflw=1, render_size=64, synth_seed=5)
    first = ensure_synthheads(cfg)
    image = first / "dad3dheads" / "train" / "images" / "train_000001.png"
    before = image.read_bytes()
    stamp = image.stat().st_mtime_ns
    assert ensure_synthheads(cfg) == first and image.stat().st_mtime_ns == stamp      # cached: nothing regenerated
    from trans3dhead.data.synth.generate import generate
    again = generate(tmp_path / "again", train=3, val=2, test=1, aflw=1, image_size=64, seed=5, workers=2)
    assert (again / "dad3dheads" / "train" / "images" / "train_000001.png").read_bytes() == before
    for name in ("dad3dheads/val/val.json", "aflw2000/image00000.mat", "dad3dheads/test/annotations/test_000000.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name      # worker count does not matter


def test_the_flame_model_alone_is_the_sets_without_generating_it(tmp_path):
    cfg = DataConfig(root=str(tmp_path / "uncached"), n_train=3, n_val=2, n_test=1, n_aflw=1, render_size=64)
    with flame_model_of(cfg) as scratch:
        alone = {f.name: f.read_bytes() for f in scratch.iterdir() if f.is_file()}
    assert not (tmp_path / "uncached").exists() and not scratch.exists()     # no set generated, nothing left
    ensure_synthheads(cfg)
    with flame_model_of(cfg) as cached:
        assert cached == flame_dir_for(cfg)
        assert {f.name: f.read_bytes() for f in cached.iterdir() if f.is_file()} == alone


def test_parallel_generation_from_an_unguarded_script(tmp_path):
    """A plain script with no ``if __name__ == "__main__":`` guard must not hang: spawned generation
    workers re-import their parent's main script, which would wait forever on the lock."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from trans3dhead.config import DataConfig\n"
        "from trans3dhead.data import ensure_synthheads\n"
        f"out = ensure_synthheads(DataConfig(root={str(tmp_path / 'data')!r}, n_train=400, n_val=0, n_test=0, "
        "n_aflw=0, render_size=32))\n"
        "print('generated', len(list((out / 'dad3dheads' / 'train' / 'images').iterdir())))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env=checkout_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "generated 400" in done.stdout


def test_mean_face_and_aflw(synth_root):
    mean = mean_landmarks(_dataset(synth_root, "train"))
    assert mean.shape == (68, 2) and np.all((mean > 0) & (mean < 1))
    aflw = AFLW2000Dataset(synth_root / "aflw2000", 64)
    item = aflw[0]
    assert item["euler"].shape == (3,) and item["image"].shape == (3, 64, 64)


def test_synth_aflw_gt_angles_equal_what_the_evaluation_computes_from_the_true_rotation(synth_root):
    """Pose_Para is written from the head's true rotation in 3DDFA's convention: the GT angles the reader
    gives (Pose_Para[:3] in degrees) equal those the AFLW evaluation derives from a perfect prediction
    (the true image-space rotation), and the written weak perspective (s, t) lands near the exact pixels."""
    import scipy.io
    from trans3dhead.data.synth.generate import aflw_scene
    from trans3dhead.engine.evaluate import aflw_predicted_euler
    from trans3dhead.flame.decoder import FlameDecoder
    from trans3dhead.geometry import rotation_from_aflw_pose, rotation_from_model_view
    flame = synth_root / "flame"
    decoder, regions = FlameDecoder(flame, 413), np.load(flame / "synthheads_regions.npy")
    topo = load_topology(flame)
    aflw = AFLW2000Dataset(synth_root / "aflw2000", 64)
    gt = {item_id: ann["euler"] for item_id, ann in aflw.items}
    for index in range(3):
        scene = aflw_scene(decoder, regions, index, 96, seed=3)          # conftest: image_size 96, seed 3
        mat = scipy.io.loadmat(synth_root / "aflw2000" / f"image{index:05d}.mat")
        pose = mat["Pose_Para"].reshape(-1)
        predicted = aflw_predicted_euler(rotation_from_model_view(scene.model_view)[None])[0]
        assert np.allclose(np.rad2deg(pose[:3]), predicted, atol=1e-6)
        assert np.allclose(predicted, scene.euler, atol=1e-6)             # the sampled pose (|yaw| <= 90)
        if f"image{index:05d}" in gt:
            assert np.allclose(gt[f"image{index:05d}"], predicted, atol=1e-6)
        lmk = topo.landmarks_68(scene.vertices)
        weak = pose[6] * lmk @ rotation_from_aflw_pose(*pose[:3]).T + pose[3:6]
        weak_px = np.stack([weak[:, 0], 96 - weak[:, 1]], axis=-1)         # 3DDFA: y up, row = H - y
        box = np.ptp(mat["pt3d_68"][:2], axis=1).max()
        assert np.abs(weak_px - mat["pt3d_68"][:2].T).max() < 0.15 * box
    assert set(gt) <= {p.stem for p in (synth_root / "aflw2000").glob("*.mat")}


def test_bad_input_names_the_file(synth_root, tmp_path):
    import shutil
    split = tmp_path / "dad3dheads" / "val"
    shutil.copytree(synth_root / "dad3dheads" / "val", split)
    shutil.copytree(synth_root / "flame", tmp_path / "flame")
    ds = _dataset(tmp_path)
    entry = ds.entries[0]
    (split / entry["annotation_path"]).write_text("{not json")
    with pytest.raises(DatasetError, match=entry["annotation_path"].split("/")[-1]):
        ds[0]
    (split / ds.entries[1]["img_path"]).unlink()
    with pytest.raises(DatasetError, match="is missing"):
        ds[1]
    entries = json.loads((split / "val.json").read_text())
    entries[2]["bbox"] = [5000, 5000, 10, 10]
    (split / "val.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="outside its"):
        _dataset(tmp_path)[2]
    (tmp_path / "flame" / "flame_static_embedding.pkl").unlink()
    with pytest.raises((DatasetError, FileNotFoundError, ValueError), match="flame_static_embedding"):
        _dataset(tmp_path)


def test_prediction_only_split(synth_root, tmp_path):
    import shutil
    split = tmp_path / "dad3dheads" / "test"
    shutil.copytree(synth_root / "dad3dheads" / "test", split)
    shutil.rmtree(split / "annotations")
    ds = DAD3DHeadsDataset(split, synth_root / "flame", 64, train=False)
    assert not ds.has_annotations
    item = ds[0]
    assert "landmarks_2d" not in item and item["image"].shape == (3, 64, 64)


def test_annotations_are_parsed_once_per_split_and_reparsed_when_a_file_changes(synth_root, tmp_path, monkeypatch):
    import shutil
    split = tmp_path / "dad3dheads" / "val"
    shutil.copytree(synth_root / "dad3dheads" / "val", split)
    shutil.copytree(synth_root / "flame", tmp_path / "flame")
    first = _dataset(tmp_path)
    parsed = [first.parse_annotation(i) for i in range(len(first))]
    for i, ann in enumerate(parsed):            # the cached values are exactly what JSON gives
        cached = first.annotation(i)
        assert all(np.array_equal(cached[k], ann[k]) for k in ("vertices", "model_view", "projection"))
    assert len(list(split.glob(".t3h-annotations-*.npy"))) == 1
    calls = []
    monkeypatch.setattr(DAD3DHeadsDataset, "parse_annotation", lambda self, i: calls.append(i))
    assert np.array_equal(_dataset(tmp_path).annotation(1)["vertices"], parsed[1]["vertices"])
    assert calls == []                          # a second reader maps the cache
    monkeypatch.undo()
    path = split / first.entries[0]["annotation_path"]
    raw = json.loads(path.read_text())
    raw["vertices"][0] = [9.0, 9.0, 9.0]
    path.write_text(json.dumps(raw))
    assert _dataset(tmp_path).annotation(0)["vertices"][0].tolist() == [9.0, 9.0, 9.0]
    def read_only(*_):
        raise PermissionError("read-only file system")
    monkeypatch.setattr("trans3dhead.data.annotation_cache.os.replace", read_only)
    (split / "val.json").touch()                # a new key: this reader cannot write its cache, and still reads
    assert np.array_equal(_dataset(tmp_path).annotation(1)["vertices"], parsed[1]["vertices"])
