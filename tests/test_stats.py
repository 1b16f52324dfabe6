"""Headlines from per-sample records agree with lmms-eval's aggregations; the comparison interval, its MDD and the
planning helpers match references written here; the earlier paired bootstrap still behaves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t as student_t

from hydra_repro.core.scoring import Scorer, headline_from_records
from hydra_repro.core.stats import (
    SeedNoise,
    compare_runs,
    corrected_cv_interval,
    holm,
    mdd,
    paired_bootstrap,
    paired_bootstrap_seeds,
    plan_mdd,
    pooled_seed_noise,
    pooled_seed_sd,
    seed_interval,
    seed_scores,
    seeds_for_mdd,
)
from hydra_repro.report import cells, inputs


def mme_records(correct: list[tuple[int, int]], category: str = "color") -> list[dict]:
    out = []
    for i, pair in enumerate(correct):
        for j, ok in enumerate(pair):
            out.append({"doc_id": 2 * i + j, "unit": f"img{i}", "score": float(ok), "category": category})
    return out


def test_mme_headline_is_acc_plus_acc_plus_as_lmms_eval():
    from lmms_eval.tasks.mme.utils import mme_aggregate_results

    pairs = [(1, 1), (1, 0), (0, 0), (1, 1)]
    recs = mme_records(pairs) + mme_records([(1, 1), (0, 1)], "count")
    expected = mme_aggregate_results(
        [{"question_id": r["unit"] + r["category"], "category": r["category"], "score": r["score"]} for r in recs]
    )
    assert headline_from_records("mme", recs) == pytest.approx(expected)  # (62.5 + 50) + (75 + 50)


def test_pope_headline_is_lmms_eval_f1_per_category():
    from lmms_eval.tasks.pope.utils import pope_aggregate_f1_score

    rng = np.random.default_rng(0)
    recs = []
    for i in range(60):
        gold = "yes" if i % 2 else "no"
        pred = rng.choice(["Yes", "no", "yes.", "maybe"])
        recs.append({"doc_id": i, "unit": i, "prediction": pred, "target": gold, "category": ["a", "b"][i % 3 == 0]})
    expected = []
    for cat in ("a", "b"):
        items = [{"prediction": r["prediction"].lower().strip(), "ground_truth": r["target"]} for r in recs
                 if r["category"] == cat]  # fmt: skip
        expected.append(pope_aggregate_f1_score(items))
    assert headline_from_records("pope", recs) == pytest.approx(100 * np.mean(expected))


def test_bootstrap_of_identical_runs_is_zero_and_of_a_clear_gap_excludes_zero():
    same = [{"doc_id": i, "unit": i, "score": float(i % 2)} for i in range(200)]
    r = paired_bootstrap("gqa", same, same, n_boot=200)
    assert r == {"diff": 0.0, "low": 0.0, "high": 0.0, "p": 1.0, "n_units": 200, "seeds": (1, 1)}
    better = [{"doc_id": i, "unit": i, "score": float(i % 4 != 0)} for i in range(200)]  # 75% vs 50%
    r = paired_bootstrap("gqa", better, same, n_boot=500)
    assert r["diff"] == pytest.approx(25.0) and 15 < r["low"] < 25 < r["high"] < 35 and r["p"] < 0.01


def test_bootstrap_resamples_mmbench_question_groups_together():
    a = [{"doc_id": k, "unit": k // 4, "score": float(k // 4 < 30)} for k in range(200)]  # 50 groups x 4 rotations
    b = [{"doc_id": k, "unit": k // 4, "score": 0.0} for k in range(200)]
    r = paired_bootstrap("mmbench", a, b, n_boot=300)
    assert r["n_units"] == 50 and r["diff"] == pytest.approx(60.0)


def test_tables_star_an_interval_that_excludes_zero():
    same = {"gqa": [{"doc_id": i, "unit": i, "score": float(i % 2)} for i in range(200)]}
    better = {"gqa": [{"doc_id": i, "unit": i, "score": float(i % 4 != 0)} for i in range(200)]}
    ours = inputs.RunResult("hydra", "ok", {"gqa": 75.0}, samples=better)
    lora = inputs.RunResult("lora", "ok", {"gqa": 50.0}, samples=same)
    cell = cells.vs_baseline(ours, lora, ["gqa"])[0]
    # one seed each and no pooled seed spread: the interval covers the test questions only, and says so
    assert cell.startswith("+25.00* [") and cell.endswith(", test set only)")
    assert cells.vs_baseline(lora, lora, ["gqa"]) == ["+0.00 [0.00, 0.00] (MDD 0.00, test set only)"]
    assert cells.vs_baseline(inputs.RunResult("x", "ok", {"gqa": 1.0}), lora, ["gqa"]) == [inputs.MISSING]


def test_one_seed_per_side_agrees_with_a_plain_paired_bootstrap_written_here():
    """Reference: resample the 120 questions with replacement, the same draw for both runs, and take the 2.5% and
    97.5% percentiles of the accuracy difference. Different random streams: the endpoints agree within Monte Carlo
    error (the interval's half-width here is ~12 points; 4,000 resamples put each endpoint within ~1 point)."""
    a = [{"doc_id": i, "unit": i, "score": float(i % 3 != 0)} for i in range(120)]
    b = [{"doc_id": i, "unit": i, "score": float(i % 2)} for i in range(120)]
    diff = 100 * (np.array([r["score"] for r in a]) - np.array([r["score"] for r in b]))
    draws = np.random.default_rng(12345).integers(0, len(diff), size=(4000, len(diff)))
    low, high = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
    ours = paired_bootstrap("gqa", a, b, n_boot=4000)
    assert ours["diff"] == pytest.approx(diff.mean())
    assert ours["low"] == pytest.approx(low, abs=1.5) and ours["high"] == pytest.approx(high, abs=1.5)


def test_seed_spread_widens_the_interval():
    # A's two seeds: right on every question / wrong on every question; B: right on half, the same for both seeds.
    # The seed means tie (50 = 50), but a resample may draw A's good seed twice (+50) or its bad one twice (-50).
    right = [{"doc_id": i, "unit": i, "score": 1.0} for i in range(100)]
    wrong = [{"doc_id": i, "unit": i, "score": 0.0} for i in range(100)]
    half = [{"doc_id": i, "unit": i, "score": float(i % 2)} for i in range(100)]
    r = paired_bootstrap_seeds("gqa", [right, wrong], [half, half], n_boot=400)
    assert r["diff"] == 0.0 and r["seeds"] == (2, 2)
    assert r["low"] < -40 and r["high"] > 40 and r["p"] == 1.0
    gap = paired_bootstrap_seeds("gqa", [right, right], [half, wrong], n_boot=300)
    # B draws 0 (wrong twice), 25 or ~50 (half twice, which the question resample moves by a few points)
    assert gap["diff"] == pytest.approx(75.0) and 30 < gap["low"] < 50 and gap["high"] == 100


def test_seed_level_matches_the_binomial_reference():
    # No question-level noise (every unit scores the same within a seed): the bootstrap distribution is that of the
    # mean of 3 draws from A's seeds {100, 0, 100} against B's constant 50. A wins iff >= 2 of 3 draws hit a 100:
    # P = 20/27, so the two-sided p-value is 2 * 7/27 = 0.519.
    def const(v: float) -> list[dict]:
        return [{"doc_id": i, "unit": i, "score": v} for i in range(20)]

    r = paired_bootstrap_seeds("gqa", [const(1.0), const(0.0), const(1.0)], [const(0.5)], n_boot=4000)
    assert r["diff"] == pytest.approx(100 * 2 / 3 - 50)
    assert r["p"] == pytest.approx(2 * 7 / 27, abs=0.04)
    assert r["low"] == pytest.approx(-50) and r["high"] == pytest.approx(50)


def test_seed_interval_is_the_student_t_interval():
    mean, half = seed_interval([60.0, 61.0, 59.5])
    assert mean == pytest.approx(60.1666667)
    assert half == pytest.approx(4.302653 * np.std([60.0, 61.0, 59.5], ddof=1) / np.sqrt(3))
    assert np.isnan(seed_interval([60.0])[1])


record_st = st.tuples(
    st.integers(0, 7),  # unit
    st.sampled_from(["color", "count", None]),  # category (POPE: None -> "all")
    st.sampled_from([0.0, 1.0]),  # score
    st.sampled_from(["yes", "No ", "maybe"]),  # prediction
    st.sampled_from(["yes", "no"]),  # target
)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["mme", "mmbench", "pope", "gqa"]),
    st.lists(record_st, min_size=1, max_size=30),
    st.integers(0, 2**31),
)
def test_vectorized_resample_scores_equal_the_reference(bench, rows, seed):
    recs = [
        {"doc_id": i, "unit": f"u{u}", "category": c, "score": s, "prediction": p, "target": t}
        for i, (u, c, s, p, t) in enumerate(rows)
    ]
    scorer = Scorer(bench, recs)
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(scorer.units), size=len(scorer.units)) for _ in range(5)]
    counts = np.stack([np.bincount(p, minlength=len(scorer.units)) for p in picks])
    got = scorer.scores(scorer.units, counts)
    want = [scorer.score([scorer.units[k] for k in p]) for p in picks]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_corrected_cv_interval_inflates_the_variance_for_shared_training_points():
    # diffs 1..4: mean 2.5, s^2 = 5/3; se = sqrt((1/4 + 1/4) * 5/3) = 0.912871; t(0.975, 3) = 3.182446
    mean, half = corrected_cv_interval([1.0, 2.0, 3.0, 4.0], test_share=0.25)
    assert mean == 2.5 and half == pytest.approx(3.182446 * 0.912871, rel=1e-5)
    _, naive = corrected_cv_interval([1.0, 2.0, 3.0, 4.0], test_share=0.0)  # the plain t-interval of the mean
    assert naive == pytest.approx(3.182446 * (5 / 3 / 4) ** 0.5, rel=1e-5) and naive < half


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["mme", "mmbench", "pope", "gqa"]), st.lists(record_st, min_size=2, max_size=30))
def test_leave_one_out_headlines_equal_the_reference(bench, rows):
    """Each unit's leave-one-out headline equals `score` recomputed from the records without that unit."""
    recs = [
        {"doc_id": i, "unit": f"u{u}", "category": c, "score": s, "prediction": p, "target": t}
        for i, (u, c, s, p, t) in enumerate(rows)
    ]
    scorer = Scorer(bench, recs)
    if len(scorer.units) < 2:
        return
    theta, loo = seed_scores(bench, [recs], scorer.units)
    assert theta[0] == pytest.approx(scorer.score(scorer.units))
    want = [scorer.score([v for v in scorer.units if v != u]) for u in scorer.units]
    assert loo[0] == pytest.approx(want, rel=1e-12, abs=1e-9)


