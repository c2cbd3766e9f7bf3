"""Statistics of the reports: intervals over seeds, paired deltas over images, verdicts, convergence.

Two sources of noise separate an ablation's two numbers: which images were evaluated (a paired
bootstrap over the same images measures it) and which seed trained each model (only repeated seeds
measure it). With two or three seeds a row's own spread is a poor estimate (a 2-seed bootstrap
"interval" is just the two values), so the seed-to-seed SD is pooled over every row of a table, as
in a one-way ANOVA, and intervals use Student's t with the pooled degrees of freedom. Without a
repeated seed anywhere in the table, seed noise is unknown and the intervals cover images only.

Every bootstrap draws from a fixed random_state, so a report regenerated from the same results is
byte-for-byte identical.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
RANDOM_STATE = 0

HOLDS = "holds"
REVERSED = "reversed"
NOISE = "not distinguishable from noise"
NO_PAPER_CHANGE = "paper shows no change"       # the paper's two numbers are equal: no direction to check
NO_PAPER_NUMBER = "paper gives no number"       # e.g. only-3DMM has no NME in Table 7
# Convergence: validation NME moved by less than TOL (relative) over the last WINDOW of training, "moved" read
# from a Theil-Sen line through the window's validation points (``window_change``).
CONVERGENCE_WINDOW = 0.2
CONVERGENCE_TOL = 0.02


class SeedSummary(NamedTuple):
    """Mean over seeds and its 95% t-interval from the pooled seed noise; NaN bounds when that is unknown."""
    mean: float
    lo: float
    hi: float


class SeedNoise(NamedTuple):
    """Seed-to-seed SD of a run-level metric, pooled over rows; ``df`` = sum over rows of (seeds - 1)."""
    sd: float
    df: int

    @property
    def known(self) -> bool:
        return self.df >= 1 and np.isfinite(self.sd)


class Delta(NamedTuple):
    """Mean of (after - before) over the images both runs were scored on, with its 95% interval: paired
    over images, and widened by the seed noise when that is known (``with_seed_noise``)."""
    delta: float
    lo: float
    hi: float
    n_items: int
    direction: str                               # "lower" or "higher" is better for this metric
    with_seed_noise: bool = False

    @property
    def better(self) -> bool | None:
        """True: the whole interval is on the better side of 0; False: on the worse side; None: it covers 0."""
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)) or self.lo <= 0 <= self.hi:
            return None
        return (self.hi < 0) == (self.direction == "lower")


def _bootstrap(values: np.ndarray):
    return stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES,
                           method="percentile", random_state=np.random.default_rng(RANDOM_STATE))


def bootstrap_mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (NaN for < 2 values; a point for constant values,
    where scipy's resampling is degenerate)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = _bootstrap(values)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)


def pooled_seed_noise(groups) -> SeedNoise:
    """Pools the within-row spread of per-seed values over rows (each row's deviations from its own
    mean); rows with one finite value add nothing."""
    squares, df = 0.0, 0
    for values in groups:
        finite = _finite(values)
        if len(finite) >= 2:
            squares += float(((finite - finite.mean()) ** 2).sum())
            df += len(finite) - 1
    return SeedNoise(math.sqrt(squares / df) if df else math.nan, df)


def _t(df: int) -> float:
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def seed_summary(values, noise: SeedNoise | None = None) -> SeedSummary:
    """Mean over the finite per-seed values, ± t(df) * sd / sqrt(seeds) with ``noise`` (the table's pooled
    seed noise; by default this row's own spread). NaN bounds while the noise is unknown."""
    finite = _finite(values)
    if len(finite) == 0:
        return SeedSummary(math.nan, math.nan, math.nan)
    noise = noise if noise is not None else pooled_seed_noise([finite])
    mean = float(finite.mean())
    if not noise.known:
        return SeedSummary(mean, math.nan, math.nan)
    half = _t(noise.df) * noise.sd / math.sqrt(len(finite))
    return SeedSummary(mean, mean - half, mean + half)


def paired_delta(before: pd.Series | pd.DataFrame, after: pd.Series | pd.DataFrame, *, direction: str,
                 noise: SeedNoise | None = None) -> Delta:
    """after - before on the same evaluation images, with a 95% interval.

    ``before``/``after``: per-image values indexed by item id; a DataFrame holds one column per seed
    and is averaged over seeds per image first. Images missing from either side are dropped. Without
    ``noise`` the interval is the paired percentile bootstrap over images. With it, the bootstrap's
    standard error over images and the seed noise of the two seed-averaged means add in quadrature:
    delta ± t(df) * sqrt(se_images² + sd²·(1/seeds_before + 1/seeds_after)).
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', not {direction!r}")
    seeds = [x.shape[1] if isinstance(x, pd.DataFrame) else 1 for x in (before, after)]
    before, after = (x.mean(axis=1) if isinstance(x, pd.DataFrame) else x for x in (before, after))
    joined = pd.concat([before.rename("before"), after.rename("after")], axis=1, join="inner").dropna()
    diff = (joined["after"] - joined["before"]).to_numpy(dtype=float)
    if len(diff) == 0:
        return Delta(math.nan, math.nan, math.nan, 0, direction)
    mean = float(diff.mean())
    if noise is None or not noise.known:
        lo, hi = bootstrap_mean_interval(diff)
        return Delta(mean, lo, hi, len(diff), direction)
    se_images = float(_bootstrap(diff).standard_error) if len(diff) > 1 and np.ptp(diff) > 0 else 0.0
    half = _t(noise.df) * math.sqrt(se_images ** 2 + noise.sd ** 2 * (1 / seeds[0] + 1 / seeds[1]))
    return Delta(mean, mean - half, mean + half, len(diff), direction, with_seed_noise=True)


def verdict(delta: float, lo: float, hi: float, paper_direction: float) -> str:
    """Does our change go the paper's way? ``paper_direction``: the paper's change (only its sign counts).

    "not distinguishable from noise" when our interval covers zero (or is undefined).
    """
    if paper_direction is None or not np.isfinite(paper_direction):
        return NO_PAPER_NUMBER
    if paper_direction == 0:
        return NO_PAPER_CHANGE
    if not all(np.isfinite(x) for x in (delta, lo, hi)) or lo <= 0 <= hi:
        return NOISE
    return HOLDS if np.sign(delta) == np.sign(paper_direction) else REVERSED


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
    axis = "step" if "step" in curve and curve["step"].notna().all() else "epoch"
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


class CrossedDelta(NamedTuple):
    """Mean over seeds and images of per-image differences d[s, i] (variant B - variant A, seed s paired
    across the two variants) and its interval under the crossed model of docs/statistics.md:
    d[s, i] = mu + a_s + b_i + e_si, a ~ (0, s2_seed), b ~ (0, s2_image), e ~ (0, s2_res), so
    Var(mean) = s2_seed/S + s2_image/n + s2_res/(S n)."""
    delta: float
    se: float
    df: float
    n_seeds: int
    n_items: int
    images_only: bool                       # one seed: the seed term cannot be estimated, images only

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        if not (np.isfinite(self.se) and np.isfinite(self.df) and self.df > 0):
            return math.nan, math.nan
        half = float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.delta - half, self.delta + half

    def p_value(self) -> float:
        """Two-sided p of delta = 0 from the same t model (1.0 for a zero delta with zero spread)."""
        if not (np.isfinite(self.se) and np.isfinite(self.df) and self.df > 0):
            return math.nan
        if self.se == 0:
            return 1.0 if self.delta == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.delta) / self.se, self.df))


def crossed_delta(d: np.ndarray) -> CrossedDelta:
    """Two-way ANOVA (seed x image, one value per cell) of the S x n matrix of per-image differences.

    Expected mean squares: E[MS_seed] = n s2_seed + s2_res, E[MS_image] = S s2_image + s2_res,
    E[MS_res] = s2_res, so Var(mean) = (MS_seed + MS_image - MS_res) / (S n). A negative variance
    component is set to zero (MS_seed or MS_image floored at MS_res), which keeps the estimate at least
    max(MS_seed, MS_image, MS_res) / (S n). df by Satterthwaite on that linear combination of mean squares.
    With one seed, Var(mean) = var(d) / n on n - 1 df (images only).
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    n_seeds, n_items = d.shape
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"crossed_delta needs a finite seeds x images matrix, got shape {d.shape} "
                         f"with {int((~np.isfinite(d)).sum())} non-finite values; drop images not scored by every run")
    mean = float(d.mean())
    if n_items < 2:
        return CrossedDelta(mean, math.nan, math.nan, n_seeds, n_items, n_seeds == 1)
    if n_seeds == 1:
        var = float(d[0].var(ddof=1))
        return CrossedDelta(mean, math.sqrt(var / n_items), float(n_items - 1), 1, n_items, True)
    seed_means, item_means = d.mean(axis=1), d.mean(axis=0)
    df_s, df_i, df_r = n_seeds - 1, n_items - 1, (n_seeds - 1) * (n_items - 1)
    ms_s = n_items * float(((seed_means - mean) ** 2).sum()) / df_s
    ms_i = n_seeds * float(((item_means - mean) ** 2).sum()) / df_i
    ms_r = float(((d - seed_means[:, None] - item_means[None, :] + mean) ** 2).sum()) / df_r
    terms = [(max(ms_s, ms_r), df_s), (max(ms_i, ms_r), df_i), (-ms_r, df_r)]
    total = sum(t for t, _ in terms)
    if total <= 0:
        return CrossedDelta(mean, 0.0, math.inf, n_seeds, n_items, False)
    df = total ** 2 / sum(t ** 2 / k for t, k in terms)
    return CrossedDelta(mean, math.sqrt(total / (n_seeds * n_items)), float(df), n_seeds, n_items, False)
