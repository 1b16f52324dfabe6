"""Stand-ins for plumbing tests and benchmarks: fabricated evaluation sets and a rule-based "VLM".

Every image is a solid colour; every question asks about that colour. `FakeVLM` reads the colour from the
pixels and answers from the prompt text, so the whole chain (prompt building, image routing, batching and
order restoration, `until` cut-off, lmms-eval scoring) is checked without a trained model:

    from tests.fakes import write_mini_eval_sets, fake_components
    write_mini_eval_sets(Path("/tmp/eval"), n=12)     # six parquet files in the mini schemas
    model, tokenizer, image_processor, encode = fake_components()

`colour_blind` makes the fake see one colour as another, which gives predictable non-perfect scores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 230, 20),
    "purple": (140, 20, 160),
    "gray": (128, 128, 128),
}
COLOURS = tuple(PALETTE)
# Chatter an undertrained LM may add instead of stopping (`FakeVLM(trailer=TRAILER)`): `until` must cut it off.
TRAILER = "\n\nUSER: ASSISTANT: more"
POPE_CATEGORIES = ("adversarial", "popular", "random")
MME_CATEGORIES = ("color", "existence", "count", "position")


def colour_image(colour: str, size: int = 16) -> Image.Image:
    return Image.fromarray(np.full((size, size, 3), PALETTE[colour], dtype=np.uint8))


def _other(colour: str, shift: int = 1) -> str:
    return COLOURS[(COLOURS.index(colour) + shift) % len(COLOURS)]


def mini_rows(task: str, n: int) -> list[dict[str, Any]]:
    """`n` documents (MME: `n` images, two questions each) of a mini task in the schema `prepare` writes."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        c, o = COLOURS[i % len(COLOURS)], _other(COLOURS[i % len(COLOURS)], 1 + i % 2)
        img = colour_image(c)
        if task == "mini_mme":
            cat = MME_CATEGORIES[i % len(MME_CATEGORIES)]
            for colour, ans in ((c, "Yes"), (o, "No")):
                q = f"Is there a {colour} shape in the image? Please answer yes or no."
                rows.append(dict(question_id=f"img{i}", question=q, answer=ans, category=cat, image=img))
        elif task == "mini_mmbench":
            opts = [c, o, _other(c, 3), _other(c, 4)]
            for k in range(4):  # CircularEval: the options rotated, index idx + k * 1e6
                rot = opts[k:] + opts[:k]
                row = dict(index=i + k * 1_000_000, question="What colour is the shape?", hint=None if i % 2 else "")
                row.update({letter: text for letter, text in zip("ABCD", rot)})
                row.update(answer="ABCD"[rot.index(c)], category="color", source="fake", split="dev", image=img)
                row["L2-category"] = "perception"
                rows.append(row)
        elif task == "mini_gqa":
            rows.append(dict(question_id=str(i), question="What color is the shape?", answer=c, image=img))
        elif task == "mini_textvqa":
            answers = [c] * 7 + [o] * 3
            rows.append(
                dict(question_id=i, question="what color is it?", answers=answers, image=img, image_id=f"img{i}")
            )
            rows[-1]["ocr_tokens"] = [c]
        elif task == "mini_pope":
            colour, ans = (c, "yes") if i % 2 == 0 else (o, "no")
            rows.append(
                dict(
                    question_id=str(i),
                    question=f"Is there a {colour} shape in the image?",
                    answer=ans,
                    category=POPE_CATEGORIES[i % 3],
                    image_source=f"img{i}",
                    image=img,
                )
            )
        elif task == "mini_sqa_img":
            choices = [o, c] if i % 2 else [c, o, _other(c, 3)]
            rows.append(
                dict(
                    question="Which colour is shown?",
                    choices=choices,
                    answer=choices.index(c),
                    hint="" if i % 3 else "Look at the image.",
                    image=img,
                    subject="natural science",
                    grade="grade1",
                )
            )
        else:
            raise ValueError(f"unknown mini task {task!r}")
    return rows


