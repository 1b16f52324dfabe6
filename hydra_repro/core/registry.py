"""The run registry (`experiments/runs.yaml`) as validated data, and its resolution into concrete schedules.

    hydra-repro allocate --registry experiments/runs.yaml --params params.yaml --out schedules/

Each run names a model role (`small` / `large`), a method and, for `schedule` runs, either a fixed `layout`
(Table II / Table V) or a `hydra` allocation from the gradient norms (Tables III-VII). Everything is relative to the
profile's `allocation` section and the model's layer count, so the same registry serves smoke, mini and paper.
Pure Python: no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra_repro.config import dataclass_from_dict, load_yaml
from hydra_repro.config.allocation import AllocationParams
from hydra_repro.constants import EVA_RHO
from hydra_repro.core.allocation import (
    FINE_SETTINGS,
    FIXED_LAYOUTS,
    RULES,
    ModelDims,
    allocate,
    budget_params,
    random_layer_ranks,
)
from hydra_repro.core.schedule import Schedule
from hydra_repro.errors import InfeasibleError, UserError

MODEL_ROLES = ("small", "large")
METHODS = ("full", "lora", "schedule", "adalora", "eva")
RANDOM_LAYOUT = (
    "random"  # a control: random per-layer ranks at budget C (allocation.random_layer_ranks), seeded by `draw`
)


@dataclass(frozen=True)
class HydraSpec:
    """A HyDRA allocation; unset fields come from the profile's `allocation` section."""

    setting: str = "coarse"
    stages: int | None = None
    delta_d: int | None = None
    rule: str | None = None
    reverse: bool = field(
        default=False, metadata={"help": "a control: the allocation mirrored (ranks fall with depth)"}
    )

    def __post_init__(self) -> None:
        if self.setting not in FINE_SETTINGS:
            raise UserError(f"hydra.setting: got {self.setting!r}; expected one of {list(FINE_SETTINGS)}")
        if self.rule is not None and self.rule not in RULES:
            raise UserError(f"hydra.rule: got {self.rule!r}; expected one of {sorted(RULES)}")
        for key in ("stages", "delta_d"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise UserError(f"hydra.{key}: got {value!r}; expected an integer >= 1")


@dataclass(frozen=True)
class RunSpec:
    model: str
    method: str
    layout: str | None = None
    hydra: HydraSpec | None = None
    seed: int | None = field(default=None, metadata={"help": "None: the profile's training seed"})
    draw: int | None = field(default=None, metadata={"help": "layout random: which draw (seeds the ranks)"})
    rslora: bool = field(default=False, metadata={"help": "rank-stabilised scaling alpha / sqrt(r) (rsLoRA)"})

    def __post_init__(self) -> None:
        if self.model not in MODEL_ROLES:
            raise UserError(f"model: got {self.model!r}; expected one of {list(MODEL_ROLES)}")
        if self.method not in METHODS:
            raise UserError(f"method: got {self.method!r}; expected one of {list(METHODS)}")
        if self.method == "schedule" and (self.layout is None) == (self.hydra is None):
            raise UserError("method schedule needs exactly one of 'layout' (fixed) or 'hydra' (allocated)")
        if self.method != "schedule" and (self.layout is not None or self.hydra is not None):
            raise UserError(f"method {self.method}: 'layout' and 'hydra' only apply to method schedule")
        if self.layout is not None and self.layout not in (*FIXED_LAYOUTS, RANDOM_LAYOUT):
            raise UserError(f"layout: got {self.layout!r}; expected one of {sorted([*FIXED_LAYOUTS, RANDOM_LAYOUT])}")
        if (self.layout == RANDOM_LAYOUT) != (self.draw is not None):
            raise UserError("draw: layout 'random' needs a draw (an integer >= 0), and only it takes one")
        if self.draw is not None and self.draw < 0:
            raise UserError(f"draw: got {self.draw!r}; expected an integer >= 0")
        if self.rslora and self.method not in ("lora", "schedule"):
            raise UserError(f"rslora: only for methods lora and schedule, not {self.method!r}")


def load_registry(path: str | Path = "experiments/runs.yaml") -> dict[str, RunSpec]:
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict) or not data["runs"]:
        raise UserError(f"{path}: expected a mapping with a non-empty 'runs' mapping of run name -> definition")
    runs = {}
    for name, spec in data["runs"].items():
        where = f"{path}: runs.{name}"
        try:
            runs[name] = dataclass_from_dict(RunSpec, spec, where)
        except UserError as e:
            msg = str(e)
            raise UserError(msg if msg.startswith(where) else f"{where}.{msg}") from None
    return runs


def load_replicated(path: str | Path = "experiments/runs.yaml") -> dict[str, str]:
    """The registry's `replicated` mapping (run -> its model role): the runs trained with every seed of the profile.

    The role is repeated there because DVC's `foreach` needs it to name the base model; it must match the run's."""
    runs = load_registry(path)
    data = load_yaml(path)
    replicated = data.get("replicated") or {}
    if not isinstance(replicated, dict):
        raise UserError(f"{path}: 'replicated' must map run names to their model role")
    for name, role in replicated.items():
        if name not in runs:
            raise UserError(f"{path}: replicated.{name}: no such run in 'runs'")
        if role != runs[name].model:
            raise UserError(f"{path}: replicated.{name}: got role {role!r}; the run's model is {runs[name].model!r}")
    return dict(replicated)