def acc_records(matrix: np.ndarray) -> list[list[dict]]:
    """Per-seed records of a per-question benchmark from a 0/1 matrix (seeds, questions)."""
    return [[{"doc_id": u, "unit": u, "score": float(x)} for u, x in enumerate(row)] for row in matrix]


def accuracy_pool(rng: np.random.Generator, p: np.ndarray, seeds: int, runs: int) -> list[list[list[dict]]]:
    """`runs` runs of `seeds` seeds each, question u right with probability p[u]."""
    return [acc_records((rng.random((seeds, len(p))) < p).astype(float)) for _ in range(runs)]


def accuracy_headlines(pool: list[list[list[dict]]]) -> list[list[float]]:
    """Per run, per seed: the accuracy headline (%), computed here from the records."""
    return [[100 * np.mean([r["score"] for r in seed]) for seed in run] for run in pool]


def reference_interval(xa: np.ndarray, xb: np.ndarray, noise: tuple[float, float, float] | None = None):
    """An independent reference for per-question accuracy, from a seeds x questions two-way layout: seed part
    s^2/n per run (or the pooled sd^2 for one seed), test part var_u(d_u)/U less each run's interaction mean square
    / (U n); Welch-Satterthwaite df on the seed part; t quantiles."""
    xa, xb = 100 * xa, 100 * xb
    units = xa.shape[1]
    d = xa.mean(axis=0) - xb.mean(axis=0)
    seed_parts, within, borrowed = [], 0.0, 0
    for x in (xa, xb):
        n = x.shape[0]
        if n >= 2:
            resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
            within += (resid**2).sum() / ((n - 1) * (units - 1)) / units / n
            seed_parts.append((x.mean(axis=1).var(ddof=1) / n, n - 1))
        else:
            within += noise[1]
            borrowed += 1
    if borrowed:  # one-seed sides share one pooled estimate
        seed_parts.append((borrowed * noise[0] ** 2, noise[2]))
    seed = sum(v for v, _ in seed_parts)
    var = seed + max(0.0, d.var(ddof=1) / units - within)
    df = var**2 / sum(v**2 / k for v, k in seed_parts)
    se = np.sqrt(var)
    half = student_t.ppf(0.975, df) * se
    return d.mean(), se, df, d.mean() - half, d.mean() + half


