"""Where is a skill lost? Linear probes of colour, shape, the number on a digit canvas and the question/image match
bit at three places of a base model: the vision tower's output, the projector's output and the LM's answer position.

    .venv/bin/python benchmarks/information_audit.py models/mini/small [--data data/mini] [--threads 2]

Images and questions: the held-out `mini_pope` set (easy-VQA test images, "Is there a <colour> <shape> in the
image?", half of them true) and the `mini_textvqa` digit canvases. Colour and shape are read from each image's pixels
(`mini_world.shape_attributes`, the rule the data are built with), the number from TextVQA's answer (its first digit
is probed, 10 classes). Features: the tower's patch features and the projector's visual tokens, each averaged over
positions; the LM's last-layer hidden state at the answer position of the POPE prompt (as the evaluation asks it).
Each probe is a standardised multinomial logistic regression scored by 5-fold stratified cross-validation with each
image's rows in one fold; "chance" is the majority class's share. The match bit is probed at the answer position
only: the tower and the projector never see the question. A skill the tower holds but the projector loses is the
projector's; one the projector holds but the answer position does not is the LM's (it cannot read it, or does not
bind it to the question).
Prints a table (and writes it as JSON to --out). Averaging over positions keeps colour and shape (one object per
image) but not where the object is; the probes are a lower bound on what each place holds.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from hydra_repro.data.conversation import generation_prompt, model_template, tokenizer_image_token
from hydra_repro.data.mini_questions import prompt_for
from hydra_repro.data.mini_world import shape_attributes
from hydra_repro.model.checkpoint import load_model
from hydra_repro.model.vlm import process_images


def _image(row: dict) -> Image.Image:
    data = row["image"]["bytes"] if isinstance(row["image"], dict) else row["image"]
    return Image.open(io.BytesIO(data)).convert("RGB")


@torch.no_grad()
def features(loaded, rows: list[dict], task: str, with_lm: bool) -> dict[str, np.ndarray]:
    """Per row: tower and projector features averaged over positions; the LM's answer-position state if asked."""
    model, tok = loaded.model, loaded.tokenizer
    template = model_template(model.config)
    out: dict[str, list[np.ndarray]] = {"tower": [], "projector": [], "answer position": []}
    for row in rows:
        pixels = process_images([_image(row)], loaded.image_processor)
        patches = model.model.vision_tower(pixels)
        tokens = model.model.mm_projector(patches)
        out["tower"].append(patches[0].mean(0).numpy())
        out["projector"].append(tokens[0].mean(0).numpy())
        if with_lm:
            ids = torch.tensor([tokenizer_image_token(generation_prompt(prompt_for(task, row), template), tok)])
            hidden = model(input_ids=ids, images=pixels, output_hidden_states=True).hidden_states[-1]
            out["answer position"].append(hidden[0, -1].numpy())
    return {k: np.stack(v) for k, v in out.items() if v}


def attributes(image: Image.Image) -> tuple[str | None, str | None]:
    """(shape, colour) read from the pixels; (None, None) for an image not drawn in the easy-VQA palette."""
    try:
        shape, colour, *_ = shape_attributes(np.asarray(image))
    except ValueError:
        return None, None
    return shape, colour


def probe(x: np.ndarray, y: list[str | None], groups: list[str] | None = None, seed: int = 0) -> dict[str, float]:
    """5-fold cross-validated accuracy of a standardised logistic regression, and the majority-class share, over the
    rows with a label. Rows of one group (one image) stay in one fold: POPE asks each image a true and a false
    question, so split across folds the image's features would predict the opposite label (below chance)."""
    known = np.array([v is not None for v in y], dtype=bool)
    groups = list(range(len(y))) if groups is None else groups
    x, y, groups = x[known], [v for v in y if v is not None], [g for g, k in zip(groups, known, strict=True) if k]
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels, counts = np.unique(y, return_counts=True) if y else (np.array([]), np.array([0]))
    folds = min(5, int(counts.min()))
    keep = np.isin(y, labels[counts >= folds]) if folds >= 2 else np.zeros(len(y), bool)
    if folds < 2 or keep.sum() < 10:
        return {"accuracy": float("nan"), "chance": float("nan"), "n": int(len(y)), "classes": len(labels)}
    xk, yk, gk = x[keep], np.asarray(y)[keep], np.asarray(groups)[keep]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    acc = cross_val_score(clf, xk, yk, groups=gk, cv=cv).mean()
    return {
        "accuracy": round(100 * float(acc), 1),
        "chance": round(100 * float(counts.max() / counts.sum()), 1),
        "n": int(keep.sum()),
        "classes": int(len(np.unique(yk))),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, default=Path("data/mini"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="also write the probes as JSON here (never inside a DVC output)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    loaded = load_model(args.model)
    loaded.model.eval()
    pope = pq.read_table(args.data / "eval" / "mini_pope.parquet").to_pylist()
    digits = pq.read_table(args.data / "eval" / "mini_textvqa.parquet").to_pylist()
    f_pope = features(loaded, pope, "mini_pope", with_lm=True)
    f_digit = features(loaded, digits, "mini_textvqa", with_lm=False)
    attrs = [attributes(_image(r)) for r in pope]
    pope_images = [str(r.get("image_source") or r["question_id"]) for r in pope]
    digit_images = [str(r.get("image_id") or r["question_id"]) for r in digits]
    answer_only = {"answer position": f_pope["answer position"]}  # the question is first seen by the LM
    targets = {
        "colour": ([a[1] for a in attrs], f_pope, pope_images),
        "shape": ([a[0] for a in attrs], f_pope, pope_images),
        "match (question true?)": ([r["answer"] for r in pope], answer_only, pope_images),
        "number (first digit)": ([str(r["answers"][0])[0] for r in digits], f_digit, digit_images),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, (y, feats, groups) in targets.items():
        results[name] = {place: probe(x, y, groups) for place, x in feats.items()}
    places = ["tower", "projector", "answer position"]
    print(f"{args.model}: linear-probe accuracy % (5-fold CV; chance = majority class)")
    print(f"{'target':<24}" + "".join(f"{p:>18}" for p in places) + f"{'chance':>9}")
    for name, by_place in results.items():
        cells = "".join(f"{by_place[p]['accuracy']:>18}" if p in by_place else f"{'—':>18}" for p in places)
        chance = next(iter(by_place.values()))["chance"]
        print(f"{name:<24}{cells}{chance:>9}")
    record = {"model": str(args.model), "probes": results, "wall_s": round(time.time() - t0, 1)}
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{record['wall_s']} s" + (f"; wrote {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
