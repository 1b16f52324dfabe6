"""`hydra-repro prepare [--params params.yaml] [--profile NAME] [--out data/<profile>]`: build a profile's data.

`mini` / `smoke` (`data.source: packages`) build everything from data that ships in PyPI packages: easy-VQA's
coloured shapes (4,000 train / 1,000 test images) and scikit-learn's 1,797 handwritten digits, which are composed
into numbers of 1-`max_digits` digits on 64x64 canvases. The output, written atomically:

    data/<profile>/
      images/shapes/*.png, images/digits/*.png   train-split images only
      images/vision_digits/*.png                 more train-digit canvases, seen only by the vision pretraining
      vision.json         stage 0 (the CLIP analog): attribute labels per train image (colour, shape, digits, ...)
      pretrain.json       LLaVA format, stage I: captions + basic questions covering every answer word
      train.json          LLaVA format, stage II: a mixture of the six benchmark formats (665K-like)
      eval/<task>.parquet mini_mme, mini_mmbench, mini_gqa, mini_textvqa, mini_pope, mini_sqa_img (held-out split)
      tokenizer/          word-level tokenizer for the from-scratch LMs (save_pretrained)
      tasks/              lmms-eval task YAMLs for the six sets, portable: `evaluate` fills in the paths
      manifest.json       counts, seed, config, file hashes
    data/<profile>.provenance.json   source package versions, lock hash, commit, time (outside the hashed output)

`paper` (`data.source: llava`) only checks the user-provided LLaVA-558K / LLaVA-665K files and writes a manifest
pointing at them; anything missing is reported in one message saying where it is expected and where to get it.
Every prompt of a training record is rendered exactly as lmms-eval's task renders the benchmark it mirrors.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hydra_repro.config import dataclass_from_dict, load_params
from hydra_repro.config.data import EVAL_TASKS, FAMILIES, DataConfig
from hydra_repro.constants import DEFAULT_IMAGE_TOKEN
from hydra_repro.data import (
    V1,
    Record,
    build_word_tokenizer,
    load_records,
    record_to_json,
    render,
    tokenize_conversation,
)
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, atomic_write_json
from hydra_repro.provenance import versions, write_sidecar

# --------------------------------------------------------------------------------------------------------------
# Vocabulary of the mini world

PALETTE = {  # easy-VQA's exact fill colours
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "teal": (0, 128, 128),
    "brown": (165, 42, 42),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
}
COLORS = tuple(PALETTE)
INK_COLORS = tuple(c for c in COLORS if c != "yellow")  # thin yellow strokes vanish on a light background
SHAPES = ("circle", "rectangle", "triangle")
WARM, COOL = ("red", "yellow", "brown"), ("blue", "green", "teal")
OBJECTS = {  # everyday objects by shape, for the one-step-reasoning questions
    "circle": ("coin", "wheel", "plate", "clock"),
    "rectangle": ("door", "book", "brick", "window"),
    "triangle": ("tent", "sail", "roof", "pizza slice"),
}
CAPTION_INSTRUCTIONS = (  # LLaVA-558K style
    "Describe the image concisely.",
    "Give a brief description of the image.",
    "Provide a brief description of the given image.",
    "Summarize the visual content of the image.",
)

# lmms-eval default prompt pieces (the tasks' `lmms_eval_specific_kwargs.default`)
SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."
MME_SUFFIX = " Please answer yes or no."
MMB_OPTIONS = "There are several options:"
OCR_REF = "\nReference OCR token: "
PROMPT_PIECES = (V1.system, SHORT, LETTER, MME_SUFFIX, MMB_OPTIONS, OCR_REF, "Context: ")
LETTERS = "ABCD"


def prompt_for(task: str, row: dict[str, Any], ocr: bool = False) -> str:
    """The text lmms-eval's default `doc_to_text` of the mirrored benchmark produces for `row` (without image)."""
    if task == "mini_mme":
        return row["question"].strip().replace(MME_SUFFIX, "") + SHORT
    if task in ("mini_gqa", "mini_pope"):
        return row["question"].strip() + SHORT
    if task == "mini_textvqa":
        ref = OCR_REF + ", ".join(row["ocr_tokens"]) if ocr else ""
        return row["question"].capitalize() + ref + SHORT
    if task == "mini_mmbench":
        options = MMB_OPTIONS + "\n" + "\n".join(f"{k}. {row[k]}" for k in LETTERS if row.get(k))
        query = f"{row['hint']} {row['question']} {options}" if row["hint"] else f"{row['question']} {options}"
        return f"{query}\n{LETTER}"
    if task == "mini_sqa_img":
        context = f"Context: {row['hint']}\n" if row["hint"] else ""
        choices = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(row["choices"]))
        return f"{context}{row['question']}\n{choices}{LETTER}"
    raise ValueError(task)


# --------------------------------------------------------------------------------------------------------------
# Images and their attributes


@dataclass(frozen=True, eq=False)
class ShapeItem:
    """One easy-VQA image with attributes read from its pixels (size/position None where ambiguous)."""

    key: str  # "shapes/0012" (train) or "easy_vqa/test/12" (test)
    pixels: np.ndarray  # [H, W, 3] uint8, as written
    shape: str
    color: str
    size: str | None  # "small" | "large"
    hpos: str | None  # "left" | "right"
    vpos: str | None  # "top" | "bottom"
    questions: tuple[tuple[str, str], ...] = ()  # easy-VQA's own questions about it (train split only)


@dataclass(frozen=True, eq=False)
class DigitItem:
    """A canvas with a 1-3 digit handwritten number."""

    key: str  # "digits/00012" (train) or "digits_test_00012"
    pixels: np.ndarray
    number: str
    color: str
    ocr: str  # what the stand-in OCR reads


Item = ShapeItem | DigitItem
_PAL_CODES = np.array([(r << 16) | (g << 8) | b for r, g, b in PALETTE.values()])


