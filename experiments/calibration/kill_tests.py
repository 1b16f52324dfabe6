"""Kill tests for a mini redesign in MobileVLM's own order: text-pretrained LM, projector-only stage I, LoRA stage II.

    D=/work/scratch/kill; P="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 1 .venv/bin/python"
    $P experiments/calibration/kill_tests.py text  --data $D/data --out $D/text_24x64_micro.pt --steps 2000 \
        --micro-share 0.25 --short-share 0.25          # also: --layers 8, --hidden 128, --micro-share 0
    $P experiments/calibration/kill_tests.py text  --data $D/data --out $D/text_24x64_micro_8k.pt --steps 8000 \
        --micro-share 0.25 --short-share 0.25 --eval-every 250 --stop-yesno 0.85 --save-every-eval
    $P experiments/calibration/kill_tests.py align --data $D/data --vision $D/vision --lm $D/text_24x64_micro.pt \
        --stage1 captions --steps 400 --out $D/align_captions_24x64_micro.pt      # or --stage1 all
    $P experiments/calibration/kill_tests.py align ... --stage1 captions --steps 1200 --aux-weight 1.0 \
        --out $D/align_captions_aux1_24x64_micro_8k_1200.pt   # + the auxiliary attribute loss (attribute_loss)
    $P experiments/calibration/kill_tests.py rank  --data $D/data --vision $D/vision \
        --base $D/align_all_24x64_micro.pt --steps 120 --batch 16 --seeds 0 1 2 --out $D/rank_24x64_micro.pt

($D/data and $D/vision come from `hydra-repro prepare --profile mini` and `hydra-repro pretrain-vision --profile mini`.
Each command writes <out> and <out>.json (log, accuracies, wall time). Results: docs/mini-calibration.md.)

`text`: the mini LM (preset mini-1.7b: 24 x 64, the mini word tokenizer; GPT-2 residual init 0.02 / sqrt(2L)) is
trained on text only: each train image of `pretrain.json` becomes a description (its caption, "long", or only its
attribute words, "short") followed by one question in any answer format, made by the project's own generators
(`prepare.basic_turn`, `prepare.family_turn`, caption instructions -> the caption), or the "micro" yes/no form of
micro_compare.py ("<attribute words> <word> ?"); --short-share / --micro-share set the curriculum's mix (rest long).
Loss on the answer and eos (LLaVA labels). Test: the long yes/no forms (stage-I "Is the shape in the image X?",
POPE "Is there a X Y in the image?") and colour / shape questions on captions of held-out test images (easy-VQA test).
`align`: that LM and the stage-0 tower frozen, a fresh LDP projector trained alone on `pretrain.json`'s image records:
`captions` (caption turns only; yes/no is then zero-shot) or `all` (captions + basic questions, yes/no included).
Test: the same questions with the held-out test image in place of the description.
`rank`: from one `align` base, stage II on `train.json` (the mixed-format instruction set) with uniform LoRA at
r = R/2, R, 2R (alpha = 2r, MobileVLM's rule), uniform R with alpha doubled (step-size control) and full fine-tuning;
the projector trains in every arm (MobileVLM); the same steps, batches (seeded) and LRs as the mini profile (LoRA 1e-3,
full 2e-4). 95% t-intervals over seeds per arm and on the seed-paired difference to uniform R.

All stages use MobileVLM's v1 template without its system prompt (halves the sequence on one CPU thread).
Scoring: last-position logits, argmax over the task's answer words (Yes+yes vs No+no by logsumexp; colours; shapes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hydra_repro.config.data import FAMILIES, DataConfig
from hydra_repro.config.model import PRESETS
from hydra_repro.core.stats import seed_interval
from hydra_repro.data.conversation import (
    V1,
    DataCollator,
    LlavaDataset,
    Record,
    load_records,
    load_tokenizer,
    tokenizer_image_token,
)
from hydra_repro.data.microbatch import grouped_loss
from hydra_repro.data.mini_questions import (
    CAPTION_INSTRUCTIONS,
    SHORT,
    basic_turn,
    caption,
    family_turn,
    pope_negative,
    pope_question,
)
from hydra_repro.data.mini_world import COLORS, SHAPES, DigitItem, ShapeItem, load_shapes, pixel_hash
from hydra_repro.model.vlm import build_model, lora_target_names, process_images
from hydra_repro.training.pretrain import load_pretrained_tower

TEMPLATE = dataclasses.replace(V1, name="v1-nosys", system="")
SHAPE_RE = re.compile(r"^a (?:(small|large) )?(\w+) (circle|rectangle|triangle)(?: in the (.+) of the image)?\.$")
DIGIT_RE = re.compile(r"^the handwritten number (\d+) in (\w+)\.$")


def items_from_captions(data: Path) -> list[ShapeItem | DigitItem]:
    """The train items of `pretrain.json` rebuilt from their captions (no pixels: the text stage needs none)."""
    items: list[ShapeItem | DigitItem] = []
    for rec in load_records(data / "pretrain.json", None):
        if rec.image is None:
            continue
        cap = rec.turns[0][1]
        if m := DIGIT_RE.match(cap):
            items.append(DigitItem(rec.id, None, m[1], m[2], m[1]))
        elif m := SHAPE_RE.match(cap):
            where = (m[4] or "").split()
            v = next((w for w in where if w in ("top", "bottom")), None)
            h = next((w for w in where if w in ("left", "right")), None)
            items.append(ShapeItem(rec.id, None, m[3], m[2], m[1], h, v))
    return items


def short(item: ShapeItem | DigitItem) -> str:
    if isinstance(item, DigitItem):
        return f"{item.number} {item.color}"
    return " ".join(w for w in (item.size, item.color, item.shape, item.vpos, item.hpos) if w)


def text_example(item: ShapeItem | DigitItem, rng: np.random.Generator, form: str) -> tuple[str, str]:
    """One described-scene question: (user text, answer). `form` "long" (caption) or "short" (attribute words), then
    a question in any answer format; "micro": micro_compare.py's short form, "<attribute words> <word> ?" -> yes/no."""
    if form == "micro" and isinstance(item, ShapeItem):
        attr, values = (("color", COLORS), ("shape", SHAPES))[int(rng.integers(2))]
        truth, others = rng.random() < 0.5, [v for v in values if v != getattr(item, attr)]
        word = getattr(item, attr) if truth else others[rng.integers(len(others))]
        return f"{short(item)} {word} ?", "yes" if truth else "no"
    desc = caption(item) if form == "long" else short(item)
    kind = rng.choice(["caption", "basic", "family"], p=[0.15, 0.45, 0.40])
    if kind == "caption":
        instr = CAPTION_INSTRUCTIONS[rng.integers(len(CAPTION_INSTRUCTIONS))]
        return (f"{desc}\n{instr}" if rng.random() < 0.5 else f"{instr}\n{desc}"), caption(item)
    turn = None
    while turn is None:
        turn = (
            basic_turn(item, rng)
            if kind == "basic"
            else family_turn([f for f in FAMILIES if f != "evqa"][rng.integers(len(FAMILIES) - 1)], item, rng, POPULAR)
        )
    return f"{desc}\n{turn[0]}", turn[1]


