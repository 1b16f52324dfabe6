"""MobileVLM's architecture at every scale: CLIP vision tower -> LDP v1 projector -> Llama causal LM.

One model class serves the `paper` profile (MobileVLM 1.7B / 3B checkpoints) and the `mini`, `smoke` and test
profiles (the same modules, built small from a `ModelConfig` and random weights).

    from hydra_repro.config.model import ModelConfig
    from hydra_repro.modeling import build_model, load_model
    model = build_model(ModelConfig())                       # tiny, random, seeded
    model.save_pretrained("models/mini/base", tokenizer=tok)  # MobileVLM's directory layout, written atomically
    loaded = load_model("models/mini/base")                   # -> LoadedModel(model, tokenizer, image_processor)
    answers = loaded.model.generate_batch(prompts_ids, pixel_values, max_new_tokens=8)

Module names (state-dict keys are these plus `.weight` / `.bias`), identical to MobileVLM's checkpoints:

    model.embed_tokens, model.norm, lm_head                      the Llama LM
    model.layers.<i>.self_attn.{q,k,v,o}_proj                    the 4 attention projections   } the 7 LoRA targets
    model.layers.<i>.mlp.{gate,up,down}_proj                     the 3 MLP projections         } (`lora_target_names`)
    model.mm_projector.model.mlp.{1,3}                           LDP: Linear, GELU, Linear
    model.mm_projector.model.mb_block.{1,2}.block.0.{0,1}        LDP: depthwise 3x3 conv, LayerNorm (+ hard-swish)
    model.mm_projector.model.mb_block.{1,2}.block.1.{fc1,fc2}    LDP: squeeze-excitation
    model.mm_projector.model.mb_block.{1,2}.block.2.{0,1}        LDP: pointwise conv, LayerNorm
    model.vision_tower.vision_tower.vision_model.<CLIP keys>     CLIP ViT (its own `...encoder.layers.<i>.self_attn.
                                                                 q_proj` etc. are NOT LoRA targets: match LoRA by full
                                                                 name, never by the bare suffix `q_proj`)

Images enter `forward` and `generate_batch` as pixel tensors (B, 3, S, S) from `process_images`; each sample's single
`IMAGE_TOKEN_INDEX` (-200) placeholder in `input_ids` is replaced by the projector's visual tokens (LLaVA style).
Known trap: MobileVLM's own code decides "decoding step, skip the image" with `if past_key_values:`; an empty
`DynamicCache` is truthy on modern transformers, so that test silently drops the image. Here the image path is taken
whenever a placeholder is present, and an image without a placeholder is an error, never ignored.

transformers 5 notes: `CLIPVisionModel` no longer has a `vision_model` submodule (its keys start at `embeddings.`),
so `CLIPVisionTower` wraps it in a small container to keep MobileVLM's `vision_tower.vision_model.` keys.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from hydra_repro.config.model import ModelConfig, VisionConfig
from hydra_repro.constants import COMPONENT_PARENT, COMPONENTS, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, read_json

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


# ----------------------------------------------------------------------------------------------------------------
# Vision tower and LDP projector
# ----------------------------------------------------------------------------------------------------------------
class _VisionModelKeys(nn.Module):
    """Holds CLIPVisionModel as `.vision_model`: keys read `vision_tower.vision_model.*` (transformers 4 layout)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.vision_model = CLIPVisionModel(config)


