"""Training-side data: conversation templates, LLaVA-format records, tokenisation with loss masks, dataset + collator.

Used by every profile (`paper` reads LLaVA-558K / `llava_v1_5_mix665k.json`, `mini` and `smoke` read the files that
`hydra-repro prepare` writes under `data/<profile>/`). Typical use:

    records = load_records("data/mini/train.json", "data/mini/images")   # validated up front
    tokenizer = load_tokenizer("data/mini/tokenizer")
    dataset = LlavaDataset(records, tokenizer, image_processor, "data/mini/images", max_length=256)
    batch = DataCollator(tokenizer.pad_token_id)([dataset[0], dataset[1]])  # -> model(**batch)

Tokenisation follows MobileVLM / LLaVA: the prompt is split at "<image>" and IMAGE_TOKEN_INDEX is spliced in;
labels are IGNORE_INDEX everywhere except the assistant answers and the separator that ends them (eos), found
from character offsets, so the same code serves word-level and SentencePiece tokenizers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from hydra_repro.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from hydra_repro.errors import UserError
from hydra_repro.io import read_json

# --------------------------------------------------------------------------------------------------------------
# Conversation templates


@dataclass(frozen=True)
class ConversationTemplate:
    """How a conversation is rendered into one string. Data, not code: a new chat format is a new instance.

    Rendering: `system`, then per turn `user_prefix + question + user_suffix + assistant_prefix`, and, when the turn
    has an answer, `answer_prefix + answer + answer_suffix`. The supervised span of a turn is
    `answer_prefix + answer + answer_suffix` (the prefix is usually the space before the answer, which word-piece
    tokenizers attach to the answer's first token; the suffix is the eos that stops generation).
    """

    name: str
    system: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    answer_prefix: str
    answer_suffix: str
    add_bos: bool  # prepend the tokenizer's bos token id (Llama / MobileVLM do; ChatML models do not)
    image_only_question: bool = False  # `plain`: the user turn is the image alone, its instruction text dropped


# MobileVLM's `conv_v1` (Vicuna v1, SeparatorStyle.TWO): sep " ", sep2 "</s>".
V1 = ConversationTemplate(
    name="v1",
    system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions. "
    ),
    user_prefix="USER: ",
    user_suffix=" ",
    assistant_prefix="ASSISTANT:",
    answer_prefix=" ",
    answer_suffix="</s>",
    add_bos=True,
)

# SmolLM2-Instruct's own chat template (ChatML with its default system prompt); "<|im_end|>" is its eos.
CHATML = ConversationTemplate(
    name="chatml",
    system="<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    user_prefix="<|im_start|>user\n",
    user_suffix="<|im_end|>\n",
    assistant_prefix="<|im_start|>assistant\n",
    answer_prefix="",
    answer_suffix="<|im_end|>\n",
    add_bos=False,
)

# MobileVLM's `conv_plain` for stage I (LLaVA-558K captions): "<image>" + caption + "\n", no system prompt, no roles.
PLAIN = ConversationTemplate(
    name="plain",
    system="",
    user_prefix="",
    user_suffix="",
    assistant_prefix="",
    answer_prefix="",
    answer_suffix="\n",
    add_bos=True,
    image_only_question=True,
)

TEMPLATES: dict[str, ConversationTemplate] = {t.name: t for t in (V1, CHATML, PLAIN)}


def get_template(name: str) -> ConversationTemplate:
    if name not in TEMPLATES:
        raise UserError(f"conversation template {name!r} is unknown; expected one of {sorted(TEMPLATES)}")
    return TEMPLATES[name]


def model_template(config: Any) -> ConversationTemplate:
    """The template a model was trained with: config key `conv_template`, MobileVLM's v1 when absent."""
    return get_template(getattr(config, "conv_template", None) or V1.name)


def render(
    template: ConversationTemplate, turns: Sequence[tuple[str, str | None]]
) -> tuple[str, list[tuple[int, int]]]:
    """Render `turns` [(question, answer or None)] into one string and the [start, end) character spans to learn.

    Only the last turn may have answer None: the string then ends with the assistant prefix (a generation prompt).
    """
    parts = [template.system]
    spans: list[tuple[int, int]] = []
    pos = len(template.system)
    for i, (question, answer) in enumerate(turns):
        if template.image_only_question:
            question = DEFAULT_IMAGE_TOKEN if DEFAULT_IMAGE_TOKEN in question else ""
        head = template.user_prefix + question + template.user_suffix + template.assistant_prefix
        parts.append(head)
        pos += len(head)
        if answer is None:
            if i != len(turns) - 1:
                raise ValueError("only the last turn may lack an answer")
            continue
        tail = template.answer_prefix + answer + template.answer_suffix
        parts.append(tail)
        spans.append((pos, pos + len(tail)))
        pos += len(tail)
    return "".join(parts), spans


def generation_prompt(question: str, template: ConversationTemplate = V1, image: bool = True) -> str:
    """The prompt for answering `question` about one image: "<system> USER: <image>\\n<question> ASSISTANT:"."""
    if image and DEFAULT_IMAGE_TOKEN not in question:
        question = f"{DEFAULT_IMAGE_TOKEN}\n{question}"
    return render(template, [(question, None)])[0]


# --------------------------------------------------------------------------------------------------------------
# LLaVA-format records


@dataclass(frozen=True)
class Record:
    """One validated LLaVA record: `turns` are (human, gpt) pairs; `image` is relative to the image folder."""

    id: str
    image: str | None
    turns: tuple[tuple[str, str], ...]


_RECORD_HELP = 'expected {"id", "image" (optional), "conversations": [{"from": "human"|"gpt", "value": str}, ...]}'


def validate_records(
    data: Any, source: str, image_folder: str | Path | None = None, check_images: str = "open"
) -> list[Record]:
    """Check LLaVA-format `data` (the parsed JSON of `source`) and return it as Records.

    Args:
        data: the parsed JSON: a list of records.
        source: the file name, used in error messages.
        image_folder: where `image` paths are resolved; None skips image checks.
        check_images: "open" (exists and PIL can verify it), "exists", or "none".

    Raises:
        UserError naming `source`, the record index and id, the bad value and what was expected.
    """
    if check_images not in ("open", "exists", "none"):
        raise ValueError(f"check_images={check_images!r}")
    if not isinstance(data, list):
        raise UserError(f"{source}: expected a JSON list of LLaVA records, got {type(data).__name__}")
    folder = Path(image_folder) if image_folder is not None else None
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise UserError(f"{source}: record {i}: got {type(rec).__name__}; {_RECORD_HELP}")
        where = f"{source}: record {i} (id {rec.get('id')!r})"
        for key in ("id", "conversations"):
            if key not in rec:
                raise UserError(f"{where}: missing key {key!r}; {_RECORD_HELP}")
        if not isinstance(rec["id"], (str, int)) or isinstance(rec["id"], bool):
            raise UserError(f"{where}: 'id' is {rec['id']!r}; expected a string or integer")
        image = rec.get("image")
        if image is not None and (not isinstance(image, str) or not image):
            raise UserError(f"{where}: 'image' is {image!r}; expected a non-empty relative path")
        conv = rec["conversations"]
        if not isinstance(conv, list) or not conv or len(conv) % 2:
            n = len(conv) if isinstance(conv, list) else type(conv).__name__
            raise UserError(f"{where}: 'conversations' has {n} turns; expected a non-empty list of human/gpt pairs")
        turns = []
        for j, turn in enumerate(conv):
            role = "human" if j % 2 == 0 else "gpt"
            if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
                raise UserError(f"{where}: conversations[{j}] is {turn!r}; expected {{'from': {role!r}, 'value': str}}")
            if turn.get("from") != role:
                raise UserError(
                    f"{where}: conversations[{j}].from is {turn.get('from')!r}; expected {role!r} "
                    "(turns alternate human, gpt, starting with human)"
                )
            n_img = turn["value"].count(DEFAULT_IMAGE_TOKEN)
            if image is not None and j == 0 and n_img != 1:
                raise UserError(
                    f"{where}: the first human turn contains {DEFAULT_IMAGE_TOKEN!r} {n_img} times; "
                    "expected exactly once for a record with an image"
                )
            if (image is None or j > 0) and n_img:
                raise UserError(
                    f"{where}: conversations[{j}] contains {DEFAULT_IMAGE_TOKEN!r}; expected it only in the first "
                    "human turn of a record with an 'image'"
                )
        for j in range(0, len(conv), 2):
            turns.append((conv[j]["value"], conv[j + 1]["value"]))
        if image is not None and folder is not None and check_images != "none":
            check_image(folder / image, where, check_images)
        out.append(Record(id=str(rec["id"]), image=image, turns=tuple(turns)))
    return out


def check_image(path: Path, where: str, mode: str = "open") -> None:
    """`path` exists ("exists") and PIL verifies its data ("open": a truncated or corrupt file fails, even where
    lmms-eval has set PIL's LOAD_TRUNCATED_IMAGES); UserError names `where` and the file."""
    if not path.is_file():
        raise UserError(f"{where}: image file {path} not found")
    if mode == "open":
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as e:  # PIL raises many types for corrupt files
            raise UserError(f"{where}: image file {path} is not a readable image ({type(e).__name__}: {e})") from None


def load_records(json_path: str | Path, image_folder: str | Path | None, check_images: str = "open") -> list[Record]:
    """Read and validate a LLaVA-format JSON file (see `validate_records`)."""
    json_path = Path(json_path)
    data = read_json(json_path, "LLaVA-format JSON list")
    return validate_records(data, str(json_path), image_folder, check_images)


def image_folder(data: Path, images: Path | None) -> Path:
    """`--images`, else `paths.image_folder` of the manifest.json `hydra-repro prepare` wrote beside the data file."""
    if images is not None:
        return images
    manifest = data.parent / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"--images: not given and {manifest} does not exist to name the image folder")
    return data.parent / read_json(manifest, "data manifest").get("paths", {}).get("image_folder", "")


