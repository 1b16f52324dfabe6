"""`calibration.md`: is this testbed informative? Per task and model size, uniform LoRA beside the task's floor (random
guessing, the best constant answer) and ceiling, its seed spread, and the smallest HyDRA-vs-LoRA difference the
comparison could detect, each checked against a stated criterion."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra_repro.core.baselines import chance_baseline, constant_baseline
from hydra_repro.report.cells import compare, seed_noise
from hydra_repro.report.inputs import MODEL_ROLES, Inputs, RunResult
from hydra_repro.report.numbers import MISSING, fmt
from hydra_repro.report.render import Table

CEILING = 0.95  # a task at or above 95% of its maximum has no room left to show a gain


@dataclass(frozen=True)
class Criterion:
    """What uniform LoRA must reach on one task for the testbed to be informative there."""

    floor: str  # "chance", "constant" or "zero": the baseline the margin is taken over
    margin: float  # points above that baseline (MME: per category)
    mdd_share: float | None = None  # the HyDRA-vs-LoRA MDD at most this share of the task's scale


CRITERIA = {
    "mme": Criterion("chance", 20.0, 0.05),  # 100 above random for five categories
    "mmbench": Criterion("zero", 10.0),
    "textvqa": Criterion("constant", 10.0, 0.03),
    "pope": Criterion("constant", 0.0, 0.03),  # plus accuracy >= 60 and a yes-ratio in [30, 70] (POPE_*)
    "gqa": Criterion("constant", 10.0, 0.03),
    "sqa_img": Criterion("chance", 10.0),
}
POPE_MIN_ACCURACY, POPE_YES_RATIO = 60.0, (30.0, 70.0)


def scale(bench: str, records: Sequence[dict[str, Any]]) -> float:
    """The headline's maximum: 200 per MME category, 100 otherwise."""
    return 200.0 * len({str(r.get("category")) for r in records}) if bench == "mme" else 100.0


