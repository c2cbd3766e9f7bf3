"""A split's annotations parsed once into one memory-mapped array, shared by every run that reads the split.

A DAD-3DHeads annotation is a JSON file of about 90 KB (the mesh's vertices as text); parsing one takes about
6 ms, so every run that reads 1600 training and 2000 evaluation items spent some 20 s in ``json.loads``
before this cache. The first reader parses every annotation of the split (through the dataset's own checks, so
a bad file fails with the same message) and writes ``.t3h-annotations-<key>.npy`` beside the split: one float64
row per item (vertices, model-view and projection matrices, exactly the values JSON gives). Later readers map
it. The key covers the split file and the annotation files' sizes and times, so an edited file gets a new
cache. A reader that cannot write the file (a read-only copy of the real data) keeps its parsed copy in memory.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

MATRICES = 32                       # model-view (16) and projection (16) values after the vertices


def cache_key(split_file: Path, annotation_files: list[Path]) -> str:
    """What the cached values depend on: each file's path, size and modification time."""
    digest = hashlib.sha1()
    for path in (split_file, *annotation_files):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


def load_or_build(split_dir: Path, key: str, n_items: int, n_vertices: int,
                  parse: Callable[[int], dict[str, np.ndarray]]) -> np.ndarray:
    """The ``(n_items, 3 * n_vertices + 32)`` array of the split's annotations, mapped read-only; built with
    ``parse(index)`` on first use (in memory when the folder cannot take the file)."""
    path = split_dir / f".t3h-annotations-{key}.npy"
    width = 3 * n_vertices + MATRICES
    if path.is_file():
        try:
            rows = np.load(path, mmap_mode="r")
            if rows.shape == (n_items, width) and rows.dtype == np.float64:
                return rows
        except (OSError, ValueError):
            pass                    # a damaged cache is rebuilt below
    rows = np.empty((n_items, width))
    for index in range(n_items):
        ann = parse(index)
        rows[index] = np.concatenate([ann["vertices"].ravel(), ann["model_view"].ravel(), ann["projection"].ravel()])
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(dir=split_dir, prefix=path.name, suffix=".partial")
        with os.fdopen(handle, "wb") as out:
            np.save(out, rows)
        os.replace(tmp, path)       # concurrent builders write the same values: the last rename wins
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return rows                 # read-only or full: this reader keeps its parsed copy
    return np.load(path, mmap_mode="r")


def unpack(row: np.ndarray, n_vertices: int) -> dict[str, np.ndarray]:
    """One item's row -> ``{"vertices" (V, 3), "model_view" (4, 4), "projection" (4, 4)}`` (float64 copies)."""
    vertices = 3 * n_vertices
    return {"vertices": np.array(row[:vertices]).reshape(n_vertices, 3),
            "model_view": np.array(row[vertices:vertices + 16]).reshape(4, 4),
            "projection": np.array(row[vertices + 16:vertices + 32]).reshape(4, 4)}
