"""Atomic checkpoints with everything a bit-exact resume needs."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from trans3dhead.atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file."""


def atomic_save(obj: object, path: Path) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: a killed job never
    leaves a half-written checkpoint, and the previous one survives until the new one is whole."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path) -> dict:
    """The checkpoint dict at ``path``, loaded onto the CPU; a missing or unreadable file raises
    :class:`CheckpointError` naming it. Not weights-only: it holds the config, the curve and RNG states."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train the run first "
                              "(python -m experiments.run TABLE) or check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a truncated/corrupt file
        raise CheckpointError(f"checkpoint {path} is unreadable ({err}); delete it to retrain from scratch") from err


def rng_state() -> dict:
    """The torch, numpy and Python RNG states (and every CUDA device's, when visible), saved in each
    checkpoint so that a resumed run draws the same numbers as an uninterrupted one."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Restores the states of :func:`rng_state`; the CUDA ones only when saved and CUDA is visible."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