def pope_answers(records: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(accuracy, yes-ratio) in %, with lmms-eval's parsing (the answer lower-cased and stripped)."""
    pred = [str(r["prediction"]).lower().strip() for r in records]
    gold = [str(r["target"]).lower().strip() for r in records]
    acc = 100.0 * sum(p == g for p, g in zip(pred, gold, strict=True)) / len(pred)
    return acc, 100.0 * sum(p == "yes" for p in pred) / len(pred)


def task_row(inp: Inputs, role: str, bench: str) -> tuple[list[str], list[str]]:
    """One task's cells and the criteria it fails (empty: informative)."""
    lora: RunResult = inp.results[f"lora_{role}"]
    seeds = lora.seed_samples(bench)
    name = inp.benchmarks[bench]
    if lora.status != "ok" or not seeds:
        why = "no per-sample records of uniform LoRA"
        return [role, name, *[MISSING] * 6, "no", why], [why]
    crit, records = CRITERIA[bench], seeds[0]
    values = lora.seed_values(bench)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    chance = chance_baseline(bench, records, inp.eval_choices.get(bench) if inp.eval_choices else None)
    constant, answer = constant_baseline(bench, records)
    top = scale(bench, records)
    floor = {"chance": chance, "constant": constant, "zero": 0.0}[crit.floor]
    cats = len({str(r.get("category")) for r in records}) if bench == "mme" else 1
    need = crit.margin * cats
    fails = []
    if floor is None:
        fails.append(f"its {crit.floor} baseline is unknown (no choice counts)")
    elif mean - floor < need:
        fails.append(f"{fmt(mean - floor, bench)} above {crit.floor} (needs {fmt(need, bench)})")
    if mean >= CEILING * top:
        fails.append(f"at ceiling (>= {CEILING:.0%} of {fmt(top, bench)})")
    if bench == "pope":
        accs = [pope_answers(s) for s in seeds]
        acc, yes = (sum(a[i] for a in accs) / len(accs) for i in (0, 1))
        if acc < POPE_MIN_ACCURACY:
            fails.append(f"accuracy {acc:.1f} < {POPE_MIN_ACCURACY:.0f}")
        if not POPE_YES_RATIO[0] <= yes <= POPE_YES_RATIO[1]:
            fails.append(f"yes-ratio {yes:.1f} outside {POPE_YES_RATIO[0]:.0f}-{POPE_YES_RATIO[1]:.0f}")
    mdds = []
    noise = seed_noise(inp).get(bench)
    for variant in ("coarse", "fine"):
        hydra = inp.results.get(f"hydra_{variant}_{role}")
        r = compare(hydra, lora, bench, noise) if hydra is not None and hydra.status == "ok" else None
        mdds.append(None if r is None or r["se"] == 0 else r["mdd"])  # se 0: both runs answer alike everywhere
    if crit.mdd_share is not None:
        limit = crit.mdd_share * top
        worst = max((m for m in mdds if m is not None), default=None)
        if worst is None:
            fails.append("no HyDRA-vs-LoRA comparison to size")
        elif worst > limit:
            fails.append(f"MDD {fmt(worst, bench)} > {fmt(limit, bench)}")
    cells = [
        role,
        name + (f" (accuracy {acc:.1f}, yes {yes:.1f}%)" if bench == "pope" else ""),
        f"{fmt(mean, bench)} ({len(values)} seeds)",
        MISSING if chance is None else fmt(chance, bench),
        f"{fmt(constant, bench)} ({answer!r})",
        MISSING if floor is None else f"{fmt(mean - floor, bench, signed=True)} vs {crit.floor}",
        fmt(sd, bench) if not math.isnan(sd) else MISSING,
        " / ".join(MISSING if m is None else fmt(m, bench) for m in mdds),
        "yes" if not fails else "no",
        "; ".join(fails) or "—",
    ]
    return cells, fails


def table_calibration(inp: Inputs) -> Table:
    t = Table(
        "calibration",
        "Is this testbed informative? Uniform LoRA against each task's floor, ceiling and detectable difference",
        [
            "model",
            "task",
            "uniform LoRA",
            "random guessing",
            "best constant answer",
            "margin",
            "seed SD",
            "MDD HyDRA coarse / fine vs LoRA",
            "informative",
            "why not",
        ],
        align="llrrrrrrll",
    )
    t.lead = (
        f"Profile `{inp.profile}`. A rank-allocation effect can show on a task only if uniform LoRA is off the task's "
        "floor (random guessing, or the best single answer given to every question) and off its ceiling, and only if "
        "the HyDRA-vs-LoRA comparison could detect a difference of the size sought (the paper's HyDRA gains are 1-5%)."
    )
    informative = 0
    for role in MODEL_ROLES:
        rows = [task_row(inp, role, b) for b in inp.benchmarks]
        informative += sum(not fails for _, fails in rows)
        t.add([cells for cells, _ in rows], rule=True)
    t.note(
        "Criteria (uniform LoRA, mean over its seeds, on the headline scale of the tables): MME at least 20 points per "
        "category above random guessing (100 for five categories) with a HyDRA-vs-LoRA MDD of at most 5% of its "
        "maximum (200 per category); MMBench CircularEval at least 10; ScienceQA-IMG at least 10 above chance; GQA and "
        "TextVQA at least 10 above the best constant answer, MDD at most 3; POPE accuracy at least "
        f"{POPE_MIN_ACCURACY:.0f} with a yes-ratio of {POPE_YES_RATIO[0]:.0f}-{POPE_YES_RATIO[1]:.0f}% "
        "(F1 alone cannot show this: always answering yes scores 66.7 at half positives), MDD at most 3; every task "
        "below 95% of its maximum."
    )
    t.note(
        "Random guessing and constant answers are computed on the questions uniform LoRA answered "
        "(`hydra_repro/core/baselines.py`): MME each answer right with probability 1/2; POPE yes with probability "
        "1/2 (F1 at expected counts); MMBench (1/n)^n per question group of n rotations; ScienceQA 1/choices; GQA and "
        "TextVQA an answer drawn uniformly from the test set's distinct answers. Margin: uniform LoRA minus the "
        "criterion's baseline."
    )
    t.note(
        "Seed SD: the between-seed standard deviation of uniform LoRA's headline. MDD: the true HyDRA - LoRA "
        "difference the tables' interval (seed and test-set variance, docs/statistics.md) detects with 80% power at "
        "the 5% level; a smaller true effect is missed more than 20% of the time. — where the two runs have no "
        "spread to measure (every seed of both gives the same score on every question, e.g. a constant answer)."
    )
    t.note(f"{informative} of {len(MODEL_ROLES) * len(inp.benchmarks)} task-size pairs meet every criterion.")
    return t
