"""Random-guessing and constant-answer floors of each benchmark, against values worked out by hand from the
benchmarks' definitions, and the calibration card's verdicts on planted runs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_repro.core.baselines import chance_baseline, constant_baseline, vqa_accuracy
from hydra_repro.report.calibration import pope_answers, table_calibration
from hydra_repro.report.inputs import Inputs, RunResult


def mme_records(answers: dict[str, list[list[str]]]) -> list[dict]:
    """category -> images -> the targets of that image's questions."""
    out = []
    for cat, images in answers.items():
        for i, targets in enumerate(images):
            out += [{"unit": f"{cat}/{i}", "category": cat, "target": t, "score": 0.0} for t in targets]
    return out


def test_mme_floors_by_hand():
    recs = mme_records({"color": [["Yes", "No"], ["Yes", "No"]], "count": [["Yes", "No"], ["Yes", "Yes"]]})
    # random: acc 50 and acc+ 1/4 per category: 75 + 75
    assert chance_baseline("mme", recs) == pytest.approx(150.0)
    # always "Yes": color acc 50, acc+ 0; count acc 75, acc+ 50 (the second image has two yes answers)
    assert constant_baseline("mme", recs) == (pytest.approx(50.0 + 125.0), "Yes")


def test_five_categories_of_question_pairs_give_the_familiar_375():
    recs = mme_records({f"c{k}": [["Yes", "No"]] * 10 for k in range(5)})
    assert chance_baseline("mme", recs) == pytest.approx(375.0)
    assert constant_baseline("mme", recs)[0] == pytest.approx(250.0)


def test_pope_floors_by_hand():
    recs = [
        {"unit": i, "category": "random", "target": t, "prediction": "", "score": 0.0}
        for i, t in enumerate(["yes", "yes", "yes", "no"])
    ]
    # always yes: precision 3/4, recall 1 -> F1 = 2 * 0.75 / 1.75
    assert constant_baseline("pope", recs) == (pytest.approx(100 * 1.5 / 1.75), "yes")
    # yes with probability 1/2: tp 1.5, fp 0.5, fn 1.5 -> F1 = 3 / 5
    assert chance_baseline("pope", recs) == pytest.approx(60.0)


def test_always_yes_on_balanced_pope_is_the_familiar_66_7():
    recs = [
        {"unit": i, "category": c, "target": t, "prediction": "", "score": 0.0}
        for i, (c, t) in enumerate((c, t) for c in ("random", "popular") for t in ("yes", "no") * 5)
    ]
    assert constant_baseline("pope", recs)[0] == pytest.approx(200 / 3)
    acc, yes = pope_answers([r | {"prediction": "Yes "} for r in recs])
    assert (acc, yes) == (50.0, 100.0)


def test_mmbench_circular_floors_by_hand():
    rotated = [{"unit": 7, "target": t, "score": 0.0} for t in "ABCD"]
    single = [{"unit": 8, "target": "B", "score": 0.0}]
    assert chance_baseline("mmbench", rotated) == pytest.approx(100 / 256)
    assert constant_baseline("mmbench", rotated)[0] == 0.0  # a fixed letter is right in one rotation only
    assert chance_baseline("mmbench", rotated + single) == pytest.approx((100 / 256 + 100) / 2)
    assert constant_baseline("mmbench", rotated + single) == (50.0, "b")


def test_open_answers_by_hand():
    recs = [{"unit": i, "target": t, "score": 0.0} for i, t in enumerate(["red", "Red", "blue", "top"])]
    assert constant_baseline("gqa", recs) == (50.0, "red")
    assert chance_baseline("gqa", recs) == pytest.approx((50 + 25 + 25) / 3)


def test_vqa_accuracy_by_its_definition():
    assert vqa_accuracy("4", ["4"] * 10) == 1.0
    # two of ten humans said "7": leaving out one of them leaves 1 match (1/3), leaving out another leaves 2 (2/3)
    assert vqa_accuracy("7", ["7", "7"] + ["1"] * 8) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("7", ["7"] * 3 + ["1"] * 7) == pytest.approx((3 * (2 / 3) + 7 * 1.0) / 10)


