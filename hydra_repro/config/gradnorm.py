"""The `gradnorm` section of a profile (eq. 1's uniform-LoRA run). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra_repro.errors import UserError


@dataclass(frozen=True)
class GradNormConfig:
    """The `gradnorm` section of a profile in params.yaml (training settings come from its `train` section)."""

    steps: int = field(default=100, metadata={"help": "optimizer steps of the uniform-LoRA run"})
    rank: int | None = field(default=None, metadata={"help": "uniform LoRA rank; None: train.rank"})
    skip_first_steps: int | None = field(
        default=None, metadata={"help": "steps left out of the averages; None: the leading steps whose A grads are 0"}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise UserError(f"gradnorm.steps: got {self.steps!r}; expected a positive integer")
        if self.rank is not None and (not isinstance(self.rank, int) or self.rank < 1):
            raise UserError(f"gradnorm.rank: got {self.rank!r}; expected None or a positive integer")
        if self.skip_first_steps is not None and not 0 <= self.skip_first_steps < self.steps:
            raise UserError(
                f"gradnorm.skip_first_steps: got {self.skip_first_steps!r}; expected 0 <= n < steps ({self.steps})"
            )
