"""Stage 0: the CLIP analog, a small ViT trained on the mini world's attribute labels."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from hydra_repro.config.pretrain import VisionPretrainConfig
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, read_json, write_json, write_jsonl
from hydra_repro.provenance import write_sidecar
from hydra_repro.training.device import runtime


def lr_at(step: int, cfg: VisionPretrainConfig) -> float:
    """Stage I's schedule (`training.pretrain.lr_at`), with the cosine's argument rounded as the committed stage-0
    tower was trained (pi * k / n, not pi * (k / n): the last bit of some rates differs)."""
    warmup = max(1, math.ceil(cfg.warmup_ratio * cfg.steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, cfg.steps - warmup)))


def load_vision_labels(data_dir: Path) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """(heads, records) of `vision.json`, checked: every record names an existing image and valid class indices."""
    path = data_dir / "vision.json"
    doc = read_json(path, "vision labels (run `hydra-repro prepare` for this profile first)")
    if not isinstance(doc, dict) or not isinstance(doc.get("heads"), dict) or not isinstance(doc.get("records"), list):
        raise UserError(f"{path}: expected an object with 'heads' (name -> classes) and 'records' (a list)")
    heads = doc["heads"]
    for i, rec in enumerate(doc["records"]):
        labels = rec.get("labels") if isinstance(rec, dict) else None
        if not isinstance(labels, dict) or not isinstance(rec.get("image"), str):
            raise UserError(f"{path}: record {i} is {rec!r}; expected {{'image': str, 'labels': {{head: index}}}}")
        for head, k in labels.items():
            if head not in heads or not isinstance(k, int) or not 0 <= k < len(heads[head]):
                raise UserError(
                    f"{path}: record {i}: label {head}={k!r}; expected one of heads {sorted(heads)}, a class index"
                )
        if not (data_dir / "images" / rec["image"]).is_file():
            raise UserError(f"{path}: record {i}: image {data_dir / 'images' / rec['image']} not found")
    return heads, doc["records"]


def labelled_images(cfg: VisionPretrainConfig, data_dir: Path) -> tuple[dict[str, list[str]], list[Any], Any]:
    """(heads, every image decoded, labels as an (images, heads) tensor with -100 where a head does not apply);
    every image is checked here, before the tower is built."""
    import torch
    from PIL import Image

    from hydra_repro.data.conversation import check_image

    heads, records = load_vision_labels(data_dir)
    if len(records) - cfg.holdout < cfg.batch_size:
        raise UserError(
            f"pretrain_vision.holdout: {cfg.holdout} of {len(records)} images held out leaves fewer than "
            f"batch_size {cfg.batch_size} to train on"
        )
    images = []
    for i, rec in enumerate(records):
        path = data_dir / "images" / rec["image"]
        check_image(path, f"{data_dir / 'vision.json'}: record {i}")
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    names = list(heads)
    labels = torch.full((len(records), len(names)), -100, dtype=torch.long)
    for i, rec in enumerate(records):
        for head, k in rec["labels"].items():
            labels[i, names.index(head)] = k
    return heads, images, labels


def pretrain_vision(
    cfg: VisionPretrainConfig, vision: Any, data_dir: Path, out: Path, profile: str, precision: str = "auto"
) -> dict[str, Any]:
    """Train the tower of `vision` (a modeling.VisionConfig) on `data_dir/vision.json`; write it to `out`."""
    import numpy as np
    import torch
    from tqdm import tqdm
    from transformers import CLIPVisionModel

    from hydra_repro.model.hf_config import clip_config
    from hydra_repro.model.vision import AttributeHeads, CLIPVisionTower
    from hydra_repro.model.vlm import make_image_processor, process_images

    torch.set_num_threads(cfg.num_threads)
    rt = runtime(precision)  # a hand-written loop (Trainer has no multi-head probe loss); device and bf16 from here
    heads, images, labels = labelled_images(cfg, Path(data_dir))
    names = list(heads)
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    held, train_idx = order[: cfg.holdout], order[cfg.holdout :]

    torch.manual_seed(cfg.seed)
    tower = CLIPVisionTower(clip_config(vision), vision.select_layer)
    processor = make_image_processor(vision.image_size)
    probe = AttributeHeads(vision.hidden_size, [len(heads[h]) for h in names])
    tower.to(rt.device)
    probe.to(rt.device)
    params = [*tower.parameters(), *probe.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def batch_pixels(idx: Any) -> torch.Tensor:
        return process_images([images[i] for i in idx], processor).to(rt.device)

    def accuracy() -> dict[str, float | None]:
        tower.eval()
        correct, count = torch.zeros(len(names)), torch.zeros(len(names))
        with torch.no_grad():
            for start in range(0, len(held), 256):
                idx = held[start : start + 256]
                with rt.autocast():
                    pred = torch.stack([o.argmax(-1) for o in probe(tower(batch_pixels(idx)))], 1).cpu()
                y = labels[idx]
                correct += ((pred == y) & (y >= 0)).sum(0)
                count += (y >= 0).sum(0)
        tower.train()
        return {h: (round(float(c / n), 4) if n else None) for h, c, n in zip(names, correct, count, strict=True)}

    rng = np.random.default_rng(cfg.seed + 1)
    log, window, start = [], [], time.time()
    tower.train()
    for step in tqdm(range(cfg.steps), desc="pretrain vision", unit="step", mininterval=5):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx = rng.choice(train_idx, size=cfg.batch_size, replace=False)
        y = labels[idx].to(rt.device)
        with rt.autocast():
            logits = probe(tower(batch_pixels(idx)))
            # heads absent from the whole batch (e.g. digits in an all-shape batch) contribute nothing
            losses = [
                torch.nn.functional.cross_entropy(o.float(), y[:, j], ignore_index=-100)
                for j, o in enumerate(logits)
                if (y[:, j] >= 0).any()
            ]
            loss = torch.stack(losses).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            log.append({"step": step + 1, "loss": sum(window) / len(window)})
            window = []
    wall = time.time() - start
    held_acc = accuracy() if len(held) else {}
    tower.eval()
    tower.to("cpu")

    summary = {
        "profile": profile,
        "mode": cfg.mode,
        "config": dataclasses.asdict(cfg),
        "vision_config": dataclasses.asdict(vision),
        "images": len(images),
        "held_out_images": len(held),
        "held_out_accuracy": held_acc,
        "final_loss": log[-1]["loss"] if log else None,
    }
    with atomic_dir(out) as tmp:
        clip: CLIPVisionModel = tower.clip
        clip.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        write_jsonl(tmp / "vision_pretrain_log.jsonl", log)
        write_json((tmp / "vision_pretrain.json"), summary)
    timing = {"wall_time_s": round(wall, 1), "s_per_step": round(wall / cfg.steps, 4), "device": rt.device}
    write_sidecar(out, seed=cfg.seed, profile=profile, **timing)
    return summary | timing


def record_pretrained(cfg: VisionPretrainConfig, out: Path, profile: str) -> dict[str, Any]:
    """Paper profile: check the local CLIP directory and record it (nothing is trained)."""
    from hydra_repro.model.checkpoint import _download_hint
    from hydra_repro.model.hf_config import PAPER_VISION_TOWER

    path = Path(cfg.path)
    if not (path / "config.json").is_file():
        raise UserError(f"pretrain_vision.path: {path} has no config.json; {_download_hint(PAPER_VISION_TOWER)}")
    summary = {"profile": profile, "mode": cfg.mode, "path": str(path.resolve())}
    with atomic_dir(out) as tmp:
        write_json((tmp / "vision_pretrain.json"), summary)
    write_sidecar(out, profile=profile)
    return summary
