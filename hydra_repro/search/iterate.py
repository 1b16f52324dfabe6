"""HyDRA's iterative enhancement: the performance model proposes a schedule, it is trained and evaluated, the
model is refit, until the budget of trained points is spent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.config.search import SearchConfig
from hydra_repro.constants import BENCHMARKS
from hydra_repro.errors import DegenerateDataError, UserError
from hydra_repro.io import read_json
from hydra_repro.provenance import sidecar_path
from hydra_repro.search.candidates import FAMILIES, family, ranks_key, schedule_key


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
    cfg: SearchConfig,
    pm_cfg: PerfModelConfig,
    pool: list[dict],
    initial: list[dict],
    trainer: Trainer,
    repeats: int = 1,
) -> dict[str, Any]:
    """Both arms from the same initial points, `repeats` times (search seeds cfg.seed, cfg.seed + 1, ...: the
    random arm's draw and Φ's initialisation); returns the search record (see the module docstring). Z* comes from
    the first repetition; a schedule two repetitions choose is trained once (the cache key has no search seed)."""
    import dataclasses

    if repeats < 1:
        raise UserError(f"search repeats: got {repeats!r}; expected an integer >= 1")
    start = time.time()
    if len(initial) < 2:
        raise DegenerateDataError(
            f"search: {len(initial)} initial evaluated runs of role {cfg.role!r}; need at least 2"
        )
    objective = Objective(initial)
    for p in initial:
        p.setdefault("arm", "initial")
        p["objective"] = objective(p["scores"])
    runs: list[dict] = []
    overhead = 0.0
    for k in range(repeats):
        seeded = dataclasses.replace(pm_cfg, seed=pm_cfg.seed + k)
        random_points, guided_points, predictions, spent = _one_search(
            cfg, seeded, pool, initial, trainer, objective, cfg.seed + k
        )
        overhead += spent
        runs.append(
            {
                "seed": cfg.seed + k,
                "arms": {
                    "random": _best_so_far(initial, random_points),
                    "guided": _best_so_far(initial, guided_points),
                },
                # each arm's best among its own schedules, not floored at the initial runs: what the arms found
                "own": {"random": _running_max(random_points), "guided": _running_max(guided_points)},
                "random": random_points,
                "guided": guided_points,
                "predictions": predictions,
            }
        )
    first = runs[0]
    best, best_observed = _best_points(initial, first["random"], first["guided"])
    searched = {p["key"]: p for r in runs for p in r["random"] + r["guided"]}  # each trained schedule once
    train_s = sum(p["train_s"] for p in searched.values())
    return {
        "role": cfg.role,
        "config": cfg.__dict__ | {},
        "objective": objective.to_dict(),
        "candidates": len(pool),
        "untried_candidates": len(_untried(pool, initial)),
        "points": initial + first["random"] + first["guided"],
        "arms": first["arms"],
        "predictions": first["predictions"],
        "repeats": [
            {"seed": r["seed"], "arms": r["arms"], "own": r["own"]}
            | {"keys": {arm: [p["key"] for p in r[arm]] for arm in ("random", "guided")}}
            for r in runs
        ],
        "initial_best": _initial_best(initial),
        "study_points": list(searched.values()),
        "best": best,
        "best_observed": best_observed,
        "trained": trainer.trained,
        "timing": {
            "wall_s": round(time.time() - start, 1),
            "train_s": round(train_s, 1),
            "overhead_s": round(overhead, 2),
            # Φ's fits and scoring against the cost of the schedules it chose among (cached trainings included)
            "overhead_share": overhead / max(overhead + train_s, 1e-9),
        },
    }


def _untried(pool: list[dict], initial: list[dict]) -> list[dict]:
    tried = {ranks_key(p["ranks"]) for p in initial}
    return [c for c in pool if ranks_key(c["ranks"]) not in tried]


def _one_search(
    cfg: SearchConfig,
    pm_cfg: PerfModelConfig,
    pool: list[dict],
    initial: list[dict],
    trainer: Trainer,
    objective: Objective,
    seed: int,
) -> tuple[list[dict], list[dict], list[dict], float]:
    """One repetition of both arms: (random points, guided points, Φ's predictions, Φ's fit + scoring time)."""
    import numpy as np

    from hydra_repro.search.perfmodel import Standardizer, fit_transformer

    untried = _untried(pool, initial)
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
        return point | {"scores": scores, "objective": objective(scores), "search_seed": seed}

    rng = np.random.default_rng(seed)
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
    return random_points, guided_points, predictions, overhead


def _running_max(points: list[dict]) -> list[float]:
    out: list[float] = []
    for p in points:
        out.append(max(out[-1], p["objective"]) if out else p["objective"])
    return out


def _initial_best(initial: list[dict]) -> float:
    """The best initial objective within the budget (all of them if none is within it)."""
    within = [p["objective"] for p in initial if not p.get("over_budget")]
    return max(within or [p["objective"] for p in initial])


def _best_so_far(initial: list[dict], points: list[dict]) -> list[float]:
    """The best objective after each point of an arm, starting from the best initial point within the budget."""
    out, best = [], _initial_best(initial)
    for p in points:
        best = max(best, p["objective"])
        out.append(best)
    return out


def _best_points(initial: list[dict], random_points: list[dict], guided_points: list[dict]) -> tuple[dict, dict]:
    """Per family: Z*, the schedule Φ chose (highest prediction when chosen), and the best observed schedule, which
    is chosen on the test scores."""

    def record(top: dict) -> dict:
        keys = ("run", "key", "arm", "candidate", "setting", "objective", "predicted_objective", "scores", "ranks")
        return {k: top.get(k) for k in keys}

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
    return best, best_observed
