"""A whole profile is validated up front: any misspelled key of any section is named before work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hydra_repro.config.validate import validate_profile
from hydra_repro.core.registry import check_registry
from hydra_repro.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.mark.parametrize("profile", sorted(PARAMS["profiles"]))
def test_every_shipped_profile_validates(profile):
    assert validate_profile(REPO / "params.yaml", profile) == profile
    check_registry(REPO / "experiments" / "runs.yaml", REPO / "params.yaml", profile)


@pytest.mark.parametrize(
    "section, value, needle",
    [
        ("train", {"max_step": 3}, "profiles.smoke.train: unknown key 'max_step'"),
        ("train", {"max_steps": "many"}, "profiles.smoke.train.max_steps: got 'many'"),
        ("pretrain", {"steps": 0}, "pretrain.steps: got 0"),
        ("gradnorm", {"stepz": 3}, "unknown key 'stepz'"),
        ("allocation", {"r_standard": 8, "delta_d": 2, "stages": 3, "rule": "paper"}, "allocation.rule"),
        ("evaluate", {"batchsize": 3}, "evaluate: unknown key 'batchsize'"),
        ("models", {"small": {"preset": "tiny"}}, "expected the roles"),
        ("models", {"small": {"preset": "huge"}, "large": {"preset": "tiny"}}, "preset: got 'huge'"),
        ("extra", {}, "unknown section 'extra'"),
    ],
)
def test_bad_sections_are_named(tmp_path, section, value, needle):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profiles"]["smoke"][section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(UserError, match=needle):
        validate_profile(path, "smoke")


def test_unknown_profile_is_named():
    with pytest.raises(UserError, match="'minni'"):
        validate_profile(REPO / "params.yaml", "minni")
