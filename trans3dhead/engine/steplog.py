"""Per-step bookkeeping that never waits for the device: the loss log and the non-finite check.

Reading a tensor on the host (``float(t)``, ``.item()``, ``bool(t)``) waits for every queued kernel,
which on a GPU leaves it idle once per step. Instead each step's loss and non-finite flags are
accumulated on the device and read in one transfer every ``sync_every`` steps and at the end of each
epoch (before its checkpoint is written, so a non-finite loss never reaches a checkpoint).
"""
from __future__ import annotations

import os
from typing import Protocol

import torch

# The reliability tests' fault hook, kept out of the run config so that no run id carries it: ``STEP`` makes
# every run's loss NaN at that step (counted from 0 over the run), ``STEP@RUN`` only the run whose work folder
# is named RUN (the run id, under the suite). An environment variable, so that it reaches a run started through
# the command line or in a job's subprocess.
INJECT_NAN_ENV = "T3H_INJECT_NAN_AT_STEP"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; names the step range, the first bad step, its epoch and its terms."""


def nan_injection_step(run_name: str) -> int | None:
    """The step at which ``train`` adds a NaN to run ``run_name``'s loss (``$T3H_INJECT_NAN_AT_STEP``), or None."""
    raw = os.environ.get(INJECT_NAN_ENV, "").strip()
    if not raw:
        return None
    step, _, only = raw.partition("@")
    try:
        at = int(step)
    except ValueError:
        raise ValueError(f"{INJECT_NAN_ENV}={raw!r}: give STEP or STEP@RUN (a step number), or unset it") from None
    return at if not only or only == run_name else None


class PhaseClock(Protocol):
    """Timing hook of the training loop (``experiments.bench train`` passes one)."""

    def lap(self, phase: str) -> None:
        """The time since the previous lap was spent in ``phase``."""

    def end_step(self, step: int) -> None:
        """``step`` is complete."""


class NoClock:
    """The default hook: costs one method call per phase."""

    def lap(self, phase: str) -> None:
        pass

    def end_step(self, step: int) -> None:
        pass


class StepLog:
    """Loss values and non-finite flags of one epoch, kept on ``device`` until ``read``."""

    def __init__(self, device: torch.device, steps_per_epoch: int):
        self.device = device
        self.losses = torch.zeros(steps_per_epoch, device=device)
        self._reset_window(None)

    def _reset_window(self, first_step: int | None) -> None:
        self.window_start = first_step
        self.first_bad_step = torch.full((), -1, dtype=torch.int64, device=self.device)
        self.first_bad_terms: dict[tuple[str, ...], torch.Tensor] = {}     # term names -> flags at first bad step

    def record(self, index: int, step: int, terms: dict[str, torch.Tensor]) -> None:
        """Step ``step`` (``index`` within its epoch) gave ``terms``; queues device ops only."""
        if self.window_start is None:
            self.window_start = step
        self.losses[index] = terms["total"].detach()
        names = tuple(terms)
        bad = ~torch.isfinite(torch.stack([value.detach().float() for value in terms.values()]))
        fresh = bad.any() & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(fresh, step, self.first_bad_step)
        previous = self.first_bad_terms.get(names, torch.zeros_like(bad))
        self.first_bad_terms[names] = torch.where(fresh, bad, previous)

    def read(self, last_index: int, last_step: int, epoch: int, epoch_end: bool, checkpoint: str) -> dict:
        """One host transfer: the last step's loss, the epoch's mean loss (at ``epoch_end``) and the
        flags. Raises :class:`NonFiniteLossError` when a step of the window was not finite."""
        flag_sets = list(self.first_bad_terms.items())
        mean = self.losses[: last_index + 1].double().mean()
        values = torch.cat([torch.stack([self.losses[last_index].double(), mean, self.first_bad_step.double()]),
                            *(flags.double() for _, flags in flag_sets)]).tolist()
        first_bad = int(values[2])
        if first_bad >= 0:
            flags, offset = values[3:], 0
            bad_terms = []
            for names, _ in flag_sets:
                bad_terms += [name for name, flag in zip(names, flags[offset:offset + len(names)]) if flag]
                offset += len(names)
            named = [n for n in dict.fromkeys(bad_terms) if n != "total"] or ["total"]
            raise NonFiniteLossError(
                f"non-finite loss in steps {self.window_start}-{last_step} (epoch {epoch}), first at step {first_bad} "
                f"in term(s) {named}; the checkpoint of the last completed epoch ({checkpoint}) is intact. "
                "Lower train.lr, set train.grad_clip, or check the data")
        self._reset_window(None)
        return {"loss": values[0], "epoch_loss": values[1] if epoch_end else None}
