"""A profile's data on disk: the mini data from packages (images, LLaVA JSON, eval parquet, tokenizer, task YAMLs,
manifest), or the paper profile's LLaVA files checked and recorded."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from hydra_repro.config.data import EVAL_TASKS, DataConfig
from hydra_repro.constants import DEFAULT_IMAGE_TOKEN
from hydra_repro.data.conversation import (
    V1,
    Record,
    build_word_tokenizer,
    load_records,
    record_to_json,
    render,
    tokenize_conversation,
)
from hydra_repro.data.mini_questions import (
    LETTERS,
    MMB_CATEGORIES,
    POPE_CATEGORIES,
    PROMPT_PIECES,
    _img,
    _sample,
    build_records,
    gen_gqa,
    gen_mmbench,
    gen_mme,
    gen_sqa,
    gen_textvqa,
    mmb_categories,
    mme_categories,
    pope_negative,
    pope_question,
    sqa_types,
)
from hydra_repro.data.mini_world import (
    COLORS,
    SHAPES,
    DigitItem,
    Item,
    NearestCentroidOCR,
    ShapeItem,
    _rng,
    load_shapes,
    make_canvases,
    pixel_hash,
    split_digits,
)
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, atomic_write_json, sha256_file
from hydra_repro.provenance import versions, write_sidecar


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


# the packages the mini data comes from or is written with; recorded beside data/<profile> (provenance sidecar)
SOURCE_PACKAGES = ("easy-vqa", "scikit-learn", "numpy", "pillow", "datasets", "tokenizers", "transformers")


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
            entry["sha256"] = sha256_file(tmp / name)
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
