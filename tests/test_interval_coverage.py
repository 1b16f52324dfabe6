"""Do the 95% intervals of `stats.compare_runs` cover the true difference 95% of the time? A simulation.

Each replicate draws a test set the size of the mini profile's and trains (simulates) runs on it:

- a question's difficulty: its probability q of being answered right is drawn from a Beta distribution (U-shaped, so
  many questions are always or never answered right, as with real models), per category;
- a run (training procedure P) answers a question right with probability sigmoid(logit q + a_P + g_P,q + e_P,s):
  a_P its ability, g_P,q a procedure x question affinity fixed across seeds (two procedures are good at different
  questions), e_P,s a per-seed shift of ability (training noise), then a Bernoulli draw per seed and question (seeds
  also disagree on single questions);
- the benchmarks' units: MME scores image pairs (acc + acc+ per category, 5 categories of 40 images), MMBench
  circular groups of 4 rotations that count only if all four are right, POPE F1 over 3 categories of yes / no
  questions, GQA / TextVQA / ScienceQA per-question accuracy; mini sizes (400, 300, 300 questions, 100 groups, 420
  POPE questions);
- the seed shift is set so that a run's between-seed SD on one test set is the one measured over 16 three-seed mini
  runs (GQA 2.59, TextVQA 1.34, MME 11.4) or, where none was measured, an assumed size (MMBench 3, POPE 2,
  ScienceQA 1.5); about half of it comes from seeds disagreeing on single questions, the rest from the shift. Three
  more GQA settings move that balance: seeds that mostly shift together (`gqa_shift`), seeds that mostly disagree on
  single questions (`gqa_churn`), and no seed shift with strong procedure x question affinity, where test-set
  sampling dominates (`gqa_questions`). The test prints the realised SDs.

The estimand is the expected difference between the two procedures on the population of questions, averaged over
training seeds: exactly 0 for two procedures of the same ability (the zero effect), and for a procedure whose
ability is higher by `delta` the difference of population headlines computed by quadrature (the nonzero effect).
With one seed per run the interval borrows the seed spread pooled over 4 other three-seed runs on the same test set
(`pool_seed_noise`, as `pooled_seed_noise` does for the tables).

It also runs the earlier two-level bootstrap (`paired_bootstrap_seeds`, resampling 3 seeds with replacement): too
narrow where seeds shift together, too wide where seeds disagree on single questions or test-set sampling dominates.
Figures: docs/statistics.md. Run time: ~11 s on a 2-core CPU (the slow-marked regime sweep ~10 s more).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.special import roots_hermitenorm, roots_jacobi
from threadpoolctl import threadpool_limits

from hydra_repro.core.stats import (
    interval_from_loo,
    leave_one_out,
    own_seed_noise,
    paired_bootstrap_seeds,
    pool_seed_noise,
)

REPLICATES = 2000
CHUNK = 250  # replicates simulated at once (memory)
SEEDS = 5  # seeds simulated per compared run; 1, 3 and 5 of them are used
POOL_RUNS, POOL_SEEDS = 4, 3  # the other runs whose seed spread a one-seed comparison borrows
LOW, HIGH = 0.93, 0.97


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrix products in a loop: a second BLAS thread on a shared 2-core machine makes them ~5x slower."""
    with threadpool_limits(1):
        yield


@dataclass(frozen=True)
class Spec:
    kind: str  # "acc", "mmbench", "mme", "pope"
    units: int
    cats: int
    per_unit: int  # questions per unit: MME 2 (the image's pair), MMBench 4 (rotations), else 1
    beta: tuple[tuple[float, float], ...]  # (mean, a + b) of q per category; POPE: yes-questions then no-questions
    tau: float  # SD of the per-seed ability shift (logits)
    delta: float  # the nonzero effect: A's ability above B's (logits)
    target_sd: float  # between-seed SD of the headline on one test set (measured or assumed)
    gamma: float = 0.3  # SD of the procedure x question affinity (logits)


