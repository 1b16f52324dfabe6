"""Tests of hydra_repro.training.gradnorm: the callback's per-step norms and eq. 1's averages against a hand-written
training loop on the tiny model, pre- vs post-clipping, the zero A gradients of step 1, the output file and the CLI.

Run: `.venv/bin/python -m pytest tests/test_gradnorm.py -q`.
"""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from transformers import get_cosine_schedule_with_warmup

from hydra_repro.adapters import attach
from hydra_repro.config import gradnorm as gradnorm_config
from hydra_repro.config import train as train_config
from hydra_repro.constants import COMPONENTS
from hydra_repro.core.schedule import Schedule
from hydra_repro.data.conversation import DataCollator
from hydra_repro.errors import UserError
from hydra_repro.model.checkpoint import load_model
from hydra_repro.provenance import sidecar_path
from hydra_repro.training import gradnorm, trainer
from tests.conftest import write_profile
from tests.test_train import make_fixture, tiny_config

STEPS = 5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_train.py: 2 threads are slower for tiny models on a loaded machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    # 3 image records + 1 text-only record = one batch of 4: every step sees the same samples in both loops.
    return make_fixture(tmp_path_factory.mktemp("gn"), n=3)


@pytest.fixture(scope="module")
def recorded(fx, tmp_path_factory):
    # No dropout: the reference loop needs no shared RNG. A small max_grad_norm makes every step clip.
    cfg = tiny_config(lora_dropout=0.0, learning_rate=5e-2, max_grad_norm=0.05)
    out = tmp_path_factory.mktemp("res") / "gradnorm.json"
    result, callback = gradnorm.run_gradnorm(
        cfg, gradnorm_config.GradNormConfig(steps=STEPS), fx["base"], fx["data"], fx["images"], out
    )
    return cfg, result, callback, out


def reference_norms(cfg: train_config.TrainConfig, fx) -> list[torch.Tensor]:
    """A plain PyTorch loop with the Trainer's recipe: per step, ||grad|| of each LoRA tensor before clipping."""
    loaded = load_model(fx["base"])
    n_layers = loaded.model.config.num_hidden_layers
    model, _ = attach.attach_adapter(loaded.model, cfg, Schedule.uniform(n_layers, cfg.rank), STEPS)
    dataset = trainer.make_dataset(fx["data"], fx["images"], loaded.tokenizer, loaded.image_processor, cfg.max_length)
    batch = DataCollator(loaded.tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * STEPS), STEPS)
    params = gradnorm.lora_parameters(model, n_layers)
    model.train()
    out = []
    for _ in range(STEPS):
        model(**batch).loss.backward()
        out.append(torch.tensor([p.grad.norm().item() for p in params], dtype=torch.float64).view(n_layers, 7, 2))
        torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad()
    return out


def test_per_step_norms_match_a_hand_written_loop(recorded, fx):
    cfg, result, callback, _ = recorded
    ref = reference_norms(cfg, fx)
    assert [r["step"] for r in callback.records] == list(range(1, STEPS + 1))
    for rec, expected in zip(callback.records, ref):
        torch.testing.assert_close(rec["pre"], expected, rtol=1e-4, atol=1e-7)

    # Eq. 1 by hand: mean of the 14 tensors of a layer, then over steps 3..N; components over layers, A/B, steps.
    assert result["skip_first_steps"] == 2  # B = 0 at init, and the first warmup step has LR 0
    kept = ref[2:]
    layer = [sum(float(t[l].mean()) for t in kept) / len(kept) for l in range(2)]
    assert result["layer_norms"] == pytest.approx(layer, rel=1e-4)
    comp = {c: sum(float(t[:, i].mean()) for t in kept) / len(kept) for i, c in enumerate(COMPONENTS)}
    assert result["component_norms"] == pytest.approx(comp, rel=1e-4)
    assert list(result["component_norms"]) == list(COMPONENTS)


