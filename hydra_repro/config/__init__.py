"""Configuration as validated data: `params.yaml` -> typed dataclasses, with errors that name the key.

`params.yaml` holds `profile: <name>` and one section per profile under `profiles:`. Every module that
needs settings defines a frozen dataclass for its own section and builds it with `dataclass_from_dict`,
which rejects unknown keys and wrong types before any expensive work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hydra_repro.errors import UserError

T = TypeVar("T")

PROFILES = ("smoke", "mini", "smol", "paper")


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected a YAML file)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> tuple[str, dict[str, Any]]:
    """Return (profile name, that profile's section) from `params.yaml`; `profile` overrides the file's key.

    A dotted name selects a nested profile: "mini.smol" is `profiles.mini.smol`, the real-LM probe that runs
    inside the mini pipeline with sections of its own (`pretrain`, `gradnorm`, `train`, `allocation`).
    """
    params = load_yaml(path)
    if not isinstance(params, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(params).__name__}")
    name = profile if profile is not None else params.get("profile")
    profiles = params.get("profiles")
    if not isinstance(profiles, dict):
        raise UserError(f"{path}: key 'profiles' must be a mapping of profile name -> settings")
    head, *nested = str(name).split(".") if name is not None else [name]
    if head not in profiles:
        raise UserError(f"{path}: key 'profile' is {name!r}; expected one of {sorted(profiles)}")
    section, where = profiles[head], f"profiles.{head}"
    for key in nested:
        if not isinstance(section, dict) or key not in section:
            raise UserError(f"{path}: no key '{where}.{key}' (profile {name!r} names a missing nested profile)")
        section, where = section[key], f"{where}.{key}"
    if not isinstance(section, dict):
        raise UserError(f"{path}: key '{where}' must be a mapping, got {type(section).__name__}")
    return name, section


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False
        inner = args[0] if args else Any
        return all(_type_ok(v, inner) for v in value)
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp) or (Any, Any)
        return isinstance(value, dict) and all(_type_ok(k, k_tp) and _type_ok(v, v_tp) for k, v in value.items())
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def dataclass_from_dict(cls: type[T], mapping: Any, where: str) -> T:
    """Build dataclass `cls` from `mapping`; unknown keys and wrong types raise UserError naming `where.key`.

    Missing keys take the dataclass defaults. Nested dataclass fields are built recursively. Validation
    beyond types belongs in the dataclass's `__post_init__`, raising UserError.
    """
    if not isinstance(mapping, dict):
        raise UserError(f"{where}: expected a mapping, got {type(mapping).__name__} {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(fields)}")
    kwargs = {}
    for key, value in mapping.items():
        tp = hints[key]
        nested = [a for a in (typing.get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
        if nested and (dataclasses.is_dataclass(tp) or value is not None):  # a dataclass, or Optional[dataclass]
            kwargs[key] = dataclass_from_dict(nested[0], value, f"{where}.{key}")
            continue
        if not _type_ok(value, tp):
            raise UserError(f"{where}.{key}: got {value!r}; expected {getattr(tp, '__name__', tp)}")
        if key == "seed" and value is not None and not 0 <= value < 2**32:
            raise UserError(f"{where}.seed: got {value!r}; expected an integer in [0, 2**32 - 1] (numpy's seed range)")
        if tp is float and isinstance(value, int):
            value = float(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without default is missing
        raise UserError(f"{where}: {e}") from None
