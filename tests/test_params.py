"""Every profile in params.yaml is valid: known keys, right types, feasible rank settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.allocation import AllocationParams
from hydra_repro.core.allocation import coarse_ranks
from hydra_repro.errors import UserError
from tests.references import eq8, valid_r1

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
PROFILES = sorted(yaml.safe_load(PARAMS.read_text())["profiles"])


@pytest.mark.parametrize("profile", PROFILES)
def test_allocation_section_is_valid_and_feasible(profile):
    _, section = load_params(PARAMS, profile)
    p = dataclass_from_dict(AllocationParams, section["allocation"], f"profiles.{profile}.allocation")
    # a 3-stage split of a 24-layer model like Table V's Config4 must be feasible at every scale, and its ranks are
    # eq. 8's ladder from the largest valid R1 (references written from the paper, tests/references.py)
    result = coarse_ranks([8, 4, 12], p.r_standard, p.delta_d, p.rule)
    assert result.stage_ranks == eq8(result.r1, [8, 4, 12], p.delta_d, p.r_standard)
    assert valid_r1(result.r1, [8, 4, 12], p.r_standard, p.delta_d, p.rule)
    assert not valid_r1(result.r1 + 1, [8, 4, 12], p.r_standard, p.delta_d, p.rule)


def test_unknown_profile_and_keys_are_named(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("profile: minni\nprofiles: {mini: {}}\n")
    with pytest.raises(UserError, match="'minni'"):
        load_params(bad)
    with pytest.raises(UserError, match="profiles.mini.allocation: unknown key 'rstandard'"):
        dataclass_from_dict(AllocationParams, {"rstandard": 8}, "profiles.mini.allocation")
    with pytest.raises(UserError, match="allocation.delta_d: got 'two'"):
        dataclass_from_dict(AllocationParams, {"r_standard": 8, "delta_d": "two", "stages": 3}, "allocation")
    with pytest.raises(UserError, match="allocation.rule"):
        AllocationParams(8, 1, 3, rule="paper")
