"""`hydra-repro replicate`: the extra training seeds of one registry run, each trained and evaluated.

    hydra-repro replicate --params params.yaml --profile mini --run lora_small --model small

The run itself (`train@<run>`, seed `train.seed` = 42) is the first seed; `profiles.<profile>.seeds: n` asks for
n - 1 more with seeds 43, 44, ... Each replicate is exactly the run's command with `--seed` changed: the same plan
(a HyDRA allocation comes from the seed-42 gradient norms and stays fixed: only training noise varies), the same
base model and data, then the same evaluation. Outputs: `runs/<profile>/replicates/<run>/<run>_s<seed>/` and
`results/<profile>/replicates/<run>/<run>_s<seed>.json` plus `seeds.json` naming them. With `seeds: 1` (smoke)
nothing is trained and `seeds.json` says so. Infeasible runs replicate nothing either.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hydra_repro.errors import UserError
from hydra_repro.io import atomic_write_json, read_json

SEEDS_FILE = "seeds.json"


def profile_seeds(section: dict[str, Any], where: str) -> int:
    """`profiles.<profile>.seeds`: how many training seeds each replicated run gets (default 1)."""
    n = section.get("seeds", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"{where}.seeds: got {n!r}; expected an integer >= 1 (training seeds per replicated run)")
    return n


def replicate_seeds(base_seed: int, n: int) -> list[int]:
    """The seeds of the replicates: the run's own seed is the first of n."""
    return [base_seed + k for k in range(1, n)]


def _verb_args(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def replicate(args: argparse.Namespace) -> dict[str, Any]:
    from hydra_repro import evaluate, train
    from hydra_repro.config import load_params

    profile, section = load_params(args.params, args.profile)
    n = profile_seeds(section, f"{args.params}: profiles.{profile}")
    base_seed = train.train_config_from_params(args.params, profile).seed
    plan = read_json(args.plan, "run plan (hydra-repro allocate --registry)")
    seeds = replicate_seeds(base_seed, n)
    summary: dict[str, Any] = {"run": args.run, "seeds": [base_seed, *seeds], "replicates": {}}
    if "infeasible" in plan:
        summary.update(seeds=[], reason=plan["infeasible"])
        seeds = []
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        name = f"{args.run}_s{seed}"
        run_dir = args.out / name
        train_argv = ["--params", str(args.params), "--profile", profile, "--run", args.run, "--plan", str(args.plan)]
        train_argv += ["--base", str(args.base), "--data", str(args.data), "--out", str(run_dir), "--seed", str(seed)]
        train.run(_verb_args(train, train_argv))
        eval_argv = [str(run_dir), "--profile", profile, "--data-dir", str(args.data_dir)]
        eval_argv += ["--results-dir", str(args.results), "--params", str(args.params)]
        if evaluate.run(_verb_args(evaluate, eval_argv)) != 0:
            raise UserError(f"replicate {name}: evaluation failed (see the traceback above)")
        summary["replicates"][str(seed)] = f"{name}.json"
    atomic_write_json(args.results / SEEDS_FILE, summary)
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--profile", help="overrides params.yaml's `profile`")
    p.add_argument("--run", required=True, help="a run of experiments/runs.yaml")
    p.add_argument("--plan", type=Path, required=True, help="its plan: schedules/<profile>/<run>.json")
    p.add_argument("--base", type=Path, required=True, help="its base model: models/<profile>/<role>")
    p.add_argument("--data", type=Path, required=True, help="data/<profile>/train.json")
    p.add_argument("--data-dir", type=Path, required=True, help="data/<profile> (evaluation sets and tasks)")
    p.add_argument("--out", type=Path, required=True, help="runs/<profile>/replicates/<run>")
    p.add_argument("--results", type=Path, required=True, help="results/<profile>/replicates/<run>")


def run(args: argparse.Namespace) -> int:
    summary = replicate(args)
    print(json.dumps({k: summary[k] for k in ("run", "seeds")}))
    return 0
