"""`hydra-repro check`: the pipeline's first stage; validates the whole profile and the run registry.

    hydra-repro check --params params.yaml --profile mini --registry experiments/runs.yaml \
        --out results/mini/checked.json

Every stage of dvc.yaml depends on its output, and it depends on the whole profile, so after any edit of the profile
or the registry DVC runs this stage first. A bad edit then stops `dvc repro` here, before DVC removes the outputs
of any stage it would re-run (DVC deletes a stage's outputs before its command starts). A valid edit rewrites the
same bytes, so the stages downstream re-run only for the settings they read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra_repro.cli import add_profile_arguments
from hydra_repro.core.registry import check_registry
from hydra_repro.io import atomic_write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p)
    p.add_argument("--registry", type=Path, default=Path("experiments/runs.yaml"))
    p.add_argument("--out", type=Path, help="default: results/<profile>/checked.json")


def run(args: argparse.Namespace) -> int:
    # the CLI has validated the profile (config.validate); the registry is checked at the profile's scale here
    check_registry(args.registry, args.params, args.profile)
    out = args.out or Path("results") / args.profile / "checked.json"
    atomic_write_json(out, {"profile": args.profile, "params": "valid", "registry": "valid"})
    print(f"check: profile {args.profile} and {args.registry} are valid")
    return 0