# Control options of a run: recorded in its plan only when switched on, so the plans of the paper's runs read
# (and hash) the same as before the controls existed.
_CONTROL_DEFAULTS = {"draw": None, "rslora": False, "reverse": False}


def check_registry(path: str | Path, params: str | Path, profile: str | None = None) -> None:
    """The whole registry, validated at one (already validated) profile's scale: every run's definition, the
    replicated runs, and every fixed layout resolved at the profile's layer counts and R_standard. Verbs that read
    the registry call this before any work."""
    from hydra_repro.config import dataclass_from_dict, load_params
    from hydra_repro.config.allocation import AllocationParams
    from hydra_repro.config.validate import profile_layers

    name, section = load_params(params, profile)
    layers = profile_layers(section, f"{params}: profiles.{name}")
    r_standard = dataclass_from_dict(AllocationParams, section["allocation"], "allocation").r_standard
    load_replicated(path)
    for run, spec in load_registry(path).items():
        if spec.layout is not None and spec.layout != RANDOM_LAYOUT:
            try:
                Schedule.fixed(spec.layout, layers[spec.model], r_standard)
            except UserError as e:
                raise UserError(f"{path}: run {run}: {e}") from None


def spec_record(spec: RunSpec) -> dict[str, Any]:
    """The run definition as written into its plan, control options left out when off."""
    record = {k: v for k, v in dataclasses.asdict(spec).items() if _CONTROL_DEFAULTS.get(k, object()) != v}
    if isinstance(record.get("hydra"), dict) and not record["hydra"].get("reverse"):
        record["hydra"].pop("reverse", None)
    return record


def hydra_params(spec: HydraSpec, profile: AllocationParams) -> AllocationParams:
    """The profile's allocation settings with the run's overrides."""
    overrides = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("setting", "reverse") and v is not None}
    return dataclasses.replace(profile, **overrides)


def resolve(
    name: str, spec: RunSpec, alloc: AllocationParams, dims: ModelDims, layer_norms: list[float] | None
) -> dict[str, Any]:
    """The concrete plan of one run: method, schedule (None for full fine-tuning) and its accounting.

    Raises UserError (naming the run) for an infeasible allocation, before anything trains.
    """
    info: dict[str, Any] = {"run": name, **spec_record(spec), "r_standard": alloc.r_standard}
    budget = budget_params(alloc.r_standard, dims)
    schedule = None
    if spec.method == "eva" and EVA_RHO * alloc.r_standard > min(dims.hidden_size, dims.intermediate_size):
        raise InfeasibleError(
            f"run {name}: EVA's SVD keeps up to rho x R = {EVA_RHO * alloc.r_standard:g} components per module, "
            f"more than the projections' input size ({min(dims.hidden_size, dims.intermediate_size)})"
        )
    if spec.method in ("lora", "adalora", "eva"):  # eva: the uniform start that EVA redistributes
        schedule = Schedule.uniform(dims.num_hidden_layers, alloc.r_standard, name)
    elif spec.layout == RANDOM_LAYOUT:
        ranks = random_layer_ranks(dims.num_hidden_layers, alloc.r_standard, spec.draw)
        schedule = Schedule.from_layer_ranks(ranks, name)
    elif spec.layout is not None:
        schedule = dataclasses.replace(Schedule.fixed(spec.layout, dims.num_hidden_layers, alloc.r_standard), name=name)
    elif spec.hydra is not None:
        if layer_norms is None:
            raise UserError(f"run {name}: a HyDRA allocation needs the gradient norms of model {spec.model!r}")
        p = hydra_params(spec.hydra, alloc)
        try:
            result = allocate(
                layer_norms, p.stages, p.r_standard, p.delta_d, rule=p.rule, setting=spec.hydra.setting, dims=dims
            )
        except UserError as e:
            raise UserError(f"run {name}: {e}") from None
        layers = list(reversed(result.ranks)) if spec.hydra.reverse else result.ranks
        schedule = Schedule.from_layer_dicts(layers, name)
        info["allocation"] = {**result.to_dict(), **({"reversed": True} if spec.hydra.reverse else {})}
    if schedule is not None:
        info["schedule"] = schedule.to_dict()
        info["trainable_params"] = schedule.trainable_params(dims)
        info["over_budget"] = info["trainable_params"] > budget
    info["budget_params"] = budget
    return info


SEEDS_FILE = "seeds.json"  # results/<profile>/replicates/<run>/: the seeds a run's replicates used


def replicate_seeds(base_seed: int, n: int) -> list[int]:
    """The seeds of the replicates: the run's own seed is the first of n."""
    return [base_seed + k for k in range(1, n)]
