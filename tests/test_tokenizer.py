"""The paper profile's tokenizer path: MobileLLaMA ships a bare SentencePiece model (`tokenizer.model` and
`tokenizer_config.json`, no `tokenizer.json`). A tiny SentencePiece BPE model (Llama's kind), trained here, loads
through `model.checkpoint.load_lm_tokenizer` with the ids MobileVLM trained with: each text piece between special
tokens encoded by SentencePiece on its own (transformers 4.33's `legacy=True`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydra_repro.model.checkpoint import load_lm_tokenizer
from tests.fakes import sentencepiece_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    return sentencepiece_hub(tmp_path_factory.mktemp("sp"), model_type="bpe", vocab_size=60)  # Llama's kind


def test_second_round_ids_are_sentencepiece_pieces_encoded_one_by_one(hub):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(hub / "tokenizer.model"))
    tokenizer = load_lm_tokenizer(hub)
    text = "ASSISTANT: red</s>USER: is there a green triangle?"
    # hand-computed: SentencePiece on each side of the special token, eos (id 2) between them
    expected = sp.encode("ASSISTANT: red") + [2] + sp.encode("USER: is there a green triangle?")
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == expected
    assert sp.id_to_piece(sp.encode("USER: is")[0]).startswith("▁")  # what legacy=False drops after </s>


def test_an_explicit_legacy_setting_is_respected(hub, tmp_path):
    import shutil

    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(hub / "tokenizer.model"))
    other = tmp_path / "hub"
    shutil.copytree(hub, other)
    config = json.loads((other / "tokenizer_config.json").read_text()) | {"legacy": False}
    (other / "tokenizer_config.json").write_text(json.dumps(config))
    ids = load_lm_tokenizer(other)("red</s>USER:", add_special_tokens=False)["input_ids"]
    assert ids == sp.encode("red") + [2] + sp.encode("USER:")[1:]  # no `▁` after the special token