def test_compare_runs_matches_a_two_way_anova_reference():
    rng = np.random.default_rng(3)
    xa = (rng.random((3, 80)) < np.linspace(0.2, 0.9, 80)).astype(float)
    xb = (rng.random((3, 80)) < np.linspace(0.1, 0.8, 80)[::-1]).astype(float)
    r = compare_runs("gqa", acc_records(xa), acc_records(xb))
    diff, se, df, low, high = reference_interval(xa, xb)
    assert r["diff"] == pytest.approx(diff) and r["se"] == pytest.approx(se, rel=1e-9)
    assert r["df"] == pytest.approx(df, rel=1e-9) and (r["low"], r["high"]) == pytest.approx((low, high), rel=1e-9)
    assert r["p"] == pytest.approx(2 * student_t.sf(abs(diff) / se, df), rel=1e-9)
    assert r["mdd"] == pytest.approx((student_t.ppf(0.975, df) + student_t.ppf(0.8, df)) * se, rel=1e-9)
    assert r["seeds"] == (3, 3) and r["n_units"] == 80 and r["covers_training_noise"]


def test_one_seed_runs_borrow_the_pooled_seed_spread():
    rng = np.random.default_rng(4)
    p = np.linspace(0.1, 0.9, 60)
    pool = accuracy_pool(rng, p, seeds=3, runs=4)
    noise = pooled_seed_noise("gqa", pool)
    # the pooled SD from the headlines alone, and the interaction mean square pooled by its df, written here
    heads = accuracy_headlines(pool)
    assert (noise.sd, noise.df, noise.runs) == (pytest.approx(pooled_seed_sd(heads)[0]), 8, 4)
    ms = []
    for run in pool:
        x = 100 * np.array([[r["score"] for r in seed] for seed in run])
        resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
        ms.append((resid**2).sum() / (2 * 59) / 60)
    assert noise.within == pytest.approx(np.mean(ms))
    xa, xb = (rng.random((1, 60)) < p).astype(float), (rng.random((1, 60)) < p[::-1]).astype(float)
    r = compare_runs("gqa", acc_records(xa), acc_records(xb), noise=noise)
    diff, se, df, low, high = reference_interval(xa, xb, (noise.sd, noise.within, noise.df))
    assert r["covers_training_noise"] and r["df"] == pytest.approx(df)
    assert (r["diff"], r["se"], r["low"], r["high"]) == pytest.approx((diff, se, low, high))
    bare = compare_runs("gqa", acc_records(xa), acc_records(xb))  # no pooled spread: test questions only
    assert not bare["covers_training_noise"] and bare["se"] < r["se"] and np.isinf(bare["df"])


