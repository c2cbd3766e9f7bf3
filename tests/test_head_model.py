"""The procedural FLAME-format assets load with smplx and behave like a head model."""
import filecmp
import time

import numpy as np
import pytest
import smplx
import torch

from trans3dhead.flame import io
from trans3dhead.data.synth.head_model import REGIONS, REGIONS_FILE, write_assets
from trans3dhead.flame.topology import load_topology


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    out = tmp_path_factory.mktemp("flame")
    start = time.perf_counter()
    write_assets(out, seed=0)
    return out, time.perf_counter() - start


@pytest.fixture(scope="module")
def flame(assets):
    return smplx.FLAME(model_path=str(assets[0]), use_face_contour=True, num_expression_coeffs=100, num_betas=300)


@pytest.fixture(scope="module")
def model(assets):
    return io.load_model(assets[0] / io.MODEL_FILE)


@pytest.fixture(scope="module")
def topology(assets):
    return load_topology(assets[0])


def _vertices(flame, **kwargs):
    with torch.no_grad():
        return flame(**{k: torch.as_tensor(v, dtype=torch.float32)[None] for k, v in kwargs.items()}).vertices[0].numpy()


def test_generation_is_fast_and_writes_the_flame_layout(assets):
    out, seconds = assets
    assert seconds < 5.0
    for path in io.required_files(out):
        assert path.is_file(), path
    assert "not the FLAME model" in (out / "README.txt").read_text().lower() or \
        "NOT the FLAME model" in (out / "README.txt").read_text()


def test_smplx_loads_the_model_with_flame_shapes(flame, model):
    n = model["v_template"].shape[0]
    assert 2000 <= n <= 3000
    assert model["shapedirs"].shape == (n, 3, 400)
    assert model["posedirs"].shape == (n, 3, 36)
    assert model["J_regressor"].shape == (5, n)
    assert model["weights"].shape == (n, 5)
    assert model["kintree_table"].shape == (2, 5)
    assert np.allclose(model["weights"].sum(axis=1), 1.0)
    out = flame()
    assert out.vertices.shape == (1, n, 3)
    assert out.joints.shape == (1, 5 + 68, 3)          # joints + 51 static + 17 contour landmarks
    # FLAME-like scale: a head some 0.2 m tall (chin to crown), centred near the origin.
    v = out.vertices[0].detach().numpy()
    assert 0.14 < v[:, 0].max() - v[:, 0].min() < 0.22


def test_jaw_opens_the_mouth(flame, topology):
    closed = topology.landmarks_68(_vertices(flame))
    opened = topology.landmarks_68(_vertices(flame, jaw_pose=[0.25, 0.0, 0.0]))
    gap = lambda lmk: np.linalg.norm(lmk[66] - lmk[62])
    assert gap(closed) < 1e-6
    assert gap(opened) > 0.01
    assert opened[8, 1] < closed[8, 1] - 0.01        # the chin drops
    assert np.allclose(opened[27:36], closed[27:36], atol=1e-4)   # the nose stays


@pytest.mark.parametrize("part", ["shape", "expression"])
def test_bases_change_the_mesh_smoothly_and_linearly(flame, model, topology, part):
    key = "betas" if part == "shape" else "expression"
    size = 300 if part == "shape" else 100
    base = _vertices(flame)
    edges = np.concatenate([topology.faces[:, [0, 1]], topology.faces[:, [1, 2]], topology.faces[:, [2, 0]]])
    length = np.linalg.norm(base[edges[:, 0]] - base[edges[:, 1]], axis=1)
    for k in (0, 5, size - 1):
        coeff = np.zeros(size)
        coeff[k] = 0.1
        small = _vertices(flame, **{key: coeff}) - base
        coeff[k] = 0.2
        double = _vertices(flame, **{key: coeff}) - base
        assert np.allclose(double, 2 * small, atol=1e-6)                      # linear
        assert np.abs(small).max() < 0.005                                    # small coefficient, small change
        # Smooth: over 1 cm of surface the displacement changes by less than its peak.
        slope = np.linalg.norm(small[edges[:, 0]] - small[edges[:, 1]], axis=1) / length
        assert np.percentile(slope, 99) * 0.01 < np.abs(small).max()


