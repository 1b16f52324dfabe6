"""Can a from-scratch mini LM learn text-only yes/no comparison, and how fast?

    .venv/bin/python experiments/calibration/micro_compare.py --layers 24 --init hf --format short --steps 600

A bare Llama LM of the mini width (hidden 64, 4 heads, intermediate 176, the mini word tokenizer) is trained from
scratch on one skill the yes/no benchmarks need: compare a word of the question with a word of the description.
Examples come from the `Is the shape in the image <colour|shape>?` turns of `pretrain.json` (train images only;
400 held out), as text: `--format described` is the full sentence ("USER: Read the description: a large blue
rectangle ... Is the shape in the image red? ASSISTANT:", ~28 tokens), `--format short` keeps only the attribute
words ("blue rectangle red ?", 4 tokens); `--format mixed` trains on both forms of every training question and
tests the described one. The loss is cross-entropy over the vocabulary at the answer position
(target "yes" / "no"); accuracy compares the two logits on the held-out 400 (51% "yes").

`--init hf` is transformers' Llama initialisation (every linear N(0, 0.02)), which the mini pretraining uses;
`--init scaled` draws the residual-branch outputs (o_proj, down_proj) from N(0, 0.02 / sqrt(2 x layers)), as GPT-2
does; `--init zero` zeroes them, as nanochat does. AdamW (no weight decay), 3% warmup then cosine, batch 32, 1 thread.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hydra_repro.data.conversation import load_tokenizer

ATTRIBUTES = {"red", "green", "blue", "yellow", "teal", "brown", "gray", "black", "circle", "rectangle", "triangle"}


def examples(data: str, fmt: str) -> list[tuple[str, str]]:
    out = []
    for rec in json.load(open(f"{data}/pretrain.json")):
        conv = rec["conversations"]
        if not rec["id"].startswith("shapes"):
            continue
        caption = conv[1]["value"]
        for i in range(2, len(conv), 2):
            question, answer = conv[i]["value"].split("\n")[0], conv[i + 1]["value"].lower()
            if not question.startswith("Is the shape in the image") or answer not in ("yes", "no"):
                continue
            if fmt == "described":
                out.append((f"USER: Read the description: {caption} {question} ASSISTANT:", answer))
            else:
                words = [w.strip(".") for w in caption.split() if w.strip(".") in ATTRIBUTES]
                out.append((f"{' '.join(words)} {question.rstrip('?').split()[-1]} ?", answer))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--init", choices=["hf", "scaled", "zero"], default="hf")
    p.add_argument("--format", choices=["described", "short", "mixed"], default="short")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heads", type=int, default=4, help="attention heads (head dim = 64 / heads)")
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--save", help="write the trained LM's state dict here (a text warm-up for stage I)")
    p.add_argument("--data", default="data/mini")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tok = load_tokenizer(f"{args.data}/tokenizer")
    if args.format == "mixed":  # a curriculum: train on both forms of each training question, test the long one
        described, short = examples(args.data, "described"), examples(args.data, "short")
        order = list(range(len(described)))
        random.shuffle(order)
        test = [described[i] for i in order[:400]]
        train = [described[i] for i in order[400:]] + [short[i] for i in order[400:]]
    else:
        data = examples(args.data, args.format)
        random.shuffle(data)
        test, train = data[:400], data[400:]
    yes, no = tok.convert_tokens_to_ids("▁yes"), tok.convert_tokens_to_ids("▁no")

    def encode(batch: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = [tok(text, add_special_tokens=False)["input_ids"] for text, _ in batch]
        width = max(map(len, ids))
        x = torch.full((len(ids), width), tok.pad_token_id)
        mask = torch.zeros_like(x)
        for i, row in enumerate(ids):  # left padding: the answer position is the last one
            x[i, width - len(row) :], mask[i, width - len(row) :] = torch.tensor(row), 1
        return x, mask, torch.tensor([yes if a == "yes" else no for _, a in batch])

    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        rope_theta=args.rope_theta,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
    )
    model = LlamaForCausalLM(cfg)
    residual_std = {"hf": None, "scaled": 0.02 / math.sqrt(2 * args.layers), "zero": 0.0}[args.init]
    for name, param in model.named_parameters():
        if residual_std is not None and name.endswith(("o_proj.weight", "down_proj.weight")):
            torch.nn.init.normal_(param, std=residual_std) if residual_std else torch.nn.init.zeros_(param)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    x_test, m_test, y_test = encode(test)
    x_seen, m_seen, y_seen = encode(train[:400])  # seen in training: memorised vs not fitted at all
    warmup, t0, curve = max(1, round(0.03 * args.steps)), time.time(), []
    for step in range(args.steps):
        progress = (step - warmup) / (args.steps - warmup)
        f = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group["lr"] = args.lr * f
        x, mask, y = encode(random.sample(train, 32))
        loss = torch.nn.functional.cross_entropy(model(input_ids=x, attention_mask=mask).logits[:, -1], y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if (step + 1) % (args.steps // 6) == 0:
            accs = []
            for xe, me, ye in ((x_test, m_test, y_test), (x_seen, m_seen, y_seen)):
                with torch.no_grad():
                    logits = model.eval()(input_ids=xe, attention_mask=me).logits[:, -1]
                accs.append(((logits[:, yes] > logits[:, no]) == (ye == yes)).float().mean().item())
            model.train()
            curve.append(
                {
                    "step": step + 1,
                    "loss": round(loss.item(), 3),
                    "held_out_acc": round(accs[0], 3),
                    "train_acc": round(accs[1], 3),
                }
            )
            print(json.dumps({**curve[-1], "s": round(time.time() - t0)}), flush=True)
    print(json.dumps({"args": vars(args), "train": len(train), "test": len(test), "curve": curve}))
    if args.save:
        torch.save(model.state_dict(), args.save)


if __name__ == "__main__":
    main()