POPULAR: list[str] = []  # POPE's "popular" pairs; set from the train items in main()


def test_items(data: Path, n: int) -> list[ShapeItem]:
    """`n` easy-VQA *test* images (none of them in the train images, checked by pixel hash)."""
    cfg = DataConfig()
    seen = {pixel_hash(np.asarray(Image.open(p).convert("RGB"))) for p in (data / "images/shapes").glob("*.png")}
    items = [it for it in load_shapes("test", None, cfg) if pixel_hash(it.pixels) not in seen]
    return [items[i] for i in sorted(np.random.default_rng(7).choice(len(items), n, replace=False))]


def eval_questions(items: list[ShapeItem]) -> dict[str, list[tuple[ShapeItem, str, int]]]:
    """Per task: (item, question, index of the right answer group). yes/no groups: 0 yes, 1 no."""
    rng = np.random.default_rng(11)
    out: dict[str, list] = {"yesno": [], "pope": [], "color": [], "shape": []}
    for it in items:
        attr, values = (("color", COLORS), ("shape", SHAPES))[int(rng.integers(2))]
        truth = rng.random() < 0.5
        others = [v for v in values if v != getattr(it, attr)]
        value = getattr(it, attr) if truth else others[rng.integers(len(others))]
        article = "a " if attr == "shape" else ""
        out["yesno"].append((it, f"Is the shape in the image {article}{value}?{SHORT}", 1 - truth))
        truth = rng.random() < 0.5
        category = ("random", "popular", "adversarial")[int(rng.integers(3))]
        obj = f"{it.color} {it.shape}" if truth else pope_negative(it, category, POPULAR, rng)
        out["pope"].append((it, pope_question(obj) + SHORT, 1 - truth))
        out["color"].append((it, f"What color is the {it.shape}?{SHORT}", COLORS.index(it.color)))
        out["shape"].append((it, f"What shape is the {it.color} object?{SHORT}", SHAPES.index(it.shape)))
    return out


