"""`hydra-repro train`: instruction tuning (MobileVLM stage II) by full fine-tuning, LoRA, a HyDRA schedule or AdaLoRA.

    hydra-repro train --params params.yaml --profile mini --run lora_r8 --base models/mini/base \\
        --data data/mini/train.json --images data/mini --out runs/lora_r8 --method lora --rank 8
    hydra-repro train ... --method schedule --schedule schedules/hydra_fine.json --rank 8   # rank 8 sets budget C
    accelerate launch --num_processes 4 -m hydra_repro train ...                          # data parallel (GPUs)

Read top to bottom: `TrainConfig` holds the paper's settings; `attach_adapter` builds the PEFT model and checks every
realized rank against the plan; `train_run` trains with HF `Trainer` in `<out>.partial/` (checkpoints there, resumed
when the command runs again) and publishes `<out>` in one rename at the end; `load_run` loads a published run.

Every method goes through the same code: `lora` is `Schedule.uniform(n_layers, rank)`, `schedule` is a schedule JSON
(`hydra-repro allocate`), `adalora` starts from a uniform `init_r` and lets PEFT prune, `full` has no adapter.

The projector: MobileVLM trains its LDP projector fully alongside LoRA. Here it is PEFT `modules_to_save`
(`mm_projector`), not a bare `requires_grad`: then the projector travels inside every adapter checkpoint, so resuming
restores it and `PeftModel.from_pretrained` brings it back; a requires_grad projector would silently revert to the
base weights on resume. The vision tower stays frozen in every method.

A published run directory (everything needed besides the base model, whose path and config hash run.json records):

    runs/<run>/
      run.json                 method, base model, schedule, config, seed, precision, final train loss
      ranks.json               planned and realized rank of every module; LoRA parameters vs formula and budget C
      train_log.jsonl          one line per logging step (loss, learning rate, grad norm) + the final summary
      schedule.json            the ranks trained (lora, schedule, adalora's initial ranks)
      adapter/                 PEFT adapter (adapter_config.json, adapter_model.safetensors incl. the projector)
      mm_projector.safetensors the trained projector alone (MobileVLM's `mm_projector.bin` counterpart)
      config.json, model.safetensors   full fine-tuning only: the whole model in MobileVLM's layout
      tokenizer files, preprocessor_config.json
    runs/<run>.provenance.json versions, lock hash, commit, hardware, wall time: outside the run, so that the run
                               hashes the same on any machine
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from peft.tuners.lora.layer import Linear as _PeftLoraLinear
from transformers import TrainerCallback

from hydra_repro.allocation import ModelDims, budget_params, trainable_params
from hydra_repro.config.train import METHODS, TrainConfig, train_config_from_params  # noqa: F401 (re-exported)
from hydra_repro.constants import COMPONENTS, EVA_RHO
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, read_json
from hydra_repro.schedule import Schedule

PROJECTOR = "mm_projector"  # module name suffix of the LDP projector (modules_to_save)
RUN_FILE = "run.json"
RANKS_FILE = "ranks.json"
LOG_FILE = "train_log.jsonl"
VOLATILE_LOG_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")
ADAPTER_DIR = "adapter"
PROJECTOR_FILE = "mm_projector.safetensors"
PEFT_PREFIX = "base_model.model."  # PeftModel's prefix in front of the base model's module names
EVA_MAX_BATCHES = 1000  # mini converges in ~110 batches of 16


# ----------------------------------------------------------------------------------------------------------------
# The adapter: PEFT config from a schedule, then the realized ranks checked against the plan
# ----------------------------------------------------------------------------------------------------------------
def model_dims(model: Any) -> ModelDims:
    from hydra_repro.modeling import lm_dims

    return ModelDims(**lm_dims(model))


def plan_schedule(cfg: TrainConfig, model: Any, schedule: Schedule | None) -> Schedule | None:
    """The schedule this run trains (None for `full`), checked against the model's layers before anything is built."""
    from hydra_repro.modeling import lora_target_names

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


