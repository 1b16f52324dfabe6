"""HyDRA's iterative enhancement phase (`hydra-repro search`): performance-model-guided search for Z*.

    hydra-repro search --params params.yaml --profile mini --out results/mini/search.json

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
- Cache: each trained schedule lives under `runs/<profile>/search/<key>` with its result in
  `results/<profile>/search/<key>.json`, key = hash of (role, ranks, seed); a finished one is never trained again,
  and a killed search resumes (training itself resumes from its checkpoints).

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
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_repro.allocation import allocate
from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.config.search import SearchConfig
from hydra_repro.constants import COMPONENTS
from hydra_repro.errors import DegenerateDataError, UserError
from hydra_repro.io import atomic_write_json, read_json
from hydra_repro.perfmodel import BENCHMARKS, collect_points
from hydra_repro.provenance import sidecar_path, write_sidecar

FAMILIES = ("coarse", "fine")


def family(setting: str | None) -> str:
    """A HyDRA allocation's row of Table III: coarse-grained, or fine-grained (any of Table VI's settings)."""
    return "coarse" if setting == "coarse" else "fine"


def ranks_key(ranks: list[list[int]]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(layer) for layer in ranks)


def candidates(cfg: SearchConfig, norms: list[float], r_standard: int, dims: Any) -> list[dict[str, Any]]:
    """The solution space: feasible, distinct HyDRA allocations; [{name, ranks, setting, allocation}]."""
    pool: dict[tuple, dict[str, Any]] = {}
    reasons: list[str] = []
    for n_stages in cfg.stages:
        for delta in cfg.delta_d:
            for rule in cfg.rules:
                for setting in cfg.settings:
                    name = f"s{n_stages}_d{delta}_{rule}_{setting}"
                    try:
                        a = allocate(norms, n_stages, r_standard, delta, rule=rule, setting=setting, dims=dims)
                    except UserError as e:  # infeasible at this scale (eq. 7 negative, too many stages, ...)
                        reasons.append(f"{name}: {e}")
                        continue
                    if a.over_budget:
                        reasons.append(f"{name}: {a.trainable_params} > C = {a.budget_params}")
                        continue
                    ranks = [[layer[c] for c in COMPONENTS] for layer in a.ranks]
                    pool.setdefault(
                        ranks_key(ranks),
                        {"name": name, "ranks": ranks, "setting": setting} | {"allocation": a.to_dict()},
                    )
    if not pool:
        shown = "; ".join(reasons[:3])
        raise UserError(f"search: no feasible schedule in the candidate space ({len(reasons)} tried; e.g. {shown})")
    return list(pool.values())


class Objective:
    """Mean z-score over the benchmarks that vary in the reference points."""

    def __init__(self, reference: list[dict]) -> None:
        import numpy as np

        y = np.array([[p["scores"][b] for b in BENCHMARKS] for p in reference], dtype=float)
        self.mean, std = y.mean(axis=0), y.std(axis=0)
        self.used = [b for b, s in zip(BENCHMARKS, std, strict=True) if s > 0]
        if not self.used:
            raise DegenerateDataError("search: every benchmark is constant over the initial runs; nothing to optimise")
        self.std = np.where(std > 0, std, 1.0)

    def of_matrix(self, y: Any) -> Any:
        idx = [BENCHMARKS.index(b) for b in self.used]
        return ((y - self.mean) / self.std)[:, idx].mean(axis=1)

    def __call__(self, scores: dict[str, float]) -> float:
        import numpy as np

        return float(self.of_matrix(np.array([[scores[b] for b in BENCHMARKS]]))[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": "mean over benchmarks of (score - mean) / std, mean and std of the initial runs",
            "benchmarks": self.used,
            "mean": dict(zip(BENCHMARKS, self.mean.tolist(), strict=True)),
            "std": dict(zip(BENCHMARKS, self.std.tolist(), strict=True)),
        }


def schedule_key(role: str, ranks: list[list[int]], seed: int) -> str:
    blob = json.dumps({"role": role, "ranks": ranks, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class Trainer:
    """Trains and evaluates one schedule, cached by key: `train_fn(ranks, run_dir)` and `eval_fn(run_dir, results)`
    are injected (the stage passes the real train_run / evaluate_runs; tests pass fakes)."""

    runs_dir: Path
    results_dir: Path
    train_fn: Any
    eval_fn: Any
    seed: int = 0  # the training seed: part of the cache key
    trained: int = 0

    def scores(self, key: str, ranks: list[list[int]]) -> dict[str, float]:
        result = self.results_dir / f"{key}.json"
        if not result.is_file():
            run_dir = self.runs_dir / key
            if not (run_dir / "run.json").is_file():
                self.train_fn(ranks, run_dir)
                self.trained += 1
            self.eval_fn(run_dir, self.results_dir)
        headline = read_json(result, "search run result")["headline"]
        return {b: float(headline[b]) for b in BENCHMARKS}


def search(
    cfg: SearchConfig, pm_cfg: PerfModelConfig, pool: list[dict], initial: list[dict], trainer: Trainer
) -> dict[str, Any]:
    """Both arms from the same initial points; returns the search record (see the module docstring)."""
    import numpy as np

    from hydra_repro.perfmodel import Standardizer, fit_transformer

    start = time.time()
    if len(initial) < 2:
        raise DegenerateDataError(
            f"search: {len(initial)} initial evaluated runs of role {cfg.role!r}; need at least 2"
        )
    objective = Objective(initial)
    tried = {ranks_key(p["ranks"]) for p in initial}
    untried = [c for c in pool if ranks_key(c["ranks"]) not in tried]
    r_standard = initial[0]["r_standard"]
    overhead = 0.0

    def evaluate(c: dict, arm: str, round_: int | None) -> dict:
        key = schedule_key(cfg.role, c["ranks"], trainer.seed)
        scores = trainer.scores(key, c["ranks"])
        # the training's own wall time, also when it came from the cache
        record = sidecar_path(trainer.runs_dir / key)
        train_s = (read_json(record, "search run's provenance").get("wall_time_s") or 0.0) if record.is_file() else 0.0
        point = {"run": f"search_{key}", "key": key, "role": cfg.role, "arm": arm, "round": round_, "train_s": train_s}
        point |= {"candidate": c["name"], "setting": c["setting"], "ranks": c["ranks"], "r_standard": r_standard}
        return point | {"scores": scores, "objective": objective(scores)}

    rng = np.random.default_rng(cfg.seed)
    picks = rng.choice(len(untried), size=min(cfg.random_runs, len(untried)), replace=False).tolist()
    random_points = [evaluate(untried[i], "random", None) for i in picks]

    guided_points: list[dict] = []
    predictions: list[dict] = []
    for round_ in range(cfg.rounds):
        t0 = time.time()
        data = initial + guided_points
        x = np.array([np.asarray(p["ranks"], dtype=float) / r_standard for p in data])
        scale = Standardizer(np.array([[p["scores"][b] for b in BENCHMARKS] for p in data]))
        predict, _ = fit_transformer(x, scale(np.array([[p["scores"][b] for b in BENCHMARKS] for p in data])), pm_cfg)
        done = {ranks_key(p["ranks"]) for p in data}
        left = [c for c in pool if ranks_key(c["ranks"]) not in done]
        if not left:
            break
        z = predict(np.array([np.asarray(c["ranks"], dtype=float) / r_standard for c in left]))
        predicted = objective.of_matrix(z * scale.std + scale.mean)
        order = np.argsort(-predicted, kind="stable").tolist()
        best = [i for fam in FAMILIES for i in [i for i in order if family(left[i]["setting"]) == fam][: cfg.per_round]]
        overhead += time.time() - t0
        for i in best:
            point = evaluate(left[i], "guided", round_ + 1)
            point["predicted_objective"] = float(predicted[i])
            guided_points.append(point)
            predictions.append({"round": round_ + 1, "predicted": float(predicted[i]), "observed": point["objective"]})

    for p in initial:
        p.setdefault("arm", "initial")
        p["objective"] = objective(p["scores"])

    within = [p["objective"] for p in initial if not p.get("over_budget")]

    def best_so_far(points: list[dict]) -> list[float]:
        base = max(within or [p["objective"] for p in initial])
        out, best = [], base
        for p in points:
            best = max(best, p["objective"])
            out.append(best)
        return out

    def record(top: dict) -> dict:
        keys = ("run", "key", "arm", "candidate", "setting", "objective", "predicted_objective", "scores", "ranks")
        return {k: top.get(k) for k in keys}

    # Z*: the schedule Φ chose (highest prediction when chosen); the best observed is chosen on the test scores
    best = {}
    for fam in FAMILIES:
        chosen = [p for p in guided_points if family(p["setting"]) == fam]
        if chosen:
            best[fam] = record(max(chosen, key=lambda p: p["predicted_objective"]))
    searched = [p for p in initial if p.get("allocation_setting") is not None and not p.get("over_budget")]
    searched += random_points + guided_points
    best_observed = {}
    for fam in FAMILIES:
        seen = [p for p in searched if family(p.get("setting") or p.get("allocation_setting")) == fam]
        if seen:
            best_observed[fam] = record(max(seen, key=lambda p: p["objective"]))
    wall = time.time() - start
    train_s = sum(p["train_s"] for p in random_points + guided_points)
    return {
        "role": cfg.role,
        "config": cfg.__dict__ | {},
        "objective": objective.to_dict(),
        "candidates": len(pool),
        "untried_candidates": len(untried),
        "points": initial + random_points + guided_points,
        "arms": {"random": best_so_far(random_points), "guided": best_so_far(guided_points)},
        "predictions": predictions,
        "best": best,
        "best_observed": best_observed,
        "trained": trainer.trained,
        "timing": {
            "wall_s": round(wall, 1),
            "train_s": round(train_s, 1),
            "overhead_s": round(overhead, 2),
            # Φ's fits and scoring against the cost of the schedules it chose among (cached trainings included)
            "overhead_share": overhead / max(overhead + train_s, 1e-9),
        },
    }


def initial_points(schedules: Path, results: Path, role: str) -> list[dict]:
    """The registry's evaluated schedule runs of `role`, marking HyDRA allocations with their fine setting."""
    points = collect_points(schedules, results, role)
    for p in points:
        plan = read_json(Path(schedules) / f"{p['run']}.json", "schedule plan")
        alloc = plan.get("allocation")
        # the reversed-HyDRA control is data for Φ, not a HyDRA allocation: it never becomes Z*
        hydra = isinstance(alloc, dict) and not alloc.get("reversed")
        p["allocation_setting"] = alloc.get("setting") if hydra else None
        p["over_budget"] = bool(plan.get("over_budget"))  # uniform 2R, Table II's Case, Settings 2/4/5 at mini
        p["arm"] = "initial"
    return points


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--profile", help="overrides params.yaml's `profile`")
    p.add_argument("--out", type=Path, help="default: results/<profile>/search.json")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.allocate_cli import dims_from_config, read_norms
    from hydra_repro.config.allocation import AllocationParams
    from hydra_repro.train import train_config_from_params

    profile, section = load_params(args.params, args.profile)
    where = f"profiles.{profile}"
    cfg = dataclass_from_dict(SearchConfig, section.get("search", {}), f"{where}.search")
    pm_cfg = dataclass_from_dict(PerfModelConfig, section.get("perfmodel", {}), f"{where}.perfmodel")
    alloc = dataclass_from_dict(AllocationParams, section.get("allocation", {}), f"{where}.allocation")
    base = Path("models") / profile / cfg.role
    dims = dims_from_config(base)
    norms = read_norms(Path("results") / profile / "gradnorm" / f"{cfg.role}.json")
    pool = candidates(cfg, norms, alloc.r_standard, dims)
    initial = initial_points(Path("schedules") / profile, Path("results") / profile / "runs", cfg.role)

    def train_fn(ranks: list[list[int]], run_dir: Path) -> None:
        from hydra_repro.schedule import Schedule
        from hydra_repro.train import train_run

        schedule = Schedule(tuple(tuple(layer) for layer in ranks), run_dir.name)
        tcfg = train_config_from_params(args.params, profile, method="schedule", rank=alloc.r_standard)
        data = Path("data") / profile / "train.json"
        images = data.parent / "images"
        train_run(tcfg, base, data, images, run_dir, run_name=run_dir.name, schedule=schedule, profile=profile)

    def eval_fn(run_dir: Path, results_dir: Path) -> None:
        import torch

        from hydra_repro.evaluate import evaluate_runs

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
    trainer = Trainer(Path("runs") / profile / "search", Path("results") / profile / "search", train_fn, eval_fn, seed)
    for folder in (trainer.runs_dir, trainer.results_dir):  # DVC outputs, even when nothing gets trained
        folder.mkdir(parents=True, exist_ok=True)
    out = args.out or Path("results") / profile / "search.json"
    try:
        record = search(cfg, pm_cfg, pool, initial, trainer)
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
