"""Guided vs random search over search seeds: "does the performance model find better schedules than random search
at the same number of trainings?" (beyond the paper). One place for the study's numbers: the search table, its
figure and the claims row read them from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra_repro.core.stats import mdd, seed_interval
from hydra_repro.report.cells import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

MIN_PER_ARM = 8  # schedules per arm before the comparison is a study, not an anecdote
MIN_SEEDS = 3  # search seeds (a spread over repetitions needs at least 3)


def full_study_command(profile: str, role: str = "small") -> str:
    """The command that runs the full study (8 schedules per arm x 3 search seeds; docs/mini-run.md times it)."""
    return f"`python experiments/search_study.py --profile {profile} --role {role}`"


@dataclass(frozen=True)
class Study:
    role: str
    seeds: list[int]
    per_arm: int  # schedules per arm compared (the smaller arm's count, equal budgets)
    curves: dict[str, list[list[float]]]  # arm -> per search seed, best-so-far after each schedule
    diffs: list[float]  # per search seed: guided - random best-so-far after `per_arm` schedules
    mean: float
    half: float  # 95% t half-width over search seeds (nan with one seed)
    mdd: float  # minimum detectable difference at 80% power (nan with one seed or no spread)
    initial_best: float | None = None  # the best registry run within the budget, where both arms start
    own: bool = False  # curves are each arm's own best (True) or floored at the initial best (older records)

    @property
    def sized(self) -> bool:
        return self.per_arm >= MIN_PER_ARM and len(self.seeds) >= MIN_SEEDS

    def verdict(self) -> str:
        """Reproduced when the guided arm's best is above random's at equal budgets (95% t-interval over search
        seeds above 0), not reproduced when below; otherwise, or when the study is smaller than 8 schedules per arm
        x 3 search seeds, inconclusive."""
        if not self.sized:
            return f"{INCONCLUSIVE} (study too small: {self.per_arm} per arm x {len(self.seeds)} search seeds)"
        if not self.half > 0:  # every search seed gave the same difference: no interval to judge by
            return f"{INCONCLUSIVE} (no spread over search seeds)"
        if self.mean - self.half > 0:
            return REPRODUCED
        if self.mean + self.half < 0:
            return NOT_REPRODUCED
        return INCONCLUSIVE

    def evidence(self) -> str:
        what = "best objective of each arm's own schedules" if self.own else "best-so-far objective"
        where = f"{self.role} model, {self.per_arm} schedules per arm, {len(self.seeds)} search seed(s)"
        text = f"{where}: guided - random {what} {self.mean:+.3f}"
        if len(self.seeds) < 2:
            text += " (one search seed, no interval)"
        elif not self.half > 0:
            text += " in every search seed (no spread, no interval)"
        else:
            text += f" [95% CI {self.mean - self.half:+.3f}, {self.mean + self.half:+.3f}], MDD {self.mdd:.3f} (mean z)"
        if self.own and self.initial_best is not None and self.per_arm:
            beat = {
                arm: sum(c[self.per_arm - 1] > self.initial_best for c in curves) for arm, curves in self.curves.items()
            }
            text += (
                f"; the best registry run within the budget scores {self.initial_best:+.3f}, beaten in "
                f"{beat['guided']} / {beat['random']} of {len(self.seeds)} search seeds (guided / random)"
            )
        return text


def study(search: dict[str, Any]) -> Study:
    """The study of one role's search record (one repetition for records without `repeats`)."""
    import numpy as np

    repeats = search.get("repeats") or [{"seed": search.get("config", {}).get("seed", 0), "arms": search["arms"]}]
    own = all("own" in r for r in repeats)
    curves = {arm: [list(r["own" if own else "arms"].get(arm) or []) for r in repeats] for arm in ("guided", "random")}
    n = min((len(c) for arm in curves.values() for c in arm), default=0)
    diffs = [g[n - 1] - r[n - 1] for g, r in zip(curves["guided"], curves["random"], strict=True)] if n else []
    mean, half = seed_interval(diffs) if diffs else (float("nan"), float("nan"))
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
    found_mdd = mdd(sd / np.sqrt(len(diffs)), len(diffs) - 1) if sd > 0 else float("nan")
    seeds = [int(r["seed"]) for r in repeats]
    role, start = str(search.get("role")), search.get("initial_best")
    return Study(role, seeds, n, curves, diffs, mean, half, found_mdd, start, own)