def record_to_json(record: Record) -> dict[str, Any]:
    """The LLaVA JSON form of `record` (inverse of validate_records)."""
    conv = []
    for human, gpt in record.turns:
        conv += [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
    out: dict[str, Any] = {"id": record.id}
    if record.image is not None:
        out["image"] = record.image
    out["conversations"] = conv
    return out


# --------------------------------------------------------------------------------------------------------------
# Tokenisation


def _encode(text: str, spans: Sequence[tuple[int, int]], tokenizer: Any, add_bos: bool) -> tuple[list[int], list[int]]:
    """Token ids of `text` with "<image>" replaced by IMAGE_TOKEN_INDEX, and labels that keep only tokens lying
    inside `spans` (character ranges of `text`)."""
    ids: list[int] = []
    labels: list[int] = []
    if add_bos and tokenizer.bos_token_id is not None:
        ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE_INDEX)
    offset = 0
    for k, chunk in enumerate(text.split(DEFAULT_IMAGE_TOKEN)):
        if k > 0:
            ids.append(IMAGE_TOKEN_INDEX)
            labels.append(IGNORE_INDEX)
            offset += len(DEFAULT_IMAGE_TOKEN)
        if chunk:
            enc = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True)
            for tok, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
                s, e = s + offset, e + offset
                inside = e > s and any(a <= s and e <= b for a, b in spans)
                ids.append(tok)
                labels.append(tok if inside else IGNORE_INDEX)
        offset += len(chunk)
    return ids, labels


