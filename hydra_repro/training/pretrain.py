"""Stage I (MobileVLM's pre-training): the base VLM, from scratch at mini scale or the LDP projector alone on the
paper's checkpoints."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra_repro.config.pretrain import PretrainConfig
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, read_json, write_json, write_jsonl
from hydra_repro.provenance import write_sidecar
from hydra_repro.training.device import check_launch, runtime


def _is_plain_lm(path: Path) -> bool:
    """A causal-LM checkpoint without MobileVLM's mm_* keys (MobileLLaMA, the converted SmolLM2)."""
    config = read_json(path / "config.json", "pretrain.init config.json") if path.is_dir() else {}
    return isinstance(config, dict) and config.get("model_type") == "llama" and "mm_projector_type" not in config


def model_section(profile_section: dict[str, Any], model_name: str, where: str) -> dict[str, Any]:
    models = profile_section.get("models")
    if not isinstance(models, dict) or model_name not in models:
        raise UserError(f"{where}.models: no model {model_name!r}; expected one of {sorted(models or {})}")
    return models[model_name]


def recorded_tower(vision_dir: Path) -> Path:
    """The CLIP directory behind `vision_dir`: itself when it holds a checkpoint, else the `path` that
    `pretrain-vision` recorded in `vision_pretrain.json` (paper profile: the hub's CLIP is recorded, not copied)."""
    record = vision_dir / "vision_pretrain.json"
    if (vision_dir / "config.json").is_file() or not record.is_file():
        return vision_dir
    path = read_json(record, "stage-0 record").get("path")
    if not isinstance(path, str):
        raise UserError(f"{record}: key 'path' is {path!r}; expected the CLIP directory `pretrain-vision` recorded")
    return Path(path)


def load_pretrained_tower(model: Any, vision_dir: Path) -> dict[str, Any]:
    """Copy the stage-0 tower in `vision_dir` (a CLIP directory) into `model` and freeze it; returns its summary."""
    from transformers import CLIPVisionModel

    from hydra_repro.model.hf_config import _vision_config_dict

    if not (vision_dir / "config.json").is_file():
        raise UserError(f"--vision: {vision_dir} has no config.json (run `hydra-repro pretrain-vision` first)")
    clip = CLIPVisionModel.from_pretrained(str(vision_dir))
    ours, theirs = _vision_config_dict(model.model.vision_tower.clip.config), _vision_config_dict(clip.config)
    if ours != theirs:
        diff = {k: (theirs[k], ours[k]) for k in ours if ours[k] != theirs[k]}
        raise UserError(f"--vision: {vision_dir} does not fit the model's tower; (its, expected) values: {diff}")
    model.model.vision_tower.clip.load_state_dict(clip.state_dict())
    model.set_vision_tower_trainable(False)
    summary_path = vision_dir / "vision_pretrain.json"
    summary = read_json(summary_path, "vision pretraining summary") if summary_path.is_file() else {}
    return {"path": str(vision_dir), "held_out_accuracy": summary.get("held_out_accuracy")}


def pretrain_arguments(cfg: PretrainConfig, precision: str, output_dir: str | Path) -> Any:
    """TrainingArguments of stage I: MobileVLM's `run_v1.sh` pre-training recipe from the `pretrain` section (AdamW,
    cosine with linear warmup, no checkpoints: stage I is short, and a crash re-runs it)."""
    from transformers import TrainingArguments

    from hydra_repro.training.trainer import shared_arguments, world_size

    check_launch()
    per_device, accumulation = cfg.gradient_accumulation(world_size())
    rt = runtime(precision)
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=cfg.lr,
        max_steps=cfg.steps,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a share of the steps
        weight_decay=cfg.weight_decay,
        adam_beta2=cfg.adam_beta2,
        optim="adamw_torch",
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.log_every,
        save_strategy="no",
        dataloader_drop_last=True,
        **shared_arguments(rt, cfg.gradient_checkpointing),
    )


