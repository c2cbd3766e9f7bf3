"""Live curves for TensorBoard: each run writes its scalars under ``<workdir>/tensorboard/``, so
``tensorboard --logdir work/<profile>`` shows every run of a table while it trains.

Written once per epoch, after the checkpoint, from values the loop already has on the host (the epoch's
row of ``curve.csv``); the loss terms are the epoch's last step's, read in the same transfer. Nothing here
touches an RNG, so a run computes the same with or without it.
"""
from __future__ import annotations

from pathlib import Path

import torch

BOARD_DIR = "tensorboard"


class EpochBoard:
    """A ``SummaryWriter`` opened on first use (resuming appends a new event file to the same folder)."""

    def __init__(self, workdir: Path):
        self.folder = Path(workdir) / BOARD_DIR
        self._writer = None

    def write(self, row: dict, terms: dict[str, torch.Tensor], images_per_s: float) -> None:
        """One epoch: ``row`` is the curve's (``step``, ``train_loss``, ``lr``, ``val_nme``)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter    # imports tensorboard: only when a run trains
            self._writer = SummaryWriter(str(self.folder))
        step = int(row["step"])
        scalars = {"train/loss": row["train_loss"], "train/lr": row["lr"], "train/images_per_s": images_per_s}
        if row["val_nme"] == row["val_nme"]:                       # NaN: no validation this epoch
            scalars["val/nme"] = row["val_nme"]
        names = [name for name in terms if name != "total"]
        values = torch.stack([terms[name].detach().float() for name in names]).tolist() if names else []
        scalars.update({f"loss_terms/{name}": value for name, value in zip(names, values)})
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
