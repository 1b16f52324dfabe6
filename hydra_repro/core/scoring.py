"""Headline scores from per-sample records, as the tables show them: MME's image pairs, MMBench's circular groups,
POPE's F1 over categories, accuracy otherwise; and per-unit totals for the resampling in `core.stats`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

# Per-unit features whose sums over units make a headline: index 0 is always the number of records.
#   mme:     (records, summed score, pair present, pair all right), per category
#   pope:    (records, true positives, false positives, false negatives), per category
#   others:  (records, summed score) in one category; MMBench: (1, the group's circular hit)
CATEGORY_BENCHES = ("mme", "pope")


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

    def features(self, units: Sequence[Any]) -> np.ndarray:
        """Per-unit feature sums, (len(units), features, categories): the headline of any multiset of units is
        `headline_from_totals` of its count-weighted sum (see CATEGORY_BENCHES for the features)."""
        groups = [self.by_unit[u] for u in units]
        if self.bench not in CATEGORY_BENCHES:
            f = np.zeros((len(units), 2, 1))
            for u, g in enumerate(groups):
                if self.bench == "mmbench":
                    f[u, :, 0] = 1.0, float(g[0]["score"])
                else:
                    f[u, :, 0] = len(g), sum(float(r["score"]) for r in g)
            return f
        cats = sorted({self._category(r) for g in groups for r in g})
        col = {c: k for k, c in enumerate(cats)}
        f = np.zeros((len(units), 4, len(cats)))
        for u, g in enumerate(groups):
            for r in g:
                k = col[self._category(r)]
                f[u, 0, k] += 1
                if self.bench == "mme":
                    f[u, 1, k] += float(r["score"])
                else:
                    p, t = (str(r[key]).lower().strip() for key in ("prediction", "target"))
                    f[u, 1:4, k] += (p == "yes" and t == "yes", p == "yes" and t == "no", p == "no" and t == "yes")
            if self.bench == "mme":
                for k in range(len(cats)):
                    pair = [float(r["score"]) for r in g if col[self._category(r)] == k]
                    f[u, 2, k], f[u, 3, k] = float(bool(pair)), float(bool(pair) and all(x > 0 for x in pair))
        return f

    def scores(self, units: Sequence[Any], counts: np.ndarray) -> np.ndarray:
        """`score` of many resamples at once: row i of `counts` (n, len(units)) says how often each of `units` was
        drawn. Each headline is a function of count-weighted sums of per-unit features, so a resample costs one
        matrix product instead of a pass over its records (`score` stays the readable reference; a test compares
        them)."""
        counts = np.asarray(counts, dtype=float)
        return headline_from_totals(self.bench, np.einsum("iu,ufc->ifc", counts, self.features(units)))

    def _category(self, r: dict[str, Any]) -> str:
        return str(r.get("category")) if self.bench == "mme" else str(r.get("category") or "all")


def _key(unit: Any) -> Any:
    return tuple(unit) if isinstance(unit, list) else unit


def headline_from_records(bench: str, records: Sequence[dict[str, Any]]) -> float:
    scorer = Scorer(bench, records)
    return scorer.score(scorer.units)


def category_values(bench: str, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, present) per category from feature totals (..., features, categories): MME acc + acc+ in %, POPE F1
    in %, others the mean score in %; a category without records is absent and worth 0."""
    t = np.asarray(totals, dtype=float)
    n = t[..., 0, :]
    present = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        if bench == "mme":
            value = 100 * t[..., 1, :] / n + 100 * t[..., 3, :] / t[..., 2, :]
        elif bench == "pope":  # F1 = 2PR / (P + R) = 2 tp / (2 tp + fp + fn); 0 without true positives
            den = 2 * t[..., 1, :] + t[..., 2, :] + t[..., 3, :]
            value = np.where(den > 0, 200 * t[..., 1, :] / np.where(den > 0, den, 1), 0.0)
        else:
            value = 100 * t[..., 1, :] / n
    return np.where(present, value, 0.0), present


def headline_from_totals(bench: str, totals: np.ndarray) -> np.ndarray:
    """The headline of feature totals (..., features, categories): MME sums its categories, POPE averages the
    categories present, the others have one category."""
    value, present = category_values(bench, totals)
    if bench == "pope":
        with np.errstate(invalid="ignore", divide="ignore"):
            return value.sum(axis=-1) / present.sum(axis=-1)
    return value.sum(axis=-1)
