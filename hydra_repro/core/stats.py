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

    def scores(self, units: Sequence[Any], counts: np.ndarray) -> np.ndarray:
        """`score` of many resamples at once: row i of `counts` (n, len(units)) says how often each of `units` was
        drawn. Each headline is a ratio of count-weighted sums of per-unit totals, so a resample costs two matrix
        products instead of a pass over its records (`score` stays the readable reference; a test compares them)."""
        counts = np.asarray(counts, dtype=float)
        groups = [self.by_unit[u] for u in units]
        if self.bench == "mmbench":
            hit = np.array([float(g[0]["score"]) for g in groups])
            return 100.0 * (counts @ hit) / counts.sum(axis=1)
        if self.bench not in ("mme", "pope"):
            total = np.array([sum(float(r["score"]) for r in g) for g in groups])
            size = np.array([float(len(g)) for g in groups])
            return 100.0 * (counts @ total) / (counts @ size)
        cats = sorted({self._category(r) for g in groups for r in g})
        col = {c: k for k, c in enumerate(cats)}
        # per unit and category: records, and (MME) summed scores, pair present, pair all right, or (POPE) tp/fp/fn
        f = np.zeros((5, len(units), len(cats)))
        for u, g in enumerate(groups):
            for r in g:
                k = col[self._category(r)]
                f[0, u, k] += 1
                if self.bench == "mme":
                    f[1, u, k] += float(r["score"])
                else:
                    p, t = (str(r[key]).lower().strip() for key in ("prediction", "target"))
                    f[1:4, u, k] += (p == "yes" and t == "yes", p == "yes" and t == "no", p == "no" and t == "yes")
            if self.bench == "mme":
                for k in range(len(cats)):
                    pair = [float(r["score"]) for r in g if col[self._category(r)] == k]
                    f[2, u, k], f[3, u, k] = float(bool(pair)), float(bool(pair) and all(x > 0 for x in pair))
        n, a, b, c = (np.einsum("iu,uk->ik", counts, f[j]) for j in range(4))
        present = n > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.bench == "mme":  # acc + acc+ per category present in the resample, in %, summed
                per_cat = 100 * a / n + 100 * c / b
                return np.where(present, per_cat, 0.0).sum(axis=1)
            precision = np.where(a + b > 0, a / (a + b), 0.0)
            recall = np.where(a + c > 0, a / (a + c), 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return 100.0 * np.where(present, f1, 0.0).sum(axis=1) / present.sum(axis=1)

    def _category(self, r: dict[str, Any]) -> str:
        return str(r.get("category")) if self.bench == "mme" else str(r.get("category") or "all")


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
    # The draws, in the order of the one-resample-at-a-time loop (units, then A's seeds, then B's seeds), then every
    # seed's score of every resample at once.
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, len(units)))
    seed_weights = [np.empty((n_boot, len(side))) for side in (a, b)]
    for i in range(n_boot):
        counts[i] = np.bincount(rng.integers(0, len(units), size=len(units)), minlength=len(units))
        for side, weights in zip((a, b), seed_weights):
            weights[i] = _seed_draw(len(side), rng)
    side_means = [
        (weights * np.stack([s.scores(units, counts) for s in side], axis=1)).sum(axis=1)
        for side, weights in zip((a, b), seed_weights)
    ]
    diffs = side_means[0] - side_means[1]
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


def _seed_draw(n_seeds: int, rng: np.random.Generator) -> np.ndarray:
    """Weights of a with-replacement draw of a side's seeds (share of draws per seed); one seed: weight 1 and no
    randomness consumed, so that one seed per side is exactly the plain paired bootstrap."""
    if n_seeds == 1:
        return np.ones(1)
    return np.bincount(rng.integers(0, n_seeds, size=n_seeds), minlength=n_seeds) / n_seeds


def seed_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean over training seeds and the half-width of its 95% Student-t interval (nan for a single seed)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def corrected_cv_interval(diffs: Sequence[float], test_share: float) -> tuple[float, float]:
    """Mean of per-fold differences of two models over repeated K-fold, and the half-width of its 95% interval by
    Nadeau & Bengio's corrected resampled t-test: the folds share training points, so the variance of the mean is
    (1/J + n_test/n_train) s^2 instead of s^2 / J (J folds in all; `test_share` = n_test / n_train)."""
    from scipy.stats import t

    x = np.asarray(diffs, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan")
    se = np.sqrt((1 / x.size + test_share) * x.var(ddof=1))
    return float(x.mean()), float(t.ppf(0.975, x.size - 1) * se)
