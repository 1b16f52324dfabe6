"""Stage 0: the CLIP analog trains on vision.json, is written as a hub-layout CLIP directory, and stage I uses it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import CLIPVisionModel

from hydra_repro.config.model import model_config_from_dict
from hydra_repro.config.pretrain import PretrainConfig, VisionPretrainConfig, profile_vision
from hydra_repro.errors import UserError
from hydra_repro.model.checkpoint import load_model
from hydra_repro.training.pretrain import pretrain
from hydra_repro.training.vision import load_vision_labels, pretrain_vision

TINY = {"preset": "tiny", "lm": {"num_hidden_layers": 2, "max_position_embeddings": 512}}
VISION = {"image_size": 64, "patch_size": 16}


def _tower(smoke_data, tmp_path, **cfg):
    model_cfg = model_config_from_dict({**TINY, "vision": VISION})
    cfg = VisionPretrainConfig(**({"steps": 3, "batch_size": 8, "holdout": 16, "log_every": 1} | cfg))
    out = tmp_path / "vision"
    return model_cfg, out, pretrain_vision(cfg, model_cfg.vision, smoke_data, out, "smoke")


def test_writes_a_clip_directory_and_held_out_accuracy(smoke_data, tmp_path):
    _, out, summary = _tower(smoke_data, tmp_path)
    clip = CLIPVisionModel.from_pretrained(str(out))
    assert clip.config.image_size == 64 and clip.config.patch_size == 16
    assert (out / "preprocessor_config.json").is_file()
    acc = summary["held_out_accuracy"]
    assert set(acc) == set(json.loads((smoke_data / "vision.json").read_text())["heads"])
    assert all(v is None or 0 <= v <= 1 for v in acc.values()) and acc["kind"] is not None
    assert summary["held_out_images"] == 16 and summary["final_loss"] > 0
    assert [json.loads(x)["step"] for x in (out / "vision_pretrain_log.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_training_learns_to_see(smoke_data, tmp_path):
    """Not a stub: 400 steps on the smoke images name held-out images' colours well above
    chance (8 colours; the tiny tower is too small for digits in a few hundred steps)."""
    _, out, summary = _tower(smoke_data, tmp_path, steps=400, batch_size=32, log_every=100, lr=3e-3, holdout=64)
    losses = [json.loads(x)["loss"] for x in (out / "vision_pretrain_log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0], losses
    assert summary["held_out_accuracy"]["color"] >= 0.5, summary["held_out_accuracy"]


def test_stage_one_starts_from_the_tower_and_keeps_it_frozen(smoke_data, tmp_path):
    model_cfg, vision_dir, _ = _tower(smoke_data, tmp_path)
    out = tmp_path / "base"
    summary = pretrain(
        PretrainConfig(steps=2, batch_size=4, log_every=1), model_cfg, smoke_data, out, "smoke", "t", vision_dir
    )
    assert summary["vision_tower"]["path"] == str(vision_dir)
    base = load_model(out).model.model.vision_tower.clip.state_dict()
    clip = CLIPVisionModel.from_pretrained(str(vision_dir)).state_dict()
    assert all(torch.equal(base[k], clip[k]) for k in clip), "stage I changed the frozen tower"
    assert summary["trainable_params"] == sum(
        p.numel() for n, p in load_model(out).model.named_parameters() if "vision_tower" not in n
    )


def test_a_tower_of_another_shape_is_refused(smoke_data, tmp_path):
    _, vision_dir, _ = _tower(smoke_data, tmp_path)
    other = model_config_from_dict({**TINY, "vision": {"image_size": 64, "patch_size": 8}})
    with pytest.raises(UserError, match=r"--vision: .* does not fit the model's tower.*'patch_size': \(16, 8\)"):
        pretrain(PretrainConfig(steps=1, batch_size=4), other, smoke_data, tmp_path / "b", "smoke", "t", vision_dir)
    assert not (tmp_path / "b").exists()


def test_bad_labels_name_the_file_and_record(smoke_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(smoke_data, data)
    doc = json.loads((data / "vision.json").read_text())
    doc["records"][3]["labels"]["shape"] = 7
    (data / "vision.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"vision.json: record 3: label shape=7"):
        load_vision_labels(data)
    doc["records"][3]["labels"]["shape"] = 0
    doc["records"][5]["image"] = "shapes/missing.png"
    (data / "vision.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"vision.json: record 5: image .*missing.png not found"):
        load_vision_labels(data)
    (data / "vision.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"vision.json: expected an object with 'heads'"):
        load_vision_labels(data)
    with pytest.raises(UserError, match="vision labels"):
        load_vision_labels(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"steps": 0}, "steps"),
        ({"mode": "clip"}, "mode"),
        ({"mode": "pretrained"}, "path"),
        ({"holdout": -1}, "holdout"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(UserError, match=f"pretrain_vision.{key}"):
        VisionPretrainConfig(**kwargs)


def test_models_of_a_profile_must_share_the_tower():
    section = {
        "models": {"small": {"preset": "mini-1.7b"}, "large": {"preset": "mini-3b", "vision": {"patch_size": 4}}}
    }
    with pytest.raises(UserError, match=r"profiles.x.models.large.vision: differs from models.small.vision"):
        profile_vision(section, "profiles.x")
    assert profile_vision({"models": {"small": {"preset": "mini-1.7b"}}}, "p").patch_size == 8


def test_a_truncated_image_is_named_before_the_tower_trains(smoke_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(smoke_data, data)
    records = json.loads((data / "vision.json").read_text())["records"]
    png = data / "images" / records[5]["image"]
    png.write_bytes(png.read_bytes()[:60])
    model_cfg = model_config_from_dict({**TINY, "vision": VISION})
    cfg = VisionPretrainConfig(steps=3, batch_size=8, holdout=16)
    with pytest.raises(
        UserError, match=rf"vision\.json: record 5: image file .*{records[5]['image']} is not a readable"
    ):
        pretrain_vision(cfg, model_cfg.vision, data, tmp_path / "vision", "smoke")
    assert not (tmp_path / "vision").exists()
