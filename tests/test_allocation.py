"""Example tests pinned to the paper: eq. 7, Table V's Config1-4, Table VI, and the parameter accounting."""

from __future__ import annotations

import pytest

from hydra_repro.constants import COMPONENTS
from hydra_repro.core.allocation import (
    CONFIG4_PAPER,
    FIXED_LAYOUTS,
    MOBILELLAMA_1_4B,
    SMOLLM2_135M,
    allocate,
    budget_params,
    coarse_ranks,
    config4_stage_sizes,
    partition_stages,
    r1_initial,
    trainable_params,
)
from hydra_repro.errors import InfeasibleError


def test_eq7_for_24_layers():
    # α = 23/2, R1_initial = 2 floor((128 - 23) / 2) = 2 x 52 = 104
    assert r1_initial(128, 24) == 104
    assert r1_initial(128, 32) == 2 * ((128 - 31) // 2) == 96


def test_config4_as_written_differs_from_table():
    sizes = config4_stage_sizes()
    assert sizes == [8, 4, 12]
    as_written = coarse_ranks(sizes, 128, 2, "as-written")
    assert as_written.stage_ranks == [126, 128, 129]  # docs/discrepancies.md
    table = coarse_ranks(sizes, 128, 2, "table")
    assert tuple(table.stage_ranks) == CONFIG4_PAPER["ranks"] == (124, 126, 131)
    # both use 3068 of the 3072 rank units of the budget
    assert sum(r * n for r, n in zip(table.stage_ranks, sizes)) == 3068
    assert sum(r * n for r, n in zip(as_written.stage_ranks, sizes)) == 3068


def test_config4_from_gradient_norms_rising_with_depth():
    norms = [0.2] * 8 + [0.6] * 4 + [1.4] * 12
    a = allocate(norms, 3, 128, 2, rule="table", setting="setting1")
    assert a.stage_of_layer == [0] * 8 + [1] * 4 + [2] * 12
    assert a.stage_ranks == [124, 126, 131]
    assert a.ranks[0] == {
        "q_proj": 122,
        "k_proj": 122,
        "v_proj": 124,
        "o_proj": 124,
        "up_proj": 126,
        "down_proj": 124,
        "gate_proj": 124,
    }


def test_stages_need_not_be_contiguous_in_depth():
    norms = [1.0, 0.1, 1.1, 0.12, 0.11, 1.05]
    assert partition_stages(norms, 2) == [1, 0, 1, 0, 0, 1]


@pytest.mark.parametrize(
    "name, ranks",
    [
        ("config1", [128] * 4 + [64] * 16 + [128] * 4),
        ("config2", [256] * 4 + [128] * 16 + [256] * 4),
        ("config3", [64] * 8 + [128] * 8 + [256] * 8),
        ("case", [64] * 8 + [128] * 8 + [256] * 8),
        ("uniform_2x", [256] * 24),
    ],
)
def test_table_v_and_table_ii_layouts_at_paper_scale(name, ranks):
    assert FIXED_LAYOUTS[name].layer_ranks(24, 128) == ranks


def test_layouts_scale_to_32_layers():
    ranks = FIXED_LAYOUTS["config3"].layer_ranks(32, 16)
    assert ranks == [8] * 11 + [16] * 10 + [32] * 11


def test_budget_mobilellama_1_4b():
    # per layer: Q,K,V,O 4 x (2048+2048) + Gate,Up 2 x (2048+5632) + Down (5632+2048) = 39424 per unit rank
    assert budget_params(128, MOBILELLAMA_1_4B) == 128 * 24 * 39424 == 121_110_528


def test_budget_smollm2_grouped_query_attention():
    # head_dim 64; K and V project 576 -> 3 x 64 = 192
    assert SMOLLM2_135M.io("k_proj") == (576, 192)
    per_rank = (576 + 576) + 2 * (576 + 192) + (576 + 576) + 2 * (576 + 1536) + (1536 + 576)
    assert per_rank == 10176
    assert budget_params(8, SMOLLM2_135M) == 8 * 30 * 10176 == 2_442_240
    uniform = [{c: 8 for c in COMPONENTS}] * 30
    assert trainable_params(uniform, SMOLLM2_135M) == budget_params(8, SMOLLM2_135M)


def test_fine_settings_over_budget_on_mobilellama():
    norms = [0.2] * 8 + [0.6] * 4 + [1.4] * 12
    over = {
        s: allocate(norms, 3, 128, 2, rule="table", setting=s).over_budget
        for s in ("coarse", "setting1", "setting2", "setting3", "setting4", "setting5")
    }
    assert over == {
        "coarse": False,
        "setting1": False,
        "setting2": True,
        "setting3": False,
        "setting4": True,
        "setting5": True,
    }


def test_infeasible_budget_is_an_error():
    with pytest.raises(InfeasibleError, match="budget"):
        coarse_ranks([1] * 17, 8, 2)


def test_setting4_needs_even_delta_d():
    with pytest.raises(InfeasibleError, match="even"):
        allocate([0.1, 0.2, 0.3], 3, 32, 1, setting="setting4")


def test_the_config_names_every_rule_and_setting_the_core_implements():
    from hydra_repro.config import allocation as names
    from hydra_repro.core import allocation

    assert tuple(allocation.RULES) == names.RULES
    assert tuple(allocation.FINE_SETTINGS) == names.FINE_SETTINGS
