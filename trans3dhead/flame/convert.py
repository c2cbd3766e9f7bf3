"""Convert the licensed FLAME model + DAD-3DHeads static files into a plain-numpy FLAME folder.

    python -m trans3dhead.flame.convert --src generic_model.pkl --static-dir DAD_STATIC --out DIR

``--src`` is FLAME's pickle (``generic_model.pkl`` / ``FLAME_NEUTRAL.pkl``), which stores chumpy
arrays and a scipy sparse ``J_regressor``; it is read without chumpy (see :mod:`.io`).
``--static-dir`` is DAD-3DHeads' ``model_training/model/static`` folder (``flame_indices/``; the
landmark embeddings ``flame_static_embedding.pkl`` and ``flame_dynamic_embedding.npy`` are taken
from it, or else from next to ``--src``). DIR then holds the layout of :mod:`.io`, readable by
smplx and by this project on numpy 2; set ``data.flame_dir`` to it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from trans3dhead.atomic import folder_problem
from trans3dhead.cli import guarded
from trans3dhead.flame import io


def _find(name: str, folders: list[Path]) -> Path:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise io.MissingFlameFileError(f"{name} not found in {', '.join(map(str, folders))}; it ships with "
                                   f"DAD-3DHeads (model_training/model/static) and with FLAME's landmark embeddings")


def convert(src: str | Path, static_dir: str | Path, out: str | Path) -> Path:
    """Write the plain-numpy FLAME folder ``out`` from the licensed pickle and the static files."""
    src, static_dir, out = Path(src), Path(static_dir), Path(out)
    model = io.load_model(src, allow_chumpy=True)
    plain = {key: np.asarray(model[key]) for key in io.MODEL_KEYS}
    plain["f"] = plain["f"].astype(np.int64)
    plain["J_regressor"] = plain["J_regressor"].astype(np.float64)
    n_vertices = plain["v_template"].shape[0]
    if plain["shapedirs"].ndim != 3 or plain["shapedirs"].shape[:2] != (n_vertices, 3):
        raise io.FlameAssetError(f"{src}: shapedirs has shape {plain['shapedirs'].shape}, expected ({n_vertices}, 3, K)")
    if plain["shapedirs"].shape[2] < 400:
        raise io.FlameAssetError(f"{src}: {plain['shapedirs'].shape[2]} shape+expression components; the 413-value "
                                 f"layout needs FLAME 2020 or later (300 shape + 100 expression)")

    search = [static_dir, static_dir.parent, src.parent]
    static_faces, static_bary = io.load_static_embedding(_find(io.STATIC_EMBEDDING_FILE, search))
    dynamic_faces, dynamic_bary = io.load_dynamic_embedding(_find(io.DYNAMIC_EMBEDDING_FILE, search))
    subsets = {}
    for name in io.SUBSET_NAMES:
        path = _find(f"{name}.npy", [static_dir / io.INDEX_DIR, static_dir])
        subsets[name] = io.load_subset(path)
        if subsets[name].max() >= n_vertices:
            raise io.FlameAssetError(f"{path}: indices beyond the model's {n_vertices} vertices")

    (out / io.INDEX_DIR).mkdir(parents=True, exist_ok=True)
    io.write_pickle(out / io.MODEL_FILE, plain)
    io.write_pickle(out / io.STATIC_EMBEDDING_FILE, {"lmk_face_idx": static_faces, "lmk_b_coords": static_bary})
    np.save(out / io.DYNAMIC_EMBEDDING_FILE, {"lmk_face_idx": dynamic_faces, "lmk_b_coords": dynamic_bary},
            allow_pickle=True)
    for name, indices in subsets.items():
        np.save(out / io.INDEX_DIR / f"{name}.npy", indices)
    return out


def main(argv: list[str] | None = None) -> int:
    """The CLI of :func:`convert`; returns the exit status (``trans3dhead.cli``: 2 bad input, 1 write failed)."""
    parser = argparse.ArgumentParser(description="Convert the licensed FLAME pickle (chumpy) to plain numpy.")
    parser.add_argument("--src", required=True, help="FLAME model pickle (generic_model.pkl)")
    parser.add_argument("--static-dir", required=True, help="DAD-3DHeads model_training/model/static folder")
    parser.add_argument("--out", required=True, help="output FLAME folder")
    args = parser.parse_args(argv)

    def body() -> int:
        if not Path(args.src).is_file():
            raise io.MissingFlameFileError(f"--src {args.src} is not a file: name FLAME's generic_model.pkl")
        if not Path(args.static_dir).is_dir():
            raise io.MissingFlameFileError(f"--static-dir {args.static_dir} is not a folder: name DAD-3DHeads' "
                                           "model_training/model/static")
        if problem := folder_problem(Path(args.out), "--out"):
            raise io.FlameAssetError(problem)
        print(f"wrote plain-numpy FLAME folder {convert(args.src, args.static_dir, args.out)}")
        return 0
    return guarded(body, (io.FlameAssetError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
