"""HyDRA's performance model Φ (`hydra-repro perfmodel`): rank schedule Z -> the six benchmark scores p(Z).

    hydra-repro perfmodel --params params.yaml --profile mini --role small --search results/mini/search/small.json \
        --out results/mini/perfmodel/small.json

The paper (§IV.A): "one encoder layer of Transformer with 4 multi-head attention heads and the model dimension is
32 ... L2 loss ... Adam"; its input "comprises all information necessary to cover rank configuration". We read that
as one token per LM layer carrying the layer's seven component ranks (divided by R_standard) plus a learned
layer-position embedding, mean-pooled to six outputs, the six benchmark scores standardised per benchmark
(docs/discrepancies.md). Baselines on the same data, flattened: MLP, LightGBM, random forest (Table VIII).

Evaluation as the paper: MSE and MAE on a seeded 8:2 split, in standardised units (its values are below 1, so it
standardised too). Beyond it, because the data set is small (one point per trained schedule): repeated K-fold with
mean and standard deviation. Figure 6: the Transformer's train and validation loss per epoch on the 8:2 split.

The data set: every evaluated run of the profile's role whose adapter is a rank schedule (uniform LoRA, fixed
layouts, HyDRA; not full fine-tuning or AdaLoRA), plus every schedule the role's search trained (all its
repetitions) when `--search` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from hydra_repro.cli import add_profile_arguments
from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.errors import DegenerateDataError
from hydra_repro.io import atomic_write_json, read_json
from hydra_repro.search.perfmodel import MODELS, collect_points, run_perfmodel


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p, "overrides params.yaml's `profile`")
    p.add_argument("--schedules", type=Path, help="default: schedules/<profile>")
    p.add_argument("--results", type=Path, help="default: results/<profile>/runs")
    p.add_argument("--search", type=Path, help="the search's data set (points); optional")
    p.add_argument("--role", choices=["small", "large"], help="the model role (default: perfmodel.role)")
    p.add_argument("--out", type=Path, help="default: results/<profile>/perfmodel/<role>.json")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.provenance import write_sidecar

    profile, section = load_params(args.params, args.profile)
    cfg = dataclass_from_dict(PerfModelConfig, section.get("perfmodel", {}), f"profiles.{profile}.perfmodel")
    if args.role:
        cfg = dataclasses.replace(cfg, role=args.role)
    found = read_json(args.search, "search data set") if args.search else {}
    extra = found.get("study_points", found.get("points", []))  # [] if degenerate
    points = collect_points(
        args.schedules or Path("schedules") / profile,
        args.results or Path("results") / profile / "runs",
        cfg.role,
        [p for p in extra if p.get("role") == cfg.role and p.get("arm") != "initial"],  # initial = registry runs
    )
    path = args.out or Path("results") / profile / "perfmodel" / f"{cfg.role}.json"
    try:
        out = run_perfmodel(cfg, points)
    except DegenerateDataError as e:
        if cfg.on_degenerate == "error":
            raise
        atomic_write_json(path, {"profile": profile, "degenerate": str(e), "points": len(points)})
        print(f"perfmodel: recorded, not fitted: {e}")
        return 0
    out |= {"profile": profile}
    atomic_write_json(path, out)
    write_sidecar(path, seed=cfg.seed, profile=profile)
    summary = {m: {k: round(v, 4) for k, v in out["models"][m].items() if not isinstance(v, list)} for m in MODELS}
    print(json.dumps({"points": out["points"], "fit_time_s": out["fit_time_s"], "models": summary}))
    return 0
