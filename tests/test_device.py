"""One precision key for every stage (`train.precision`): how it resolves on each kind of machine, and its errors."""

from __future__ import annotations

import pytest

from hydra_repro.config.train import TrainConfig, use_bf16
from hydra_repro.errors import UserError


@pytest.mark.parametrize(
    ("precision", "cuda", "cuda_bf16", "bf16"),
    [
        ("auto", False, False, False),  # this CPU machine: fp32
        ("auto", True, True, True),  # an A100 / H100: bf16
        ("auto", True, False, False),  # a GPU without bf16 (V100): fp32
        ("fp32", True, True, False),
        ("bf16", True, True, True),
        ("bf16-cpu", False, False, True),  # bf16 autocast on the CPU, to exercise the bf16 path here
    ],
)
def test_precision_resolves_per_machine(precision, cuda, cuda_bf16, bf16):
    assert use_bf16(precision, cuda, cuda_bf16) is bf16


@pytest.mark.parametrize(("cuda", "found"), [(False, "no CUDA device"), (True, "a CUDA device without bf16")])
def test_forced_bf16_without_a_bf16_gpu_is_an_error(cuda, found):
    with pytest.raises(UserError, match=f"train.precision: got 'bf16', but this machine has {found}"):
        use_bf16("bf16", cuda, False)


def test_the_trainer_arguments_follow_the_key(tmp_path):
    from hydra_repro.training.trainer import training_arguments

    cpu_bf16 = training_arguments(TrainConfig(precision="bf16-cpu"), tmp_path, 24, save=False)
    assert (cpu_bf16.bf16, cpu_bf16.use_cpu) == (True, True)
    fp32 = training_arguments(TrainConfig(), tmp_path, 24, save=False)
    assert (fp32.bf16, fp32.use_cpu) == (False, True)
    with pytest.raises(UserError, match="train.precision"):
        training_arguments(TrainConfig(precision="bf16"), tmp_path, 24, save=False)


def test_a_missing_deepspeed_config_is_named(monkeypatch, tmp_path):
    from hydra_repro.training.trainer import training_arguments

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(tmp_path / "zero2.json"))
    with pytest.raises(UserError, match=r"deepspeed_config_file: got '.*zero2.json', which does not exist"):
        training_arguments(TrainConfig(), tmp_path, 24, save=False)


def test_a_global_batch_the_gpus_cannot_share_is_named():
    with pytest.raises(UserError, match=r"train.global_batch_size: got 128; expected a multiple of .* devices \(3\)"):
        TrainConfig().gradient_accumulation(3)


# The bf16 paths of the stages, exercised on this CPU with `bf16-cpu` (bf16 autocast; fp32 master weights written)


def test_stage_ii_trains_in_bf16_autocast(tmp_path):
    import json

    from hydra_repro.training.instruct import train_run
    from tests.test_train import make_fixture, tiny_config

    fx = make_fixture(tmp_path / "fx")
    out = train_run(
        tiny_config(max_steps=2, precision="bf16-cpu"), fx["base"], fx["data"], fx["images"], tmp_path / "r"
    )
    run = json.loads((out / "run.json").read_text())
    assert run["precision"] == "bf16" and run["final_train_loss"] > 0


def test_gradient_norms_in_bf16_autocast(tmp_path):
    from hydra_repro.config.gradnorm import GradNormConfig
    from hydra_repro.training.gradnorm import run_gradnorm
    from tests.test_train import make_fixture, tiny_config

    fx = make_fixture(tmp_path / "fx")
    cfg = tiny_config(precision="bf16-cpu")
    result, _ = run_gradnorm(cfg, GradNormConfig(steps=4), fx["base"], fx["data"], fx["images"], tmp_path / "g.json")
    assert len(result["layer_norms"]) == 2 and all(n > 0 for n in result["layer_norms"])


def test_stage_0_trains_in_bf16_autocast(smoke_data, tmp_path):
    from hydra_repro.config.model import model_config_from_dict
    from hydra_repro.config.pretrain import VisionPretrainConfig
    from hydra_repro.training.vision import pretrain_vision

    vision = model_config_from_dict({"preset": "tiny", "vision": {"image_size": 64, "patch_size": 16}}).vision
    cfg = VisionPretrainConfig(steps=2, batch_size=8, holdout=16, log_every=1, num_threads=1)
    summary = pretrain_vision(cfg, vision, smoke_data, tmp_path / "vision", "smoke", precision="bf16-cpu")
    assert summary["final_loss"] > 0 and summary["device"] == "cpu"


def test_evaluation_loads_in_bf16(tmp_path):
    import torch

    from hydra_repro.eval.harness import import_lmms_eval
    from tests.fakes import write_random_model

    import_lmms_eval()
    from hydra_repro.eval.lmms_model import HydraVLM

    lm = HydraVLM(pretrained=str(write_random_model(tmp_path / "base")), dtype="bfloat16", max_new_tokens=2)
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}
    with pytest.raises(UserError, match="model_args dtype: got 'float16'"):
        HydraVLM(pretrained=str(tmp_path / "base"), dtype="float16")