SPECS = {  # difficulty Beta(mean, a + b): U-shaped, many questions always or never answered right (answer habits); the
    # seed shift is calibrated so that a run's between-seed SD is target_sd, about half of it from seeds disagreeing
    # on single questions
    "gqa": Spec("acc", 400, 1, 1, ((0.60, 0.39),), tau=0.35, delta=0.6, target_sd=2.59),
    "textvqa": Spec("acc", 300, 1, 1, ((0.25, 0.077),), tau=0.85, delta=0.6, target_sd=1.34),
    "sqa_img": Spec("acc", 300, 1, 1, ((0.45, 0.073),), tau=0.77, delta=0.6, target_sd=1.5),
    "mmbench": Spec("mmbench", 100, 1, 4, ((0.70, 0.089),), tau=1.1, delta=0.6, target_sd=3.0),
    "mme": Spec("mme", 200, 5, 2, tuple((m, 0.041) for m in (0.7, 0.6, 0.5, 0.55, 0.65)), 0.95, 0.6, 11.4),
    "pope": Spec("pope", 420, 3, 1, tuple((m, 0.21) for m in (0.8, 0.7, 0.6, 0.6, 0.7, 0.8)), 0.48, 0.6, 2.0),
    # GQA whose seeds mostly shift together (polarised questions; a third of the SD from single questions)
    "gqa_shift": Spec("acc", 400, 1, 1, ((0.60, 0.165),), tau=0.72, delta=0.6, target_sd=2.59),
    # GQA whose seeds disagree on many single questions independently (60% of the SD)
    "gqa_churn": Spec("acc", 400, 1, 1, ((0.60, 0.7),), tau=0.2, delta=0.6, target_sd=2.59),
    # GQA-sized, no seed shift and strong procedure x question affinity: test-set sampling dominates
    "gqa_questions": Spec("acc", 400, 1, 1, ((0.60, 2.0),), tau=0.0, delta=0.6, target_sd=0.0, gamma=1.5),
}