def answer_groups(tok) -> dict[str, list[list[int]]]:
    ids = lambda words: [tok.convert_tokens_to_ids("\u2581" + w) for w in words]  # noqa: E731
    return {
        "yesno": [ids(["Yes", "yes"]), ids(["No", "no"])],
        "pope": [ids(["Yes", "yes"]), ids(["No", "no"])],
        "color": [ids([c]) for c in COLORS],
        "shape": [ids([s]) for s in SHAPES],
    }


@torch.no_grad()
def evaluate(model, tok, questions, mode: str, batch: int = 64) -> dict[str, float]:
    """Accuracy per task; `mode` "image" puts the test image before the question, "text" its caption."""
    model.eval()
    groups, acc = answer_groups(tok), {}
    for task, rows in questions.items():
        hits = []
        for s in range(0, len(rows), batch):
            chunk = rows[s : s + batch]
            prompts = [(("<image>" if mode == "image" else caption(it)) + "\n" + q) for it, q, _ in chunk]
            ids = [
                tokenizer_image_token(
                    TEMPLATE.user_prefix + p + TEMPLATE.user_suffix + TEMPLATE.assistant_prefix, tok, TEMPLATE
                )
                for p in prompts
            ]
            width = max(map(len, ids))
            x, m = torch.full((len(ids), width), tok.pad_token_id), torch.zeros(len(ids), width, dtype=torch.long)
            for i, row in enumerate(ids):  # left padding: the last position is every row's answer position
                x[i, width - len(row) :], m[i, width - len(row) :] = torch.tensor(row), 1
            images = None
            if mode == "image":
                images = process_images([Image.fromarray(it.pixels) for it, _, _ in chunk], model.image_processor)
            logp = torch.log_softmax(model(input_ids=x, attention_mask=m, images=images).logits[:, -1].float(), -1)
            for i, (_, _, gold) in enumerate(chunk):
                scores = [torch.logsumexp(logp[i, g], 0).item() for g in groups[task]]
                hits.append(int(np.argmax(scores) == gold))
        acc[task] = round(float(np.mean(hits)), 4)
    model.train()
    return acc


def mini_model(tok, layers: int, hidden: int):
    cfg = PRESETS["mini-1.7b"]
    lm = dataclasses.replace(
        cfg.lm,
        vocab_size=len(tok),
        num_hidden_layers=layers,
        hidden_size=hidden,
        intermediate_size=round(hidden * 2.75 / 8) * 8,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return build_model(dataclasses.replace(cfg, lm=lm))


def cosine(step: int, steps: int, lr: float, warmup: float = 0.03) -> float:
    w = max(1, round(warmup * steps))
    return lr * (step + 1) / w if step < w else lr * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, steps - w)))


