"""Length-sorted micro-batches: the loss and gradient of one padded batch, computed on less padding.

A right-padded batch of B sequences costs B x (its longest length) positions in every matrix product and
B x longest^2 in attention, whatever the other rows' lengths. Splitting it into k groups of consecutive length rank,
each padded only to its own longest row, computes the same per-token losses (a token attends only to earlier tokens
of its own row, and real tokens never follow padding) on fewer positions; the batch loss is their token-weighted sum,
so the gradient is the batch's gradient. Samples, batches, their order and the optimizer step are unchanged: only the
layout of one forward/backward pass changes, and with it the float rounding and LoRA dropout's random draws (fresh
masks of the same probability for the same tokens).

Measured on mini batches of 16 (24-layer LM, 1 thread, `benchmarks/length_groups.py`): see that script's output in
the README. Not for AdaLoRA: PEFT adds its orthogonality penalty once per forward call, so k calls would count it k
times (`train.py` keeps one group there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from hydra_repro.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX


def target_count(labels: torch.Tensor) -> int:
    """Tokens the causal-LM loss averages over: labels after the one-position shift that are not IGNORE_INDEX."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def split(inputs: dict[str, Any], groups: int) -> list[dict[str, Any]]:
    """`groups` sub-batches of a right-padded batch, rows by length (stable), each trimmed to its longest row.

    Tensors shaped like `attention_mask` (input_ids, labels) are cut in both dimensions, other tensors with the
    batch as first dimension (images) in rows only; anything else is passed to every part unchanged. A part of
    text-only rows gets `images` None.
    """
    mask = inputs.get("attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError("length groups need a (batch, length) attention_mask")
    rows, width = mask.shape
    lengths = mask.sum(dim=1)
    if not torch.equal(mask.bool(), torch.arange(width) < lengths[:, None]):
        raise ValueError("length groups need a right-padded batch (each attention_mask row: ones, then zeros)")
    order = torch.argsort(lengths, stable=True)
    parts = []
    for idx in order.tensor_split(min(groups, rows)):
        n = int(lengths[idx].max())
        part = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.shape[:2] == mask.shape:
                part[key] = value[idx, :n]
            elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows:
                part[key] = value[idx]
            else:
                part[key] = value
        if part.get("images") is not None and not bool((part["input_ids"] == IMAGE_TOKEN_INDEX).any()):
            part["images"] = None  # text-only rows: no image, as the collator sends a text-only batch
        parts.append(part)
    return parts


def grouped_loss(
    loss_fn: Callable[[dict[str, Any]], torch.Tensor], inputs: dict[str, Any], groups: int, summed: bool = False
) -> torch.Tensor:
    """The batch loss from `groups` length-sorted parts (`groups` <= 1: one call on the whole batch).

    `summed=False`: `loss_fn` returns a part's mean over its own target tokens; the means are weighted by the parts'
    shares of the batch's target tokens (a part without targets has weight 0 and is not run). `summed=True`:
    `loss_fn` already divides a part's summed token loss by a denominator common to all parts (HF Trainer's
    `num_items_in_batch`), so the parts' losses are added.
    """
    if groups <= 1:
        return loss_fn(inputs)
    parts = split(inputs, groups)
    if summed:
        losses = [loss_fn(p) for p in parts]
    else:
        total = target_count(inputs["labels"])
        losses = [loss_fn(p) * (n / total) for p in parts if (n := target_count(p["labels"]))]
        if not losses:  # nothing to predict: the unsplit loss (NaN, as one forward gives)
            return loss_fn(inputs)
    return torch.stack(losses).sum()
