"""Length-sorted micro-batches (hydra_repro.data.microbatch): the split is a trimmed permutation of the batch
(Hypothesis), the loss and gradients equal one padded batch's (reference test on a tiny VLM), and the Trainer and
stage-I paths train to the same weights. Run: `.venv/bin/python -m pytest tests/test_microbatch.py -q`."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_repro.adapters import rundir
from hydra_repro.config.model import PRESETS
from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from hydra_repro.data.microbatch import grouped_loss, split, target_count
from hydra_repro.errors import UserError
from hydra_repro.model.vlm import build_model
from hydra_repro.training import instruct
from tests.test_train import adapter_weights, make_fixture, tiny_config


def padded_batch(lengths: list[int], vocab: int = 50, image_size: int | None = None, seed: int = 0) -> dict:
    """A right-padded batch like data.DataCollator's: ids, mask, labels (first two positions ignored), images."""
    g = torch.Generator().manual_seed(seed)
    rows, width = len(lengths), max(lengths)
    ids = torch.full((rows, width), 3)
    labels = torch.full((rows, width), IGNORE_INDEX)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        labels[i, 2:n] = ids[i, 2:n]
        mask[i, :n] = 1
        if image_size is not None and n > 1 and i % 3:  # every third row is text-only
            ids[i, 1] = IMAGE_TOKEN_INDEX
            labels[i, 1] = IGNORE_INDEX
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if image_size is not None:
        batch["images"] = torch.randn(rows, 3, image_size, image_size, generator=g)
    return batch


@given(st.lists(st.integers(1, 40), min_size=1, max_size=20), st.integers(1, 6))
def test_split_is_a_trimmed_permutation_sorted_by_length(lengths, groups):
    batch = padded_batch(lengths, image_size=2)
    parts = split(batch, groups)
    assert len(parts) == min(groups, len(lengths))
    seen = []
    for part in parts:
        n = part["attention_mask"].sum(1)
        assert part["input_ids"].shape[1] == int(n.max())  # trimmed to its own longest row
        assert part["labels"].shape == part["input_ids"].shape == part["attention_mask"].shape
        has_image = bool((part["input_ids"] == IMAGE_TOKEN_INDEX).any())
        assert part["images"].shape[0] == part["input_ids"].shape[0] if has_image else part["images"] is None
        for r in range(part["input_ids"].shape[0]):
            seen.append((part["input_ids"][r, : n[r]].tolist(), part["labels"][r, : n[r]].tolist()))
    original = [(batch["input_ids"][r, :n].tolist(), batch["labels"][r, :n].tolist()) for r, n in enumerate(lengths)]
    assert sorted(seen) == sorted(original)
    assert [len(ids) for ids, _ in seen] == sorted(lengths)  # consecutive length ranks
    assert sum(target_count(p["labels"]) for p in parts) == target_count(batch["labels"])


def test_split_refuses_left_padding_and_a_missing_mask():
    batch = padded_batch([5, 3])
    with pytest.raises(ValueError, match="right-padded"):
        split({**batch, "attention_mask": batch["attention_mask"].flip(1)}, 2)
    with pytest.raises(ValueError, match="attention_mask"):
        split({k: v for k, v in batch.items() if k != "attention_mask"}, 2)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = PRESETS["tiny"]
    return build_model(cfg).train(), cfg


def loss_and_grads(model, batch, groups):
    model.zero_grad(set_to_none=True)
    loss = grouped_loss(lambda part: model(**part).loss, batch, groups)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(3, 30), min_size=2, max_size=9), st.integers(2, 5), st.integers(0, 1000))
def test_loss_and_gradients_equal_one_padded_batch(tiny, lengths, groups, seed):
    model, cfg = tiny
    for p in model.parameters():
        p.requires_grad_(True)
    batch = padded_batch(lengths, cfg.lm.vocab_size, cfg.vision.image_size, seed)
    ref_loss, ref = loss_and_grads(model, batch, 1)
    loss, got = loss_and_grads(model, batch, groups)
    assert torch.allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert got.keys() == ref.keys()
    for name in ref:
        assert torch.allclose(got[name], ref[name], rtol=1e-4, atol=1e-6), name


def test_summed_parts_and_parts_without_targets(tiny):
    model, cfg = tiny
    batch = padded_batch([9, 2, 2, 12], cfg.lm.vocab_size, cfg.vision.image_size)
    ref = model(**batch).loss
    total = target_count(batch["labels"])  # the two length-2 rows have no targets: their part is skipped

    def summed(part):
        logits = model(**{k: v for k, v in part.items() if k != "labels"}).logits[:, :-1]
        return (
            torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), part_labels(part).flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
            )
            / total
        )

    def part_labels(part):  # the labels the model scores (spliced: the image's positions are ignored), shifted
        if part["images"] is None:
            return part["labels"][:, 1:]
        spliced = model._splice(part["input_ids"], part["attention_mask"], part["labels"], part["images"], "right")
        return spliced[2][:, 1:]

    assert torch.allclose(grouped_loss(lambda p: model(**p).loss, batch, 2), ref, rtol=1e-5)
    assert torch.allclose(grouped_loss(summed, batch, 3, summed=True), ref, rtol=1e-5)
    empty = padded_batch([2, 2], cfg.lm.vocab_size, cfg.vision.image_size)
    assert torch.isnan(grouped_loss(lambda p: model(**p).loss, empty, 2))  # as one forward: nothing to average


# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_fixture(tmp_path_factory.mktemp("fx"), n=11)  # 11 image records + 1 shorter text-only one


def test_trainer_with_length_groups_trains_the_same_weights(fx, tmp_path):
    kw = dict(per_device_batch_size=4, global_batch_size=4, max_steps=3, lora_dropout=0.0)
    one = instruct.train_run(tiny_config(**kw), fx["base"], fx["data"], fx["images"], tmp_path / "one")
    three = instruct.train_run(
        tiny_config(length_groups=3, **kw), fx["base"], fx["data"], fx["images"], tmp_path / "three"
    )
    assert json.loads((three / rundir.RUN_FILE).read_text())["length_groups"] == 3
    losses = [
        [row["loss"] for row in map(json.loads, (run / instruct.LOG_FILE).read_text().splitlines()) if "loss" in row]
        for run in (one, three)
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # the logged batch loss, not k parts' sum of means
    w1, w3 = adapter_weights(one), adapter_weights(three)
    assert w1.keys() == w3.keys()
    for k in w1:
        assert torch.allclose(w1[k], w3[k], rtol=1e-4, atol=1e-6), k


def test_length_groups_settings_are_checked():
    assert tiny_config(length_groups=3).effective_length_groups() == 3
    assert tiny_config(method="adalora", length_groups=3).effective_length_groups() == 1
    with pytest.raises(UserError, match="train.length_groups"):
        tiny_config(length_groups=0)
    with pytest.raises(UserError, match="pretrain.length_groups"):
        PretrainConfig(length_groups=0)
