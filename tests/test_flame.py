"""FLAME decoding on smplx: parameter layouts, decoder outputs, topology, bad input, converter."""
import pickle
import shutil
import sys
import types

import numpy as np
import pytest
import torch

from trans3dhead.flame import io
from trans3dhead.data.synth.head_model import write_assets
from trans3dhead.flame.decoder import Z_OFFSET, FlameDecoder
from trans3dhead.flame.params import ParamLayout
from trans3dhead.flame.topology import load_topology
from trans3dhead.geometry import rot6d_to_matrix, weak_perspective


@pytest.fixture(scope="module")
def flame_dir(tmp_path_factory):
    return write_assets(tmp_path_factory.mktemp("flame"), seed=0)


@pytest.fixture(scope="module")
def topology(flame_dir):
    return load_topology(flame_dir)


@pytest.mark.parametrize("n, sizes", [(413, (300, 100, 3)), (160, (100, 50, 0)), (60, (40, 10, 0))])
def test_param_layouts(n, sizes):
    layout = ParamLayout.for_count(n)
    assert (layout.n_shape, layout.n_expression, layout.n_jaw) == sizes
    assert layout.total == n and layout.n_pose == 10 and layout.n_shape_like == sum(sizes)
    params = torch.arange(2 * n, dtype=torch.float32).reshape(2, n)
    parts = layout.split(params)
    assert [parts[k].shape[-1] for k in ("shape", "expression", "jaw", "rot6d", "translation", "scale")] == \
        [*sizes, 6, 3, 1]
    assert torch.equal(layout.join(parts), params)
    assert torch.equal(params[:, layout.rot6d], parts["rot6d"])
    with pytest.raises(ValueError, match="413"):
        ParamLayout.for_count(100)


