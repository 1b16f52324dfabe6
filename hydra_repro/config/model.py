"""The model's architecture as validated data: LM, vision tower and projector sizes, and the named presets.

Torch-free, so that checking a profile costs no torch import; `modeling.build_model` turns a `ModelConfig` into
weights.

    from hydra_repro.config.model import PRESETS, model_config_from_dict
    cfg = model_config_from_dict({"preset": "mini-1.7b", "lm": {"hidden_size": 128}}, "profiles.mini.models.small")
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from hydra_repro.config import dataclass_from_dict
from hydra_repro.errors import UserError


def _check_positive(where: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"{where}.{name}: got {value!r}; expected a positive integer")


@dataclass(frozen=True)
class LMConfig:
    """The Llama language model (MobileLLaMA at paper scale)."""

    vocab_size: int = 96
    hidden_size: int = 32
    intermediate_size: int = 88
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        names = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        _check_positive("model.lm", self, (*names, "num_key_value_heads", "max_position_embeddings"))
        if self.hidden_size % self.num_attention_heads or (self.hidden_size // self.num_attention_heads) % 2:
            raise UserError(
                f"model.lm.hidden_size: got {self.hidden_size}; expected a multiple of num_attention_heads "
                f"({self.num_attention_heads}) with an even head dimension (RoPE)"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise UserError(
                f"model.lm.num_key_value_heads: got {self.num_key_value_heads}; expected a divisor of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        # MobileNetV3 blocks round channel counts to multiples of 8; other sizes would not load in MobileVLM's code.
        if self.hidden_size % 8:
            raise UserError(f"model.lm.hidden_size: got {self.hidden_size}; expected a multiple of 8 (LDP projector)")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise UserError(f"model.lm.{name}: got {value}; expected 0 <= id < vocab_size ({self.vocab_size})")


@dataclass(frozen=True)
class VisionConfig:
    """The CLIP ViT vision tower (ViT-L/14-336 at paper scale)."""

    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    image_size: int = 16
    patch_size: int = 4
    select_layer: int = -2
    # `mm_vision_tower` in config.json: a name for built towers, a hub id or local path at paper scale.
    name: str = "hydra-repro/clip-tiny"

    def __post_init__(self) -> None:
        names = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size")
        _check_positive("model.vision", self, (*names, "patch_size"))
        if self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"model.vision.hidden_size: got {self.hidden_size}; expected a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.image_size % self.patch_size:
            raise UserError(
                f"model.vision.image_size: got {self.image_size}; expected a multiple of patch_size ({self.patch_size})"
            )
        # hidden_states holds the embeddings plus one entry per layer.
        if not -(self.num_hidden_layers + 1) <= self.select_layer <= self.num_hidden_layers:
            raise UserError(
                f"model.vision.select_layer: got {self.select_layer}; expected an index into the "
                f"{self.num_hidden_layers + 1} hidden states (MobileVLM uses -2)"
            )

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class ModelConfig:
    """A whole MobileVLM-architecture model; `build_model` turns it into weights (random, seeded)."""

    lm: LMConfig = dataclasses.field(default_factory=LMConfig)
    vision: VisionConfig = dataclasses.field(default_factory=VisionConfig)
    projector_type: Literal["ldpnet"] = "ldpnet"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.projector_type != "ldpnet":
            raise UserError(f"model.projector_type: got {self.projector_type!r}; expected 'ldpnet' (LDP v1)")

    @property
    def num_visual_tokens(self) -> int:
        """Visual tokens per image after the LDP's stride-2 block: ceil(grid / 2) ** 2."""
        return math.ceil(self.vision.grid / 2) ** 2


# Mini sizes are set by CPU cost: at batch 32 x ~95 positions one LM step took 1.1 s at hidden 64, 1.7 s at 96 and
# 2.4 s at 128 (24 layers, 1 thread, loaded machine); the mini pipeline trains dozens of runs.
def _mini(layers: int) -> ModelConfig:
    lm = LMConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
    )
    vision = VisionConfig(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=64,
        patch_size=8,
        name="hydra-repro/clip-mini",
    )
    return ModelConfig(lm=lm, vision=vision)


# Suggested scales; profiles override any field through `model_config_from_dict`.
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "mini-1.7b": _mini(24),  # mirrors MobileLLaMA 1.4B's 24 layers
    "mini-3b": _mini(32),  # mirrors MobileLLaMA 2.7B's 32 layers
}


def model_config_from_dict(mapping: dict[str, Any], where: str = "model") -> ModelConfig:
    """Validate a params.yaml section into a ModelConfig (unknown keys and bad values raise UserError).

    `preset: <name>` starts from `PRESETS[name]`; `lm:` and `vision:` override single fields of it.
    """
    mapping = dict(mapping)
    preset = mapping.pop("preset", None)
    if preset is None:
        return dataclass_from_dict(ModelConfig, mapping, where)
    if preset not in PRESETS:
        raise UserError(f"{where}.preset: got {preset!r}; expected one of {sorted(PRESETS)}")
    base = dataclasses.asdict(PRESETS[preset])
    for key in ("lm", "vision"):
        if isinstance(mapping.get(key), dict):
            mapping[key] = {**base[key], **mapping[key]}
    return dataclass_from_dict(ModelConfig, {**base, **mapping}, where)
