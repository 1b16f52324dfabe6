"""Headlines from per-sample records agree with lmms-eval's aggregations; the paired bootstrap behaves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_repro.core.stats import (
    Scorer,
    corrected_cv_interval,
    headline_from_records,
    paired_bootstrap,
    paired_bootstrap_seeds,
    seed_interval,
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
    assert cell.startswith("+25.00* [") and cells.vs_baseline(lora, lora, ["gqa"]) == ["+0.00 [0.00, 0.00]"]
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
