"""Reading a FLAME folder: file names, safe unpickling, and errors that say how to fix them.

A FLAME folder (real or procedural) holds, with the names smplx and DAD-3DHeads use:

* ``FLAME_NEUTRAL.pkl``: plain-numpy pickle with ``v_template (V,3)``, ``f (F,3)``,
  ``shapedirs (V,3,400)`` (300 shape + 100 expression), ``posedirs (V,3,36)``,
  ``J_regressor (5,V)``, ``weights (V,5)``, ``kintree_table (2,5)``;
* ``flame_static_embedding.pkl``: ``lmk_face_idx (51,)``, ``lmk_b_coords (51,3)``;
* ``flame_dynamic_embedding.npy``: a pickled dict, ``lmk_face_idx (79,17)``,
  ``lmk_b_coords (79,17,3)``; row 0 is the frontal contour (facts section 3);
* ``flame_indices/{face,head,face_w_ears}.npy``: vertex subsets (DAD-3DHeads static folder).

The licensed FLAME pickle stores chumpy objects; chumpy does not import on numpy 2, so the
loader here never imports it. It reads pickles through an allow-list unpickler that can map
chumpy arrays to numpy (used by ``python -m trans3dhead.flame.convert``) and otherwise
refuses them with a message naming the converter.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

MODEL_FILE = "FLAME_NEUTRAL.pkl"
STATIC_EMBEDDING_FILE = "flame_static_embedding.pkl"
DYNAMIC_EMBEDDING_FILE = "flame_dynamic_embedding.npy"
INDEX_DIR = "flame_indices"
SUBSET_NAMES = ("face", "head", "face_w_ears")
MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
CONVERT_HINT = ("convert the licensed model once with `python -m trans3dhead.flame.convert "
                "--src generic_model.pkl --static-dir DAD_3DHEADS_STATIC --out DIR` and point "
                "data.flame_dir at DIR (or leave it empty to use the procedural assets)")


class FlameAssetError(ValueError):
    """A FLAME folder is incomplete or in a format we cannot read; the message names file and fix."""


class MissingFlameFileError(FlameAssetError, FileNotFoundError):
    """A file the FLAME folder must hold is absent."""


class ChumpyPickleError(FlameAssetError):
    """The model pickle holds chumpy objects (the licensed original); it must be converted first."""


def required_files(flame_dir: str | Path) -> list[Path]:
    """Every file a FLAME folder must hold (layout in the module docstring), as paths under ``flame_dir``."""
    flame_dir = Path(flame_dir)
    return ([flame_dir / MODEL_FILE, flame_dir / STATIC_EMBEDDING_FILE, flame_dir / DYNAMIC_EMBEDDING_FILE]
            + [flame_dir / INDEX_DIR / f"{name}.npy" for name in SUBSET_NAMES])


def check_flame_dir(flame_dir: str | Path) -> None:
    """Raise :class:`MissingFlameFileError` naming every missing file of a FLAME folder."""
    flame_dir = Path(flame_dir)
    if not flame_dir.is_dir():
        raise MissingFlameFileError(
            f"FLAME folder {flame_dir} does not exist; generate procedural assets with "
            f"`python -m trans3dhead.data.synth.head_model --out {flame_dir}` or {CONVERT_HINT}")
    missing = [str(p) for p in required_files(flame_dir) if not p.is_file()]
    if missing:
        raise MissingFlameFileError(
            f"FLAME folder {flame_dir} lacks {', '.join(missing)}; regenerate it with "
            f"`python -m trans3dhead.data.synth.head_model --out {flame_dir}` (procedural) or {CONVERT_HINT}")


# ----------------------------------------------------------------------------- safe unpickling
class _Captured:
    """Stands in for a foreign class (chumpy, scipy.sparse): keeps the pickled state only."""

    module = ""
    name = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _captured_class(module: str, name: str) -> type:
    return type(f"Captured_{name}", (_Captured,), {"module": module, "name": name})


_ALLOWED = {
    ("copyreg", "_reconstructor"), ("_codecs", "encode"), ("builtins", "object"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "slice"), ("builtins", "complex"), ("builtins", "dict"), ("builtins", "list"),
    ("builtins", "tuple"), ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _AllowListUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers only; chumpy / scipy.sparse objects are captured."""

    def __init__(self, file, path: Path, allow_chumpy: bool):
        super().__init__(file, encoding="latin1")
        self.path = path
        self.allow_chumpy = allow_chumpy

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)   # pickles written by Python 2 (FLAME's) or protocol 2
        if module.split(".")[0] == "chumpy":
            if not self.allow_chumpy:
                raise ChumpyPickleError(
                    f"{self.path} is the original FLAME pickle: it stores chumpy objects ({module}.{name}), "
                    f"which cannot be loaded on numpy 2; {CONVERT_HINT}")
            return _captured_class(module, name)
        if module.startswith("scipy.sparse"):
            return _captured_class(module, name)
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise FlameAssetError(f"{self.path}: refusing to unpickle {module}.{name}; a FLAME file holds only "
                              f"numpy arrays (and chumpy / scipy.sparse in the licensed original)")


