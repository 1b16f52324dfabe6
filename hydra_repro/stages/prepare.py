"""`hydra-repro prepare [--params params.yaml] [--profile NAME] [--out data/<profile>]`: build a profile's data.

`mini` / `smoke` (`data.source: packages`) build everything from data that ships in PyPI packages: easy-VQA's
coloured shapes (4,000 train / 1,000 test images) and scikit-learn's 1,797 handwritten digits, which are composed
into numbers of 1-`max_digits` digits on 64x64 canvases. The output, written atomically:

    data/<profile>/
      images/shapes/*.png, images/digits/*.png   train-split images only
      images/vision_digits/*.png                 more train-digit canvases, seen only by the vision pretraining
      vision.json         stage 0 (the CLIP analog): attribute labels per train image (colour, shape, digits, ...)
      pretrain.json       LLaVA format, stage I: captions + basic questions covering every answer word
      train.json          LLaVA format, stage II: a mixture of the six benchmark formats (665K-like)
      eval/<task>.parquet mini_mme, mini_mmbench, mini_gqa, mini_textvqa, mini_pope, mini_sqa_img (held-out split)
      tokenizer/          word-level tokenizer for the from-scratch LMs (save_pretrained)
      tasks/              lmms-eval task YAMLs for the six sets, portable: `evaluate` fills in the paths
      manifest.json       counts, seed, config, file hashes
    data/<profile>.provenance.json   source package versions, lock hash, commit, time (outside the hashed output)

`paper` (`data.source: llava`) only checks the user-provided LLaVA-558K / LLaVA-665K files and writes a manifest
pointing at them; anything missing is reported in one message saying where it is expected and where to get it.
Every prompt of a training record is rendered exactly as lmms-eval's task renders the benchmark it mirrors.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.data import DataConfig
from hydra_repro.data.build import prepare
from hydra_repro.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--profile", default=None, help="profile name; overrides the params file's `profile:`")
    parser.add_argument("--out", default=None, help="output folder (default: data/<profile>)")
    parser.add_argument("--registry", default="experiments/runs.yaml", help="run registry checked up front")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.core.registry import check_registry

    # the first stage checks the registry too, so a broken run definition stops `dvc repro` here
    check_registry(args.registry, args.params, args.profile)
    profile, section = load_params(args.params, args.profile)
    try:
        cfg = dataclass_from_dict(DataConfig, section.get("data", {}), f"{args.params}: profiles.{profile}.data")
    except UserError as e:  # __post_init__ names the key as data.<key>; add the file and profile
        msg = str(e)
        raise UserError(
            msg if msg.startswith(str(args.params)) else f"{args.params}: profiles.{profile}.{msg}"
        ) from None
    out = Path(args.out) if args.out else Path("data") / profile
    manifest = prepare(cfg, out, profile)
    counts = ", ".join(f"{name} {v.get('records', v.get('rows'))}" for name, v in manifest["files"].items())
    print(f"prepare: wrote {out} ({counts})")
    return 0