def test_pooled_seed_sd_by_hand():
    # runs (1, 2, 3): SS 2, df 2; (10, 14): SS 8, df 1; a one-seed run adds nothing: sqrt(10 / 3)
    sd, df = pooled_seed_sd([[1.0, 2.0, 3.0], [10.0, 14.0], [7.0]])
    assert (sd, df) == (pytest.approx((10 / 3) ** 0.5), 3)
    with pytest.raises(ValueError):
        pooled_seed_sd([[1.0]])
    assert pooled_seed_noise("gqa", [acc_records(np.ones((1, 5)))]) is None


def test_mdd_against_t_table_values():
    # t(0.975) + t(0.80): df = inf 1.959964 + 0.841621; df = 4 2.776445 + 0.940965; df = 2 4.302653 + 1.060660
    assert mdd(1.0, np.inf) == pytest.approx(2.801585, abs=1e-6)
    assert mdd(2.0, 4) == pytest.approx(2 * 3.717410, abs=1e-5)
    assert mdd(1.0, 2) == pytest.approx(5.363313, abs=1e-5)
    assert mdd(1.0, np.inf, alpha=0.05, power=0.5) == pytest.approx(1.959964, abs=1e-6)


def test_plan_mdd_and_its_inverse():
    # seed sd 2, unit sd 10, 3 seeds, 400 units: seed part 8/3, test part 0.25, df = var^2 / ((8/3)^2 / 4)
    plan = plan_mdd(2.0, 10.0, 3, 400)
    var = 8 / 3 + 0.25
    df = var**2 / ((8 / 3) ** 2 / 4)
    assert plan["se"] == pytest.approx(var**0.5) and plan["df"] == pytest.approx(df)
    assert plan["mdd"] == pytest.approx((student_t.ppf(0.975, df) + student_t.ppf(0.8, df)) * var**0.5)
    assert plan_mdd(2.0, 10.0, 1, 400)["df"] == np.inf  # one seed, the spread taken as known
    n = seeds_for_mdd(3.0, 2.0, 10.0, 400)
    assert plan_mdd(2.0, 10.0, n, 400)["mdd"] <= 3.0 < plan_mdd(2.0, 10.0, n - 1, 400)["mdd"]
    assert seeds_for_mdd(1.0, 2.0, 10.0, 400) is None  # the test set alone allows 2.80 * 0.5 = 1.40


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]  # 0.005 < .0125, 0.01 < .0167, 0.03 > .025
    assert holm([0.01, 0.02, 0.03]) == [True, True, True]  # .0167, .025, .05
    assert holm([0.2, 0.001]) == [False, True] and holm([]) == []


