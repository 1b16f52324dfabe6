"""The PEFT boundary: a PEFT LoRA / AdaLoRA config from a rank schedule, and the ranks PEFT realized checked
against the plan (PEFT applies a `rank_pattern` key that matches no module silently)."""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from hydra_repro.config.train import TrainConfig
from hydra_repro.constants import EVA_RHO
from hydra_repro.core.allocation import ModelDims
from hydra_repro.core.schedule import Schedule
from hydra_repro.errors import UserError

PROJECTOR = "mm_projector"  # module name suffix of the LDP projector (modules_to_save)


PEFT_PREFIX = "base_model.model."  # PeftModel's prefix in front of the base model's module names


def model_dims(model: Any) -> ModelDims:
    from hydra_repro.model.vlm import lm_dims

    return ModelDims(**lm_dims(model))


def plan_schedule(cfg: TrainConfig, model: Any, schedule: Schedule | None) -> Schedule | None:
    """The schedule this run trains (None for `full`), checked against the model's layers before anything is built."""
    from hydra_repro.model.vlm import lora_target_names

    n_layers = model.config.num_hidden_layers
    if cfg.method == "full":
        if schedule is not None:
            raise UserError("--schedule: given for method 'full', which has no adapter")
        return None
    if cfg.method == "schedule":
        if schedule is None:
            raise UserError("--schedule: method 'schedule' needs a schedule JSON (from `hydra-repro allocate`)")
    elif schedule is not None:
        raise UserError(f"--schedule: given for method {cfg.method!r}; use --method schedule")
    elif cfg.method in ("lora", "eva"):  # eva: the uniform start that EVA redistributes from data
        schedule = Schedule.uniform(n_layers, cfg.rank)
    else:  # adalora starts uniform at init_r and prunes towards `rank` on average
        schedule = Schedule.uniform(n_layers, cfg.resolved_init_r(), name=f"adalora_init_r{cfg.resolved_init_r()}")
    if schedule.n_layers != n_layers:
        raise UserError(
            f"schedule {schedule.name!r}: {schedule.n_layers} layers; the base model's LM has {n_layers} "
            "(a schedule for another model?)"
        )
    targets = set(lora_target_names(model))
    missing = [name for name in schedule.planned() if name not in targets]
    if missing:
        raise UserError(f"schedule {schedule.name!r}: module {missing[0]!r} does not exist in the base model")
    return schedule


def peft_config(cfg: TrainConfig, schedule: Schedule, total_steps: int) -> Any:
    """LoraConfig (lora, schedule) or AdaLoraConfig targeting exactly the LM projections the schedule names.

    `target_modules` is the list of full names: PEFT matches a list entry against the whole name or a `.`-suffix, so
    `model.layers.0.self_attn.q_proj` can never hit the vision tower's `...encoder.layers.0.self_attn.q_proj`.
    """
    from peft import AdaLoraConfig, EvaConfig, LoraConfig

    default_r, rank_pattern, alpha_pattern = schedule.peft_patterns(cfg.alpha_ratio)
    common = dict(
        target_modules=list(schedule.planned()),
        lora_dropout=cfg.lora_dropout,
        modules_to_save=[PROJECTOR],
        bias="none",
        task_type="CAUSAL_LM",
    )
    if cfg.method != "adalora":
        # EVA: initialised from the SVD of layer inputs, ranks redistributed across modules at the same total rank;
        # PEFT then rescales alpha so alpha / r stays as configured (adjust_scaling_factors)
        eva = {"init_lora_weights": "eva", "eva_config": EvaConfig(rho=EVA_RHO)} if cfg.method == "eva" else {}
        return LoraConfig(
            r=default_r,
            lora_alpha=cfg.alpha_ratio * default_r,
            rank_pattern=rank_pattern,
            alpha_pattern=alpha_pattern,
            use_rslora=cfg.rslora,
            **eva,
            **common,
        )
    init_r = cfg.resolved_init_r()
    tinit, tfinal = round(cfg.adalora_tinit * total_steps), round(cfg.adalora_tfinal * total_steps)
    if tinit >= total_steps - tfinal:
        raise UserError(
            f"train.max_steps: {total_steps} optimizer steps leave AdaLoRA no pruning phase with adalora_tinit="
            f"{cfg.adalora_tinit} and adalora_tfinal={cfg.adalora_tfinal}; train longer or lower the shares"
        )
    # AdaLoRA's scaling is lora_alpha / r (it divides by the rank inside), so alpha = ratio x init_r gives ratio.
    return AdaLoraConfig(
        init_r=init_r,
        target_r=cfg.rank,
        lora_alpha=cfg.alpha_ratio * init_r,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=cfg.adalora_delta_t,
        total_step=total_steps,
        **common,
    )


