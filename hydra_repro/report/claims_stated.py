"""The paper's run-against-run statements (Tables II, IV, VII and the headline gains), each judged on the benchmarks
and in the direction the paper's text names, with the rule written beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra_repro.report.cells import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, UNTESTABLE, compare, search_best
from hydra_repro.report.inputs import TABLE_RUNS, Inputs, RunResult
from hydra_repro.report.numbers import fmt
from hydra_repro.report.search_study import study

Row = tuple[str, str, str, str]


@dataclass(frozen=True)
class Stated:
    """`ours` does better than `base` on `better` and worse on `worse`, as the paper's text says (`where`)."""

    claim: str
    where: str
    ours: str  # the paper's name of the entry: a key of TABLE_RUNS[table] (or "128" / "256" / "Case" of Table II)
    base: str
    better: tuple[str, ...] = ()
    worse: tuple[str, ...] = ()
    table: str = "table_4"


B6 = ("mme", "gqa", "textvqa", "pope", "mmbench", "sqa_img")

STATED = (
    # Table II: "models trained with increasing rank values indeed outperform those trained with fixed rank values";
    # named: the benchmarks where the paper's own Table II rises (docs/discrepancies.md)
    Stated("Case (increasing ranks) beats uniform 128", "Table II, Sec. III", "Case", "128",
           better=("sqa_img", "gqa", "textvqa", "mmbench", "mme"), table="table_2"),
    Stated("Case beats uniform 256 (which spends more rank)", "Table II, Sec. III", "Case", "256",
           better=("gqa", "textvqa", "mmbench", "mme"), table="table_2"),
    Stated("Config2 (twice Config1's rank) is worse than Config1 on GQA, VQA^T, POPE, SQA^I", "Table IV text",
           "Config2", "Config1", worse=("gqa", "textvqa", "pope", "sqa_img")),
    Stated("Config3 beats Config2 on MME, GQA, VQA^T, MMB", "Table IV text", "Config3", "Config2",
           better=("mme", "gqa", "textvqa", "mmbench")),
    Stated("Config4 (HyDRA) beats Config3 on MME, VQA^T, POPE, MMB", "Table IV text", "Config4", "Config3",
           better=("mme", "textvqa", "pope", "mmbench")),
    Stated("Setting5 (Up + 2Δd) is worse than Setting1 on MME, GQA, POPE, MMB", "Table IV text", "Setting5",
           "Setting1", worse=("mme", "gqa", "pope", "mmbench")),
    Stated("Setting3 (Up not raised) is worse than Setting1 on all but SQA^I", "Table IV text", "Setting3",
           "Setting1", worse=("mme", "gqa", "textvqa", "pope", "mmbench")),
    Stated("Setting4 is worse than Setting1 on MME, GQA, VQA^T", "Table IV text", "Setting4", "Setting1",
           worse=("mme", "gqa", "textvqa")),
    Stated("Setting2 (Down raised) is worse than Setting1 on MME, VQA^T, MMB and better on GQA, POPE, SQA^I",
           "Table IV text", "Setting2", "Setting1", better=("gqa", "pope", "sqa_img"),
           worse=("mme", "textvqa", "mmbench")),
    # "decreasing the value of Δd, when N = 17, results in poorer performance on the benchmarks"; named: where the
    # paper's own Table VII drops (GQA rises there)
    Stated("At N = 17, Δd = 1 is worse than Δd = 2", "Table VII text", "17/1", "17/2",
           worse=("mme", "textvqa", "pope", "mmbench", "sqa_img"), table="table_7"),
)  # fmt: skip


