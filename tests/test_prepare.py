"""Tests of `hydra-repro prepare`: the smoke build end to end, determinism, no train/test overlap, evaluation sets
in the real benchmarks' schemas (checked with lmms-eval's own task functions), and the paper profile's file check."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import re
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from hydra_repro.config import data
from hydra_repro.data import build, mini_questions, mini_world
from hydra_repro.data.conversation import V1, load_records, load_tokenizer, render  # noqa: E402
from hydra_repro.errors import UserError  # noqa: E402
from hydra_repro.provenance import sidecar_path  # noqa: E402
from hydra_repro.stages import prepare
from hydra_repro.tasks import resolve_task_yamls  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SMOKE = {
    "train_shapes": 120,
    "train_digit_canvases": 50,
    "test_digit_canvases": 40,
    "turns_per_image": 2,
    "mme_images_per_category": 4,
    "mmbench_questions": 8,
    "gqa_questions": 30,
    "textvqa_questions": 24,
    "pope_images": 5,
    "sqa_questions": 30,
    "vision_digit_canvases": 30,
}
COLUMNS = {
    "mini_mme": ["question_id", "question", "answer", "category", "image"],
    "mini_mmbench": ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "L2-category", "source"]
    + ["split", "image"],
    "mini_gqa": ["question_id", "question", "answer", "image"],
    "mini_textvqa": ["question_id", "question", "answers", "image", "image_id", "ocr_tokens"],
    "mini_pope": ["question_id", "question", "answer", "category", "image_source", "image"],
    "mini_sqa_img": ["question", "choices", "answer", "hint", "image", "subject", "grade"],
}


def write_params(folder: Path, profiles: dict, profile: str = "smoke") -> Path:
    """params.yaml in `folder`: each profile is the shipped smoke profile with the given sections replaced (every
    verb reads whole profiles)."""
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["profiles"]["smoke"]
    path = folder / "params.yaml"
    full = {name: {**shipped, **sections} for name, sections in profiles.items()}
    path.write_text(yaml.safe_dump({"profile": profile, "profiles": full}))
    return path


def run_prepare(params: Path, out: Path | None = None, profile: str | None = None) -> int:
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    argv = ["--params", str(params), "--registry", str(Path(__file__).resolve().parents[1] / "experiments/runs.yaml")]
    argv += (["--out", str(out)] if out else []) + (["--profile", profile] if profile else [])
    return prepare.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("prep")
    params = write_params(folder, {"smoke": {"data": SMOKE}, "other": {"data": {}}})
    assert run_prepare(params, folder / "smoke") == 0
    return folder / "smoke"


@pytest.fixture(scope="module")
def evals(smoke) -> dict[str, list[dict]]:
    from datasets import load_dataset

    out = {}
    for task in data.EVAL_TASKS:
        ds = load_dataset("parquet", data_files={"test": str(smoke / "eval" / f"{task}.parquet")}, split="test")
        assert ds.column_names == COLUMNS[task], task
        out[task] = list(ds)
    return out


def pixels_hash(png: bytes | Path) -> str:
    data = png.read_bytes() if isinstance(png, Path) else png
    with Image.open(io.BytesIO(data)) as im:
        return hashlib.sha256(np.asarray(im.convert("RGB")).tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# the smoke build


def test_smoke_build_writes_the_layout_and_a_manifest(smoke):
    manifest = json.loads((smoke / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["seed"] == 0
    assert "sources" not in manifest  # versions are volatile: they live beside the output, not in it
    assert set(json.loads(sidecar_path(smoke).read_text())["sources"]) >= {"easy-vqa", "scikit-learn"}
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((smoke / name).read_bytes()).hexdigest() == entry["sha256"], name
    pre = load_records(smoke / "pretrain.json", smoke / "images")  # validates, opening every image
    train = load_records(smoke / "train.json", smoke / "images")
    assert manifest["files"]["train.json"]["records"] == len(train) <= 300
    assert manifest["files"]["pretrain.json"]["records"] == len(pre)
    for task in data.EVAL_TASKS:
        rows = pq.read_metadata(smoke / "eval" / f"{task}.parquet").num_rows
        assert rows == manifest["files"][f"eval/{task}.parquet"]["rows"] and 20 <= rows <= 40, task
    assert {r.image for r in train if r.image} == {r.image for r in pre if r.image}
    assert any(r.image is None for r in train) and any(r.image is None for r in pre)  # text-only, as in 665K
    formats = manifest["files"]["train.json"]["formats"]
    assert set(formats) == {*data.FAMILIES, "text"}, formats
    n_images = SMOKE["train_shapes"] + SMOKE["train_digit_canvases"] + SMOKE["vision_digit_canvases"]
    assert len(list((smoke / "images").rglob("*.png"))) == n_images
    assert manifest["files"]["vision.json"]["records"] == n_images


def test_prepare_is_deterministic_and_independent_of_its_path(smoke, tmp_path):
    # byte-identical at another path: DVC's hash of data/<profile> is the same in any checkout
    params = write_params(tmp_path, {"smoke": {"data": SMOKE}})
    assert run_prepare(params, tmp_path / "elsewhere" / "again") == 0
    again = tmp_path / "elsewhere" / "again"
    files = sorted(p.relative_to(smoke) for p in smoke.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (smoke / f).read_bytes() == (again / f).read_bytes(), f


def test_task_yamls_are_portable_and_resolve_to_the_eval_sets(smoke, tmp_path):
    resolved = resolve_task_yamls(smoke / "tasks", smoke / "eval", tmp_path / "tasks")
    for task in data.EVAL_TASKS:
        portable = (smoke / "tasks" / f"{task}.yaml").read_text()
        assert "@EVAL_DIR@" in portable and str(smoke.resolve()) not in portable
        text = (resolved / f"{task}.yaml").read_text()
        assert str((smoke / "eval" / f"{task}.parquet").resolve()) in text


def test_no_test_image_in_training_data(smoke, evals):
    train_hashes = {pixels_hash(p) for p in (smoke / "images").rglob("*.png")}
    for task in data.EVAL_TASKS:
        table = pq.read_table(smoke / "eval" / f"{task}.parquet", columns=["image"]).column("image").to_pylist()
        test_hashes = {pixels_hash(cell["bytes"]) for cell in table}
        assert not train_hashes & test_hashes, task
    # and the image paths named by the records are exactly the written training images
    for name in ("train.json", "pretrain.json"):
        for rec in json.loads((smoke / name).read_text()):
            assert "image" not in rec or (smoke / "images" / rec["image"]).is_file()


def test_vision_labels_describe_their_images(smoke):
    doc = json.loads((smoke / "vision.json").read_text())
    assert doc["heads"] == {h: list(c) for h, c in build.VISION_HEADS.items()}
    numbers = {}  # the digit canvases of train.json name their number in the pretraining captions
    for rec in json.loads((smoke / "pretrain.json").read_text()):
        caption = rec.get("image") and rec["conversations"][1]["value"]
        if caption and caption.startswith("the handwritten number"):
            numbers[rec["image"]] = caption.split()[3]
    kinds = Counter()
    for rec in doc["records"]:
        labels = {h: doc["heads"][h][k] for h, k in rec["labels"].items()}
        with Image.open(smoke / "images" / rec["image"]) as im:
            px = np.asarray(im.convert("RGB"))
        kinds[labels["kind"]] += 1
        if labels["kind"] == "shape":
            shape, color, size, hpos, vpos = mini_world.shape_attributes(px)
            expected = {"kind": "shape", "shape": shape, "color": color, "size": size, "hpos": hpos, "vpos": vpos}
            assert labels == {k: v for k, v in expected.items() if v is not None}, rec
        else:
            number = "".join(labels[f"digit_{j}"] for j in range(1, int(labels["n_digits"]) + 1))
            assert len(number) == int(labels["n_digits"]) and set(labels) <= {"kind", "color", "n_digits"} | {
                f"digit_{j}" for j in (1, 2, 3)
            }
            if rec["image"] in numbers:
                assert number == numbers[rec["image"]], rec
    assert kinds == {
        "shape": SMOKE["train_shapes"],
        "number": SMOKE["train_digit_canvases"] + SMOKE["vision_digit_canvases"],
    }
    assert len(numbers) == SMOKE["train_digit_canvases"]


def test_digit_sizes_must_fit_the_canvas():
    with pytest.raises(UserError, match=r"data.digit_min_px: got 22; expected a size at which 3 digits"):
        data.DataConfig(max_digits=3)
    with pytest.raises(UserError, match=r"data.digit_min_px: got 12; expected 6..digit_max_px \(10\)"):
        data.DataConfig(digit_min_px=12, digit_max_px=10)
    assert data.DataConfig(max_digits=3, digit_min_px=14, digit_max_px=20).max_digits == 3


def test_tokenizer_covers_every_prompt_and_answer(smoke, evals):
    tok = load_tokenizer(smoke / "tokenizer")
    texts = [render(V1, r.turns)[0] for r in load_records(smoke / "train.json", None)]
    for task, rows in evals.items():
        for row in rows:
            texts.append(mini_questions.prompt_for(task, row, ocr=task == "mini_textvqa"))
    for text in texts:
        text = text.replace("<image>", "")
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids) == text


def test_every_answer_word_is_a_target_in_pretraining(smoke, evals):
    """Mini-calibration lesson 3: answer tokens never seen as targets in stage I break LoRA tuning."""
    tok = load_tokenizer(smoke / "tokenizer")

    def answer_tokens(answers):
        return {t for a in answers for t in tok.tokenize(" " + a)}

    pre = answer_tokens(a for r in load_records(smoke / "pretrain.json", None) for _, a in r.turns)
    later = answer_tokens(a for r in load_records(smoke / "train.json", None) for _, a in r.turns)
    later |= answer_tokens(
        row["answer"] for t in ("mini_mme", "mini_gqa", "mini_pope", "mini_mmbench") for row in evals[t]
    )
    later |= answer_tokens(row["answers"][0] for row in evals["mini_textvqa"])
    later |= answer_tokens("ABC"[row["answer"]] for row in evals["mini_sqa_img"])
    assert later <= pre, later - pre


# --------------------------------------------------------------------------------------------------------------
# evaluation sets: schemas and the real benchmarks' conventions


def test_eval_sets_follow_the_benchmark_conventions(evals):
    mme = evals["mini_mme"]
    by_qid: dict[str, list] = {}
    for row in mme:
        assert row["question"].endswith(" Please answer yes or no.") and row["image"].size == (64, 64)
        by_qid.setdefault(row["question_id"], []).append(row["answer"])
    assert all(sorted(a) == ["No", "Yes"] for a in by_qid.values())
    assert {r["category"] for r in mme} == {"existence", "color", "position", "count", "OCR"}

    mmb = evals["mini_mmbench"]
    base = {r["index"]: r for r in mmb if r["index"] < 1_000_000}
    assert len(mmb) == 4 * len(base) and {r["split"] for r in mmb} == {"dev"}
    for r in mmb:
        b = base[r["index"] % 1_000_000]
        assert r[r["answer"]] == b[b["answer"]] and {r[k] for k in "ABCD"} == {b[k] for k in "ABCD"}
        assert r["hint"] is None or isinstance(r["hint"], str)
    assert len({r["question_id"] for r in evals["mini_gqa"]}) == len(evals["mini_gqa"])
    for r in evals["mini_gqa"]:
        assert r["answer"].isalpha() and r["answer"] == r["answer"].lower()
    for r in evals["mini_textvqa"]:
        assert isinstance(r["question_id"], int) and len(r["answers"]) == 10 and r["answers"][0].isdigit()
        assert isinstance(r["ocr_tokens"], list)
    pope = evals["mini_pope"]
    for cat in mini_questions.POPE_CATEGORIES:
        answers = Counter(r["answer"] for r in pope if r["category"] == cat)
        assert answers["yes"] == answers["no"] > 0
    assert all(r["question"].startswith("Is there a ") and r["question"].endswith(" in the image?") for r in pope)
    for r in evals["mini_sqa_img"]:
        assert 0 <= r["answer"] < len(r["choices"]) and isinstance(r["hint"], str) and r["grade"].startswith("grade")


def _task_kwargs(rel: str) -> dict:
    """`lmms_eval_specific_kwargs.default` of an installed lmms-eval task YAML (its `!function` tags ignored)."""
    import lmms_eval

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    text = (Path(lmms_eval.__file__).parent / "tasks" / rel).read_text()
    return yaml.load(text, Loader=Loader)["lmms_eval_specific_kwargs"]["default"]


def test_lmms_eval_renders_and_scores_the_eval_sets(evals):
    """lmms-eval's own doc_to_text gives exactly the prompts train.json uses; its scoring accepts the references."""
    from lmms_eval.tasks.gqa.utils import gqa_doc_to_text
    from lmms_eval.tasks.mmbench.en_utils import mmbench_doc_to_text, mmbench_evaluator, mmbench_process_results
    from lmms_eval.tasks.mme.utils import mme_aggregate_results, mme_doc_to_text, mme_process_results
    from lmms_eval.tasks.pope.utils import pope_doc_to_text, pope_process_results
    from lmms_eval.tasks.scienceqa.utils import sqa_doc_to_text, sqa_process_results
    from lmms_eval.tasks.textvqa.utils import textvqa_doc_to_text, textvqa_process_results

    renderers = {
        "mini_mme": (mme_doc_to_text, "mme/mme.yaml"),
        "mini_mmbench": (mmbench_doc_to_text, "mmbench/_default_template_mmbench_en_yaml"),
        "mini_gqa": (gqa_doc_to_text, "gqa/gqa.yaml"),
        "mini_textvqa": (textvqa_doc_to_text, "textvqa/_default_template_textvqa_yaml"),
        "mini_pope": (pope_doc_to_text, "pope/pope.yaml"),
        "mini_sqa_img": (sqa_doc_to_text, "scienceqa/scienceqa_img.yaml"),
    }
    for task, (fn, rel) in renderers.items():
        kwargs = _task_kwargs(rel)
        for row in evals[task]:
            assert fn(row, kwargs) == mini_questions.prompt_for(task, row), (task, row["question"])
            if task == "mini_textvqa":
                assert fn(row, {**kwargs, "ocr": True}) == mini_questions.prompt_for(task, row, ocr=True)

    mme = [mme_process_results(r, [r["answer"]])["mme_perception_score"] for r in evals["mini_mme"]]
    assert mme_aggregate_results(mme) == 200 * 5  # acc + acc+ = 200 in each of the 5 perception categories
    assert all(pope_process_results(r, [r["answer"]])["pope_accuracy"]["score"] == 1 for r in evals["mini_pope"])
    assert all(sqa_process_results(r, ["ABCDE"[r["answer"]]])["exact_match"] == 1 for r in evals["mini_sqa_img"])
    for r in evals["mini_textvqa"]:
        assert textvqa_process_results(dict(r), [r["answers"][0]])["exact_match"] == 1
    results = [mmbench_process_results(r, [r["answer"]])["gpt_eval_score"] for r in evals["mini_mmbench"]]
    assert mmbench_evaluator.eval_result(results, eval_method="static")[0] == 1.0
    results[-1]["prediction"] = next(k for k in "ABCD" if k != results[-1]["answer"])  # one rotation wrong
    assert mmbench_evaluator.eval_result(results, eval_method="static")[0] < 1.0


