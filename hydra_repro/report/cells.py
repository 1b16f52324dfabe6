"""Cells shared by the tables: paper-vs-ours comparisons, paired intervals against a baseline run, and the notes
that say how many seeds and which test stand behind them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra_repro.report.inputs import INFEASIBLE, ROMAN, Inputs, RunResult
from hydra_repro.report.numbers import MISSING, delta, fmt, fmt_paper
from hydra_repro.report.render import Table

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
UNTESTABLE = "untestable here"


def _title(inp: Inputs, n: int, extra: str = "") -> str:
    return f"Table {ROMAN[n - 1]}: {inp.paper[f'table_{n}']['caption']}{extra}"


def _status_note(t: Table, r: RunResult) -> None:
    if r.status == INFEASIBLE:
        t.note(f"{r.run}: infeasible at profile scale: {r.reason}")
    elif r.status == "missing":
        t.note(f"{r.run}: no result file (--allow-missing); its cells show {MISSING}")


def comparison(
    t: Table, labels: Sequence[Sequence[str]], paper: Mapping[str, float | None], r: RunResult, benches: Sequence[str]
) -> list[list[str]]:
    """Three rows for one entry: paper / ours / Δ (labels: the label cells of each of the three rows)."""
    _status_note(t, r)
    paper_row = [fmt_paper(paper[b], b) for b in benches]
    ours = [r.cell(b) for b in benches]
    if r.status == INFEASIBLE:
        deltas = [INFEASIBLE] * len(benches)
    else:
        deltas = [delta(paper[b], r.value(b), b) for b in benches]
    return [[*labels[0], "paper", *paper_row], [*labels[1], "ours", *ours], [*labels[2], "Δ", *deltas]]


# memo of comparisons: (id(ours), id(base), bench, noise) -> (ours, base, result); holding the runs keeps their ids
_COMPARISONS: dict[tuple[int, int, str, Any], tuple[RunResult, RunResult, dict[str, Any] | None]] = {}
_NOISE: dict[int, tuple[Inputs, dict[str, Any]]] = {}


def seed_noise(inp: Inputs) -> dict[str, Any]:
    """Per benchmark, the training noise pooled over every run with several seeds and per-sample records
    (`stats.pooled_seed_noise`; None where there is none): what a run trained with one seed borrows."""
    from hydra_repro.core.stats import pooled_seed_noise

    hit = _NOISE.get(id(inp))
    if hit is None or hit[0] is not inp:
        out = {}
        for b in inp.benchmarks:
            runs = [r.seed_samples(b) for r in inp.results.values() if r.status == "ok" and r.replicates]
            out[b] = pooled_seed_noise(b, [x for x in runs if x])
        hit = _NOISE[id(inp)] = (inp, out)
    return hit[1]


def compare(ours: RunResult, base: RunResult, bench: str, noise: Any = None) -> dict[str, Any] | None:
    """ours - base on one benchmark by `stats.compare_runs` (t-interval over seeds plus the test-set jackknife, p,
    MDD), memoised; `noise` (a `stats.SeedNoise`) stands in for a one-seed run's seed spread. None without
    per-sample records."""
    from hydra_repro.core.stats import compare_runs

    key = (id(ours), id(base), bench, noise)
    hit = _COMPARISONS.get(key)
    if hit is None or hit[0] is not ours or hit[1] is not base:
        a, c = ours.seed_samples(bench), base.seed_samples(bench)
        hit = _COMPARISONS[key] = (ours, base, compare_runs(bench, a, c, noise=noise) if a and c else None)
    return hit[2]


def starred(r: Mapping[str, Any]) -> bool:
    """The one meaning of a star in every table: this comparison's own 95% interval excludes zero."""
    return r["low"] > 0 or r["high"] < 0


def vs_baseline(
    ours: RunResult, base: RunResult, benches: Sequence[str], noise: Mapping[str, Any] | None = None
) -> list[str]:
    """Per benchmark "Δ [low, high] (MDD m)" of ours - base (`compare`), starred when the 95% interval excludes zero;
    ", test set only" after the MDD when a one-seed run had no seed spread to borrow; "—" without per-sample
    records."""
    cells = []
    for b in benches:
        if INFEASIBLE in (ours.status, base.status):
            cells.append(INFEASIBLE)
            continue
        r = compare(ours, base, b, (noise or {}).get(b))
        if r is None:
            cells.append(MISSING)
            continue
        star = "*" if starred(r) else ""
        only = "" if r["covers_training_noise"] else ", test set only"
        cells.append(
            f"{fmt(r['diff'], b, signed=True)}{star} [{fmt(r['low'], b)}, {fmt(r['high'], b)}] "
            f"(MDD {fmt(r['mdd'], b)}{only})"
        )
    return cells