def shape_attributes(px: np.ndarray) -> tuple[str, str, str | None, str | None, str | None]:
    """(shape, color, size, hpos, vpos) of an easy-VQA image [H, W, 3] from its exactly-coloured pixels.

    Shape: rectangle when the mask fills its bounding box; else triangle when a row at 1/4 height is much narrower
    than one at 3/4 height (easy-VQA triangles point up); else circle. This agrees with every easy-VQA question
    that names the shape.
    """
    code = (px[..., 0].astype(np.int64) << 16) | (px[..., 1].astype(np.int64) << 8) | px[..., 2]
    counts = [(code == c).sum() for c in _PAL_CODES]
    k = int(np.argmax(counts))
    mask = code == _PAL_CODES[k]
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    widths = mask.sum(axis=1)
    if mask.sum() / (h * w) > 0.95:
        shape = "rectangle"
    else:
        shape = "triangle" if widths[y0 + h // 4] / max(widths[y0 + 3 * h // 4], 1) < 0.75 else "circle"
    side, n = max(h, w), px.shape[0]
    size = "small" if side <= 0.22 * n else "large" if side >= 0.375 * n else None
    cx, cy = xs.mean() / n, ys.mean() / n
    hpos = "left" if cx < 0.375 else "right" if cx > 0.625 else None
    vpos = "top" if cy < 0.375 else "bottom" if cy > 0.625 else None
    return shape, COLORS[k], size, hpos, vpos


def _resize(px: np.ndarray, size: int) -> np.ndarray:
    if px.shape[0] == size:
        return px
    return np.asarray(Image.fromarray(px).resize((size, size), Image.BICUBIC))


def pixel_hash(px: np.ndarray) -> str:
    """Content hash of an image (decoded RGB pixels), used to prove train and test do not overlap."""
    return hashlib.sha256(np.ascontiguousarray(px, dtype=np.uint8).tobytes()).hexdigest()


def _png(px: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG")
    return buf.getvalue()


def _rng(seed: int, name: str) -> np.random.Generator:
    """An independent stream per component: changing one size does not reshuffle the others."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def load_shapes(split: str, n: int | None, cfg: DataConfig) -> list[ShapeItem]:
    """easy-VQA images of `split` ("train" / "test"), `n` of them chosen with the seed (None: all, sorted by id)."""
    import easy_vqa

    paths = easy_vqa.get_train_image_paths() if split == "train" else easy_vqa.get_test_image_paths()
    questions: dict[int, list[tuple[str, str]]] = {}
    if split == "train":
        for q, a, i in zip(*easy_vqa.get_train_questions(), strict=True):
            questions.setdefault(i, []).append((q, a))
    ids = sorted(paths)
    if n is not None:
        ids = sorted(_rng(cfg.seed, f"shapes-{split}").choice(ids, size=n, replace=False).tolist())
    items = []
    for i in ids:
        with Image.open(paths[i]) as im:
            raw = np.asarray(im.convert("RGB"))
        key = f"shapes/{i:04d}" if split == "train" else f"easy_vqa/test/{i}"
        items.append(ShapeItem(key, _resize(raw, cfg.image_size), *shape_attributes(raw), tuple(questions.get(i, ()))))
    return items


def split_digits(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn digits split by index with the seed: (train images [N, 8, 8], train labels, test images, labels)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    perm = _rng(cfg.seed, "digits-split").permutation(len(d.target))
    n_test = int(round(cfg.digit_test_fraction * len(perm)))
    te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return d.images[tr], d.target[tr], d.images[te], d.target[te]


class NearestCentroidOCR:
    """The TextVQA `ocr_tokens` stand-in: a nearest-centroid digit classifier fitted on the training digits
    (about 90% per-digit accuracy on held-out digits, so its tokens are helpful but sometimes wrong, like OCR)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        flat = images.reshape(len(images), -1)
        self.centroids = np.stack([flat[labels == c].mean(axis=0) for c in range(10)])

    def read(self, digit_images: Sequence[np.ndarray]) -> str:
        flat = np.stack([d.reshape(-1) for d in digit_images])
        dist = ((flat[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        return "".join(str(int(k)) for k in dist.argmin(axis=1))


def make_canvases(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    cfg: DataConfig,
    ocr: NearestCentroidOCR,
    name: str,
    key_prefix: str,
) -> list[DigitItem]:
    """`n` canvases (64x64, light background) each showing a 1..max_digits number written with digits drawn from
    `images`: upscaled 8x8 digits (digit_min_px..digit_max_px), side by side with small gaps and jitter, in one ink
    colour. Keys are `key_prefix` + a 5-digit index."""
    rng = _rng(cfg.seed, name)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    items = []
    for k in range(n):
        n_dig = int(rng.integers(1, cfg.max_digits + 1))
        digits = [int(rng.integers(1 if (j == 0 and n_dig > 1) else 0, 10)) for j in range(n_dig)]
        samples = [images[rng.choice(by_class[d])] for d in digits]
        color = INK_COLORS[int(rng.integers(len(INK_COLORS)))]
        gap = int(rng.integers(0, 4))
        top = max(cfg.digit_min_px, min(cfg.digit_max_px, (60 - (n_dig - 1) * gap) // n_dig))
        s = int(rng.integers(cfg.digit_min_px, top + 1))
        width = n_dig * s + (n_dig - 1) * gap
        x = int(rng.integers(2, 64 - width - 1))
        y = int(rng.integers(4, 64 - s - 3))
        bg = rng.integers(225, 256, size=3)
        alpha = np.zeros((64, 64))
        for sample in samples:
            glyph = Image.fromarray((sample / 16 * 255).astype(np.uint8)).resize((s, s), Image.BILINEAR)
            dy = int(rng.integers(-2, 3))
            alpha[y + dy : y + dy + s, x : x + s] = np.asarray(glyph) / 255
            x += s + gap
        px = bg * (1 - alpha[..., None]) + np.array(PALETTE[color]) * alpha[..., None]
        px = _resize(np.clip(np.rint(px), 0, 255).astype(np.uint8), cfg.image_size)
        items.append(DigitItem(f"{key_prefix}{k:05d}", px, "".join(map(str, digits)), color, ocr.read(samples)))
    return items


# --------------------------------------------------------------------------------------------------------------
# Question generators: each returns rows in the schema of the benchmark it mirrors (without image and ids)


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _others(rng: np.random.Generator, seq: Sequence[str], exclude: str, k: int) -> list[str]:
    pool = [s for s in seq if s != exclude]
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def _other_number(rng: np.random.Generator, number: str) -> str:
    """`number` with one digit changed (no leading zero)."""
    digits = list(number)
    j = int(rng.integers(len(digits)))
    low = 1 if (j == 0 and len(digits) > 1) else 0
    digits[j] = _pick(rng, [str(d) for d in range(low, 10) if str(d) != digits[j]])
    return "".join(digits)


def _opposite(side: str) -> str:
    return {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[side]


def mme_categories(item: Item) -> list[str]:
    if isinstance(item, DigitItem):
        return ["count", "OCR"]
    return ["existence", "color"] + (["position"] if item.hpos or item.vpos else [])


def gen_mme(item: Item, category: str, rng: np.random.Generator) -> list[dict[str, str]]:
    """MME's pair: one question answered Yes and one answered No, same image and category."""
    if category == "existence":
        qs = [f"Is there a {s} in this image?" for s in (item.shape, _others(rng, SHAPES, item.shape, 1)[0])]
    elif category == "color":
        qs = [f"Is the {item.shape} in this image {c}?" for c in (item.color, _others(rng, COLORS, item.color, 1)[0])]
    elif category == "position":
        if item.hpos and (not item.vpos or rng.random() < 0.5):
            qs = [f"Is the {item.shape} on the {s} side of this image?" for s in (item.hpos, _opposite(item.hpos))]
        else:
            qs = [f"Is the {item.shape} in the {s} part of this image?" for s in (item.vpos, _opposite(item.vpos))]
    elif category == "count":
        n = len(item.number)
        wrong = _pick(rng, [m for m in range(1, 4) if m != n])
        qs = [
            "Is there 1 digit in this image?" if m == 1 else f"Are there {m} digits in this image?" for m in (n, wrong)
        ]
    elif category == "OCR":
        qs = [f"Is the number {x} written in this image?" for x in (item.number, _other_number(rng, item.number))]
    else:
        raise ValueError(category)
    return [
        {"question": q + MME_SUFFIX, "answer": a, "category": category} for q, a in zip(qs, ("Yes", "No"), strict=True)
    ]


POPE_CATEGORIES = ("random", "popular", "adversarial")


def pope_negative(item: ShapeItem, category: str, popular: Sequence[str], rng: np.random.Generator) -> str:
    """An absent object: random (any other colour-shape pair), popular (among the most frequent pairs of the
    training images), adversarial (shares the shape or the colour with the object present)."""
    present = f"{item.color} {item.shape}"
    if category == "random":
        pool = [f"{c} {s}" for c in COLORS for s in SHAPES]
    elif category == "popular":
        pool = list(popular)
    elif rng.random() < 0.5:
        pool = [f"{c} {item.shape}" for c in COLORS]
    else:
        pool = [f"{item.color} {s}" for s in SHAPES]
    return _pick(rng, [o for o in pool if o != present])


def pope_question(obj: str) -> str:
    return f"Is there a {obj} in the image?"


def gqa_types(item: ShapeItem) -> list[str]:
    return (
        ["color", "shape", "choose_color", "verify"]
        + (["side"] if item.hpos else [])
        + (["vertical"] if item.vpos else [])
        + (["size"] if item.size else [])
    )


def gen_gqa(item: ShapeItem, rng: np.random.Generator) -> dict[str, str]:
    """A GQA-like open question whose answer is one lowercase word; most name the object by another attribute."""
    t = _pick(rng, gqa_types(item))
    s, c = item.shape, item.color
    if t == "color":
        return {"question": f"What color is the {s}?", "answer": c}
    if t == "shape":
        return {"question": f"What shape is the {c} object?", "answer": s}
    if t == "choose_color":
        a, b = rng.permutation([c, _others(rng, COLORS, c, 1)[0]])
        return {"question": f"Is the {s} {a} or {b}?", "answer": c}
    if t == "verify":
        truth = rng.random() < 0.5
        c2 = c if truth or rng.random() < 0.5 else _others(rng, COLORS, c, 1)[0]
        s2 = s if truth or c2 != c else _others(rng, SHAPES, s, 1)[0]
        return {"question": f"Is the {c2} shape a {s2}?", "answer": "yes" if truth else "no"}
    if t == "side":
        return {"question": f"On which side of the image is the {c} {s}?", "answer": item.hpos}
    if t == "vertical":
        a, b = rng.permutation(["top", "bottom"])
        return {"question": f"Is the {s} at the {a} or at the {b} of the image?", "answer": item.vpos}
    a, b = rng.permutation(["small", "large"])
    return {"question": f"Is the {c} {s} {a} or {b}?", "answer": item.size}


TEXTVQA_QUESTIONS = (
    ("what number is written in the image?", "number"),
    ("what is the number shown in the picture?", "number"),
    ("what number is this?", "number"),
    ("what is the first digit of the number?", "first"),
    ("what is the last digit of the number?", "last"),
)


def gen_textvqa(item: DigitItem, rng: np.random.Generator) -> dict[str, Any]:
    """A TextVQA-like reading question; 10 identical reference answers; the stand-in OCR's reading as token."""
    q, kind = _pick(rng, TEXTVQA_QUESTIONS)
    answer = {"number": item.number, "first": item.number[0], "last": item.number[-1]}[kind]
    return {"question": q, "answers": [answer] * 10, "ocr_tokens": [item.ocr]}


MMB_CATEGORIES = {  # category -> L2-category (MMBench's names)
    "attribute_recognition": "finegrained_perception (instance-level)",
    "object_localization": "finegrained_perception (instance-level)",
    "ocr": "finegrained_perception (instance-level)",
    "image_topic": "coarse_perception",
}


def mmb_categories(item: Item) -> list[str]:
    if isinstance(item, DigitItem):
        return ["ocr", "image_topic"]
    return ["attribute_recognition", "image_topic"] + (["object_localization"] if item.hpos and item.vpos else [])


def gen_mmbench(item: Item, category: str, rng: np.random.Generator) -> dict[str, Any]:
    """An MMBench-like 4-option question (options shuffled; `answer` is the index of the right one)."""
    hint = None
    if category == "attribute_recognition":
        q, right, wrong = "What color is the shape in the image?", item.color, _others(rng, COLORS, item.color, 3)
    elif category == "object_localization":
        q, hint = f"Where is the {item.shape} in the image?", "The image is divided into four equal quarters."
        right = f"{item.vpos} {item.hpos}"
        wrong = [f"{v} {h}" for v in ("top", "bottom") for h in ("left", "right") if f"{v} {h}" != right]
    elif category == "ocr":
        q, right, wrong = "What number is written in the image?", item.number, []
        while len(wrong) < 3:
            x = _other_number(rng, item.number)
            if x not in wrong:
                wrong.append(x)
    elif category == "image_topic":
        q = "Which of the following best describes the image?"
        topics = [f"a {s}" for s in SHAPES] + ["a handwritten number"]
        right = topics[-1] if isinstance(item, DigitItem) else f"a {item.shape}"
        wrong = [t for t in topics if t != right]
    else:
        raise ValueError(category)
    options = [right, *wrong]
    order = rng.permutation(4)
    return {
        "question": q,
        "hint": hint,
        "options": [options[i] for i in order],
        "answer": int(np.flatnonzero(order == 0)[0]),
        "category": category,
        "L2-category": MMB_CATEGORIES[category],
        "source": "sklearn_digits" if isinstance(item, DigitItem) else "easy_vqa",
    }


def sqa_types(item: Item) -> list[str]:
    if isinstance(item, DigitItem):
        return ["even_odd"]
    return ["shape_object"] + (["warm_cool"] if item.color in WARM + COOL else [])


WARM_COOL_HINT = "Red, yellow and brown are warm colors. Blue, green and teal are cool colors."
EVEN_ODD_HINT = "A number is even if its last digit is 0, 2, 4, 6 or 8. Otherwise, the number is odd."


def gen_sqa(item: Item, kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """A ScienceQA-IMG-like multiple choice that needs one reasoning step on top of perception."""
    if kind == "shape_object":
        q, hint, subject, grade = "Which object has the same shape as the one in the image?", "", "social science", 1
        right = _pick(rng, OBJECTS[item.shape])
        choices = [right] + [_pick(rng, OBJECTS[s]) for s in SHAPES if s != item.shape]
    elif kind == "warm_cool":
        q, hint, subject, grade = "Is the color of the shape warm or cool?", WARM_COOL_HINT, "natural science", 2
        right = "warm" if item.color in WARM else "cool"
        choices = ["warm", "cool"]
    elif kind == "even_odd":
        q, hint, subject, grade = "Is the number in the image even or odd?", EVEN_ODD_HINT, "natural science", 3
        right = "even" if int(item.number[-1]) % 2 == 0 else "odd"
        choices = ["even", "odd"]
    else:
        raise ValueError(kind)
    choices = [choices[i] for i in rng.permutation(len(choices))]
    return {
        "question": q,
        "choices": choices,
        "answer": choices.index(right),
        "hint": hint,
        "subject": subject,
        "grade": f"grade{grade}",
    }


def gen_text(rng: np.random.Generator, variant: int | None = None) -> tuple[str, str]:
    """A text-only knowledge question (the facts the one-step-reasoning questions build on). `variant` 0..5 fixes
    the kind and, for colours, warm or cool, so that a few records already cover every answer word."""
    kind = int(rng.integers(3)) if variant is None else variant % 3
    if kind == 0:
        n = int(rng.integers(0, 1000))
        return f"Is {n} an even or an odd number?{SHORT}", "even" if n % 2 == 0 else "odd"
    if kind == 1:
        pool = WARM + COOL if variant is None else (WARM if variant % 2 else COOL)
        c = _pick(rng, pool)
        return f"Is {c} a warm or a cool color?{SHORT}", "warm" if c in WARM else "cool"
    s = _pick(rng, SHAPES)
    return f"What shape is a {_pick(rng, OBJECTS[s])}?{SHORT}", s


# --------------------------------------------------------------------------------------------------------------
# Training conversations


def family_turn(family: str, item: Item, rng: np.random.Generator, popular: Sequence[str]) -> tuple[str, str] | None:
    """One (prompt, answer) turn of `family` about `item`, rendered as the mirrored benchmark; None if n/a."""
    shape = isinstance(item, ShapeItem)
    if family == "evqa":
        if not shape or not item.questions:
            return None
        q, a = _pick(rng, item.questions)
        return q + SHORT, a.capitalize() if a in ("yes", "no") else a
    if family == "mme":
        row = _pick(rng, gen_mme(item, _pick(rng, mme_categories(item)), rng))
        return prompt_for("mini_mme", row), row["answer"]
    if family == "pope":
        if not shape:
            return None
        truth = rng.random() < 0.5
        obj = f"{item.color} {item.shape}" if truth else pope_negative(item, _pick(rng, POPE_CATEGORIES), popular, rng)
        return prompt_for("mini_pope", {"question": pope_question(obj)}), "yes" if truth else "no"
    if family == "gqa":
        if not shape:
            return None
        row = gen_gqa(item, rng)
        return prompt_for("mini_gqa", row), row["answer"]
    if family == "textvqa":
        if shape:
            return None
        row = gen_textvqa(item, rng)
        return prompt_for("mini_textvqa", row, ocr=rng.random() < 0.3), row["answers"][0]
    if family == "mmbench":
        row = gen_mmbench(item, _pick(rng, mmb_categories(item)), rng)
        flat = {**row, **dict(zip(LETTERS, row["options"], strict=True))}
        return prompt_for("mini_mmbench", flat), LETTERS[row["answer"]]
    if family == "sqa":
        row = gen_sqa(item, _pick(rng, sqa_types(item)), rng)
        return prompt_for("mini_sqa_img", row), LETTERS[row["answer"]]
    raise ValueError(family)


def caption(item: Item) -> str:
    if isinstance(item, DigitItem):
        return f"the handwritten number {item.number} in {item.color}."
    where = " ".join(p for p in (item.vpos, item.hpos) if p)
    size = f"{item.size} " if item.size else ""
    return f"a {size}{item.color} {item.shape}" + (f" in the {where} of the image." if where else ".")


def basic_turn(item: Item, rng: np.random.Generator) -> tuple[str, str]:
    """A stage-I question: plain perception in the short-answer, yes/no and letter formats, so that every answer
    word of stage II and of the evaluation (colours, shapes, sizes, sides, digits, Yes/No, yes/no, A-D) is already
    a target in stage I (mini-calibration lesson 3)."""
    shape = isinstance(item, ShapeItem)
    kinds = ["open", "open", "yesno", "yes_no_lower", "letter"] + (["size", "side"] if shape else ["count"])
    kind = _pick(rng, kinds)
    truth = rng.random() < 0.5
    if shape:
        attr, values, noun = _pick(rng, [("color", COLORS, "color"), ("shape", SHAPES, "shape")])
        value = getattr(item, attr)
    else:
        value, noun = item.number, "number"
    q = {"color": "What color is the shape?", "shape": "What shape is in the image?"}.get(noun)
    q = q or "What number is written in the image?"
    if kind == "open":
        return q + SHORT, value
    if kind in ("yesno", "yes_no_lower"):
        other = value if truth else (_others(rng, values, value, 1)[0] if shape else _other_number(rng, value))
        article = "a " if noun == "shape" else ""
        q = f"Is the shape in the image {article}{other}?" if shape else f"Is the number {other}?"
        a = "Yes" if truth else "No"
        return q + SHORT, a if kind == "yesno" else a.lower()
    if kind == "letter":
        wrong = _others(rng, values, value, min(3, len(values) - 1)) if shape else []
        while not shape and len(wrong) < 3:
            x = _other_number(rng, value)
            wrong += [] if x in wrong else [x]
        options = [value, *wrong]
        order = rng.permutation(len(options))
        lines = "\n".join(f"{LETTERS[i]}. {options[j]}" for i, j in enumerate(order))
        return f"{q}\n{lines}{LETTER}", LETTERS[int(np.flatnonzero(order == 0)[0])]
    if kind == "size" and item.size:
        return "Is the shape small or large?" + SHORT, item.size
    if kind == "side" and item.hpos:
        return "Is the shape on the left or on the right?" + SHORT, item.hpos
    if kind in ("size", "side") and item.vpos:
        return "Is the shape at the top or at the bottom?" + SHORT, item.vpos
    if kind in ("size", "side"):
        return "What color is the shape?" + SHORT, item.color
    n = len(item.number)
    return "How many digits does the number have?" + SHORT, str(n)


Turn = tuple[str, str, str]  # (prompt, answer, format)


def conversation(
    n_turns: int, turn: Callable[[np.random.Generator], Turn | None], rng: np.random.Generator
) -> list[Turn]:
    """`n_turns` turns from `turn` with distinct prompts."""
    turns: list[Turn] = []
    for _ in range(20 * n_turns):
        t = turn(rng)
        if t is not None and all(t[0] != q for q, _, _ in turns):
            turns.append(t)
        if len(turns) == n_turns:
            break
    return turns


def build_records(
    items: Sequence[Item], cfg: DataConfig, stage: str, popular: Sequence[str]
) -> tuple[list[Record], Counter[str]]:
    """pretrain.json (stage "pretrain": a caption, then basic questions) or train.json (stage "train": the format
    mixture) records, one conversation per image, plus text-only records; also returns the turns per format."""
    rng = _rng(cfg.seed, f"records-{stage}")
    names = [f for f in FAMILIES if cfg.mixture.get(f, 0) > 0]
    weights = np.array([cfg.mixture[f] for f in names]) / sum(cfg.mixture[f] for f in names)
    records: list[Record] = []
    formats: Counter[str] = Counter()
    for item in items:
        if stage == "pretrain":
            instr = _pick(rng, CAPTION_INSTRUCTIONS)
            first = f"{instr}\n{DEFAULT_IMAGE_TOKEN}" if rng.random() < 0.5 else f"{DEFAULT_IMAGE_TOKEN}\n{instr}"
            basics = conversation(
                cfg.pretrain_questions_per_image, lambda r, it=item: (*basic_turn(it, r), "basic"), rng
            )
            turns = [(first, caption(item), "caption"), *basics]
        else:

            def turn(r: np.random.Generator, it: Item = item) -> Turn | None:
                family = names[r.choice(len(names), p=weights)]
                t = family_turn(family, it, r, popular)
                return None if t is None else (*t, family)

            turns = conversation(cfg.turns_per_image, turn, rng)
            if not turns:  # no family of the mixture applies to this kind of image
                continue
            turns[0] = (f"{DEFAULT_IMAGE_TOKEN}\n{turns[0][0]}", *turns[0][1:])
        formats.update(f for _, _, f in turns)
        records.append(Record(id=item.key.replace("/", "-"), image=f"{item.key}.png", turns=_pairs(turns)))
    n_text = int(round(cfg.text_only_fraction * len(records) / (1 - cfg.text_only_fraction)))
    for k in range(n_text):
        first = (*gen_text(rng, k % 6), "text")
        second = (*gen_text(rng), "text")
        turns = [first] if second[0] == first[0] else [first, second]
        formats.update(f for _, _, f in turns)
        records.append(Record(id=f"text-{k:05d}", image=None, turns=_pairs(turns)))
    if stage == "pretrain" and cfg.pretrain_described > 0:  # own random stream: the records above stay the same
        described = _rng(cfg.seed, "records-described")
        for k in range(int(round(cfg.pretrain_described * len(items)))):
            item = items[int(described.integers(len(items)))]
            turns = conversation(
                cfg.pretrain_questions_per_image, lambda r, it=item: (*basic_turn(it, r), "described"), described
            )
            turns[0] = (f"Read the description: {caption(item)}\n{turns[0][0]}", *turns[0][1:])
            formats.update(f for _, _, f in turns)
            records.append(Record(id=f"described-{k:05d}", image=None, turns=_pairs(turns)))
    return records, formats


def _pairs(turns: Sequence[Turn]) -> tuple[tuple[str, str], ...]:
    return tuple((q, a) for q, a, _ in turns)


# --------------------------------------------------------------------------------------------------------------
# Evaluation sets


def _sample(pool: Sequence[Any], n: int, rng: np.random.Generator, what: str) -> list[Any]:
    if n > len(pool):
        raise UserError(f"data.{what}: asks for {n} held-out images but only {len(pool)} are eligible")
    return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def _img(item: Item) -> dict[str, Any]:
    return {"bytes": _png(item.pixels), "path": None}


def eval_rows(
    task: str, shapes: Sequence[ShapeItem], digits: Sequence[DigitItem], cfg: DataConfig, popular: Sequence[str]
) -> list[dict[str, Any]]:
    """The rows of one evaluation set, in the column order of the real benchmark's lmms-eval dataset."""
    rng = _rng(cfg.seed, f"eval-{task}")
    rows: list[dict[str, Any]] = []
    if task == "mini_mme":
        for cat in ("existence", "color", "position", "count", "OCR"):
            pool = [it for it in (*shapes, *digits) if cat in mme_categories(it)]
            for item in _sample(pool, cfg.mme_images_per_category, rng, "mme_images_per_category"):
                for r in gen_mme(item, cat, rng):
                    qid = f"{cat}/{item.key.split('/')[-1]}.png"
                    rows.append({"question_id": qid, **r, "image": _img(item)})
        return [{k: r[k] for k in ("question_id", "question", "answer", "category", "image")} for r in rows]
    if task == "mini_mmbench":
        cats = list(MMB_CATEGORIES)
        base = []
        for c, cat in enumerate(cats):
            n = cfg.mmbench_questions // len(cats) + (c < cfg.mmbench_questions % len(cats))
            pool = [it for it in (*shapes, *digits) if cat in mmb_categories(it)]
            base += [(it, gen_mmbench(it, cat, rng)) for it in _sample(pool, n, rng, "mmbench_questions")]
        for k in range(4):  # CircularEval: the options rotated, index idx + k * 1e6
            for i, (item, q) in enumerate(base):
                opts = q["options"][k:] + q["options"][:k]
                rows.append(
                    {
                        "index": i + k * 1_000_000,
                        "question": q["question"],
                        "hint": q["hint"],
                        **dict(zip(LETTERS, opts, strict=True)),
                        "answer": LETTERS[(q["answer"] - k) % 4],
                        "category": q["category"],
                        "L2-category": q["L2-category"],
                        "source": q["source"],
                        "split": "dev",
                        "image": _img(item),
                    }
                )
        return rows
    if task == "mini_gqa":
        for i, item in enumerate(_sample(shapes, cfg.gqa_questions, rng, "gqa_questions")):
            rows.append({"question_id": f"{i:07d}", **gen_gqa(item, rng), "image": _img(item)})
        return rows
    if task == "mini_textvqa":
        for i, item in enumerate(_sample(digits, cfg.textvqa_questions, rng, "textvqa_questions")):
            q = gen_textvqa(item, rng)
            rows.append(
                {
                    "question_id": i,
                    "question": q["question"],
                    "answers": q["answers"],
                    "image": _img(item),
                    "image_id": item.key,
                    "ocr_tokens": q["ocr_tokens"],
                }
            )
        return rows
    if task == "mini_pope":
        for item in _sample(shapes, cfg.pope_images, rng, "pope_images"):
            present = f"{item.color} {item.shape}"
            for cat in POPE_CATEGORIES:
                for obj, ans in ((present, "yes"), (pope_negative(item, cat, popular, rng), "no")):
                    rows.append(
                        {
                            "question_id": f"{cat}-{len(rows):05d}",
                            "question": pope_question(obj),
                            "answer": ans,
                            "category": cat,
                            "image_source": f"{item.key}.png",
                            "image": _img(item),
                        }
                    )
        return rows
    if task == "mini_sqa_img":
        kinds = ("shape_object", "warm_cool", "even_odd")
        for c, kind in enumerate(kinds):
            n = cfg.sqa_questions // len(kinds) + (c < cfg.sqa_questions % len(kinds))
            pool = [it for it in (*shapes, *digits) if kind in sqa_types(it)]
            for item in _sample(pool, n, rng, "sqa_questions"):
                q = gen_sqa(item, kind, rng)
                rows.append({k: q[k] for k in ("question", "choices", "answer", "hint")} | {"image": _img(item)})
                rows[-1] |= {"subject": q["subject"], "grade": q["grade"]}
        return rows
    raise ValueError(task)


def eval_features(task: str) -> Any:
    """The `datasets.Features` of an evaluation set (column order = the real benchmark's)."""
    from datasets import Features, Image, List, Value

    s, i64 = Value("string"), Value("int64")
    cols = {
        "mini_mme": {"question_id": s, "question": s, "answer": s, "category": s, "image": Image()},
        "mini_mmbench": {"index": i64, "question": s, "hint": s, **{k: s for k in LETTERS}, "answer": s}
        | {"category": s, "L2-category": s, "source": s, "split": s, "image": Image()},
        "mini_gqa": {"question_id": s, "question": s, "answer": s, "image": Image()},
        "mini_textvqa": {"question_id": i64, "question": s, "answers": List(s), "image": Image(), "image_id": s}
        | {"ocr_tokens": List(s)},
        "mini_pope": {"question_id": s, "question": s, "answer": s, "category": s, "image_source": s, "image": Image()},
        "mini_sqa_img": {"question": s, "choices": List(s), "answer": i64, "hint": s, "image": Image()}
        | {"subject": s, "grade": s},
    }[task]
    return Features(cols)


def write_eval(path: Path, task: str, rows: list[dict[str, Any]]) -> None:
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    Dataset.from_list(rows, features=eval_features(task)).to_parquet(str(path))


# --------------------------------------------------------------------------------------------------------------
# Profiles


# the packages the mini data comes from or is written with; recorded beside data/<profile> (provenance sidecar)
SOURCE_PACKAGES = ("easy-vqa", "scikit-learn", "numpy", "pillow", "datasets", "tokenizers", "transformers")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _max_tokens(records: Sequence[Record], tokenizer: Any) -> int:
    """The longest record in tokens (bos and the image placeholder count one each; visual tokens not included)."""
    return max(len(tokenize_conversation(r.turns, tokenizer)[0]) for r in records)


# The CLIP analog's supervision: one classification head per attribute (`None` attributes are left out)
VISION_HEADS: dict[str, tuple[str, ...]] = {
    "kind": ("shape", "number"),
    "color": COLORS,
    "shape": SHAPES,
    "size": ("small", "large"),
    "hpos": ("left", "right"),
    "vpos": ("top", "bottom"),
    "n_digits": ("1", "2", "3"),
    "digit_1": tuple("0123456789"),
    "digit_2": tuple("0123456789"),
    "digit_3": tuple("0123456789"),
}


def vision_labels(item: Item) -> dict[str, int]:
    """Class index per head of VISION_HEADS for one image; heads that do not apply are absent."""
    values: dict[str, str | None]
    if isinstance(item, DigitItem):
        values = {"kind": "number", "color": item.color, "n_digits": str(len(item.number))}
        values |= {f"digit_{j + 1}": ch for j, ch in enumerate(item.number)}
    else:
        values = {"kind": "shape", "color": item.color, "shape": item.shape, "size": item.size}
        values |= {"hpos": item.hpos, "vpos": item.vpos}
    return {head: VISION_HEADS[head].index(v) for head, v in values.items() if v is not None}


def vision_labels_json(items: Sequence[Item]) -> dict[str, Any]:
    return {
        "heads": {head: list(classes) for head, classes in VISION_HEADS.items()},
        "records": [{"image": f"{it.key}.png", "labels": vision_labels(it)} for it in items],
    }


def _write_image(folder: Path, item: Item) -> None:
    path = folder / "images" / f"{item.key}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(item.pixels).save(path, format="PNG")


def prepare_packages(cfg: DataConfig, out: Path, profile: str) -> dict[str, Any]:
    """Build the mini/smoke data into `out` (replaced atomically); returns the manifest."""
    from hydra_repro.tasks import write_task_yamls

    train_shapes = load_shapes("train", cfg.train_shapes, cfg)
    train_hashes = {pixel_hash(it.pixels) for it in train_shapes}
    # easy-VQA train and test are disjoint by construction; the hash filter makes it a guarantee
    test_shapes = [it for it in load_shapes("test", None, cfg) if pixel_hash(it.pixels) not in train_hashes]
    d_tr, y_tr, d_te, y_te = split_digits(cfg)
    ocr = NearestCentroidOCR(d_tr, y_tr)
    train_digits = make_canvases(d_tr, y_tr, cfg.train_digit_canvases, cfg, ocr, "canvases-train", "digits/")
    test_digits = make_canvases(d_te, y_te, cfg.test_digit_canvases, cfg, ocr, "canvases-test", "digits_test_")
    # more canvases of the *train* digits for the CLIP analog: a ViT is data-hungry, and stage I/II never see them
    vision_digits = make_canvases(d_tr, y_tr, cfg.vision_digit_canvases, cfg, ocr, "canvases-vision", "vision_digits/")
    combos = Counter(f"{it.color} {it.shape}" for it in train_shapes)
    popular = [o for o, _ in sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))[:8]]

    train_items: list[Item] = [*train_shapes, *train_digits]
    pretrain, pre_formats = build_records(train_items, cfg, "pretrain", popular)
    train, train_formats = build_records(train_items, cfg, "train", popular)
    evals = {task: eval_rows(task, test_shapes, test_digits, cfg, popular) for task in EVAL_TASKS}

    vision_items: list[Item] = [*train_items, *vision_digits]
    leaked = {pixel_hash(it.pixels) for it in vision_items} & {
        pixel_hash(it.pixels) for it in (*test_shapes, *test_digits)
    }
    if leaked:  # impossible by construction; a guard, since every result depends on it
        raise RuntimeError(f"{len(leaked)} held-out images also appear in the training data")

    corpus = [render(V1, r.turns)[0] for r in (*pretrain, *train)] + list(PROMPT_PIECES)
    tokenizer = build_word_tokenizer(corpus)

    with atomic_dir(out) as tmp:
        for item in vision_items:
            _write_image(tmp, item)
        atomic_write_json(tmp / "vision.json", vision_labels_json(vision_items))
        atomic_write_json(tmp / "pretrain.json", [record_to_json(r) for r in pretrain])
        atomic_write_json(tmp / "train.json", [record_to_json(r) for r in train])
        (tmp / "eval").mkdir()
        for task, rows in evals.items():
            write_eval(tmp / "eval" / f"{task}.parquet", task, rows)
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        write_task_yamls(tmp / "tasks")  # portable: paths are filled in at evaluation time
        files: dict[str, Any] = {
            "pretrain.json": {"records": len(pretrain), "turns": sum(pre_formats.values()), "formats": pre_formats},
            "train.json": {"records": len(train), "turns": sum(train_formats.values()), "formats": train_formats},
            "vision.json": {"records": len(vision_items)},
        }
        for task, rows in evals.items():
            files[f"eval/{task}.parquet"] = {"rows": len(rows)}
        for name, entry in files.items():
            entry["sha256"] = _sha256(tmp / name)
        manifest = {
            "generated_by": f"hydra-repro prepare --profile {profile} (generated; do not edit)",
            "profile": profile,
            "seed": cfg.seed,
            "config": dataclasses.asdict(cfg),
            "images": {
                "train_shapes": len(train_shapes),
                "train_digit_canvases": len(train_digits),
                "vision_digit_canvases": len(vision_digits),
                "test_shapes_pool": len(test_shapes),
                "test_digit_canvases": len(test_digits),
                "digit_split": {"train_digits": len(y_tr), "test_digits": len(y_te)},
            },
            "paths": {"pretrain": "pretrain.json", "train": "train.json", "vision": "vision.json"}
            | {"image_folder": "images"}
            | {"tokenizer": "tokenizer", "tasks": "tasks", "eval": {t: f"eval/{t}.parquet" for t in EVAL_TASKS}},
            "files": files,
            "tokenizer": {"vocab_size": len(tokenizer)}
            | {
                f"max_tokens_{name}": _max_tokens(recs, tokenizer)
                for name, recs in (("pretrain", pretrain), ("train", train))
            },
        }
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


# The LLaVA-1.5 layout MobileVLM's scripts expect; (what, path relative to its root, where to get it)
_LLAVA_HUB_PRE = "hub dataset liuhaotian/LLaVA-Pretrain"
_LLAVA_HUB_INSTR = "hub dataset liuhaotian/LLaVA-Instruct-150K"
_665K_FOLDERS = (
    ("COCO train2017 images", "coco/train2017", "http://images.cocodataset.org/zips/train2017.zip"),
    ("GQA images", "gqa/images", "https://downloads.cs.stanford.edu/nlp/data/gqa/images.zip"),
    ("OCR-VQA images", "ocr_vqa/images", "the OCR-VQA download script linked from LLaVA's README (saved as .jpg)"),
    (
        "TextVQA train images",
        "textvqa/train_images",
        "https://dl.fbaipublicfiles.com/textvqa/images/train_val_images.zip",
    ),
    ("Visual Genome part 1", "vg/VG_100K", "https://cs.stanford.edu/people/rak248/VG_100K_2/images.zip"),
    ("Visual Genome part 2", "vg/VG_100K_2", "https://cs.stanford.edu/people/rak248/VG_100K_2/images2.zip"),
)


def check_llava_files(cfg: DataConfig, out: Path) -> None:
    """Raise one UserError listing every missing user-provided file of the paper profile."""
    expected = [
        (
            "LLaVA-558K captions (stage I)",
            Path(cfg.pretrain_json),
            f"blip_laion_cc_sbu_558k.json from {_LLAVA_HUB_PRE}",
        ),
        ("LLaVA-558K images", Path(cfg.pretrain_images), f"images.zip from {_LLAVA_HUB_PRE}, unzipped"),
        (
            "LLaVA-665K instructions (stage II)",
            Path(cfg.train_json),
            f"llava_v1_5_mix665k.json from {_LLAVA_HUB_INSTR}",
        ),
    ] + [(what, Path(cfg.train_images) / rel, src) for what, rel, src in _665K_FOLDERS]
    out_abs = out.resolve()
    for what, path, _ in expected:
        if path.resolve() == out_abs or out_abs in path.resolve().parents:
            raise UserError(f"data: {what} at {path} lies inside the output folder {out}, which prepare replaces")
    missing = [(w, p, s) for w, p, s in expected if not p.exists()]
    if missing:
        lines = [f"  - {w}: expected at {p}; get it from {s}" for w, p, s in missing]
        raise UserError(
            f"the paper profile needs {len(missing)} user-provided input(s) that are missing "
            "(paths from the params file's data section):\n" + "\n".join(lines)
        )


# The folders every profile's stages depend on (dvc.yaml); for `paper` they only say where the real inputs are.
PAPER_PLACEHOLDERS = {
    "images": "the images are user-provided, outside this folder: manifest.json paths.image_folder and "
    "paths.pretrain_image_folder (prepare checked that every referenced image exists)",
    "tokenizer": "the paper profile uses each hub LM's own tokenizer (profiles.paper.pretrain.init)",
    "eval": "the paper profile evaluates on lmms-eval's own tasks and their hub datasets",
    "tasks": "the paper profile evaluates on lmms-eval's own task YAMLs (hydra_repro.tasks.PAPER_TASK_DIRS)",
}


def image_first(record: Record) -> Record:
    """MobileVLM's `preprocess_multimodal`: the first turn of a record with an image becomes "<image>\\n" + the
    rest of its text, stripped, wherever the JSON put the image token (LLaVA-558K has it last in about half)."""
    if record.image is None:
        return record
    (question, answer), *rest = record.turns
    question = f"{DEFAULT_IMAGE_TOKEN}\n" + question.replace(DEFAULT_IMAGE_TOKEN, "").strip()
    return dataclasses.replace(record, turns=((question, answer), *rest))


def prepare_llava(cfg: DataConfig, out: Path, profile: str) -> dict[str, Any]:
    """Check the LLaVA files (presence, record structure, referenced images exist); write them with the image first
    (MobileVLM's rule) as pretrain.json / train.json, the placeholder folders the pipeline's stages depend on, and a
    manifest naming the user's image folders."""
    check_llava_files(cfg, out)
    pre = load_records(cfg.pretrain_json, cfg.pretrain_images, check_images="exists")
    train = load_records(cfg.train_json, cfg.train_images, check_images="exists")
    moved = {name: sum(image_first(r) != r for r in records) for name, records in (("pretrain", pre), ("train", train))}
    manifest = {
        "generated_by": f"hydra-repro prepare --profile {profile} (generated; do not edit)",
        "profile": profile,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "paths": {
            "pretrain": "pretrain.json",
            "pretrain_image_folder": str(Path(cfg.pretrain_images).resolve()),
            "train": "train.json",
            "image_folder": str(Path(cfg.train_images).resolve()),
        },
        "sources": {"pretrain": str(Path(cfg.pretrain_json).resolve()), "train": str(Path(cfg.train_json).resolve())},
        "files": {
            "pretrain": {"records": len(pre), "with_image": sum(r.image is not None for r in pre)},
            "train": {"records": len(train), "with_image": sum(r.image is not None for r in train)},
        },
        "image_moved_first": moved,
    }
    with atomic_dir(out) as tmp:
        atomic_write_json(tmp / "pretrain.json", [record_to_json(image_first(r)) for r in pre])
        atomic_write_json(tmp / "train.json", [record_to_json(image_first(r)) for r in train])
        atomic_write_json(tmp / "vision.json", [])  # no stage 0: the paper profile's tower is CLIP
        for folder, why in PAPER_PLACEHOLDERS.items():
            (tmp / folder).mkdir()
            (tmp / folder / "README.txt").write_text(f"Paper profile: {why}.\n")
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


def prepare(cfg: DataConfig, out: str | Path, profile: str) -> dict[str, Any]:
    """Build (packages) or check (llava) the data of one profile into `out`; returns the manifest."""
    out = Path(out)
    if cfg.source == "llava":
        manifest = prepare_llava(cfg, out, profile)
    else:
        manifest = prepare_packages(cfg, out, profile)
    write_sidecar(out, profile=profile, sources=versions(SOURCE_PACKAGES))
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--profile", default=None, help="profile name; overrides the params file's `profile:`")
    parser.add_argument("--out", default=None, help="output folder (default: data/<profile>)")
    parser.add_argument("--registry", default="experiments/runs.yaml", help="run registry checked up front")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.registry import check_registry

    # the first stage checks the registry too, so a broken run definition stops `dvc repro` here
    check_registry(args.registry, args.params, args.profile)
    profile, section = load_params(args.params, args.profile)
    try:
        cfg = dataclass_from_dict(DataConfig, section.get("data", {}), f"{args.params}: profiles.{profile}.data")
    except UserError as e:  # __post_init__ names the key as data.<key>; add the file and profile
        msg = str(e)
        raise UserError(
            msg if msg.startswith(str(args.params)) else f"{args.params}: profiles.{profile}.{msg}"
        ) from None
    out = Path(args.out) if args.out else Path("data") / profile
    manifest = prepare(cfg, out, profile)
    counts = ", ".join(f"{name} {v.get('records', v.get('rows'))}" for name, v in manifest["files"].items())
    print(f"prepare: wrote {out} ({counts})")
    return 0
