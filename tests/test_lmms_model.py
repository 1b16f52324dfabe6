"""The lmms-eval model `hydra_vlm`: registration, batching and order, stop strings, prompts, the real model.

.venv/bin/python -m pytest tests/test_lmms_model.py
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from hydra_repro.constants import IMAGE_TOKEN_INDEX
from hydra_repro.errors import UserError
from tests.fakes import COLOURS, TRAILER, colour_image, fake_components, write_random_model


@pytest.fixture(scope="module")
def HydraVLM():
    from hydra_repro.eval.harness import import_lmms_eval

    import_lmms_eval()
    from hydra_repro.eval.lmms_model import HydraVLM

    return HydraVLM


def _requests(lm, docs, gen_kwargs, task="t", with_image=True):
    """Fake lmms-eval requests over `docs` ({"question", "colour"}), registered in `lm.task_dict`."""
    lm.task_dict.setdefault(task, {"test": []})
    store = lm.task_dict[task]["test"]
    reqs = []
    for doc in docs:
        store.append(doc)

        def to_visual(d):
            return [colour_image(d["colour"])] if with_image else []

        reqs.append(SimpleNamespace(args=(doc["question"], dict(gen_kwargs), to_visual, len(store) - 1, task, "test")))
    return reqs


def test_registered_by_name_through_the_entry_point(HydraVLM) -> None:
    from lmms_eval.models import get_model

    assert get_model("hydra_vlm") is HydraVLM


def test_batched_answers_come_back_in_request_order_with_images_matched(HydraVLM) -> None:
    model, tok, proc, encode = fake_components(trailer=TRAILER)
    lm = HydraVLM.from_components(model, tok, proc, encode, batch_size=3)
    # questions of different lengths and two tasks with different generation settings, interleaved
    docs = [{"question": "What colour?" + " really" * (i % 4), "colour": COLOURS[i % 6]} for i in range(10)]
    a = _requests(lm, docs[:5], {"until": ["\n\n"], "max_new_tokens": 64}, task="a")
    b = _requests(lm, docs[5:], {"until": "ASSISTANT:", "max_new_tokens": 64}, task="b")
    reqs = [r for pair in zip(a, b) for r in pair]
    out = lm.generate_until(reqs)
    expected = [d["colour"] for pair in zip(docs[:5], docs[5:]) for d in pair]
    # until "\n\n" stops right after the answer; "ASSISTANT:" leaves the "\n\nUSER:" chatter before it (stripped)
    assert [o.split()[0] for o in out] == expected
    assert out[0] == expected[0] and out[1] == f"{expected[1]}\n\nUSER:"
    assert max(model.calls) <= 3 and sum(model.calls) == 10 and len(model.calls) == 4  # 2 groups x ceil(5 / 3)


def test_max_new_tokens_from_the_task_and_the_cap(HydraVLM) -> None:
    model, tok, proc, encode = fake_components(trailer=TRAILER)
    lm = HydraVLM.from_components(model, tok, proc, encode, batch_size=2)
    docs = [{"question": "What colour?", "colour": "purple"}]
    assert lm.generate_until(_requests(lm, docs, {"max_new_tokens": 3})) == ["pur"]
    capped = HydraVLM.from_components(model, tok, proc, encode, max_new_tokens=2)
    assert capped.generate_until(_requests(capped, docs, {"max_new_tokens": 3})) == ["pu"]


def test_prompt_puts_the_image_first_in_the_v1_template(HydraVLM) -> None:
    from hydra_repro.data import conversation as data

    tokenizer = data.build_word_tokenizer([data.V1.system, "USER: ASSISTANT: Is the shape red ?"])
    seen = []

    class Recorder:
        def generate_batch(self, prompts_ids, images, max_new_tokens, **kwargs):
            seen.append((prompts_ids, images))
            return [[tokenizer.eos_token_id] for _ in prompts_ids]

    model, _, proc, _ = fake_components()
    lm = HydraVLM.from_components(Recorder(), tokenizer, proc, batch_size=4)
    lm.generate_until(_requests(lm, [{"question": "Is the shape red?", "colour": "red"}], {"max_new_tokens": 2}))
    prompt = data.generation_prompt("<image>\nIs the shape red?", data.V1)
    assert prompt.index("<image>") < prompt.index("Is the shape") and prompt.endswith("ASSISTANT:")
    assert seen[0][0] == [data.tokenizer_image_token(prompt, tokenizer, data.V1)]
    assert seen[0][0][0].count(IMAGE_TOKEN_INDEX) == 1 and tuple(seen[0][1].shape[:2]) == (1, 3)


def test_text_only_request_gets_no_image_placeholder(HydraVLM) -> None:
    model, tok, proc, encode = fake_components()
    lm = HydraVLM.from_components(model, tok, proc, encode)
    out = lm.generate_until(_requests(lm, [{"question": "What colour?", "colour": "red"}], {}, with_image=False))
    assert out == ["I cannot see an image."]


def test_clean_keeps_the_model_for_reuse_and_loglikelihood_is_explicit(HydraVLM) -> None:
    import torch

    model, tok, proc, encode = fake_components()
    lm = HydraVLM.from_components(model, tok, proc, encode)
    lm.extra = torch.nn.Linear(1, 1)
    lm.clean()
    assert lm.model is model and hasattr(lm, "extra")
    with pytest.raises(NotImplementedError, match="generation only"):
        lm.loglikelihood([])


def test_multi_round_feeds_previous_answers_back(HydraVLM) -> None:
    model, tok, proc, encode = fake_components()
    lm = HydraVLM.from_components(model, tok, proc, encode)
    lm.task_dict = {"m": {"test": [{"colour": "green"}]}}

    def doc_to_text(doc, previous_output=None, round_idx=None, previous_round_info=None):
        if round_idx >= 2:
            return None, None, True, previous_output, None
        return None, f"Is there a {previous_output[-1]} shape?", False, previous_output, None

    req = SimpleNamespace(args=("What colour?", {}, lambda d: [colour_image(d["colour"])], doc_to_text, 0, "m", "test"))
    assert lm.generate_until_multi_round([req]) == [("green", "Yes")]


def test_bad_model_args_are_user_errors(HydraVLM, tmp_path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        HydraVLM(pretrained=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="unknown key 'temperature'"):
        HydraVLM(pretrained=str(tmp_path), temperature=0)
    with pytest.raises(UserError, match="batch_size"):
        HydraVLM.from_components(*fake_components(), batch_size=0)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("tiny") / "base")


def test_real_tiny_model_answers_are_independent_of_batching(HydraVLM, tiny_model_dir) -> None:
    one = HydraVLM(pretrained=str(tiny_model_dir), batch_size=1, max_new_tokens=4)
    many = HydraVLM(pretrained=str(tiny_model_dir), batch_size="3", max_new_tokens="4")
    docs = [{"question": "What colour is the shape?" + " red" * (i % 3), "colour": COLOURS[i]} for i in range(5)]
    docs.append({"question": "Is it blue?", "colour": "blue"})
    a = one.generate_until(_requests(one, docs, {"max_new_tokens": 8}))
    b = many.generate_until(_requests(many, docs, {"max_new_tokens": 8}))
    assert a == b and all(isinstance(x, str) for x in a)
    assert one.generated_tokens <= 4 * len(docs)


@pytest.mark.slow
def test_lmms_eval_cli_runs_the_model_by_name(tiny_model_dir, tmp_path) -> None:
    """`python -m lmms_eval --model hydra_vlm` (~10 s). Its exit code is 0 even after a traceback: read the table."""
    import os
    import subprocess
    import sys

    from hydra_repro.tasks import write_task_yamls
    from tests.fakes import write_mini_eval_sets

    write_mini_eval_sets(tmp_path / "eval", n=6, tasks=["mini_pope"])
    write_task_yamls(tmp_path / "tasks", tmp_path / "eval")
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "hydra_vlm", "--model_args"]
    cmd += [f"pretrained={tiny_model_dir},max_new_tokens=2", "--batch_size", "4", "--tasks", "mini_pope"]
    cmd += ["--include_path", str(tmp_path / "tasks"), "--output_path", str(tmp_path / "out")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "|mini_pope|" in out.replace(" ", "") and "pope_f1_score" in out
