"""The allocation's inputs read from files: per-layer gradient norms and the model's dimensions."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from hydra_repro.core.allocation import MOBILELLAMA_1_4B, ModelDims
from hydra_repro.errors import UserError
from hydra_repro.io import read_json


def read_norms(path: Path) -> list[float]:
    data = read_json(path, "--grad-norms file: a JSON list of numbers")
    if isinstance(data, dict) and "layer_norms" in data:
        data = data["layer_norms"]
    if not isinstance(data, list) or not data:
        raise UserError(f"--grad-norms: {path} holds {type(data).__name__}; expected a non-empty JSON list of numbers")
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"--grad-norms: {path} layer {i + 1} is {v!r}; expected a number")
    return [float(v) for v in data]


def read_dims(path: Path | None, n_layers: int) -> ModelDims:
    if path is None:
        d = {f.name: getattr(MOBILELLAMA_1_4B, f.name) for f in fields(ModelDims)}
    else:
        d = read_json(path, "--model-dims file")
        allowed = {f.name for f in fields(ModelDims)}
        if not isinstance(d, dict) or set(d) - allowed:
            raise UserError(f"--model-dims: {path} must be an object with keys from {sorted(allowed)}")
        for k, v in d.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise UserError(f"--model-dims: {path} key {k!r} is {v!r}; expected an integer")
    d["num_hidden_layers"] = n_layers
    try:
        return ModelDims(**d)
    except TypeError as e:
        raise UserError(f"--model-dims: {e}") from None


def dims_from_config(path: Path) -> ModelDims:
    """LM dimensions from a model directory's config.json (no torch needed)."""
    cfg = read_json(path / "config.json", "model config.json")
    keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers")
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise UserError(f"{path / 'config.json'}: missing {missing}; expected a Llama/MobileVLM config")
    return ModelDims(**{k: cfg[k] for k in keys}, head_dim=cfg.get("head_dim"))