def train_loop(
    model, params, batches, steps: int, lr: float, log_every: int, on_log=None, stop=None, loss_fn=None
) -> list[dict]:
    loss_fn = loss_fn or (lambda part: model(**part).loss)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    model.train()
    log, window, t0 = [], [], time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine(step, steps, lr)
        loss = grouped_loss(loss_fn, next(batches), 2)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            entry = {"step": step + 1, "loss": round(float(np.mean(window)), 4), "s": round(time.time() - t0)}
            entry |= on_log() if on_log else {}
            log.append(entry)
            window = []
            print(json.dumps(entry), flush=True)
            if stop is not None and stop(entry):
                break
    return log


def loader(dataset, batch: int, seed: int, pad: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.utils.data.DataLoader(
            dataset, batch_size=batch, shuffle=True, drop_last=True, collate_fn=DataCollator(pad), generator=g
        )


def image_processor_fn(model):
    return lambda im: process_images([im], model.image_processor)[0]


def cmd_text(a, tok, items, tests) -> dict:
    rng = np.random.default_rng(a.seed)
    recs = []
    for k in range(a.examples):
        u = rng.random()
        form = "micro" if u < a.micro_share else "short" if u < a.micro_share + a.short_share else "long"
        q, ans = text_example(items[k % len(items)], rng, form)
        recs.append(Record(f"t{k}", None, ((q, ans),)))
    torch.manual_seed(a.seed)
    model = mini_model(tok, a.layers, a.hidden)
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("model.vision_tower") and "mm_projector" not in name)
        if name.endswith(("o_proj.weight", "down_proj.weight")) and "vision" not in name:
            torch.nn.init.normal_(p, std=0.02 / math.sqrt(2 * a.layers))
    ds = LlavaDataset(recs, tok, None, ".", TEMPLATE, max_length=128)
    params = [p for p in model.parameters() if p.requires_grad]
    questions = {k: v for k, v in eval_questions(tests).items()}

    def save() -> None:
        torch.save({"state": model.state_dict(), "layers": a.layers, "hidden": a.hidden}, a.out)

    def on_log() -> dict:
        acc = evaluate(model, tok, questions, "text")
        if a.save_every_eval:  # a run stopped from outside keeps its last evaluated model
            save()
        return acc

    log = train_loop(
        model,
        params,
        loader(ds, a.batch, a.seed, tok.pad_token_id),
        a.steps,
        a.lr,
        a.eval_every or a.steps // 8,
        on_log,
        (lambda e: e["yesno"] >= a.stop_yesno) if a.stop_yesno is not None else None,
    )
    save()
    return {"log": log, "final": log[-1]}


def load_base(path: str, tok, vision: Path):
    ck = torch.load(path)
    model = mini_model(tok, ck["layers"], ck["hidden"])
    model.load_state_dict(ck["state"])
    load_pretrained_tower(model, vision)
    return model, ck


def attribute_loss(model, tok, weight: float):
    """The LM loss plus `weight` x an auxiliary attribute loss on the visual tokens: their mean, compared by cosine
    (x 10) with the frozen LM's input embeddings of the 8 colour and 3 shape words, must pick the colour and the shape
    the caption names (found among the sample's supervised tokens). It pulls the projected image towards the words
    the text LM already compares, the way the caption's own tokens would sit in the prompt."""
    embed = model.get_input_embeddings().weight
    vocab = {w: tok.convert_tokens_to_ids("\u2581" + w) for w in (*COLORS, *SHAPES)}
    groups = [torch.tensor([vocab[w] for w in COLORS]), torch.tensor([vocab[w] for w in SHAPES])]
    captured: list[torch.Tensor] = []
    model.model.mm_projector.register_forward_hook(lambda _m, _i, out: captured.append(out))

    def loss_fn(part) -> torch.Tensor:
        captured.clear()
        lm_loss = model(**part).loss
        pooled = torch.nn.functional.normalize(captured[-1].mean(1), dim=-1)  # [B, H]
        aux, count = lm_loss.new_zeros(()), 0
        for ids in groups:
            logits = 10 * pooled @ torch.nn.functional.normalize(embed[ids].detach(), dim=-1).T  # [B, |group|]
            for b, row in enumerate(part["labels"]):
                hit = torch.isin(ids, row)
                if hit.sum() == 1:
                    aux = aux + torch.nn.functional.cross_entropy(logits[b], hit.float().argmax())
                    count += 1
        return lm_loss + weight * aux / max(count, 1)

    return loss_fn