# ----------------------------------------------------------------------------------------------------------------
# A faster LoRA layer for CPU training (same parameters, state dict and math as PEFT's lora.Linear)
# ----------------------------------------------------------------------------------------------------------------
def dropout_keep_mask(
    shape: tuple[int, ...], p: float, device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, float]:
    """(0/1 keep-mask in `dtype`, 1 / keep rate) for dropout with probability p quantized to 1/65536.

    One 64-bit random draw gives four 16-bit uniforms, compared straight into a float mask: about 10x faster on CPU
    than `F.dropout`'s per-element `bernoulli_`, which cost more than all of LoRA's matrix products at the mini scale.
    """
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    drop = round(p * 65536)
    keep = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(words.view(torch.int16)[:n].view(shape), drop - 32768, out=keep)
    return keep, 65536 / (65536 - drop)


class _LoraLinearFn(torch.autograd.Function):
    """y = x W^T + b + s * (x * keep) A^T B^T for a frozen W, as one autograd node.

    `keep` is dropout's 0/1 mask (or None); its 1 / keep-rate factor is folded into `scaling` by the caller, which is
    the same function with one element-wise pass fewer. The skinny products run in the layout the CPU BLAS is fast
    at: (A x^T)^T instead of x A^T, and in backward (B^T dy^T)^T and (h^T dy)^T instead of dy B and dy^T h (3-4x
    faster each at rank 8, hidden 64-176).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling, keep):
        xd = x if keep is None else x * keep
        h = (lora_a @ xd.t()).t()  # (N, r)
        y = torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()
        y.addmm_(h, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(xd, h, weight, lora_a, lora_b, keep)
        ctx.scaling = scaling
        return y

    @staticmethod
    def backward(ctx, dy):
        xd, h, weight, lora_a, lora_b, keep = ctx.saved_tensors
        dy = dy.contiguous()
        dh = (lora_b.t() @ dy.t()).t().mul_(ctx.scaling)  # (N, r)
        grad_b = (h.t() @ dy).t().mul_(ctx.scaling)  # (d_out, r)
        grad_a = dh.t() @ xd  # (r, d_in)
        dx_lora = dh @ lora_a
        if keep is not None:
            dx_lora.mul_(keep)
        dx = torch.addmm(dx_lora, dy, weight)
        return dx, None, None, grad_a, grad_b, None, None


class FastLoraLinear(_PeftLoraLinear):
    """PEFT's `lora.Linear` with a fused forward/backward for plain CPU training (`TrainConfig.fast_lora`).

    Only `forward` differs; parameters, state dict, saving, loading and merging are PEFT's. Every case the fast path
    does not cover (GPU, autocast, merged or disabled adapters, several adapters, DoRA-like variants, a trainable
    base weight, mixed dtypes) falls back to PEFT's forward. Dropout keeps PEFT's semantics (a fresh mask per module
    on the module's input) with p quantized to 1/65536 (0.05 -> 0.050003).
    """

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        active = self.active_adapters
        base = self.base_layer
        if (
            args
            or kwargs
            or self.disable_adapters
            or self.merged
            or len(active) != 1
            or active[0] not in self.lora_A
            or active[0] in self.lora_variant
            or x.device.type != "cpu"
            or torch.is_autocast_enabled("cpu")
            or base.weight.requires_grad
            or not x.dtype == base.weight.dtype == self.lora_A[active[0]].weight.dtype
        ):
            return super().forward(x, *args, **kwargs)
        name = active[0]
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        dropout = self.lora_dropout[name]
        keep, scaling = None, float(self.scaling[name])
        if isinstance(dropout, torch.nn.Dropout) and dropout.p > 0 and dropout.training:
            keep, rescale = dropout_keep_mask(tuple(x2.shape), dropout.p, x2.device, x2.dtype)
            scaling *= rescale
        lora_a, lora_b = self.lora_A[name].weight, self.lora_B[name].weight
        y = _LoraLinearFn.apply(x2, base.weight, base.bias, lora_a, lora_b, scaling, keep)
        return y.view(*x.shape[:-1], y.shape[-1])


def use_fast_lora(peft_model: Any) -> int:
    """Give every plain PEFT LoRA Linear the fused CPU path (a class swap: only `forward` changes); returns how many."""
    n = 0
    for module in peft_model.modules():
        if type(module) is _PeftLoraLinear:
            module.__class__ = FastLoraLinear
            n += 1
    return n


def eva_initialize(peft_model: Any, dataset: Any, cfg: TrainConfig, pad_token_id: int) -> None:
    """PEFT's EVA initialisation made VLM-aware: the LM projections see the sequence after the image tokens are
    spliced in, so the mask of positions used for the SVD is computed on the spliced sequence (real tokens with a
    label), not on `input_ids`."""
    from peft import initialize_lora_eva_weights

    from hydra_repro.data import DataCollator
    from hydra_repro.modeling import _base_model

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


# ----------------------------------------------------------------------------------------------------------------
# Data and Trainer
# ----------------------------------------------------------------------------------------------------------------
class ImageToTensor:
    """PIL image -> (3, S, S) pixels with MobileVLM's pad-to-square preprocessing (picklable for data workers)."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, image: Any) -> torch.Tensor:
        from hydra_repro.modeling import process_images

        return process_images([image], self.image_processor)[0]


def make_dataset(
    data: str | Path, images: str | Path, tokenizer: Any, image_processor: Any, max_length: int, template: Any = None
) -> Any:
    """The LLaVA-format training set, validated up front (a missing image fails here, not at step 10,000).

    `template`: the model's conversation template (`data.model_template(config)`); None: MobileVLM's v1."""
    from hydra_repro.data import V1, LlavaDataset, load_records

    records = load_records(data, images, check_images="open")  # every image decodes, before any training
    if not records:
        raise UserError(f"{data}: no training records")
    return LlavaDataset(
        records, tokenizer, ImageToTensor(image_processor), images, max_length=max_length, template=template or V1
    )


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def total_optimizer_steps(cfg: TrainConfig, n_samples: int) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.num_train_epochs * math.ceil(n_samples / cfg.global_batch_size)))


