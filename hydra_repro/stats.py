"""How sure a difference is: headline scores recomputed from per-sample records, and a paired bootstrap over them.

    diff = paired_bootstrap("mme", records_a, records_b)   # {diff, low, high, p, n_units, seeds}
    mean, half = seed_interval([61.2, 63.0, 62.1])         # over training seeds: mean ± 95% t-interval

`evaluate` stores per-sample records with a resampling `unit` (MME: the image, whose two questions are scored
together; MMBench: the question with all its circular rotations; otherwise the question). The bootstrap resamples
units with replacement, the same units for both runs (they answered the same questions), recomputes each run's
headline number exactly as the tables show it, and reports the difference A - B with a percentile 95% interval and
a two-sided bootstrap p-value. With several training seeds per run the bootstrap has two levels: each resample
draws every run's seeds with replacement (independently for the two runs) and the test units with replacement
(the same units for both), and compares the means over the drawn seeds; so the interval covers training noise and
test-set sampling together. `seed_interval` gives the spread over seeds alone. numpy (+ scipy's t quantile); the
tables stage is its only user.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

N_BOOT = 2000


def _pope_f1(pairs: Sequence[tuple[str, str]]) -> float:
    """lmms-eval's POPE F1 over (prediction, ground truth): the prediction lower-cased and stripped must equal
    "yes" / "no"; any other answer is neither a positive nor a false negative (as in its aggregation)."""
    tp = sum(p == "yes" and g == "yes" for p, g in pairs)
    fp = sum(p == "yes" and g == "no" for p, g in pairs)
    fn = sum(p == "no" and g == "yes" for p, g in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


class Scorer:
    """One run's records of one benchmark, arranged by unit so a resample of units scores in O(records)."""

    def __init__(self, bench: str, records: Sequence[dict[str, Any]]) -> None:
        self.bench = bench
        by_unit: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            by_unit[_key(r["unit"])].append(r)
        self.units = sorted(by_unit)
        self.by_unit = by_unit

    def score(self, units: Sequence[Any]) -> float:
        """The headline number over the multiset `units` (keys of self.by_unit)."""
        recs = [self.by_unit[u] for u in units]
        if self.bench == "mme":  # per category: acc + acc+ (both questions of an image right), in %
            acc: dict[str, list[float]] = defaultdict(list)
            plus: dict[str, list[float]] = defaultdict(list)
            for group in recs:  # an image may carry a question pair in several categories
                pairs: dict[str, list[float]] = defaultdict(list)
                for r in group:
                    pairs[str(r.get("category"))].append(float(r["score"]))
                for cat, scores in pairs.items():
                    acc[cat] += scores
                    plus[cat].append(float(all(s > 0 for s in scores)))
            return float(sum(100 * np.mean(acc[c]) + 100 * np.mean(plus[c]) for c in acc))
        if self.bench == "mmbench":  # CircularEval: one hit per question group
            return 100.0 * float(np.mean([float(g[0]["score"]) for g in recs]))
        if self.bench == "pope":  # F1 of "yes" per category, averaged
            by_cat: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for group in recs:
                for r in group:
                    pair = (str(r["prediction"]).lower().strip(), str(r["target"]).lower().strip())
                    by_cat[str(r.get("category") or "all")].append(pair)
            return 100.0 * float(np.mean([_pope_f1(pairs) for pairs in by_cat.values()]))
        return 100.0 * float(np.mean([float(r["score"]) for group in recs for r in group]))


def _key(unit: Any) -> Any:
    return tuple(unit) if isinstance(unit, list) else unit


def headline_from_records(bench: str, records: Sequence[dict[str, Any]]) -> float:
    scorer = Scorer(bench, records)
    return scorer.score(scorer.units)


def paired_bootstrap(
    bench: str,
    records_a: Sequence[dict[str, Any]],
    records_b: Sequence[dict[str, Any]],
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, float]:
    """Difference A - B of the headline number with a percentile 95% interval and a two-sided p-value."""
    return paired_bootstrap_seeds(bench, [records_a], [records_b], n_boot, seed)


def paired_bootstrap_seeds(
    bench: str,
    seeds_a: Sequence[Sequence[dict[str, Any]]],
    seeds_b: Sequence[Sequence[dict[str, Any]]],
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, float]:
    """As `paired_bootstrap` for runs trained with several seeds (one record list per seed), a two-level bootstrap:
    each resample draws the seeds of A and of B with replacement (independently) and the units with replacement (the
    same units for both), and compares the means over the drawn seeds. With one seed per side it is the plain paired
    bootstrap over units. With few seeds the seed level understates the spread (a resample of n values has (n-1)/n
    of their variance): the tables also show the Student-t interval of `seed_interval`."""
    a, b = [Scorer(bench, r) for r in seeds_a], [Scorer(bench, r) for r in seeds_b]
    if not a or not b:
        raise ValueError(f"{bench}: each side needs the records of at least one seed")
    units = sorted(set.intersection(*(set(s.units) for s in a + b)), key=repr)
    if not units:
        raise ValueError(f"{bench}: the two runs share no evaluation units")

    observed = float(np.mean([s.score(units) for s in a]) - np.mean([s.score(units) for s in b]))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        pick = [units[k] for k in rng.integers(0, len(units), size=len(units))]
        diffs[i] = _seed_draw_mean(a, pick, rng) - _seed_draw_mean(b, pick, rng)
    low, high = np.percentile(diffs, [2.5, 97.5])
    # two-sided: how often the resampled difference falls on the other side of zero (Efron & Tibshirani 16.4)
    p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))) if observed != 0 else 1.0
    return {
        "diff": float(observed),
        "low": float(low),
        "high": float(high),
        "p": float(p),
        "n_units": len(units),
        "seeds": (len(a), len(b)),
    }


def _seed_draw_mean(side: Sequence[Scorer], pick: Sequence[Any], rng: np.random.Generator) -> float:
    """Mean score over a with-replacement draw of `side`'s seeds (one seed: that seed, and no randomness consumed,
    so that one seed per side is exactly the plain paired bootstrap)."""
    if len(side) == 1:
        return side[0].score(pick)
    kinds, counts = np.unique(rng.integers(0, len(side), size=len(side)), return_counts=True)
    return float(np.dot([side[k].score(pick) for k in kinds], counts) / len(side))


def seed_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean over training seeds and the half-width of its 95% Student-t interval (nan for a single seed)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
