"""Stage I: the smoke base model trains, is written in MobileVLM's layout, and bad settings stop early."""

from __future__ import annotations

import json

import pytest

from hydra_repro.config.model import model_config_from_dict
from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.errors import UserError
from hydra_repro.model.checkpoint import load_model
from hydra_repro.provenance import sidecar_path
from hydra_repro.training.pretrain import lr_at, pretrain

TINY = {
    "preset": "tiny",
    "lm": {"num_hidden_layers": 2, "max_position_embeddings": 512},
    "vision": {"image_size": 64, "patch_size": 16},
}


def test_pretrain_writes_a_loadable_base_model(smoke_data, tmp_path):
    cfg = PretrainConfig(steps=3, batch_size=4, log_every=1)
    out = tmp_path / "base"
    summary = pretrain(cfg, model_config_from_dict(TINY), smoke_data, out, "smoke", "tiny")
    assert summary["steps"] == 3 and summary["final_loss"] > 0
    loaded = load_model(out)
    assert loaded.tokenizer is not None and len(loaded.tokenizer) == loaded.model.config.vocab_size
    log = [json.loads(line) for line in (out / "pretrain_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3]
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


def test_schedule_warms_up_then_decays_to_zero():
    cfg = PretrainConfig(steps=100, lr=1.0, warmup_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) < 0.01


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
