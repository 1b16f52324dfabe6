"""Invariants of HyDRA's rank allocation over random gradient norms, stage counts, R_standard and Δd."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hydra_repro.constants import COMPONENTS
from hydra_repro.core.allocation import (
    FINE_SETTINGS,
    MOBILELLAMA_1_4B,
    RULES,
    ModelDims,
    allocate,
    budget_params,
    coarse_ranks,
    fine_ranks,
    partition_stages,
    random_layer_ranks,
    trainable_params,
)
from hydra_repro.errors import InfeasibleError, UserError
from tests import strategies as hs
from tests.references import TABLE_VI, eq7, eq8, table_vi, valid_r1


def dims_for(n_layers: int) -> ModelDims:
    return ModelDims(
        MOBILELLAMA_1_4B.hidden_size, MOBILELLAMA_1_4B.intermediate_size, 16, 16, num_hidden_layers=n_layers
    )


def valid_by_rule(r1: int, sizes: list[int], r: int, dd: int, rule: str) -> bool:
    """Reference (tests/references.py, from the paper's formulas): eq. 8 at R1 holds eq. 6 and the rule's gap."""
    return valid_r1(r1, sizes, r, dd, rule)


@st.composite
def requests(draw, rules=tuple(RULES)):
    norms = draw(hs.grad_norms())
    return (
        norms,
        draw(hs.stage_counts(len(norms))),
        draw(hs.r_standards()),
        draw(hs.delta_ds()),
        draw(st.sampled_from(rules)),
    )


def try_allocate(norms, n_stages, r, dd, rule, setting="coarse"):
    try:
        return allocate(norms, n_stages, r, dd, rule=rule, setting=setting, dims=dims_for(len(norms)))
    except InfeasibleError:
        return None


@given(requests())
def test_partition_every_layer_in_one_nonempty_stage_ordered_by_mean(req):
    norms, n_stages, *_ = req
    try:
        stages = partition_stages(norms, n_stages)
    except InfeasibleError:
        assert len(set(norms)) < n_stages  # the only reason a partition can fail
        return
    assert len(stages) == len(norms)
    assert set(stages) == set(range(n_stages))  # each stage non-empty, nothing outside 0..N_s-1
    means = [np.mean([x for x, s in zip(norms, stages) if s == k]) for k in range(n_stages)]
    assert all(a < b for a, b in zip(means, means[1:]))
    # equal norms share a stage; a larger norm never sits in a lower stage
    for a, sa in zip(norms, stages):
        for b, sb in zip(norms, stages):
            if a < b:
                assert sa <= sb


@given(requests(), st.floats(min_value=1e-3, max_value=1e3))
def test_deterministic_and_scale_invariant(req, scale):
    norms, n_stages, r, dd, rule = req
    a = try_allocate(norms, n_stages, r, dd, rule)
    b = try_allocate(norms, n_stages, r, dd, rule)
    c = try_allocate([x * scale for x in norms], n_stages, r, dd, rule)
    assert (a is None) == (b is None) == (c is None)
    if a is not None:
        assert a == b
        assert (a.stage_of_layer, a.stage_ranks, a.ranks) == (c.stage_of_layer, c.stage_ranks, c.ranks)


@given(requests())
def test_coarse_invariants(req):
    norms, n_stages, r, dd, rule = req
    a = try_allocate(norms, n_stages, r, dd, rule)
    assume(a is not None)
    layer_ranks = [a.stage_ranks[s] for s in a.stage_of_layer]
    assert all(isinstance(x, int) and x >= 1 for x in layer_ranks)
    assert sum(layer_ranks) <= r * len(norms)  # eq. 6
    assert a.trainable_params <= a.budget_params  # g(G, Z) <= C for coarse ranks
    ranks = a.stage_ranks
    assert all(b - a_ == dd for a_, b in zip(ranks[:-2], ranks[1:-1]))  # eq. 8: linear steps of Δd
    if n_stages > 1:
        assert ranks[-1] > ranks[-2]
        assert ranks[-1] - ranks[-2] >= RULES[rule].min_last_gap(dd)
    assert all(layer == {c: layer_ranks[i] for c in COMPONENTS} for i, layer in enumerate(a.ranks))


@given(hs.stage_sizes(), hs.r_standards(), hs.delta_ds(), st.sampled_from(sorted(RULES)))
def test_r1_is_the_largest_valid_or_infeasible_is_genuine(sizes, r, dd, rule):
    assume(len(sizes) > 1)
    start = max(1, eq7(r, sum(sizes)))
    try:
        res = coarse_ranks(sizes, r, dd, rule)
    except InfeasibleError:
        assert not valid_by_rule(start, sizes, r, dd, rule)
        return
    assert res.r1 == res.stage_ranks[0] and res.stage_ranks == eq8(res.r1, sizes, dd, r)
    assert valid_by_rule(res.r1, sizes, r, dd, rule)
    assert not valid_by_rule(res.r1 + 1, sizes, r, dd, rule)
    assert all(valid_by_rule(x, sizes, r, dd, rule) for x in range(start, res.r1 + 1))
    assert res.r1 >= start


@given(requests(rules=("as-written",)), st.sampled_from(sorted(TABLE_VI)))
def test_fine_settings_move_exactly_the_listed_components(req, setting):
    norms, n_stages, r, dd, rule = req
    coarse = try_allocate(norms, n_stages, r, dd, rule)
    assume(coarse is not None)
    try:
        fine = allocate(norms, n_stages, r, dd, rule=rule, setting=setting, dims=dims_for(len(norms)))
    except InfeasibleError:
        shifts = {c: Fraction(m) for c, m in TABLE_VI[setting].items()}
        odd = any((m * dd).denominator != 1 for m in shifts.values())
        too_low = min(coarse.stage_ranks) + min(int(m * dd) for m in shifts.values() if (m * dd).denominator == 1) < 1
        assert odd or too_low
        return
    for before, after in zip(coarse.ranks, fine.ranks):
        for c in COMPONENTS:
            mult = Fraction(TABLE_VI[setting].get(c, 0))
            assert after[c] - before[c] == mult * dd
            assert isinstance(after[c], int) and after[c] >= 1
    assert fine.trainable_params == trainable_params(fine.ranks, dims_for(len(norms)))
    assert fine.over_budget == (fine.trainable_params > budget_params(r, dims_for(len(norms))))


@given(hs.grad_norms(max_layers=8), st.integers(1, 8))
def test_kmeans_is_optimal_against_sklearn(norms, k):
    """Reference: the exact DP never has a larger within-stage sum of squares than scikit-learn's K-means."""
    from sklearn.cluster import KMeans

    assume(k <= len(set(norms)))
    x = np.asarray(norms)
    stages = partition_stages(norms, k)
    sse = sum(((x[np.array(stages) == s] - x[np.array(stages) == s].mean()) ** 2).sum() for s in range(k))
    km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x.reshape(-1, 1))
    assert sse <= km.inertia_ * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize(
    "norms",
    [[float("nan"), 1.0], [1.0, -0.1], [float("inf"), 1.0], []],
)
def test_bad_norms_raise_user_error(norms):
    with pytest.raises(UserError, match="grad norms"):
        allocate(norms, 1, 8, 2)