def test_pixel_attributes_agree_with_easy_vqa_questions():
    """The colour and shape read from pixels match every easy-VQA test question that states them."""
    import easy_vqa

    paths = easy_vqa.get_test_image_paths()
    attrs = {}
    for i, path in paths.items():
        with Image.open(path) as im:
            attrs[i] = mini_world.shape_attributes(np.asarray(im.convert("RGB")))
    checked = 0
    for q, a, i in zip(*easy_vqa.get_test_questions(), strict=True):
        shape, color = attrs[i][:2]
        if a in mini_world.SHAPES:
            assert a == shape, (i, q)
        elif a in mini_world.COLORS:
            assert a == color, (i, q)
        elif " not " not in q and " no " not in q:
            named = [w for w in (*mini_world.SHAPES, *mini_world.COLORS) if w in q]
            assert (a == "yes") == all(w in (shape, color) for w in named), (i, q)
        else:
            continue
        checked += 1
    assert checked > 5000


# --------------------------------------------------------------------------------------------------------------
# params handling and the paper profile


def test_bad_data_config_names_file_profile_and_key(tmp_path):
    params = write_params(tmp_path, {"smoke": {"data": {"train_shapes": 5000}}})
    with pytest.raises(UserError, match=r"params.yaml: profiles.smoke.data.train_shapes: got 5000; expected 1..4000"):
        run_prepare(params, tmp_path / "out")
    params = write_params(tmp_path, {"smoke": {"data": {"train_shape": 5}}})
    with pytest.raises(UserError, match=r"profiles.smoke.data: unknown key 'train_shape'"):
        run_prepare(params, tmp_path / "out")
    params = write_params(tmp_path, {"smoke": {"data": {**SMOKE, "textvqa_questions": 41}}})
    with pytest.raises(UserError, match="data.textvqa_questions: asks for 41 held-out images but only 40"):
        run_prepare(params, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def _paper_data(root: Path) -> dict:
    return {
        "source": "llava",
        "pretrain_json": str(root / "pre" / "blip_laion_cc_sbu_558k.json"),
        "pretrain_images": str(root / "pre" / "images"),
        "train_json": str(root / "llava_v1_5_mix665k.json"),
        "train_images": str(root / "images"),
    }


def test_paper_profile_lists_every_missing_input_in_one_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _paper_data(tmp_path / "llava")
    params = write_params(tmp_path, {"paper": {"data": data}}, profile="paper")
    with pytest.raises(UserError) as e:
        run_prepare(params)
    msg = str(e.value)
    assert "needs 9 user-provided input(s) that are missing" in msg
    for path in (data["pretrain_json"], data["pretrain_images"], data["train_json"]):
        assert f"expected at {path}" in msg
    for folder in ("coco/train2017", "gqa/images", "ocr_vqa/images", "textvqa/train_images", "vg/VG_100K_2"):
        assert f"{data['train_images']}/{folder}" in msg
    assert "liuhaotian/LLaVA-Pretrain" in msg and "liuhaotian/LLaVA-Instruct-150K" in msg

    # provide everything (tiny stand-ins of the real layout): prepare checks the records and writes a manifest
    root = tmp_path / "llava"
    (root / "pre" / "images" / "00000").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "pre" / "images" / "00000" / "000000012.jpg")
    for _, rel, _ in build._665K_FOLDERS:
        (root / "images" / rel).mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "images" / "coco" / "train2017" / "000000033471.jpg")
    caption = [{"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"}]
    caption.append({"from": "gpt", "value": "a cat"})
    Path(data["pretrain_json"]).write_text(
        json.dumps([{"id": "000000012", "image": "00000/000000012.jpg"} | {"conversations": caption}])
    )
    instr = [{"id": "000000033471", "image": "coco/train2017/000000033471.jpg", "conversations": caption}]
    instr.append(
        {"id": "sharegpt-1", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    )
    Path(data["train_json"]).write_text(json.dumps(instr))
    assert run_prepare(params) == 0
    out = tmp_path / "data" / "paper"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["train"] == {"records": 2, "with_image": 1}
    assert manifest["paths"]["image_folder"] == str(Path(data["train_images"]).resolve())
    # MobileVLM's preprocess_multimodal: the image token moves to the front of the first turn; text-only untouched
    assert manifest["image_moved_first"] == {"pretrain": 1, "train": 1}
    train = json.loads((out / "train.json").read_text())
    assert train[0]["conversations"][0]["value"] == "<image>\nRender a clear and concise summary of the photo."
    assert train[1]["conversations"] == instr[1]["conversations"]
    # every data/<profile>/... path a stage of dvc.yaml depends on exists for the paper profile too
    deps = re.findall(r"- data/\$\{profile\}/([\w.]+)", (REPO / "dvc.yaml").read_text())
    assert {"train.json", "pretrain.json", "vision.json", "images", "tokenizer", "eval", "tasks"} <= set(deps)
    assert [d for d in sorted(set(deps)) if not (out / d).exists()] == []

    # a record pointing at a missing image is named, with the file and the record
    instr[0]["image"] = "gqa/images/nope.jpg"
    Path(data["train_json"]).write_text(json.dumps(instr))
    with pytest.raises(UserError, match=r"llava_v1_5_mix665k.json: record 0 \(id '000000033471'\): image file"):
        run_prepare(params)


def test_paper_inputs_inside_the_output_folder_are_refused(tmp_path):
    data = _paper_data(tmp_path / "out" / "llava")
    params = write_params(tmp_path, {"paper": {"data": data}}, profile="paper")
    with pytest.raises(UserError, match="lies inside the output folder"):
        run_prepare(params, tmp_path / "out")


def test_profile_override_and_default_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = {k: min(v, 4) for k, v in SMOKE.items()} | {"train_shapes": 10, "train_digit_canvases": 5}
    params = write_params(tmp_path, {"smoke": {"data": {"train_shapes": 0}}, "tiny": {"data": tiny}})
    assert run_prepare(params, profile="tiny") == 0
    assert json.loads((tmp_path / "data" / "tiny" / "manifest.json").read_text())["profile"] == "tiny"


def test_described_records_ask_about_their_description():
    """pretrain_described adds text-only records after the image records (which stay the same) whose answers follow
    from the description of a train image."""
    cfg = data.DataConfig(train_shapes=30, pretrain_described=1.0, text_only_fraction=0.0)
    items = mini_world.load_shapes("train", 30, cfg)
    plain, _ = mini_questions.build_records(items, dataclasses.replace(cfg, pretrain_described=0.0), "pretrain", [])
    records, formats = mini_questions.build_records(items, cfg, "pretrain", [])
    assert records[: len(plain)] == plain
    described = records[len(plain) :]
    assert len(described) == 30 and formats["described"] == sum(len(r.turns) for r in described)
    by_caption = {mini_questions.caption(it): it for it in items}
    checked = 0
    for record in described:
        assert record.image is None and record.id.startswith("described-")
        first, *_ = record.turns[0][0].split("\n")
        item = by_caption[first.removeprefix("Read the description: ")]
        for question, answer in record.turns:
            question = question.split("\n", 1)[1] if question.startswith("Read") else question
            options = dict(line.split(". ", 1) for line in question.split("\n")[1:-1])  # letter questions
            if question.startswith("What color is the shape?"):
                assert (options[answer] if options else answer) == item.color, (question, answer)
                checked += 1
            elif question.startswith("Is the shape in the image "):
                asked = question.removeprefix("Is the shape in the image ").split("?")[0].removeprefix("a ")
                assert (answer.lower() == "yes") == (asked in (item.color, item.shape)), (question, answer)
                checked += 1
    assert checked >= 10


def test_described_records_must_be_a_sane_share():
    with pytest.raises(UserError, match=r"data\.pretrain_described: got -1\.0"):
        data.DataConfig(pretrain_described=-1.0)