def test_a_seed_noise_of_zero_spread_gives_a_test_set_interval():
    xa = np.tile((np.arange(50) % 3 != 0).astype(float), (2, 1))  # both seeds identical: no training noise
    xb = np.tile((np.arange(50) % 2).astype(float), (2, 1))
    r = compare_runs("gqa", acc_records(xa), acc_records(xb), noise=SeedNoise(5.0, 0.0, 10))
    d = 100 * (xa[0] - xb[0])
    assert r["se"] == pytest.approx(d.std(ddof=1) / 50**0.5) and np.isinf(r["df"])


# Boundaries the tests above never reach (each found by mutation testing: docs/testing.md).


def test_a_zero_standard_error_gives_p_one_for_no_difference_and_zero_otherwise():
    same = acc_records(np.ones((1, 6)))
    r = compare_runs("gqa", same, same)
    assert (r["se"], r["p"], r["diff"]) == (0.0, 1.0, 0.0) and r["covers_training_noise"] is False
    a = acc_records(np.ones((1, 6)))
    b = acc_records(np.array([[1, 1, 1, 1, 1, 1]]) * 0)
    r = compare_runs("gqa", a, b)  # every question flips the same way: no spread over questions
    assert r["diff"] == 100.0 and r["se"] == 0.0 and r["p"] == 0.0


def test_a_standard_error_below_one_point_matches_the_normal_reference():
    rng = np.random.default_rng(9)
    xa = (rng.random((1, 6000)) < 0.62).astype(float)
    xb = (rng.random((1, 6000)) < 0.60).astype(float)
    r = compare_runs("gqa", acc_records(xa), acc_records(xb))
    d = 100 * (xa[0] - xb[0])
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert 0 < r["se"] < 1 and r["se"] == pytest.approx(se, rel=1e-9) and np.isinf(r["df"])
    assert r["p"] == pytest.approx(2 * student_t.sf(abs(d.mean()) / se, np.inf), rel=1e-9)


def test_two_seed_runs_count_for_the_pooled_spread():
    pool = accuracy_pool(np.random.default_rng(5), np.linspace(0.2, 0.8, 40), seeds=2, runs=3)
    noise = pooled_seed_noise("gqa", pool)
    heads = accuracy_headlines(pool)
    assert noise is not None and (noise.df, noise.runs) == (3, 3)  # one df per two-seed run
    assert noise.sd == pytest.approx(pooled_seed_sd(heads)[0])


def test_intervals_of_two_values_and_of_one():
    mean, half = seed_interval([10.0, 12.0])
    assert mean == 11.0 and half == pytest.approx(student_t.ppf(0.975, 1) * np.sqrt(2.0) / np.sqrt(2))
    mean, half = corrected_cv_interval([1.0, 3.0], test_share=0.0)
    assert mean == 2.0 and half == pytest.approx(student_t.ppf(0.975, 1) * np.sqrt(2.0) / np.sqrt(2))
    mean, half = corrected_cv_interval([4.0], test_share=0.2)
    assert mean == 4.0 and np.isnan(half)


def test_plan_mdd_squares_the_seed_sd_and_two_seeds_have_two_df():
    # seed sd 3, unit sd 10, 2 seeds, 400 units: seed part 2 * 9 / 2 = 9, test part 0.25, seed df 2 * (2 - 1) = 2
    plan = plan_mdd(3.0, 10.0, 2, 400)
    var = 9 + 0.25
    assert plan["se"] == pytest.approx(var**0.5) and plan["df"] == pytest.approx(var**2 / (9**2 / 2))
    assert plan_mdd(0.0, 10.0, 3, 400)["df"] == np.inf  # no seed spread: the test set's normal quantiles
    assert seeds_for_mdd(20.0, 2.0, 10.0, 400) == 2  # two seeds already reach a loose target