@given(hs.grad_norms(), st.integers(-3, 0))
def test_bad_scalars_raise_user_error(norms, bad):
    for kwargs in ({"n_stages": bad}, {"r_standard": bad}, {"delta_d": bad}):
        args = {"n_stages": 1, "r_standard": 8, "delta_d": 1, **kwargs}
        with pytest.raises(UserError):
            allocate(norms, args["n_stages"], args["r_standard"], args["delta_d"])
    with pytest.raises(UserError, match="--stages"):
        allocate(norms, len(norms) + 1, 8, 1)


@given(
    st.lists(st.integers(3, 300), min_size=2, max_size=64),
    st.sampled_from(sorted(FINE_SETTINGS)),
    st.sampled_from([2, 4]),
)
def test_fine_ranks_move_every_component_as_table_vi_says(layer_ranks, setting, dd):
    """Every component of every layer against Table VI transcribed in tests/references.py (even Δd: setting4's
    Δd / 2 is an integer)."""
    assume(min(layer_ranks) > 2 * dd)
    out = fine_ranks(layer_ranks, setting, dd)
    assert out == [table_vi(r, setting, dd) for r in layer_ranks]


@given(st.integers(1, 40), st.integers(1, 256), st.integers(0, 10_000))
def test_random_control_ranks_sum_to_the_budget_within_range(n_layers, r_standard, draw):
    ranks = random_layer_ranks(n_layers, r_standard, draw)
    assert len(ranks) == n_layers and sum(ranks) == n_layers * r_standard
    assert all(1 <= r <= max(1, 2 * r_standard - 1) for r in ranks)
    assert ranks == random_layer_ranks(n_layers, r_standard, draw)  # a draw is reproducible
