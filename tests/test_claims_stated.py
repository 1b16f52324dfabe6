"""The paper's run-against-run statements: each rule on planted runs, including cases that must say 'not reproduced'."""

from __future__ import annotations

import pytest

from hydra_repro.report import claims_stated as cs
from hydra_repro.report.cells import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, UNTESTABLE
from hydra_repro.report.inputs import TABLE_RUNS, Inputs, RunResult, load_paper_values
from tests.test_tables import PAPER_VALUES

N = 1000  # questions per benchmark: large enough that a 10-point gap is far beyond the test-set noise


def run(name: str, right: dict[str, float], seeds: int = 3, shift: float = 0.0) -> RunResult:
    """A run right on the first `right[b]` share of benchmark b's questions (accuracy-scored benchmarks); seed k is
    right on a further `k * shift` share, so seeds differ a little."""

    def one(k: int) -> RunResult:
        samples, head = {}, {}
        for b, share in right.items():
            cut = int(N * (share + k * shift))
            samples[b] = [{"unit": i, "target": "a", "prediction": "a", "score": float(i < cut)} for i in range(N)]
            head[b] = 100.0 * cut / N
        return RunResult(f"{name}_s{k}" if k else name, "ok", head, samples=samples)

    return RunResult(**{**one(0).__dict__, "replicates": [one(k) for k in range(1, seeds)]})


BENCHES = ("gqa", "textvqa", "sqa_img")


def inputs(results: dict[str, RunResult]) -> Inputs:
    paper = load_paper_values(PAPER_VALUES)
    paper["benchmarks"] = {b: b.upper() for b in BENCHES}
    return Inputs("mini", paper, {}, results, {}, {})


def runs_for(table: str, names: dict[str, dict[str, float]], seeds: int = 3) -> dict[str, RunResult]:
    return {TABLE_RUNS[table][n]: run(TABLE_RUNS[table][n], v, seeds, 0.002) for n, v in names.items()}


CONFIG2 = next(s for s in cs.STATED if s.ours == "Config2")  # worse than Config1 on GQA, VQA^T, POPE, SQA^I


def test_a_statement_of_worse_results_is_reproduced_when_every_named_benchmark_drops():
    inp = inputs(runs_for("table_4", {"Config1": dict.fromkeys(BENCHES, 0.6), "Config2": dict.fromkeys(BENCHES, 0.4)}))
    claim, _, evidence, verdict = cs.stated_row(inp, CONFIG2, {})
    assert verdict == REPRODUCED, evidence
    assert "3 as stated, 0 against" in evidence and "MDD" in evidence


def test_a_statement_is_not_reproduced_when_a_named_benchmark_goes_the_other_way():
    v2 = {"gqa": 0.8, "textvqa": 0.6, "sqa_img": 0.6}  # GQA rises by 20 points where the paper says it drops
    inp = inputs(runs_for("table_4", {"Config1": dict.fromkeys(BENCHES, 0.6), "Config2": v2}))
    assert cs.stated_row(inp, CONFIG2, {})[3] == NOT_REPRODUCED


def test_no_difference_is_inconclusive_and_says_whether_the_papers_difference_was_visible():
    same = dict.fromkeys(BENCHES, 0.6)
    inp = inputs(runs_for("table_4", {"Config1": same, "Config2": same}))
    verdict = cs.stated_row(inp, CONFIG2, {})[3]
    assert verdict.startswith(INCONCLUSIVE) and "the paper's own difference ≥ our MDD on" in verdict


def test_a_benchmark_without_spread_states_no_mdd_and_is_not_counted_as_visible():
    same = dict.fromkeys(BENCHES, 0.6)
    runs = {TABLE_RUNS["table_4"][n]: run(TABLE_RUNS["table_4"][n], same, 3, 0.0) for n in ("Config1", "Config2")}
    _, _, evidence, verdict = cs.stated_row(inputs(runs), CONFIG2, {})  # identical seeds, identical runs
    assert "no spread" in evidence and "MDD" not in evidence
    assert verdict.endswith("on 0 of 0)")