def adapter_modules(peft_model: Any) -> dict[str, Any]:
    """Base-model module name -> PEFT layer, for every module that carries a LoRA/AdaLoRA adapter."""
    out = {}
    for name, module in peft_model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if isinstance(lora_a, (torch.nn.ModuleDict, torch.nn.ParameterDict)) and len(lora_a):
            out[name.removeprefix(PEFT_PREFIX)] = module
    return out


def _lora_a_weight(module: Any) -> torch.Tensor:
    a = module.lora_A["default"]
    return a.weight if hasattr(a, "weight") else a  # LoRA: nn.Linear; AdaLoRA: a bare Parameter


def realized_ranks(peft_model: Any) -> dict[str, int]:
    """Rank of every adapted module as built: `lora_A.weight.shape[0]`."""
    return {name: int(_lora_a_weight(m).shape[0]) for name, m in adapter_modules(peft_model).items()}


def effective_ranks(peft_model: Any) -> dict[str, int]:
    """AdaLoRA's ranks after pruning: the singular values (lora_E) that are not masked to zero."""
    return {name: int((m.lora_E["default"] != 0).sum()) for name, m in adapter_modules(peft_model).items()}


def check_ranks(
    planned: dict[str, int], peft_model: Any, alpha_ratio: float | None = None, rslora: bool = False
) -> dict[str, int]:
    """Compare realized with planned ranks (and the scaling with alpha_ratio); RuntimeError names the first mismatch.

    PEFT silently gives unmatched `rank_pattern` keys the default rank, so this check is what makes the schedule
    trustworthy. Returns the realized ranks.
    """
    realized = realized_ranks(peft_model)
    for name in sorted(set(planned) | set(realized), key=list({**planned, **realized}).index):
        if name not in realized:
            raise RuntimeError(f"module {name!r}: planned rank {planned[name]} but PEFT built no adapter on it")
        if name not in planned:
            raise RuntimeError(f"module {name!r}: PEFT built a rank-{realized[name]} adapter on a module not planned")
        if realized[name] != planned[name]:
            raise RuntimeError(f"module {name!r}: planned rank {planned[name]}, realized rank {realized[name]}")
    if alpha_ratio is not None:
        for name, module in adapter_modules(peft_model).items():
            scaling = module.scaling["default"]
            # alpha = ratio x r: LoRA's alpha / r is the ratio, rsLoRA's alpha / sqrt(r) is ratio x sqrt(r)
            expected = alpha_ratio * math.sqrt(realized[name]) if rslora else alpha_ratio
            if not math.isclose(scaling, expected, rel_tol=1e-6):
                what = "alpha / sqrt(r)" if rslora else "alpha / r"
                raise RuntimeError(f"module {name!r}: LoRA scaling {scaling}; expected {what} = {expected}")
    return realized


def count_params(model: Any) -> dict[str, int]:
    """Trainable parameters by kind: LoRA factors (A, B and AdaLoRA's E), the projector, everything trainable."""
    lora = projector = total = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        total += p.numel()
        if re.search(r"\.lora_[ABE]\b", name):
            lora += p.numel()
        elif f".{PROJECTOR}." in name:
            projector += p.numel()
    return {"lora": lora, "projector": projector, "trainable": total}
