"""The order in which instruction tuning visits its samples: MobileVLM's `group_by_modality_length`.

MobileVLM's fine-tuning scripts (run_v1.sh, LoRA included) pass `--group_by_modality_length True`, LLaVA-1.5's
sampler: every per-device batch holds only image conversations or only text-only ones (llava_v1_5_mix665k has ~40K
text-only ShareGPT records), the batches are shuffled, and the leftovers of both kinds form one last mixed batch.
Inside a group of `world_size x batch_size` samples the longest go together and the group is split into per-device
batches of even total length. A sample's length is its word count (whitespace-split conversation values), not its
token count, as in LLaVA's `modality_lengths`.

Differences from the reference, none of which changes the grouping rule: the random draws come from a generator
seeded by the run's seed and the epoch (LLaVA uses torch's global generator), so a resumed run replays the same
order; a data set with one modality only gets the length-grouped order of that modality (LLaVA-1.5 does
the same; MobileVLM's copy asserts both modalities exist).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch


def modality_lengths(records: Sequence[Any]) -> list[int]:
    """Word count of each `data.Record`'s turns: positive with an image, negative text-only (LLaVA's convention)."""
    out = []
    for rec in records:
        words = sum(len(text.split()) for turn in rec.turns for text in turn)
        words = max(words, 1)  # a zero would belong to neither modality
        out.append(words if rec.image else -words)
    return out


def _even_chunks(indices: list[int], lengths: Sequence[int], chunks: int) -> list[list[int]]:
    """Split a group into `chunks` per-device batches of similar total length (greedy: next sample to the shortest)."""
    if len(indices) % chunks:
        return [indices[i::chunks] for i in range(chunks)]
    size = len(indices) // chunks
    out: list[list[int]] = [[] for _ in range(chunks)]
    totals = [0.0] * chunks
    for i in indices:
        k = totals.index(min(totals))
        out[k].append(i)
        totals[k] = float("inf") if len(out[k]) == size else totals[k] + lengths[i]
    return out


def length_grouped_indices(
    lengths: Sequence[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """A random permutation whose groups of `world_size x batch_size` are sorted longest first, split evenly."""
    group = world_size * batch_size
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    out: list[int] = []
    for start in range(0, len(perm), group):
        block = sorted(perm[start : start + group], key=lambda i: lengths[i], reverse=True)
        for chunk in _even_chunks(block, lengths, world_size):
            out.extend(chunk)
    return out


def modality_grouped_indices(
    lengths: Sequence[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """LLaVA-1.5 / MobileVLM's order: single-modality groups in random order, the two remainders last (or first)."""
    if any(n == 0 for n in lengths):
        raise ValueError("modality_grouped_indices: a length of 0 has no modality (use +n image, -n text-only)")
    if all(n > 0 for n in lengths) or all(n < 0 for n in lengths):
        return length_grouped_indices([abs(n) for n in lengths], batch_size, world_size, generator)
    group = world_size * batch_size
    groups: list[list[list[int]]] = []  # per modality: its groups in shuffled, length-grouped order
    for sign in (1, -1):
        ids = [i for i, n in enumerate(lengths) if n * sign > 0]
        order = length_grouped_indices([abs(lengths[i]) for i in ids], batch_size, world_size, generator)
        shuffled = [ids[j] for j in order]
        groups.append([shuffled[k : k + group] for k in range(0, len(shuffled), group)])
    (*mm, last_mm), (*text, last_text) = groups
    full = mm + text
    full = [full[k] for k in torch.randperm(len(full), generator=generator).tolist()]
    extra = last_mm + last_text
    if len(extra) >= group:  # two remainders filling a whole group go first, the rest last
        full, extra = [extra[:group], *full], extra[group:]
    if extra:
        full.append(extra)
    return [i for g in full for i in g]


class ModalityGroupedSampler(torch.utils.data.Sampler):
    """`modality_grouped_indices` as a Trainer sampler; epoch e draws from a generator seeded with seed + e."""

    def __init__(self, lengths: Sequence[int], batch_size: int, world_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.world_size, self.seed = list(lengths), batch_size, world_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:  # called by accelerate / Trainer between epochs
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(modality_grouped_indices(self.lengths, self.batch_size, self.world_size, generator))
