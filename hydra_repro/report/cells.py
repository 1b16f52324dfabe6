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


_BOOTSTRAPS: dict[tuple[str, str, str], dict[str, float] | None] = {}


def compare(ours: RunResult, base: RunResult, bench: str) -> dict[str, float] | None:
    """Paired bootstrap of ours - base on one benchmark (memoised per run pair); None without per-sample records."""
    from hydra_repro.core.stats import paired_bootstrap_seeds

    key = (ours.run, base.run, bench)
    if key not in _BOOTSTRAPS:
        a, c = ours.seed_samples(bench), base.seed_samples(bench)
        _BOOTSTRAPS[key] = paired_bootstrap_seeds(bench, a, c) if a and c else None
    return _BOOTSTRAPS[key]


def vs_baseline(ours: RunResult, base: RunResult, benches: Sequence[str]) -> list[str]:
    """Per benchmark "Δ [low, high]" of ours - base by a paired bootstrap over the test questions
    (`core.stats`), starred when the 95% interval excludes zero; "—" without per-sample records."""
    cells = []
    for b in benches:
        r = compare(ours, base, b)
        if r is None:
            cells.append(MISSING)
            continue
        star = "*" if r["low"] > 0 or r["high"] < 0 else ""
        cells.append(f"{fmt(r['diff'], b, signed=True)}{star} [{fmt(r['low'], b)}, {fmt(r['high'], b)}]")
    return cells


BOOTSTRAP_NOTE = (
    "'Δ vs LoRA [95% CI]' rows: our difference to uniform LoRA of the same size with a paired bootstrap interval over "
    "the test questions (2,000 resamples of MME images, MMBench question groups, other questions; "
    "`hydra_repro/core/stats.py`); * marks an interval that excludes zero. With several training seeds the bootstrap "
    "has "
    "two levels: each resample also draws each run's seeds with replacement and compares the means over the drawn "
    "seeds, so the interval covers training noise and test-set sampling together; the ± of the 'ours' rows is the "
    "t-interval over seeds alone."
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
    if inp.search is None or inp.search.get("role") != role:
        return {}
    out = {}
    for family, best in inp.search["best"].items():
        name = best.get("candidate") or best.get("run")
        result = RunResult(str(best.get("run")), "ok", dict(best["scores"]), samples=best.get("samples"))
        out[family] = {"name": str(name), "result": result}
    return out