def test_scienceqa_chance_needs_the_choice_counts():
    recs = [{"unit": i, "target": t, "score": 0.0} for i, t in enumerate("ABA")]
    assert chance_baseline("sqa_img", recs) is None
    assert chance_baseline("sqa_img", recs, [2, 3, 4]) == pytest.approx(100 * (1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert constant_baseline("sqa_img", recs) == (pytest.approx(200 / 3), "a")


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["yes", "no"])), min_size=1, max_size=40))
def test_pope_floors_stay_on_the_scale_and_always_yes_is_best(items):
    recs = [{"unit": i, "category": c, "target": t, "prediction": "", "score": 0.0} for i, (c, t) in enumerate(items)]
    best, answer = constant_baseline("pope", recs)
    assert 0.0 <= chance_baseline("pope", recs) <= best + 1e-9 <= 100.0 + 1e-9
    assert answer == "yes" or best == 0.0  # always "no" has no true positive: F1 0


# -- the card -------------------------------------------------------------------------------------------------------

BENCHES = {"mme": "MME", "mmbench": "MMB", "textvqa": "VQA^T", "pope": "POPE", "gqa": "GQA", "sqa_img": "SQA^I"}


def pope_run(name: str, answers: list[str], seeds: int = 3) -> RunResult:
    """A run that answers `answers[i]` to question i of a balanced POPE set, identically for every seed."""
    truth = ["yes", "no"] * (len(answers) // 2)
    recs = [
        {"unit": i, "category": "random", "target": t, "prediction": a, "score": float(a == t)}
        for i, (a, t) in enumerate(zip(answers, truth, strict=True))
    ]
    from hydra_repro.core.scoring import headline_from_records

    head = {b: 0.0 for b in BENCHES} | {"pope": headline_from_records("pope", recs)}
    reps = [RunResult(f"{name}_s{k}", "ok", head, samples={"pope": recs}) for k in range(1, seeds)]
    return RunResult(name, "ok", head, samples={"pope": recs}, replicates=reps)


def card_rows(results: dict[str, RunResult]) -> dict[str, list[str]]:
    inp = Inputs("mini", {"benchmarks": BENCHES}, {}, results, {}, {})
    t = table_calibration(inp)
    return {f"{row[0]}/{row[1].split(' (')[0]}": row for row in t.rows}


def test_the_card_calls_always_yes_pope_uninformative_though_its_f1_is_66_7():
    n = 200
    runs = {
        f"{v}_{role}": pope_run(f"{v}_{role}", ["yes"] * n)
        for v in ("lora", "hydra_coarse", "hydra_fine")
        for role in ("small", "large")
    }
    row = card_rows(runs)["small/POPE"]
    assert row[2].startswith("66.67")
    assert row[8] == "no" and "accuracy 50.0 < 60" in row[9] and "yes-ratio 100.0" in row[9]
    assert card_rows(runs)["small/MME"][8] == "no"  # no records: not informative, and says why


def test_the_card_passes_a_pope_run_that_is_right_most_of_the_time():
    n = 4000
    truth = ["yes", "no"] * (n // 2)

    def answers(wrong_at: int) -> list[str]:  # 90% right, wrong on every tenth question from `wrong_at`
        return [t if i % 10 != wrong_at else ("no" if t == "yes" else "yes") for i, t in enumerate(truth)]

    runs = {f"lora_{role}": pope_run(f"lora_{role}", answers(0)) for role in ("small", "large")}
    runs |= {
        f"{v}_{role}": pope_run(f"{v}_{role}", answers(5))
        for v in ("hydra_coarse", "hydra_fine")
        for role in ("small", "large")
    }
    row = card_rows(runs)["small/POPE"]
    assert "accuracy 90.0" in row[1] and row[8] == "yes", row
    # seeds identical: the MDD is test-set sampling alone; 20% of questions differ by one answer, so the paired
    # difference's SE is about sqrt(0.2 / 4000) = 0.7 points and the MDD about 2.8 x 0.7 = 2
    mdd = float(row[7].split(" / ")[0])
    assert 1.0 < mdd < 3.0 and not math.isnan(mdd)
