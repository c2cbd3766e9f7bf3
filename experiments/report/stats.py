"""Statistics of the reports: row intervals over seeds, each ablation step's change under a crossed seed x image
model, multiplicity (Holm), power (the minimal detectable effect and the design that would resolve a claim),
equivalence (TOST) and the probability of improvement. The derivations: docs/statistics.md; whether a run
converged: ``experiments.report.convergence``.

A row's cell is the mean over seeds of each run's mean over its images, with a t-interval whose seed-to-seed SD
is pooled over the table's rows (images fixed: every row is scored on the same images). An ablation step is a
difference between two rows on the same images and seeds, so its interval comes from ``crossed_delta`` on the
seeds x images matrix of per-image differences, where seed s is paired across the two variants and the images
are a random draw from the benchmark; its seed term is pooled over the table's rows (``seed_pool``), the
variant x seed interaction of a randomised block design (the pair's own spread where that is larger).
Everything is closed-form: a report regenerated from the same results is
byte-for-byte identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05                 # family-wise, per table (Holm), for a "holds" / "reversed"
POWER = 0.8                  # of the minimal detectable effect
MAX_SEEDS = 100              # the projections stop here: beyond it a claim is not worth resolving by seeds
MAX_IMAGES = 1_000_000       # ... or by images

HOLDS = "holds"
REVERSED = "reversed"
EQUIVALENT = "smaller than the paper's change"  # TOST: the 90% interval lies within +-|paper's change|
NOISE = "not distinguishable from noise"
NO_PAPER_CHANGE = "paper shows no change"       # the paper's two numbers are equal: no direction to check
NO_PAPER_NUMBER = "paper gives no number"       # e.g. only-3DMM has no NME in Table 7
VERDICT_KINDS = (HOLDS, REVERSED, EQUIVALENT, NOISE)


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


def verdict(delta: float, p_adjusted: float, paper_change: float, *, within_margin: bool = False) -> str:
    """Does our change go the paper's way? ``p_adjusted``: the step's Holm-adjusted p in its table's family;
    ``paper_change``: the paper's change (its sign gives the direction, its size the equivalence margin);
    ``within_margin``: TOST found our change smaller than the paper's (``CrossedDelta.within``).

    holds / reversed only when the adjusted p < ALPHA; else "smaller than the paper's change" when TOST says so;
    else "not distinguishable from noise" (which a report always shows beside its detectable effect).
    """
    if paper_change is None or not np.isfinite(paper_change):
        return NO_PAPER_NUMBER
    if paper_change == 0:
        return NO_PAPER_CHANGE
    if np.isfinite(delta) and np.isfinite(p_adjusted) and p_adjusted < ALPHA and delta != 0:
        return HOLDS if np.sign(delta) == np.sign(paper_change) else REVERSED
    return EQUIVALENT if within_margin else NOISE


def verdict_kind(text: str) -> str | None:
    """The kind a verdict text starts with (holds / reversed / smaller / noise), ignoring its notes."""
    return next((k for k in VERDICT_KINDS if text.startswith(k)), None)


class Components(NamedTuple):
    """Variance components of a step's per-image differences d[s, i] = mu + a_s + b_i + e_si (docs/statistics.md).
    With one seed ``seed`` is NaN and ``image`` holds var(d), images and residual together."""
    seed: float
    image: float
    res: float


@dataclass(frozen=True)
class SeedPool:
    """The variant x seed interaction of a table, pooled over its rows (docs/statistics.md, "The seed term pooled
    over the table"): ``run_var`` is the residual mean square of the additive fit (row + seed) to the rows x
    seeds table of run means, whose expectation is s2_va + s2_e / n (a run mean's own seed noise: its variant x
    seed part and its residual over the n images). ``seeds``: the step's seeds it was fitted on; ``df``: its
    degrees of freedom, (rows - 1)(seeds - 1) when every row has every seed (the two-way interaction)."""
    run_var: float
    rows: int
    seeds: int
    df: int = 0                             # 0: every row on every seed, (rows - 1)(seeds - 1)

    def __post_init__(self):
        if not self.df:
            object.__setattr__(self, "df", (self.rows - 1) * (self.seeds - 1))

    def seed_mean_square(self, n_items: int) -> float:
        """The pool on the scale of a pair's MS_seed, n Var_s(seed mean of d): a difference carries two runs'
        seed noise, E = n (2 s2_va) + 2 s2_e = n s2_seed + s2_res of the pair."""
        return 2 * n_items * self.run_var


def seed_pool(run_means) -> SeedPool | None:
    """The pool from a rows x seeds array of run means on the same images, NaN where a row has no run of that
    seed (a row with more seeds than the rest, ``Row.seeds``): least squares of the additive model row + seed
    on the cells present, the residual mean square on (cells - rank) df; with every cell present, the two-way
    interaction mean square on (rows - 1)(seeds - 1). Rows with fewer than two seeds carry no interaction and
    are left out. None with fewer than 3 rows (with 2 it is the pair's own seed term) or 2 seeds, or no df."""
    m = np.asarray(run_means, dtype=float)
    if m.ndim != 2 or np.isinf(m).any():
        return None
    m = m[np.isfinite(m).sum(axis=1) >= 2]
    rows, seeds = m.shape
    if rows < 3 or seeds < 2:
        return None
    if np.isfinite(m).all():
        interaction = m - m.mean(axis=1, keepdims=True) - m.mean(axis=0, keepdims=True) + m.mean()
        return SeedPool(float((interaction ** 2).sum() / ((rows - 1) * (seeds - 1))), rows, seeds)
    row, seed = np.nonzero(np.isfinite(m))
    design = np.hstack([np.eye(rows)[row], np.eye(seeds)[seed][:, 1:]])
    y = m[row, seed]
    fit, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = len(y) - int(np.linalg.matrix_rank(design))
    return SeedPool(float(((y - design @ fit) ** 2).sum() / df), rows, seeds, df) if df > 0 else None


def design_variance(c: Components, n_seeds: int, n_items: int, seed_df: float | None = None) -> tuple[float, float]:
    """Var(mean of d) and its Satterthwaite df for an S x n design with components ``c``; the seed term's mean
    square has ``seed_df`` df: S - 1 for a pair's own (the default), the pool's for a table's.

    Var = s2_seed/S + s2_image/n + s2_res/(S n) = (E[MS_seed] + E[MS_image] - E[MS_res]) / (S n). A zero
    component's mean square drops out with its df (E[MS_seed] = s2_res when s2_seed = 0, so the sum reduces
    to E[MS_image] alone on n - 1 df): kept in, a floored seed term would cost its S - 1 df for nothing.
    """
    if n_seeds < 1 or n_items < 2:
        return math.nan, math.nan
    terms = []
    if c.seed > 0:                                   # NaN (unknown, one seed) is not > 0
        terms.append((c.res + n_items * c.seed, n_seeds - 1 if seed_df is None else seed_df))
    if c.image > 0:
        terms.append((c.res + n_seeds * c.image, n_items - 1))
    df_res = (n_seeds - 1) * (n_items - 1)
    if not terms:
        terms = [(c.res, df_res)] if df_res > 0 else []
    elif len(terms) == 2:
        terms.append((-c.res, df_res))
    total = sum(t for t, _ in terms)
    if total <= 0:
        return 0.0, math.inf
    return total / (n_seeds * n_items), total ** 2 / sum(t ** 2 / k for t, k in terms if k > 0)


def _mde(se: float, df: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """Smallest true change a two-sided t-test at ``alpha`` detects with probability ``power``:
    (t(1 - alpha/2, df) + t(power, df)) * se, the usual normal-approximation to the noncentral t."""
    if not (np.isfinite(se) and df > 0):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


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
    components: Components = Components(math.nan, math.nan, math.nan)
    pool_df: int = 0                        # the table's pool's df where it gives the seed term its df, else 0
    own_seed_term: bool = False             # pooled, but the pair's own seed spread was the larger: it is used

    @property
    def pooled(self) -> bool:
        return self.pool_df > 0

    def seed_df(self, n_seeds: int | None = None) -> float:
        """The seed term's df, and what it would be with the step's two rows on ``n_seeds`` seeds and the rest
        of the table as it is: each further seed of the pair adds one df, to its own or to the pool's."""
        n_seeds = self.n_seeds if n_seeds is None else n_seeds
        return (self.pool_df if self.pooled else self.n_seeds - 1) + n_seeds - self.n_seeds

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.se) and self.df > 0)            # df is inf for a zero-spread difference

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        if not self.finite:
            return math.nan, math.nan
        half = float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.delta - half, self.delta + half

    def p_value(self) -> float:
        """Two-sided p of delta = 0 from the same t model (1.0 for a zero delta with zero spread)."""
        if not self.finite:
            return math.nan
        if self.se == 0:
            return 1.0 if self.delta == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.delta) / self.se, self.df))

    def mde(self, power: float = POWER, alpha: float = ALPHA) -> float:
        """The minimal detectable effect of this design: the true change it detects with ``power``."""
        return _mde(self.se, self.df, power, alpha) if self.finite else math.nan

    def tost_p(self, margin: float) -> float:
        """Two one-sided tests of |true change| >= margin: the larger one-sided p (p < alpha: the change is
        smaller than ``margin``; equivalently the 1 - 2 alpha interval lies within +-margin)."""
        if not (self.finite and np.isfinite(margin) and margin > 0):
            return math.nan
        if self.se == 0:
            return 0.0 if abs(self.delta) < margin else 1.0
        lower = stats.t.sf((self.delta + margin) / self.se, self.df)
        upper = stats.t.cdf((self.delta - margin) / self.se, self.df)
        return float(max(lower, upper))

    def within(self, margin: float, alpha: float = ALPHA) -> bool:
        """TOST at ``alpha``: is the change smaller than ``margin`` in size?"""
        p = self.tost_p(margin)
        return bool(np.isfinite(p) and p < alpha)

    def equivalence_bound(self, alpha: float = ALPHA) -> float:
        """The smallest margin TOST at ``alpha`` accepts: the change is smaller than this in size (the larger
        end, in size, of the 1 - 2 alpha interval). What a 'not distinguishable from noise' still rules out."""
        lo, hi = self.interval(1 - 2 * alpha)
        return float(max(abs(lo), abs(hi)))


