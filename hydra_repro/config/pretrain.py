"""The `pretrain_vision` (stage 0) and `pretrain` (stage I) sections of a profile. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra_repro.errors import UserError


@dataclass(frozen=True)
class VisionPretrainConfig:
    """The `pretrain_vision` section of a profile in params.yaml."""

    mode: str = field(default="train", metadata={"help": "'train' (mini/smoke) or 'pretrained' (paper)"})
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    warmup_ratio: float = 0.03
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    holdout: int = field(default=500, metadata={"help": "train images kept out to measure per-head accuracy"})
    seed: int = 0
    log_every: int = 100
    num_threads: int = 1
    path: str = field(default="", metadata={"help": "pretrained mode: local CLIP directory"})

    def __post_init__(self) -> None:
        if self.mode not in ("train", "pretrained"):
            raise UserError(f"pretrain_vision.mode: got {self.mode!r}; expected 'train' or 'pretrained'")
        for key in ("steps", "batch_size", "log_every", "num_threads"):
            if getattr(self, key) < 1:
                raise UserError(f"pretrain_vision.{key}: got {getattr(self, key)!r}; expected an integer >= 1")
        if self.holdout < 0:
            raise UserError(f"pretrain_vision.holdout: got {self.holdout!r}; expected an integer >= 0")
        if not self.lr > 0:
            raise UserError(f"pretrain_vision.lr: got {self.lr!r}; expected a positive number")
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"pretrain_vision.warmup_ratio: got {self.warmup_ratio!r}; expected a fraction in [0, 1)")
        if self.mode == "pretrained" and not self.path:
            raise UserError("pretrain_vision.path: empty; pretrained mode needs a local CLIP directory")


def profile_vision(section: dict[str, Any], where: str) -> Any:
    """The one VisionConfig all models of a profile share (as MobileVLM 1.7B and 3B share one CLIP)."""
    from hydra_repro.config.model import model_config_from_dict

    models = section.get("models")
    if not isinstance(models, dict) or not models:
        raise UserError(f"{where}.models: missing or empty; expected a mapping of model name -> model config")
    visions = {name: model_config_from_dict(m, f"{where}.models.{name}").vision for name, m in models.items()}
    first, *rest = visions.items()
    for name, vis in rest:
        if vis != first[1]:
            raise UserError(
                f"{where}.models.{name}.vision: differs from models.{first[0]}.vision; all models of a profile share "
                "one pretrained vision tower"
            )
    return first[1]


@dataclass(frozen=True)
class PretrainConfig:
    """The `pretrain` section of a profile in params.yaml."""

    mode: str = field(default="from_scratch", metadata={"help": "'from_scratch' (mini/smoke) or 'projector' (paper)"})
    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 128
    seed: int = 0
    log_every: int = 20
    num_threads: int = field(default=2, metadata={"help": "torch CPU threads (the machines have 2 cores)"})
    init: str | dict[str, str] = field(
        default="", metadata={"help": "projector mode: the LM checkpoint dir, or a mapping model role -> dir"}
    )
    vision_tower_path: str = field(default="", metadata={"help": "projector mode: local CLIP ViT-L/14-336 dir"})
    conv_template: str = field(
        default="", metadata={"help": "projector mode from a plain LM: its chat template (empty: MobileVLM's v1)"}
    )
    train_vision_tower: bool = field(
        default=False, metadata={"help": "from_scratch with a stage-0 tower: keep training it here (else frozen)"}
    )
    length_groups: int = field(
        default=1, metadata={"help": "each batch as this many length-sorted micro-batches (microbatch.py; CPU speed)"}
    )
    per_device_batch_size: int = field(
        default=0, metadata={"help": "0: batch_size / devices; smaller: gradient accumulation keeps batch_size"}
    )
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW's beta2 (HF's default, as MobileVLM)"})
    template: str = field(
        default="", metadata={"help": "stage I's conversation template (MobileVLM: plain); empty: the model's own"}
    )
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("from_scratch", "projector"):
            raise UserError(f"pretrain.mode: got {self.mode!r}; expected 'from_scratch' or 'projector'")
        for key in ("steps", "batch_size", "max_length", "log_every", "num_threads", "length_groups"):
            if getattr(self, key) < 1:
                raise UserError(f"pretrain.{key}: got {getattr(self, key)!r}; expected an integer >= 1")
        if not self.lr > 0:
            raise UserError(f"pretrain.lr: got {self.lr!r}; expected a positive number")
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"pretrain.warmup_ratio: got {self.warmup_ratio!r}; expected a fraction in [0, 1)")
        if self.per_device_batch_size < 0:
            raise UserError(f"pretrain.per_device_batch_size: got {self.per_device_batch_size!r}; expected >= 0")
        if not 0 < self.adam_beta2 < 1:
            raise UserError(f"pretrain.adam_beta2: got {self.adam_beta2!r}; expected a number in (0, 1)")
        if self.template not in ("", "v1", "chatml", "plain"):
            raise UserError(f"pretrain.template: got {self.template!r}; expected '', 'v1', 'chatml' or 'plain'")
        if self.mode == "projector" and not self.init:
            raise UserError("pretrain.init: empty; projector mode needs a local MobileLLaMA/MobileVLM checkpoint dir")
        if isinstance(self.init, dict) and not all(isinstance(v, str) and v for v in self.init.values()):
            raise UserError(f"pretrain.init: got {self.init!r}; expected a mapping model role -> checkpoint dir")

    def init_for(self, model_name: str) -> str:
        """The LM checkpoint of one model role (`init` may name one per role, as the paper's two sizes need)."""
        if not isinstance(self.init, dict):
            return self.init
        if model_name not in self.init:
            raise UserError(f"pretrain.init: no entry for model {model_name!r}; it names {sorted(self.init)}")
        return self.init[model_name]

    def gradient_accumulation(self, world_size: int) -> tuple[int, int]:
        """(per-device batch, accumulation steps) giving exactly `batch_size` per optimizer step."""
        per_device = max(1, self.batch_size // world_size)
        if self.per_device_batch_size:
            per_device = min(self.per_device_batch_size, per_device)
        if self.batch_size % (per_device * world_size):
            raise UserError(
                f"pretrain.batch_size: got {self.batch_size}; expected a multiple of per_device_batch_size "
                f"({per_device}) x devices ({world_size})"
            )
        return per_device, self.batch_size // (per_device * world_size)
