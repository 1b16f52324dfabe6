"""Stage I: the smoke base model trains, is written in MobileVLM's layout, and bad settings stop early."""

from __future__ import annotations

import json

import pytest
import torch

from hydra_repro.config.model import model_config_from_dict
from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.errors import UserError
from hydra_repro.model.checkpoint import load_model
from hydra_repro.provenance import sidecar_path
from hydra_repro.training.pretrain import pretrain, pretrain_arguments

TINY = {
    "preset": "tiny",
    "lm": {"num_hidden_layers": 2, "max_position_embeddings": 512},
    "vision": {"image_size": 64, "patch_size": 16},
}


def test_pretrain_writes_a_loadable_base_model(smoke_data, tmp_path):
    cfg = PretrainConfig(steps=3, batch_size=4, log_every=1)
    out = tmp_path / "base"
    summary = pretrain(cfg, model_config_from_dict(TINY), smoke_data, out, "smoke", "tiny")
    assert summary["steps"] == 3 and summary["final_loss"] > 0 and summary["device"] == "cpu"
    loaded = load_model(out)
    assert loaded.tokenizer is not None and len(loaded.tokenizer) == loaded.model.config.vocab_size
    log = [json.loads(line) for line in (out / "pretrain_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3]
    assert log[0]["lr"] < log[1]["lr"]  # warmup: the first steps rise toward pretrain.lr (HF's cosine)
    assert "provenance" not in json.loads((out / "pretrain.json").read_text())
    assert json.loads(sidecar_path(out).read_text())["packages"]["torch"]
    # stage II starts with a frozen vision tower
    assert not any(p.requires_grad for p in loaded.model.model.vision_tower.parameters())


def test_missing_data_fails_before_training_and_writes_nothing(tmp_path):
    out = tmp_path / "base"
    with pytest.raises(UserError, match="manifest"):
        pretrain(PretrainConfig(steps=1), model_config_from_dict(TINY), tmp_path / "nodata", out, "smoke", "x")
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"mode": "lora"}, "mode"),
        ({"mode": "projector"}, "init"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(UserError, match=f"pretrain.{key}"):
        PretrainConfig(**kwargs)


def test_stage_i_arguments_follow_the_section(tmp_path):
    """MobileVLM's recipe through Trainer: the global batch kept by accumulation, HF's cosine with warmup, AdamW's
    beta2, and fp32 on this CPU under `auto`."""
    cfg = PretrainConfig(steps=100, lr=1.0, warmup_ratio=0.03, batch_size=256, per_device_batch_size=32)
    args = pretrain_arguments(cfg, "auto", tmp_path)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (32, 8)
    assert (args.max_steps, args.learning_rate, args.lr_scheduler_type.value) == (100, 1.0, "cosine")
    assert (args.adam_beta1, args.adam_beta2, args.bf16, args.use_cpu) == (0.9, 0.999, False, True)
    with pytest.raises(UserError, match=r"pretrain.batch_size: got 250; expected a multiple of per_device_batch_size"):
        PretrainConfig(batch_size=250, per_device_batch_size=32).gradient_accumulation(1)


def test_stage_i_runs_in_bf16_autocast_on_the_cpu(smoke_data, tmp_path):
    """The bf16 path of stage I, exercised on this CPU (`bf16-cpu`): Trainer's autocast, fp32 weights written."""
    cfg = PretrainConfig(steps=2, batch_size=4, log_every=1, num_threads=1)
    out = tmp_path / "base"
    summary = pretrain(cfg, model_config_from_dict(TINY), smoke_data, out, "smoke", "tiny", precision="bf16-cpu")
    assert summary["final_loss"] > 0
    assert {p.dtype for p in load_model(out).model.parameters()} == {torch.float32}


def test_forced_bf16_without_a_gpu_stops_before_loading(smoke_data, tmp_path):
    cfg = PretrainConfig(steps=2, batch_size=4, log_every=1, num_threads=1)
    with pytest.raises(UserError, match=r"train.precision: got 'bf16', but this machine has no CUDA device"):
        pretrain(cfg, model_config_from_dict(TINY), smoke_data, tmp_path / "base", "smoke", "tiny", precision="bf16")
    assert not (tmp_path / "base").exists()


def test_projector_init_may_name_one_checkpoint_per_role():
    cfg = PretrainConfig(mode="projector", init={"small": "hub/1.4B", "large": "hub/2.7B"})
    assert cfg.init_for("large") == "hub/2.7B" and PretrainConfig(mode="projector", init="x").init_for("large") == "x"
    with pytest.raises(UserError, match=r"pretrain.init: no entry for model 'huge'"):
        cfg.init_for("huge")
    with pytest.raises(UserError, match=r"pretrain.init: got .*expected a mapping"):
        PretrainConfig(mode="projector", init={"small": ""})


def test_stage_i_reads_its_images_from_pretrain_image_folder(smoke_data, tmp_path):
    """The paper profile's manifest names LLaVA-558K's image folder apart from 665K's (`image_folder`)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(smoke_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    shutil.move(data / manifest["paths"]["image_folder"], tmp_path / "pre_images")
    (tmp_path / "instr_images").mkdir()  # stage II's folder: holds none of stage I's images
    manifest["paths"] |= {"pretrain_image_folder": str(tmp_path / "pre_images"), "image_folder": "../instr_images"}
    (data / "manifest.json").write_text(json.dumps(manifest))
    cfg = PretrainConfig(steps=1, batch_size=4, log_every=1)
    summary = pretrain(cfg, model_config_from_dict(TINY), data, tmp_path / "base", "smoke", "tiny")
    assert summary["steps"] == 1