def crossed_delta(d: np.ndarray, pool: SeedPool | None = None) -> CrossedDelta:
    """Two-way ANOVA (seed x image, one value per cell) of the S x n matrix of per-image differences.

    Expected mean squares: E[MS_seed] = n s2_seed + s2_res, E[MS_image] = S s2_image + s2_res,
    E[MS_res] = s2_res; a component estimated negative is set to zero, and Var(mean) and its Satterthwaite
    df follow from the components (``design_variance``). With one seed, Var(mean) = var(d) / n on n - 1 df
    (images only). ``pool``, the table's variant x seed interaction on the same S seeds, gives the seed term
    its (rows - 1)(S - 1) df instead of S - 1; its mean square is the larger of the pool's and the pair's own:
    the pool assumes the rows alike, and a pair whose own seed spread is larger is not made narrower by it.
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    n_seeds, n_items = d.shape
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"crossed_delta needs a finite seeds x images matrix, got shape {d.shape} "
                         f"with {int((~np.isfinite(d)).sum())} non-finite values; drop images not scored by every run")
    mean = float(d.mean())
    if n_items < 2:
        return CrossedDelta(mean, math.nan, math.nan, n_seeds, n_items, n_seeds == 1)
    pool_df, own = 0, False
    if n_seeds == 1:
        components = Components(math.nan, float(d[0].var(ddof=1)), 0.0)
    else:
        seed_means, item_means = d.mean(axis=1), d.mean(axis=0)
        ms_s = n_items * float(((seed_means - mean) ** 2).sum()) / (n_seeds - 1)
        ms_i = n_seeds * float(((item_means - mean) ** 2).sum()) / (n_items - 1)
        ms_r = float(((d - seed_means[:, None] - item_means[None, :] + mean) ** 2).sum()) / (
            (n_seeds - 1) * (n_items - 1))
        if pool is not None and pool.seeds == n_seeds and pool.rows >= 3 and pool.df > n_seeds - 1:
            ms_pool, pool_df = pool.seed_mean_square(n_items), pool.df
            own, ms_s = ms_s > ms_pool, max(ms_s, ms_pool)
        components = Components(max(ms_s - ms_r, 0.0) / n_items, max(ms_i - ms_r, 0.0) / n_seeds, ms_r)
    var, df = design_variance(components, n_seeds, n_items, pool_df or None)
    return CrossedDelta(mean, math.sqrt(var), float(df), n_seeds, n_items, n_seeds == 1, components, pool_df, own)


def design_mde(c: Components, n_seeds: int, n_items: int, power: float = POWER, alpha: float = ALPHA,
               seed_df: float | None = None) -> float:
    """The minimal detectable effect an S x n design would have, with the variance components ``c``."""
    var, df = design_variance(c, n_seeds, n_items, seed_df)
    return _mde(math.sqrt(var), df, power, alpha) if np.isfinite(var) else math.nan


def seeds_to_detect(result: CrossedDelta, effect: float) -> int | None:
    """The fewest seeds (2 or more, at this step's images) of the step's two rows, the rest of the table as it is
    (``CrossedDelta.seed_df``: what a row's ``seeds`` in tables.yaml trains), whose design detects |effect| with
    80% power; None when even MAX_SEEDS do not, or when the seed term is unknown (one seed) or there is no effect."""
    effect = abs(effect) if effect is not None else math.nan
    if not (effect > 0 and np.isfinite(result.components.seed)):
        return None
    return next((s for s in range(2, MAX_SEEDS + 1)
                 if result.seed_df(s) >= 1
                 and design_mde(result.components, s, result.n_items, seed_df=result.seed_df(s)) <= effect), None)


def images_to_detect(result: CrossedDelta, effect: float) -> int | None:
    """The fewest images (at this step's seeds) whose design detects |effect| with 80% power; None when even
    MAX_IMAGES do not (the seed term s2_seed/S is a floor no number of images goes below) or no effect."""
    effect = abs(effect) if effect is not None else math.nan
    mde = lambda n: design_mde(result.components, result.n_seeds, n, seed_df=result.seed_df())  # noqa: E731
    if not (effect > 0 and np.isfinite(result.components.image)) or not mde(MAX_IMAGES) <= effect:
        return None
    lo, hi = 2, MAX_IMAGES             # the MDE falls as images are added: bisect for the first that detects
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mde(mid) <= effect else (mid + 1, hi)
    return lo


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence between the tests):
    the k-th smallest p times (m - k + 1), made monotone, capped at 1. NaN entries are not in the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def probability_of_improvement(before, after, direction: str) -> float:
    """P(a run of ``after`` is better than a run of ``before``) over every pair of the two variants' seeds'
    run means, ties counting half: rliable's probability of improvement for one task (a Mann-Whitney U / (m n)).
    Descriptive: with three seeds a side it takes one of 19 values."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', not {direction!r}")
    x, y = _finite(after), _finite(before)
    if not (len(x) and len(y)):
        return math.nan
    diff = x[:, None] - y[None, :]
    better = diff < 0 if direction == "lower" else diff > 0
    return float((better + 0.5 * (diff == 0)).mean())