def stage_i_model(
    cfg: PretrainConfig, model_cfg: Any, data_dir: Path, paths: dict[str, str], vision_dir: Path | None
) -> tuple[Any, Any, dict[str, Any] | None]:
    """(model with stage I's trainable parameters, tokenizer, stage-0 tower summary or None) for the section's mode:
    `from_scratch` builds everything (the tower from stage 0 when given), `projector` loads or assembles MobileVLM and
    trains the LDP projector alone."""
    from hydra_repro.data.conversation import load_tokenizer
    from hydra_repro.model.checkpoint import assemble_model, load_model
    from hydra_repro.model.vlm import build_model

    if cfg.mode == "from_scratch":
        tokenizer = load_tokenizer(data_dir / paths.get("tokenizer", "tokenizer"))
        lm = dataclasses.replace(
            model_cfg.lm,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = build_model(dataclasses.replace(model_cfg, lm=lm))
        for p in model.parameters():
            p.requires_grad_(True)
        tower = load_pretrained_tower(model, Path(vision_dir)) if vision_dir is not None else None
        if tower is not None and cfg.train_vision_tower:
            model.set_vision_tower_trainable(True)
    else:  # MobileVLM stage I: only the projector learns
        init, tower_dir = Path(cfg.init), vision_dir or cfg.vision_tower_path or None
        tower_dir = recorded_tower(Path(tower_dir)) if tower_dir is not None else None
        if _is_plain_lm(init):  # MobileLLaMA / SmolLM2: the VLM is assembled here, the projector starts fresh
            if tower_dir is None:
                raise UserError(
                    f"pretrain.init: {init} is a plain LM; give the vision tower (--vision or "
                    "pretrain.vision_tower_path)"
                )
            loaded = assemble_model(init, tower_dir, cfg.seed, cfg.conv_template or None)
        else:
            loaded = load_model(init, vision_tower_path=tower_dir)
        model, tokenizer = loaded.model, loaded.tokenizer
        if tokenizer is None:
            raise UserError(f"pretrain.init: {cfg.init} has no tokenizer files")
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.model.mm_projector.parameters():
            p.requires_grad_(True)
        tower = None
    return model, tokenizer, tower


def pretrain(
    cfg: PretrainConfig,
    model_cfg: Any,
    data_dir: Path,
    out: Path,
    profile: str,
    model_name: str,
    vision_dir: Path | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Train stage I with HF Trainer and write the base model to `out`; returns the summary (`out/pretrain.json`).

    Trainer brings the device, bf16 (`precision`, the profile's `train.precision`), gradient accumulation to
    `batch_size`, gradient checkpointing and `accelerate launch` / DeepSpeed; the LR schedule is HF's cosine with
    linear warmup (it starts at 0, as MobileVLM's).

    With `vision_dir` (from_scratch mode) the tower comes from stage 0 and stays frozen, as MobileVLM keeps CLIP
    frozen; without it the tower trains from scratch with the rest."""
    import torch

    from hydra_repro.data.conversation import LlavaDataset, get_template, load_records, model_template
    from hydra_repro.training.trainer import ImageToTensor, make_trainer, world_size

    torch.set_num_threads(cfg.num_threads)
    rt = runtime(precision)  # a forced bf16 without a GPU stops here, before any model is loaded
    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    manifest = read_json(manifest_path, "data manifest (run `hydra-repro prepare` for this profile first)")
    paths = manifest.get("paths", {})
    # paper: LLaVA-558K's images are not 665K's (`pretrain_image_folder`); mini/smoke share one folder
    images = data_dir / paths.get("pretrain_image_folder", paths.get("image_folder", ""))
    records = load_records(data_dir / paths.get("pretrain", "pretrain.json"), images)

    torch.manual_seed(cfg.seed)
    model, tokenizer, tower = stage_i_model(cfg, model_cfg, data_dir, paths, vision_dir)
    dataset = LlavaDataset(
        records,
        tokenizer,
        ImageToTensor(model.image_processor),
        images,
        max_length=cfg.max_length,
        template=get_template(cfg.template) if cfg.template else model_template(model.config),
    )
    per_device, _ = cfg.gradient_accumulation(world_size())
    if len(dataset) < per_device:
        raise UserError(f"{data_dir}: {len(dataset)} pretraining records < a batch of {per_device}")
    params = [p for p in model.parameters() if p.requires_grad]
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="pretrain.") as work:
        trainer = make_trainer(
            model,
            pretrain_arguments(cfg, precision, work),
            dataset,
            tokenizer.pad_token_id,
            [],
            False,
            cfg.length_groups,
        )
        trainer.train()
    wall = time.time() - start
    log = [
        {"step": row["step"], "loss": row["loss"], "lr": row["learning_rate"]}
        for row in trainer.state.log_history
        if "loss" in row
    ]
    model.eval()
    model.set_vision_tower_trainable(False)  # stage II keeps the tower frozen, as MobileVLM does
    if not trainer.is_world_process_zero():
        return {}

    summary = {
        "profile": profile,
        "model": model_name,
        "config": dataclasses.asdict(cfg),
        "model_config": dataclasses.asdict(model_cfg) if model_cfg is not None else None,
        "records": len(dataset),
        "steps": cfg.steps,
        "final_loss": log[-1]["loss"] if log else None,
        "trainable_params": sum(p.numel() for p in params),
        "vision_tower": tower,
    }
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, tokenizer=tokenizer)
        write_jsonl(tmp / "pretrain_log.jsonl", log)
        write_json((tmp / "pretrain.json"), summary)
    timing = {"wall_time_s": round(wall, 1), "s_per_step": round(wall / max(1, cfg.steps), 3), "device": rt.device}
    write_sidecar(out, seed=cfg.seed, profile=profile, **timing)
    return summary | timing