class CLIPVisionTower(nn.Module):
    """CLIP ViT returning the patch tokens of hidden layer `select_layer` (MobileVLM: -2, CLS dropped)."""

    def __init__(self, config: CLIPVisionConfig, select_layer: int = -2, select_feature: str = "patch") -> None:
        super().__init__()
        if select_feature != "patch":
            raise UserError(f"mm_vision_select_feature: got {select_feature!r}; expected 'patch'")
        self.vision_tower = _VisionModelKeys(config)
        self.select_layer = select_layer

    @property
    def clip(self) -> CLIPVisionModel:
        return self.vision_tower.vision_model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> patch features (B, (S/patch)**2, vision_hidden)."""
        param = self.clip.embeddings.patch_embedding.weight
        out = self.clip(pixel_values=images.to(device=param.device, dtype=param.dtype), output_hidden_states=True)
        return out.hidden_states[self.select_layer][:, 1:]


class AttributeHeads(nn.Module):
    """Vision pretraining probe: one learned query per head attends over the patch tokens, a linear layer
    classifies the pooled vector. Attention pooling lets a head find its object wherever it is (a mean blurs
    position and digits)."""

    def __init__(self, hidden: int, classes: list[int]) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(len(classes), hidden) * hidden**-0.5)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.ModuleList(nn.Linear(hidden, k) for k in classes)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        x = self.norm(tokens)
        attn = torch.softmax(torch.einsum("hd,bnd->bhn", self.query, x) * x.shape[-1] ** -0.5, dim=-1)
        pooled = torch.einsum("bhn,bnd->bhd", attn, x)
        return [head(pooled[:, j]) for j, head in enumerate(self.out)]


def _make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding (nearest multiple of `divisor`, never below 90% of `value`)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (B, C, H, W) map (timm's LayerNormAct2d without activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _conv_norm(channels: int, kernel: int, stride: int, groups: int, act: bool) -> nn.Sequential:
    # Sequential indices give MobileVLM's keys: .0 conv (no bias: the norm has one), .1 norm, .2 activation.
    layers: list[nn.Module] = [
        nn.Conv2d(channels, channels, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        LayerNorm2d(channels, eps=1e-5),
    ]
    if act:
        layers.append(nn.Hardswish())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gate: global average -> 1x1 conv -> ReLU -> 1x1 conv -> hard-sigmoid, times the input."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * nn.functional.hardsigmoid(scale)


class InvertedResidual(nn.Module):
    """MobileNetV3 block with expansion 1: depthwise 3x3 + hard-swish, squeeze-excitation, pointwise projection.

    The residual connection exists only for stride 1; stride 2 halves the grid per side (rounding up).
    """

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _conv_norm(channels, 3, stride, groups=channels, act=True),
            SqueezeExcitation(channels, _make_divisible(channels // 4)),
            _conv_norm(channels, 1, 1, groups=1, act=False),
        )
        self.use_residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


class LDPBlock(nn.Module):
    """Lightweight Downsample Projector (MobileVLM V1): token MLP, then two inverted-residual blocks on the grid."""

    def __init__(self, mm_hidden_size: int, hidden_size: int) -> None:
        super().__init__()
        # The leading Identity modules reproduce MobileVLM's indices (mlp.1 / mlp.3, mb_block.1 / mb_block.2).
        self.mlp = nn.Sequential(
            nn.Identity(), nn.Linear(mm_hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
        )
        self.mb_block = nn.Sequential(
            nn.Identity(), InvertedResidual(hidden_size, stride=1), InvertedResidual(hidden_size, stride=2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, G*G, mm_hidden) -> (B, ceil(G/2)**2, hidden); tokens are a square grid in row-major order."""
        b, n, _ = x.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"LDP projector needs a square token grid, got {n} tokens")
        x = self.mlp(x).transpose(1, 2).reshape(b, -1, side, side)
        return self.mb_block(x).flatten(2).transpose(1, 2)


