"""The `train` section of a profile: the paper's instruction-tuning settings as validated data.

Kept apart from `train.py` (torch, transformers, PEFT) so that stages which only read the settings, such as
`replicate` with one seed, do not pay the heavy imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra_repro.errors import UserError

METHODS = ("full", "lora", "schedule", "adalora", "eva")


# ----------------------------------------------------------------------------------------------------------------
# Configuration: the paper's settings (section IV, "Implementation Details") and MobileVLM's LoRA recipe as defaults
# ----------------------------------------------------------------------------------------------------------------
# `train.precision` sets every stage's precision (stage 0, stage I, train, gradnorm, search, evaluate).
# bf16-cpu: bf16 autocast on the CPU, to exercise the bf16 path where no GPU is (slow on most CPUs).
PRECISIONS = ("auto", "fp32", "bf16", "bf16-cpu")


def use_bf16(precision: str, cuda: bool, cuda_bf16: bool) -> bool:
    """Whether to run in bf16 on this machine; `bf16` without a bf16-capable CUDA device is an error, raised before
    any model is loaded."""
    if precision == "bf16" and not (cuda and cuda_bf16):
        found = "a CUDA device without bf16" if cuda else "no CUDA device"
        raise UserError(
            f"train.precision: got 'bf16', but this machine has {found}; expected auto, fp32 or bf16-cpu here"
        )
    return precision in ("bf16", "bf16-cpu") or (precision == "auto" and cuda and cuda_bf16)


@dataclass(frozen=True)
class TrainConfig:
    """The `train` section of a profile in params.yaml; CLI flags override single fields."""

    method: str = field(default="lora", metadata={"help": "full | lora | schedule | adalora | eva"})
    rank: int = field(
        default=128,
        metadata={"help": "lora: the uniform rank; schedule: R_standard of the budget C; adalora: target mean rank"},
    )
    alpha_ratio: float = field(default=2.0, metadata={"help": "lora_alpha = alpha_ratio x r per module (MobileVLM)"})
    lora_dropout: float = 0.05
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "None: the paper's, 1e-4 for a <= 24-layer LM (1.7B), 2e-4 deeper (3B); full FT 2e-5/4e-5"},
    )
    learning_rate_scale: float = field(
        default=1.0,
        metadata={"help": "multiplies the paper's LRs (keeps their LoRA : full ratio); mini's short runs use 10"},
    )
    num_train_epochs: float = 1.0
    max_steps: int = field(default=-1, metadata={"help": "> 0 overrides num_train_epochs (the mini profile)"})
    global_batch_size: int = field(default=128, metadata={"help": "per_device x devices x accumulation"})
    per_device_batch_size: int = 32
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 42
    max_length: int = 2048
    save_steps: int = field(default=500, metadata={"help": "checkpoint every N optimizer steps (resume point)"})
    save_total_limit: int = field(default=2, metadata={"help": "2: a checkpoint torn by a crash leaves its sibling"})
    logging_steps: int = 1
    gradient_checkpointing: bool = False
    precision: str = field(
        default="auto",
        metadata={"help": "every stage's: auto (bf16 on a bf16 GPU, fp32 on CPU) | fp32 | bf16 (GPU) | bf16-cpu"},
    )
    dataloader_num_workers: int = 0
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads; None: torch's default. 1 can be faster on a busy machine"}
    )
    fast_lora: bool = field(
        default=True, metadata={"help": "CPU: PEFT's LoRA layers run one fused autograd op (FastLoraLinear)"}
    )
    adalora_init_r: int | None = field(default=None, metadata={"help": "None: ceil(1.5 x rank), AdaLoRA's ratio"})
    adalora_tinit: float = field(default=0.1, metadata={"help": "share of steps before pruning starts"})
    adalora_tfinal: float = field(default=0.2, metadata={"help": "share of steps at the final ranks"})
    adalora_delta_t: int = field(default=10, metadata={"help": "steps between two rank reallocations"})
    rslora: bool = field(default=False, metadata={"help": "rsLoRA: scaling alpha / sqrt(r) instead of alpha / r"})
    group_by_modality: bool = field(
        default=False,
        metadata={"help": "MobileVLM's group_by_modality_length: image-only and text-only batches (sampling.py)"},
    )
    length_groups: int = field(
        default=1,
        metadata={
            "help": "compute each per-device batch as this many length-sorted micro-batches (microbatch.py): the same "
            "loss and gradient on less padding; a CPU speed setting (AdaLoRA always runs 1)"
        },
    )

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> UserError:
            return UserError(f"train.{name}: got {getattr(self, name)!r}; expected {expected}")

        if self.method not in METHODS:
            raise bad("method", f"one of {list(METHODS)}")
        positive = ("rank", "global_batch_size", "per_device_batch_size", "max_length", "save_steps")
        for name in (*positive, "save_total_limit", "logging_steps", "adalora_delta_t", "length_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "a positive integer")
        if self.adalora_init_r is not None and self.adalora_init_r < self.rank:
            raise bad("adalora_init_r", f"None or >= rank ({self.rank}): AdaLoRA only prunes")
        if not 0 <= self.lora_dropout < 1:
            raise bad("lora_dropout", "0 <= p < 1")
        if self.alpha_ratio <= 0:
            raise bad("alpha_ratio", "> 0")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise bad("learning_rate", "None (the paper's) or > 0")
        if not self.learning_rate_scale > 0:
            raise bad("learning_rate_scale", "> 0")
        if self.max_steps == 0 or self.max_steps < -1:
            raise bad("max_steps", "-1 (use num_train_epochs) or a positive integer")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise bad("num_train_epochs", "> 0")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "0 <= ratio < 1")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise bad("weight_decay" if self.weight_decay < 0 else "max_grad_norm", ">= 0")
        if self.lr_scheduler not in ("cosine", "linear", "constant", "constant_with_warmup"):
            raise bad("lr_scheduler", "cosine | linear | constant | constant_with_warmup")
        if self.precision not in PRECISIONS:
            raise bad("precision", " | ".join(PRECISIONS))
        if not 0 <= self.adalora_tinit < 1 or not 0 <= self.adalora_tfinal < 1:
            raise bad("adalora_tinit" if not 0 <= self.adalora_tinit < 1 else "adalora_tfinal", "a share in [0, 1)")
        if self.adalora_tinit + self.adalora_tfinal >= 1:
            raise bad("adalora_tfinal", f"adalora_tinit + adalora_tfinal < 1 (tinit is {self.adalora_tinit})")
        if self.dataloader_num_workers < 0:
            raise bad("dataloader_num_workers", ">= 0")
        if self.rslora and self.method not in ("lora", "schedule"):
            raise bad("rslora", f"False for method {self.method!r} (rsLoRA scaling applies to lora and schedule)")
        if self.num_threads is not None and self.num_threads < 1:
            raise bad("num_threads", "None or a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise bad("seed", "an integer in [0, 2**32 - 1] (numpy's seed range)")

    def resolved_learning_rate(self, n_layers: int) -> float:
        """The configured LR, or the paper's for this depth (MobileVLM's full fine-tuning LR for `full`)."""
        if self.learning_rate is not None:
            return self.learning_rate
        small = n_layers <= 24  # MobileLLaMA 1.4B has 24 layers, 2.7B has 32
        if self.method == "full":
            return self.learning_rate_scale * (2e-5 if small else 4e-5)
        return self.learning_rate_scale * (1e-4 if small else 2e-4)

    def resolved_init_r(self) -> int:
        return self.adalora_init_r if self.adalora_init_r is not None else math.ceil(1.5 * self.rank)

    def effective_length_groups(self) -> int:
        """`length_groups`, except 1 for AdaLoRA: PEFT adds its orthogonality penalty once per forward call."""
        return 1 if self.method == "adalora" else self.length_groups

    def gradient_accumulation(self, world_size: int) -> tuple[int, int]:
        """(per-device batch, accumulation steps) giving exactly `global_batch_size` per optimizer step."""
        per_device = min(self.per_device_batch_size, max(1, self.global_batch_size // world_size))
        if self.global_batch_size % (per_device * world_size):
            raise UserError(
                f"train.global_batch_size: got {self.global_batch_size}; expected a multiple of per_device_batch_size "
                f"({per_device}) x devices ({world_size})"
            )
        return per_device, self.global_batch_size // (per_device * world_size)


def train_config_from_params(params: str | Path | None, profile: str | None, **overrides: Any) -> TrainConfig:
    """The profile's `train` section of params.yaml (absent: the paper's defaults) with non-None `overrides`."""
    from hydra_repro.config import dataclass_from_dict, load_params

    section: dict[str, Any] = {}
    if params is not None:
        name, prof = load_params(params, profile)
        section = dict(prof.get("train") or {})
        where = f"{params}: profiles.{name}.train"
    else:
        where = "train"
    section.update({k: v for k, v in overrides.items() if v is not None})
    return dataclass_from_dict(TrainConfig, section, where)