# The headline relative gains: (claim, where, model role, HyDRA variant, benchmark, the paper's gain in %)
HEADLINE_GAINS = (
    ("HyDRA coarse beats LoRA by 4.7% on MME (1.7B)", "Sec. IV-B, abstract", "small", "hydra_coarse", "mme", 4.7),
    ("HyDRA fine beats LoRA by 4.1% on MMB (1.7B)", "Sec. I, IV-B", "small", "hydra_fine", "mmbench", 4.1),
    ("HyDRA coarse beats LoRA by 3.4% on MME (3B)", "Sec. IV-B", "large", "hydra_coarse", "mme", 3.4),
    ("HyDRA coarse beats LoRA by 3% on MMB (3B)", "Sec. IV-B", "large", "hydra_coarse", "mmbench", 3.0),
)


def _run(inp: Inputs, table: str, name: str) -> RunResult | None:
    run = TABLE_RUNS[table].get(name)
    return inp.results.get(run) if run else None


def paper_values(inp: Inputs, table: str, name: str) -> dict[str, float] | None:
    """The paper's numbers of one entry: Table II by rank, Table IV by name, Table VII as "N/Δd"."""
    t = inp.paper.get(table, {})
    if table == "table_2":
        return next((r["values"] for r in t.get("rows", []) if str(r["rank"]) == name), None)
    if table == "table_7":
        return next((e["values"] for e in t.get("entries", []) if f"{e['stages']}/{e['delta_d']}" == name), None)
    return next((e["values"] for e in t.get("entries", []) if e["name"] == name), None)


def judge(results: Mapping[str, dict[str, Any] | None], direction: Mapping[str, int]) -> tuple[int, int, int]:
    """(agree, against, unclear) over the named benchmarks, one Holm family: a benchmark agrees when its p-value
    survives Holm's correction with the difference in the stated direction, is against when it survives in the other
    direction, and is unclear otherwise (or without a result)."""
    from hydra_repro.core.stats import holm

    present = {b: r for b, r in results.items() if r is not None}
    rejected = dict(zip(present, holm([float(r["p"]) for r in present.values()]), strict=True))
    agree = sum(1 for b, r in present.items() if rejected[b] and r["diff"] * direction[b] > 0)
    against = sum(1 for b, r in present.items() if rejected[b] and r["diff"] * direction[b] < 0)
    return agree, against, len(direction) - agree - against


def verdict_of(agree: int, against: int, n: int) -> str:
    if against:
        return NOT_REPRODUCED
    return REPRODUCED if agree == n else INCONCLUSIVE


def _cell(r: Mapping[str, Any] | None, b: str, name: str) -> str:
    if r is None:
        return f"{name} —"
    if r["se"] == 0:
        return f"{name} {fmt(r['diff'], b, signed=True)} (no spread: every seed of both runs scores alike)"
    return f"{name} {fmt(r['diff'], b, signed=True)} [{fmt(r['low'], b)}, {fmt(r['high'], b)}] (MDD {fmt(r['mdd'], b)})"


def stated_row(inp: Inputs, s: Stated, noise: Mapping[str, Any]) -> Row:
    """One statement of the paper: the differences on its named benchmarks (interval, MDD), Holm over them."""
    ours, base = _run(inp, s.table, s.ours), _run(inp, s.table, s.base)
    if ours is None or base is None or ours.status != "ok" or base.status != "ok":
        why = "infeasible or missing at this scale" if ours is not None and base is not None else "no such run"
        return s.claim, s.where, why, UNTESTABLE
    direction = {b: 1 for b in s.better} | {b: -1 for b in s.worse}
    direction = {b: d for b, d in direction.items() if b in inp.benchmarks}
    results = {b: compare(ours, base, b, noise.get(b)) for b in direction}
    agree, against, unclear = judge(results, direction)
    one_seed = not (ours.replicates and base.replicates)
    cells = "; ".join(_cell(r, b, inp.benchmarks[b]) for b, r in results.items())
    evidence = f"{ours.run} − {base.run}: {cells}. {agree} as stated, {against} against, {unclear} unclear"
    pv_a, pv_b = paper_values(inp, s.table, s.ours), paper_values(inp, s.table, s.base)
    verdict = verdict_of(agree, against, len(direction))
    if one_seed and verdict != INCONCLUSIVE:
        evidence += " (not counted: a run with one training seed borrows the pooled seed spread)"
        verdict = INCONCLUSIVE
    if verdict == INCONCLUSIVE and pv_a and pv_b:
        sized = {b: r for b, r in results.items() if r is not None and r["se"] > 0}  # no spread: no MDD
        seen = sum(1 for b, r in sized.items() if abs(pv_a[b] - pv_b[b]) >= r["mdd"])
        verdict += f" (the paper's own difference ≥ our MDD on {seen} of {len(sized)})"
    return s.claim, s.where, evidence, verdict