class LDPNetProjector(nn.Module):
    """`mm_projector_type: ldpnet`; the `.model` level matches MobileVLM's key names."""

    def __init__(self, mm_hidden_size: int, hidden_size: int) -> None:
        super().__init__()
        self.model = LDPBlock(mm_hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ----------------------------------------------------------------------------------------------------------------
# The VLM
# ----------------------------------------------------------------------------------------------------------------
class HydraVLMForCausalLM(LlamaForCausalLM):
    """MobileVLM: a LlamaForCausalLM whose inner `model` also holds `vision_tower` and `mm_projector`.

    The vision tower starts frozen (MobileVLM's default); `set_vision_tower_trainable(True)` unfreezes it (mini
    pretraining from scratch). `image_processor` (a CLIPImageProcessor) travels with the model through save/load.
    """

    config_class = HydraVLMConfig

    def __init__(self, config: HydraVLMConfig) -> None:
        super().__init__(config)
        if getattr(config, "mm_projector_type", "ldpnet") != "ldpnet":
            raise UserError(f"mm_projector_type: got {config.mm_projector_type!r}; expected 'ldpnet'")
        vision_config = CLIPVisionConfig(**config.mm_vision_config)
        self.model.vision_tower = CLIPVisionTower(
            vision_config, config.mm_vision_select_layer, getattr(config, "mm_vision_select_feature", "patch")
        )
        self.model.mm_projector = LDPNetProjector(config.mm_hidden_size, config.hidden_size)
        self.image_processor = make_image_processor(vision_config.image_size)
        self.set_vision_tower_trainable(False)

    def set_vision_tower_trainable(self, trainable: bool) -> None:
        self.model.vision_tower.requires_grad_(trainable)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> visual tokens (B, N, hidden) with N = ceil(S / patch / 2) ** 2."""
        return self.model.mm_projector(self.model.vision_tower(images))

    def _splice(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor | None,
        images: torch.Tensor | None,
        padding_side: Literal["left", "right"],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Replace each row's IMAGE_TOKEN_INDEX by its image's visual tokens.

        Args:
            input_ids: (B, L) with at most one IMAGE_TOKEN_INDEX per row.
            attention_mask: (B, L) 1 for real tokens, or None (all real).
            labels: (B, L) or None; the visual positions get IGNORE_INDEX.
            images: (B, 3, S, S), one per row; a row without placeholder (text-only sample) ignores its image.
            padding_side: where rows of different new length are padded.

        Returns:
            inputs_embeds (B, L', hidden), attention_mask (B, L'), labels (B, L') or None.
        """
        is_image = input_ids == IMAGE_TOKEN_INDEX
        counts = is_image.sum(dim=1)
        if images is None:
            raise ValueError(f"input_ids hold {int(counts.sum())} image placeholder(s) but no images were given")
        if images.shape[0] != input_ids.shape[0]:
            raise ValueError(f"got {images.shape[0]} images for {input_ids.shape[0]} sequences (one per sequence)")
        if int(counts.max()) > 1:
            raise ValueError("at most one image placeholder per sequence is supported")
        if int(counts.sum()) == 0:
            raise ValueError("images were given but no sequence holds an image placeholder (IMAGE_TOKEN_INDEX)")
        features = self.encode_images(images).to(self.dtype)
        text_embeds = self.model.embed_tokens(input_ids.masked_fill(is_image, 0))
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        rows_e, rows_m, rows_l = [], [], []
        for i in range(input_ids.shape[0]):
            if counts[i] == 0:
                # Text-only sample: an empty slice of its features keeps every projector parameter in the graph (DDP).
                rows_e.append(torch.cat([text_embeds[i], features[i, :0]]))
                rows_m.append(mask[i])
                rows_l.append(labels[i] if labels is not None else None)
                continue
            p = int(is_image[i].nonzero()[0, 0])
            n = features.shape[1]
            rows_e.append(torch.cat([text_embeds[i, :p], features[i], text_embeds[i, p + 1 :]]))
            rows_m.append(torch.cat([mask[i, :p], mask.new_ones(n), mask[i, p + 1 :]]))
            if labels is not None:
                rows_l.append(torch.cat([labels[i, :p], labels.new_full((n,), IGNORE_INDEX), labels[i, p + 1 :]]))
        length = max(e.shape[0] for e in rows_e)

        def pad(t: torch.Tensor, value: float) -> torch.Tensor:
            extra = length - t.shape[0]
            if extra == 0:
                return t
            filler = t.new_full((extra, *t.shape[1:]), value)
            return torch.cat([filler, t] if padding_side == "left" else [t, filler])

        embeds = torch.stack([pad(e, 0.0) for e in rows_e])
        new_mask = torch.stack([pad(m, 0) for m in rows_m])
        new_labels = torch.stack([pad(lab, IGNORE_INDEX) for lab in rows_l]) if labels is not None else None
        return embeds, new_mask, new_labels

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        images: torch.FloatTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Causal-LM forward with the image spliced in (training batches are right-padded).

        Args:
            input_ids: (B, L) token ids; one IMAGE_TOKEN_INDEX per row marks where the image goes.
            attention_mask: (B, L) (plus cached length when decoding), 1 = real token.
            labels: (B, L) targets, IGNORE_INDEX where no loss; shifted inside (token t predicts t+1).
            images: (B, 3, S, S) pixel values, one image per row; required iff a placeholder is present.
                Ignored only in decoding steps after a prefill (cache already filled).

        Returns:
            CausalLMOutputWithPast with logits (B, L', vocab), L' = L - 1 + N_visual for rows with an image, and the
            mean token loss over labels != IGNORE_INDEX when labels are given.
        """
        cached = past_key_values is not None and past_key_values.get_seq_length() > 0
        has_placeholder = input_ids is not None and bool((input_ids == IMAGE_TOKEN_INDEX).any())
        if has_placeholder and cached:
            raise ValueError("image placeholders are only allowed in the prefill step (the KV cache is not empty)")
        if has_placeholder or (images is not None and not cached):
            if inputs_embeds is not None:
                raise ValueError("pass input_ids with image placeholders, not inputs_embeds, together with images")
            inputs_embeds, attention_mask, labels = self._splice(input_ids, attention_mask, labels, images, "right")
            input_ids = None
        if position_ids is None and attention_mask is not None:
            # Positions count real tokens only, so left padding does not shift RoPE positions.
            length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    @torch.no_grad()
    def generate_batch(
        self,
        prompts_ids: list[list[int]],
        images: torch.Tensor | None,
        max_new_tokens: int,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
    ) -> list[list[int]]:
        """Greedy decoding with a KV cache for a batch of prompts (left-padded internally).

        This is the generation API for evaluation (HF `generate()` is not supported for image inputs).

        Args:
            prompts_ids: one token-id list per sample, each with exactly one IMAGE_TOKEN_INDEX when `images` is given
                (text-only prompts allowed in a batch with images; their image is ignored).
            images: (B, 3, S, S) pixel values from `process_images`, one per prompt, or None for text-only prompts.
            max_new_tokens: upper bound on generated tokens per sample.
            eos_token_id: stop id(s); defaults to `config.eos_token_id`.
            pad_token_id: filler for left padding; defaults to `config.pad_token_id` (never attended to).

        Returns:
            Per sample, the generated ids without the prompt and without the stop token.
        """
        if not prompts_ids or any(len(p) == 0 for p in prompts_ids):
            raise ValueError("generate_batch needs at least one non-empty prompt")
        stop = eos_token_id if eos_token_id is not None else self.config.eos_token_id
        stop_ids = torch.tensor([stop] if isinstance(stop, int) else list(stop or []), device=self.device)
        pad = pad_token_id if pad_token_id is not None else (self.config.pad_token_id or 0)
        b, width = len(prompts_ids), max(len(p) for p in prompts_ids)
        ids = torch.full((b, width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((b, width), dtype=torch.long, device=self.device)
        for i, p in enumerate(prompts_ids):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        if images is not None or bool((ids == IMAGE_TOKEN_INDEX).any()):
            embeds, mask, _ = self._splice(ids, mask, None, images, "left")
        else:
            embeds = self.model.embed_tokens(ids)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.config)
        out = LlamaForCausalLM.forward(
            self,
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        generated: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        for step in range(max_new_tokens):
            token = out.logits[:, -1].argmax(-1)
            done |= torch.isin(token, stop_ids)
            for i in (~done).nonzero()[:, 0].tolist():
                generated[i].append(int(token[i]))
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
            positions = positions[:, -1:] + 1
            out = LlamaForCausalLM.forward(
                self,
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            )
        return generated

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """HF `generate()` for text-only input; image prompts must use `generate_batch`.

        HF's generation loop sizes its attention mask and cache positions from `input_ids`, which the splice
        lengthens by N_visual - 1 tokens, so an image prompt would be decoded with wrong masks.
        """
        ids = kwargs.get("input_ids", args[0] if args else None)
        if kwargs.get("images") is not None or (ids is not None and bool((ids == IMAGE_TOKEN_INDEX).any())):
            raise NotImplementedError("image prompts: use HydraVLMForCausalLM.generate_batch, not generate()")
        return super().generate(*args, **kwargs)

    def save_pretrained(
        self,
        save_directory: str | Path,
        tokenizer: PreTrainedTokenizerBase | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
        is_main_process: bool = True,
        **kwargs: Any,
    ) -> None:
        """Write MobileVLM's layout atomically: config.json, model.safetensors, preprocessor_config.json, tokenizer.

        `state_dict` and `is_main_process` follow HF Trainer's call; other HF keyword arguments are accepted and
        ignored (the weights are always one safetensors file).
        """
        if not is_main_process:
            return
        from safetensors.torch import save_file

        weights = state_dict if state_dict is not None else self.state_dict()
        if self.config.tie_word_embeddings:
            weights = {k: v for k, v in weights.items() if k != "lm_head.weight"}  # shared storage; rebuilt on load
        weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
        with atomic_dir(save_directory) as tmp:
            config = self.config.to_dict()
            config["model_type"] = "mobilevlm"
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            save_file(weights, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            self.image_processor.save_pretrained(str(tmp))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(tmp))


def make_image_processor(image_size: int) -> CLIPImageProcessor:
    """CLIP preprocessing for a tower of `image_size`: resize the short side, centre crop, CLIP mean/std."""
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": image_size},
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_normalize=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )


def process_images(images: list[Any], image_processor: CLIPImageProcessor, pad_to_square: bool = True) -> torch.Tensor:
    """PIL images -> pixel values (B, 3, S, S); `pad_to_square` is MobileVLM's `image_aspect_ratio: pad`.

    Padding uses the processor's mean colour, so the pad normalises to zero and nothing of the image is cropped.
    """
    from PIL import Image

    if pad_to_square:
        fill = tuple(int(255 * m) for m in image_processor.image_mean)
        squared = []
        for img in images:
            img = img.convert("RGB")
            w, h = img.size
            if w != h:
                canvas = Image.new("RGB", (max(w, h), max(w, h)), fill)
                canvas.paste(img, ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
                img = canvas
            squared.append(img)
        images = squared
    return image_processor(images=images, return_tensors="pt")["pixel_values"]


def build_model(cfg: ModelConfig) -> HydraVLMForCausalLM:
    """A randomly initialised model (seeded by `cfg.seed`), in float32 on the CPU, vision tower frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = HydraVLMForCausalLM(_hf_config(cfg))
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------
class LoadedModel(NamedTuple):
    model: HydraVLMForCausalLM
    tokenizer: PreTrainedTokenizerBase | None
    image_processor: CLIPImageProcessor


_REQUIRED_KEYS = {
    "vocab_size": int,
    "hidden_size": int,
    "intermediate_size": int,
    "num_hidden_layers": int,
    "num_attention_heads": int,
    "mm_vision_tower": str,
    "mm_hidden_size": int,
    "mm_projector_type": str,
    "mm_vision_select_layer": int,
}


def _download_hint(what: str) -> str:
    local = what.split("/")[-1]
    return (
        f"the Hugging Face hub is not reachable here: download {what!r} ({PAPER_HUB_IDS.get(what, 'a checkpoint')}) "
        f"on a machine with hub access (`huggingface-cli download {what} --local-dir models/paper/{local}`), "
        f"copy it to models/paper/{local} and pass that local directory"
    )


def _read_config(path: Path) -> dict[str, Any]:
    file = path / "config.json"
    config = read_json(file, "MobileVLM config.json")
    if not isinstance(config, dict):
        raise UserError(f"{file}: expected a JSON object, got {type(config).__name__}")
    for key, tp in _REQUIRED_KEYS.items():
        if key not in config:
            raise UserError(f"{file}: missing key {key!r} (expected {tp.__name__}, as in MobileVLM's config.json)")
        if not isinstance(config[key], tp) or isinstance(config[key], bool):
            raise UserError(f"{file}: key {key!r} is {config[key]!r}; expected {tp.__name__}")
    if config["mm_projector_type"] != "ldpnet":
        raise UserError(f"{file}: key 'mm_projector_type' is {config['mm_projector_type']!r}; expected 'ldpnet'")
    feature = config.get("mm_vision_select_feature", "patch")
    if feature != "patch":
        raise UserError(f"{file}: key 'mm_vision_select_feature' is {feature!r}; expected 'patch'")
    return config


def _resolve_vision_tower(config: dict[str, Any], file: Path, vision_tower_path: str | Path | None) -> Path | None:
    """Local directory of a pretrained CLIP when config.json does not carry `mm_vision_config`, else None."""
    if "mm_vision_config" in config and vision_tower_path is None:
        if not isinstance(config["mm_vision_config"], dict):
            raise UserError(f"{file}: key 'mm_vision_config' is {config['mm_vision_config']!r}; expected an object")
        return None
    candidate = Path(vision_tower_path if vision_tower_path is not None else config["mm_vision_tower"])
    if candidate.is_dir():
        return candidate
    if vision_tower_path is not None:
        raise UserError(f"vision_tower_path: {candidate} is not a directory (expected a local CLIP checkpoint)")
    raise UserError(f"{file}: mm_vision_tower is {config['mm_vision_tower']!r}; {_download_hint(PAPER_VISION_TOWER)}")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if (path / WEIGHTS_NAME).is_file():
        return load_file(str(path / WEIGHTS_NAME))
    for index_name, shard_loader in (
        ("model.safetensors.index.json", lambda f: load_file(str(f))),
        ("pytorch_model.bin.index.json", lambda f: torch.load(f, map_location="cpu", weights_only=True)),
    ):
        if (path / index_name).is_file():
            index = json.loads((path / index_name).read_text(encoding="utf-8"))
            weights: dict[str, torch.Tensor] = {}
            for shard in sorted(set(index["weight_map"].values())):
                weights.update(shard_loader(path / shard))
            return weights
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise UserError(f"{path}: no weights found (expected {WEIGHTS_NAME}, a sharded index or pytorch_model.bin)")


def load_model(
    path: str | Path,
    vision_tower_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a checkpoint directory in MobileVLM's layout (ours or MobileVLM's own).

    Args:
        path: directory with config.json and weights (model.safetensors, sharded, or pytorch_model.bin).
        vision_tower_path: local CLIP directory; needed when config.json has no `mm_vision_config` (real MobileVLM
            checkpoints name `openai/clip-vit-large-patch14-336`), and used for the tower weights when the
            checkpoint does not include them.
        dtype, device: where the model lives.

    Returns:
        LoadedModel(model in eval mode with a frozen vision tower, tokenizer or None, image processor).

    Raises:
        UserError: missing directory (with download instructions for the paper's hub ids), missing or bad config keys,
            missing, unexpected or mis-shaped weights.
    """
    path = Path(path)
    if not path.is_dir():
        name = str(path)
        if name in PAPER_HUB_IDS:
            raise UserError(f"{name}: not a local directory; {_download_hint(name)}")
        raise UserError(f"{path}: checkpoint directory not found (expected config.json + weights)")
    config = _read_config(path)
    file = path / "config.json"
    tower_dir = _resolve_vision_tower(config, file, vision_tower_path)
    if tower_dir is not None:
        vision_config = CLIPVisionConfig.from_pretrained(str(tower_dir))
        config["mm_vision_config"] = _vision_config_dict(vision_config)
    if config["mm_vision_config"].get("hidden_size") != config["mm_hidden_size"]:
        raise UserError(
            f"{file}: key 'mm_hidden_size' is {config['mm_hidden_size']}; expected the vision tower's hidden size "
            f"({config['mm_vision_config'].get('hidden_size')})"
        )
    hf_keys = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version", "torch_dtype")}
    try:
        hf_config = HydraVLMConfig(**hf_keys)
        with torch.device("cpu"):
            model = HydraVLMForCausalLM(hf_config)
    except (TypeError, ValueError) as e:
        raise UserError(f"{file}: cannot build the model from it ({e})") from None

    weights = {k: v for k, v in _read_weights(path).items() if not _IGNORED_KEYS.search(k)}
    tower_prefix = "model.vision_tower.vision_tower.vision_model."
    if tower_dir is not None and not any(k.startswith(tower_prefix) for k in weights):
        # MobileVLM checkpoints may leave the frozen CLIP out; take it from the CLIP directory.
        clip = CLIPVisionModel.from_pretrained(str(tower_dir))
        weights.update({tower_prefix + k: v for k, v in clip.state_dict().items() if not _IGNORED_KEYS.search(k)})
    expected = {k: v for k, v in model.state_dict().items() if not _IGNORED_KEYS.search(k)}
    if hf_config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not match MobileVLM's layout: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    for key, param in expected.items():  # in module order, so the first mismatch reported is the earliest
        if weights[key].shape != param.shape:
            raise UserError(
                f"{path}: weight {key!r} has shape {tuple(weights[key].shape)}; expected {tuple(param.shape)} "
                "from config.json"
            )
    model.load_state_dict(weights, strict=False)
    if hf_config.tie_word_embeddings:
        model.tie_weights()

    if (path / "preprocessor_config.json").is_file():
        model.image_processor = CLIPImageProcessor.from_pretrained(str(path))
    elif tower_dir is not None and (tower_dir / "preprocessor_config.json").is_file():
        model.image_processor = CLIPImageProcessor.from_pretrained(str(tower_dir))
    tokenizer = None
    if any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = model.to(device=device, dtype=dtype).eval()
    model.set_vision_tower_trainable(False)
    return LoadedModel(model, tokenizer, model.image_processor)


# Keys of a plain causal-LM config.json that do not describe the architecture
_LM_META_KEYS = (
    "model_type", "transformers_version", "torch_dtype", "dtype", "architectures", "quantization_config",
    "_name_or_path",  # a hub id here would make PEFT look the base model up on the hub when saving an adapter
)  # fmt: skip


def assemble_model(
    lm_dir: str | Path, vision_dir: str | Path, seed: int = 0, conv_template: str | None = None
) -> LoadedModel:
    """MobileVLM stage I's starting point: a pretrained Llama LM + a CLIP tower + a fresh LDP projector.

    Args:
        lm_dir: a plain Llama checkpoint (config.json with model_type "llama", weights, tokenizer): MobileLLaMA in
            the paper profile, the converted SmolLM2 in the smol profile.
        vision_dir: a CLIP vision checkpoint directory (the hub's CLIP ViT-L/14-336, or stage 0's mini tower).
        seed: seeds the projector's initialisation.
        conv_template: the LM's chat template, written to config.json as `conv_template` (None: MobileVLM's v1).

    Raises:
        UserError: a directory or key is missing, the LM is not a Llama, or its weights do not fit its config.
    """
    lm_dir, vision_dir = Path(lm_dir), Path(vision_dir)
    file = lm_dir / "config.json"
    if not file.is_file():
        raise UserError(
            f"{lm_dir}: no config.json (expected a plain Llama checkpoint: config.json, weights, tokenizer)"
        )
    config = read_json(file, "LM config.json")
    if not isinstance(config, dict) or config.get("model_type") != "llama":
        got = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise UserError(f"{file}: key 'model_type' is {got!r}; expected 'llama'")
    if not (vision_dir / "config.json").is_file():
        raise UserError(f"{vision_dir}: no config.json (expected a CLIP vision checkpoint directory)")
    clip = CLIPVisionModel.from_pretrained(str(vision_dir))
    keys = {k: v for k, v in config.items() if k not in _LM_META_KEYS}
    if conv_template is not None:
        from hydra_repro.data import get_template

        keys["conv_template"] = get_template(conv_template).name
    hf_config = HydraVLMConfig(
        **keys,
        architectures=["MobileLlamaForCausalLM"],
        **_mm_keys(str(vision_dir), clip.config.hidden_size, -2),
        mm_vision_config=_vision_config_dict(clip.config),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HydraVLMForCausalLM(hf_config)
    weights = {k: v for k, v in _read_weights(lm_dir).items() if not _IGNORED_KEYS.search(k)}
    expected = {k for k in model.state_dict() if not k.startswith(("model.vision_tower.", "model.mm_projector."))} - (
        {"lm_head.weight"} if hf_config.tie_word_embeddings else set()
    )
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise UserError(
            f"{lm_dir}: weights do not match its config.json: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    model.load_state_dict(weights, strict=False)
    if hf_config.tie_word_embeddings:
        model.tie_weights()
    model.model.vision_tower.clip.load_state_dict(clip.state_dict())
    if (vision_dir / "preprocessor_config.json").is_file():
        model.image_processor = CLIPImageProcessor.from_pretrained(str(vision_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(lm_dir)) if (lm_dir / "tokenizer_config.json").is_file() else None
    if tokenizer is not None and tokenizer.pad_token is None:  # MobileLLaMA: none; MobileVLM's v1 recipe pads with unk
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    model.eval().set_vision_tower_trainable(False)
    return LoadedModel(model, tokenizer, model.image_processor)


# ----------------------------------------------------------------------------------------------------------------
# Helpers for LoRA and parameter accounting
# ----------------------------------------------------------------------------------------------------------------
def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def lora_target_names(model: nn.Module) -> list[str]:
    """Full names of the 7 x num_hidden_layers LM projections, layer by layer, in COMPONENTS order.

    Names are relative to the HydraVLMForCausalLM (a PeftModel is unwrapped), e.g.
    `model.layers.0.self_attn.q_proj`: the keys PEFT's `rank_pattern` needs to hit exactly one module each.
    """
    base = _base_model(model)
    modules = dict(base.named_modules())
    names = [
        f"model.layers.{i}.{COMPONENT_PARENT[c]}.{c}" for i in range(base.config.num_hidden_layers) for c in COMPONENTS
    ]
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"model has no module {missing[0]!r}: not a Llama-based HydraVLM model")
    return names


def lm_dims(model_or_cfg: Any) -> dict[str, int]:
    """LM dimensions for parameter accounting, from a ModelConfig, an HF config or a (PEFT-wrapped) model."""
    if isinstance(model_or_cfg, ModelConfig):
        lm = model_or_cfg.lm
        return {
            "hidden_size": lm.hidden_size,
            "intermediate_size": lm.intermediate_size,
            "num_attention_heads": lm.num_attention_heads,
            "num_key_value_heads": lm.num_key_value_heads,
            "head_dim": lm.hidden_size // lm.num_attention_heads,
            "num_hidden_layers": lm.num_hidden_layers,
        }
    config = model_or_cfg if isinstance(model_or_cfg, LlamaConfig) else _base_model(model_or_cfg).config
    heads = config.num_attention_heads
    return {
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_attention_heads": heads,
        "num_key_value_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "num_hidden_layers": config.num_hidden_layers,
    }
