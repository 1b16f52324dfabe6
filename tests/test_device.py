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
