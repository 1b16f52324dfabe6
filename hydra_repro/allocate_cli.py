"""`hydra-repro allocate`: print HyDRA's rank allocation for a list of per-layer gradient norms as JSON.

    hydra-repro allocate --grad-norms norms.json --stages 3 --r-standard 128 --delta-d 2 --setting setting1

`norms.json` is a JSON list of per-layer average gradient norms, layer 1 first (or an object with a
`layer_norms` list, as `results/gradnorm.json` has). Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from hydra_repro.allocation import FINE_SETTINGS, MOBILELLAMA_1_4B, RULES, ModelDims, allocate
from hydra_repro.errors import UserError
from hydra_repro.io import read_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grad-norms", required=True, type=Path, help="JSON list of per-layer gradient norms")
    p.add_argument("--stages", required=True, type=int, help="number of stages N_s")
    p.add_argument("--r-standard", required=True, type=int, help="rank of standard LoRA (sets the budget)")
    p.add_argument("--delta-d", required=True, type=int, help="rank step between stages (Δd)")
    p.add_argument("--rule", default="as-written", choices=sorted(RULES), help="stopping rule of the R1 iteration")
    p.add_argument("--setting", default="coarse", choices=list(FINE_SETTINGS), help="fine-grained setting")
    p.add_argument(
        "--model-dims",
        type=Path,
        help="JSON with hidden_size, intermediate_size, num_attention_heads, "
        "num_key_value_heads[, head_dim]; default: MobileLLaMA 1.4B",
    )


def read_norms(path: Path) -> list[float]:
    data = read_json(path, "--grad-norms file: a JSON list of numbers")
    if isinstance(data, dict) and "layer_norms" in data:
        data = data["layer_norms"]
    if not isinstance(data, list) or not data:
        raise UserError(f"--grad-norms: {path} holds {type(data).__name__}; expected a non-empty JSON list of numbers")
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"--grad-norms: {path} layer {i + 1} is {v!r}; expected a number")
    return [float(v) for v in data]


def read_dims(path: Path | None, n_layers: int) -> ModelDims:
    if path is None:
        d = {f.name: getattr(MOBILELLAMA_1_4B, f.name) for f in fields(ModelDims)}
    else:
        d = read_json(path, "--model-dims file")
        allowed = {f.name for f in fields(ModelDims)}
        if not isinstance(d, dict) or set(d) - allowed:
            raise UserError(f"--model-dims: {path} must be an object with keys from {sorted(allowed)}")
        for k, v in d.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise UserError(f"--model-dims: {path} key {k!r} is {v!r}; expected an integer")
    d["num_hidden_layers"] = n_layers
    try:
        return ModelDims(**d)
    except TypeError as e:
        raise UserError(f"--model-dims: {e}") from None


def run(args: argparse.Namespace) -> int:
    norms = read_norms(args.grad_norms)
    dims = read_dims(args.model_dims, len(norms))
    result = allocate(
        norms, args.stages, args.r_standard, args.delta_d, rule=args.rule, setting=args.setting, dims=dims
    )
    json.dump(result.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
