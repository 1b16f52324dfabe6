"""`hydra-repro allocate`: HyDRA's rank allocation as JSON, for one list of gradient norms or a whole registry.

    hydra-repro allocate --grad-norms norms.json --stages 3 --r-standard 128 --delta-d 2 --setting setting1
    hydra-repro allocate --registry experiments/runs.yaml --params params.yaml --out schedules   # the DVC stage

`norms.json` is a JSON list of per-layer average gradient norms, layer 1 first (or an object with a
`layer_norms` list, as `results/gradnorm/<model>.json` has). Bad input exits with status 2 and a one-line message.
In registry mode every run gets `<out>/<run>.json` (its method, schedule and parameter accounting); a HyDRA run
whose allocation is infeasible at this scale gets `"infeasible": <reason>` instead, so the tables can say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hydra_repro.core.allocation import FINE_SETTINGS, RULES, allocate
from hydra_repro.core.readers import dims_from_config, read_dims, read_norms
from hydra_repro.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grad-norms", type=Path, help="JSON list of per-layer gradient norms")
    p.add_argument("--stages", type=int, help="number of stages N_s")
    p.add_argument("--r-standard", type=int, help="rank of standard LoRA (sets the budget)")
    p.add_argument("--delta-d", type=int, help="rank step between stages (Δd)")
    p.add_argument("--registry", type=Path, help="registry mode: experiments/runs.yaml")
    p.add_argument("--params", type=Path, help="registry mode (default: params.yaml)")
    p.add_argument("--profile", help="registry mode: overrides params.yaml's profile")
    p.add_argument("--models-dir", type=Path, help="registry mode: default models/<profile>")
    p.add_argument("--grad-norms-dir", type=Path, help="registry mode: default results/<profile>/gradnorm")
    p.add_argument("--out", type=Path, help="registry mode: default schedules/<profile>")
    p.add_argument(
        "--rule", default="table", choices=sorted(RULES), help="stopping rule of the R1 iteration (default: table)"
    )
    p.add_argument("--setting", default="coarse", choices=list(FINE_SETTINGS), help="fine-grained setting")
    p.add_argument(
        "--model-dims",
        type=Path,
        help="JSON with hidden_size, intermediate_size, num_attention_heads, "
        "num_key_value_heads[, head_dim]; default: MobileLLaMA 1.4B",
    )


def run_registry(args: argparse.Namespace) -> int:
    from hydra_repro.config import dataclass_from_dict, load_params
    from hydra_repro.config.allocation import AllocationParams
    from hydra_repro.core.registry import check_registry, load_registry, resolve
    from hydra_repro.errors import InfeasibleError
    from hydra_repro.io import atomic_write_json

    check_registry(args.registry, args.params, args.profile)
    profile, section = load_params(args.params, args.profile)
    alloc = dataclass_from_dict(AllocationParams, section.get("allocation", {}), f"profiles.{profile}.allocation")
    runs = load_registry(args.registry)
    models_dir = args.models_dir or Path("models") / profile
    norms_dir = args.grad_norms_dir or Path("results") / profile / "gradnorm"
    out = args.out or Path("schedules") / profile
    dims, norms = {}, {}
    for role in sorted({spec.model for spec in runs.values()}):
        dims[role] = dims_from_config(models_dir / role)
        if any(spec.model == role and spec.hydra is not None for spec in runs.values()):
            norms[role] = read_norms(norms_dir / f"{role}.json")
    plans = {}
    for name, spec in runs.items():
        try:
            plans[name] = resolve(name, spec, alloc, dims[spec.model], norms.get(spec.model))
        except InfeasibleError as e:
            plans[name] = {"run": name, "model": spec.model, "method": spec.method, "infeasible": str(e)}
    for name, plan in plans.items():
        atomic_write_json(out / f"{name}.json", plan)
    summary = {n: p.get("infeasible") or f"{p['method']} {p.get('trainable_params', 'full')}" for n, p in plans.items()}
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def validation_target(args: argparse.Namespace) -> tuple[Path, str | None] | None:
    """Registry mode reads a profile and the registry; one list of norms reads neither."""
    if args.registry is None:
        return None
    return args.params or Path("params.yaml"), args.profile


def run(args: argparse.Namespace) -> int:
    if args.registry is not None:
        args.params = args.params or Path("params.yaml")
        return run_registry(args)
    for flag in ("grad_norms", "stages", "r_standard", "delta_d"):
        if getattr(args, flag) is None:
            raise UserError(f"--{flag.replace('_', '-')}: required (or give --registry for registry mode)")
    norms = read_norms(args.grad_norms)
    dims = read_dims(args.model_dims, len(norms))
    result = allocate(
        norms, args.stages, args.r_standard, args.delta_d, rule=args.rule, setting=args.setting, dims=dims
    )
    json.dump(result.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
