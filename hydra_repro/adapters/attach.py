"""Attach an adapter to a model: PEFT wrapping, the rank check, the fast CPU layer, and EVA's data-driven init."""

from __future__ import annotations

from typing import Any

import torch

from hydra_repro.adapters.fast_lora import use_fast_lora
from hydra_repro.adapters.peft_config import check_ranks, count_params, model_dims, peft_config, realized_ranks
from hydra_repro.config.train import TrainConfig
from hydra_repro.constants import COMPONENTS, EVA_RHO
from hydra_repro.core.allocation import budget_params, trainable_params
from hydra_repro.core.schedule import Schedule
from hydra_repro.errors import UserError

EVA_MAX_BATCHES = 1000  # mini converges in ~110 batches of 16


def eva_initialize(peft_model: Any, dataset: Any, cfg: TrainConfig, pad_token_id: int) -> None:
    """PEFT's EVA initialisation made VLM-aware: the LM projections see the sequence after the image tokens are
    spliced in, so the mask of positions used for the SVD is computed on the spliced sequence (real tokens with a
    label), not on `input_ids`."""
    from peft import initialize_lora_eva_weights

    from hydra_repro.data.conversation import DataCollator
    from hydra_repro.model.vlm import _base_model

    vlm = _base_model(peft_model)

    def spliced_positions(inputs: dict[str, Any], peft_config: Any) -> torch.Tensor:
        with torch.no_grad():
            _, mask, labels = vlm._splice(
                inputs["input_ids"], inputs["attention_mask"], inputs["labels"], inputs["images"], "right"
            )
        keep = mask.bool()
        if peft_config.eva_config.use_label_mask:
            keep &= labels != peft_config.eva_config.label_mask_value
        return keep.nonzero()

    generator = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.per_device_batch_size,
        shuffle=True,
        collate_fn=DataCollator(pad_token_id),
        generator=generator,
    )
    batches = 0

    def forward(model: Any, inputs: dict[str, Any]) -> Any:
        # PEFT cycles the data until every module's components converge; a batch with fewer answer tokens than
        # components is skipped, so a too-small batch would loop forever: stop with a clear error instead
        nonlocal batches
        batches += 1
        if batches > EVA_MAX_BATCHES:
            raise UserError(
                f"eva: the SVD did not converge in {EVA_MAX_BATCHES} batches of {cfg.per_device_batch_size} "
                f"(each batch needs >= rho x r = {int(EVA_RHO * cfg.rank)} answer tokens); raise the batch size"
            )
        return model(**inputs)

    initialize_lora_eva_weights(
        peft_model, loader, forward_fn=forward, prepare_model_inputs_fn=spliced_positions, show_progress_bar=False
    )


def attach_adapter(
    model: Any,
    cfg: TrainConfig,
    schedule: Schedule | None,
    total_steps: int,
    eva_data: tuple[Any, int] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Make `model` trainable for `cfg.method`; returns (model or PeftModel, the ranks.json record).

    The record holds planned/realized ranks per module and the LoRA parameter count, which must equal
    `allocation.trainable_params` (plus AdaLoRA's singular values) and is compared with the uniform budget C.
    `eva_data` (dataset, pad token id): method eva's initialisation data; its realized ranks are EVA's choice,
    checked against the planned total rank instead of module by module.
    """
    dims = model_dims(model)
    budget = budget_params(cfg.rank, dims)
    if cfg.method == "full":
        model.requires_grad_(True)
        model.set_vision_tower_trainable(False)
        params = count_params(model)
        return model, {"method": "full", "modules": None, "params": params}
    from peft import get_peft_model
    from transformers import set_seed

    assert schedule is not None
    set_seed(cfg.seed)  # LoRA's A init is random: the seed makes it part of the run's definition
    peft_model = get_peft_model(model, peft_config(cfg, schedule, total_steps))
    planned = schedule.planned()
    if cfg.method == "eva":
        if eva_data is None:
            raise UserError("method eva: needs training data for its initialisation (eva_data)")
        eva_initialize(peft_model, eva_data[0], cfg, eva_data[1])
        realized = realized_ranks(peft_model)
        if sum(realized.values()) != sum(planned.values()):
            raise RuntimeError(f"eva: total rank {sum(realized.values())}; planned {sum(planned.values())}")
        layers = [{c: 0 for c in COMPONENTS} for _ in range(dims.num_hidden_layers)]
        for name, r in realized.items():  # model.layers.<i>.<parent>.<component>
            parts = name.split(".")
            layers[int(parts[2])][parts[-1]] = r
        formula = trainable_params(layers, dims)
    else:
        # AdaLoRA's `scaling` is alpha itself (its forward divides by the current rank): only LoRA's is alpha / r.
        realized = check_ranks(planned, peft_model, cfg.alpha_ratio if cfg.method != "adalora" else None, cfg.rslora)
        formula = schedule.trainable_params(dims)
    if cfg.fast_lora:
        use_fast_lora(peft_model)
    params = count_params(peft_model)
    if cfg.method == "adalora":
        formula += sum(planned.values())  # one singular value per rank
    if params["lora"] != formula:
        raise RuntimeError(f"trainable LoRA parameters: counted {params['lora']}, formula gives {formula}")
    record = {
        "method": cfg.method,
        "schedule": schedule.name,
        "modules": {n: {"planned": planned[n], "realized": realized[n]} for n in planned},
        "params": params,
        "formula_params": formula,
        "r_standard": cfg.rank,
        "budget_params": budget,
        # Table VI's Setting2/4/5 exceed C by the paper's own design (docs/discrepancies.md section 4): recorded.
        "over_budget": params["lora"] > budget if cfg.method != "adalora" else None,
    }
    return peft_model, record
