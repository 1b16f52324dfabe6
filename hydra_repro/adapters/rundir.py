"""A published run directory: its file names, and loading it back (base model + adapter + projector) for
evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hydra_repro.adapters.peft_config import check_ranks
from hydra_repro.errors import UserError
from hydra_repro.io import read_json, sha256_file

RUN_FILE = "run.json"


RANKS_FILE = "ranks.json"


ADAPTER_DIR = "adapter"


PROJECTOR_FILE = "mm_projector.safetensors"


# ----------------------------------------------------------------------------------------------------------------
# Loading a published run (the evaluation plugin's entry)
# ----------------------------------------------------------------------------------------------------------------
def _resolve_base(run_dir: Path, run: dict[str, Any]) -> Path:
    """The recorded base model: relative to the run directory first (the repository moved), then as written."""
    for candidate in (run_dir / run["base_model_relative"], Path(run["base_model"])):
        if (candidate / "config.json").is_file():
            return candidate
    raise UserError(
        f"{run_dir}: base model {run['base_model']!r} not found (looked at {run_dir / run['base_model_relative']} "
        "too); pass the base model directory explicitly"
    )


def load_run(
    run_dir: str | Path,
    base: str | Path | None = None,
    merge: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """Load a trained run (or a plain model directory) for evaluation -> `modeling.LoadedModel`.

    Args:
        run_dir: a directory published by `train_run`; a directory without run.json is loaded as a model.
        base: the base model directory; default: the one run.json records.
        merge: fold the adapter into the base weights (plain HydraVLMForCausalLM, fastest inference); False keeps
            the PeftModel wrapper (for AdaLoRA, PEFT's inference-mode wrapper fails on a forward with `labels`).

    Raises:
        UserError: not a run, base model missing, or the adapter does not fit the base model (other dimensions or
            layer count).
    """
    from hydra_repro.model.checkpoint import LoadedModel, load_model

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        return load_model(run_dir, device=device, dtype=dtype)
    run = read_json(run_dir / RUN_FILE, "run record")
    if run["method"] == "full":
        return load_model(run_dir, device=device, dtype=dtype)
    from peft import PeftModel

    base_dir = Path(base) if base is not None else _resolve_base(run_dir, run)
    loaded = load_model(base_dir, device=device, dtype=dtype)
    if sha256_file(base_dir / "config.json") != run["base_config_sha256"]:
        print(f"load_run: warning: {base_dir}/config.json differs from the one {run_dir} was trained on")
    try:
        model = PeftModel.from_pretrained(loaded.model, str(run_dir / ADAPTER_DIR), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as e:  # size mismatch, missing target module
        first = str(e).strip().splitlines()
        raise UserError(
            f"{run_dir}: the adapter does not fit the base model {base_dir} ({first[-1] if first else e})"
        ) from None
    ranks = read_json(run_dir / RANKS_FILE, "ranks record")
    if run["method"] != "adalora":
        planned = {name: m["realized"] for name, m in ranks["modules"].items()}
        try:
            check_ranks(planned, model)
        except RuntimeError as e:
            raise UserError(f"{run_dir}: the adapter does not match its ranks.json ({e})") from None
    if merge:
        model = model.merge_and_unload()
    model.eval()
    from transformers import AutoTokenizer, CLIPImageProcessor

    tokenizer = AutoTokenizer.from_pretrained(str(run_dir)) if (run_dir / "tokenizer_config.json").is_file() else None
    image_processor = CLIPImageProcessor.from_pretrained(str(run_dir))
    return LoadedModel(model, tokenizer or loaded.tokenizer, image_processor)
