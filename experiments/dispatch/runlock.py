"""One run, one owner: an exclusive ``flock`` on ``<work_dir>/run.lock``, held by the job that trains it.

The OS releases the lock when the holder dies (kill -9 included), so a held lock means a live job and a
free one a finished or dead job; no stale lock is ever left to clean up. The file records the holder's
pid and host for ``status``. (On a cluster the work folder must be on a file system with working
``flock``, as NFSv4 and Lustre provide.)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from pathlib import Path
from typing import Iterator

from experiments.store import LOCK_NAME, describe_holder


def lock_path(work_dir: Path) -> Path:
    return Path(work_dir) / LOCK_NAME


@contextlib.contextmanager
def hold(work_dir: Path, on_wait=None) -> Iterator[None]:
    """Holds the run's lock for the block; waits while another job holds it (``on_wait(holder)`` once)."""
    path = lock_path(work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(_read_holder(path))
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": platform.node(), "since": time.time()}))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def holder(work_dir: Path) -> dict | None:
    """The live job holding the run's lock (``pid``, ``host``, ``since``), or None when none holds it."""
    path = lock_path(work_dir)
    if not path.is_file():
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _read_holder(path: Path) -> dict:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    return info if isinstance(info, dict) else {}


describe = describe_holder          # "pid P on HOST": the store's words, which ``status`` shows too
