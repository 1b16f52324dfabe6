"""MobileVLM's LDP v1 projector (lightweight downsample projector), module for module as in MobileVLM's code."""

from __future__ import annotations

import math

import torch
from torch import nn


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
