"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The data goes to a uniquely named temporary file in the target's folder (same file system, so the
final ``os.replace`` is atomic), is fsynced, then renamed into place. On any error (a full disk
included) the temporary file is removed, so a failed write never leaves litter that keeps a disk
full, and the error names the target path.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np


class DiskFullError(OSError):
    """No space left while writing a file; the message names it (errno ENOSPC / EDQUOT)."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(err, DiskFullError):
            raise DiskFullError(err.errno, f"no space left on the device writing {path}", str(path)) from err
        if isinstance(err, RuntimeError) and _is_torch_write_failure(err):
            raise DiskFullError(errno.ENOSPC, f"cannot write {path} (torch.save: {str(err).splitlines()[0][:200]}); "
                                f"is its disk full? free space there or move it", str(path)) from err
        raise
    return path


def _is_torch_write_failure(err: RuntimeError) -> bool:
    """torch.save's zip writer reports a failed write (a full disk) as a RuntimeError with no path."""
    text = str(err)
    return "PytorchStreamWriter failed" in text or ("inline_container" in text and "write" in text)


@contextlib.contextmanager
def naming_folder(folder: str | Path, what: str):
    """Inside it, a full disk (or another OSError that names no file) becomes an error naming ``folder``
    and the option that chose it: the reason alone ('No space left on device') does not say where."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(err.errno, f"no space left on the device writing under {what} {folder} "
                                f"({err.filename or 'a file there'}); free space there or point {what} elsewhere",
                                str(err.filename or folder)) from err
        if err.filename is None:
            raise type(err)(err.errno, f"{err.strerror or err} (writing under {what} {folder})", str(folder)) from err
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (:func:`atomic_write`); returns ``path`` as a Path."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically, UTF-8 encoded; returns ``path`` as a Path."""
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: object, **dumps_kwargs) -> Path:
    """Serialises first (a TypeError leaves the old file untouched); numpy values become plain JSON."""
    options = {"indent": 1, "sort_keys": True, **dumps_kwargs}
    return atomic_write_text(path, json.dumps(obj, default=_jsonable, **options) + "\n")


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def describe_os_error(err: OSError) -> str:
    """'<reason>: <path>' for a CLI message (an OSError's str() may lack the path or repeat it)."""
    reason = err.strerror or str(err)
    path = err.filename if err.filename is not None else ""
    return f"{reason}: {path}" if path and str(path) not in reason else reason


def folder_problem(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be (created and) written as a folder, or None."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{what} {path} is not a folder"
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{what} {path}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{what} {path}: {existing} is read-only"
    return None