# Columns of the real benchmarks (the lmms-lab datasets) that the mini schemas leave out or name differently.
def real_rows(bench: str, n: int) -> list[dict[str, Any]]:
    """`n` documents of a real benchmark's schema (as lmms-eval's task sees them), same content as `mini_rows`.

    GQA's real instructions config has no image column: lmms-eval's `process_docs` joins one from a second hub
    config; these rows carry the joined `image` already (the test sets `process_docs: null`).
    """
    rows = mini_rows(f"mini_{bench}", n)
    for i, r in enumerate(rows):
        if bench == "mme":
            r["question_id"] = f"{r['category']}/{r['question_id']}.png"
        elif bench == "mmbench":
            r["comment"] = None
        elif bench == "gqa":
            r.update(id=r.pop("question_id"), imageId=f"n{i}", fullAnswer=f"The shape is {r['answer']}.")
            r.update(isBalanced=True, semanticStr="select: shape ->query: color")
        elif bench == "textvqa":
            r.update(question_tokens=r["question"].split(), image_width=16, image_height=16, set_name="val")
            r.update(flickr_original_url="", flickr_300k_url="", image_classes=["shape"])
        elif bench == "pope":
            r["id"] = str(i)
        elif bench == "sqa_img":
            r.update(task="closed choice", topic="colour", category="Colours", skill="Identify colours")
            r.update(lecture="", solution="")
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows -> parquet with the image column cast to `datasets.Image` (as `prepare` writes it)."""
    import datasets

    ds = datasets.Dataset.from_list(rows).cast_column("image", datasets.Image())
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


def write_mini_eval_sets(eval_dir: Path, n: int = 12, tasks: Sequence[str] | None = None) -> dict[str, Path]:
    """Write `<task>.parquet` for each mini task into `eval_dir`; returns task -> path."""
    from hydra_repro.tasks import MINI_TASKS

    names = tasks if tasks is not None else MINI_TASKS.values()
    return {t: write_parquet(mini_rows(t, n), Path(eval_dir) / f"{t}.parquet") for t in names}


class FakeTokenizer:
    """Byte-level tokenizer: id = byte + 3; 0 pad, 1 bos, 2 eos (HF-style `decode` and `eos_token_id`)."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def encode(self, text: str) -> list[int]:
        return [self.bos_token_id] + [b + 3 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")


class FakeImageProcessor:
    """HF-style processor: `proc(images=..., return_tensors="pt")["pixel_values"]` -> (B, 3, 1, 1) mean colours."""

    image_mean = (0.5, 0.5, 0.5)  # read by `modeling.process_images` for the pad-to-square fill

    def __call__(self, images: Sequence[Image.Image], return_tensors: str = "pt") -> dict[str, Any]:
        import torch

        means = [np.asarray(im.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(0) for im in images]
        return {"pixel_values": torch.tensor(np.stack(means)).reshape(len(images), 3, 1, 1)}


def fake_encode(tokenizer: FakeTokenizer) -> Callable[[str], list[int]]:
    """User message (with one "<image>") -> a Vicuna-style prompt -> ids with the image placeholder (-200)."""
    from hydra_repro.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX

    def encode(message: str) -> list[int]:
        prompt = f"A chat. USER: {message} ASSISTANT:"
        head, sep, tail = prompt.partition(DEFAULT_IMAGE_TOKEN)
        ids = tokenizer.encode(head)
        return ids + [IMAGE_TOKEN_INDEX] + tokenizer.encode(tail)[1:] if sep else ids

    return encode


class FakeVLM:
    """Answers colour questions from the image's mean colour; `generate_batch` mirrors the real model's."""

    def __init__(self, tokenizer: FakeTokenizer, colour_blind: dict[str, str] | None = None, trailer: str = ""):
        self.tokenizer = tokenizer
        self.colour_blind = colour_blind or {}
        self.trailer = trailer  # text after the answer; "" = stop at the answer, as a trained model does
        self.calls: list[int] = []  # batch sizes seen, for tests

    def to(self, *args: Any, **kwargs: Any) -> FakeVLM:
        return self

    def eval(self) -> FakeVLM:
        return self

    def _see(self, pixels: Any) -> str:
        rgb = np.asarray(pixels, dtype=np.float32).reshape(3)
        name = min(PALETTE, key=lambda k: float(((np.array(PALETTE[k]) - rgb) ** 2).sum()))
        return self.colour_blind.get(name, name)

    def answer(self, prompt: str, colour: str | None) -> str:
        options = dict(re.findall(r"^([A-E])\. (.+)$", prompt, flags=re.M))
        if colour is None:
            return "I cannot see an image."
        if options:
            return next((k for k, v in options.items() if v.strip() == colour), "A")
        question = prompt.rsplit("USER:", 1)[-1].lower()
        if "yes or no" in question or re.search(r"\bis there\b", question):
            return "Yes" if re.search(rf"\b{colour}\b", question) else "No"
        return colour

    def generate_batch(
        self, prompts_ids: list[list[int]], images: Any, max_new_tokens: int, **kwargs: Any
    ) -> list[list[int]]:
        """Args: prompts_ids: B id lists (with -200); images: (B, 3, 1, 1) or None. Returns B new-token lists."""
        self.calls.append(len(prompts_ids))
        out = []
        for b, ids in enumerate(prompts_ids):
            colour = self._see(images[b]) if images is not None else None
            text = self.answer(self.tokenizer.decode([i for i in ids if i >= 0]), colour) + self.trailer
            out.append(self.tokenizer.encode(text)[1 : 1 + max_new_tokens])
        return out


def fake_components(
    colour_blind: dict[str, str] | None = None, trailer: str = ""
) -> tuple[FakeVLM, FakeTokenizer, FakeImageProcessor, Callable[[str], list[int]]]:
    """(model, tokenizer, image_processor, encode) for `HydraVLM.from_components`."""
    tok = FakeTokenizer()
    return FakeVLM(tok, colour_blind, trailer), tok, FakeImageProcessor(), fake_encode(tok)


def write_random_model(out: Path, preset: str = "tiny") -> Path:
    """A randomly initialised model of `modeling.PRESETS[preset]` with a word tokenizer covering the fabricated
    tasks' prompts, saved in MobileVLM's layout (nothing downloaded). It answers gibberish, never eos."""
    import dataclasses

    from hydra_repro.config.model import PRESETS
    from hydra_repro.data import conversation as data
    from hydra_repro.model.vlm import build_model

    words = "Is there a shape in the image ? What colour color is it Answer the question using single word or phrase"
    tok = data.build_word_tokenizer([data.V1.system, "USER: ASSISTANT:", words, " ".join(COLOURS), "yes no A B C D"])
    cfg = PRESETS[preset]
    special = {k: tok.convert_tokens_to_ids(v) for k, v in (("bos_token_id", "<s>"), ("eos_token_id", "</s>"))}
    lm = dataclasses.replace(cfg.lm, vocab_size=len(tok), pad_token_id=tok.pad_token_id, **special)
    build_model(dataclasses.replace(cfg, lm=lm)).save_pretrained(out, tokenizer=tok)
    return Path(out)


SP_CORPUS = "USER: what colour is the circle? ASSISTANT: red\nis there a green triangle? yes no\n" * 50


def sentencepiece_hub(root: Path, model_type: str = "unigram", vocab_size: int = 30) -> Path:
    """A tiny SentencePiece model trained under `root`, in MobileLLaMA's hub layout: `tokenizer.model` and
    `tokenizer_config.json`, no `tokenizer.json`. Returns the folder."""
    import json

    import sentencepiece as spm

    (root / "corpus.txt").write_text(SP_CORPUS)
    spm.SentencePieceTrainer.train(
        input=str(root / "corpus.txt"),
        model_prefix=str(root / "tokenizer"),
        model_type=model_type,
        vocab_size=vocab_size,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    hub = root / "hub"
    hub.mkdir()
    (root / "tokenizer.model").rename(hub / "tokenizer.model")
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (hub / "tokenizer_config.json").write_text(json.dumps(config))
    return hub
