"""The table-number helpers, called directly with hand-worked values (the table tests reach them only through a
rendered page)."""

from __future__ import annotations

import math

import pytest

from hydra_repro.report.numbers import (
    MISSING,
    coarse_layer_ranks,
    delta,
    fmt_paper,
    fmt_pct,
    gain,
    params_vs_budget,
    ranges,
    spearman,
    stages_text,
)


def test_gain_is_relative_and_undefined_without_a_base():
    assert gain(105.0, 100.0) == pytest.approx(0.05)
    assert gain(90.0, 120.0) == pytest.approx(-0.25)
    assert gain(1.0, 1.0) == 0.0
    assert gain(None, 1.0) is None and gain(1.0, None) is None and gain(1.0, 0.0) is None
    assert gain(0.0, 2.0) == -1.0


def test_delta_is_ours_minus_paper_in_the_benchmark_format():
    assert delta(1200.88, 1147.0, "mme") == "-53.9"
    assert delta(40.75, 41.16, "textvqa") == "+0.41"
    assert delta(50.0, 50.0, "gqa") == "+0.00"
    assert delta(None, 1.0, "gqa") == MISSING and delta(1.0, None, "gqa") == MISSING


def test_percent_format():
    assert fmt_pct(0.0472) == "+4.72%" and fmt_pct(-0.0375) == "-3.75%" and fmt_pct(0.0) == "+0.00%"
    assert fmt_pct(None) == MISSING


def test_paper_numbers_keep_their_printed_digits():
    assert fmt_paper(1147.0, "mme") == "1147.0" and fmt_paper(1200.88, "mme") == "1200.88"
    assert fmt_paper(52.2) == "52.20" and fmt_paper(0.1257) == "0.1257" and fmt_paper(None) == "-"
    assert fmt_paper(1.5e-05) == "0.00"  # an exponent is not a count of printed decimals


def test_params_vs_budget():
    assert params_vs_budget({"trainable_params": 120, "budget_params": 100}) == pytest.approx(0.2)
    assert params_vs_budget({"trainable_params": 75, "budget_params": 100}) == pytest.approx(-0.25)
    assert params_vs_budget(None) is None and params_vs_budget({"budget_params": 100}) is None


def test_layer_ranges_and_the_table_v_notation():
    assert ranges([3, 1, 2, 8, 10, 9, 5]) == "1-3, 5, 8-10"
    assert ranges([4]) == "4" and ranges([2, 4, 6]) == "2, 4, 6"
    layers, ranks = stages_text([[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12], list(range(13, 25))], [124, 126, 131])
    assert (layers, ranks) == ("[1-8, 9-12, 13-24]", "(124, 126, 131)")
    assert stages_text([[1, 2, 7], [3, 4, 5, 6]], [4, 5]) == ("[{1-2, 7}, 3-6]", "(4, 5)")


def test_coarse_layer_ranks_only_for_one_rank_per_layer():
    same = {"schedule": {"layers": [{"q_proj": 4, "v_proj": 4}, {"q_proj": 6, "v_proj": 6}]}}
    assert coarse_layer_ranks(same) == [4, 6]
    mixed = {"schedule": {"layers": [{"q_proj": 4, "v_proj": 4}, {"q_proj": 2, "v_proj": 6}]}}
    assert coarse_layer_ranks(mixed) is None


def test_spearman_of_depth_against_a_hand_ranked_series():
    assert spearman([1, 2, 3, 4]) == pytest.approx(1.0) and spearman([4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks of (10, 30, 20, 40) are (1, 3, 2, 4): rho = 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8
    assert spearman([10, 30, 20, 40]) == pytest.approx(0.8)
    assert math.isnan(spearman([5, 5, 5]))
