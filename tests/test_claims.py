"""The claims page on real per-image results: Table 3's four rows, 3 seeds x 200 validation images each
(tests/data/converged-table3, from results/converged at 14a9cb6), recomputed by hand with numpy and scipy's t
alone, apart from experiments/report/stats.py's code path."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from experiments import report, store
from experiments.registry import load_registry

FIXTURE = Path(__file__).parent / "data" / "converged-table3"
PROFILE = "converged"
VARIANTS = {"DAD-3DNet": "dad3dnet", "baseline": "baseline", "+QA": "qa", "Trans3DHead": "trans3dhead"}
METRIC_KEYS = {"NME ↓": "nme", "Z5 Acc. ↑": "z5", "Pose Err. ↓": "pose_error"}
# Four claims, one per branch of the model: the table's pooled seed term with all three components positive
# (Satterthwaite on three mean squares), the pair's own seed spread (larger than the pool's) on the pool's df,
# the seed component estimated negative (dropped), seed and image components both negative.
HAND_CLAIMS = [("baseline → +QA", "NME ↓"), ("DAD-3DNet → Trans3DHead", "NME ↓"),
               ("baseline → Trans3DHead", "NME ↓"), ("baseline → Trans3DHead", "Z5 Acc. ↑")]


def per_image(variant: str, metric: str) -> pd.DataFrame:
    """item_id x seed."""
    return pd.DataFrame({seed: pd.read_csv(FIXTURE / f"{variant}-seed{seed}.csv").set_index("item_id")[metric]
                         for seed in range(3)})


def pooled_seed_mean_square(metric: str, n: int) -> tuple[float, int]:
    """The table's variant x seed interaction (4 rows x 3 seeds of run means, 6 df) on a pair's MS_seed scale:
    the residual sum of squares of the two-way table without replication, from SS_total - SS_rows - SS_seeds."""
    means = np.array([per_image(v, metric).mean().to_numpy() for v in VARIANTS.values()])     # rows x seeds
    (rows, seeds), grand = means.shape, means.mean()
    ss_total = ((means - grand) ** 2).sum()
    ss_rows = seeds * ((means.mean(axis=1) - grand) ** 2).sum()
    ss_seeds = rows * ((means.mean(axis=0) - grand) ** 2).sum()
    df = (rows - 1) * (seeds - 1)
    return 2 * n * (ss_total - ss_rows - ss_seeds) / df, df


def by_hand(before: str, after: str, metric: str) -> dict:
    """The crossed model from sums of squares (SS_res as the remainder of SS_total, not stats.py's residuals),
    its seed mean square the larger of the table's pool and the pair's own, on the pool's df."""
    d = (per_image(VARIANTS[after], metric) - per_image(VARIANTS[before], metric)).to_numpy().T   # seeds x images
    S, n = d.shape
    grand = d.mean()
    ss_total = ((d - grand) ** 2).sum()
    ss_seed = n * ((d.mean(axis=1) - grand) ** 2).sum()
    ss_image = S * ((d.mean(axis=0) - grand) ** 2).sum()
    ms = {"seed": (ss_seed / (S - 1), S - 1), "image": (ss_image / (n - 1), n - 1),
          "res": ((ss_total - ss_seed - ss_image) / ((S - 1) * (n - 1)), (S - 1) * (n - 1))}
    pool, pool_df = pooled_seed_mean_square(metric, n)
    pooled = pool >= ms["seed"][0]
    ms["seed"] = (max(ms["seed"][0], pool), pool_df)
    positive = [k for k in ("seed", "image") if ms[k][0] > ms["res"][0]]
    # Var(mean) = E[MS_seed] + E[MS_image] - E[MS_res] over S n; a component at zero leaves its mean square
    # equal to MS_res in expectation, so the sum keeps only the positive components' mean squares
    terms = {0: [ms["res"]], 1: [ms[k] for k in positive],
             2: [ms["seed"], ms["image"], (-ms["res"][0], ms["res"][1])]}[len(positive)]
    total = sum(v for v, _ in terms)
    df = total ** 2 / sum(v ** 2 / k for v, k in terms)
    se = np.sqrt(total / (S * n))
    means_before = per_image(VARIANTS[before], metric).mean()
    means_after = per_image(VARIANTS[after], metric).mean()
    pairs = [(a, b) for a in means_after for b in means_before]
    better = [(a < b if metric != "z5" else a > b) + 0.5 * (a == b) for a, b in pairs]
    return {"delta": grand, "half": student_t.ppf(0.975, df) * se, "bound": abs(grand) + student_t.ppf(0.95, df) * se, "p": 2 * student_t.sf(abs(grand) / se, df),
            "mde": (student_t.ppf(0.975, df) + student_t.ppf(0.8, df)) * se, "positive": positive,
            "p_better": np.mean(better), "d": d, "seed_component": max(ms["seed"][0] - ms["res"][0], 0) / n,
            "pooled": pooled}


@pytest.fixture(scope="module")
def claims(tmp_path_factory):
    """Table 3's rows of the fixture as a result store, the whole suite's reports from it, and the claims
    page's Table 3 rows by (step, metric) and column title."""
    tmp = tmp_path_factory.mktemp("fixture")
    registry = load_registry()
    for path in sorted(FIXTURE.glob("*.csv")):
        variant, seed = path.stem.rsplit("-seed", 1)
        frame = pd.read_csv(path)
        run = store.run_dir(tmp / "results", PROFILE, registry.resolve(variant, PROFILE, int(seed)).run_id)
        store.write_meta(run, {"variants": [variant], "seed": int(seed), "status": "done", "benchmark": "synthheads",
                               "code_version": "14a9cb6", "device": "cpu", "date": "2026-12-01"})
        aggregate = {m: float(frame[m].mean()) for m in frame.columns if m != "item_id"}
        store.write_evaluation(run, "dad3dheads", "val", {**aggregate, "n_items": len(frame)}, frame, None, {})
    report.write_reports(registry, PROFILE, list(registry.tables), tmp / "results", tmp / "reports")
    page = (tmp / "reports" / PROFILE / "claims.md").read_text()
    lines = [line for line in page[page.index("\n| table | claim |"):].split("\n\n")[0].splitlines()
             if line.startswith("| ")]           # the claims table (the page's later tables summarise it)
    header = [c.strip() for c in lines[0].strip("| ").split(" | ")]
    rows = [dict(zip(header, (c.strip() for c in line.strip()[2:-2].split(" | ")))) for line in lines[1:]]
    table3 = {(r["step"], r["metric"]): r for r in rows if r["table"].startswith("[table3]")}
    return table3, rows, (registry, tmp)


def numbers(cell: str) -> list[float]:
    return [float(x) for x in cell.replace("[", "").replace("]", "").replace(",", "").split()]


def test_four_claims_recomputed_by_hand_match_the_claims_page(claims):
    table3, _, _ = claims
    computed = [key for key, row in table3.items() if row["seeds × images"] != "—"]
    assert len(computed) == 7                        # Table 3's claims whose two rows are in the fixture
    hand = {key: by_hand(*key[0].split(" → "), METRIC_KEYS[key[1]]) for key in computed}
    assert [hand[key]["positive"] for key in HAND_CLAIMS] == [["seed", "image"], ["seed", "image"], ["image"], []]
    assert [hand[key]["pooled"] for key in HAND_CLAIMS] == [True, False, True, True]
    assert any(table3[key]["verdict"].startswith("not distinguishable") for key in HAND_CLAIMS)
    ranked = sorted(h["p"] for h in hand.values())   # Holm over the table's family of 7
    holm = {p: min(1.0, max((7 - j) * ranked[j] for j in range(k + 1))) for k, p in enumerate(ranked)}
    for key in HAND_CLAIMS:
        row, h = table3[key], hand[key]
        tol = 1e-3 if key[1] == "NME ↓" else 1e-4      # the page's decimals
        delta, lo, hi = numbers(row["change (ours) [95% CI]"])
        assert (delta, lo, hi) == pytest.approx((h["delta"], h["delta"] - h["half"], h["delta"] + h["half"]),
                                                abs=tol * 0.51)
        assert row["seeds × images"] == "3 × 200"
        assert float(row["Holm p"]) == pytest.approx(holm[h["p"]], abs=5.1e-4)
        assert float(row["MDE (80%)"]) == pytest.approx(h["mde"], abs=tol * 0.51)
        assert float(row["P(better)"]) == pytest.approx(h["p_better"], abs=5.1e-3)
        assert ("its own seed spread" in row["verdict"]) is not h["pooled"]
        significant = holm[h["p"]] < 0.05
        assert row["verdict"].startswith(("holds", "reversed") if significant else
                                         ("not distinguishable from noise", "smaller than the paper's change"))
        if row["verdict"].startswith("not distinguishable from noise"):     # TOST's bound: the 90% interval's end
            bound = float(row["verdict"].split("|change| < ")[1].split(",")[0])
            assert bound == pytest.approx(h["bound"], abs=tol * 0.51)


def test_the_crossed_intervals_are_narrower_than_the_old_model_where_pairing_cancels_the_seed_effect(claims):
    """Today's model (until issue 27): the images' standard error of the seed-averaged differences and the seed
    SD of run means pooled over the table's rows (4 rows x 2 df), in quadrature, t on 8 df. It counts the image
    noise twice and ignores that seed s is shared by both rows. Where the seed x variant component of the
    differences is below the pooled seed variance of a run mean (the shared part cancels in the pairing), the
    crossed interval must be the narrower one."""
    table3, _, _ = claims
    widths = {}
    for key, row in table3.items():
        if row["seeds × images"] == "—":
            continue
        metric = METRIC_KEYS[key[1]]
        run_means = [per_image(v, metric).mean() for v in VARIANTS.values()]
        pooled = sum(((m - m.mean()) ** 2).sum() for m in run_means) / 8
        h = by_hand(*key[0].split(" → "), metric)
        diff = h["d"].mean(axis=0)
        old_half = student_t.ppf(0.975, 8) * np.sqrt(diff.var(ddof=1) / len(diff) + pooled * 2 / 3)
        _, lo, hi = numbers(row["change (ours) [95% CI]"])
        widths[key] = ((hi - lo) / 2, old_half)
        if h["seed_component"] < 2 * pooled:
            assert (hi - lo) / 2 < old_half, key
    assert len(widths) == 7
    ratios = [new / old for new, old in widths.values()]
    assert max(ratios) < 0.95 and min(ratios) > 0.5         # 0.61-0.91 on this fixture: 10-40% narrower


def test_every_answer_carries_its_power(claims):
    table3, rows, _ = claims
    assert all("MDE (80%)" in row and "seeds needed" in row and "images needed" in row for row in rows)
    computed = [row for row in rows if row["seeds × images"] != "—"]
    assert computed and all(float(row["MDE (80%)"]) > 0 for row in computed)
    for row in computed:
        if row["verdict"].startswith("not distinguishable from noise"):
            assert f"detectable: {row['MDE (80%)']}" in row["verdict"]
    # The paper's QAMem effect (-0.016 NME) is far below what 3 seeds x 200 images detect, and neither lever
    # alone gets there: at 200 images the per-image term is a floor for any number of seeds, and at 3 seeds the
    # table's pooled seed term (sigma2_seed / 3) is a floor for any number of images.
    qa = table3[("baseline → +QA", "NME ↓")]
    assert (qa["seeds needed"], qa["images needed"]) == ("> 100", "> 1,000,000")
    # Table 8's 413 pair is Table 3's DAD-3DNet -> Trans3DHead: reported once, pointing there.
    pair = next(r for r in rows if r["step"] == "DAD-3DNet 413 → Trans3DHead 413" and r["metric"] == "NME ↓")
    assert pair["verdict"] == "same runs as [table3](table3.md) DAD-3DNet → Trans3DHead: reported there"
    assert pair["change (ours) [95% CI]"] == pair["Holm p"] == "—"


def test_the_deltas_figure_draws_the_claims_intervals(claims):
    from experiments.report.figure_sections import _deltas_frame
    from experiments.report.gather import Inputs
    from experiments.report.write import table_context
    table3, _, (registry, tmp) = claims
    inputs = Inputs(registry, PROFILE, (), tmp / "results", store.collect(tmp / "results", PROFILE))
    frame = _deltas_frame(table_context(inputs, "table3", tmp).steps)
    assert len(frame) == 7
    for _, bar in frame.iterrows():
        row = table3[(bar["step"], bar["metric"])]
        drawn = [report.fmt(x, METRIC_KEYS[bar["metric"]]) for x in (bar["delta"], bar["lo"], bar["hi"])]
        assert row["change (ours) [95% CI]"] == f"{drawn[0]} [{drawn[1]}, {drawn[2]}]"
    assert (tmp / "reports" / PROFILE / "table3-deltas.png").stat().st_size > 5000
