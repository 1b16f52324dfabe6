"""What an allocation records beside its ranks, against values worked out by hand from the paper's formulas
(tests/references.py): the stages, their mean norms, R1 before and after the iteration, the number of iterations,
and the request itself. The schedule JSON that `train` and the tables read is this record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_repro.core.allocation import ModelDims, allocate, coarse_ranks, partition_stages
from hydra_repro.errors import UserError
from tests.references import eq7, eq8

# 6 layers, three clear groups of norms: stages of 2, 2 and 2 layers in ascending-norm order
NORMS = [0.1, 0.1, 0.5, 0.5, 0.9, 0.9]


def test_allocation_records_its_stages_r1_and_request():
    a = allocate(NORMS, 3, 8, 2, rule="as-written", setting="coarse")
    assert a.stage_sizes == [2, 2, 2]
    assert a.stage_mean_norms == pytest.approx([0.1, 0.5, 0.9])
    assert a.stage_of_layer == [0, 0, 1, 1, 2, 2]
    # eq. 7: 2 floor((8 - 5) / 2) = 2; the iteration raises R1 while eq. 8's last stage stays above the one before
    assert a.r1_initial == eq7(8, 6) == 2
    assert a.stage_ranks == eq8(a.r1, [2, 2, 2], 2, 8)
    assert eq8(a.r1 + 1, [2, 2, 2], 2, 8)[-1] - eq8(a.r1 + 1, [2, 2, 2], 2, 8)[-2] < 1  # the next R1 breaks it
    assert a.iterations == a.r1 - max(1, a.r1_initial)  # one step of +1 per iteration from the start
    assert (a.rule, a.setting, a.r_standard, a.delta_d) == ("as-written", "coarse", 8, 2)
    record = json.loads(json.dumps(a.to_dict()))
    assert record["r1"] == a.r1 and record["stage_sizes"] == [2, 2, 2] and record["over_budget"] == a.over_budget
    assert all(isinstance(s, int) for s in record["stage_of_layer"])  # stage ids are integers in the JSON


def test_one_stage_is_uniform_at_r_standard():
    result = coarse_ranks([6], 8, 2)
    assert (result.r1_initial, result.r1, result.stage_ranks, result.iterations) == (eq7(8, 6), 8, [8], 0)


@given(st.lists(st.sampled_from([0.2, 0.4, 0.6, 0.8]), min_size=4, max_size=24), st.integers(1, 4))
def test_equal_norms_are_never_split_across_stages(norms, k):
    """A stage boundary only falls where the sorted norms rise: layers with the same norm share a stage."""
    try:
        stages = partition_stages(norms, k)
    except UserError:  # fewer distinct norms than stages
        assert len(set(norms)) < k
        return
    for value in set(norms):
        assert len({s for s, x in zip(stages, norms) if x == value}) == 1


@pytest.mark.parametrize("layers", [1, 2])
def test_model_dims_accept_the_smallest_valid_sizes(layers):
    dims = ModelDims(8, 16, 1, 1, num_hidden_layers=layers)
    assert dims.io("q_proj") == (8, 8)
    with pytest.raises(UserError, match="num_hidden_layers=0"):
        ModelDims(8, 16, 1, 1, num_hidden_layers=0)
