"""One stage-II run: a work directory with checkpoints, resume, and the atomic publish of the finished run."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from hydra_repro.adapters.attach import attach_adapter
from hydra_repro.adapters.peft_config import effective_ranks, plan_schedule
from hydra_repro.adapters.rundir import ADAPTER_DIR, PROJECTOR_FILE, RANKS_FILE, RUN_FILE
from hydra_repro.config.train import TrainConfig
from hydra_repro.core.schedule import Schedule
from hydra_repro.errors import UserError
from hydra_repro.io import read_json_or_none, sha256_file, write_json, write_jsonl
from hydra_repro.training.trainer import (
    AdaLoraCallback,
    make_dataset,
    make_trainer,
    total_optimizer_steps,
    training_arguments,
    world_size,
)

LOG_FILE = "train_log.jsonl"


VOLATILE_LOG_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


def _last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint: Trainer writes trainer_state.json last, so a torn one lacks it."""
    done = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _open_work_dir(work: Path, fingerprint: dict[str, Any], args: Any, resumable: bool) -> Path | None:
    """Make `work` belong to this configuration (another one's is removed); the checkpoint to resume from, if any."""
    with args.main_process_first(local=False, desc="work directory"):  # other ranks wait for rank 0 here
        if args.process_index == 0:
            if work.exists() and read_json_or_none(work / "work.json") != fingerprint:
                print(f"train: {work} belongs to another configuration; starting over")
                shutil.rmtree(work)
            work.mkdir(parents=True, exist_ok=True)
            write_json((work / "work.json"), fingerprint)
        return _last_checkpoint(work / "checkpoints") if resumable else None


def _record_adalora_ranks(ranks: dict[str, Any], final: dict[str, int], target_rank: int) -> None:
    """AdaLoRA's ranks after pruning, beside the planned ones in ranks.json."""
    for name, r in final.items():
        ranks["modules"][name]["final"] = r
    ranks["final_rank_sum"] = sum(final.values())
    ranks["target_rank_sum"] = target_rank * len(final)


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
    from hydra_repro.data.conversation import load_tokenizer, model_template
    from hydra_repro.model.checkpoint import load_model
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
        "base_config_sha256": sha256_file(base / "config.json"),
        "data_sha256": sha256_file(Path(data)),
        "schedule": schedule.to_dict() if schedule is not None else None,
        "world_size": world_size(),
    }
    n_layers = model.config.num_hidden_layers
    # AdaLoRA's allocator keeps importance averages outside the model and its checkpoints are resized by the rank
    # pattern: a resumed AdaLoRA run could not match an uninterrupted one, so it restarts instead.
    resumable = cfg.method != "adalora"
    args = training_arguments(cfg, work / "checkpoints", n_layers, save=resumable)
    checkpoint = _open_work_dir(work, fingerprint, args, resumable)
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
        _record_adalora_ranks(ranks, effective_ranks(model), cfg.rank)
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
    speed = {k: v for k, v in result.metrics.items() if k in VOLATILE_LOG_KEYS}  # Trainer's samples/s and steps/s
    write_sidecar(out, seed=cfg.seed, profile=profile, wall_time_s=round(time.time() - start, 3), trainer=speed)
    return out


def _sort_target_modules(config: Path) -> None:
    """PEFT writes `target_modules` (a set) in the process's string-hash order; sorted, the run hashes the same in
    every process and on every machine. PEFT reads the list back as a set, so loading is unchanged."""
    data = json.loads(config.read_text(encoding="utf-8"))
    if isinstance(data.get("target_modules"), list):
        data["target_modules"] = sorted(data["target_modules"])
        write_json(config, data, sort_keys=True)


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
    write_json((stage / RANKS_FILE), ranks)
    write_jsonl(stage / LOG_FILE, log)
    write_json((stage / RUN_FILE), run)
    if out.exists():
        shutil.rmtree(out)
    os.replace(stage, out)
    shutil.rmtree(work)
