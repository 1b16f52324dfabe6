"""A faster LoRA layer for CPU training: the same parameters, state dict and math as PEFT's `lora.Linear`, with
one fused autograd function instead of PEFT's per-op graph."""

from __future__ import annotations

import math
from typing import Any

import torch
from peft.tuners.lora.layer import Linear as _PeftLoraLinear


def dropout_keep_mask(
    shape: tuple[int, ...], p: float, device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, float]:
    """(0/1 keep-mask in `dtype`, 1 / keep rate) for dropout with probability p quantized to 1/65536.

    One 64-bit random draw gives four 16-bit uniforms, compared straight into a float mask: about 10x faster on CPU
    than `F.dropout`'s per-element `bernoulli_`, which cost more than all of LoRA's matrix products at the mini scale.
    """
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    drop = round(p * 65536)
    keep = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(words.view(torch.int16)[:n].view(shape), drop - 32768, out=keep)
    return keep, 65536 / (65536 - drop)


class _LoraLinearFn(torch.autograd.Function):
    """y = x W^T + b + s * (x * keep) A^T B^T for a frozen W, as one autograd node.

    `keep` is dropout's 0/1 mask (or None); its 1 / keep-rate factor is folded into `scaling` by the caller, which is
    the same function with one element-wise pass fewer. The skinny products run in the layout the CPU BLAS is fast
    at: (A x^T)^T instead of x A^T, and in backward (B^T dy^T)^T and (h^T dy)^T instead of dy B and dy^T h (3-4x
    faster each at rank 8, hidden 64-176).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling, keep):
        xd = x if keep is None else x * keep
        h = (lora_a @ xd.t()).t()  # (N, r)
        y = torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()
        y.addmm_(h, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(xd, h, weight, lora_a, lora_b, keep)
        ctx.scaling = scaling
        return y

    @staticmethod
    def backward(ctx, dy):
        xd, h, weight, lora_a, lora_b, keep = ctx.saved_tensors
        dy = dy.contiguous()
        dh = (lora_b.t() @ dy.t()).t().mul_(ctx.scaling)  # (N, r)
        grad_b = (h.t() @ dy).t().mul_(ctx.scaling)  # (d_out, r)
        grad_a = dh.t() @ xd  # (r, d_in)
        dx_lora = dh @ lora_a
        if keep is not None:
            dx_lora.mul_(keep)
        dx = torch.addmm(dx_lora, dy, weight)
        return dx, None, None, grad_a, grad_b, None, None


class FastLoraLinear(_PeftLoraLinear):
    """PEFT's `lora.Linear` with a fused forward/backward for plain CPU training (`TrainConfig.fast_lora`).

    Only `forward` differs; parameters, state dict, saving, loading and merging are PEFT's. Every case the fast path
    does not cover (GPU, autocast, merged or disabled adapters, several adapters, DoRA-like variants, a trainable
    base weight, mixed dtypes) falls back to PEFT's forward. Dropout keeps PEFT's semantics (a fresh mask per module
    on the module's input) with p quantized to 1/65536 (0.05 -> 0.050003).
    """

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        active = self.active_adapters
        base = self.base_layer
        if (
            args
            or kwargs
            or self.disable_adapters
            or self.merged
            or len(active) != 1
            or active[0] not in self.lora_A
            or active[0] in self.lora_variant
            or x.device.type != "cpu"
            or torch.is_autocast_enabled("cpu")
            or base.weight.requires_grad
            or not x.dtype == base.weight.dtype == self.lora_A[active[0]].weight.dtype
        ):
            return super().forward(x, *args, **kwargs)
        name = active[0]
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        dropout = self.lora_dropout[name]
        keep, scaling = None, float(self.scaling[name])
        if isinstance(dropout, torch.nn.Dropout) and dropout.p > 0 and dropout.training:
            keep, rescale = dropout_keep_mask(tuple(x2.shape), dropout.p, x2.device, x2.dtype)
            scaling *= rescale
        lora_a, lora_b = self.lora_A[name].weight, self.lora_B[name].weight
        y = _LoraLinearFn.apply(x2, base.weight, base.bias, lora_a, lora_b, scaling, keep)
        return y.view(*x.shape[:-1], y.shape[-1])


def use_fast_lora(peft_model: Any) -> int:
    """Give every plain PEFT LoRA Linear the fused CPU path (a class swap: only `forward` changes); returns how many."""
    n = 0
    for module in peft_model.modules():
        if type(module) is _PeftLoraLinear:
            module.__class__ = FastLoraLinear
            n += 1
    return n
