"""`hydra-repro gradnorm`: the paper's eq. 1, average LoRA gradient norms per layer and per component (Table I, Fig. 3).

    hydra-repro gradnorm --params params.yaml --base models/mini/base --data data/mini/train.json \\
        --images data/mini --out results/gradnorm.json --steps 50 --rank 8

A short uniform-LoRA fine-tuning run (the profile's `train` settings, method `lora`, `--steps` optimizer steps) records
the gradients through a Trainer callback while it trains: no second pass over the data.

What is averaged (eq. 1, w(l) = 1/n sum_i ||grad theta_i(l)||):
- theta_i are the LoRA tensors of layer l: A and B of each of the 7 projections, separately, so n = 14. A step's
  value is the mean of the 14 Frobenius (L2) norms of their gradients; `layer_norms[l]` averages it over steps.
- `component_norms[c]` is the mean of ||grad A_c||, ||grad B_c|| over all layers and steps (Table I).
- The gradient is the one of an optimizer step: summed over gradient-accumulation micro-batches (HF scales the loss),
  BEFORE clipping. HF clips the total norm to max_grad_norm = 1.0 before any callback runs, so the gradients are
  read by post-accumulate-grad hooks during backward instead. Why pre-clip: clipping multiplies every gradient of a
  step by the same factor, so it keeps the ranking within a step but reweights the steps, and a clipped norm is the
  optimizer's choice, not the model's sensitivity. Table I itself rules post-clip out: with a total norm clipped to
  1.0 no single tensor can exceed 1.0, yet Table I reports 1.67 for Up. The post-clip values and each step's clip
  factor are recorded too (`post_clip`, `series.clip_scale`).
- LoRA's B starts at zero, so every A gradient (dL/dA = B^T ...) is exactly zero until the first update of B, then
  small while |B| grows from lr-sized values. With HF's linear warmup the first step runs at LR 0, so B is still
  zero in step 2 as well: A's gradients vanish for two steps. Averaging those steps in would put seven zeros into
  each layer's mean; by default (`skip_first_steps: null`) the averages start at the first step in which no A
  gradient is zero (the number skipped is recorded; the series keeps every step). After that the layer mean is
  dominated by B, for every layer alike; `ab_split` shows the two parts.
Single process only: under DDP the hooks would see a rank's local gradient before the all-reduce.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra_repro.config.gradnorm import GradNormConfig
from hydra_repro.training.gradnorm import run_gradnorm


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="its profile's `train` and `gradnorm` sections"
    )
    p.add_argument("--profile", help="profile of params.yaml (default: the file's `profile` key)")
    p.add_argument("--base", required=True, type=Path, help="base model directory (models/<profile>/small|large|smol)")
    p.add_argument("--data", required=True, type=Path, help="LLaVA-format train.json")
    p.add_argument(
        "--images", type=Path, help="folder the records' image paths are relative to (default: from manifest.json)"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output JSON (results/<profile>/gradnorm/<role>.json, or results/<profile>/smol/gradnorm.json)",
    )
    p.add_argument("--steps", type=int, help="optimizer steps (default: gradnorm.steps)")
    p.add_argument("--rank", type=int, help="uniform LoRA rank (default: gradnorm.rank, else train.rank)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer directory if the base model has none")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.config import dataclass_from_dict, load_params
    from hydra_repro.config.train import train_config_from_params
    from hydra_repro.data.conversation import image_folder

    profile, prof = load_params(args.params, args.profile)
    section = dict(prof["gradnorm"])
    # the uniform-LoRA run whose norms drive the allocation uses the profile's standard rank
    section.setdefault("rank", (prof.get("allocation") or {}).get("r_standard"))
    section.update({k: v for k, v in (("steps", args.steps), ("rank", args.rank)) if v is not None})
    where = f"{args.params}: profiles.{profile}.gradnorm"
    gcfg = dataclass_from_dict(GradNormConfig, section, where)
    train_cfg = train_config_from_params(args.params, profile)
    result, _ = run_gradnorm(
        train_cfg,
        gcfg,
        args.base,
        args.data,
        image_folder(args.data, args.images),
        args.out,
        tokenizer_path=args.tokenizer,
        profile=profile,
    )
    layers = ", ".join(f"{v:.3g}" for v in result["layer_norms"])
    print(f"gradnorm: wrote {args.out}; layer norms (layer 1 first): {layers}")
    return 0
