"""The VLM's transformers config: a LlamaConfig with MobileVLM's `mm_*` keys, the CLIP tower's config, and the
paper profile's hub ids."""

from __future__ import annotations

import re
from typing import Any

from transformers import (
    AutoConfig,
    CLIPVisionConfig,
    LlamaConfig,
)

from hydra_repro.config.model import ModelConfig, VisionConfig

# Hub ids of the paper profile; the loader names them when a checkpoint is missing (the hub is unreachable here).
PAPER_HUB_IDS = {
    "mtgv/MobileVLM-1.7B": "MobileVLM 1.7B (MobileLLaMA-1.4B + CLIP ViT-L/14-336 + LDP)",
    "mtgv/MobileVLM-3B": "MobileVLM 3B (MobileLLaMA-2.7B + CLIP ViT-L/14-336 + LDP)",
    "mtgv/MobileLLaMA-1.4B-Chat": "MobileLLaMA 1.4B chat LM",
    "openai/clip-vit-large-patch14-336": "CLIP ViT-L/14-336 vision tower",
}


PAPER_VISION_TOWER = "openai/clip-vit-large-patch14-336"


# CLIP's normalisation constants (OPENAI_CLIP_MEAN / STD), used by MobileVLM through CLIPImageProcessor.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


WEIGHTS_NAME = "model.safetensors"


# Buffers that older checkpoints stored and current modules recompute; skipped when loading.
_IGNORED_KEYS = re.compile(r"(rotary_emb\.inv_freq|embeddings\.position_ids)$")


class HydraVLMConfig(LlamaConfig):
    """LlamaConfig plus MobileVLM's `mm_*` keys; `model_type` is MobileVLM's so config.json reads the same."""

    model_type = "mobilevlm"


AutoConfig.register("mobilevlm", HydraVLMConfig, exist_ok=True)


def clip_config(vis: VisionConfig) -> CLIPVisionConfig:
    """The transformers config of the vision tower `vis` describes."""
    return CLIPVisionConfig(
        hidden_size=vis.hidden_size,
        intermediate_size=vis.intermediate_size,
        num_hidden_layers=vis.num_hidden_layers,
        num_attention_heads=vis.num_attention_heads,
        image_size=vis.image_size,
        patch_size=vis.patch_size,
        projection_dim=vis.hidden_size,
    )


def _hf_config(cfg: ModelConfig) -> HydraVLMConfig:
    lm, vis = cfg.lm, cfg.vision
    vision_config = clip_config(vis)
    return HydraVLMConfig(
        vocab_size=lm.vocab_size,
        hidden_size=lm.hidden_size,
        intermediate_size=lm.intermediate_size,
        num_hidden_layers=lm.num_hidden_layers,
        num_attention_heads=lm.num_attention_heads,
        num_key_value_heads=lm.num_key_value_heads,
        max_position_embeddings=lm.max_position_embeddings,
        rms_norm_eps=lm.rms_norm_eps,
        rope_theta=lm.rope_theta,
        bos_token_id=lm.bos_token_id,
        eos_token_id=lm.eos_token_id,
        pad_token_id=lm.pad_token_id,
        tie_word_embeddings=False,
        architectures=["MobileLlamaForCausalLM"],
        **_mm_keys(vis.name, vis.hidden_size, vis.select_layer),
        mm_vision_config=_vision_config_dict(vision_config),
    )


def _mm_keys(tower: str, mm_hidden_size: int, select_layer: int) -> dict[str, Any]:
    """The mm_* keys MobileVLM V1 writes into config.json (stage II values)."""
    return {
        "mm_vision_tower": tower,
        "vision_tower_type": "clip",
        "mm_hidden_size": mm_hidden_size,
        "mm_projector_type": "ldpnet",
        "mm_vision_select_layer": select_layer,
        "mm_vision_select_feature": "patch",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
        "use_mm_proj": True,
        "tune_mm_mlp_adapter": False,
        "freeze_mm_mlp_adapter": False,
    }


def _vision_config_dict(vision_config: CLIPVisionConfig) -> dict[str, Any]:
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels")
    keys += ("image_size", "patch_size", "hidden_act", "layer_norm_eps", "projection_dim")
    return {k: getattr(vision_config, k) for k in keys}
