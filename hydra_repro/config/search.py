"""The `search` section of a profile: HyDRA's iterative enhancement phase. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra_repro.config.allocation import FINE_SETTINGS, RULES
from hydra_repro.errors import UserError


@dataclass(frozen=True)
class SearchConfig:
    """The `search` section of a profile in params.yaml."""

    role: str = field(default="small", metadata={"help": "the model role whose schedule is searched"})
    stages: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 8])
    delta_d: list[int] = field(default_factory=lambda: [1, 2, 3])
    rules: list[str] = field(default_factory=lambda: sorted(RULES))
    settings: list[str] = field(default_factory=lambda: list(FINE_SETTINGS))
    rounds: int = 2
    per_round: int = field(default=1, metadata={"help": "schedules Φ picks per round and per family (coarse, fine)"})
    random_runs: int = 4
    seed: int = 0
    on_degenerate: str = field(
        default="error", metadata={"help": "'error' or 'record' (write the reason instead; smoke's untrained runs)"}
    )

    def __post_init__(self) -> None:
        if self.on_degenerate not in ("error", "record"):
            raise UserError(f"search.on_degenerate: got {self.on_degenerate!r}; expected 'error' or 'record'")
        if self.role not in ("small", "large"):
            raise UserError(f"search.role: got {self.role!r}; expected 'small' or 'large'")
        for key in ("stages", "delta_d"):
            values = getattr(self, key)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise UserError(f"search.{key}: got {values!r}; expected a non-empty list of integers >= 1")
        if not self.rules or set(self.rules) - set(RULES):
            raise UserError(f"search.rules: got {self.rules!r}; expected a non-empty list from {sorted(RULES)}")
        if not self.settings or set(self.settings) - set(FINE_SETTINGS):
            raise UserError(f"search.settings: got {self.settings!r}; expected some of {list(FINE_SETTINGS)}")
        for key in ("rounds", "per_round", "random_runs"):
            if getattr(self, key) < 0:
                raise UserError(f"search.{key}: got {getattr(self, key)!r}; expected an integer >= 0")
