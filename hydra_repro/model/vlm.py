"""MobileVLM's architecture at every scale: CLIP vision tower -> LDP v1 projector -> Llama causal LM.

One model class serves the `paper` profile (MobileVLM 1.7B / 3B checkpoints) and the `mini`, `smoke` and test
profiles (the same modules, built small from a `ModelConfig` and random weights).

    from hydra_repro.config.model import ModelConfig
    from hydra_repro.model.checkpoint import load_model
    from hydra_repro.model.vlm import build_model
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

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from hydra_repro.config.model import ModelConfig
from hydra_repro.constants import COMPONENT_PARENT, COMPONENTS, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, write_json
from hydra_repro.model.hf_config import CLIP_MEAN, CLIP_STD, WEIGHTS_NAME, HydraVLMConfig, _hf_config
from hydra_repro.model.projector import LDPNetProjector
from hydra_repro.model.vision import CLIPVisionTower


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
            write_json((tmp / "config.json"), config, sort_keys=True)
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
