"""How sure a difference between two runs is, and how large a difference a comparison could have seen.

    r = compare_runs("gqa", seeds_a, seeds_b)       # {diff, se, df, low, high, p, mdd, ...}; one record list per seed
    noise = pooled_seed_noise("gqa", many_runs)     # seed spread pooled over runs: for runs trained with one seed
    r = compare_runs("gqa", [recs_a], [recs_b], noise=noise)
    mdd(r["se"], r["df"])                           # minimum detectable difference at 80% power
    plan_mdd(seed_sd=2.59, unit_sd=10, n_seeds=3, n_units=400)   # the same before training anything

`evaluate` stores per-sample records with a resampling `unit` (MME: the image, whose two questions are scored
together; MMBench: the question with all its circular rotations; otherwise the question). `Scorer` recomputes a run's
headline number from them exactly as the tables show it.

The estimand of `compare_runs` is the expected difference between the two *training procedures* on the population
of test questions: the mean over training seeds and over questions drawn like the benchmark's, of A - B. The
estimate is mean(A's seed scores) - mean(B's seed scores) on the shared test set, and its variance has two parts:

- training noise: s_A^2 / n_A + s_B^2 / n_B, from each run's between-seed variance on this test set (Welch 1947);
- test-set sampling: the delete-one-unit jackknife variance (Quenouille 1956; Efron & Stein 1981) of the paired
  difference of seed means, minus the part of it that is training noise already counted: seeds of one run answer
  single questions differently, and that per-question disagreement shows up both in s^2 and in the jackknife. It is
  estimated per run from the jackknife variances of each seed's score and of the seed mean (for a mean of per-unit
  scores it is the interaction mean square of a seeds x questions two-way layout).

The interval is a Student-t interval with Welch-Satterthwaite degrees of freedom (Satterthwaite 1946) on the
training-noise part (the test-set part has hundreds of units and is taken as known). Adding the test-set variance to
the seed variance follows Bouthillier et al. 2021 ("Accounting for variance in machine learning benchmarks", MLSys),
who show that ignoring either source gives intervals that are too narrow. A run trained with one seed has no
between-seed variance of its own: it borrows `SeedNoise` pooled over other runs of the same benchmark and test set
(an assumption: its seed spread is like theirs); without one, the interval covers test-set sampling only and says so
(`covers_training_noise`). The minimum detectable difference (MDD) at 80% power is (t_{1-a/2,df} + t_{0.8,df}) * se
(Cohen 1988; for ML comparisons Card et al. 2020, "With little power comes great responsibility", EMNLP); `holm`
is Holm's (1979) step-down rule for a family of comparisons. tests/test_interval_coverage.py checks by simulation that
the 95% intervals cover the estimand 93-97% of the time (docs/statistics.md).

`paired_bootstrap` / `paired_bootstrap_seeds` are the earlier percentile bootstrap over units (and, with several
seeds, over seeds with replacement); with 3 seeds the seed level keeps (n-1)/n of the seed variance and normal-like
quantiles replace t(~4), so its 95% intervals cover less than 95% (docs/statistics.md); the tables use
`compare_runs`. `seed_interval` gives the spread over seeds alone. numpy + scipy's t distribution; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hydra_repro.core.scoring import Scorer, category_values

N_BOOT = 2000


ALPHA = 0.05


POWER = 0.80


def leave_one_out(
    bench: str, rows: np.ndarray, row_cat: np.ndarray, row_unit: np.ndarray, n_units: int, n_cats: int
) -> tuple[np.ndarray, np.ndarray]:
    """(headline, headline without unit u for every u) of one or many runs, in O(rows) per run.

    `rows` (..., R, features) are per (unit, category) feature sums, `row_cat` / `row_unit` (R,) their category and
    unit indices; leading axes are runs or seeds or simulated replicates. Removing a unit changes only the
    categories it has rows in, so its headline is the full one plus the change of those categories' values."""
    rows = np.asarray(rows, dtype=float)
    row_cat, row_unit = np.asarray(row_cat), np.asarray(row_unit)
    onehot = np.zeros((len(row_cat), n_cats))
    onehot[np.arange(len(row_cat)), row_cat] = 1.0
    totals = np.einsum("...rf,rc->...fc", rows, onehot)
    full, present = category_values(bench, totals)
    after, present_after = category_values(bench, totals[..., row_cat] - np.swapaxes(rows, -1, -2))
    change = after - full[..., row_cat]
    emptied = (present[..., row_cat] & ~present_after).astype(float)
    if len(row_unit) == n_units and np.array_equal(row_unit, np.arange(n_units)):
        change_u, emptied_u = change, emptied
    else:
        change_u, emptied_u = (_sum_by(x, row_unit, n_units) for x in (change, emptied))
    if bench == "pope":
        n_present = present.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return full.sum(axis=-1) / n_present[..., 0], (full.sum(axis=-1, keepdims=True) + change_u) / (
                n_present - emptied_u
            )
    total = full.sum(axis=-1)
    return total, total[..., None] + change_u


