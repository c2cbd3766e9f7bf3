"""Photograph-sized JPEGs: SynthHeads canvases, reduced-size (draft) decoding, corrupt files named."""
import numpy as np
import pytest

from trans3dhead.data import dad3dheads
from trans3dhead.data.dad3dheads import DAD3DHeadsDataset, draft_factor
from trans3dhead.data.errors import DatasetError
from trans3dhead.data.synth.generate import generate


@pytest.fixture(scope="module")
def canvas_split(tmp_path_factory):
    out = generate(tmp_path_factory.mktemp("jpeg"), train=3, val=0, test=0, aflw=0, image_size=96, seed=0,
                   canvas_size=768)
    return out / "dad3dheads" / "train", out / "flame"


def test_draft_factor_keeps_a_decoded_pixel_per_crop_pixel():
    assert [draft_factor(s) for s in (1.0, 2.0, 3.0, 6.0, 20.0)] == [1, 1, 2, 4, 8]


def test_draft_decode_gives_crops_close_to_the_full_decode(canvas_split, monkeypatch):
    split, flame = canvas_split
    drafted = DAD3DHeadsDataset(split, flame, image_size=32, train=False)
    assert drafted.entries[0]["img_path"].endswith(".jpg")
    decoded = [drafted._rgb_image(i) for i in range(len(drafted))]
    assert all(size == (768, 768) for _, size, _ in decoded)
    assert max(reduction[0] for _, _, reduction in decoded) >= 2          # decoded at reduced size
    monkeypatch.setattr(dad3dheads, "draft_factor", lambda scale: 1)
    full = DAD3DHeadsDataset(split, flame, image_size=32, train=False)
    for index in range(len(full)):
        a, b = drafted[index], full[index]
        assert np.abs((a["image"] - b["image"]).numpy()).mean() < 0.05     # ImageNet-normalised units
        assert np.array_equal(a["landmarks_2d"].numpy(), b["landmarks_2d"].numpy())
        inside = a["landmarks_2d"].numpy()
        assert (inside > -0.05).all() and (inside < 1.05).all()          # the canvas annotations hold


def test_a_corrupt_jpeg_is_named(canvas_split, tmp_path):
    split, flame = canvas_split
    dataset = DAD3DHeadsDataset(split, flame, image_size=32, train=False)
    path = dataset.image_path(1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match=path.name):
        dataset[1]
