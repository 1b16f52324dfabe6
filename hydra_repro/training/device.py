"""Where and in which precision a stage runs: one key (`train.precision`) for every stage, resolved here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra_repro.config.train import use_bf16


@dataclass(frozen=True)
class Runtime:
    device: str  # "cuda" or "cpu"
    bf16: bool  # bf16 autocast (Trainer's `bf16`), fp32 master weights

    @property
    def dtype(self) -> Any:
        """The weights' dtype for inference (evaluation): bf16 under bf16, else fp32."""
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32

    def autocast(self) -> Any:
        """A context for a hand-written loop: bf16 autocast on the runtime's device, or nothing."""
        import contextlib

        import torch

        return torch.autocast(self.device, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()


def runtime(precision: str) -> Runtime:
    """CUDA when present, else the CPU; bf16 per `precision` (`config.train.use_bf16`)."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = use_bf16(precision, cuda, cuda and torch.cuda.is_bf16_supported())
    return Runtime("cuda" if cuda else "cpu", bf16)


def check_launch() -> None:
    """Under `accelerate launch` with DeepSpeed, its config file must exist (the env var names it): checked before
    any model is loaded, with the path named."""
    import os
    from pathlib import Path

    from hydra_repro.errors import UserError

    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() != "true":
        return
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "")
    if not path or not Path(path).is_file():
        raise UserError(
            f"deepspeed_config_file: got {path!r}, which does not exist; expected a DeepSpeed JSON such as "
            "configs/deepspeed/zero2.json (named in the accelerate config)"
        )
