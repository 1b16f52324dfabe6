"""Validate a whole profile of params.yaml and the run registry before anything expensive starts.

    from hydra_repro.validate import validate_profile
    validate_profile("params.yaml", "mini", "experiments/runs.yaml")

`prepare`, the first stage of the pipeline, calls it, so a misspelled key in any section (say `train.max_step`),
an unknown profile or a registry run naming a missing setting stops `dvc repro` at its first stage with one message,
not an hour later at the stage that reads the key. Each section is checked by the dataclass of the module that
owns it; the registry's fixed layouts are resolved at the profile's layer counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.errors import UserError

SECTIONS = (
    "data",
    "models",
    "pretrain_vision",
    "pretrain",
    "gradnorm",
    "train",
    "evaluate",
    "allocation",
    "search",
    "perfmodel",
    "smol",  # the real-LM probe: a nested profile (lm, pretrain, gradnorm, train, allocation)
    "lm",  # only inside `smol`: where the real LM comes from
    "seeds",  # training seeds per replicated run (experiments/runs.yaml `replicated`)
)
EVALUATE_KEYS = ("batch_size", "threads", "max_new_tokens")


def _named(prefix: str, key: str, e: UserError) -> UserError:
    """Prefix a section's error with the file and profile unless it already names them."""
    msg = str(e)
    if msg.startswith(prefix):
        return UserError(msg)
    if msg.startswith(f"{key}."):  # __post_init__ messages name `section.key`
        return UserError(f"{prefix}.{msg}")
    return UserError(f"{prefix}.{key}: {msg}")


def validate_profile(params: str | Path, profile: str | None = None, registry: str | Path | None = None) -> str:
    """Check every section of one profile (and the registry at its scale); returns the profile name.

    Sections that are absent are not required here: the stage that needs one says so when it runs.
    """
    from hydra_repro.allocation import AllocationParams
    from hydra_repro.gradnorm import GradNormConfig
    from hydra_repro.modeling import lm_dims, model_config_from_dict
    from hydra_repro.perfmodel import PerfModelConfig
    from hydra_repro.prepare import DataConfig
    from hydra_repro.pretrain import PretrainConfig
    from hydra_repro.pretrain_vision import VisionPretrainConfig, profile_vision
    from hydra_repro.search import SearchConfig
    from hydra_repro.smol import SmolLMConfig
    from hydra_repro.train_config import TrainConfig

    name, section = load_params(params, profile)
    where = f"{params}: profiles.{name}"
    unknown = sorted(set(section) - set(SECTIONS))
    if unknown:
        raise UserError(f"{where}: unknown section {unknown[0]!r}; expected some of {list(SECTIONS)}")
    checks: dict[str, Any] = {
        "data": DataConfig,
        "pretrain_vision": VisionPretrainConfig,
        "pretrain": PretrainConfig,
        "gradnorm": GradNormConfig,
        "train": TrainConfig,
        "allocation": AllocationParams,
        "search": SearchConfig,
        "perfmodel": PerfModelConfig,
        "lm": SmolLMConfig,
    }
    built = {}
    for key, cls in checks.items():
        if key not in section:
            continue
        try:
            built[key] = dataclass_from_dict(cls, section[key] or {}, f"{where}.{key}")
        except UserError as e:
            raise _named(where, key, e) from None
    if "seeds" in section:
        from hydra_repro.replicate import profile_seeds

        profile_seeds(section, where)
    if "smol" in section:
        if "." in str(name):
            raise UserError(f"{where}.smol: a nested profile cannot nest another")
        validate_profile(params, f"{name}.smol")
    extra = sorted(set(section.get("evaluate") or {}) - set(EVALUATE_KEYS))
    if extra:
        raise UserError(f"{where}.evaluate: unknown key {extra[0]!r}; expected some of {list(EVALUATE_KEYS)}")
    if "models" not in section:
        return name
    models = section["models"]
    if not isinstance(models, dict) or set(models) != {"small", "large"}:
        raise UserError(f"{where}.models: got {sorted(models or {})}; expected the roles ['large', 'small']")
    layers = {}
    for role, spec in models.items():
        try:
            layers[role] = lm_dims(model_config_from_dict(spec, f"{where}.models.{role}"))["num_hidden_layers"]
        except UserError as e:
            raise _named(f"{where}.models", role, e) from None
    if built.get("pretrain_vision") is not None and built["pretrain_vision"].mode == "train":
        profile_vision(section, where)  # one tower for all models
    if registry is not None and "allocation" in built:
        from hydra_repro.registry import RANDOM_LAYOUT, load_registry, load_replicated
        from hydra_repro.schedule import Schedule

        load_replicated(registry)
        for run, spec in load_registry(registry).items():
            if spec.layout is not None and spec.layout != RANDOM_LAYOUT:
                try:
                    Schedule.fixed(spec.layout, layers[spec.model], built["allocation"].r_standard)
                except UserError as e:
                    raise UserError(f"{registry}: run {run}: {e}") from None
    return name