def training_arguments(cfg: TrainConfig, output_dir: str | Path, n_layers: int, save: bool = True) -> Any:
    """HF TrainingArguments of the paper's recipe: AdamW, no weight decay, cosine with 3% warmup, seed 42."""
    from transformers import TrainingArguments

    per_device, accumulation = cfg.gradient_accumulation(world_size())
    cuda = torch.cuda.is_available()
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=cfg.resolved_learning_rate(n_layers),
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a share of the total steps
        weight_decay=cfg.weight_decay,
        optim="adamw_torch",
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        use_cpu=not cuda,
        logging_steps=cfg.logging_steps,
        save_strategy="steps" if save else "no",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        remove_unused_columns=False,  # the dataset's `image` key is consumed by our collator, not by forward
        label_names=["labels"],
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_pin_memory=cuda,
        report_to="none",
        disable_tqdm=True,
    )


def make_trainer(
    model: Any,
    args: Any,
    dataset: Any,
    pad_token_id: int,
    callbacks: list[Any] | None = None,
    group_by_modality: bool = False,
    length_groups: int = 1,
) -> Any:
    """HF Trainer with our collator; `group_by_modality` swaps its random sampler for MobileVLM's (sampling.py),
    `length_groups` > 1 computes each batch's loss on length-sorted micro-batches (microbatch.py)."""
    from transformers import Trainer

    from hydra_repro.data import DataCollator
    from hydra_repro.microbatch import grouped_loss

    sampler = None
    if group_by_modality:
        from hydra_repro.sampling import ModalityGroupedSampler, modality_lengths

        sampler = ModalityGroupedSampler(
            modality_lengths(dataset.records), args.per_device_train_batch_size, max(1, args.world_size), args.seed
        )

    class HydraTrainer(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if return_outputs or length_groups <= 1:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            parent = super()
            # With `num_items_in_batch` the model divides each part's summed loss by the batch's count: add them up.
            summed = bool(self.model_accepts_loss_kwargs) and num_items_in_batch is not None
            return grouped_loss(
                lambda part: parent.compute_loss(model, part, num_items_in_batch=num_items_in_batch),
                inputs,
                length_groups,
                summed=summed,
            )

    return HydraTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollator(pad_token_id),
        callbacks=list(callbacks or []),
    )


