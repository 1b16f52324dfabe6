"""The search space of HyDRA's iterative enhancement: candidate schedules from the allocation rules, and their keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hydra_repro.config.search import SearchConfig
from hydra_repro.constants import COMPONENTS
from hydra_repro.core.allocation import allocate
from hydra_repro.errors import UserError
from hydra_repro.io import read_json
from hydra_repro.search.perfmodel import collect_points

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


def schedule_key(role: str, ranks: list[list[int]], seed: int) -> str:
    blob = json.dumps({"role": role, "ranks": ranks, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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
