"""Data parallelism: two CPU processes (gloo, HF Trainer's DDP) train to the same losses and weights as one process
with the same global batch (per-device 2 x 2 processes vs per-device 2 x 2 accumulation steps).

The processes are started by torchrun (`torch.distributed.run`): accelerate 1.16's `launch --cpu` starts a single
process unless an MPI hostfile is given. On GPUs the same code runs under `accelerate launch` (configs/accelerate/).

    python -m tests.test_data_parallel <root> <out>    # the worker each process runs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = 3


def train(root: Path, out: Path) -> None:
    import torch

    from hydra_repro.training.instruct import train_run
    from tests.test_train import tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config(max_steps=STEPS, global_batch_size=4, per_device_batch_size=2, lora_dropout=0.0, save_steps=100)
    train_run(cfg, root / "base", root / "data" / "train.json", root / "data", out)


def adapter_weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_two_gloo_processes_train_as_one_process_with_accumulation(tmp_path):
    from tests.test_train import make_fixture

    root = make_fixture(tmp_path / "fx", n=12)["base"].parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    worker = ["-m", "tests.test_data_parallel", str(root)]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, *worker, str(one)], cwd=REPO, env=env, check=True, capture_output=True)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    done = subprocess.run([*launch, *worker, str(two)], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    run_one, run_two = (json.loads((r / "run.json").read_text()) for r in (one, two))
    assert (run_one["gradient_accumulation_steps"], run_two["gradient_accumulation_steps"]) == (2, 1)
    assert run_one["optimizer_steps"] == run_two["optimizer_steps"] == STEPS

    def losses(run: Path) -> list[float]:
        return [
            row["loss"] for row in map(json.loads, (run / "train_log.jsonl").read_text().splitlines()) if "loss" in row
        ]

    assert losses(two) == pytest.approx(losses(one), rel=1e-4, abs=1e-5)
    w1, w2 = adapter_weights(one), adapter_weights(two)
    assert w1.keys() == w2.keys()
    for key in w1:
        assert (w1[key] - w2[key]).abs().max().item() < 1e-4, key


if __name__ == "__main__":
    train(Path(sys.argv[1]), Path(sys.argv[2]))