def test_holm_rejects_at_exactly_the_threshold():
    assert holm([0.025, 0.05]) == [True, True]  # 0.025 <= 0.05 / 2, then 0.05 <= 0.05 / 1


def test_comparisons_need_both_sides():
    recs = acc_records(np.ones((1, 5)))
    with pytest.raises(ValueError, match="each side needs the records of at least one seed"):
        compare_runs("gqa", recs, [])
    with pytest.raises(ValueError, match="each side needs the records of at least one seed"):
        paired_bootstrap_seeds("gqa", [], recs)


def test_the_bootstrap_interval_approaches_the_normal_one_and_draws_every_unit():
    # 400 questions with per-question differences d: the percentile interval of the resampled mean tends to
    # mean +- 1.96 sd / sqrt(n); a planted question 0 that alone differs moves it only if question 0 is drawn
    rng = np.random.default_rng(2)
    xa = (rng.random(400) < 0.7).astype(float)
    xb = (rng.random(400) < 0.5).astype(float)
    r = paired_bootstrap("gqa", acc_records(xa[None])[0], acc_records(xb[None])[0], n_boot=20000, seed=1)
    d = 100 * (xa - xb)
    half = 1.959964 * d.std(ddof=0) / np.sqrt(d.size)
    assert r["low"] == pytest.approx(d.mean() - half, abs=0.03 * half)
    assert r["high"] == pytest.approx(d.mean() + half, abs=0.03 * half)
    only = np.zeros(50)
    only[0] = 1.0
    r = paired_bootstrap("gqa", acc_records(only[None])[0], acc_records(np.zeros((1, 50)))[0], n_boot=2000)
    assert r["high"] > 0  # resamples that draw question 0 once or more
    # no resample goes below 0; those that miss question 0, (49/50)^50 of them, tie at 0 and count on both sides
    assert r["p"] == pytest.approx(2 * (49 / 50) ** 50, abs=0.06)


def test_pooled_noise_scores_each_benchmark_by_its_own_headline():
    # MME's headline (acc + acc+ per category, x 100) is not the mean accuracy: pooling must score MME as MME
    rng = np.random.default_rng(6)
    runs = [[mme_records([tuple(int(v) for v in rng.random(2) < 0.6) for _ in range(30)]) for _ in range(3)]
            for _ in range(2)]  # fmt: skip
    noise = pooled_seed_noise("mme", runs)
    heads = [[headline_from_records("mme", seed) for seed in run] for run in runs]
    assert noise.sd == pytest.approx(pooled_seed_sd(heads)[0]) and noise.df == 4


def test_two_shared_units_are_enough_and_results_are_plain_floats():
    r = compare_runs("gqa", acc_records(np.array([[1.0, 0.0]] * 2)), acc_records(np.array([[0.0, 0.0]] * 2)))
    assert r["n_units"] == 2 and all(isinstance(r[k], float) for k in ("diff", "se", "low", "high", "p", "mdd"))
    with pytest.raises(ValueError, match="fewer than two evaluation units"):
        compare_runs("gqa", acc_records(np.ones((1, 1))), acc_records(np.ones((1, 1))))
    noise = pooled_seed_noise("gqa", [acc_records(np.array([[1.0, 0.0], [0.0, 0.0]]))])
    assert noise is not None and noise.runs == 1


def test_the_bootstrap_is_reproducible_from_its_seed():
    rng = np.random.default_rng(8)
    a, b = acc_records((rng.random((1, 60)) < 0.6).astype(float))[0], acc_records(np.zeros((1, 60)))[0]
    assert paired_bootstrap("gqa", a, b, n_boot=300) == paired_bootstrap("gqa", a, b, n_boot=300)
    assert paired_bootstrap("gqa", a, b, n_boot=300, seed=5) != paired_bootstrap("gqa", a, b, n_boot=300)


def test_a_comparison_scores_each_benchmark_by_its_own_headline():
    rng = np.random.default_rng(7)
    a = [mme_records([tuple(int(v) for v in rng.random(2) < 0.7) for _ in range(40)]) for _ in range(2)]
    b = [mme_records([tuple(int(v) for v in rng.random(2) < 0.5) for _ in range(40)]) for _ in range(2)]
    r = compare_runs("mme", a, b)
    want = np.mean([headline_from_records("mme", s) for s in a]) - np.mean([headline_from_records("mme", s) for s in b])
    assert r["diff"] == pytest.approx(want)
