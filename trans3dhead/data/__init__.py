"""Data: the embedded SynthHeads benchmark and readers of the official DAD-3DHeads / AFLW2000-3D formats."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from trans3dhead.config import DataConfig
from trans3dhead.data.aflw2000 import AFLW2000Dataset
from trans3dhead.data.dad3dheads import DAD3DHeadsDataset
from trans3dhead.data.embedded import MARKER, ensure_synthheads, synth_dir
from trans3dhead.data.errors import DatasetError

__all__ = ["AFLW2000Dataset", "DAD3DHeadsDataset", "DatasetError", "build_dataset", "ensure_synthheads",
           "flame_dir_for", "flame_model_of", "mean_landmarks"]

SPLITS = ("train", "val", "test")


def _roots(cfg: DataConfig) -> tuple[Path, Path, Path]:
    """(DAD-3DHeads root, AFLW2000 root, FLAME folder) for a data config."""
    if cfg.benchmark == "synthheads":
        root = ensure_synthheads(cfg)
        return root / "dad3dheads", Path(cfg.aflw_root or root / "aflw2000"), Path(cfg.flame_dir or root / "flame")
    if not cfg.flame_dir:
        raise DatasetError("data.flame_dir is empty: the dad3dheads benchmark needs a FLAME folder "
                           "(make one with python -m trans3dhead.flame.convert)")
    return Path(cfg.root), Path(cfg.aflw_root), Path(cfg.flame_dir)


def flame_dir_for(cfg: DataConfig) -> Path:
    """The FLAME folder of a data config: ``data.flame_dir``, or for SynthHeads its generated ``flame/`` (so
    the set is generated first if it is not cached); dad3dheads without ``flame_dir`` raises DatasetError."""
    return _roots(cfg)[2]


@contextmanager
def flame_model_of(cfg: DataConfig) -> Iterator[Path]:
    """:func:`flame_dir_for`, without generating SynthHeads when it is not cached: for what needs the model
    but no image (an efficiency measurement), its procedural FLAME assets are written to a temporary folder
    (seconds; the whole set takes minutes)."""
    if cfg.benchmark != "synthheads" or cfg.flame_dir or (synth_dir(cfg) / MARKER).is_file():
        yield flame_dir_for(cfg)
        return
    from trans3dhead.data.synth.head_model import write_assets     # the set's own assets (seed 0)

    with tempfile.TemporaryDirectory(prefix="flame-") as scratch:
        yield write_assets(Path(scratch) / "flame", seed=0)


def build_dataset(cfg: DataConfig, dataset: str, split: str, train: bool, seed: int = 0) -> Dataset:
    """``dataset`` 'dad3dheads' (split train|val|test) or 'aflw2000' (its single split)."""
    dad_root, aflw_root, flame_dir = _roots(cfg)
    if dataset == "aflw2000":
        return AFLW2000Dataset(aflw_root, cfg.image_size)
    if dataset != "dad3dheads":
        raise DatasetError(f"dataset {dataset!r}: use dad3dheads or aflw2000")
    if split not in SPLITS:
        raise DatasetError(f"split {split!r}: use one of {list(SPLITS)}")
    split_dir = dad_root / split
    if not split_dir.is_dir():
        raise DatasetError(f"DAD-3DHeads split folder {split_dir} is missing; set data.root to the "
                           "DAD-3DHeadsDataset folder")
    return DAD3DHeadsDataset(split_dir, flame_dir, cfg.image_size, train=train, seed=seed,
                             cache_in_memory=cfg.cache_in_memory)


def mean_landmarks(dataset: DAD3DHeadsDataset) -> np.ndarray:
    """Paper eq. 4: F_a = mean of the GT 68 landmarks of the training set, in crop units."""
    return np.mean([dataset.landmarks_in_crop(i) for i in range(len(dataset))], axis=0)
