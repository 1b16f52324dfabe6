"""The Schedule type: JSON round trip, and the PEFT boundary (planned ranks == realized ranks) on a tiny Llama."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hydra_repro.constants import COMPONENTS
from hydra_repro.core.allocation import ModelDims
from hydra_repro.core.schedule import Schedule
from hydra_repro.errors import UserError

layer_ranks = st.lists(st.tuples(*[st.integers(1, 64)] * len(COMPONENTS)), min_size=1, max_size=40)


@given(layer_ranks)
def test_json_round_trip(ranks):
    s = Schedule(tuple(ranks), name="x")
    assert Schedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_save_load(tmp_path):
    s = Schedule.fixed("config3", 24, 16)
    s.save(tmp_path / "s.json")
    assert Schedule.load(tmp_path / "s.json") == s


@pytest.mark.parametrize(
    "layers, match",
    [
        ([{c: 0 for c in COMPONENTS}], "rank 0"),
        ([{c: 2 for c in COMPONENTS if c != "q_proj"}], "expected exactly"),
        ([{**{c: 2 for c in COMPONENTS}, "fc1": 2}], "expected exactly"),
        ([{c: 1.5 for c in COMPONENTS}], "integer"),
    ],
)
def test_bad_schedules_name_the_problem(layers, match):
    with pytest.raises(UserError, match=match):
        Schedule.from_layer_dicts(layers)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Schedule.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="bad.json"):
        Schedule.load(tmp_path / "bad.json")


def tiny_llama(n_layers: int = 3):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def test_peft_realizes_every_planned_rank_and_the_formula():
    """PEFT silently ignores pattern keys that match nothing: read every lora_A back and compare."""
    from peft import LoraConfig, get_peft_model

    # distinct ranks everywhere, including layer 1 vs 11-style prefixes that naive keys would confuse
    n = 12
    ranks = tuple(tuple(1 + (3 * layer + j) % 9 for j in range(len(COMPONENTS))) for layer in range(n))
    sched = Schedule(ranks, "test")
    r, rank_pattern, alpha_pattern = sched.peft_patterns()
    model = get_peft_model(
        tiny_llama(n),
        LoraConfig(
            r=r,
            lora_alpha=2 * r,
            rank_pattern=rank_pattern,
            alpha_pattern=alpha_pattern,
            target_modules=list(COMPONENTS),
            lora_dropout=0.0,
        ),
    )
    realized, scaling = {}, {}
    for name, module in model.base_model.model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            realized[name] = module.lora_A["default"].weight.shape[0]
            scaling[name] = module.scaling["default"]
    assert realized == sched.planned()
    assert set(scaling.values()) == {2.0}  # alpha = 2r per module keeps alpha / r fixed
    dims = ModelDims(32, 48, 4, 2, n)
    n_trainable = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    assert n_trainable == sched.trainable_params(dims)
