"""`hydra-repro evaluate RUN_DIR [RUN_DIR ...]`: the six benchmarks for one or many runs, in one process.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 hydra-repro evaluate runs/lora_r8 runs/hydra_fine --profile mini

Each run directory (a trained run or a model directory) is evaluated through lmms-eval's `simple_evaluate` on the
profile's six tasks (mini: `mini_*` from `data/<profile>/tasks`; paper: lmms-eval's own tasks) and written to
`results/runs/<run>.json` atomically: the six headline numbers in the paper's units, every lmms-eval metric,
per-sample records (for paired bootstrap tests) and provenance. lmms-eval is imported once for all runs.

Headline protocol (the paper follows MobileVLM's, see docs):
  MME      perception score (sum over the 10 perception categories of acc + acc+, max 2000), as MobileVLM and
           the paper report it; for mini tasks the sum over all our categories (perception + cognition).
  POPE     F1 in %, averaged over the three categories (adversarial / popular / random), as MobileVLM reports;
           lmms-eval's pooled accuracy and F1 are kept under `metrics`.
  MMBench  `mmbench_en_dev_static`: CircularEval accuracy in %, regex answer extraction (no GPT judge).
  GQA, TextVQA (VQA accuracy, no OCR tokens: lmms-eval's default), ScienceQA-IMG: accuracy in %.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hydra_repro.eval.harness import EvaluationError, evaluate_runs


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run or model directories (runs/<profile>/<run>) -> <results-dir>/<run>.json"
    )
    parser.add_argument(
        "--profile", help="default: params.yaml's `profile`; mini/smoke/smol evaluate the mini tasks, paper lmms-eval's"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="prepared data (default data/<profile>)")
    parser.add_argument(
        "--results-dir", type=Path, help="where <run>.json is written (default: results/<profile>/runs)"
    )
    parser.add_argument("--tasks", default=None, help="comma-separated task names or benchmark keys (default: six)")
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="its profile's `evaluate` section sets the defaults"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: evaluate.batch_size, else 16")
    parser.add_argument(
        "--device", default="auto", help="auto: cuda when present (then bf16 per train.precision), else cpu"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap on every task's max_new_tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 1 for the mini tasks, torch's for paper)"
    )


def run(args: argparse.Namespace) -> int:
    from hydra_repro.config import load_params

    # the profile was validated by the CLI (config.validate checks the section's keys and values)
    args.profile, profile_section = load_params(args.params, args.profile)
    section = profile_section["evaluate"]
    if args.profile != "paper":  # nothing outside `paper` may reach the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    for key in ("batch_size", "threads", "max_new_tokens"):
        if getattr(args, key) is None:
            setattr(args, key, section.get(key))
    results_dir = args.results_dir or Path("results") / args.profile / "runs"
    from hydra_repro.training.device import runtime

    rt = runtime((profile_section.get("train") or {}).get("precision", "auto"))  # one key for every stage
    device = rt.device if args.device == "auto" else args.device
    dtype = "bfloat16" if rt.bf16 and device.split(":")[0] == rt.device else "float32"
    args.batch_size = args.batch_size or 16
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    threads = args.threads if args.threads is not None else (None if args.profile == "paper" else 1)
    import torch

    saved_threads = torch.get_num_threads()
    if threads is not None:
        # The mini models are too small to gain from a second thread, and on a shared 2-core machine an idle
        # thread's spin-wait made generation ~10x slower (measured: 99 vs 9 questions/s).
        torch.set_num_threads(threads)
    try:
        paths = evaluate_runs(
            args.runs,
            profile=args.profile,
            data_dir=args.data_dir,
            results_dir=results_dir,
            tasks=tasks,
            batch_size=args.batch_size,
            device=device,
            dtype=dtype,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
        )
    except EvaluationError as e:
        import traceback

        traceback.print_exception(e.__cause__ or e, file=sys.stderr)
        print(f"hydra-repro evaluate: error: {e}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(saved_threads)
    for path in paths:
        print(path)
    return 0
