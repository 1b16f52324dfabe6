"""Eq. 7 and eq. 8 against references written here from the paper's formulas, never through the code under test.

Eq. 7: R1_initial = 2 floor((R_standard - 2α) / 2), α = (N_l - 1) / 2.
Eq. 8: R_i = R1 + (i - 1) Δd for i < N_s (i counted from 1); the last stage takes
floor((N_R - Σ_{j<N_s} R_j N_j) / N_last), with N_R = R_standard x N_l (eq. 6). The iteration stops at the last R1
whose last stage stays above the one before it (as written: by >= 1; the rule that reproduces Table V: by >= 2Δd).
Odd and even layer counts and R_standard, and 3+ stages, are drawn on purpose: an even N_l with an even R_standard
cannot tell α = (N_l - 1) / 2 from α = N_l / 2.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from hydra_repro.core.allocation import coarse_ranks, r1_initial
from hydra_repro.errors import InfeasibleError
from tests.references import eq7, eq8, last_gap


@given(r_standard=st.integers(1, 300), n_layers=st.integers(1, 80))
def test_eq7_matches_the_formula_for_odd_and_even_counts(r_standard, n_layers) -> None:
    assert r1_initial(r_standard, n_layers) == eq7(r_standard, n_layers)


def test_eq7_by_hand() -> None:
    # N_l = 24 (α = 11.5): 2 floor((128 - 23) / 2) = 104; N_l = 3 (α = 1), R = 4: 2 floor(2 / 2) = 2
    assert (r1_initial(128, 24), r1_initial(4, 3), r1_initial(5, 4), r1_initial(2, 9)) == (104, 2, 2, -6)


@given(
    sizes=st.lists(st.integers(1, 8), min_size=3, max_size=8),
    r_standard=st.integers(2, 40),
    delta_d=st.integers(1, 3),
    rule=st.sampled_from(["as-written", "table", "eq5-last"]),
)
def test_eq8_ladder_and_the_iteration_stop(sizes, r_standard, delta_d, rule) -> None:
    try:
        result = coarse_ranks(sizes, r_standard, delta_d, rule=rule)
    except InfeasibleError:
        start = max(1, eq7(r_standard, sum(sizes)))
        ranks = eq8(start, sizes, delta_d, r_standard)
        gap = last_gap(rule, delta_d)
        assert ranks[-1] - ranks[-2] < gap  # refused only when eq. 7's start is already invalid
        return
    assert result.r1 == result.stage_ranks[0]  # R_1 is the first stage's rank
    assert result.stage_ranks == eq8(result.r1, sizes, delta_d, r_standard)
    assert sum(r * n for r, n in zip(result.stage_ranks, sizes)) <= r_standard * sum(sizes)  # eq. 6
    gap = last_gap(rule, delta_d)
    assert result.stage_ranks[-1] - result.stage_ranks[-2] >= gap
    following = eq8(result.r1 + 1, sizes, delta_d, r_standard)  # the iteration stops at the last valid R1
    assert following[-1] - following[-2] < gap
    assert result.r1 >= max(1, eq7(r_standard, sum(sizes)))


@given(r_standard=st.integers(8, 12), n_stages=st.integers(3, 6), layers=st.sampled_from([24, 32]))
def test_eq8_in_tight_mini_like_settings(r_standard, n_stages, layers) -> None:
    sizes = [layers // n_stages] * (n_stages - 1)
    sizes.append(layers - sum(sizes))
    assume(all(s > 0 for s in sizes))
    try:
        result = coarse_ranks(sizes, r_standard, 2)
    except InfeasibleError:
        ranks = eq8(max(1, eq7(r_standard, layers)), sizes, 2, r_standard)
        assert ranks[-1] <= ranks[-2]
        return
    assert result.stage_ranks == eq8(result.r1, sizes, 2, r_standard) and result.r1 == result.stage_ranks[0]


def test_config4_under_the_three_readings() -> None:
    """Table V's Config4 (layers 1-8, 9-12, 13-24; R_standard 128, Δd 2): the table rule gives the printed ranks; the
    rule as written after eq. 8 gives a last step of 1 (breaking eq. 5's Δd); eq. 5 on the last stage gives a third."""
    sizes = [8, 4, 12]
    assert coarse_ranks(sizes, 128, 2, rule="table").stage_ranks == [124, 126, 131] == eq8(124, sizes, 2, 128)
    assert coarse_ranks(sizes, 128, 2, rule="as-written").stage_ranks == [126, 128, 129] == eq8(126, sizes, 2, 128)
    assert coarse_ranks(sizes, 128, 2, rule="eq5-last").stage_ranks == [125, 127, 130] == eq8(125, sizes, 2, 128)
