"""`hydra-repro replicate`: the extra training seeds of one registry run, each trained and evaluated.

    hydra-repro replicate --params params.yaml --profile mini --run lora_small --model small

The run itself (`train@<run>`, seed `train.seed` = 42) is the first seed; `profiles.<profile>.seeds: n` asks for
n - 1 more with seeds 43, 44, ... Each replicate is exactly the run's command with `--seed` changed: the same plan
(a HyDRA allocation comes from the seed-42 gradient norms and stays fixed: only training noise varies), the same
base model and data, then the same evaluation. Outputs: `runs/<profile>/replicates/<run>/<run>_s<seed>/` and
`results/<profile>/replicates/<run>/<run>_s<seed>.json` plus `seeds.json` naming them. With `seeds: 1` (smoke)
nothing is trained and `seeds.json` says so. Infeasible runs replicate nothing either.

`--jobs` trains and evaluates that many seeds at once, each in its own process with its output in
`runs/<profile>/replicates/<run>/<run>_s<seed>.log`. The default (`auto`) fills the CPU cores when the profile pins
`train.num_threads` (mini: 1 thread per run, 2 cores: both seeds at once). A run's weights depend on its seed and
thread count only, not on what runs beside it, so the outputs are byte-identical to one-at-a-time runs (checked
on the mini run, see the git log); only the wall time changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from hydra_repro.cli import add_profile_arguments
from hydra_repro.config.validate import profile_seeds
from hydra_repro.core.registry import SEEDS_FILE, replicate_seeds
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_write_json, read_json


def _verb_args(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def replicate(args: argparse.Namespace) -> dict[str, Any]:
    from hydra_repro.config import load_params
    from hydra_repro.config.train import train_config_from_params  # not train.py: one seed trains nothing

    profile, section = load_params(args.params, args.profile)
    n = profile_seeds(section, f"{args.params}: profiles.{profile}")
    train_cfg = train_config_from_params(args.params, profile)
    base_seed, max_workers = train_cfg.seed, resolve_jobs(args.jobs, train_cfg.num_threads)
    plan = read_json(args.plan, "run plan (hydra-repro allocate --registry)")
    seeds = replicate_seeds(base_seed, n)
    summary: dict[str, Any] = {"run": args.run, "seeds": [base_seed, *seeds], "replicates": {}}
    if "infeasible" in plan:
        summary.update(seeds=[], reason=plan["infeasible"])
        seeds = []
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, list[str], list[str]]] = []
    for seed in seeds:
        name = f"{args.run}_s{seed}"
        run_dir = args.out / name
        train_argv = ["--params", str(args.params), "--profile", profile, "--run", args.run, "--plan", str(args.plan)]
        train_argv += ["--base", str(args.base), "--data", str(args.data), "--out", str(run_dir), "--seed", str(seed)]
        eval_argv = [str(run_dir), "--profile", profile, "--data-dir", str(args.data_dir)]
        eval_argv += ["--results-dir", str(args.results), "--params", str(args.params)]
        jobs.append((name, train_argv, eval_argv))
        summary["replicates"][str(seed)] = f"{name}.json"
    workers = min(len(jobs), max_workers)
    if workers <= 1:
        for job in jobs:
            train_and_evaluate(*job)
    else:
        run_parallel(jobs, workers, args.out)
    atomic_write_json(args.results / SEEDS_FILE, summary)
    return summary


def resolve_jobs(jobs: str, num_threads: int | None) -> int:
    """`--jobs`: an integer >= 1, or `auto` = the usable cores // threads per run when the profile pins threads
    (CPU profiles), else 1 (a GPU profile trains one seed at a time)."""
    if jobs == "auto":
        if num_threads is None:
            return 1
        return max(1, len(os.sched_getaffinity(0)) // num_threads)
    if not jobs.isdigit() or int(jobs) < 1:
        raise UserError(f"--jobs: got {jobs!r}; expected 'auto' or an integer >= 1 (seeds trained at once)")
    return int(jobs)


def train_and_evaluate(name: str, train_argv: list[str], eval_argv: list[str], log: str | None = None) -> None:
    """Train one seed and evaluate it; in a worker process `log` takes its stdout and stderr."""
    if log is not None:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out, 1)
        os.dup2(out, 2)
    from hydra_repro.stages import evaluate, train

    try:
        train.run(_verb_args(train, train_argv))
        if evaluate.run(_verb_args(evaluate, eval_argv)) != 0:
            raise UserError(f"replicate {name}: evaluation failed (see the traceback above)")
    except BaseException:
        if log is not None:  # the log is the whole record of a worker: end it with the error
            traceback.print_exc()
            sys.stderr.flush()
        raise


def run_parallel(
    jobs: list[tuple[str, list[str], list[str]]],
    workers: int,
    log_dir: Path,
    target: Callable[..., None] = train_and_evaluate,
) -> None:
    """Each job in a fresh (spawned) process, `workers` at a time. The first failure stops the others at once
    (a seed that cannot finish makes the stage fail anyway) and names the seed with the tail of its log."""
    logs = {name: log_dir / f"{name}.log" for name, _, _ in jobs}
    print(f"replicate: {len(jobs)} seeds, {workers} at a time; logs: {', '.join(map(str, logs.values()))}")
    ctx, pending, running = get_context("spawn"), list(jobs), {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                name, train_argv, eval_argv = pending.pop(0)
                proc = ctx.Process(target=_worker, args=(target, name, train_argv, eval_argv, str(logs[name])))
                proc.start()
                running[name] = proc
            wait([proc.sentinel for proc in running.values()])
            for name, proc in list(running.items()):
                if proc.exitcode is None:
                    continue
                del running[name]
                if proc.exitcode != 0:
                    tail = logs[name].read_text(errors="replace") if logs[name].exists() else ""
                    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
                    raise UserError(
                        f"replicate {name} failed (exit status {proc.exitcode}): {last}\n"
                        f"--- last lines of {logs[name]} ---\n{tail[-3000:]}"
                    )
                print(f"replicate: {name} done (log {logs[name]})")
    finally:
        for proc in running.values():
            proc.terminate()
        for proc in running.values():
            proc.join()


def _worker(target: Callable[..., None], *args: Any) -> None:
    """A worker process's entry: the job, and exit status 1 on any error (its log already holds the traceback)."""
    try:
        target(*args)
    except BaseException:
        sys.exit(1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p, "overrides params.yaml's `profile`")
    p.add_argument("--run", required=True, help="a run of experiments/runs.yaml")
    p.add_argument("--plan", type=Path, required=True, help="its plan: schedules/<profile>/<run>.json")
    p.add_argument("--base", type=Path, required=True, help="its base model: models/<profile>/<role>")
    p.add_argument("--data", type=Path, required=True, help="data/<profile>/train.json")
    p.add_argument("--data-dir", type=Path, required=True, help="data/<profile> (evaluation sets and tasks)")
    p.add_argument("--out", type=Path, required=True, help="runs/<profile>/replicates/<run>")
    p.add_argument("--results", type=Path, required=True, help="results/<profile>/replicates/<run>")
    p.add_argument("--jobs", default="auto", help="seeds trained at once, each in its own process (default: auto)")


def run(args: argparse.Namespace) -> int:
    summary = replicate(args)
    print(json.dumps({k: summary[k] for k in ("run", "seeds")}))
    return 0
