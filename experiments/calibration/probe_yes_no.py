"""Does a stage-I base model bind a question word to the image? Teacher-forced yes/no accuracy on stage-I questions.

    .venv/bin/python experiments/calibration/probe_yes_no.py models/mini/small [--n 300] [--data data/mini]

Takes the first `--n` yes/no questions of `pretrain.json` (train images: this measures whether the skill was learned
at all, not generalisation) and compares the logits of "Yes" and "No" at the answer position, asked (a) as the first
turn with the image, the evaluation format, and (b) after the record's true caption; then (c) the held-out
`mini_pope` questions ("Is there a red circle in the image?"), as the evaluation prompts them, counting "yes"/"Yes"
against "no"/"No". Chance is ~50% (the shares of "Yes" are printed). Used for the calibration
experiments (docs/mini-run.md).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import torch
from PIL import Image

from hydra_repro.data.conversation import generation_prompt, model_template, render, tokenizer_image_token
from hydra_repro.data.mini_questions import prompt_for
from hydra_repro.model.checkpoint import load_model
from hydra_repro.model.vlm import process_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--data", type=Path, default=Path("data/mini"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    model, tok = loaded.model, loaded.tokenizer
    template = model_template(model.config)  # v1 for the mini LMs, ChatML for SmolLM2
    items = []
    for rec in json.loads((args.data / "pretrain.json").read_text()):
        if not rec.get("image"):  # text-only records
            continue
        conv = rec["conversations"]
        for k in range(2, len(conv), 2):
            if conv[k + 1]["value"] in ("Yes", "No"):
                items.append((rec["image"], conv[0]["value"], conv[1]["value"], conv[k]["value"], conv[k + 1]["value"]))
    items = items[: args.n]
    # the answer follows the template's answer prefix (" "): the word-start tokens, as in training
    ids = {
        w: tok(template.answer_prefix + w, add_special_tokens=False)["input_ids"][-1]
        for w in ("Yes", "No", "yes", "no")
    }
    print(f"{args.model}: {len(items)} questions, {sum(i[4] == 'Yes' for i in items) / len(items):.1%} 'Yes'")
    for mode in ("first turn", "after the caption"):
        right = 0
        for image, caption_q, caption, question, answer in items:
            pixels = process_images([Image.open(args.data / "images" / image).convert("RGB")], loaded.image_processor)
            turns = [(question, None)] if mode == "first turn" else [(caption_q, caption), (question, None)]
            prompt = generation_prompt(question, template) if mode == "first turn" else render(template, turns)[0]
            ids_in = torch.tensor([tokenizer_image_token(prompt, tok)])
            with torch.no_grad():
                logits = model(input_ids=ids_in, images=pixels).logits[0, -1]
            right += ("Yes" if logits[ids["Yes"]] > logits[ids["No"]] else "No") == answer
        print(f"  {mode}: {right / len(items):.1%} right")
    rows = pq.read_table(args.data / "eval" / "mini_pope.parquet").to_pylist()
    right = said_yes = 0
    for row in rows:
        image = row["image"]["bytes"] if isinstance(row["image"], dict) else row["image"]
        pixels = process_images([Image.open(io.BytesIO(image)).convert("RGB")], loaded.image_processor)
        ids_in = torch.tensor([tokenizer_image_token(generation_prompt(prompt_for("mini_pope", row), template), tok)])
        with torch.no_grad():
            logits = model(input_ids=ids_in, images=pixels).logits[0, -1]
        says_yes = max(logits[ids["Yes"]], logits[ids["yes"]]) > max(logits[ids["No"]], logits[ids["no"]])
        right += ("yes" if says_yes else "no") == row["answer"]
        said_yes += int(says_yes)
    print(f"  held-out mini_pope ({len(rows)}): {right / len(rows):.1%} right, {said_yes / len(rows):.0%} 'yes'")


if __name__ == "__main__":
    main()
