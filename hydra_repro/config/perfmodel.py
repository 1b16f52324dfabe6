"""The `perfmodel` section of a profile: the performance model and its baselines. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra_repro.errors import UserError


@dataclass(frozen=True)
class PerfModelConfig:
    """The `perfmodel` section of a profile in params.yaml."""

    role: str = field(default="small", metadata={"help": "which model's runs form the data set (small / large)"})
    epochs: int = 300
    lr: float = 3e-3
    d_model: int = 32
    heads: int = 4
    ff: int = 64
    val_fraction: float = field(default=0.2, metadata={"help": "the paper's 8:2 split"})
    folds: int = 5
    repeats: int = 3
    seed: int = 0
    on_degenerate: str = field(
        default="error", metadata={"help": "'error' or 'record' (write the reason instead; smoke's untrained runs)"}
    )

    def __post_init__(self) -> None:
        if self.on_degenerate not in ("error", "record"):
            raise UserError(f"perfmodel.on_degenerate: got {self.on_degenerate!r}; expected 'error' or 'record'")
        for key in ("epochs", "d_model", "heads", "ff", "repeats"):
            if getattr(self, key) < 1:
                raise UserError(f"perfmodel.{key}: got {getattr(self, key)!r}; expected an integer >= 1")
        if self.folds < 2:
            raise UserError(f"perfmodel.folds: got {self.folds!r}; expected an integer >= 2")
        if self.d_model % self.heads:
            raise UserError(f"perfmodel.d_model: got {self.d_model}; expected a multiple of heads ({self.heads})")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"perfmodel.val_fraction: got {self.val_fraction!r}; expected a fraction in (0, 1)")
        if not self.lr > 0:
            raise UserError(f"perfmodel.lr: got {self.lr!r}; expected a positive number")
