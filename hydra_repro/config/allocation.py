"""The `allocation` section of a profile, and the names of the allocation rules and fine-grained settings that
`allocation.py` implements (a test checks that the two agree). Torch-free, numpy-free."""

from __future__ import annotations

from dataclasses import dataclass

from hydra_repro.errors import UserError

# the stopping rules of the R1 iteration and the fine-grained settings (implemented in allocation.RULES / FINE_SETTINGS)
RULES = ("as-written", "table", "eq5-last")
FINE_SETTINGS = ("coarse", "setting1", "setting2", "setting3", "setting4", "setting5")


@dataclass(frozen=True)
class AllocationParams:
    """The `allocation` section of a profile in params.yaml."""

    r_standard: int
    delta_d: int
    stages: int
    rule: str = "table"  # the rule behind the paper's Table V / III numbers (docs/discrepancies.md section 1)

    def __post_init__(self) -> None:
        for key in ("r_standard", "delta_d", "stages"):
            if getattr(self, key) < 1:
                raise UserError(f"allocation.{key}: got {getattr(self, key)!r}; expected an integer >= 1")
        if self.rule not in RULES:
            raise UserError(f"allocation.rule: got {self.rule!r}; expected one of {sorted(RULES)}")
