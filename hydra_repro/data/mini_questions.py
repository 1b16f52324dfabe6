"""Questions about the mini world in each benchmark's own format (MME, POPE, GQA, TextVQA, MMBench, ScienceQA-IMG),
stage-I captions and basic questions, and the conversations built from them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hydra_repro.config.data import FAMILIES, DataConfig
from hydra_repro.constants import DEFAULT_IMAGE_TOKEN
from hydra_repro.data.conversation import (
    V1,
    Record,
)
from hydra_repro.data.mini_world import COLORS, COOL, OBJECTS, SHAPES, WARM, DigitItem, Item, ShapeItem, _png, _rng
from hydra_repro.errors import UserError

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


def _sample(pool: Sequence[Any], n: int, rng: np.random.Generator, what: str) -> list[Any]:
    if n > len(pool):
        raise UserError(f"data.{what}: asks for {n} held-out images but only {len(pool)} are eligible")
    return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def _img(item: Item) -> dict[str, Any]:
    return {"bytes": _png(item.pixels), "path": None}