def _sum_by(x: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Sum the last axis of x into n bins by index."""
    out = np.zeros((n, *x.shape[:-1]))
    np.add.at(out, index, np.moveaxis(x, -1, 0))
    return np.moveaxis(out, 0, -1)


def jackknife_var(loo: np.ndarray) -> np.ndarray:
    """Delete-one jackknife variance over the last axis (n - 1) / n * sum (x_(u) - mean)^2 of leave-one-out values."""
    loo = np.asarray(loo, dtype=float)
    n = loo.shape[-1]
    return (n - 1) / n * ((loo - loo.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)


def seed_scores(bench: str, seeds: Sequence[Sequence[dict[str, Any]]], units: Sequence[Any]) -> tuple[Any, Any]:
    """Per-seed headline (n,) and leave-one-unit-out headlines (n, len(units)) over the shared `units`."""
    thetas, loos = [], []
    for records in seeds:
        f = Scorer(bench, records).features(units)  # (U, F, C)
        u_idx, c_idx = np.nonzero(f[:, 0, :] > 0)
        theta, loo = leave_one_out(bench, f[u_idx, :, c_idx], c_idx, u_idx, len(units), f.shape[2])
        thetas.append(theta)
        loos.append(loo)
    return np.array(thetas), np.stack(loos)


@dataclass(frozen=True)
class SeedNoise:
    """A benchmark's training noise on its test set, pooled over runs: `sd` the between-seed SD of a run's headline,
    `within` the part of sd^2 that is per-question disagreement between seeds (a unit jackknife sees it too), `df`
    the degrees of freedom of the pooled variance (sum of seeds - 1 over the runs), `runs` how many runs."""

    sd: float
    within: float = 0.0
    df: float = math.inf
    runs: int = 0


def own_seed_noise(theta: np.ndarray, loo: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(between-seed variance, its per-question part, df) of one run from its n >= 2 seeds: theta (..., n) and
    loo (..., n, U). The per-question part is n / (n - 1) * (mean over seeds of each seed's jackknife variance -
    the seed mean's jackknife variance), clipped at 0 (for a mean score: the seeds x questions interaction mean square
    over U)."""
    n = theta.shape[-1]
    var = theta.var(axis=-1, ddof=1)
    within = n / (n - 1) * (jackknife_var(loo).mean(axis=-1) - jackknife_var(loo.mean(axis=-2)))
    return var, np.maximum(within, 0.0), n - 1


def pool_seed_noise(parts: Sequence[tuple[Any, Any, int]]) -> SeedNoise:
    """Pool (variance, per-question part, df) of several runs, weighting each by its df."""
    parts = [p for p in parts if p[2] > 0]
    if not parts:
        raise ValueError("pooling needs at least one run with two or more seeds")
    df = sum(p[2] for p in parts)
    var = sum(p[2] * np.asarray(p[0]) for p in parts) / df
    within = sum(p[2] * np.asarray(p[1]) for p in parts) / df
    return SeedNoise(np.sqrt(var), within, df, len(parts))


def pooled_seed_noise(bench: str, runs: Sequence[Sequence[Sequence[dict[str, Any]]]]) -> SeedNoise | None:
    """`SeedNoise` of `bench` pooled over `runs` (each: one record list per seed; runs with one seed are skipped),
    on the units every seed of every run answered. None when no run has two seeds."""
    runs = [r for r in runs if len(r) >= 2]
    if not runs:
        return None
    scorers = [Scorer(bench, recs) for run in runs for recs in run]
    units = sorted(set.intersection(*(set(s.units) for s in scorers)), key=repr)
    if len(units) < 2:
        return None
    pooled = pool_seed_noise([own_seed_noise(*seed_scores(bench, run, units)) for run in runs])
    return SeedNoise(float(pooled.sd), float(pooled.within), float(pooled.df), pooled.runs)


def pooled_seed_sd(seed_values: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(pooled between-seed SD, df) of headline values, one sequence of seed scores per run: sqrt(sum over runs of
    sum (x - run mean)^2 / sum (n - 1)); runs with one seed add nothing."""
    ss, df = 0.0, 0
    for values in seed_values:
        x = np.asarray(values, dtype=float)
        if x.size >= 2:
            ss += float(((x - x.mean()) ** 2).sum())
            df += x.size - 1
    if df == 0:
        raise ValueError("pooling needs at least one run with two or more seeds")
    return math.sqrt(ss / df), df


def _t_ppf(q: Any, df: Any) -> np.ndarray:
    from scipy.stats import t

    return t.ppf(q, df)


def mdd(se: Any, df: Any, alpha: float = ALPHA, power: float = POWER) -> Any:
    """Minimum detectable difference: the true difference a two-sided level-alpha t-test with this standard error
    and df detects with probability `power`, (t_{1-alpha/2,df} + t_{power,df}) * se (the usual approximation, which
    ignores the far tail)."""
    out = (_t_ppf(1 - alpha / 2, df) + _t_ppf(power, df)) * np.asarray(se, dtype=float)
    return float(out) if np.ndim(out) == 0 else out


def interval_from_loo(
    theta_a: Any,
    loo_a: Any,
    theta_b: Any,
    loo_b: Any,
    noise: SeedNoise | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> dict[str, Any]:
    """The t-interval of mean(A seeds) - mean(B seeds) from per-seed headlines theta (..., n) and their
    leave-one-unit-out values loo (..., n, U) over the same units (leading axes broadcast: many comparisons at
    once). `noise` stands in for a one-seed side's seed spread. See the module docstring for the method."""
    theta_a, theta_b = np.asarray(theta_a, dtype=float), np.asarray(theta_b, dtype=float)
    loo_a, loo_b = np.asarray(loo_a, dtype=float), np.asarray(loo_b, dtype=float)
    n_a, n_b = theta_a.shape[-1], theta_b.shape[-1]
    diff = theta_a.mean(axis=-1) - theta_b.mean(axis=-1)
    jack = jackknife_var(loo_a.mean(axis=-2) - loo_b.mean(axis=-2))
    components: list[tuple[Any, float]] = []  # (variance of the difference, df) of each training-noise estimate
    pooled_share, within, covers = 0.0, 0.0, True
    for theta, loo, n in ((theta_a, loo_a, n_a), (theta_b, loo_b, n_b)):
        if n >= 2:
            var, w, df = own_seed_noise(theta, loo)
            components.append((var / n, df))
            within = within + w / n
        elif noise is not None:
            pooled_share += 1.0 / n
            within = within + np.asarray(noise.within) / n
        else:
            covers = False  # its seed spread is unknown: the interval is conditional on this training run
    if pooled_share:  # both one-seed sides borrow the same pooled estimate: one component
        components.append((np.asarray(noise.sd) ** 2 * pooled_share, noise.df))
    seed_var = sum((c for c, _ in components), np.zeros_like(diff))
    test_var = np.maximum(jack - within, 0.0)
    var = seed_var + test_var
    denom = sum((c**2 / df for c, df in components if np.isfinite(df)), np.zeros_like(diff))
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(denom > 0, var**2 / np.where(denom > 0, denom, 1.0), np.inf)
    se = np.sqrt(var)
    q = _t_ppf(1 - alpha / 2, dof)
    from scipy.stats import t

    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(se > 0, 2 * t.sf(np.abs(diff) / np.where(se > 0, se, 1.0), dof), np.where(diff == 0, 1.0, 0.0))
    return {
        "diff": diff,
        "se": se,
        "df": dof,
        "low": diff - q * se,
        "high": diff + q * se,
        "p": p,
        "mdd": mdd(se, dof, alpha, power),
        "seed_var": seed_var,
        "test_var": test_var,
        "seeds": (n_a, n_b),
        "covers_training_noise": covers,
    }


def compare_runs(
    bench: str,
    seeds_a: Sequence[Sequence[dict[str, Any]]],
    seeds_b: Sequence[Sequence[dict[str, Any]]],
    noise: SeedNoise | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> dict[str, Any]:
    """Difference A - B of the headline (mean over each run's seeds; one record list per seed) on the units both
    answered, with its standard error, Welch-Satterthwaite df, 95% t-interval, two-sided p-value and MDD at 80%
    power. `noise` (from `pooled_seed_noise`) stands in for the seed spread of a side trained with one seed; without
    it `covers_training_noise` is False for such a comparison."""
    if not seeds_a or not seeds_b:
        raise ValueError(f"{bench}: each side needs the records of at least one seed")
    scorers = [Scorer(bench, r) for r in (*seeds_a, *seeds_b)]
    units = sorted(set.intersection(*(set(s.units) for s in scorers)), key=repr)
    if len(units) < 2:
        raise ValueError(f"{bench}: the two runs share fewer than two evaluation units")
    theta_a, loo_a = seed_scores(bench, seeds_a, units)
    theta_b, loo_b = seed_scores(bench, seeds_b, units)
    r = interval_from_loo(theta_a, loo_a, theta_b, loo_b, noise, alpha, power)
    out: dict[str, Any] = {k: (float(v) if isinstance(v, np.ndarray) else v) for k, v in r.items()}
    out["n_units"] = len(units)
    return out


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down rule: which hypotheses of a family are rejected at family-wise error rate alpha (sorted p
    ascending, reject p_(i) <= alpha / (m - i) for i = 0, 1, ... until the first failure)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        out[i] = True
    return out


def plan_mdd(
    seed_sd: float,
    unit_sd: float,
    n_seeds: int,
    n_units: int,
    alpha: float = ALPHA,
    power: float = POWER,
    pooled_df: float = math.inf,
) -> dict[str, float]:
    """MDD of a planned comparison of two runs with `n_seeds` seeds each on `n_units` shared test units:
    se^2 = 2 seed_sd^2 / n_seeds + unit_sd^2 / n_units, df = 2 (n_seeds - 1) (Welch-Satterthwaite, equal spreads;
    `pooled_df` with one seed, whose spread is borrowed). `seed_sd` is the between-seed SD of a run's headline on
    such a test set; `unit_sd` the SD over units of the per-unit paired difference of expected scores, on the
    headline's scale (test-set variance = unit_sd^2 / n_units)."""
    seed_part = 2 * seed_sd**2 / n_seeds
    var = seed_part + unit_sd**2 / n_units
    df_seed = pooled_df if n_seeds < 2 else 2 * (n_seeds - 1)
    df = math.inf if seed_part == 0 or not math.isfinite(df_seed) else var**2 / (seed_part**2 / df_seed)
    se = math.sqrt(var)
    return {"mdd": mdd(se, df, alpha, power), "se": se, "df": df}


def seeds_for_mdd(
    target: float,
    seed_sd: float,
    unit_sd: float,
    n_units: int,
    alpha: float = ALPHA,
    power: float = POWER,
    max_seeds: int = 200,
) -> int | None:
    """The fewest seeds per run (>= 2, so the spread is measured) whose planned MDD is at most `target`; None when
    even `max_seeds` is not enough (the test-set part alone may exceed the target)."""
    for n in range(2, max_seeds + 1):
        if plan_mdd(seed_sd, unit_sd, n, n_units, alpha, power)["mdd"] <= target:
            return n
    return None


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
    of their variance) and its percentiles are not widened for the few seeds: `compare_runs` is the interval whose
    coverage is checked (docs/statistics.md)."""
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
