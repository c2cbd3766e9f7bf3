"""Statistics of the reports: seed intervals, paired deltas, verdicts, convergence."""
import math

import numpy as np
import pandas as pd
import pytest

from experiments import stats


def test_seed_summary_mean_and_interval():
    summary = stats.seed_summary([1.0, 2.0, 3.0, 4.0])
    assert summary.mean == 2.5
    assert 1.0 <= summary.lo < 2.5 < summary.hi <= 4.0
    assert stats.seed_summary([1.0, 2.0, 3.0, 4.0]) == summary            # fixed bootstrap seed
    # Two seeds: the resampled means are a, (a+b)/2 and b, so the percentile interval is [a, b].
    assert stats.seed_summary([2.0, 2.2]) == pytest.approx((2.1, 2.0, 2.2))


def test_seed_summary_single_constant_and_empty():
    mean, lo, hi = stats.seed_summary([1.5])
    assert mean == 1.5 and math.isnan(lo) and math.isnan(hi)              # one seed: no interval
    assert stats.seed_summary([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert all(math.isnan(x) for x in stats.seed_summary([]))
    assert stats.seed_summary([1.0, float("nan"), 3.0]).mean == 2.0        # non-finite seeds ignored


def test_paired_delta_sees_a_shift_that_image_variation_would_hide():
    rng = np.random.default_rng(0)
    hardness = rng.normal(0, 2.0, 200)                   # images differ a lot from each other ...
    before = pd.Series(5.0 + hardness, index=[f"i{k}" for k in range(200)])
    after = before - 0.1 + rng.normal(0, 0.02, 200)      # ... but every one improves by about 0.1
    delta = stats.paired_delta(before, after, direction="lower")
    assert delta.delta == pytest.approx((after - before).mean())
    assert delta.hi < 0 and delta.lo > -0.2 and delta.n_items == 200
    assert delta.better is True
    half_width = 1.96 * (after - before).std() / np.sqrt(200)            # normal approximation
    assert (delta.hi - delta.lo) / 2 == pytest.approx(half_width, rel=0.2)
    assert stats.paired_delta(before, after, direction="higher").better is False


def test_paired_delta_averages_seeds_per_image_and_pairs_by_item_id():
    before = pd.DataFrame({0: [1.0, 2.0, 3.0, 4.0], 1: [3.0, 4.0, 5.0, 6.0]}, index=["a", "b", "c", "d"])
    after = pd.Series([2.5, 3.5, 4.5, 9.0], index=["b", "a", "c", "e"])    # 'd' and 'e' are unpaired
    delta = stats.paired_delta(before, after, direction="lower")
    # seed means: a 2, b 3, c 4; differences: a 1.5, b -0.5, c 0.5
    assert delta.n_items == 3 and delta.delta == pytest.approx(0.5)
    assert delta.lo <= 0.5 <= delta.hi
    empty = stats.paired_delta(before, pd.Series([1.0], index=["z"]), direction="lower")
    assert empty.n_items == 0 and math.isnan(empty.delta)
    with pytest.raises(ValueError, match="direction"):
        stats.paired_delta(before, after, direction="down")


@pytest.mark.parametrize("delta, lo, hi, paper, expected", [
    (-1.0, -1.5, -0.5, -0.1, stats.HOLDS),
    (1.0, 0.5, 1.5, 0.1, stats.HOLDS),
    (1.0, 0.5, 1.5, -0.1, stats.REVERSED),
    (-1.0, -1.5, -0.5, 0.2, stats.REVERSED),
    (0.1, -0.5, 0.7, -0.1, stats.NOISE),
    (0.0, 0.0, 0.4, -0.1, stats.NOISE),               # an interval touching 0 is not a direction
    (1.0, math.nan, math.nan, -0.1, stats.NOISE),
    (1.0, 0.5, 1.5, 0.0, stats.NO_PAPER_CHANGE),
    (1.0, 0.5, 1.5, math.nan, stats.NO_PAPER_NUMBER),
])
def test_verdict(delta, lo, hi, paper, expected):
    assert stats.verdict(delta, lo, hi, paper) == expected


def _curve(values, steps=None):
    epochs = np.arange(1, len(values) + 1)
    return pd.DataFrame({"epoch": epochs, "step": steps if steps is not None else epochs * 50, "val_nme": values})


def test_converged():
    assert stats.converged(_curve([9, 5, 3, 2.02, 2.01, 2.0])) is True
    assert stats.converged(_curve([9, 5, 3, 2.5, 2.2, 2.0])) is False
    assert stats.converged(_curve([9, 5])) is None                          # too short to tell
    assert stats.converged(None) is None
    assert stats.converged(_curve([9, 5, 2.02, float("nan"), 2.01, 2.0])) is True   # epochs without validation skipped
    assert stats.converged(_curve([9, 5, 3, 2.0, 2.0, float("inf")])) is False


def test_converged_reads_the_window_in_steps_and_interpolates():
    # 1000 steps; the window starts at step 800, between the points at 700 (2.2) and 900 (2.0): 2.1.
    curve = _curve([5.0, 2.2, 2.0, 2.08], steps=[100, 700, 900, 1000])
    assert stats.converged(curve, tol=0.02) is True                         # |2.08 - 2.1| / 2.1 < 2%
    assert stats.converged(curve, tol=0.005) is False
    assert stats.converged(_curve([5.0, 4.0, 3.0], steps=[900, 950, 1000])) is None   # window before first point