def _p(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """sigmoid(logit q + c), finite at q = 0 and 1."""
    e = np.exp(c)
    return q * e / (1 + q * (e - 1))


def _unit_layout(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Category of each unit and the index into spec.beta of its Beta (POPE: even units ask a yes-question)."""
    cat = np.arange(spec.units) * spec.cats // spec.units
    if spec.kind != "pope":
        return cat, cat
    return cat, cat + spec.cats * (np.arange(spec.units) % 2)


def _beta_ab(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    m, k = np.array(spec.beta).T
    return m * k, (1 - m) * k


def draw_test_sets(rng: np.random.Generator, spec: Spec, n: int) -> np.ndarray:
    """q (n, units, per_unit): each question's base probability of a right answer."""
    _, which = _unit_layout(spec)
    a, b = _beta_ab(spec)
    return rng.beta(a[which][:, None], b[which][:, None], size=(n, spec.units, spec.per_unit))


def run_features(rng: np.random.Generator, spec: Spec, q: np.ndarray, seeds: int, ability: float) -> np.ndarray:
    """One procedure's per-unit features (n, seeds, units, features) in the layout of `stats.Scorer.features`."""
    n = q.shape[0]
    affinity = rng.normal(0.0, spec.gamma, size=(n, 1, *q.shape[1:]))
    shift = rng.normal(0.0, spec.tau, size=(n, seeds, 1, 1))
    right = rng.random((n, seeds, *q.shape[1:])) < _p(q[:, None], ability + affinity + shift)
    one = np.ones(right.shape[:-1])
    if spec.kind == "acc":
        return np.stack([one, right[..., 0]], axis=-1)
    if spec.kind == "mmbench":
        return np.stack([one, right.all(axis=-1)], axis=-1)
    if spec.kind == "mme":
        return np.stack([2 * one, right.sum(axis=-1), one, right.all(axis=-1)], axis=-1)
    yes = (np.arange(spec.units) % 2 == 0)[None, None, :]
    r = right[..., 0]
    return np.stack([one, yes & r, ~yes & ~r, yes & ~r], axis=-1).astype(float)


def scores(spec: Spec, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed headline and leave-one-unit-out headlines, by the code under test."""
    cat, _ = _unit_layout(spec)
    bench = {"acc": "gqa"}.get(spec.kind, spec.kind)
    return leave_one_out(bench, feats, cat, np.arange(spec.units), spec.units, spec.cats)


def population_headline(spec: Spec, ability: float) -> float:
    """The headline on the population of questions, averaged over the seed shift: Gauss-Jacobi quadrature over the
    Beta difficulty, Gauss-Hermite over the affinity and over the seed shift."""
    g_x, g_w = roots_hermitenorm(40)
    g_w = g_w / g_w.sum()
    a, b = _beta_ab(spec)
    out = 0.0
    for e, we in zip(spec.tau * g_x, g_w):
        moments = []  # E[p^j] per Beta of spec.beta, j = 1, 4
        for ai, bi in zip(a, b):
            x, w = roots_jacobi(80, bi - 1, ai - 1)
            q, w = (1 + x) / 2, w / w.sum()
            p = _p(q[:, None], ability + e + spec.gamma * g_x[None, :])
            moments.append(((w[:, None] * g_w[None, :] * p).sum(), (w[:, None] * g_w[None, :] * p**4).sum()))
        m1 = np.array([m[0] for m in moments])
        if spec.kind == "acc":
            value = 100 * m1[0]
        elif spec.kind == "mmbench":
            value = 100 * moments[0][1]
        elif spec.kind == "mme":  # acc + acc+ per category; the pair's questions are independent given the seed
            value = float((100 * (m1 + m1**2)).sum())
        else:  # tp = m_yes / 2, fp = (1 - m_no) / 2, fn = (1 - m_yes) / 2 per category
            m_yes, m_no = m1[: spec.cats], m1[spec.cats :]
            value = float((100 * m_yes / (1 + (m_yes - m_no) / 2)).mean())
        out += we * value
    return float(out)


def simulate(name: str, seed: int = 0) -> dict:
    """Coverage of the new interval at 1, 3 and 5 seeds, for a zero and a nonzero effect; the realised seed SD."""
    spec = SPECS[name]
    rng = np.random.default_rng(seed)
    truth = {"zero": 0.0, "nonzero": population_headline(spec, spec.delta) - population_headline(spec, 0.0)}
    hits = {(effect, n): [] for effect in truth for n in (1, 3, 5)}
    widths = {(effect, n): [] for effect in truth for n in (1, 3, 5)}
    seed_sds = []
    for start in range(0, REPLICATES, CHUNK):
        q = draw_test_sets(rng, spec, min(CHUNK, REPLICATES - start))
        base = scores(spec, run_features(rng, spec, q, SEEDS, 0.0))
        runs = {"zero": scores(spec, run_features(rng, spec, q, SEEDS, 0.0)),
                "nonzero": scores(spec, run_features(rng, spec, q, SEEDS, spec.delta))}  # fmt: skip
        pool = [scores(spec, run_features(rng, spec, q, POOL_SEEDS, 0.0)) for _ in range(POOL_RUNS)]
        noise = pool_seed_noise([own_seed_noise(*p) for p in pool])
        seed_sds.append(base[0].std(axis=1, ddof=1))
        for effect, (theta, loo) in runs.items():
            for n in (1, 3, 5):
                r = interval_from_loo(theta[:, :n], loo[:, :n], base[0][:, :n], base[1][:, :n], noise=noise)
                hits[(effect, n)].append((r["low"] <= truth[effect]) & (truth[effect] <= r["high"]))
                widths[(effect, n)].append(r["high"] - r["low"])
    return {
        "truth": truth,
        "coverage": {k: float(np.concatenate(v).mean()) for k, v in hits.items()},
        "width": {k: float(np.median(np.concatenate(v))) for k, v in widths.items()},
        "seed_sd": float(np.sqrt(np.mean(np.concatenate(seed_sds) ** 2))),
    }


@pytest.mark.parametrize("name", list(SPECS))
def test_new_intervals_cover_95_percent(name):
    t0 = time.perf_counter()
    out = simulate(name)
    cov = out["coverage"]
    print(
        f"\n{name}: seed SD {out['seed_sd']:.2f} (target {SPECS[name].target_sd}), nonzero truth "
        f"{out['truth']['nonzero']:+.2f}; coverage "
        + ", ".join(f"{e} {n} seed{'s' * (n > 1)} {cov[(e, n)]:.3f}" for e in ("zero", "nonzero") for n in (1, 3, 5))
        + f"; {time.perf_counter() - t0:.1f} s"
    )
    if SPECS[name].target_sd:
        assert out["seed_sd"] == pytest.approx(SPECS[name].target_sd, rel=0.15)
    for key, c in cov.items():
        assert LOW <= c <= HIGH, (name, key, c)


OLD_REPLICATES, OLD_BOOT, OLD_CHUNK = 1000, 500, 10


def unit_counts(rng: np.random.Generator, replicates: int, n_boot: int, units: int) -> np.ndarray:
    """How often each unit is drawn in each of n_boot with-replacement resamples: (replicates, n_boot, units)."""
    draws = rng.integers(0, units, size=(replicates, n_boot, units))
    offsets = (np.arange(replicates * n_boot) * units).reshape(replicates, n_boot, 1)
    flat = np.bincount((draws + offsets).ravel(), minlength=replicates * n_boot * units)
    return flat.reshape(replicates, n_boot, units).astype(float)


def old_bootstrap(rng: np.random.Generator, counts: np.ndarray, feats_a: np.ndarray, feats_b: np.ndarray):
    """`paired_bootstrap_seeds` on many replicates of an accuracy benchmark at once: (low, high) of the percentile
    95% interval, (2, replicates). Each resample draws the units with replacement (`counts`, the same for both runs)
    and each run's seeds with replacement; the draws are the same in distribution as the function's, not the same
    numbers."""
    r, n_boot, units = counts.shape
    means = []
    for feats in (feats_a, feats_b):
        n = feats.shape[1]
        totals = counts @ feats.transpose(0, 2, 1, 3).reshape(r, units, -1)  # (r, boot, seeds * 2)
        totals = totals.reshape(r, n_boot, n, 2)
        per_seed = 100 * totals[..., 1] / totals[..., 0]
        picks = rng.integers(0, n, size=(r, n_boot, n))
        weights = (picks[..., None] == np.arange(n)).sum(axis=2) / n
        means.append((weights * per_seed).sum(axis=-1))
    return np.percentile(means[0] - means[1], [2.5, 97.5], axis=1)


def records(feats: np.ndarray) -> list[list[dict]]:
    """Per-seed records of an accuracy benchmark from its features (seeds, units, 2)."""
    return [[{"doc_id": u, "unit": u, "score": float(x[1])} for u, x in enumerate(seed)] for seed in feats]


def old_vs_new(name: str, replicates: int, seed: int = 1) -> tuple[dict, dict]:
    """Coverage of the two-level bootstrap and of the t-interval on the same replicates, 3 seeds per run, for a zero
    and a nonzero effect. The vectorised bootstrap is first checked against `paired_bootstrap_seeds` itself."""
    spec = SPECS[name]
    rng = np.random.default_rng(seed)
    truth = {"zero": 0.0, "nonzero": population_headline(spec, spec.delta) - population_headline(spec, 0.0)}
    q = draw_test_sets(rng, spec, 1)
    a, b = run_features(rng, spec, q, 3, spec.delta)[0], run_features(rng, spec, q, 3, 0.0)[0]
    real = paired_bootstrap_seeds("gqa", records(a), records(b), n_boot=2000)
    low, high = old_bootstrap(rng, unit_counts(rng, 1, 4000, spec.units), a[None], b[None])[:, 0]
    width = real["high"] - real["low"]
    assert abs(low - real["low"]) < 0.1 * width and abs(high - real["high"]) < 0.1 * width, (real, low, high)

    old, new = {e: [] for e in truth}, {e: [] for e in truth}
    for _ in range(0, replicates, OLD_CHUNK):
        q = draw_test_sets(rng, spec, OLD_CHUNK)
        fb = run_features(rng, spec, q, 3, 0.0)
        base = scores(spec, fb)
        counts = unit_counts(rng, OLD_CHUNK, OLD_BOOT, spec.units)  # shared by the two comparisons with fb
        for effect, ability in (("zero", 0.0), ("nonzero", spec.delta)):
            fa = run_features(rng, spec, q, 3, ability)
            low, high = old_bootstrap(rng, counts, fa, fb)
            old[effect].append((low <= truth[effect]) & (truth[effect] <= high))
            r = interval_from_loo(*scores(spec, fa), *base)
            new[effect].append((r["low"] <= truth[effect]) & (truth[effect] <= r["high"]))
    old_cov = {e: float(np.concatenate(v).mean()) for e, v in old.items()}
    new_cov = {e: float(np.concatenate(v).mean()) for e, v in new.items()}
    print(
        f"\n{name}, 3 seeds, {replicates} replicates: two-level bootstrap coverage "
        + ", ".join(f"{e} {c:.3f}" for e, c in old_cov.items())
        + "; t-interval "
        + ", ".join(f"{e} {c:.3f}" for e, c in new_cov.items())
    )
    return old_cov, new_cov


def test_old_two_level_bootstrap_covers_less_at_three_seeds():
    """GQA whose seeds mostly shift together, as the mini runs' seeds do (a seed changes an answer habit): the
    two-level bootstrap keeps 2/3 of the seed variance and does not widen its percentiles for 3 seeds, so its 95%
    interval covers the truth well under 95%; the t-interval on the same replicates covers about 95%."""
    t0 = time.perf_counter()
    old, new = old_vs_new("gqa_shift", OLD_REPLICATES)
    print(f"{time.perf_counter() - t0:.1f} s")
    for e in old:
        assert old[e] < LOW and old[e] < new[e] - 0.03, (e, old, new)


@pytest.mark.slow
def test_old_two_level_bootstrap_is_off_both_ways():
    """Where test-set sampling or seeds disagreeing on single questions dominate, the two-level bootstrap counts
    that disagreement twice (in its seed draws and in its unit draws) and its interval is too wide instead: its
    coverage depends on where the noise comes from. (The t-interval's coverage is tested above on 2,000 replicates;
    here it is printed beside the bootstrap's.)"""
    figures = {name: old_vs_new(name, 1000) for name in ("gqa_shift", "gqa", "gqa_churn", "gqa_questions")}
    assert all(c < LOW for c in figures["gqa_shift"][0].values())
    assert all(c > HIGH for c in figures["gqa_questions"][0].values())
