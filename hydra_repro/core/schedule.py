"""The `Schedule` value type: integer LoRA ranks per layer and per component, with JSON and PEFT conversion.

A schedule is what `allocate` produces and `train` consumes. It converts to PEFT's `rank_pattern` /
`alpha_pattern` keyed by full, dot-escaped module names: PEFT matches each key as a regex against the END of a
module's name and silently ignores keys that match nothing, so bare keys like `q_proj` or unescaped dots would
quietly apply the wrong rank. Training reads the realized ranks back and compares them with `planned()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra_repro.constants import COMPONENT_PARENT, COMPONENTS
from hydra_repro.core.allocation import FIXED_LAYOUTS, ModelDims, trainable_params
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_write_json, read_json

# Full name of a Llama decoder projection inside our VLM (and inside MobileVLM's checkpoints).
MODULE_NAME = "model.layers.{layer}.{parent}.{component}"


@dataclass(frozen=True)
class Schedule:
    """ranks[l][c]: rank of component c (COMPONENTS order) in layer l (0-based; the paper's layer l+1)."""

    ranks: tuple[tuple[int, ...], ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.ranks:
            raise UserError(f"schedule {self.name!r}: no layers")
        for l, layer in enumerate(self.ranks):
            if len(layer) != len(COMPONENTS):
                raise UserError(f"schedule {self.name!r}: layer {l} has {len(layer)} ranks; expected {len(COMPONENTS)}")
            for c, r in zip(COMPONENTS, layer):
                if not isinstance(r, int) or isinstance(r, bool) or r < 1:
                    raise UserError(f"schedule {self.name!r}: layer {l} {c} rank {r!r}; expected an integer >= 1")

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_layer_dicts(cls, layers: Sequence[Mapping[str, int]], name: str = "") -> Schedule:
        out = []
        for l, layer in enumerate(layers):
            if not isinstance(layer, Mapping):
                raise UserError(f"schedule {name!r}: layer {l} is {layer!r}; expected a mapping component -> rank")
            unknown = sorted(set(layer) - set(COMPONENTS))
            missing = [c for c in COMPONENTS if c not in layer]
            if unknown or missing:
                raise UserError(
                    f"schedule {name!r}: layer {l} has components {sorted(layer)}; expected exactly {list(COMPONENTS)}"
                )
            out.append(tuple(layer[c] for c in COMPONENTS))
        return cls(tuple(out), name)

    @classmethod
    def from_layer_ranks(cls, layer_ranks: Sequence[int], name: str = "") -> Schedule:
        """Coarse-grained: every component of a layer at that layer's rank."""
        return cls(tuple((r,) * len(COMPONENTS) for r in layer_ranks), name)

    @classmethod
    def uniform(cls, n_layers: int, r: int, name: str = "") -> Schedule:
        return cls.from_layer_ranks([r] * n_layers, name or f"uniform_r{r}")

    @classmethod
    def fixed(cls, layout: str, n_layers: int, r_standard: int) -> Schedule:
        """Table II's Case or Table V's Config1-3 (see allocation.FIXED_LAYOUTS) at this scale."""
        if layout not in FIXED_LAYOUTS:
            raise UserError(f"fixed schedule: got {layout!r}; expected one of {sorted(FIXED_LAYOUTS)}")
        return cls.from_layer_ranks(FIXED_LAYOUTS[layout].layer_ranks(n_layers, r_standard), layout)

    # -- views -------------------------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.ranks)

    def layer_dicts(self) -> list[dict[str, int]]:
        return [dict(zip(COMPONENTS, layer)) for layer in self.ranks]

    def module_names(self) -> list[str]:
        return [
            MODULE_NAME.format(layer=l, parent=COMPONENT_PARENT[c], component=c)
            for l in range(self.n_layers)
            for c in COMPONENTS
        ]

    def planned(self) -> dict[str, int]:
        """Full module name -> planned rank."""
        return dict(zip(self.module_names(), (r for layer in self.ranks for r in layer)))

    def trainable_params(self, dims: ModelDims) -> int:
        return trainable_params(self.layer_dicts(), dims)

    # -- PEFT --------------------------------------------------------------------------------------------------
    def peft_patterns(self, alpha_ratio: float = 2.0) -> tuple[int, dict[str, int], dict[str, float]]:
        """(default r, rank_pattern, alpha_pattern) for `peft.LoraConfig`.

        Keys are full module names with dots escaped, so each matches exactly one module. alpha = alpha_ratio x r
        per module (MobileVLM's 256/128 = 2 by default) keeps the LoRA scaling alpha / r the same for every module.
        """
        planned = self.planned()
        default_r = max(set(planned.values()), key=list(planned.values()).count)
        rank_pattern = {re.escape(name): r for name, r in planned.items()}
        alpha_pattern = {re.escape(name): alpha_ratio * r for name, r in planned.items()}
        return default_r, rank_pattern, alpha_pattern

    # -- JSON --------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "components": list(COMPONENTS), "layers": self.layer_dicts()}

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "schedule") -> Schedule:
        if not isinstance(d, Mapping) or not isinstance(d.get("layers"), list):
            raise UserError(f"{where}: expected an object with a 'layers' list of component -> rank mappings")
        return cls.from_layer_dicts(d["layers"], str(d.get("name", "")))

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        return cls.from_dict(read_json(path, "schedule file"), where=str(path))