def _to_numpy(value: Any, where: str) -> Any:
    """Replace captured chumpy arrays and sparse matrices by dense numpy arrays, recursively."""
    if isinstance(value, _Captured):
        state = value.state if isinstance(getattr(value, "state", None), dict) else {}
        if value.module.startswith("scipy.sparse"):
            shape = state.get("_shape", state.get("shape"))
            fmt = value.name[:3]
            if fmt not in ("csc", "csr", "coo") or shape is None:
                raise FlameAssetError(f"{where}: unsupported sparse matrix {value.module}.{value.name}")
            if fmt == "coo":
                matrix = scipy.sparse.coo_matrix((state["data"], (state["row"], state["col"])), shape=shape)
            else:
                cls = scipy.sparse.csc_matrix if fmt == "csc" else scipy.sparse.csr_matrix
                matrix = cls((state["data"], state["indices"], state["indptr"]), shape=shape)
            return np.asarray(matrix.toarray())
        if "x" in state:  # chumpy.Ch: a leaf that wraps an ndarray in its 'x' term
            return np.asarray(_to_numpy(state["x"], where))
        raise FlameAssetError(f"{where}: unsupported chumpy expression {value.module}.{value.name} "
                              f"(only plain chumpy arrays can be converted)")
    if isinstance(value, dict):
        return {k: _to_numpy(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v, where) for v in value)
    return value


def read_pickle(path: str | Path, allow_chumpy: bool = False) -> Any:
    """Unpickle a FLAME-folder file without importing chumpy; chumpy arrays become numpy if allowed."""
    path = Path(path)
    if not path.is_file():
        raise MissingFlameFileError(f"{path} does not exist; {CONVERT_HINT}")
    with open(path, "rb") as fh:
        try:
            raw = _AllowListUnpickler(fh, path, allow_chumpy).load()
        except FlameAssetError:
            raise
        except Exception as exc:  # truncated or foreign file: say which one
            raise FlameAssetError(f"{path} is not a readable FLAME pickle ({type(exc).__name__}: {exc})") from exc
    return _to_numpy(raw, str(path))


def _require_keys(data: Any, keys: tuple[str, ...], path: Path) -> dict:
    if not isinstance(data, dict):
        raise FlameAssetError(f"{path}: expected a dict, found {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise FlameAssetError(f"{path} lacks the key(s) {missing} (has {sorted(map(str, data))}); "
                              f"regenerate the folder or {CONVERT_HINT}")
    return data


def load_model(path: str | Path, allow_chumpy: bool = False) -> dict[str, np.ndarray]:
    """The model pickle as plain numpy arrays (keys :data:`MODEL_KEYS`)."""
    path = Path(path)
    data = _require_keys(read_pickle(path, allow_chumpy=allow_chumpy), MODEL_KEYS, path)
    return {k: np.asarray(v) for k, v in data.items() if isinstance(v, (np.ndarray, np.generic, list))}


def load_static_embedding(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(lmk_face_idx (51,), lmk_b_coords (51,3))`` of the static landmark embedding."""
    path = Path(path)
    data = _require_keys(read_pickle(path), ("lmk_face_idx", "lmk_b_coords"), path)
    return np.asarray(data["lmk_face_idx"], dtype=np.int64), np.asarray(data["lmk_b_coords"], dtype=np.float64)


def load_dynamic_embedding(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(lmk_face_idx (79,17), lmk_b_coords (79,17,3))``; row 0 is the frontal contour."""
    path = Path(path)
    if not path.is_file():
        raise MissingFlameFileError(f"{path} does not exist; {CONVERT_HINT}")
    try:
        data = np.load(path, allow_pickle=True, encoding="latin1")[()]
    except Exception as exc:
        raise FlameAssetError(f"{path} is not a readable dynamic embedding ({type(exc).__name__}: {exc})") from exc
    data = _require_keys(data, ("lmk_face_idx", "lmk_b_coords"), path)
    return np.asarray(data["lmk_face_idx"], dtype=np.int64), np.asarray(data["lmk_b_coords"], dtype=np.float64)


def load_subset(path: str | Path) -> np.ndarray:
    """A vertex-index file of ``flame_indices/`` as int64."""
    path = Path(path)
    if not path.is_file():
        raise MissingFlameFileError(f"{path} does not exist; the FLAME folder needs flame_indices/"
                                    f"{{{','.join(SUBSET_NAMES)}}}.npy (DAD-3DHeads static folder)")
    return np.asarray(np.load(path, allow_pickle=False), dtype=np.int64).reshape(-1)


def write_pickle(path: str | Path, data: Any) -> None:
    """Write a plain pickle (protocol 2, readable by smplx's ``pickle.load(..., encoding='latin1')``)."""
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