def _params(layout: ParamLayout, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    parts = {"shape": torch.randn(batch, layout.n_shape, generator=g),
             "expression": torch.randn(batch, layout.n_expression, generator=g),
             "rot6d": torch.randn(batch, 6, generator=g),
             "translation": 0.1 * torch.randn(batch, 3, generator=g),
             "scale": 5.0 + torch.randn(batch, 1, generator=g)}
    if layout.n_jaw:
        parts["jaw"] = 0.1 * torch.rand(batch, 3, generator=g)
    return layout.join(parts)


@pytest.mark.parametrize("n", [413, 160, 60])
def test_decoder_outputs_and_gradients(flame_dir, topology, n):
    decoder = FlameDecoder(flame_dir, n)
    v = topology.n_vertices
    params = _params(decoder.layout, 3).requires_grad_(True)
    out = decoder(params)
    expected = {"params": (3, n), "model_vertices": (3, v, 3), "posed_vertices": (3, v, 3),
                "projected_vertices": (3, v, 2), "rotation": (3, 3, 3), "landmarks_3d": (3, 68, 3),
                "model_landmarks": (3, 68, 3)}
    assert {k: tuple(t.shape) for k, t in out.items()} == expected
    (out["landmarks_3d"].sum() + out["model_vertices"].sum()).backward()
    parts = decoder.layout.split(params.grad)
    for name in ("shape", "expression", "rot6d", "translation", "scale"):
        assert parts[name].abs().sum() > 0, name
    # The FLAME layer is fixed and stays out of checkpoints.
    assert not list(decoder.parameters()) and not decoder.state_dict()


@pytest.mark.parametrize("n", [413, 60])
def test_decode_only_matches_the_whole_mesh_where_it_decodes(flame_dir, topology, n):
    """A training step decodes only the loss's vertices (and the landmarks' corners): same values and gradients
    there as the whole-mesh decode, NaN elsewhere, the whole mesh again in eval mode."""
    whole, part = FlameDecoder(flame_dir, n), FlameDecoder(flame_dir, n)
    wanted = torch.arange(0, topology.n_vertices, 7)
    part.decode_only(wanted)
    assert set(wanted.tolist()) <= set(part.decoded.tolist()) and part.decoded.numel() < topology.n_vertices
    params = _params(whole.layout, 3, seed=1)
    p_whole, p_part = params.clone().requires_grad_(True), params.clone().requires_grad_(True)
    a, b = whole(p_whole), part(p_part)
    for key in ("model_vertices", "posed_vertices", "projected_vertices"):
        torch.testing.assert_close(b[key][:, part.decoded], a[key][:, part.decoded], rtol=1e-5, atol=1e-6)
        others = torch.ones(topology.n_vertices, dtype=torch.bool)
        others[part.decoded] = False
        assert torch.isnan(b[key][:, others]).all(), key
    for key in ("landmarks_3d", "model_landmarks", "rotation"):
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    loss = lambda out: out["model_vertices"][:, wanted].square().sum() + out["landmarks_3d"].sum()
    loss(a).backward()
    loss(b).backward()
    torch.testing.assert_close(p_part.grad, p_whole.grad, rtol=1e-4, atol=1e-5)
    part.eval()
    assert not torch.isnan(part(params)["model_vertices"]).any()
    part.decode_only(None)
    assert part.train()(params)["model_vertices"].isfinite().all()


def test_decoder_follows_the_official_camera(flame_dir, topology):
    decoder = FlameDecoder(flame_dir, 413)
    params = _params(decoder.layout, 2, seed=1)
    with torch.no_grad():
        out = decoder(params)
    parts = decoder.layout.split(params)
    rotation = rot6d_to_matrix(parts["rot6d"])
    shifted = out["model_vertices"] + torch.tensor([0.0, 0.0, Z_OFFSET])
    posed = weak_perspective(shifted, rotation, parts["translation"], parts["scale"])
    assert torch.allclose(out["posed_vertices"], posed, atol=1e-6)
    assert torch.allclose(out["projected_vertices"], (posed[..., :2] + 1) / 2, atol=1e-6)
    assert torch.allclose(out["rotation"], rotation)
    # Landmarks are the topology's 68 of the same vertices, in both frames.
    for key, verts in (("model_landmarks", "model_vertices"), ("landmarks_3d", "posed_vertices")):
        assert np.allclose(out[key].numpy(), topology.landmarks_68(out[verts].numpy()), atol=1e-6)


def test_identity_rot6d_and_zero_params_give_the_template(flame_dir):
    decoder = FlameDecoder(flame_dir, 60)
    params = decoder.layout.join({}, batch_shape=(1,))
    out = decoder(params)
    assert torch.allclose(out["rotation"][0], torch.eye(3))
    template = io.load_model(flame_dir / io.MODEL_FILE)["v_template"]
    assert np.allclose(out["model_vertices"][0].numpy(), template, atol=1e-6)
    assert torch.allclose(out["posed_vertices"][0, :, 2], out["model_vertices"][0, :, 2] + Z_OFFSET, atol=1e-6)


def test_jaw_only_in_the_413_layout(flame_dir):
    decoder = FlameDecoder(flame_dir, 413)
    closed = decoder.layout.join({}, batch_shape=(1,))
    opened = decoder.layout.join({"jaw": torch.tensor([[0.3, 0.0, 0.0]])})
    gap = lambda out: (out["model_landmarks"][0, 66] - out["model_landmarks"][0, 62]).norm()
    assert gap(decoder(closed)) < 1e-6 < 0.01 < gap(decoder(opened))
    verts = decoder.model_vertices_from(torch.zeros(1, 300), torch.zeros(1, 100), torch.tensor([[0.3, 0.0, 0.0]]))
    assert torch.allclose(verts, decoder(opened)["model_vertices"])


# ----------------------------------------------------------------------------- bad input
@pytest.fixture()
def broken_dir(flame_dir, tmp_path):
    target = tmp_path / "flame"
    shutil.copytree(flame_dir, target)
    return target


@pytest.mark.parametrize("missing", [io.MODEL_FILE, io.STATIC_EMBEDDING_FILE, io.DYNAMIC_EMBEDDING_FILE,
                                     f"{io.INDEX_DIR}/head.npy"])
def test_missing_file_names_the_file_and_the_fix(broken_dir, missing):
    (broken_dir / missing).unlink()
    for build in (lambda: FlameDecoder(broken_dir, 413), lambda: load_topology(broken_dir)):
        with pytest.raises(io.MissingFlameFileError) as err:
            build()
        assert missing.split("/")[-1] in str(err.value)
        assert "trans3dhead.data.synth.head_model" in str(err.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(io.MissingFlameFileError, match="does not exist"):
        FlameDecoder(tmp_path / "nowhere", 413)


def test_model_without_a_key_is_a_clear_error(broken_dir):
    model = io.load_model(broken_dir / io.MODEL_FILE)
    del model["J_regressor"]
    io.write_pickle(broken_dir / io.MODEL_FILE, model)
    with pytest.raises(io.FlameAssetError, match="J_regressor"):
        FlameDecoder(broken_dir, 413)


class _FakeCh:
    """Pickles like chumpy.ch.Ch: class chumpy.ch.Ch, state dict holding the array in 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()


def _chumpy_pickle(path, model: dict) -> None:
    """Write ``model`` as the licensed FLAME pickle does: arrays wrapped in chumpy.ch.Ch objects,
    J_regressor as a scipy sparse matrix. A throw-away ``chumpy.ch`` module names the class."""
    import scipy.sparse
    fake = types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    fake.Ch = _FakeCh
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = fake
    try:
        wrapped = {k: (_FakeCh(v) if k in ("v_template", "shapedirs", "posedirs", "weights") else v)
                   for k, v in model.items()}
        wrapped["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
        with open(path, "wb") as fh:
            pickle.dump(wrapped, fh, protocol=2)
    finally:
        _FakeCh.__module__, _FakeCh.__qualname__ = __name__, "_FakeCh"
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_chumpy_pickle_is_refused_with_the_converter_hint(broken_dir):
    _chumpy_pickle(broken_dir / io.MODEL_FILE, io.load_model(broken_dir / io.MODEL_FILE))
    for build in (lambda: FlameDecoder(broken_dir, 413), lambda: load_topology(broken_dir)):
        with pytest.raises(io.ChumpyPickleError) as err:
            build()
        assert io.MODEL_FILE in str(err.value) and "trans3dhead.flame.convert" in str(err.value)


def test_converter_turns_a_chumpy_pickle_into_a_loadable_folder(flame_dir, tmp_path):
    from trans3dhead.flame.convert import main as convert_main
    licensed = tmp_path / "licensed"
    static = licensed / "static"
    shutil.copytree(flame_dir / io.INDEX_DIR, static / io.INDEX_DIR)
    for name in (io.STATIC_EMBEDDING_FILE, io.DYNAMIC_EMBEDDING_FILE):
        shutil.copy(flame_dir / name, static / name)
    _chumpy_pickle(licensed / "generic_model.pkl", io.load_model(flame_dir / io.MODEL_FILE))
    out = tmp_path / "converted"
    convert_main(["--src", str(licensed / "generic_model.pkl"), "--static-dir", str(static), "--out", str(out)])
    params = _params(ParamLayout.for_count(413), 2)
    with torch.no_grad():
        expected, got = FlameDecoder(flame_dir, 413)(params), FlameDecoder(out, 413)(params)
    for key in expected:
        assert torch.allclose(expected[key], got[key], atol=1e-6), key
    assert np.array_equal(load_topology(out).subsets["face"], load_topology(flame_dir).subsets["face"])


def test_converter_names_a_missing_static_file(flame_dir, tmp_path):
    from trans3dhead.flame.convert import convert
    _chumpy_pickle(tmp_path / "generic_model.pkl", io.load_model(flame_dir / io.MODEL_FILE))
    (tmp_path / "static").mkdir()
    with pytest.raises(io.MissingFlameFileError, match=io.STATIC_EMBEDDING_FILE):
        convert(tmp_path / "generic_model.pkl", tmp_path / "static", tmp_path / "out")