def headline_row(inp: Inputs, claim: str, where: str, role: str, variant: str, b: str, paper_gain: float,
                 noise: Mapping[str, Any]) -> Row:  # fmt: skip
    """A relative gain of the paper: ours - LoRA over LoRA's mean, with the interval scaled the same way (LoRA's
    mean taken as fixed). Reproduced when the gain's interval lies above zero, not reproduced when below."""
    hydra, lora = inp.results.get(f"{variant}_{role}"), inp.results.get(f"lora_{role}")
    if hydra is None or lora is None or hydra.status != "ok" or lora.status != "ok":
        return claim, where, "infeasible or missing at this scale", UNTESTABLE
    r = compare(hydra, lora, b, noise.get(b))
    base = lora.value(b)
    if r is None or not base:
        return claim, where, "no per-sample records", INCONCLUSIVE
    gain, low, high, mdd = (100 * r[k] / base for k in ("diff", "low", "high", "mdd"))
    inside = "inside" if low <= paper_gain <= high else "outside"
    evidence = (
        f"{hydra.run} vs {lora.run} on {inp.benchmarks[b]}: {gain:+.1f}% [{low:+.1f}%, {high:+.1f}%] "
        f"(MDD {mdd:.1f}%); the paper's {paper_gain:g}% is {inside} our interval"
    )
    if low > 0:
        verdict = REPRODUCED
    elif high < 0:
        verdict = NOT_REPRODUCED
    else:
        can = "could have been seen" if paper_gain >= mdd else "this test could not see it"
        verdict = f"{INCONCLUSIVE} ({can}: the paper's {paper_gain:g}% vs our MDD {mdd:.1f}%)"
    if not (hydra.replicates and lora.replicates) and not verdict.startswith(INCONCLUSIVE):
        evidence += " (not counted: one training seed)"
        verdict = INCONCLUSIVE
    return claim, where, evidence, verdict


def setting1_best_row(inp: Inputs, noise: Mapping[str, Any]) -> Row:
    """ "Setting1 produces the best overall results": against each other setting, Holm over the six benchmarks.
    Reproduced when Setting1 is better on some benchmark and worse on none against every other setting; not
    reproduced when another setting is better on some benchmark and worse on none."""
    claim, where = "Setting1 gives the best overall results of the fine-grained settings", "Table IV text"
    s1 = _run(inp, "table_4", "Setting1")
    if s1 is None or s1.status != "ok":
        return claim, where, "no Setting1 result", UNTESTABLE
    benches = [b for b in B6 if b in inp.benchmarks]
    ev, wins, losses = [], 0, 0
    for k in range(2, 6):
        other = _run(inp, "table_4", f"Setting{k}")
        if other is None or other.status != "ok":
            continue
        agree, against, _ = judge({b: compare(s1, other, b, noise.get(b)) for b in benches}, dict.fromkeys(benches, 1))
        ev.append(f"vs Setting{k}: {agree} better, {against} worse")
        wins += agree > 0 and against == 0
        losses += against > 0 and agree == 0
    one_seed = not s1.replicates
    if losses and not one_seed:
        verdict = NOT_REPRODUCED
    elif wins == len(ev) and ev and not one_seed:
        verdict = REPRODUCED
    else:
        verdict = INCONCLUSIVE + (" (one training seed per setting: not counted)" if one_seed else "")
    return claim, where, "; ".join(ev) or "no other setting", verdict


