"""The guided-vs-random search study: equal-budget differences over search seeds and the verdict rule."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from hydra_repro.report.cells import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from hydra_repro.report.search_study import full_study_command, study


def record(guided: list[list[float]], random: list[list[float]]) -> dict:
    repeats = [{"seed": k, "arms": {"guided": g, "random": r}} for k, (g, r) in enumerate(zip(guided, random))]
    return {"role": "small", "arms": repeats[0]["arms"], "repeats": repeats}


def rising(end: float, n: int = 8) -> list[float]:
    return [end * (i + 1) / n for i in range(n)]


def test_equal_budget_difference_and_interval_by_hand():
    # guided ends at 1.0, 1.2, 1.4; random at 0.5 for every seed: differences 0.5, 0.7, 0.9
    s = study(record([rising(1.0), rising(1.2), rising(1.4)], [rising(0.5)] * 3))
    assert s.per_arm == 8 and s.diffs == pytest.approx([0.5, 0.7, 0.9])
    half = scipy_stats.t.ppf(0.975, 2) * 0.2 / math.sqrt(3)  # sd of (0.5, 0.7, 0.9) is 0.2
    assert s.mean == pytest.approx(0.7) and s.half == pytest.approx(half)
    assert s.mdd == pytest.approx((scipy_stats.t.ppf(0.975, 2) + scipy_stats.t.ppf(0.8, 2)) * 0.2 / math.sqrt(3))
    assert s.verdict() == REPRODUCED


def test_random_ahead_is_not_reproduced_and_overlap_is_inconclusive():
    behind = study(record([rising(0.5)] * 3, [rising(1.0), rising(1.2), rising(1.4)]))
    assert behind.verdict() == NOT_REPRODUCED
    mixed = study(record([rising(1.0), rising(0.2), rising(0.9)], [rising(0.6)] * 3))
    assert mixed.verdict() == INCONCLUSIVE


def test_unequal_arms_compare_at_the_smaller_budget():
    s = study(record([[0.1, 0.4]] * 3, [[0.2]] * 3))  # one random vs two guided: compared after one schedule
    assert s.per_arm == 1 and s.diffs == pytest.approx([-0.1] * 3)


@pytest.mark.parametrize("per_arm, seeds", [(7, 3), (8, 2)])
def test_a_study_below_eight_per_arm_or_three_seeds_has_no_verdict(per_arm, seeds):
    s = study(record([rising(2.0, per_arm)] * seeds, [rising(0.1, per_arm)] * seeds))
    assert s.verdict().startswith(f"{INCONCLUSIVE} (study too small: {per_arm} per arm x {seeds} search seeds")


def test_a_record_without_repeats_is_one_search_seed():
    s = study({"role": "large", "arms": {"guided": [0.1, 0.3], "random": [0.2]}, "config": {"seed": 4}})
    assert s.seeds == [4] and math.isnan(s.half)
    assert "one search seed, no interval" in s.evidence()


def test_the_full_study_script_sizes_both_arms_and_names_itself():
    import importlib.util

    spec = importlib.util.spec_from_file_location("search_study", "experiments/search_study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.SIZE == {"rounds": 4, "per_round": 1, "random_runs": 8} and script.REPEATS == 3
    assert 2 * script.SIZE["rounds"] * script.SIZE["per_round"] >= 8 and script.SIZE["random_runs"] >= 8
    assert "experiments/search_study.py --profile mini --role large" in full_study_command("mini", "large")


def test_each_arms_own_best_is_compared_not_the_floor_of_the_initial_runs():
    # both arms stay below the best initial run (0.9): floored curves would tie at 0.9 in every seed
    floor = {"guided": [0.9] * 8, "random": [0.9] * 8}
    ends = [(0.6, 0.3), (0.7, 0.3), (0.8, 0.3)]
    own = [{"guided": rising(g), "random": rising(r)} for g, r in ends]
    repeats = [{"seed": k, "arms": floor, "own": o} for k, o in enumerate(own)]
    s = study({"role": "small", "arms": repeats[0]["arms"], "repeats": repeats, "initial_best": 0.9})
    assert s.own and s.diffs == pytest.approx([0.3, 0.4, 0.5]) and s.verdict() == REPRODUCED
    assert "beaten in 0 / 0 of 3 search seeds" in s.evidence()
    older = [{"seed": r["seed"], "arms": r["arms"]} for r in repeats]  # a record without own curves: the floor
    floored = study({"role": "small", "arms": older[0]["arms"], "repeats": older})
    assert not floored.own and floored.diffs == [0.0, 0.0, 0.0]


def test_identical_differences_over_search_seeds_have_no_interval():
    s = study(record([rising(0.5)] * 3, [rising(0.5)] * 3))
    assert s.verdict() == f"{INCONCLUSIVE} (no spread over search seeds)"
    assert "no spread, no interval" in s.evidence() and math.isnan(s.mdd)
