"""HyDRA's iterative enhancement phase (`hydra-repro search`): performance-model-guided search for Z*.

    hydra-repro search --params params.yaml --profile mini --role small --out results/mini/search/small.json

The paper (§III.B, Fig. 5): the gradient norms define a solution space; schedules Z from it are trained and
evaluated, the (Z, p(Z)) pairs refine the performance model Φ, Φ predicts a better Z, until g(G; Z) <= C and the
maximum number of iterations hold. It gives no candidate space, no acquisition rule and no iteration count; ours
(all parameters in `profiles.<profile>.search`, docs/discrepancies.md):

- Candidates: every HyDRA allocation `allocate(norms, N_s, R_standard, Δd, rule, setting)` over the configured
  stage counts, Δd, R1 rules and fine settings, deduplicated by ranks, keeping those with g(G; Z) <= C.
- Initial data: the profile's evaluated registry runs of the role that are rank schedules (uniform LoRA, the
  fixed layouts, the registry's HyDRA runs), so the search starts from what the tables already trained.
- Guided arm: `rounds` times, fit Φ (the Transformer of perfmodel.py) on the data so far, score every untried
  candidate, train and evaluate the `per_round` best predicted of each family (coarse; fine settings), so that both
  HyDRA rows of Table III get a schedule Φ chose.
- Random arm (beyond the paper): `random_runs` untried candidates drawn at random, trained and evaluated, from the
  same initial data, so "best objective found vs runs spent" compares the two at equal cost.
- Objective: the mean over benchmarks of z-scores, standardised with the initial data's mean and std per
  benchmark (benchmarks constant over the initial data are left out).
- Cache: each trained schedule lives under `runs/<profile>/search/<role>/<key>` with its result in
  `results/<profile>/search/<role>/<key>.json`, key = hash of (role, ranks, training seed); a finished one is never
  trained again, and a killed search resumes (training itself resumes from its checkpoints).
- Repetitions (beyond the paper): `--repeats n` runs both arms n times with search seeds `seed`, `seed + 1`, ...
  (the random draw and Φ's initialisation), so that "does Φ find better schedules than random search at the same
  number of trainings?" has a spread over search seeds; Z* and Table III come from the first repetition.

- Z* (the paper: "utilize the performance model to find the optimal Z*", then train it): per family, the guided
  schedule Φ predicted best when it chose it; its observed scores are reported as they came out. The best
  *observed* schedule is also recorded (`best_observed`), but it is chosen on the test benchmarks themselves, so
  its scores are optimistic and it never fills Table III.
- Best-so-far curves start from the best initial run within the budget C (uniform LoRA at 2R and Table II's Case
  spend more and are not a baseline a schedule under C has to beat).

Output: the (Z, p(Z)) data set with each point's arm, the best-so-far curves of both arms, Z* per family (the
HyDRA rows of Table III for this role), the best observed per family, and the search's own overhead (fit +
scoring time as a share of itself plus the searched schedules' training time, cached trainings included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from hydra_repro.cli import add_profile_arguments
from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.config.search import SearchConfig
from hydra_repro.errors import DegenerateDataError
from hydra_repro.io import atomic_write_json
from hydra_repro.provenance import write_sidecar
from hydra_repro.search.candidates import candidates, initial_points
from hydra_repro.search.iterate import Trainer, search


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p, "overrides params.yaml's `profile`")
    p.add_argument("--role", choices=["small", "large"], help="the model role searched (default: search.role)")
    p.add_argument("--repeats", type=int, default=1, help="repetitions of both arms over search seeds (default 1)")
    p.add_argument("--out", type=Path, help="default: results/<profile>/search/<role>.json")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.config.allocation import AllocationParams
    from hydra_repro.config.train import train_config_from_params
    from hydra_repro.core.readers import dims_from_config, read_norms

    profile, section = load_params(args.params, args.profile)
    where = f"profiles.{profile}"
    cfg = dataclass_from_dict(SearchConfig, section.get("search", {}), f"{where}.search")
    if args.role:
        cfg = dataclasses.replace(cfg, role=args.role)
    pm_cfg = dataclass_from_dict(PerfModelConfig, section.get("perfmodel", {}), f"{where}.perfmodel")
    alloc = dataclass_from_dict(AllocationParams, section.get("allocation", {}), f"{where}.allocation")
    base = Path("models") / profile / cfg.role
    dims = dims_from_config(base)
    norms = read_norms(Path("results") / profile / "gradnorm" / f"{cfg.role}.json")
    pool = candidates(cfg, norms, alloc.r_standard, dims)
    initial = initial_points(Path("schedules") / profile, Path("results") / profile / "runs", cfg.role)

    def train_fn(ranks: list[list[int]], run_dir: Path) -> None:
        from hydra_repro.core.schedule import Schedule
        from hydra_repro.training.instruct import train_run

        schedule = Schedule(tuple(tuple(layer) for layer in ranks), run_dir.name)
        tcfg = train_config_from_params(args.params, profile, method="schedule", rank=alloc.r_standard)
        data = Path("data") / profile / "train.json"
        images = data.parent / "images"
        train_run(tcfg, base, data, images, run_dir, run_name=run_dir.name, schedule=schedule, profile=profile)

    def eval_fn(run_dir: Path, results_dir: Path) -> None:
        import torch

        from hydra_repro.eval.harness import evaluate_runs

        ev = section.get("evaluate") or {}
        torch.set_num_threads(ev.get("threads") or 1)
        batch = ev.get("batch_size", 16)
        evaluate_runs(
            [run_dir],
            profile=profile,
            results_dir=results_dir,
            batch_size=batch,
            max_new_tokens=ev.get("max_new_tokens"),
        )

    seed = train_config_from_params(args.params, profile).seed
    runs, results = Path("runs") / profile / "search" / cfg.role, Path("results") / profile / "search" / cfg.role
    trainer = Trainer(runs, results, train_fn, eval_fn, seed)
    for folder in (trainer.runs_dir, trainer.results_dir):  # DVC outputs, even when nothing gets trained
        folder.mkdir(parents=True, exist_ok=True)
    out = args.out or Path("results") / profile / "search" / f"{cfg.role}.json"
    try:
        record = search(cfg, pm_cfg, pool, initial, trainer, args.repeats)
    except DegenerateDataError as e:
        if cfg.on_degenerate == "error":
            raise
        atomic_write_json(out, {"profile": profile, "role": cfg.role, "degenerate": str(e)})
        print(f"search: recorded, not run: {e}")
        return 0
    record |= {"profile": profile}
    atomic_write_json(out, record)
    write_sidecar(out, profile=profile)
    best = {k: (v["candidate"] or v["run"], round(v["objective"], 3)) for k, v in record["best"].items()}
    print(json.dumps({"best": best, "trained": record["trained"], "timing": record["timing"]}))
    return 0