def test_step_one_has_zero_a_gradients_and_clipping_is_recorded(recorded):
    _, result, callback, _ = recorded
    # B = 0 at init -> dL/dA = 0; step 1 runs at warmup LR 0, so B is still 0 in step 2.
    for rec in callback.records[:2]:
        assert torch.all(rec["pre"][..., 0] == 0) and torch.all(rec["pre"][..., 1] > 0)
    assert all(torch.all(r["pre"][..., 0] > 0) for r in callback.records[2:])
    scales = result["series"]["clip_scale"]
    assert all(0 < s <= 1 + 1e-6 for s in scales) and min(scales) < 1  # clipping happened in this run
    for rec, s in zip(callback.records, scales):  # clipping scales every tensor of the step by the same factor
        torch.testing.assert_close(rec["post"], rec["pre"] * s, rtol=1e-4, atol=1e-8)
    assert result["post_clip"]["layer_norms"] != result["layer_norms"]


def test_output_file(recorded):
    _, result, _, out = recorded
    data = json.loads(out.read_text())
    assert data["layer_norms"] == result["layer_norms"] and len(data["layer_norms"]) == 2
    assert data["definition"]["clipping"].startswith("pre-clip") and data["skip_first_steps"] == 2
    assert len(data["series"]["layer_norms"]) == STEPS and len(data["series"]["loss"]) == STEPS
    assert data["lora_params"] > 0 and "provenance" not in data
    assert json.loads(sidecar_path(out).read_text())["packages"]["torch"]
    from hydra_repro.core.readers import read_norms

    assert read_norms(out) == data["layer_norms"]  # the input format of `hydra-repro allocate --grad-norms`


def test_summarize_and_config_validation():
    rec = [{"step": s, "pre": torch.full((1, 7, 2), float(s)), "post": torch.full((1, 7, 2), 1.0)} for s in (1, 2, 3)]
    res = gradnorm.summarize(rec, skip_first_steps=1)
    assert res["layer_norms"] == [2.5] and res["component_norms"]["up_proj"] == 2.5
    rec[0]["pre"][0, 3, 0] = 0.0  # one zero A gradient in step 1: the automatic rule skips step 1 only
    assert gradnorm.summarize(rec)["skip_first_steps"] == 1
    assert gradnorm.summarize(rec, skip_first_steps=0)["layer_norms"] == pytest.approx([(1 - 1 / 14 + 2 + 3) / 3])
    assert res["series"]["clip_scale"] == pytest.approx([1.0, 0.5, 1 / 3])
    with pytest.raises(UserError, match="gradnorm.steps"):
        gradnorm_config.GradNormConfig(steps=0)
    with pytest.raises(UserError, match="gradnorm.rank"):
        gradnorm_config.GradNormConfig(rank=0)
    with pytest.raises(UserError, match="skip_first_steps"):
        gradnorm_config.GradNormConfig(steps=1, skip_first_steps=1)


def test_cli(fx, tmp_path):
    from hydra_repro import cli

    train = {"rank": 2, "global_batch_size": 4, "per_device_batch_size": 4, "max_length": 64, "learning_rate": 0.01}
    params = write_profile(tmp_path, train=train, gradnorm={"steps": 3, "rank": 2})
    out = tmp_path / "results" / "gradnorm.json"
    cli.VERBS.setdefault("gradnorm", ("hydra_repro.training.gradnorm", "gradnorm"))
    argv = [
        "gradnorm",
        "--params",
        str(params),
        "--base",
        str(fx["base"]),
        "--data",
        str(fx["data"]),
        "--images",
        str(fx["images"]),
        "--out",
        str(out),
        "--rank",
        "3",
    ]
    assert cli.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["rank"] == 3 and data["steps"] == 3 and len(data["series"]["step"]) == 3
    assert cli.main([*argv, "--steps", "2"]) == 2  # nothing left to average after the zero-A steps: status 2