def test_one_seed_runs_are_shown_but_not_counted():
    inp = inputs(runs_for("table_4", {"Config1": dict.fromkeys(BENCHES, 0.6), "Config2": dict.fromkeys(BENCHES, 0.4)},
                          seeds=1))  # fmt: skip
    _, _, evidence, verdict = cs.stated_row(inp, CONFIG2, {})
    assert verdict.startswith(INCONCLUSIVE) and "not counted" in evidence


def test_an_infeasible_run_makes_the_statement_untestable():
    inp = inputs({TABLE_RUNS["table_4"]["Config1"]: RunResult("config1_small", "infeasible", reason="budget")})
    assert cs.stated_row(inp, CONFIG2, {})[3] == UNTESTABLE


def test_judge_corrects_with_holm_over_the_named_benchmarks():
    # p = 0.02 alone passes 0.05, but as the smallest of three it needs 0.05 / 3
    results = {"a": {"diff": 1.0, "p": 0.02}, "b": {"diff": 1.0, "p": 0.5}, "c": {"diff": -1.0, "p": 0.6}}
    assert cs.judge(results, {"a": 1, "b": 1, "c": 1}) == (0, 0, 3)
    results["a"]["p"] = 0.01
    assert cs.judge(results, {"a": 1, "b": 1, "c": 1}) == (1, 0, 2)
    assert cs.judge(results, {"a": -1, "b": 1, "c": 1}) == (0, 1, 2)


@pytest.mark.parametrize(("hydra", "verdict"), [(0.66, REPRODUCED), (0.5, NOT_REPRODUCED), (0.6, INCONCLUSIVE)])
def test_a_headline_gain_needs_its_interval_above_zero(hydra, verdict):
    results = {"lora_small": run("lora_small", {"gqa": 0.6}, shift=0.002),
               "hydra_coarse_small": run("hydra_coarse_small", {"gqa": hydra}, shift=0.002)}  # fmt: skip
    inp = inputs(results)
    claim, _, evidence, got = cs.headline_row(inp, "x", "y", "small", "hydra_coarse", "gqa", 4.7, {})
    assert got.startswith(verdict), evidence
    if hydra == 0.66:  # +10% relative: the paper's 4.7% lies below our interval
        assert "+10.0%" in evidence and "outside our interval" in evidence


def test_setting1_best_overall():
    good, bad = dict.fromkeys(BENCHES, 0.7), dict.fromkeys(BENCHES, 0.5)
    names = {"Setting1": good, **{f"Setting{k}": bad for k in range(2, 6)}}
    assert cs.setting1_best_row(inputs(runs_for("table_4", names)), {})[3] == REPRODUCED
    names["Setting4"] = dict.fromkeys(BENCHES, 0.9)  # another setting beats Setting1 everywhere
    assert cs.setting1_best_row(inputs(runs_for("table_4", names)), {})[3] == NOT_REPRODUCED


def test_the_summary_matrix_counts_each_verdict_once():
    rows = [("a", "", "", REPRODUCED), ("b", "", "", f"{NOT_REPRODUCED} (mixed)"), ("c", "", "", INCONCLUSIVE + " x")]
    table = cs.summary(rows)
    assert table[2] == "| a | ● |  |  |  |"
    assert table[3] == "| b |  | ● |  |  |"
    assert table[-1] == "| **total** | 1 | 1 | 1 | 0 |"


def test_named_benchmarks_follow_the_papers_own_table_where_its_text_is_general():
    paper = load_paper_values(PAPER_VALUES)
    for s in cs.STATED:
        if s.table in ("table_2", "table_7"):  # "outperform" / "poorer": the benchmarks where the paper's table moves
            a, b = cs.paper_values(inputs({}), s.table, s.ours), cs.paper_values(inputs({}), s.table, s.base)
            assert a and b and paper
            # the text states one direction: the named set is every benchmark that moves that way in its table
            named, moved = (
                (s.better, {k for k in a if a[k] > b[k]}) if s.better else (s.worse, {k for k in a if a[k] < b[k]})
            )
            assert set(named) == moved and not (s.better and s.worse), s.claim
