"""Tests of hydra_repro.data.conversation: templates, LLaVA record validation, label masking, tokenizer, dataset and
collator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hydra_repro.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from hydra_repro.data.conversation import (
    V1,
    DataCollator,
    LlavaDataset,
    build_word_tokenizer,
    generation_prompt,
    get_template,
    load_records,
    load_tokenizer,
    record_to_json,
    render,
    tokenize_conversation,
    tokenizer_image_token,
    validate_records,
)
from hydra_repro.errors import UserError

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TURNS = [
    ("<image>\nWhat color is the shape?\nAnswer the question using a single word or phrase.", "red"),
    ("Is there a 7 in the image?", "No"),
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [render(V1, TURNS)[0], "What number is written? 507 A. B. C. D. yes no Yes"]
    return build_word_tokenizer(texts)


def image_processor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im.resize((8, 8)), dtype=np.float32) / 255).permute(2, 0, 1)


def write_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (255, 0, 0)).save(path)


def good_record(i: int = 0, image: str | None = "a.png") -> dict:
    rec = {"id": f"r{i}", "conversations": [{"from": "human", "value": t} for t in ["<image>\nQ?"]]}
    rec["conversations"].append({"from": "gpt", "value": "red"})
    if image is None:
        rec["conversations"][0]["value"] = "Q?"
    else:
        rec["image"] = image
    return rec


# --------------------------------------------------------------------------------------------------------------
# templates


def test_v1_generation_prompt_is_mobilevlm_conv_v1():
    assert V1.system.strip() == SYSTEM
    assert generation_prompt("What is it?") == f"{SYSTEM} USER: <image>\nWhat is it? ASSISTANT:"
    assert generation_prompt("<image>\nWhat?", image=True).count("<image>") == 1
    assert "<image>" not in generation_prompt("What?", image=False)


def test_v1_training_render_has_answers_with_eos_and_their_spans():
    text, spans = render(V1, TURNS)
    assert text == f"{SYSTEM} USER: {TURNS[0][0]} ASSISTANT: red</s>USER: {TURNS[1][0]} ASSISTANT: No</s>"
    assert [text[a:b] for a, b in spans] == [" red</s>", " No</s>"]
    assert get_template("v1") is V1
    with pytest.raises(UserError, match="'vicuna_v0'.*expected one of"):
        get_template("vicuna_v0")


# --------------------------------------------------------------------------------------------------------------
# record validation: every bad input names the file and the record


def test_valid_records_load_with_text_only_and_round_trip(tmp_path):
    write_png(tmp_path / "img" / "a.png")
    data = [good_record(0), good_record(1, image=None)]
    (tmp_path / "d.json").write_text(json.dumps(data))
    recs = load_records(tmp_path / "d.json", tmp_path / "img")
    assert [r.image for r in recs] == ["a.png", None]
    assert [record_to_json(r) for r in recs] == data
    assert validate_records([{**good_record(), "id": 7}], "x.json", None)[0].id == "7"  # 665K has int ids


def _bad(mutate) -> list:
    rec = good_record(3)
    mutate(rec)
    return [good_record(0), good_record(1), good_record(2), rec]


BAD_CASES = {
    "missing id": (lambda r: r.pop("id"), "missing key 'id'"),
    "missing conversations": (lambda r: r.pop("conversations"), "missing key 'conversations'"),
    "gpt first": (lambda r: r["conversations"].reverse(), r"conversations\[0\].from is 'gpt'; expected 'human'"),
    "odd turns": (lambda r: r["conversations"].pop(), "has 1 turns"),
    "turn not a dict": (lambda r: r["conversations"].__setitem__(1, "red"), r"conversations\[1\] is 'red'"),
    "no <image> with image": (
        lambda r: r["conversations"][0].update(value="Q?"),
        "contains '<image>' 0 times; expected exactly once",
    ),
    "<image> without image": (lambda r: r.pop("image"), r"conversations\[0\] contains '<image>'"),
    "<image> in a later turn": (
        lambda r: r["conversations"].extend([{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]),
        r"conversations\[2\] contains '<image>'",
    ),
    "image not a string": (lambda r: r.update(image=3), "'image' is 3"),
    "missing image file": (lambda r: r.update(image="nope.png"), "image file .*nope.png not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_record_names_file_record_and_problem(tmp_path, case):
    write_png(tmp_path / "img" / "a.png")
    mutate, expected = BAD_CASES[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_bad(mutate)))
    with pytest.raises(UserError, match=expected) as e:
        load_records(path, tmp_path / "img")
    msg = str(e.value)
    assert str(path) in msg and "record 3" in msg and ("'r3'" in msg or case == "missing id")
    assert "\n" not in msg


def test_corrupt_image_names_file_and_record(tmp_path):
    write_png(tmp_path / "img" / "a.png")
    (tmp_path / "img" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    path = tmp_path / "d.json"
    path.write_text(json.dumps([good_record(0), good_record(1, image="b.png")]))
    with pytest.raises(UserError, match=r"d.json: record 1 \(id 'r1'\): image file .*b.png is not a readable image"):
        load_records(path, tmp_path / "img")
    assert len(load_records(path, tmp_path / "img", check_images="exists")) == 2


@pytest.mark.parametrize(
    "content, expected",
    [("{}", "expected a JSON list of LLaVA records, got dict"), ("[1]", "record 0: got int"), ("[", "not valid JSON")],
)
def test_bad_json_top_level(tmp_path, content, expected):
    path = tmp_path / "d.json"
    path.write_text(content)
    with pytest.raises(UserError, match=expected) as e:
        load_records(path, None)
    assert str(path) in str(e.value)


def test_missing_json_file(tmp_path):
    with pytest.raises(UserError, match="nope.json: file not found"):
        load_records(tmp_path / "nope.json", None)


# --------------------------------------------------------------------------------------------------------------
# tokenisation and label masking


def test_loss_only_on_assistant_answers_and_eos(tokenizer):
    ids, labels = tokenize_conversation(TURNS, tokenizer)
    assert len(ids) == len(labels)
    assert ids[0] == tokenizer.bos_token_id and labels[0] == IGNORE_INDEX
    assert ids.count(IMAGE_TOKEN_INDEX) == 1 and labels[ids.index(IMAGE_TOKEN_INDEX)] == IGNORE_INDEX
    learned = [t for t in labels if t != IGNORE_INDEX]
    assert tokenizer.decode(learned) == " red</s> No</s>"
    # supervised positions carry their own token; nothing of the system or user text is learned
    assert all(lab in (IGNORE_INDEX, tok) for tok, lab in zip(ids, labels, strict=True))
    assert tokenizer.convert_ids_to_tokens(learned).count("</s>") == 2


def test_generation_prompt_ids_are_the_prefix_of_training_ids(tokenizer):
    ids, labels = tokenize_conversation(TURNS[:1], tokenizer)
    prompt_ids = tokenizer_image_token(generation_prompt(TURNS[0][0].removeprefix("<image>\n")), tokenizer)
    assert ids[: len(prompt_ids)] == prompt_ids
    assert all(lab == IGNORE_INDEX for lab in labels[: len(prompt_ids)])
    assert all(lab != IGNORE_INDEX for lab in labels[len(prompt_ids) :])
    assert tokenizer.decode(prompt_ids[-2:]) == " ASSISTANT:"


def test_truncation(tokenizer):
    ids, labels = tokenize_conversation(TURNS, tokenizer, max_length=10)
    assert len(ids) == len(labels) == 10
    assert ids == tokenize_conversation(TURNS, tokenizer)[0][:10]


def test_masking_works_for_a_byte_level_bpe_tokenizer():
    """Offsets, not token counting, find the answers: a different tokenizer family gets the same masking."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], show_progress=False)
    tok.train_from_iterator([render(V1, TURNS)[0]] * 3, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    ids, labels = tokenize_conversation(TURNS, hf)
    assert hf.decode([t for t in labels if t != IGNORE_INDEX]) == " red</s> No</s>"


# --------------------------------------------------------------------------------------------------------------
# tokenizer


def test_tokenizer_round_trip_and_save_load(tokenizer, tmp_path):
    text = render(V1, TURNS)[0].replace("<image>", "")  # "<image>" is spliced out before tokenising
    for t in [text, "What number is written? 507", "Yes", "no", "A. red\nB. 12"]:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, t
        assert tokenizer.decode(ids) == t
    digits = tokenizer(" 507", add_special_tokens=False)["input_ids"]
    assert len(digits) == 4  # "▁" + one token per digit: any number is covered
    assert tokenizer("zebra", add_special_tokens=False)["input_ids"] == [tokenizer.unk_token_id]
    tokenizer.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (again.bos_token, again.eos_token, again.pad_token, again.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert tokenize_conversation(TURNS, again) == tokenize_conversation(TURNS, tokenizer)


def test_tokenizer_is_deterministic(tmp_path):
    texts = ["b a c a", "c c <image>\nx</s>"]
    for k in range(2):
        build_word_tokenizer(texts).save_pretrained(tmp_path / str(k))
    assert (tmp_path / "0" / "tokenizer.json").read_bytes() == (tmp_path / "1" / "tokenizer.json").read_bytes()
    vocab = build_word_tokenizer(texts).get_vocab()
    assert "<image>" not in vocab and "image" not in vocab and "x" in vocab


def test_load_tokenizer_missing(tmp_path):
    with pytest.raises(UserError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


# --------------------------------------------------------------------------------------------------------------
# dataset and collator


def test_dataset_and_collator_batch(tmp_path, tokenizer):
    write_png(tmp_path / "a.png")
    data = [good_record(0), good_record(1, image=None), {**good_record(2), "conversations": _two_turns()}]
    recs = validate_records(data, "mem.json", tmp_path)
    ds = LlavaDataset(recs, tokenizer, image_processor, tmp_path, max_length=64)
    items = [ds[i] for i in range(3)]
    assert items[1]["image"] is None and items[0]["image"].shape == (3, 8, 8)
    batch = DataCollator(tokenizer.pad_token_id)(items)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "images"}
    lengths = [len(it["input_ids"]) for it in items]
    b, t = batch["input_ids"].shape
    assert (b, t) == (3, max(lengths)) and batch["images"].shape == (3, 3, 8, 8)
    for i, n in enumerate(lengths):
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (t - n)  # right padding
        assert (batch["input_ids"][i, n:] == tokenizer.pad_token_id).all()
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all()
        assert torch.equal(batch["input_ids"][i, :n], items[i]["input_ids"])
    assert (batch["images"][1] == 0).all() and (batch["input_ids"][1] != IMAGE_TOKEN_INDEX).all()
    assert batch["input_ids"].dtype == batch["labels"].dtype == batch["attention_mask"].dtype == torch.long
    assert DataCollator(tokenizer.pad_token_id)([items[1]])["images"] is None


def _two_turns() -> list[dict]:
    return [
        {"from": "human", "value": "<image>\nQ?"},
        {"from": "gpt", "value": "red"},
        {"from": "human", "value": "Q2?"},
        {"from": "gpt", "value": "Yes"},
    ]


def test_dataset_reports_unreadable_image(tmp_path, tokenizer):
    recs = validate_records([good_record(0)], "mem.json", None)
    ds = LlavaDataset(recs, tokenizer, image_processor, tmp_path)
    with pytest.raises(UserError, match=r"record 0 \(id 'r0'\): image file .*a.png is not readable"):
        ds[0]
