"""MobileVLM's `group_by_modality_length` order (hydra_repro.data.sampling): properties over random data sets, and the
Trainer path (batches really are single-modality, a resumed run replays the same order).

Run: `.venv/bin/python -m pytest tests/test_sampling.py -q`.
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hydra_repro.adapters import rundir
from hydra_repro.data.conversation import Record
from hydra_repro.data.sampling import (
    ModalityGroupedSampler,
    length_grouped_indices,
    modality_grouped_indices,
    modality_lengths,
)
from hydra_repro.training import instruct, trainer
from tests.test_train import CrashAfter, adapter_weights, make_fixture, tiny_config

lengths_st = st.lists(st.integers(1, 300).flatmap(lambda n: st.sampled_from([n, -n])), min_size=1, max_size=120)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def groups(order: list[int], size: int) -> list[list[int]]:
    return [order[k : k + size] for k in range(0, len(order), size)]


@given(lengths_st, st.integers(1, 9), st.integers(1, 3), st.integers(0, 2**31))
def test_every_sample_once_and_at_most_one_mixed_group(lengths, batch, world, seed):
    order = modality_grouped_indices(lengths, batch, world, gen(seed))
    assert sorted(order) == list(range(len(lengths)))
    mixed = [g for g in groups(order, batch * world) if len({lengths[i] > 0 for i in g}) > 1]
    assert len(mixed) <= 1  # only the group made of the two modalities' remainders


@given(lengths_st, st.integers(1, 9), st.integers(0, 2**31))
def test_single_device_groups_go_longest_first(lengths, batch, seed):
    # on one device every single-modality batch is a sorted block (or the sorted tail of one); only the mixed
    # remainder batch joins two sorted runs
    order = modality_grouped_indices(lengths, batch, 1, gen(seed))
    for g in groups(order, batch):
        if len({lengths[i] > 0 for i in g}) == 1:
            sizes = [abs(lengths[i]) for i in g]
            assert sizes == sorted(sizes, reverse=True)


@given(lengths_st, st.integers(1, 9), st.integers(0, 2**31))
def test_same_seed_same_order(lengths, batch, seed):
    assert modality_grouped_indices(lengths, batch, 2, gen(seed)) == modality_grouped_indices(
        lengths, batch, 2, gen(seed)
    )


def test_one_modality_is_the_length_grouped_order():
    lengths = [5, 3, 9, 1, 7, 2, 8]
    assert modality_grouped_indices(lengths, 3, 1, gen(4)) == length_grouped_indices(lengths, 3, 1, gen(4))
    assert modality_grouped_indices([-n for n in lengths], 3, 1, gen(4)) == length_grouped_indices(
        lengths, 3, 1, gen(4)
    )


def test_length_grouping_is_the_permutation_sorted_per_group():
    lengths = [4, 1, 3, 2, 6]
    perm = torch.randperm(5, generator=gen(0)).tolist()
    expected = [i for k in (0, 2, 4) for i in sorted(perm[k : k + 2], key=lambda i: lengths[i], reverse=True)]
    assert length_grouped_indices(lengths, 2, 1, gen(0)) == expected


def test_two_devices_get_even_halves():
    # one group of 4 on 2 devices: longest with shortest, the middle two together (LLaVA's greedy split)
    order = length_grouped_indices([10, 1, 6, 5], 2, 2, gen(0))
    halves = [order[:2], order[2:]]
    assert sorted(sorted([10, 1, 6, 5][i] for i in h) for h in halves) == [[1, 10], [5, 6]]


def test_zero_length_is_rejected():
    with pytest.raises(ValueError, match="length of 0"):
        modality_grouped_indices([3, 0, -2], 2, 1, gen())


def test_modality_lengths_count_words_and_sign_by_image():
    records = [
        Record("0", "a.png", (("<image>\nWhat is it?", "a red circle"),)),
        Record("1", None, (("Say hi.", "hi"),)),
    ]
    assert modality_lengths(records) == [7, -3]  # "<image>" counts as a word, as in LLaVA


def test_sampler_epochs_differ_and_repeat():
    s = ModalityGroupedSampler([3, -2, 5, -1, 4, 6, -7, 2], batch_size=2, world_size=1, seed=42)
    first = list(s)
    assert list(s) == first and len(s) == 8  # the same epoch replays (what a resumed run relies on)
    s.set_epoch(1)
    second = list(s)
    assert sorted(second) == list(range(8)) and second != first


# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_fixture(tmp_path_factory.mktemp("fx"), n=11)  # 11 image records + 1 text-only


def test_trainer_trains_in_the_grouped_order_and_resume_replays_it(fx, tmp_path):
    cfg = tiny_config(group_by_modality=True, per_device_batch_size=2, global_batch_size=2, max_steps=6, save_steps=3)
    a = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "a")
    assert json.loads((a / rundir.RUN_FILE).read_text())["config"]["group_by_modality"] is True
    plain = instruct.train_run(
        tiny_config(per_device_batch_size=2, global_batch_size=2, max_steps=6, save_steps=3),
        fx["base"],
        fx["data"],
        fx["images"],
        tmp_path / "plain",
    )
    wa, wp = adapter_weights(a), adapter_weights(plain)
    assert any(not torch.equal(wa[k], wp[k]) for k in wa)  # another order of the same samples: other weights
    with pytest.raises(KeyboardInterrupt):
        instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "c", callbacks=[CrashAfter(4)])
    wc = adapter_weights(instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "c"))
    for k in wa:
        assert torch.equal(wa[k], wc[k]), k  # resumed: the same batches in the same order


def test_trainer_sampler_follows_the_flag(tmp_path):
    args = trainer.training_arguments(
        tiny_config(per_device_batch_size=2, global_batch_size=2), tmp_path, 2, save=False
    )
    records = [Record(str(i), "x.png", (("<image>\nWhat is it?", "a" + " big" * i),)) for i in range(9)]
    records += [Record(str(i), None, (("Say hi.", "hi" + " hi" * i),)) for i in range(5)]
    dataset = type("Records", (), {"records": records, "__len__": lambda self: len(records)})()
    grouped = trainer.make_trainer(torch.nn.Linear(1, 1), args, dataset, 0, group_by_modality=True)._get_train_sampler()
    plain = trainer.make_trainer(torch.nn.Linear(1, 1), args, dataset, 0)._get_train_sampler()
    assert isinstance(grouped, ModalityGroupedSampler) and not isinstance(plain, ModalityGroupedSampler)
    order = list(grouped)
    text_only = {i for i, r in enumerate(records) if not r.image}
    assert sorted(order) == list(range(len(records)))
    assert sum(1 for b in groups(order, 2) if b and set(b) & text_only and not set(b) <= text_only) <= 1
