"""HyDRA's rank allocation (paper section III.B, eq. 5-10, Tables V and VI): pure Python + numpy, no torch.

    hydra-repro allocate --grad-norms results/gradnorm_layers.json --stages 3 --r-standard 128 --delta-d 2

Pipeline of the paper's initialization and rank-assignment phases:
1. `partition_stages`: 1-D K-means over per-layer average gradient norms (eq. 1) into N_s stages, ordered by
   ascending mean norm. Solved exactly by dynamic programming (1-D K-means has contiguous optimal clusters in
   sorted order), so the result is deterministic and globally optimal. Stages need not be contiguous in depth:
   a stage is the set of layers whose norms are similar, wherever they sit.
2. `coarse_ranks`: eq. 7 gives R1_initial; eq. 8 gives stage ranks R1, R1+Δd, ... and the last stage takes what
   the budget N_R = R_standard x N_l leaves; R1 is raised by 1 while the allocation stays valid (the paragraph
   after eq. 8). The rule as written and the rule that reproduces Table V's Config4 are both available
   (`RULES`); docs/discrepancies.md explains the difference with numbers.
3. `fine_ranks`: Table VI's Setting1-5 move Q/K/Up/Down of every layer by multiples of Δd (eq. 9-10 = Setting1).
4. `trainable_params` / `budget_params`: g(G, Z) = Σ r x (d_in + d_out) over the seven projections of every
   layer, and C = the same for uniform R_standard (eq. 4).
Also the fixed schedules of the ablations (Table II's Case, Table V's Config1-3) as data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from hydra_repro.constants import COMPONENTS
from hydra_repro.errors import InfeasibleError, UserError

# --------------------------------------------------------------------------------------------------------------
# Model dimensions and parameter accounting g(G, Z)


@dataclass(frozen=True)
class ModelDims:
    """The LM dimensions that fix each projection's (d_in, d_out); grouped-query attention via num_key_value_heads."""

    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    head_dim: int | None = None

    def __post_init__(self) -> None:
        for name in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads"):
            if getattr(self, name) < 1:
                raise UserError(f"model dims: {name}={getattr(self, name)!r}; expected a positive integer")
        if self.num_hidden_layers < 1:
            raise UserError(f"model dims: num_hidden_layers={self.num_hidden_layers!r}; expected >= 1")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"model dims: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}; give head_dim explicitly"
            )

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    def io(self, component: str) -> tuple[int, int]:
        """(d_in, d_out) of one projection of a Llama decoder layer."""
        h, m, hd = self.hidden_size, self.intermediate_size, self.resolved_head_dim
        q, kv = self.num_attention_heads * hd, self.num_key_value_heads * hd
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, m),
            "up_proj": (h, m),
            "down_proj": (m, h),
        }[component]

    def lora_params_per_rank(self, component: str) -> int:
        """A LoRA of rank r on this projection has r x (d_in + d_out) parameters (A: r x d_in, B: d_out x r)."""
        d_in, d_out = self.io(component)
        return d_in + d_out


# MobileLLaMA 1.4B / 2.7B (the LMs of MobileVLM 1.7B / 3B) and SmolLM2-135M (the smol profile).
MOBILELLAMA_1_4B = ModelDims(2048, 5632, 16, 16, 24)
MOBILELLAMA_2_7B = ModelDims(2560, 6912, 32, 32, 32)
SMOLLM2_135M = ModelDims(576, 1536, 9, 3, 30)


def trainable_params(ranks: Sequence[Mapping[str, int]], dims: ModelDims) -> int:
    """g(G, Z): trainable LoRA parameters of a per-layer, per-component rank assignment."""
    if len(ranks) != dims.num_hidden_layers:
        raise UserError(f"ranks: {len(ranks)} layers given; the model has {dims.num_hidden_layers}")
    return sum(layer[c] * dims.lora_params_per_rank(c) for layer in ranks for c in COMPONENTS)


def budget_params(r_standard: int, dims: ModelDims) -> int:
    """C of eq. 4: the trainable LoRA parameters of uniform LoRA at rank R_standard on all seven projections."""
    return r_standard * dims.num_hidden_layers * sum(dims.lora_params_per_rank(c) for c in COMPONENTS)


# --------------------------------------------------------------------------------------------------------------
# Stage partition: exact 1-D K-means


