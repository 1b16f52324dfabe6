"""Stage 0 (`hydra-repro pretrain-vision`): the CLIP analog, a vision tower that sees before any LM looks at it.

    hydra-repro pretrain-vision --params params.yaml --profile mini --out models/mini/vision

MobileVLM starts from a pretrained CLIP ViT-L/14-336 that is frozen throughout. The mini and smoke profiles have no
such tower, and a from-scratch ViT trained only through a thin LM's caption loss learns colour but hardly shape or
digits (docs/mini-run.md; mini-calibration lesson 1). So this stage pretrains the profile's ViT on its own:
attention-pooled linear heads on the features the projector receives (hidden layer `select_layer`, patch tokens)
classify the attributes in `vision.json` (colour, shape, size, position; digit count and each digit). Only train
images are used; `holdout` of them are kept out to report per-head accuracy, the "does the tower see" check.

- `train` (mini, smoke): writes a CLIP checkpoint directory (`config.json`, `model.safetensors`,
  `preprocessor_config.json`) in the hub layout, plus `vision_pretrain.json` (settings, accuracies); timing and
  provenance go beside it, in `<out>.provenance.json`, so the tower hashes the same on any machine.
- `pretrained` (paper): nothing to train; records the local CLIP directory given as `path` after checking it exists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra_repro.cli import add_profile_arguments
from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.pretrain import VisionPretrainConfig, profile_vision
from hydra_repro.training.vision import pretrain_vision, record_pretrained


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p, "overrides params.yaml's `profile`")
    p.add_argument("--data", type=Path, help="default: data/<profile>")
    p.add_argument("--out", type=Path, help="default: models/<profile>/vision")


def run(args: argparse.Namespace) -> int:
    profile, section = load_params(args.params, args.profile)
    where = f"profiles.{profile}"
    cfg = dataclass_from_dict(VisionPretrainConfig, section.get("pretrain_vision", {}), f"{where}.pretrain_vision")
    out = args.out or Path("models") / profile / "vision"
    if cfg.mode == "pretrained":
        summary = record_pretrained(cfg, out, profile)
        print(json.dumps({k: summary[k] for k in ("mode", "path")}))
        return 0
    vision = profile_vision(section, where)
    precision = (section.get("train") or {}).get("precision", "auto")  # one key for every stage's precision
    summary = pretrain_vision(cfg, vision, args.data or Path("data") / profile, out, profile, precision)
    print(json.dumps({k: summary[k] for k in ("held_out_accuracy", "final_loss", "wall_time_s")}))
    return 0