def cmd_align(a, tok, items, tests) -> dict:
    model, ck = load_base(a.lm, tok, Path(a.vision))
    torch.manual_seed(a.seed)
    for m in model.model.mm_projector.modules():  # a fresh projector, seeded
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.model.mm_projector.parameters())
    for p in params:
        p.requires_grad_(True)
    recs = [r for r in load_records(Path(a.data) / "pretrain.json", None, "none") if r.image is not None]
    if a.stage1 == "captions":
        recs = [dataclasses.replace(r, turns=r.turns[:1]) for r in recs]
    ds = LlavaDataset(recs, tok, image_processor_fn(model), Path(a.data) / "images", TEMPLATE, max_length=128)
    questions = eval_questions(tests)
    before = {"text": evaluate(model, tok, questions, "text"), "image": evaluate(model, tok, questions, "image")}
    print(json.dumps({"before": before}), flush=True)
    log = train_loop(
        model,
        params,
        loader(ds, a.batch, a.seed, tok.pad_token_id),
        a.steps,
        a.lr,
        a.steps // 6,
        lambda: evaluate(model, tok, questions, "image"),
        loss_fn=attribute_loss(model, tok, a.aux_weight) if a.aux_weight else None,
    )
    torch.save({"state": model.state_dict(), "layers": ck["layers"], "hidden": ck["hidden"]}, a.out)
    return {"before": before, "log": log, "final": log[-1]}