def _check_norms(norms: Sequence[float]) -> np.ndarray:
    x = np.asarray(norms, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise UserError(f"grad norms: expected a non-empty list of numbers (one per layer), got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0))
    if bad.size:
        i = int(bad[0])
        raise UserError(f"grad norms: layer {i + 1} has norm {float(x[i])!r}; expected a finite number >= 0")
    return x


def partition_stages(norms: Sequence[float], n_stages: int) -> list[int]:
    """Group layers into `n_stages` stages by 1-D K-means over their gradient norms.

    Returns the stage index of every layer (0 = the stage with the lowest mean norm). The optimum of 1-D K-means
    is a split of the sorted values into contiguous runs, found exactly by dynamic programming over split points
    (O(k n^2)); equal norms always share a stage. Near-ties (costs within a relative 1e-12) go to the earliest
    split so that rescaling the norms cannot flip the answer through rounding.
    """
    x = _check_norms(norms)
    n = x.size
    if not 1 <= n_stages <= n:
        raise UserError(f"--stages: got {n_stages}; expected an integer in 1..{n} (the number of layers)")
    order = np.lexsort((np.arange(n), x))  # by norm, ties by layer index
    raw = x[order]
    # Costs on max-normalised values make near-tie decisions scale-free; distinctness is judged on the raw values.
    s = raw / raw[-1] if raw[-1] > 0 else raw
    distinct = int(np.count_nonzero(np.diff(raw) > 0)) + 1
    if n_stages > distinct:
        raise InfeasibleError(
            f"--stages: got {n_stages}; the gradient norms have only {distinct} distinct values, so at most "
            f"{distinct} non-empty stages exist"
        )
    # A run may start at i only where the sorted value strictly increases (equal norms stay together).
    can_start = np.concatenate([[True], np.diff(raw) > 0])
    # sse[i, j]: within-run sum of squares of s[i:j], by Welford's update (prefix-sum formulas cancel badly when
    # norms span many orders of magnitude).
    sse = np.zeros((n + 1, n + 1))
    for i in range(n):
        mean = m2 = 0.0
        for j in range(i, n):
            d = s[j] - mean
            mean += d / (j - i + 1)
            m2 += d * (s[j] - mean)
            sse[i, j + 1] = m2
    cost = np.full((n_stages + 1, n + 1), np.inf)
    back = np.full((n_stages + 1, n + 1), -1, dtype=int)
    cost[0, 0] = 0.0
    starts = np.flatnonzero(can_start)
    for j in range(1, n + 1):
        if j < n and not can_start[j]:
            continue  # a run must end where the next value is strictly larger
        i = starts[starts < j]
        run = sse[i, j]
        for k in range(1, n_stages + 1):
            c = cost[k - 1, i] + run
            best = c.min()
            if not np.isfinite(best):
                continue
            arg = int(i[np.flatnonzero(c <= best * (1 + 1e-12))[0]])  # earliest split among near-ties
            cost[k, j], back[k, j] = cost[k - 1, arg] + run[np.searchsorted(i, arg)], arg
    stage_sorted = np.empty(n, dtype=int)
    j = n
    for k in range(n_stages, 0, -1):
        i = back[k][j]
        stage_sorted[i:j] = k - 1
        j = i
    stage_of_layer = np.empty(n, dtype=int)
    stage_of_layer[order] = stage_sorted
    return [int(v) for v in stage_of_layer]


# --------------------------------------------------------------------------------------------------------------
# Coarse-grained ranks (eq. 5-8 and the iteration after eq. 8)


@dataclass(frozen=True)
class Rule:
    """Stopping rule of the R1 iteration: stop when the last stage's rank is less than `min_last_gap(Δd)` above
    the stage before it (or when the budget runs out); keep the previous iteration's allocation."""

    name: str
    description: str
    gap_in_delta_d: int = 0  # required gap = max(1, gap_in_delta_d * Δd)

    def min_last_gap(self, delta_d: int) -> int:
        return max(1, self.gap_in_delta_d * delta_d)


RULES = {
    "as-written": Rule(
        "as-written",
        "paper text after eq. 8: raise R1 by 1 while N_remain >= 0 and R_t > R_{t-1}; keep the last valid",
        gap_in_delta_d=0,
    ),
    "table": Rule(
        "table",
        "reproduces Table V's Config4 (124, 126, 131): as written, but the last stage must stay at least 2Δd "
        "above the one before it",
        gap_in_delta_d=2,
    ),
    "eq5-last": Rule(
        "eq5-last",
        "eq. 5 (R_{i+1} >= R_i + Δd) applied to the last stage too, R1 raised by 1: Config4 (125, 127, 130)",
        gap_in_delta_d=1,
    ),
}


def r1_initial(r_standard: int, n_layers: int) -> int:
    """Eq. 7: R1_initial = 2 floor((R_standard - 2α) / 2) with α = (N_l - 1) / 2."""
    alpha = Fraction(n_layers - 1, 2)
    return 2 * math.floor((r_standard - 2 * alpha) / 2)


@dataclass(frozen=True)
class CoarseResult:
    r1_initial: int  # eq. 7, before clamping to >= 1
    r1: int
    stage_ranks: list[int]
    iterations: int


def _stage_ranks(r1: int, stage_sizes: Sequence[int], delta_d: int, n_r: int) -> list[int]:
    """Eq. 8 for a given R1: R_i = R1 + (i-1)Δd for i < N_s; the last stage floors the rest of N_R."""
    ranks = [r1 + i * delta_d for i in range(len(stage_sizes) - 1)]
    used = sum(r * n for r, n in zip(ranks, stage_sizes))
    return [*ranks, (n_r - used) // stage_sizes[-1]]


def coarse_ranks(stage_sizes: Sequence[int], r_standard: int, delta_d: int, rule: str = "as-written") -> CoarseResult:
    """Coarse stage ranks for stages of the given sizes (in ascending-norm order) under budget R_standard x N_l.

    The iteration starts at eq. 7's R1_initial (clamped to 1: eq. 7 is negative when R_standard < N_l - 1, and
    ranks are positive integers) and raises R1 by 1 while the allocation stays valid; validity is monotone in
    R1, so the result is the largest valid R1. If R1_initial itself is invalid the request is infeasible.
    """
    if r_standard < 1:
        raise UserError(f"--r-standard: got {r_standard}; expected an integer >= 1")
    if delta_d < 1:
        raise UserError(f"--delta-d: got {delta_d}; expected an integer >= 1")
    if not stage_sizes or any(n < 1 for n in stage_sizes):
        raise UserError(f"stage sizes: got {list(stage_sizes)}; expected positive layer counts")
    if rule not in RULES:
        raise UserError(f"--rule: got {rule!r}; expected one of {sorted(RULES)}")
    n_layers = sum(stage_sizes)
    n_r = r_standard * n_layers  # eq. 6
    r1_0 = r1_initial(r_standard, n_layers)
    if len(stage_sizes) == 1:  # eq. 8 with i = N_s = 1: the single stage takes floor(N_R / N_l)
        return CoarseResult(r1_0, r_standard, [r_standard], 0)
    gap = RULES[rule].min_last_gap(delta_d)

    def valid(r1: int) -> bool:
        ranks = _stage_ranks(r1, stage_sizes, delta_d, n_r)
        return ranks[-1] - ranks[-2] >= gap  # implies every rank >= 1 and N_remain >= 0 at every stage

    r1 = max(1, r1_0)
    if not valid(r1):
        ranks = _stage_ranks(r1, stage_sizes, delta_d, n_r)
        raise InfeasibleError(
            f"budget: R_standard={r_standard}, Δd={delta_d}, stage sizes {list(stage_sizes)} leave the last stage "
            f"at {ranks[-1]} for R1={r1} (stages {ranks}); expected it at least {gap} above the previous stage. "
            "Use fewer stages, a smaller Δd or a larger R_standard"
        )
    iterations = 0
    while valid(r1 + 1):
        r1 += 1
        iterations += 1
    return CoarseResult(r1_0, r1, _stage_ranks(r1, stage_sizes, delta_d, n_r), iterations)


# --------------------------------------------------------------------------------------------------------------
# Fine-grained settings (Table VI; Setting1 = eq. 9-10)

# Component -> multiple of Δd added to the layer's coarse rank |R_i|.
FINE_SETTINGS: dict[str, dict[str, Fraction]] = {
    "coarse": {},
    "setting1": {"q_proj": Fraction(-1), "k_proj": Fraction(-1), "up_proj": Fraction(1)},
    "setting2": {"q_proj": Fraction(-1), "k_proj": Fraction(-1), "up_proj": Fraction(1), "down_proj": Fraction(1)},
    "setting3": {"q_proj": Fraction(-1), "k_proj": Fraction(-1)},
    "setting4": {"q_proj": Fraction(-1, 2), "k_proj": Fraction(-1, 2), "up_proj": Fraction(1)},
    "setting5": {"q_proj": Fraction(-1), "k_proj": Fraction(-1), "up_proj": Fraction(2)},
}


def fine_ranks(layer_ranks: Sequence[int], setting: str, delta_d: int) -> list[dict[str, int]]:
    """Per-layer, per-component ranks: every component at its layer's coarse rank, moved as Table VI says."""
    if setting not in FINE_SETTINGS:
        raise UserError(f"--setting: got {setting!r}; expected one of {list(FINE_SETTINGS)}")
    shifts = {}
    for comp, mult in FINE_SETTINGS[setting].items():
        step = mult * delta_d
        if step.denominator != 1:
            raise InfeasibleError(
                f"--delta-d: got {delta_d}; {setting} moves {comp} by {mult} x Δd, which must be an integer "
                "(use an even Δd)"
            )
        shifts[comp] = int(step)
    out = []
    for layer, r in enumerate(layer_ranks):
        ranks = {c: r + shifts.get(c, 0) for c in COMPONENTS}
        low = min(ranks.values())
        if low < 1:
            raise InfeasibleError(
                f"{setting}: layer {layer + 1} has coarse rank {r}; moving it by {min(shifts.values())} gives "
                f"{low}, expected >= 1"
            )
        out.append(ranks)
    return out


# --------------------------------------------------------------------------------------------------------------
# The whole allocation


@dataclass(frozen=True)
class Allocation:
    stage_of_layer: list[int]
    stage_sizes: list[int]
    stage_mean_norms: list[float]
    r1_initial: int
    r1: int
    stage_ranks: list[int]
    ranks: list[dict[str, int]]
    trainable_params: int
    budget_params: int
    rule: str
    setting: str
    r_standard: int
    delta_d: int
    iterations: int = field(default=0)

    @property
    def over_budget(self) -> bool:
        return self.trainable_params > self.budget_params

    def to_dict(self) -> dict:
        d = asdict(self)
        d["over_budget"] = self.over_budget
        return d


def allocate(
    norms: Sequence[float],
    n_stages: int,
    r_standard: int,
    delta_d: int,
    *,
    rule: str = "as-written",
    setting: str = "coarse",
    dims: ModelDims | None = None,
) -> Allocation:
    """HyDRA's schedule Z from per-layer average gradient norms (layer 1 first).

    `dims` defaults to MobileLLaMA 1.4B with `num_hidden_layers` set to len(norms).
    Fine settings may exceed the budget C (Setting2 and Setting5 do on MobileLLaMA): see `over_budget`.
    """
    x = _check_norms(norms)
    if r_standard < 1:
        raise UserError(f"--r-standard: got {r_standard}; expected an integer >= 1")
    if delta_d < 1:
        raise UserError(f"--delta-d: got {delta_d}; expected an integer >= 1")
    if setting not in FINE_SETTINGS:
        raise UserError(f"--setting: got {setting!r}; expected one of {list(FINE_SETTINGS)}")
    if dims is None:
        dims = ModelDims(**{**asdict(MOBILELLAMA_1_4B), "num_hidden_layers": x.size})
    if dims.num_hidden_layers != x.size:
        raise UserError(
            f"--model-dims: num_hidden_layers={dims.num_hidden_layers}, but {x.size} gradient norms were given"
        )
    stage_of_layer = partition_stages(x, n_stages)
    sizes = [stage_of_layer.count(s) for s in range(n_stages)]
    means = [float(x[[i for i, s in enumerate(stage_of_layer) if s == k]].mean()) for k in range(n_stages)]
    coarse = coarse_ranks(sizes, r_standard, delta_d, rule)
    layer_ranks = [coarse.stage_ranks[s] for s in stage_of_layer]
    ranks = fine_ranks(layer_ranks, setting, delta_d)
    return Allocation(
        stage_of_layer=stage_of_layer,
        stage_sizes=sizes,
        stage_mean_norms=means,
        r1_initial=coarse.r1_initial,
        r1=coarse.r1,
        stage_ranks=coarse.stage_ranks,
        ranks=ranks,
        trainable_params=trainable_params(ranks, dims),
        budget_params=budget_params(r_standard, dims),
        rule=rule,
        setting=setting,
        r_standard=r_standard,
        delta_d=delta_d,
        iterations=coarse.iterations,
    )


# --------------------------------------------------------------------------------------------------------------
# Fixed schedules of the ablations (Table II's Case, Table V's Config1-3), relative to R_standard and N_l


@dataclass(frozen=True)
class FixedLayout:
    """Contiguous depth ranges given as fractions of N_l, each with a rank multiple of R_standard."""

    name: str
    source: str
    bounds: tuple[Fraction, ...]  # cumulative upper bounds, last = 1
    multiples: tuple[Fraction, ...]

    def layer_ranks(self, n_layers: int, r_standard: int) -> list[int]:
        """Per-layer ranks. Boundary b falls after layer round(b x N_l) (half up); rank = max(1, floor(m x R))."""
        edges = [int(math.floor(b * n_layers + Fraction(1, 2))) for b in self.bounds]
        if len(set(edges)) != len(edges) or edges[0] < 1:
            raise InfeasibleError(f"{self.name}: {n_layers} layers are too few for {len(self.bounds)} depth ranges")
        out, start = [], 0
        for edge, mult in zip(edges, self.multiples):
            out += [max(1, math.floor(mult * r_standard))] * (edge - start)
            start = edge
        return out


_F = Fraction
FIXED_LAYOUTS: dict[str, FixedLayout] = {
    "case": FixedLayout(
        "case",
        "Table II: first third R/2, middle third R, last third 2R",
        (_F(1, 3), _F(2, 3), _F(1)),
        (_F(1, 2), _F(1), _F(2)),
    ),
    "config1": FixedLayout(
        "config1",
        "Table V: layers [1-4, 5-20, 21-24] of 24 at (R, R/2, R)",
        (_F(1, 6), _F(5, 6), _F(1)),
        (_F(1), _F(1, 2), _F(1)),
    ),
    "config2": FixedLayout(
        "config2",
        "Table V: layers [1-4, 5-20, 21-24] of 24 at (2R, R, 2R)",
        (_F(1, 6), _F(5, 6), _F(1)),
        (_F(2), _F(1), _F(2)),
    ),
    "config3": FixedLayout(
        "config3",
        "Table V: layers [1-8, 9-16, 17-24] of 24 at (R/2, R, 2R)",
        (_F(1, 3), _F(2, 3), _F(1)),
        (_F(1, 2), _F(1), _F(2)),
    ),
    "uniform": FixedLayout("uniform", "standard LoRA at R", (_F(1),), (_F(1),)),
    "uniform_2x": FixedLayout("uniform_2x", "Table II: standard LoRA at 2R", (_F(1),), (_F(2),)),
}


def random_layer_ranks(n_layers: int, r_standard: int, draw: int) -> list[int]:
    """A control at budget C exactly: per-layer ranks drawn uniformly from [1, 2R - 1] (mean R), then moved one unit
    at a time on random layers (staying in that range) until they sum to N_l x R. Every layer has the same
    dimensions, so equal rank sums are equal parameter counts. `draw` seeds the generator."""
    if n_layers < 1 or r_standard < 1 or draw < 0:
        raise UserError(
            f"random ranks: n_layers={n_layers}, r_standard={r_standard}, draw={draw}; expected >= 1, >= 1, >= 0"
        )
    low, high = 1, max(1, 2 * r_standard - 1)
    rng = np.random.default_rng(draw)
    ranks = [int(r) for r in rng.integers(low, high + 1, size=n_layers)]
    target = n_layers * r_standard
    while (gap := target - sum(ranks)) != 0:
        step = 1 if gap > 0 else -1
        movable = [i for i, r in enumerate(ranks) if low <= r + step <= high]
        ranks[movable[int(rng.integers(len(movable)))]] += step
    return ranks


# Table V's Config4 as printed: HyDRA's output with 3 stages, R_standard 128, Δd 2 on MobileLLaMA 1.4B.
CONFIG4_PAPER = {"layers": ((1, 8), (9, 12), (13, 24)), "ranks": (124, 126, 131), "r_standard": 128, "delta_d": 2}


def config4_stage_sizes() -> list[int]:
    return [hi - lo + 1 for lo, hi in CONFIG4_PAPER["layers"]]
