"""The tables' 'Δ vs LoRA [95% CI]' cells, read by column, against values computed here from made-up per-sample
records; the claims page's Holm counting and its MDD verdicts."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import t as student_t

from hydra_repro.config import load_yaml
from hydra_repro.report import cells, claims, inputs, render

PAPER_VALUES = Path(__file__).resolve().parents[1] / "experiments" / "paper_values.yaml"
BENCHES = {"gqa": "GQA", "mmbench": "MMB", "mme": "MME"}
CELL = re.compile(r"^([+-]\d+\.\d+)(\*?) \[(-?\d+\.\d+), (-?\d+\.\d+)\] \(MDD (\d+\.\d+)\)$")
MME_CATS, MME_IMAGES = ("color", "count", "OCR"), 12


# --- made-up runs: a 0/1 answer matrix per seed and benchmark -------------------------------------------------


def answers(rng: np.random.Generator, seeds: int, skill: float) -> dict[str, np.ndarray]:
    """(seeds, units[, questions per unit]) of right answers: GQA 90 questions, MMBench 30 groups (a group's
    circular hit), MME 3 categories x 12 images x 2 questions; a per-seed shift of skill."""
    shift = rng.normal(0, 0.08, size=(seeds, 1))
    p = lambda n: np.clip(np.linspace(0.15, 0.95, n)[None, :] + skill + shift, 0, 1)  # noqa: E731
    return {
        "gqa": (rng.random((seeds, 90)) < p(90)).astype(float),
        "mmbench": (rng.random((seeds, 30)) < p(30)).astype(float),
        "mme": (rng.random((seeds, 3 * MME_IMAGES, 2)) < p(3 * MME_IMAGES)[..., None]).astype(float),
    }


def records(bench: str, x: np.ndarray) -> list[dict]:
    """One seed's records in `evaluate`'s layout."""
    if bench == "gqa":
        return [{"doc_id": u, "unit": u, "score": v} for u, v in enumerate(x)]
    if bench == "mmbench":  # four rotations per group, each carrying the group's circular score
        return [{"doc_id": 4 * u + k, "unit": u, "score": v} for u, v in enumerate(x) for k in range(4)]
    return [
        {"doc_id": 2 * u + k, "unit": f"img{u}", "category": MME_CATS[u // MME_IMAGES], "score": x[u, k]}
        for u in range(len(x))
        for k in range(2)
    ]


def run(name: str, x: dict[str, np.ndarray]) -> inputs.RunResult:
    seeds = [
        inputs.RunResult(
            f"{name}_s{s}",
            "ok",
            {b: headline(b, x[b][s]) for b in BENCHES},
            samples={b: records(b, x[b][s]) for b in BENCHES},
        )
        for s in range(len(x["gqa"]))
    ]
    return inputs.RunResult(name, "ok", seeds[0].headline, samples=seeds[0].samples, replicates=seeds[1:])


# --- the reference, written without hydra_repro.core.stats ------------------------------------------------------


def headline(bench: str, x: np.ndarray) -> float:
    """GQA / MMBench: mean in %; MME: per category 100 * (mean of questions + share of images with both right)."""
    if bench != "mme":
        return 100 * float(np.mean(x))
    cats = np.arange(len(x)) // MME_IMAGES
    return float(sum(100 * x[cats == c].mean() + 100 * x[cats == c].all(axis=1).mean() for c in set(cats)))


def drop(bench: str, x: np.ndarray, u: int) -> float:
    """The headline without unit u, recomputed from scratch (MME keeps each unit's category)."""
    keep = np.arange(len(x)) != u
    if bench != "mme":
        return headline(bench, x[keep])
    cats = (np.arange(len(x)) // MME_IMAGES)[keep]
    y = x[keep]
    return float(sum(100 * y[cats == c].mean() + 100 * y[cats == c].all(axis=1).mean() for c in set(cats)))


def jack(values: np.ndarray) -> float:
    n = len(values)
    return (n - 1) / n * float(((values - values.mean()) ** 2).sum())


def reference(bench: str, xa: np.ndarray, xb: np.ndarray, pooled: tuple[float, float, float] | None = None):
    """(diff, low, high, mdd): seed part s^2 / n per run (pooled sd^2 for a one-seed run), test part = jackknife of
    the paired seed-mean difference less each run's per-question seed disagreement; Welch-Satterthwaite df."""
    units = len(xa[0])
    theta = [np.array([headline(bench, s) for s in x]) for x in (xa, xb)]
    loo = [np.array([[drop(bench, s, u) for u in range(units)] for s in x]) for x in (xa, xb)]
    parts, within, borrowed = [], 0.0, 0
    for th, lo in zip(theta, loo):
        n = len(th)
        if n >= 2:
            parts.append((th.var(ddof=1) / n, n - 1))
            w = n / (n - 1) * (np.mean([jack(row) for row in lo]) - jack(lo.mean(axis=0)))
            within += max(w, 0.0) / n
        else:
            within += pooled[1]
            borrowed += 1
    if borrowed:  # both one-seed sides borrow the same estimate: one component
        parts.append((borrowed * pooled[0] ** 2, pooled[2]))
    var = sum(v for v, _ in parts) + max(0.0, jack(loo[0].mean(axis=0) - loo[1].mean(axis=0)) - within)
    df = var**2 / sum(v**2 / k for v, k in parts)
    se, diff = var**0.5, theta[0].mean() - theta[1].mean()
    q = student_t.ppf(0.975, df)
    return diff, diff - q * se, diff + q * se, (q + student_t.ppf(0.8, df)) * se


# --- the cells, rendered in a table and read back by column -----------------------------------------------------


def rendered(rows: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """{row label: {column header: cell}} of the Markdown the tables stage would write."""
    t = render.Table("t", "t", ["run", "value", *BENCHES.values()])
    for label, row in rows.items():
        t.add([[label, "Δ vs LoRA [95% CI]", *row]])
    lines = [ln for ln in render.render_markdown(t, "mini").splitlines() if ln.startswith("|")]
    head, body = lines[0], lines[2:]
    split = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]  # noqa: E731
    return {split(ln)[0]: dict(zip(split(head), split(ln))) for ln in body}


@pytest.fixture(scope="module")
def runs():
    rng = np.random.default_rng(11)
    x = {"hydra": answers(rng, 3, 0.10), "lora": answers(rng, 3, 0.0), "single": answers(rng, 1, 0.05)}
    x |= {f"pool{k}": answers(rng, 3, 0.0) for k in range(3)}
    return x, {name: run(name, xx) for name, xx in x.items()}


def test_three_seed_cells_match_the_reference_column_by_column(runs):
    x, r = runs
    table = rendered({"hydra": cells.vs_baseline(r["hydra"], r["lora"], list(BENCHES))})
    for bench, label in BENCHES.items():
        m = CELL.match(table["hydra"][label])
        assert m, table["hydra"][label]
        diff, low, high, mdd = reference(bench, x["hydra"][bench], x["lora"][bench])
        tol = 0.051 if bench == "mme" else 0.0051
        got = [float(m.group(k)) for k in (1, 3, 4, 5)]
        assert got == pytest.approx([diff, low, high, mdd], abs=tol), (label, got)
        assert (m.group(2) == "*") == (low > 0 or high < 0), label


def test_a_one_seed_run_borrows_the_seed_spread_pooled_over_the_others(runs):
    x, r = runs
    inp = SimpleNamespace(benchmarks=BENCHES, results={k: v for k, v in r.items() if k != "single"})
    noise = cells.seed_noise(inp)
    table = rendered({"single": cells.vs_baseline(r["single"], r["lora"], list(BENCHES), noise)})
    for bench, label in BENCHES.items():
        multi = [x[k][bench] for k in x if k != "single"]  # 5 runs of 3 seeds: 10 df
        heads = [np.array([headline(bench, s) for s in xx]) for xx in multi]
        sd = (sum(((h - h.mean()) ** 2).sum() for h in heads) / 10) ** 0.5
        within = []
        for xx in multi:
            loo = np.array([[drop(bench, s, u) for u in range(len(xx[0]))] for s in xx])
            within.append(max(1.5 * (np.mean([jack(row) for row in loo]) - jack(loo.mean(axis=0))), 0.0))
        assert noise[bench].sd == pytest.approx(sd) and noise[bench].df == 10
        diff, low, high, mdd = reference(bench, x["single"][bench], x["lora"][bench], (sd, np.mean(within), 10))
        m = CELL.match(table["single"][label])
        assert m, table["single"][label]
        tol = 0.051 if bench == "mme" else 0.0051
        assert [float(m.group(k)) for k in (1, 3, 4, 5)] == pytest.approx([diff, low, high, mdd], abs=tol), label


def test_without_anything_to_borrow_a_one_seed_cell_says_test_set_only(runs):
    _, r = runs
    one = inputs.RunResult("one", "ok", r["single"].headline, samples=r["single"].samples)
    base = inputs.RunResult("base", "ok", r["lora"].headline, samples=r["lora"].samples)
    cell = cells.vs_baseline(one, base, ["gqa"])[0]
    assert cell.endswith(", test set only)") and "[" in cell
    notes = render.Table("t", "t", ["a"])
    cells.interval_notes(notes, SimpleNamespace(benchmarks=BENCHES, results={"one": one, "base": base}), [one])
    assert "test-set sampling only" in notes.notes[-1] and notes.notes[0] == cells.INTERVAL_NOTE


def test_infeasible_and_missing_cells():
    ok = inputs.RunResult("a", "ok", {"gqa": 1.0})
    assert cells.vs_baseline(inputs.RunResult("b", "infeasible", None, "too big"), ok, ["gqa"]) == ["infeasible"]
    assert cells.vs_baseline(ok, ok, ["gqa"]) == ["—"]


# --- claims.md ---------------------------------------------------------------------------------------------------


def result(diff: float, p: float) -> dict:
    return {"diff": diff, "low": diff - 1, "high": diff + 1, "p": p, "mdd": 2.0, "se": 0.5}


def test_holm_counts_within_one_comparison():
    # present p: .001 (+), .004 (-), .03, .04, .2; Holm over 5: .001 < .01, .004 < .0125, .03 > .0167: stop
    res = [result(1, 0.001), result(-1, 0.004), result(1, 0.03), result(1, 0.04), result(1, 0.2), None]
    assert claims._sig(res) == (1, 1, 4)
    # every p < 0.05 would be starred, but only 2 survive Holm; the same p-values alone in a family of 1 do
    assert claims._sig([result(1, 0.03)]) == (1, 0, 0)


def test_a_result_without_p_gets_it_from_its_interval():
    # diff 1 with [0.5, 1.5]: se = 1 / (2 * 1.959964), z = 3.92, p = 8.9e-5
    assert claims._p_value({"diff": 1.0, "low": 0.5, "high": 1.5}) == pytest.approx(8.86e-5, rel=0.01)


def test_paper_gains_are_the_papers_own_differences():
    inp = SimpleNamespace(paper=load_yaml(PAPER_VALUES))
    gain = claims._paper_gain(inp, "table_3", "small/hydra_coarse", "small/lora")
    assert gain["mme"] == pytest.approx(1200.91 - 1147.0) and gain["gqa"] == pytest.approx(55.33 - 55.28)
    config1 = claims._paper_gain(inp, "table_4", "Config1", "128")
    assert config1["mme"] == pytest.approx(1162.3 - 1147.0) and config1["mmbench"] == pytest.approx(45.53 - 46.56)
    assert claims._paper_gain(inp, "table_3", "small/hydra_fine", "small/none") is None


def test_inconclusive_verdicts_say_whether_the_paper_effect_was_visible(monkeypatch):
    a, b = inputs.RunResult("a", "ok", {"mme": 1.0}), inputs.RunResult("b", "ok", {"mme": 1.0})
    monkeypatch.setattr(claims, "compare", lambda x, y, bench, noise=None: result(0.5, 0.5) | {"mdd": 3.0})
    assert claims._power(a, b, ["mme", "gqa"], {}, {"mme": 4.0, "gqa": 2.0}) == (1, 2)
    assert claims._power(a, b, ["mme"], {}, None) == (0, 0)
    shown = SimpleNamespace(benchmarks={"mme": "MME", "gqa": "GQA"})
    assert claims._mdd_text(shown, a, b, ["mme", "gqa"], {}) == "; MDD MME 3.0, GQA 3.00"  # every evidence says it
    # both runs score alike on every question: no spread, so no MDD to state or to set against the paper's gain
    monkeypatch.setattr(claims, "compare", lambda x, y, bench, noise=None: result(0.0, 1.0) | {"mdd": 0.0, "se": 0.0})
    assert claims._mdd_text(shown, a, b, ["mme"], {}) == ""
    assert claims._power(a, b, ["mme"], {}, {"mme": 4.0}) == (0, 0)
    q = claims._qualify
    assert q("inconclusive", [(2, 2), (3, 3)], True).startswith("inconclusive (could have been seen")
    assert q("inconclusive", [(0, 6)], True).startswith("inconclusive (this test could not see it")
    assert "in 1 of 6" in q("inconclusive", [(1, 6)], True)
    assert "reports no such difference" in q("inconclusive", [], False)
    assert q("reproduced", [(0, 6)], True) == "reproduced"
    for verdict in (q("inconclusive", [(0, 6)], True), q("inconclusive", [(2, 6)], True)):  # read as in test_tables
        assert verdict.split(" (")[0] == "inconclusive"


def test_claims_page_states_the_family_and_the_star():
    lora = inputs.RunResult("lora_small", "ok", {"gqa": 1.0}, replicates=[inputs.RunResult("s", "ok", {"gqa": 2.0})])
    inp = SimpleNamespace(profile="mini", results={"lora_small": lora}, benchmarks={"gqa": "GQA"})
    page = claims._claims_page(inp, ["gqa"], [])
    assert "Holm's step-down correction" in page and "its benchmarks are one family" in page
    assert "A star in the tables means the same everywhere" in page and "bootstrap" not in page