class AdaLoraCallback(TrainerCallback):
    """Calls AdaLoRA's `update_and_allocate(step)` once per optimizer step, which HF Trainer never does itself.

    Hook: `on_optimizer_step` (after `optimizer.step()`, before `zero_grad()`): the gradients the importance scores
    need are still there, and the pruning mask is applied after the update, so a pruned singular value stays exactly
    zero (AdaLoRA's own loop and PEFT's docstring use this order). `on_pre_optimizer_step` would mask before the
    step and let AdamW's momentum revive the masked values.
    """

    def on_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        model.base_model.update_and_allocate(state.global_step)


# ----------------------------------------------------------------------------------------------------------------
# One run: work directory with checkpoints, resume, atomic publish
# ----------------------------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint: Trainer writes trainer_state.json last, so a torn one lacks it."""
    done = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def train_run(
    cfg: TrainConfig,
    base: str | Path,
    data: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    run_name: str | None = None,
    schedule: Schedule | None = None,
    tokenizer_path: str | Path | None = None,
    profile: str | None = None,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train one run and publish it at `out`; rerunning after a crash resumes from `<out>.partial/checkpoints/`.

    Args:
        cfg: the training configuration.
        base: the base model directory (stage I output, MobileVLM layout).
        data: LLaVA-format train.json; `images`: the folder its image paths are relative to.
        out: the run directory to publish (replaced if it exists).
        schedule: per-module ranks for method `schedule`.
        tokenizer_path: used when the base model directory has no tokenizer.
        callbacks: extra Trainer callbacks (tests use one to simulate a crash).

    Returns:
        `out`. Nothing is written at `out` until training has finished.
    """
    from hydra_repro.data import load_tokenizer, model_template
    from hydra_repro.modeling import load_model
    from hydra_repro.provenance import write_sidecar

    start = time.time()
    base, out = Path(base), Path(out)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    loaded = load_model(base)
    model = loaded.model
    tokenizer = loaded.tokenizer or (load_tokenizer(tokenizer_path) if tokenizer_path else None)
    if tokenizer is None:
        raise UserError(f"{base}: no tokenizer files; pass --tokenizer (e.g. data/<profile>/tokenizer)")
    schedule = plan_schedule(cfg, model, schedule)  # bad schedules stop here, before data or PEFT work
    dataset = make_dataset(
        data, images, tokenizer, loaded.image_processor, cfg.max_length, model_template(loaded.model.config)
    )
    total_steps = total_optimizer_steps(cfg, len(dataset))
    model, ranks = attach_adapter(model, cfg, schedule, total_steps, (dataset, tokenizer.pad_token_id))

    # The work directory belongs to one exact configuration; a different one starts over.
    work = out.with_name(out.name + ".partial")
    fingerprint = {
        "config": dataclasses.asdict(cfg),
        "base_config_sha256": _sha256(base / "config.json"),
        "data_sha256": _sha256(Path(data)),
        "schedule": schedule.to_dict() if schedule is not None else None,
        "world_size": world_size(),
    }
    n_layers = model.config.num_hidden_layers
    # AdaLoRA's allocator keeps importance averages outside the model and its checkpoints are resized by the rank
    # pattern: a resumed AdaLoRA run could not match an uninterrupted one, so it restarts instead.
    resumable = cfg.method != "adalora"
    args = training_arguments(cfg, work / "checkpoints", n_layers, save=resumable)
    with args.main_process_first(local=False, desc="work directory"):  # other ranks wait for rank 0 here
        if args.process_index == 0:
            if work.exists() and _read_json(work / "work.json") != fingerprint:
                print(f"train: {work} belongs to another configuration; starting over")
                shutil.rmtree(work)
            work.mkdir(parents=True, exist_ok=True)
            (work / "work.json").write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")
        checkpoint = _last_checkpoint(work / "checkpoints") if resumable else None
    extra = [AdaLoraCallback()] if cfg.method == "adalora" else []
    trainer = make_trainer(
        model,
        args,
        dataset,
        tokenizer.pad_token_id,
        extra + list(callbacks or []),
        cfg.group_by_modality,
        cfg.effective_length_groups(),
    )
    if checkpoint is not None:
        print(f"train: resuming from {checkpoint}")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if not trainer.is_world_process_zero():
        return out

    # Trainer's timings stay out of the run, which must hash the same on any machine (they go to the sidecar)
    log = [{k: v for k, v in row.items() if k not in VOLATILE_LOG_KEYS} for row in trainer.state.log_history]
    losses = [row["loss"] for row in log if "loss" in row]
    if cfg.method == "adalora":
        final = effective_ranks(model)
        for name, r in final.items():
            ranks["modules"][name]["final"] = r
        ranks["final_rank_sum"] = sum(final.values())
        ranks["target_rank_sum"] = cfg.rank * len(final)
    run = {
        "name": run_name or out.name,
        "method": cfg.method,
        "profile": profile,
        "base_model": str(base),
        "base_model_relative": os.path.relpath(base.resolve(), out.resolve()),
        "base_config_sha256": fingerprint["base_config_sha256"],
        "data": str(data),
        "data_sha256": fingerprint["data_sha256"],
        "images": str(images),
        "n_samples": len(dataset),
        "schedule": schedule.to_dict() if schedule is not None else None,
        "config": dataclasses.asdict(cfg),
        "learning_rate": args.learning_rate,
        "global_batch_size": cfg.global_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "length_groups": cfg.effective_length_groups(),
        "seed": cfg.seed,
        "optimizer_steps": trainer.state.global_step,
        "resumed_from": checkpoint.name if checkpoint else None,
        "final_train_loss": losses[-1] if losses else None,
        "mean_train_loss": result.training_loss,
        "trainable_params": ranks["params"],
        "precision": "bf16" if args.bf16 else "fp32",
    }
    _publish(model, cfg, out, work, tokenizer, loaded.image_processor, run, ranks, log, schedule)
    # this invocation's wall time (a resumed run counts from the resume)
    write_sidecar(out, seed=cfg.seed, profile=profile, wall_time_s=round(time.time() - start, 3))
    return out


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or torn (a work directory from a crash)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _sort_target_modules(config: Path) -> None:
    """PEFT writes `target_modules` (a set) in the process's string-hash order; sorted, the run hashes the same in
    every process and on every machine. PEFT reads the list back as a set, so loading is unchanged."""
    data = json.loads(config.read_text(encoding="utf-8"))
    if isinstance(data.get("target_modules"), list):
        data["target_modules"] = sorted(data["target_modules"])
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _publish(
    model: Any,
    cfg: TrainConfig,
    out: Path,
    work: Path,
    tokenizer: Any,
    image_processor: Any,
    run: dict[str, Any],
    ranks: dict[str, Any],
    log: list[dict[str, Any]],
    schedule: Schedule | None,
) -> None:
    """Assemble the run in `<work>/final`, then move it to `out` in one rename and drop the work directory."""
    from safetensors.torch import save_file

    stage = work / "final"
    if stage.exists():
        shutil.rmtree(stage)
    if cfg.method == "full":
        model.save_pretrained(stage, tokenizer=tokenizer)  # MobileVLM layout: load_model(out) works directly
        projector = model.model.mm_projector
    else:
        stage.mkdir()
        model.save_pretrained(str(stage / ADAPTER_DIR))
        _sort_target_modules(stage / ADAPTER_DIR / "adapter_config.json")
        tokenizer.save_pretrained(str(stage))
        image_processor.save_pretrained(str(stage))
        projector = model.get_base_model().model.mm_projector.modules_to_save["default"]
        schedule.save(stage / "schedule.json")
    weights = {k: v.detach().contiguous().cpu() for k, v in projector.state_dict().items()}
    save_file(weights, str(stage / PROJECTOR_FILE), metadata={"format": "pt"})
    (stage / RANKS_FILE).write_text(json.dumps(ranks, indent=2) + "\n", encoding="utf-8")
    _write_jsonl(stage / LOG_FILE, log)
    (stage / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(stage, out)
    shutil.rmtree(work)


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
    from hydra_repro.modeling import LoadedModel, load_model

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        return load_model(run_dir, device=device, dtype=dtype)
    run = read_json(run_dir / RUN_FILE, "run record")
    if run["method"] == "full":
        return load_model(run_dir, device=device, dtype=dtype)
    from peft import PeftModel

    base_dir = Path(base) if base is not None else _resolve_base(run_dir, run)
    loaded = load_model(base_dir, device=device, dtype=dtype)
    if _sha256(base_dir / "config.json") != run["base_config_sha256"]:
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


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="its profile's `train` section sets the defaults"
    )
    p.add_argument("--profile", help="profile of params.yaml (default: the file's `profile` key)")
    p.add_argument("--run", help="run name recorded in run.json (default: the name of --out)")
    p.add_argument("--base", required=True, type=Path, help="base model directory (models/<profile>/small|large)")
    p.add_argument("--data", required=True, type=Path, help="LLaVA-format train.json")
    p.add_argument(
        "--images", type=Path, help="folder the records' image paths are relative to (default: from manifest.json)"
    )
    p.add_argument("--out", required=True, type=Path, help="run directory to publish (runs/<profile>/<run>)")
    p.add_argument("--method", choices=METHODS, help="default: the params file's, else lora")
    p.add_argument("--schedule", type=Path, help="schedule JSON (method schedule)")
    p.add_argument(
        "--plan", type=Path, help="a run plan from `hydra-repro allocate --registry` (sets method, rank, schedule)"
    )
    p.add_argument("--rank", type=int, help="lora rank; schedule: R_standard of budget C; adalora: target mean rank")
    p.add_argument("--tokenizer", type=Path, help="tokenizer directory if the base model has none")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides epochs)")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--global-batch-size", type=int)
    p.add_argument("--per-device-batch-size", type=int)
    p.add_argument("--save-steps", type=int)
    p.add_argument("--seed", type=int)


def image_folder(data: Path, images: Path | None) -> Path:
    """`--images`, else `paths.image_folder` of the manifest.json `hydra-repro prepare` wrote beside the data file."""
    if images is not None:
        return images
    manifest = data.parent / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"--images: not given and {manifest} does not exist to name the image folder")
    return data.parent / read_json(manifest, "data manifest").get("paths", {}).get("image_folder", "")


def apply_plan(args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill method / rank / schedule from a registry plan; returns the plan (None without --plan)."""
    if args.plan is None:
        return None
    plan = read_json(args.plan, "run plan (hydra-repro allocate --registry)")
    if "infeasible" in plan:
        return plan
    if args.method is not None or args.schedule is not None:
        raise UserError("--plan: sets the method and schedule itself; drop --method / --schedule")
    args.method = plan["method"]
    args.rslora = plan.get("rslora") or None
    if args.rank is None and plan.get("r_standard") is not None:
        args.rank = plan["r_standard"]
    if plan["method"] == "schedule":
        args.schedule_obj = Schedule.from_dict(plan["schedule"], where=f"{args.plan}: schedule")
    return plan


def write_infeasible(out: Path, plan: dict[str, Any]) -> None:
    """A run whose allocation is infeasible at this scale: a run record that says so, and nothing trained."""
    record = {"run": plan.get("run", out.name), "status": "infeasible", "reason": plan["infeasible"]}
    with atomic_dir(out) as tmp:
        (tmp / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    args.schedule_obj = None
    plan = apply_plan(args)
    if plan is not None and "infeasible" in plan:
        write_infeasible(args.out, plan)
        print(f"train: {args.out} is infeasible at this scale: {plan['infeasible']}")
        return 0
    cfg = train_config_from_params(
        args.params,
        args.profile,
        method=args.method,
        rank=args.rank,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        global_batch_size=args.global_batch_size,
        per_device_batch_size=args.per_device_batch_size,
        save_steps=args.save_steps,
        seed=args.seed,
        rslora=getattr(args, "rslora", None),
    )
    schedule = Schedule.load(args.schedule) if args.schedule is not None else args.schedule_obj
    profile = args.profile
    out = train_run(
        cfg,
        args.base,
        args.data,
        image_folder(args.data, args.images),
        args.out,
        run_name=args.run,
        schedule=schedule,
        tokenizer_path=args.tokenizer,
        profile=profile,
    )
    print(f"train: wrote {out}")
    return 0
