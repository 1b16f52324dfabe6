"""Numbers as the tables print them: formatting, deltas and gains against the paper, direction agreement, rank
correlations, layer ranges and stage texts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "—"  # no value: a result file absent under --allow-missing, or a quantity with no counterpart
DECIMALS = {"mme": 1}  # every other benchmark: 2


def fmt(value: float | None, bench: str, signed: bool = False) -> str:
    """Our numbers and deltas: MME to 1 decimal, the other benchmarks to 2."""
    if value is None:
        return MISSING
    return f"{value:{'+' if signed else ''}.{DECIMALS.get(bench, 2)}f}"


def fmt_paper(value: float | None, bench: str = "") -> str:
    """The paper's numbers exactly as transcribed, padded to our format (1147.0, 1200.88, 52.20); null as "-"."""
    if value is None:
        return "-"
    text = repr(float(value))
    shown = len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0
    return f"{value:.{max(DECIMALS.get(bench, 2), shown)}f}"


def fmt_pct(x: float | None) -> str:
    return MISSING if x is None else f"{100 * x:+.2f}%"


def delta(paper: float | None, ours: float | None, bench: str) -> str:
    return MISSING if paper is None or ours is None else fmt(ours - paper, bench, signed=True)


def gain(a: float | None, b: float | None) -> float | None:
    """Relative gain of a over b (a / b - 1); None if either is absent."""
    return None if a is None or b is None or b == 0 else a / b - 1


def direction(a: float, b: float) -> str:
    return ">" if a > b else "<" if a < b else "="


def direction_agreement(paper_a: float, paper_b: float, ours_a: float | None, ours_b: float | None) -> str:
    """Does our comparison of a vs b point the same way as the paper's? ("agree (>)" / "differs (paper >, ours <)")."""
    if ours_a is None or ours_b is None:
        return MISSING
    p, o = direction(paper_a, paper_b), direction(ours_a, ours_b)
    return f"agree ({p})" if p == o else f"differs (paper {p}, ours {o})"


def spearman(y: Sequence[float]) -> float:
    """Spearman rank correlation of y with its index (ties get average ranks)."""
    import pandas as pd

    s = pd.Series(list(y), dtype=float)
    return float(s.rank().corr(pd.Series(range(len(s)), dtype=float).rank()))


def layer_runs(ranks: Sequence[int]) -> list[tuple[int, int, int]]:
    """Contiguous runs of equal rank as (first layer, last layer, rank), 1-based."""
    out: list[tuple[int, int, int]] = []
    for i, r in enumerate(ranks, start=1):
        if out and out[-1][2] == r:
            out[-1] = (out[-1][0], i, r)
        else:
            out.append((i, i, r))
    return out


def ranges(layers: Sequence[int]) -> str:
    """1-based layer numbers -> "1-8, 10"."""
    parts: list[list[int]] = []
    for n in sorted(layers):
        if parts and n == parts[-1][1] + 1:
            parts[-1][1] = n
        else:
            parts.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in parts)


def stages_text(stage_layers: Sequence[Sequence[int]], stage_ranks: Sequence[int]) -> tuple[str, str]:
    """The paper's Table V notation: ("[1-8, 9-12, 13-24]", "(124, 126, 131)"); a non-contiguous stage in braces."""
    parts = [ranges(ls) if "," not in ranges(ls) else "{" + ranges(ls) + "}" for ls in stage_layers]
    return "[" + ", ".join(parts) + "]", "(" + ", ".join(str(r) for r in stage_ranks) + ")"


def coarse_layer_ranks(plan: Mapping[str, Any]) -> list[int] | None:
    """Per-layer ranks of a schedule whose components share one rank per layer (None if they differ)."""
    layers = plan["schedule"]["layers"]
    if any(len(set(layer.values())) != 1 for layer in layers):
        return None
    return [next(iter(layer.values())) for layer in layers]


def params_vs_budget(plan: Mapping[str, Any] | None) -> float | None:
    if plan is None or "trainable_params" not in plan:
        return None
    return plan["trainable_params"] / plan["budget_params"] - 1