def test_bases_are_orthogonal_with_decaying_variance(model):
    dirs = model["shapedirs"].astype(np.float64)
    for block in (dirs[:, :, :300], dirs[:, :, 300:]):
        flat = block.reshape(-1, block.shape[-1])
        gram = flat.T @ flat
        norms = np.sqrt(np.diag(gram))
        cosine = gram / np.outer(norms, norms)
        assert np.abs(cosine - np.eye(len(norms))).max() < 1e-4
        assert norms[0] > 5 * norms[-1]
        assert norms[:10].mean() > 2 * norms[-10:].mean()          # decaying variance
    shape_norms = np.linalg.norm(dirs[:, :, :300].reshape(-1, 300), axis=0)
    assert np.all(np.diff(shape_norms) <= 1e-6 * shape_norms[0])


def test_expression_bases_live_on_the_face(model, assets):
    labels = np.load(assets[0] / REGIONS_FILE)
    expr = model["shapedirs"][:, :, 300:].astype(np.float64)
    energy = (expr ** 2).sum(axis=(1, 2))
    off_face = np.isin(labels, [REGIONS["scalp"], REGIONS["neck"], REGIONS["ear"]])
    assert energy[off_face].sum() < 0.05 * energy.sum()


def test_plausible_random_heads(flame, model):
    g = torch.Generator().manual_seed(0)
    base = model["v_template"]
    for _ in range(3):
        betas = torch.randn(300, generator=g).numpy()
        expression = torch.randn(100, generator=g).numpy()
        change = _vertices(flame, betas=betas, expression=expression) - base
        assert 0.001 < np.sqrt((change ** 2).sum(axis=1).mean()) < 0.02


def test_landmarks_lie_on_the_surface_in_anatomical_places(topology, model):
    bary = topology.landmark_bary
    assert bary.shape == (68, 3) and topology.landmark_faces.shape == (68,)
    assert np.allclose(bary.sum(axis=1), 1.0) and (bary >= -1e-9).all()
    lmk = topology.landmarks_68(model["v_template"])
    x, y, z = lmk.T
    assert x[36] < x[39] < x[30] < x[42] < x[45]                 # eye corners either side of the nose
    assert np.all(x[17:22] < 0) and np.all(x[22:27] > 0)        # right brow at -x (image left)
    assert x[48] < x[51] < x[54] and x[0] < x[8] < x[16]
    assert y[57] < y[51] < y[33] < y[30] < y[27]                 # mouth below nose, bridge on top
    assert np.all(y[17:27] > y[36:48].max())                     # brows above eyes
    assert np.all(y[:17] < y[36:48].min()) and y[8] == y[:17].min()   # contour below eyes, chin lowest
    assert z[30] == z[27:36].max()                                # the nose tip sticks out
    assert np.allclose(lmk[60:64].mean(axis=0)[1], lmk[64:68].mean(axis=0)[1], atol=2e-3)  # closed mouth
    assert 0.025 < x[45] - x[36] < 0.12                          # outer eye corners


def test_subsets_nest_and_regions_cover_the_mesh(topology, assets):
    face, head, ears = (set(topology.subsets[k].tolist()) for k in ("face", "head", "face_w_ears"))
    assert face < head < ears
    labels = np.load(assets[0] / REGIONS_FILE)
    assert labels.shape == (topology.n_vertices,)
    assert set(np.unique(labels)) == set(REGIONS.values())


def test_determinism_for_a_seed(tmp_path, assets):
    write_assets(tmp_path / "a", seed=0)
    write_assets(tmp_path / "b", seed=1)
    for path in io.required_files(assets[0]):
        rel = path.relative_to(assets[0])
        assert filecmp.cmp(path, tmp_path / "a" / rel, shallow=False), rel
    other = io.load_model(tmp_path / "b" / io.MODEL_FILE)
    same = io.load_model(tmp_path / "a" / io.MODEL_FILE)
    assert not np.allclose(other["shapedirs"], same["shapedirs"])
    assert np.array_equal(other["v_template"], same["v_template"])
