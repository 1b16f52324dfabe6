"""Forward + backward time of real mini batches as 1..4 length-sorted micro-batches (microbatch.py).

    .venv/bin/python benchmarks/length_groups.py [--kind train|pretrain] [--batches 6] [--groups 1,2,3,4]

Needs the mini pipeline's `data/mini` and `models/mini/small` (`dvc repro pretrain@small`). `train`: uniform LoRA
at the mini profile's rank on batches of `train.per_device_batch_size` from train.json (the Trainer step's model
call and backward); `pretrain`: stage I's from-scratch LM on batches of `pretrain.batch_size` from pretrain.json.
The same batches go through every setting, which take turns batch by batch so a change in machine load hits all
alike. Prints the median time per batch, the padded positions the model computes (as a share of the one-batch
layout) and the largest loss difference to the one-batch layout (float rounding only). Run it on a quiet machine
(`uptime`); the figures in the README are from `--threads 1`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hydra_repro.adapters import attach, peft_config
from hydra_repro.config import load_params
from hydra_repro.config import train as train_config
from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.data import conversation
from hydra_repro.data.conversation import DataCollator, LlavaDataset, load_records, model_template
from hydra_repro.data.microbatch import grouped_loss, split
from hydra_repro.model.checkpoint import load_model
from hydra_repro.model.vlm import process_images
from hydra_repro.training import trainer


def batches(kind: str, params: dict, n: int, lm) -> tuple[list[dict], int]:
    data = Path("data/mini")
    images = conversation.image_folder(data / "train.json", None)
    if kind == "train":
        cfg = train_config.TrainConfig(**params["train"])
        size = cfg.per_device_batch_size
        ds = trainer.make_dataset(
            data / "train.json",
            images,
            lm.tokenizer,
            lm.image_processor,
            cfg.max_length,
            model_template(lm.model.config),
        )
    else:
        pcfg = PretrainConfig(**params["pretrain"])
        size = pcfg.batch_size
        ds = LlavaDataset(
            load_records(data / "pretrain.json", images),
            lm.tokenizer,
            lambda im: process_images([im], lm.image_processor)[0],
            images,
            max_length=pcfg.max_length,
            template=model_template(lm.model.config),
        )
    rng = np.random.default_rng(0)
    collate = DataCollator(lm.tokenizer.pad_token_id)
    return [collate([ds[int(i)] for i in rng.permutation(len(ds))[:size]]) for _ in range(n)], size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=("train", "pretrain"), default="train")
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--groups", default="1,2,3,4")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _, params = load_params("params.yaml", "mini")
    lm = load_model("models/mini/small")
    model = lm.model
    if args.kind == "train":
        cfg = train_config.TrainConfig(
            **{**params["train"], "method": "lora", "rank": params["allocation"]["r_standard"]}
        )
        model, _ = attach.attach_adapter(model, cfg, peft_config.plan_schedule(cfg, model, None), total_steps=10)
    else:
        for q in model.parameters():
            q.requires_grad_(True)
        model.model.vision_tower.requires_grad_(False)  # stage I keeps the stage-0 tower frozen
    model.train()
    data, size = batches(args.kind, params, args.batches, lm)
    groups = [int(g) for g in args.groups.split(",")]
    times: dict[int, list[float]] = {g: [] for g in groups}
    losses: dict[int, list[float]] = {g: [] for g in groups}
    positions = {g: sum(sum(q["input_ids"].numel() for q in split(b, g)) for b in data) for g in groups}
    for b in data:
        for g in groups:
            t = time.perf_counter()
            loss = grouped_loss(lambda part: model(**part).loss, b, g)
            loss.backward()
            times[g].append(time.perf_counter() - t)
            losses[g].append(loss.item())
            model.zero_grad(set_to_none=True)
    print(
        f"{args.kind}: {len(data)} batches of {size} from data/mini, models/mini/small, {torch.get_num_threads()} "
        f"thread(s); forward + backward per batch"
    )
    base = statistics.median(times[groups[0]])
    for g in groups:
        med = statistics.median(times[g])
        diff = max(abs(a - b) for a, b in zip(losses[g], losses[groups[0]]))
        print(
            f"groups {g}: {med * 1e3:6.0f} ms (median; x{base / med:4.2f} vs groups {groups[0]})  "
            f"text positions {positions[g] / positions[groups[0]]:5.1%}  max |loss diff| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
