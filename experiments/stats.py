"""Statistics of the reports: intervals over seeds, paired deltas over images, verdicts, convergence.

Every bootstrap uses a fixed random_state, so a report regenerated from the same results is
byte-for-byte identical.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
RANDOM_STATE = 0
HOLDS, REVERSED, NOISE, NO_CLAIM = "holds", "reversed", "not distinguishable from noise", "paper shows no change"


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float
    n: int


def _bootstrap_mean(values: np.ndarray) -> tuple[float, float]:
    if len(values) < 2 or np.allclose(values, values[0]):
        return (float(values[0]), float(values[0])) if len(values) >= 2 else (np.nan, np.nan)
    res = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES,
                          method="percentile", random_state=RANDOM_STATE)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def seed_summary(values) -> Interval:
    """Mean over seeds with a 95% bootstrap interval (NaN bounds with a single seed)."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return Interval(np.nan, np.nan, np.nan, 0)
    lo, hi = _bootstrap_mean(values)
    return Interval(float(values.mean()), lo, hi, len(values))


def paired_delta(before: pd.Series, after: pd.Series) -> Interval:
    """Mean of (after - before) over the images both were scored on, with a paired 95% bootstrap
    interval; ``before``/``after`` are per-image values indexed by item id (already averaged over seeds)."""
    joined = pd.concat([before.rename("a"), after.rename("b")], axis=1, join="inner").dropna()
    diff = (joined["b"] - joined["a"]).to_numpy()
    if len(diff) == 0:
        return Interval(np.nan, np.nan, np.nan, 0)
    lo, hi = _bootstrap_mean(diff)
    return Interval(float(diff.mean()), lo, hi, len(diff))


def verdict(delta: Interval, paper_delta: float) -> str:
    """Does our change go the paper's way? Noise when the interval covers zero."""
    if not np.isfinite(paper_delta) or paper_delta == 0:
        return NO_CLAIM
    if not np.isfinite(delta.value) or not np.isfinite(delta.lo) or delta.lo <= 0 <= delta.hi:
        return NOISE
    return HOLDS if np.sign(delta.value) == np.sign(paper_delta) else REVERSED


def converged(curve: pd.DataFrame | None, window: float = 0.2, tol: float = 0.02) -> bool | None:
    """Val NME moved by less than ``tol`` (relative) over the last ``window`` of training.

    None when the curve is too short to tell (fewer than 3 validation points).
    """
    if curve is None or "val_nme" not in curve:
        return None
    points = curve.dropna(subset=["val_nme"])
    if len(points) < 3:
        return None
    last_epoch = points["epoch"].max()
    start_epoch = last_epoch - max(1.0, window * last_epoch)
    start = points[points["epoch"] <= start_epoch]
    reference = float(start["val_nme"].iloc[-1]) if len(start) else float(points["val_nme"].iloc[0])
    final = float(points["val_nme"].iloc[-1])
    return bool(abs(final - reference) / max(abs(reference), 1e-12) < tol)
