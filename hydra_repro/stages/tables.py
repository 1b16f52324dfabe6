"""`hydra-repro tables`: every table and figure of the paper, the paper's value beside ours with the delta.

    hydra-repro tables --profile mini --out tables          # the `tables` stage of `dvc repro`

Reads (and validates before writing anything):
  experiments/paper_values.yaml          the paper's Tables I-VIII, transcribed
  experiments/runs.yaml                  the run registry (`hydra_repro.core.registry`)
  results/<profile>/runs/<run>.json      `hydra-repro evaluate`: six headline scores, or {"status": "infeasible"}
  results/<profile>/gradnorm/<role>.json `hydra-repro gradnorm`: per-layer and per-component norms (Table I, Fig. 3)
  results/<profile>/smol/gradnorm.json   the same for the real-LM probe (SmolLM2-135M; Table I, Fig. 3)
  data/<profile>/eval/mini_sqa_img.parquet  ScienceQA's choice counts (random guessing in calibration.md), optional
  models/<profile>/smollm2/fetch.json    `hydra-repro fetch-smol`: what the probe's LM is (optional)
  schedules/<profile>/<run>.json         `hydra-repro allocate`: ranks and parameter accounting (Tables II, V-VII)
  results/<profile>/perfmodel/<role>.json  the performance model per role (Table VIII; Fig. 6: small), optional:
                                         {"models": {"mlp"|"lightgbm"|"rf"|"transformer": {"mse": x, "mae": y}},
                                          "curves": {name: [loss per epoch, ...]}}
  results/<profile>/search/<role>.json   `hydra-repro search`: Z* per role (Table III), both arms, optional
Writes `table_1.md ... table_8.md`, the same as booktabs `.tex`, `fig_3.png`, `fig_6.png` and `README.md` into
`--out`, each atomically. This is the project's only reporting code: which run fills which row of the paper is
decided here (`TABLE_RUNS`). Benchmark rows come in threes, paper / ours / Δ = ours - paper; the paper's numbers
are printed exactly as transcribed, ours with MME to 1 decimal and the rest to 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra_repro.config import PROFILES
from hydra_repro.report.inputs import COMMAND, load_inputs, read_eval_choices
from hydra_repro.report.outputs import render_all, write_outputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the profiles (validated first)")
    p.add_argument("--profile", help=f"one of {list(PROFILES)} (default: params.yaml's `profile`)")
    p.add_argument("--results", type=Path, help="default results/<profile>")
    p.add_argument("--schedules", type=Path, help="default schedules/<profile>")
    p.add_argument("--registry", type=Path, default=Path("experiments/runs.yaml"))
    p.add_argument("--paper-values", type=Path, default=Path("experiments/paper_values.yaml"))
    p.add_argument("--out", type=Path, default=Path("tables"))
    p.add_argument("--models", type=Path, help="default models/<profile> (the probe LM's fetch.json)")
    p.add_argument("--runs", type=Path, help="default runs/<profile> (ranks.json of EVA and AdaLoRA runs)")
    p.add_argument("--eval-data", type=Path, help="default data/<profile>/eval (choice counts for calibration.md)")
    p.add_argument("--allow-missing", action="store_true", help="render absent result files as — with a note")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.core.registry import check_registry

    check_registry(args.registry, args.params, args.profile)
    inp = load_inputs(
        args.profile,
        args.results or Path("results") / args.profile,
        args.schedules or Path("schedules") / args.profile,
        args.registry,
        args.paper_values,
        args.allow_missing,
        args.models,
        args.runs,
    )
    inp.eval_choices = read_eval_choices(args.eval_data or Path("data") / args.profile / "eval")
    outputs = render_all(inp)
    write_outputs(outputs, args.out)
    print(f"{COMMAND}: wrote {len(outputs)} files to {args.out}/ (profile {args.profile})")
    return 0