def cmd_rank(a, tok, items, tests) -> dict:
    from peft import LoraConfig, get_peft_model
    from scipy.stats import t as student

    recs = load_records(Path(a.data) / "train.json", None, "none")
    questions = eval_questions(tests)
    R = a.rank
    if a.alpha is None:  # MobileVLM's alpha = 2r, plus R with alpha doubled (the step-size control)
        arms = {
            f"lora_r{R // 2}": (R // 2, R),
            f"lora_r{R}": (R, 2 * R),
            f"lora_r{2 * R}": (2 * R, 4 * R),
            f"lora_r{R}_alpha{4 * R}": (R, 4 * R),
            "full": None,
        }
    else:  # one alpha for every rank: the update's scale alpha / r shrinks as r grows, so rank is not step size
        arms = {f"lora_r{r}": (r, a.alpha) for r in (a.ranks or (R // 2, R, 2 * R))}
    arms = {k: v for k, v in arms.items() if not a.arms or k in a.arms}
    results: dict[str, dict] = {}
    base_model, _ = load_base(a.base, tok, Path(a.vision))
    results["base"] = {"-": evaluate(base_model, tok, questions, "image")}
    print(json.dumps(results["base"]), flush=True)
    for arm, spec in arms.items():
        results[arm] = {}
        for seed in a.seeds:
            t0 = time.time()
            model, _ = load_base(a.base, tok, Path(a.vision))
            torch.manual_seed(seed)
            if spec is None:
                for name, p in model.named_parameters():
                    p.requires_grad_(not name.startswith("model.vision_tower"))
                lr = a.full_lr
            else:
                cfg = LoraConfig(
                    r=spec[0],
                    lora_alpha=spec[1],
                    target_modules=[n for n in lora_target_names(model) if n.rsplit(".", 1)[1] in a.targets],
                    bias="none",
                    lora_dropout=0.05,
                    modules_to_save=None if a.freeze_projector else ["mm_projector"],
                    task_type="CAUSAL_LM",
                )
                model, lr = get_peft_model(model, cfg), a.lora_lr
            params = [p for p in model.parameters() if p.requires_grad]
            ds = LlavaDataset(recs, tok, image_processor_fn(base_model), Path(a.data) / "images", TEMPLATE, 160)
            log = train_loop(model, params, loader(ds, a.batch, seed, tok.pad_token_id), a.steps, lr, a.steps)
            acc = evaluate(model, tok, questions, "image")
            results[arm][seed] = acc | {
                "loss": log[-1]["loss"],
                "params": sum(p.numel() for p in params),
                "s": round(time.time() - t0),
            }
            print(json.dumps({"arm": arm, "seed": seed, **results[arm][seed]}), flush=True)
    summary = {}
    ref = f"lora_r{R}"
    for arm in arms if ref in arms else []:
        for task in [*questions, "loss"]:  # loss: the mean training loss over all steps
            xs = [results[arm][s][task] for s in a.seeds]
            mean, half = seed_interval(xs)
            d = np.array(xs) - np.array([results[ref][s][task] for s in a.seeds])
            dh = student.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
            summary[f"{arm}/{task}"] = {
                "seeds": xs,
                "mean": round(mean, 4),
                "ci95": round(half, 4),
                "diff_vs_R": round(float(d.mean()), 4),
                "diff_ci95": round(float(dh), 4),
            }
    return {"results": results, "summary": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=["text", "align", "rank"])
    p.add_argument("--data", required=True)
    p.add_argument("--vision")
    p.add_argument("--out", required=True)
    p.add_argument("--lm", help="align: the text LM (text's --out)")
    p.add_argument("--base", help="rank: the stage-I base (align's --out)")
    p.add_argument("--stage1", choices=["captions", "all"], default="captions")
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--examples", type=int, default=120000, help="text: distinct generated examples")
    p.add_argument("--short-share", type=float, default=0.5, help="text: share of short (attribute-word) forms")
    p.add_argument("--micro-share", type=float, default=0.0, help="text: share of micro forms (<word>s <word> ?)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rank", type=int, default=4, help="rank: R")
    p.add_argument("--lora-lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=int, help="rank: one LoRA alpha for every arm (default: alpha = 2r)")
    p.add_argument("--ranks", type=int, nargs="+", help="rank: with --alpha, these ranks (default R/2, R, 2R)")
    p.add_argument(
        "--targets",
        nargs="+",
        default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        help="rank: the LoRA target projections (default all seven)",
    )
    p.add_argument(
        "--freeze-projector", action="store_true", help="rank: LoRA arms keep the stage-I projector (default: trained)"
    )
    p.add_argument(
        "--aux-weight", type=float, default=0.0, help="align: weight of the auxiliary attribute loss (0: none)"
    )
    p.add_argument("--arms", nargs="+", help="rank: only these arms (e.g. lora_r2 lora_r4)")
    p.add_argument("--full-lr", type=float, default=2e-4)
    p.add_argument("--n-test", type=int, default=300, help="held-out test images (one question per task each)")
    p.add_argument("--eval-every", type=int, default=0, help="text: steps between evaluations (0: steps // 8)")
    p.add_argument("--stop-yesno", type=float, help="text: stop (and save) once held-out long yes/no reaches this")
    p.add_argument("--save-every-eval", action="store_true", help="text: overwrite --out at every evaluation")
    a = p.parse_args()
    torch.set_num_threads(1)
    random.seed(a.seed)
    data = Path(a.data)
    tok = load_tokenizer(data / "tokenizer")
    items = items_from_captions(data)
    from collections import Counter

    combos = Counter(f"{it.color} {it.shape}" for it in items if isinstance(it, ShapeItem))
    POPULAR.extend(o for o, _ in sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
    t0 = time.time()
    out = {"text": cmd_text, "align": cmd_align, "rank": cmd_rank}[a.cmd](a, tok, items, test_items(data, a.n_test))
    out |= {"args": vars(a), "wall_s": round(time.time() - t0)}
    Path(a.out).with_suffix(".json").write_text(json.dumps(out, indent=1))
    print(json.dumps({"wall_s": out["wall_s"], "final": out.get("final", out.get("summary"))}))


if __name__ == "__main__":
    main()
