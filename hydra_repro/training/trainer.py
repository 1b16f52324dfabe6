"""The HF Trainer for instruction tuning: dataset, TrainingArguments from a TrainConfig, length-grouped sampling,
and AdaLoRA's rank-update callback."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from hydra_repro.config.train import TrainConfig
from hydra_repro.errors import UserError
from hydra_repro.training.device import check_launch, runtime


class ImageToTensor:
    """PIL image -> (3, S, S) pixels with MobileVLM's pad-to-square preprocessing (picklable for data workers)."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, image: Any) -> torch.Tensor:
        from hydra_repro.model.vlm import process_images

        return process_images([image], self.image_processor)[0]


def make_dataset(
    data: str | Path, images: str | Path, tokenizer: Any, image_processor: Any, max_length: int, template: Any = None
) -> Any:
    """The LLaVA-format training set, validated up front (a missing image fails here, not at step 10,000).

    `template`: the model's conversation template (`data.model_template(config)`); None: MobileVLM's v1."""
    from hydra_repro.data.conversation import V1, LlavaDataset, load_records

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

    check_launch()
    per_device, accumulation = cfg.gradient_accumulation(world_size())
    rt = runtime(cfg.precision)
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
        logging_steps=cfg.logging_steps,
        save_strategy="steps" if save else "no",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        dataloader_num_workers=cfg.dataloader_num_workers,
        **shared_arguments(rt, cfg.gradient_checkpointing),
    )


def shared_arguments(rt: Any, gradient_checkpointing: bool) -> dict[str, Any]:
    """The TrainingArguments every stage on Trainer shares: device and precision, checkpointing, our collator."""
    return dict(
        bf16=rt.bf16,
        use_cpu=rt.device == "cpu",
        activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        remove_unused_columns=False,  # the dataset's `image` key is consumed by our collator, not by forward
        label_names=["labels"],
        dataloader_pin_memory=rt.device == "cuda",
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

    from hydra_repro.data.conversation import DataCollator
    from hydra_repro.data.microbatch import grouped_loss

    sampler = None
    if group_by_modality:
        from hydra_repro.data.sampling import ModalityGroupedSampler, modality_lengths

        # LLaVA's sampler groups by modality per optimizer step: world size x accumulation batches of one modality
        # (one GPU accumulating 4 x 32 = MobileVLM's 8 x 16 x 1 in grouping)
        groups = max(1, args.world_size) * args.gradient_accumulation_steps
        sampler = ModalityGroupedSampler(
            modality_lengths(dataset.records), args.per_device_train_batch_size, groups, args.seed
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
