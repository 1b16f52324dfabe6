"""Eq. 1's average gradient norms: a Trainer callback that records the norm of every LoRA matrix per step, and
their per-layer and per-component averages."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from hydra_repro.config.gradnorm import GradNormConfig
from hydra_repro.constants import COMPONENT_PARENT, COMPONENTS
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_write_json

FACTORS = ("A", "B")


def lora_parameters(peft_model: Any, n_layers: int) -> list[torch.nn.Parameter]:
    """The LoRA tensors in (layer, COMPONENTS, A/B) order: flat index ((l * 7) + c) * 2 + f."""
    params = dict(peft_model.named_parameters())
    out = []
    for l in range(n_layers):
        for c in COMPONENTS:
            for f in FACTORS:
                name = f"base_model.model.model.layers.{l}.{COMPONENT_PARENT[c]}.{c}.lora_{f}.default.weight"
                if name not in params:
                    raise ValueError(f"no LoRA parameter {name!r}: not a LoRA model on all 7 projections")
                out.append(params[name])
    return out


class GradNormCallback(TrainerCallback):
    """Records, per optimizer step, the gradient norm of every LoRA tensor before and after clipping.

    `records[k]` = {"step": 1-based step, "pre": (L, 7, 2) tensor, "post": (L, 7, 2) tensor}.
    """

    def __init__(self, peft_model: Any, n_layers: int) -> None:
        self.n_layers = n_layers
        self.params = lora_parameters(peft_model, n_layers)
        self._latest: list[torch.Tensor | None] = [None] * len(self.params)
        self.records: list[dict[str, Any]] = []
        # Post-accumulate hooks run during backward, before HF's clipping; the last micro-batch's call sees the sum.
        self._handles = [p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(self.params)]

    def _hook(self, i: int) -> Any:
        def hook(p: torch.Tensor) -> None:
            self._latest[i] = torch.linalg.vector_norm(p.grad.detach().float())

        return hook

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        zero = torch.zeros(())
        pre = torch.stack([n if n is not None else zero for n in self._latest]).cpu().double()
        post = torch.stack(
            [torch.linalg.vector_norm(p.grad.float()) if p.grad is not None else zero for p in self.params]
        )
        shape = (self.n_layers, len(COMPONENTS), len(FACTORS))
        self.records.append(
            {"step": state.global_step + 1, "pre": pre.view(shape), "post": post.cpu().double().view(shape)}
        )
        self._latest = [None] * len(self.params)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def summarize(records: list[dict[str, Any]], skip_first_steps: int | None = None) -> dict[str, Any]:
    """Eq. 1 from the per-step (L, 7, 2) norms: per-layer and per-component averages, the series, the A/B split.

    `skip_first_steps` None skips the leading steps in which some A gradient is exactly zero (B still zero).
    """
    pre = torch.stack([r["pre"] for r in records])  # (T, L, 7, 2)
    post = torch.stack([r["post"] for r in records])
    if skip_first_steps is None:
        a_alive = (pre[..., 0] > 0).flatten(1).all(1).tolist()
        skip_first_steps = a_alive.index(True) if True in a_alive else len(records)
    if len(records) <= skip_first_steps:
        raise UserError(
            f"gradnorm: {len(records)} steps recorded, {skip_first_steps} skipped (zero A gradients while B = 0): "
            "nothing left to average; run more steps"
        )
    kept = slice(skip_first_steps, None)

    def averages(x: torch.Tensor) -> dict[str, Any]:
        return {
            "layer_norms": x[kept].mean(dim=(0, 2, 3)).tolist(),  # mean over the 14 tensors, then over steps
            "component_norms": dict(zip(COMPONENTS, x[kept].mean(dim=(0, 1, 3)).tolist())),
        }

    total_pre = pre.flatten(1).sum(1)
    return {
        **averages(pre),
        "skip_first_steps": skip_first_steps,
        "post_clip": averages(post),
        "ab_split": {f: pre[kept, :, :, i].mean(dim=(0, 2)).tolist() for i, f in enumerate(FACTORS)},
        "series": {
            "step": [r["step"] for r in records],
            "layer_norms": pre.mean(dim=(2, 3)).tolist(),
            "component_norms": pre.mean(dim=(1, 3)).tolist(),
            # clipping scales all gradients of a step alike: post / pre of the summed norms is that factor
            "clip_scale": torch.where(total_pre > 0, post.flatten(1).sum(1) / total_pre, 1.0).tolist(),
        },
    }


DEFINITION = {
    "theta_i": "each LoRA tensor separately: lora_A and lora_B of the 7 projections (n = 14 per layer)",
    "norm": "Frobenius (L2) norm of the tensor's gradient of one optimizer step (summed over accumulation)",
    "clipping": "pre-clip (read during backward); post_clip holds the clipped values",
    "layer_norms": "mean over the 14 tensors of a layer, then over steps; layer 1 first",
    "component_norms": "mean over A and B of the component, over all layers and steps",
    "steps": "optimizer steps skip_first_steps+1 .. steps: the leading steps with zero A gradients (B = 0) are skipped",
}


def run_gradnorm(
    train_cfg: Any,
    gcfg: GradNormConfig,
    base: str | Path,
    data: str | Path,
    images: str | Path,
    out: str | Path | None = None,
    *,
    tokenizer_path: str | Path | None = None,
    profile: str | None = None,
) -> tuple[dict[str, Any], GradNormCallback]:
    """Train uniform LoRA for `gcfg.steps` steps, record eq. 1, write `out` atomically; returns (result, callback)."""
    from hydra_repro.adapters import attach
    from hydra_repro.core.schedule import Schedule
    from hydra_repro.data.conversation import load_tokenizer, model_template
    from hydra_repro.model.checkpoint import load_model
    from hydra_repro.provenance import write_sidecar
    from hydra_repro.training import trainer

    if trainer.world_size() > 1:
        raise UserError("gradnorm: run it in a single process (hooks would read gradients before DDP's all-reduce)")
    start = time.time()
    rank = gcfg.rank if gcfg.rank is not None else train_cfg.rank
    cfg = dataclasses.replace(train_cfg, method="lora", rank=rank, max_steps=gcfg.steps, logging_steps=1)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    loaded = load_model(base)
    tokenizer = loaded.tokenizer or (load_tokenizer(tokenizer_path) if tokenizer_path else None)
    if tokenizer is None:
        raise UserError(f"{base}: no tokenizer files; pass --tokenizer (e.g. data/<profile>/tokenizer)")
    n_layers = loaded.model.config.num_hidden_layers
    template = model_template(loaded.model.config)
    dataset = trainer.make_dataset(data, images, tokenizer, loaded.image_processor, cfg.max_length, template)
    model, ranks = attach.attach_adapter(loaded.model, cfg, Schedule.uniform(n_layers, rank), cfg.max_steps)
    callback = GradNormCallback(model, n_layers)
    with tempfile.TemporaryDirectory(prefix="gradnorm-") as tmp:
        args = trainer.training_arguments(cfg, tmp, n_layers, save=False)
        trainer = trainer.make_trainer(
            model, args, dataset, tokenizer.pad_token_id, [callback], cfg.group_by_modality, cfg.length_groups
        )
        trainer.train()
    callback.remove()
    losses = {row["step"]: row["loss"] for row in trainer.state.log_history if "loss" in row}
    result = summarize(callback.records, gcfg.skip_first_steps)
    result["series"]["loss"] = [losses.get(s) for s in result["series"]["step"]]
    result = {
        "generated_by": "hydra-repro gradnorm (hydra_repro/training/gradnorm.py)",
        "layer_norms": result.pop("layer_norms"),
        "component_norms": result.pop("component_norms"),
        "definition": DEFINITION,
        **result,
        "rank": rank,
        "steps": gcfg.steps,
        "learning_rate": args.learning_rate,
        "max_grad_norm": cfg.max_grad_norm,
        "lora_params": ranks["params"]["lora"],
        "base_model": str(base),
        "data": str(data),
        "n_samples": len(dataset),
        "config": dataclasses.asdict(cfg),
    }
    if out is not None:
        atomic_write_json(out, result)
        write_sidecar(out, seed=cfg.seed, profile=profile, wall_time_s=round(time.time() - start, 3))
    return result, callback