INTERVAL_NOTE = (
    "'Δ vs LoRA [95% CI]' rows: our difference to uniform LoRA of the same size (means over each run's training "
    "seeds), its 95% interval and, in brackets, its minimum detectable difference. The interval is a Student-t "
    "interval whose variance adds two parts: training noise, each run's between-seed variance over its number of "
    "seeds (Welch-Satterthwaite degrees of freedom), and test-set sampling, a delete-one jackknife over the test "
    "units (MME images, MMBench question groups, other questions) of the paired difference, less the seeds' "
    "disagreement on single questions that the first part already holds (`hydra_repro/core/stats.py`, "
    "docs/statistics.md). In "
    "simulations of these six benchmarks at this size its 95% intervals cover the true difference 94-97% of the "
    "time with 1, 3 or 5 seeds per run. * marks an interval that excludes zero, in every table: two-sided p < 0.05 "
    "for that one comparison, not corrected for the many comparisons (claims.md corrects within each comparison). "
    "MDD: the true difference that this comparison would detect with 80% power, (t(0.975, df) + t(0.80, df)) × its "
    "standard error; a true difference below the MDD is missed more than 20% of the time, one of half the MDD most "
    "of the time."
)
BOOTSTRAP_NOTE = INTERVAL_NOTE  # the earlier name


def interval_notes(t: Table, inp: Inputs, compared: Sequence[RunResult]) -> None:
    """The interval note, and what the comparisons of one-seed runs among `compared` borrow."""
    t.note(INTERVAL_NOTE)
    singles = [r.run for r in compared if r.status == "ok" and not r.replicates and r.samples]
    if not singles:
        return
    noise = {b: n for b, n in seed_noise(inp).items() if n is not None}
    if noise:
        runs = max(n.runs for n in noise.values())
        sds = ", ".join(f"{inp.benchmarks[b]} {fmt(n.sd, b)}" for b, n in noise.items())
        dfs = sorted({f"{n.df:.0f}" for n in noise.values()})
        t.note(
            f"Runs trained with one seed ({', '.join(singles)}) have no seed spread of their own: their intervals "
            f"borrow the between-seed SD pooled over the {runs} runs with several seeds ({sds}; "
            f"{'/'.join(dfs)} degrees of freedom), which assumes their training noise is like those runs'. "
            "claims.md does not count the stars of such comparisons."
        )
    else:
        t.note(
            f"Runs trained with one seed ({', '.join(singles)}) and no run with several: those intervals cover "
            "test-set sampling only, not training noise (cells marked 'test set only')."
        )


def seeds_note(t: Table, inp: Inputs, runs: Sequence[str]) -> None:
    """Say how many training seeds stand behind the table's 'ours' cells."""
    counts = sorted({1 + len(inp.results[r].replicates) for r in runs if inp.results[r].status == "ok"})
    if counts == [1]:
        t.note("'ours' rows: one training seed per run (profile key `seeds: 1`): no interval over training noise.")
    elif counts:
        n = "/".join(map(str, counts))
        t.note(
            f"'ours' rows: mean ± half-width of the 95% Student-t interval over {n} training seeds per run (the run "
            "and its replicates, `hydra-repro replicate`; a HyDRA allocation is fixed across seeds, only training "
            "noise varies); Δ = mean − paper. With 3 seeds the t quantile is 4.30: the interval is wide by design."
        )


def _lead(inp: Inputs) -> str:
    return (
        f"Profile `{inp.profile}`. For each entry: the paper's value, ours, and Δ = ours − paper. "
        f"{'Mini- and smoke-scale' if inp.profile != 'paper' else 'Our'} numbers are not expected to match the "
        "paper's; compare directions and orderings."
    )


def search_best(inp: Inputs, role: str) -> dict[str, dict[str, Any]]:
    """The search's best fine / coarse schedule for `role` as {family: {name, result}} (empty without a search)."""
    found = inp.searches.get(role)
    if found is None:
        return {}
    out = {}
    for family, best in found["best"].items():
        name = best.get("candidate") or best.get("run")
        result = RunResult(str(best.get("run")), "ok", dict(best["scores"]), samples=best.get("samples"))
        out[family] = {"name": str(name), "result": result}
    return out
