"""Validate a whole profile of params.yaml and the run registry before anything expensive starts.

    from hydra_repro.config.validate import validate_profile
    validate_profile("params.yaml", "mini")

Every verb calls it first (`cli.main`), so a misspelled or missing section or key (`trian:`, `train.max_step`), a
value out of range or an unknown profile stops the verb with one message, before anything is read, trained,
written or deleted. Each section is checked by its dataclass in `hydra_repro.config`. The verbs that read the run
registry check it too (`registry.check_registry`). Imports nothing but `hydra_repro.config`: a check costs
milliseconds, and no stage's DVC deps grow with the modules of other stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.allocation import AllocationParams
from hydra_repro.config.data import DataConfig
from hydra_repro.config.gradnorm import GradNormConfig
from hydra_repro.config.model import model_config_from_dict
from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.config.pretrain import PretrainConfig, VisionPretrainConfig, profile_vision
from hydra_repro.config.search import SearchConfig
from hydra_repro.config.smol import SmolLMConfig
from hydra_repro.config.train import TrainConfig
from hydra_repro.errors import UserError

# Every section a profile must have: no verb falls back to defaults for a section that is missing or misspelled.
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
    "seeds",  # training seeds per replicated run (experiments/runs.yaml `replicated`)
    "smol",  # the real-LM probe: a nested profile
)
# The probe's nested profile (`profiles.<profile>.smol`): its LM, its stage I and its uniform-LoRA run.
NESTED_SECTIONS = ("lm", "pretrain", "gradnorm", "train")
NESTED_OPTIONAL = ("allocation",)
EVALUATE_KEYS = ("batch_size", "threads", "max_new_tokens")


def _named(prefix: str, key: str, e: UserError) -> UserError:
    """Prefix a section's error with the file and profile unless it already names them."""
    msg = str(e)
    if msg.startswith(prefix):
        return UserError(msg)
    if msg.startswith(f"{key}."):  # __post_init__ messages name `section.key`
        return UserError(f"{prefix}.{msg}")
    return UserError(f"{prefix}.{key}: {msg}")


SECTION_CLASSES: dict[str, Any] = {
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


def profile_seeds(section: dict[str, Any], where: str) -> int:
    """`profiles.<profile>.seeds`: how many training seeds each replicated run gets."""
    n = section.get("seeds", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"{where}.seeds: got {n!r}; expected an integer >= 1 (training seeds per replicated run)")
    return n


def profile_layers(section: dict[str, Any], where: str) -> dict[str, int]:
    """Model role -> LM layer count of a (validated) profile's section; `where` names it in errors."""
    where = f"{where}.models"
    return {
        role: model_config_from_dict(spec, f"{where}.{role}").lm.num_hidden_layers
        for role, spec in section["models"].items()
    }


def _check_sections(section: dict[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    allowed = (*required, *optional)
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise UserError(f"{where}: unknown section {unknown[0]!r}; expected the sections {list(allowed)}")
    missing = [s for s in required if s not in section]
    if missing:
        raise UserError(f"{where}: section {missing[0]!r} is missing; every profile sets all of {list(required)}")


def validate_profile(params: str | Path, profile: str | None = None) -> str:
    """Check every section of one profile; returns the profile name.

    A nested name ("mini.smol") checks its top-level profile, nested probe included, as a whole.
    """
    name, _ = load_params(params, profile)
    _validate(params, str(name).split(".")[0])
    return name


def _validate(params: str | Path, name: str, nested: bool = False) -> None:
    _, section = load_params(params, name)
    where = f"{params}: profiles.{name}"
    if nested:
        _check_sections(section, where, NESTED_SECTIONS, NESTED_OPTIONAL)
    else:
        _check_sections(section, where, SECTIONS, ())
    built = {}
    for key, cls in SECTION_CLASSES.items():
        if key not in section:
            continue
        if not isinstance(section[key], dict):
            raise UserError(f"{where}.{key}: got {section[key]!r}; expected a mapping of settings")
        try:
            built[key] = dataclass_from_dict(cls, section[key], f"{where}.{key}")
        except UserError as e:
            raise _named(where, key, e) from None
    if nested:
        return
    profile_seeds(section, where)
    _validate(params, f"{name}.smol", nested=True)
    evaluate = section["evaluate"]
    if not isinstance(evaluate, dict):
        raise UserError(f"{where}.evaluate: got {evaluate!r}; expected a mapping of settings")
    extra = sorted(set(evaluate) - set(EVALUATE_KEYS))
    if extra:
        raise UserError(f"{where}.evaluate: unknown key {extra[0]!r}; expected some of {list(EVALUATE_KEYS)}")
    for key, value in evaluate.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{where}.evaluate.{key}: got {value!r}; expected a positive integer")
    models = section["models"]
    if not isinstance(models, dict) or set(models) != {"small", "large"}:
        got = sorted(models) if isinstance(models, dict) else models
        raise UserError(f"{where}.models: got {got!r}; expected the roles ['large', 'small']")
    for role, spec in models.items():
        if not isinstance(spec, dict):
            raise UserError(f"{where}.models.{role}: got {spec!r}; expected a mapping (preset, lm, vision)")
        try:
            model_config_from_dict(spec, f"{where}.models.{role}")
        except UserError as e:
            raise _named(f"{where}.models", role, e) from None
    if built["pretrain_vision"].mode == "train":
        profile_vision(section, where)  # one tower for all models