def tokenize_conversation(
    turns: Sequence[tuple[str, str]],
    tokenizer: Any,
    template: ConversationTemplate = V1,
    max_length: int | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids and labels of a conversation; labels are IGNORE_INDEX except on the assistant answers + eos.

    Args:
        turns: (human, gpt) pairs; the first human turn may contain "<image>".
        max_length: keep at most this many tokens (counting IMAGE_TOKEN_INDEX as one).
    Returns:
        (input_ids, labels), equal lengths.
    """
    text, spans = render(template, turns)
    ids, labels = _encode(text, spans, tokenizer, template.add_bos)
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return ids, labels


def tokenizer_image_token(prompt: str, tokenizer: Any, template: ConversationTemplate = V1) -> list[int]:
    """Token ids of a generation prompt (see `generation_prompt`) with IMAGE_TOKEN_INDEX at "<image>"."""
    return _encode(prompt, (), tokenizer, template.add_bos)[0]


# --------------------------------------------------------------------------------------------------------------
# Dataset and collator


class LlavaDataset(torch.utils.data.Dataset):
    """Records -> {"input_ids": [T] long, "labels": [T] long, "image": [3, H, W] float or None}.

    Args:
        records: validated records (`load_records`).
        tokenizer: a Hugging Face tokenizer with offsets (any fast tokenizer).
        image_processor: maps a PIL RGB image to a [3, H, W] float tensor.
        image_folder: where the records' image paths are resolved.
        max_length: truncation length in tokens (IMAGE_TOKEN_INDEX counts as one).
    """

    def __init__(
        self,
        records: Sequence[Record],
        tokenizer: Any,
        image_processor: Callable[[Image.Image], torch.Tensor],
        image_folder: str | Path,
        template: ConversationTemplate = V1,
        max_length: int = 512,
    ) -> None:
        self.records = list(records)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_folder = Path(image_folder)
        self.template = template
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        ids, labels = tokenize_conversation(rec.turns, self.tokenizer, self.template, self.max_length)
        image = None
        if rec.image is not None:
            path = self.image_folder / rec.image
            try:
                with Image.open(path) as im:
                    pil = im.convert("RGB")
            except Exception as e:  # validated up front; a file can still change underneath
                raise UserError(f"record {i} (id {rec.id!r}): image file {path} is not readable ({e})") from None
            image = self.image_processor(pil)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "image": image,
        }


@dataclass(frozen=True)
class DataCollator:
    """Right-pads a list of LlavaDataset items into the batch the model's forward takes.

    Returns input_ids [B, T] (pad_token_id), attention_mask [B, T] (1 = token), labels [B, T] (IGNORE_INDEX on
    padding) and images [B, 3, H, W]. A text-only record gets an all-zero image: the model uses an image only for
    sequences that contain IMAGE_TOKEN_INDEX (LLaVA's convention). `images` is None when no record has an image.
    """

    pad_token_id: int

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor | None]:
        length = max(len(it["input_ids"]) for it in items)
        input_ids = torch.full((len(items), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(items), length), dtype=torch.long)
        for b, it in enumerate(items):
            n = len(it["input_ids"])
            input_ids[b, :n] = it["input_ids"]
            labels[b, :n] = it["labels"]
            attention_mask[b, :n] = 1
        present = [it["image"] for it in items if it["image"] is not None]
        images = None
        if present:
            images = torch.stack(
                [it["image"] if it["image"] is not None else torch.zeros_like(present[0]) for it in items]
            )
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "images": images}


# --------------------------------------------------------------------------------------------------------------
# Word-level tokenizer for the mini / smoke LMs

SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
_SPACE = "\u2581"  # SentencePiece's word-boundary mark


def _pre_tokenizer() -> Any:
    from tokenizers import Regex, pre_tokenizers

    # Newlines are tokens; a space is kept as "▁" on the next word (so decoding restores spacing exactly);
    # digits are single tokens (any number is covered); punctuation is split off.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n"), "isolated"),
            pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="never", split=True),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation("isolated"),
        ]
    )


def build_word_tokenizer(texts: Iterable[str], model_max_length: int = 512) -> Any:
    """A word-level `PreTrainedTokenizerFast` whose vocabulary is every word piece of `texts`.

    Special tokens: <unk> (id 0), <s>, </s>, <pad>; "<image>" and special tokens in `texts` are not counted as words.
    Each word gets both forms (with and without the leading "▁"), so a word round-trips at any position, and the
    ten digits are always present. Ids are sorted by frequency then text: the same texts give the same vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    specials = list(SPECIAL_TOKENS.values())
    strip = re.compile("|".join(re.escape(t) for t in [DEFAULT_IMAGE_TOKEN, *specials]))
    counts: Counter[str] = Counter()
    for text in texts:
        for chunk in strip.split(text):
            counts.update(piece for piece, _ in pre.pre_tokenize_str(chunk))
    for piece in list(counts):
        bare = piece.removeprefix(_SPACE)
        if bare.isalpha():  # the other form is present, without changing the order of seen words
            counts[bare if piece.startswith(_SPACE) else _SPACE + bare] += 0
    for digit in "0123456789":  # numbers are spelled digit by digit: every number is covered
        counts[digit] += 0
    vocab = {tok: i for i, tok in enumerate(specials)}
    for piece, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme="never", split=True)
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **SPECIAL_TOKENS)


def load_tokenizer(path: str | Path) -> Any:
    """Load a tokenizer saved with `save_pretrained` (no network)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise UserError(f"{path}: no tokenizer.json (expected a folder written by `hydra-repro prepare`)")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
