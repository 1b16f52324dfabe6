"""The CLIP vision tower (MobileVLM's layer selection and key layout) and the attribute heads of stage 0."""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
)

from hydra_repro.errors import UserError


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
