"""Stage I (`hydra-repro pretrain`): the base VLM that instruction tuning starts from.

    hydra-repro pretrain --params params.yaml --model mini-1.7b --data data/mini --out models/mini/mini-1.7b

- `from_scratch` (mini, smoke): vision tower, LDP projector and LM are all trained from random weights on
  `pretrain.json` (captions and basic questions of the train images); the tokenizer is the one `prepare` built.
- `projector` (paper): MobileVLM's recipe: only the LDP projector trains (LR 1e-3), vision tower and LM frozen,
  on LLaVA-558K; the LM starts from the MobileLLaMA checkpoint given as `init`.

HF Trainer runs it (`training.pretrain`): the device and bf16 follow the profile's `train.precision`, `accelerate
launch` spreads it over GPUs, and `pretrain.batch_size` stays the global batch. The output directory is
MobileVLM's checkpoint layout plus `pretrain_log.jsonl` and `pretrain.json` (settings, losses), published
atomically at the end; timing and provenance go beside it, in `<out>.provenance.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from hydra_repro.cli import add_profile_arguments
from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.training.pretrain import model_section, pretrain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p, "overrides params.yaml's `profile`")
    p.add_argument("--model", required=True, help="a key of profiles.<profile>.models")
    p.add_argument("--data", type=Path, help="default: data/<profile>")
    p.add_argument("--out", type=Path, help="default: models/<profile>/<model>")
    p.add_argument("--vision", type=Path, help="a stage-0 tower dir (pretrain-vision's output) or a CLIP dir")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.config.model import model_config_from_dict

    profile, section = load_params(args.params, args.profile)
    where = f"profiles.{profile}"
    cfg = dataclass_from_dict(PretrainConfig, section.get("pretrain", {}), f"{where}.pretrain")
    cfg = dataclasses.replace(cfg, init=cfg.init_for(args.model))
    model_cfg = None  # projector mode reads the architecture from the checkpoints; `models` may be absent
    if cfg.mode == "from_scratch" or args.model in (section.get("models") or {}):
        model_cfg = model_config_from_dict(model_section(section, args.model, where), f"{where}.models.{args.model}")
    data = args.data or Path("data") / profile
    out = args.out or Path("models") / profile / args.model
    precision = (section.get("train") or {}).get("precision", "auto")  # one key for every stage's precision
    summary = pretrain(cfg, model_cfg, data, out, profile, args.model, args.vision, precision)
    if not summary:  # another process of a multi-GPU launch: rank 0 writes and reports
        return 0
    print(json.dumps({k: summary[k] for k in ("model", "steps", "final_loss", "wall_time_s", "s_per_step")}))
    return 0