def stage_count_row(inp: Inputs, noise: Mapping[str, Any]) -> Row:
    """ "Variations in stage sizes do not lead to a significant pattern": no test can show an absence; we report
    whether the two extremes (N = 7 and N = 17 at Δd = 2) differ anywhere, with the MDDs that bound what was seen."""
    claim, where = "The number of stages N shows no pattern", "Table VII text"
    a, b = _run(inp, "table_7", "17/2"), _run(inp, "table_7", "7/2")
    if a is None or b is None or a.status != "ok" or b.status != "ok":
        return claim, where, "N = 7 or N = 17 infeasible or missing at this scale", UNTESTABLE
    benches = [x for x in B6 if x in inp.benchmarks]
    results = {x: compare(a, b, x, noise.get(x)) for x in benches}
    agree, against, _ = judge(results, dict.fromkeys(benches, 1))
    cells = "; ".join(_cell(r, x, inp.benchmarks[x]) for x, r in results.items())
    if agree or against:
        return claim, where, f"17/2 − 7/2: {cells}", f"{NOT_REPRODUCED} (N = 17 and N = 7 differ; one seed each)"
    return (
        claim,
        where,
        f"17/2 − 7/2: {cells}",
        f"{INCONCLUSIVE} (no difference found; it could hide one below the MDD)",
    )


def search_rows(inp: Inputs, noise: Mapping[str, Any]) -> list[Row]:
    """Per role: Z* against the initial HyDRA schedule of its family, and the guided search's best against random
    search's at equal budgets over search seeds (search_study)."""
    claim = "The performance model finds a better Z* than the initial HyDRA schedule"
    guided = "Guided search finds better schedules than random search at the same number of trainings"
    if not inp.searches:
        return [(claim, "Sec. III-D, Table III", "no search result", INCONCLUSIVE)]
    ev, studies = [], []
    benches = list(inp.benchmarks)
    for role in inp.searches:
        for family, best in search_best(inp, role).items():
            start = inp.results.get(f"hydra_{family}_{role}")
            if start is None or start.status != "ok":
                continue
            results = {b: compare(best["result"], start, b, noise.get(b)) for b in benches}
            agree, against, unclear = judge(results, dict.fromkeys(benches, 1))
            tally = f"{agree} better, {against} worse, {unclear} unclear"
            ev.append(f"{role}: Z* {family} ({best['name']}) vs {start.run}: {tally}")
        studies.append(study(inp.searches[role]))
    # Z* is trained with one training seed: its interval borrows the pooled seed spread
    rows = [(claim, "Sec. III-D, Table III", "; ".join(ev) or "no Z*", f"{INCONCLUSIVE} (one training seed)")]
    rows += [
        (f"{guided} ({s.role} model)", "Sec. III-B (beyond the paper)", s.evidence(), s.verdict()) for s in studies
    ]
    return rows


def stated_rows(inp: Inputs, noise: Mapping[str, Any]) -> list[Row]:
    rows = [stated_row(inp, s, noise) for s in STATED]
    rows.insert(9, setting1_best_row(inp, noise))
    rows.append(stage_count_row(inp, noise))
    rows += [headline_row(inp, *h, noise) for h in HEADLINE_GAINS]
    rows += search_rows(inp, noise)
    return rows


def summary(rows: Sequence[Row]) -> list[str]:
    """The claims page's opening matrix: claim × verdict (the verdict's first words)."""
    kinds = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, UNTESTABLE)
    # "not reproduced" first: its text ends in "reproduced"
    of = [next(k for k in (NOT_REPRODUCED, REPRODUCED, UNTESTABLE, INCONCLUSIVE) if v.startswith(k)) for *_, v in rows]
    out = ["| claim | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    out += [
        f"| {row[0]} | " + " | ".join("●" if k == kind else "" for k in kinds) + " |" for row, kind in zip(rows, of)
    ]
    out.append("| **total** | " + " | ".join(str(of.count(k)) for k in kinds) + " |")
    return out
