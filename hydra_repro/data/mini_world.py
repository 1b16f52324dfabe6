"""The mini world: easy-VQA's coloured shapes and scikit-learn's digits composed on canvases, their attributes,
and the nearest-centroid OCR that plays TextVQA's OCR tokens."""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hydra_repro.config.data import DataConfig

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
