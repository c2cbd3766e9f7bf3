"""Has a run converged, and has a row? The relative change of validation NME over the last part of training,
read from a Theil-Sen line (docs/statistics.md, "What a row's cell is"; the reports' "converged" column and `bench
convergence` both use it). A row is tested on its seed-mean curve (``row_window_change``): its cells average its
seeds, and one seed's curve is too noisy to decide alone (docs/profiles.md, "DAD-3DNet at 64 epochs")."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

# Convergence: validation NME moved by less than TOL (relative) over the last WINDOW of training, "moved" read
# from a Theil-Sen line through the window's validation points (``window_change``).
CONVERGENCE_WINDOW = 0.2
CONVERGENCE_TOL = 0.02


def _progress_axis(curves: list[pd.DataFrame]) -> str:
    """Training progress is read from ``step`` when every curve has it at every point, else from ``epoch``."""
    return "step" if all("step" in c and c["step"].notna().all() for c in curves) else "epoch"


def window_change(curve: pd.DataFrame | None, window: float = CONVERGENCE_WINDOW) -> float | None:
    """Relative change of validation NME over the last ``window`` of training, read from a Theil-Sen line
    (``scipy.stats.theilslopes``) through the window's validation points and the last point before it:
    (line at the end - line at the window's start) / |line at the start|.

    A line, not the two end points: a curve whose epoch-to-epoch noise is as large as the tolerance (DAD-3DNet's
    validation NME jumps by 3-5% between epochs at the dropped lr) would pass or fail the end-point test by the
    luck of its last epoch, and the median of pairwise slopes ignores a single outlying epoch. Training progress
    is read from ``step`` (``epoch`` when absent). None when the curve cannot tell: no curve, fewer than three
    validation points, or a window that starts before the first one; NaN when a point in the window is not finite.
    """
    if curve is None or "val_nme" not in curve:
        return None
    axis = _progress_axis([curve])
    points = curve.dropna(subset=["val_nme"]).sort_values(axis)
    if len(points) < 3:
        return None
    progress, nme = points[axis].to_numpy(dtype=float), points["val_nme"].to_numpy(dtype=float)
    window_start = progress[-1] * (1.0 - window)
    if window_start < progress[0]:
        return None
    first = int(np.searchsorted(progress, window_start, side="right")) - 1      # the last point at or before it
    progress, nme = progress[first:], nme[first:]
    if not np.isfinite(nme).all():
        return math.nan
    slope, intercept, _, _ = stats.theilslopes(nme, progress)
    start, end = intercept + slope * window_start, intercept + slope * progress[-1]
    if start == 0:
        return 0.0 if end == 0 else math.inf
    return float((end - start) / abs(start))


def mean_curve(curves: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    """The seeds' mean validation NME at each point where every curve has one (what a row's cells average).
    None when a curve is missing or the curves share fewer than three points."""
    if not curves or any(c is None or "val_nme" not in c for c in curves):
        return None
    axis = _progress_axis(curves)
    per_seed = [c.dropna(subset=["val_nme"]).groupby(axis)["val_nme"].mean() for c in curves]
    joined = pd.concat(per_seed, axis=1, join="inner")
    if len(joined) < 3:
        return None
    return pd.DataFrame({axis: joined.index.to_numpy(), "val_nme": joined.mean(axis=1).to_numpy()})


def row_window_change(curves: list[pd.DataFrame | None], window: float = CONVERGENCE_WINDOW) -> float | None:
    """``window_change`` of the seed-mean curve (``mean_curve``): the test a row's "converged" cell reads."""
    return window_change(mean_curve(curves), window)


def converged(curve: pd.DataFrame | None, window: float = CONVERGENCE_WINDOW,
              tol: float = CONVERGENCE_TOL) -> bool | None:
    """Did validation NME change by less than ``tol`` (relative) over the last ``window`` of training?
    None when the curve cannot tell (see ``window_change``)."""
    return change_within(window_change(curve, window), tol)


def change_within(change: float | None, tol: float = CONVERGENCE_TOL) -> bool | None:
    """The convergence test on a ``window_change`` value: None stays None, NaN is not converged."""
    if change is None:
        return None
    return bool(np.isfinite(change) and abs(change) <= tol)
