"""The `data` section of a profile: how `hydra-repro prepare` builds (mini, smoke) or checks (paper) the data.

Torch-free, so that checking a profile costs no torch import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hydra_repro.errors import UserError

EVAL_TASKS = ("mini_mme", "mini_mmbench", "mini_gqa", "mini_textvqa", "mini_pope", "mini_sqa_img")
# Training-format families of train.json: one per benchmark, plus easy-VQA's own questions (with negations).
FAMILIES = ("evqa", "mme", "pope", "gqa", "textvqa", "mmbench", "sqa")
DEFAULT_MIXTURE = {"evqa": 2.0, "mme": 1.0, "pope": 1.0, "gqa": 2.0, "textvqa": 2.0, "mmbench": 1.0, "sqa": 1.0}


@dataclass(frozen=True)
class DataConfig:
    """The `data` section of a profile in params.yaml. Defaults are the `mini` profile."""

    source: str = field(default="packages", metadata={"help": "'packages' (easy-vqa + sklearn digits) or 'llava'"})
    seed: int = 0
    image_size: int = field(default=64, metadata={"help": "side of every written image (easy-VQA's own is 64)"})
    train_shapes: int = field(default=4000, metadata={"help": "easy-VQA train images used (max 4000)"})
    train_digit_canvases: int = 2000
    test_digit_canvases: int = field(default=400, metadata={"help": "held-out canvases the eval sets draw from"})
    digit_test_fraction: float = field(default=0.3, metadata={"help": "share of sklearn digits held out"})
    max_digits: int = field(default=2, metadata={"help": "digits per number (1..3)"})
    digit_min_px: int = field(default=22, metadata={"help": "smallest glyph side on the 64-pixel canvas"})
    digit_max_px: int = field(default=30, metadata={"help": "largest glyph side (shrunk to fit max_digits)"})
    vision_digit_canvases: int = field(
        default=10000, metadata={"help": "extra train canvases only the vision-tower pretraining sees"}
    )
    turns_per_image: int = field(default=3, metadata={"help": "question turns per train.json conversation"})
    pretrain_questions_per_image: int = field(default=2, metadata={"help": "basic questions after each caption"})
    text_only_fraction: float = field(default=0.03, metadata={"help": "text-only records, as a share of records"})
    pretrain_described: float = field(
        default=0.0,
        metadata={
            "help": "pretrain.json: text-only records that describe a train image in words and ask the stage-I "
            "questions about the description, per image record (an analog of an LM's text pretraining)"
        },
    )
    mixture: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIXTURE))
    mme_images_per_category: int = 40
    mmbench_questions: int = field(default=100, metadata={"help": "before the x4 circular rotations"})
    gqa_questions: int = 400
    textvqa_questions: int = 300
    pope_images: int = field(default=70, metadata={"help": "each gets a yes and a no question in 3 categories"})
    sqa_questions: int = 300
    # source: llava (paper profile): user-provided files, outside the output folder (it is replaced)
    pretrain_json: str = "data/llava/LLaVA-Pretrain/blip_laion_cc_sbu_558k.json"
    pretrain_images: str = "data/llava/LLaVA-Pretrain/images"
    train_json: str = "data/llava/llava_v1_5_mix665k.json"
    train_images: str = "data/llava/images"

    def __post_init__(self) -> None:
        def bad(key: str, expected: str) -> UserError:
            return UserError(f"data.{key}: got {getattr(self, key)!r}; expected {expected}")

        if self.source not in ("packages", "llava"):
            raise bad("source", "'packages' or 'llava'")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise bad(f.name, "a non-negative integer")
        if not 0 < self.train_shapes <= 4000:
            raise bad("train_shapes", "1..4000 (easy-VQA has 4000 train images)")
        if not 0 < self.digit_test_fraction < 1:
            raise bad("digit_test_fraction", "a fraction in (0, 1)")
        if not 1 <= self.max_digits <= 3:
            raise bad("max_digits", "1..3 (a wider number does not fit a 64-pixel canvas)")
        if not 6 <= self.digit_min_px <= self.digit_max_px:
            raise bad("digit_min_px", f"6..digit_max_px ({self.digit_max_px}) pixels")
        if self.max_digits * self.digit_min_px + 3 * (self.max_digits - 1) > 60:
            raise bad("digit_min_px", f"a size at which {self.max_digits} digits and their gaps fit 60 pixels")
        if not 16 <= self.image_size <= 1024:
            raise bad("image_size", "16..1024 pixels")
        if self.turns_per_image < 1:
            raise bad("turns_per_image", ">= 1")
        if not 0 <= self.text_only_fraction < 1:
            raise bad("text_only_fraction", "a fraction in [0, 1)")
        if not 0 <= self.pretrain_described <= 10:
            raise bad("pretrain_described", "a non-negative number of described records per image record, <= 10")
        unknown = sorted(set(self.mixture) - set(FAMILIES))
        if unknown or any(w < 0 for w in self.mixture.values()) or sum(self.mixture.values()) <= 0:
            raise bad("mixture", f"non-negative weights, not all zero, for keys among {list(FAMILIES)}")
