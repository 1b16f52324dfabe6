"""Independent references written from the paper's text, for tests: never computed through the code under test.

Eq. 7: R1_initial = 2 floor((R_standard - 2α) / 2), α = (N_l - 1) / 2.
Eq. 8: R_i = R1 + (i - 1) Δd for i < N_s (i counted from 1); the last stage takes
floor((N_R - Σ_{j<N_s} R_j N_j) / N_last), with N_R = R_standard x N_l (eq. 6).
The iteration after eq. 8 stops at the last R1 whose last stage stays above the one before it: by >= 1 as written,
by >= 2Δd in the rule that reproduces Table V, by >= Δd when eq. 5 holds for the last stage too
(docs/discrepancies.md).
Table VI, transcribed: the component moves of the five fine-grained settings, in units of Δd.
"""

from __future__ import annotations

from fractions import Fraction

TABLE_VI = {
    "setting1": {"q_proj": -1, "k_proj": -1, "up_proj": 1},
    "setting2": {"q_proj": -1, "k_proj": -1, "up_proj": 1, "down_proj": 1},
    "setting3": {"q_proj": -1, "k_proj": -1},
    "setting4": {"q_proj": Fraction(-1, 2), "k_proj": Fraction(-1, 2), "up_proj": 1},
    "setting5": {"q_proj": -1, "k_proj": -1, "up_proj": 2},
}
SEVEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def eq7(r_standard: int, n_layers: int) -> int:
    twice_alpha = n_layers - 1
    return 2 * ((r_standard - twice_alpha) // 2)  # Python's // is the floor, also below zero


def eq8(r1: int, sizes: list[int], delta_d: int, r_standard: int) -> list[int]:
    n_r = r_standard * sum(sizes)
    ranks = [r1 + (i - 1) * delta_d for i in range(1, len(sizes))]
    spent = sum(r * n for r, n in zip(ranks, sizes))
    return [*ranks, (n_r - spent) // sizes[-1]]


def last_gap(rule: str, delta_d: int) -> int:
    """As written: >= 1; `table` (reproduces Table V): >= 2Δd; `eq5-last` (eq. 5 on the last stage): >= Δd."""
    return {"as-written": 1, "table": 2 * delta_d, "eq5-last": delta_d}[rule]


def valid_r1(r1: int, sizes: list[int], r_standard: int, delta_d: int, rule: str) -> bool:
    """Eq. 8 at R1 keeps every rank >= 1, spends no more than eq. 6's N_R, and keeps the rule's last gap."""
    ranks = eq8(r1, sizes, delta_d, r_standard)
    spent = sum(x * n for x, n in zip(ranks, sizes))
    gap_ok = len(sizes) == 1 or ranks[-1] - ranks[-2] >= last_gap(rule, delta_d)
    return r1 >= 1 and min(ranks) >= 1 and spent <= r_standard * sum(sizes) and gap_ok


def table_vi(layer_rank: int, setting: str, delta_d: int) -> dict[str, int]:
    moves = TABLE_VI.get(setting, {})
    return {c: layer_rank + int(moves.get(c, 0) * delta_d) for c in SEVEN}
