"""Tests of training (`training.instruct`, `adapters`, `stages.train`) on the tiny preset: every method trains and
publishes a loadable run, planned ranks equal realized ranks, bad input fails before training, same seed -> same
weights, a resumed run ends where an uninterrupted one does, AdaLoRA's ranks really change, and the CLI. Run:
`.venv/bin/python -m pytest tests/test_train.py -q`."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import TrainerCallback

from hydra_repro.adapters import attach, fast_lora, peft_config, rundir
from hydra_repro.config import train as train_config
from hydra_repro.config.model import PRESETS
from hydra_repro.core.allocation import budget_params
from hydra_repro.core.schedule import Schedule
from hydra_repro.data import conversation
from hydra_repro.errors import UserError
from hydra_repro.model.vlm import build_model, lora_target_names
from hydra_repro.provenance import sidecar_path
from hydra_repro.training import instruct, trainer
from tests.conftest import write_profile

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
SHAPES = ("circle", "square")


def make_fixture(root: Path, n: int = 8) -> dict[str, Path]:
    """A tiny base model (2 layers), a word tokenizer and `n` LLaVA records with 16x16 images, under `root`."""
    from hydra_repro.data.conversation import V1, build_word_tokenizer

    images = root / "data"
    (images / "img").mkdir(parents=True)
    records = []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        shape = SHAPES[i % 2]
        Image.new("RGB", (16, 16), COLOURS[colour]).save(images / "img" / f"{i}.png")
        conv = [
            {"from": "human", "value": "<image>\nWhat colour is the shape?"},
            {"from": "gpt", "value": colour},
            {"from": "human", "value": "What shape is it?"},
            {"from": "gpt", "value": shape},
        ]
        records.append({"id": str(i), "image": f"img/{i}.png", "conversations": conv})
    records.append(
        {"id": "text", "conversations": [{"from": "human", "value": "Say red."}, {"from": "gpt", "value": "red"}]}
    )
    data = images / "train.json"
    data.write_text(json.dumps(records), encoding="utf-8")
    texts = [V1.system, "USER: ASSISTANT:", *(t["value"] for r in records for t in r["conversations"])]
    tokenizer = build_word_tokenizer(texts)
    tiny = PRESETS["tiny"]
    cfg = dataclasses.replace(tiny, lm=dataclasses.replace(tiny.lm, vocab_size=len(tokenizer), pad_token_id=3))
    assert tokenizer.pad_token_id == 3 and tokenizer.eos_token_id == 2 and tokenizer.bos_token_id == 1
    base = root / "base"
    build_model(cfg).save_pretrained(base, tokenizer=tokenizer)
    return {"base": base, "data": data, "images": images}


def tiny_config(**kw) -> train_config.TrainConfig:
    defaults = dict(
        method="lora",
        rank=2,
        max_steps=4,
        global_batch_size=4,
        per_device_batch_size=4,
        save_steps=2,
        learning_rate=1e-2,
        max_length=64,
        logging_steps=1,
    )
    return train_config.TrainConfig(**{**defaults, **kw})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from 2 threads, and on a shared, loaded machine OpenMP's second thread waits for a
    core: a step measured 7x slower with 2 threads than with 1 here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, Path]:
    return make_fixture(tmp_path_factory.mktemp("fx"))


class CrashAfter(TrainerCallback):
    """Kills a training run (KeyboardInterrupt) at the end of optimizer step `step`: a simulated interruption."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated kill after step {self.step}")


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / rundir.ADAPTER_DIR / "adapter_model.safetensors"))


# ----------------------------------------------------------------------------------------------------------------
def test_lora_run_published_and_loadable(fx, tmp_path):
    out = instruct.train_run(tiny_config(), fx["base"], fx["data"], fx["images"], tmp_path / "runs" / "lora")
    # work dir gone, nothing half-written; the provenance sidecar beside the run
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lora", "lora.provenance.json"]
    names = {p.name for p in out.iterdir()}
    assert {
        rundir.RUN_FILE,
        rundir.RANKS_FILE,
        instruct.LOG_FILE,
        rundir.ADAPTER_DIR,
        rundir.PROJECTOR_FILE,
        "schedule.json",
    } <= names
    assert {"tokenizer.json", "preprocessor_config.json"} <= names
    run = json.loads((out / rundir.RUN_FILE).read_text())
    assert run["method"] == "lora" and run["seed"] == 42 and run["optimizer_steps"] == 4
    assert run["final_train_loss"] is not None and "provenance" not in run and "wall_time_s" not in run
    sidecar = json.loads(sidecar_path(out).read_text())  # volatile provenance stays outside the hashed run
    assert sidecar["packages"]["peft"] and sidecar["wall_time_s"] > 0 and len(sidecar["lock_sha256"]) == 64
    log = [json.loads(line) for line in (out / instruct.LOG_FILE).read_text().splitlines()]
    assert [row["step"] for row in log if "loss" in row] == [1, 2, 3, 4]
    targets = json.loads((out / rundir.ADAPTER_DIR / "adapter_config.json").read_text())["target_modules"]
    assert targets == sorted(targets)  # PEFT's set order varies per process; the run must hash the same

    ranks = json.loads((out / rundir.RANKS_FILE).read_text())
    base = build_model(PRESETS["tiny"])
    assert list(ranks["modules"]) == lora_target_names(base)
    assert all(m == {"planned": 2, "realized": 2} for m in ranks["modules"].values())
    dims = peft_config.model_dims(base)
    assert ranks["params"]["lora"] == ranks["formula_params"] == budget_params(2, dims)
    assert ranks["over_budget"] is False and ranks["params"]["projector"] > 0

    # The adapter holds the trained projector; the projector file equals it; the vision tower is untouched.
    weights = adapter_weights(out)
    assert any("mm_projector" in k for k in weights) and not any("vision_tower" in k for k in weights)
    loaded = rundir.load_run(out)
    projector = load_file(str(out / rundir.PROJECTOR_FILE))
    for k, v in loaded.model.model.mm_projector.state_dict().items():
        torch.testing.assert_close(v, projector[k])
    base_projector = rundir.load_run(fx["base"]).model.model.mm_projector.state_dict()
    assert any(not torch.equal(v, base_projector[k]) for k, v in projector.items())  # the projector trained

    # The merged model equals the wrapped one on a forward pass.
    wrapped = rundir.load_run(out, merge=False)
    ids = torch.tensor([[1, -200, 5, 6, 7]])
    img = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(input_ids=ids, images=img).logits, wrapped.model(input_ids=ids, images=img).logits
        )
    assert loaded.tokenizer is not None and loaded.image_processor.crop_size["height"] == 16


def test_schedule_run_ranks_and_budget(fx, tmp_path):
    schedule = Schedule.from_layer_dicts(
        [
            dict(q_proj=1, k_proj=1, v_proj=2, o_proj=2, up_proj=3, down_proj=2, gate_proj=2),
            dict(q_proj=2, k_proj=2, v_proj=3, o_proj=3, up_proj=4, down_proj=3, gate_proj=3),
        ],
        name="hand",
    )
    cfg = tiny_config(method="schedule", max_steps=1)
    out = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "sched", schedule=schedule)
    ranks = json.loads((out / rundir.RANKS_FILE).read_text())
    assert {n: m["realized"] for n, m in ranks["modules"].items()} == schedule.planned()
    dims = peft_config.model_dims(build_model(PRESETS["tiny"]))
    assert ranks["params"]["lora"] == schedule.trainable_params(dims)
    assert ranks["budget_params"] == budget_params(2, dims)
    assert ranks["over_budget"] == (schedule.trainable_params(dims) > budget_params(2, dims))
    loaded = rundir.load_run(out, merge=False)
    assert peft_config.realized_ranks(loaded.model) == schedule.planned()


def test_full_run_is_a_model_directory(fx, tmp_path):
    out = instruct.train_run(
        tiny_config(method="full", max_steps=2), fx["base"], fx["data"], fx["images"], tmp_path / "f"
    )
    assert (out / "model.safetensors").is_file() and (out / rundir.RUN_FILE).is_file()
    ranks = json.loads((out / rundir.RANKS_FILE).read_text())
    assert ranks["modules"] is None and ranks["params"]["trainable"] > ranks["params"]["projector"] > 0
    loaded = rundir.load_run(out)
    base = rundir.load_run(fx["base"]).model.state_dict()
    trained = loaded.model.state_dict()
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    assert any(k.startswith("model.layers.") for k in changed) and any("mm_projector" in k for k in changed)
    assert not any("vision_tower" in k for k in changed)  # frozen in every method


def test_same_seed_same_weights_and_resume(fx, tmp_path):
    cfg = tiny_config(max_steps=4, save_steps=2)
    a = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "a")
    b = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "c", callbacks=[CrashAfter(3)])
    assert not (tmp_path / "c").exists()  # nothing published
    assert instruct._last_checkpoint(tmp_path / "c.partial" / "checkpoints").name == "checkpoint-2"
    c = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "c")
    run_c = json.loads((c / rundir.RUN_FILE).read_text())
    assert run_c["resumed_from"] == "checkpoint-2" and run_c["optimizer_steps"] == 4

    wa, wb, wc = adapter_weights(a), adapter_weights(b), adapter_weights(c)
    assert wa.keys() == wb.keys() == wc.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # same seed on CPU: bit-identical
        assert torch.equal(wa[k], wc[k]), k  # resumed: bit-identical to uninterrupted
    log_a = [json.loads(x) for x in (a / instruct.LOG_FILE).read_text().splitlines()]
    log_c = [json.loads(x) for x in (c / instruct.LOG_FILE).read_text().splitlines()]
    assert [r["loss"] for r in log_a if "loss" in r] == [r["loss"] for r in log_c if "loss" in r]


def test_adalora_ranks_change(fx, tmp_path):
    cfg = tiny_config(
        method="adalora",
        rank=2,
        adalora_init_r=4,
        max_steps=8,
        adalora_tinit=0.125,
        adalora_tfinal=0.25,
        adalora_delta_t=1,
    )
    out = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "ada")
    ranks = json.loads((out / rundir.RANKS_FILE).read_text())
    modules = ranks["modules"].values()
    assert all(m["planned"] == m["realized"] == 4 for m in modules)
    finals = [m["final"] for m in modules]
    assert ranks["final_rank_sum"] <= ranks["target_rank_sum"] == 2 * len(finals)  # pruned to the budget
    assert len(set(finals)) > 1  # unevenly: the allocation really ran
    loaded = rundir.load_run(out, merge=False)
    assert peft_config.effective_ranks(loaded.model) == {n: m["final"] for n, m in ranks["modules"].items()}
    data = {k: v for k, v in _batch().items() if k != "labels"}  # PEFT's inference-mode AdaLoRA rejects labels
    with torch.no_grad():  # the merged model computes what the wrapped one does
        torch.testing.assert_close(rundir.load_run(out).model(**data).logits, loaded.model(**data).logits)


# ----------------------------------------------------------------------------------------------------------------
# Bad input: a UserError before any training step
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"method": "qlora"}, "train.method"),
        ({"rank": 0}, "train.rank"),
        ({"rank": -3}, "train.rank"),
        ({"lora_dropout": 1.0}, "train.lora_dropout"),
        ({"global_batch_size": 6, "per_device_batch_size": 4}, "train.global_batch_size"),
        ({"precision": "fp16"}, "train.precision"),
    ],
)
def test_bad_config(kw, match):
    with pytest.raises(UserError, match=match):
        cfg = tiny_config(**kw)
        cfg.gradient_accumulation(1)


def _no_training(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(instruct, "make_trainer", fail)


def test_schedule_for_other_layer_count(fx, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    schedule = Schedule.uniform(24, 2, name="mini24")
    with pytest.raises(UserError, match=r"mini24.*24 layers.*has 2"):
        instruct.train_run(
            tiny_config(method="schedule"), fx["base"], fx["data"], fx["images"], tmp_path / "x", schedule=schedule
        )
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_schedule_module_missing(fx, monkeypatch):
    model = rundir.load_run(fx["base"]).model

    class Renamed(Schedule):
        def planned(self):
            return {n.replace("q_proj", "query"): r for n, r in super().planned().items()}

    with pytest.raises(UserError, match=r"model\.layers\.0\.self_attn\.query.*does not exist"):
        peft_config.plan_schedule(tiny_config(method="schedule"), model, Renamed.uniform(2, 2))


def test_schedule_bad_rank_and_method_mismatch(fx, tmp_path):
    path = tmp_path / "s.json"
    layers = Schedule.uniform(2, 2).to_dict()
    layers["layers"][1]["up_proj"] = 0
    path.write_text(json.dumps(layers))
    with pytest.raises(UserError, match=r"layer 1 up_proj rank 0"):
        Schedule.load(path)
    model = rundir.load_run(fx["base"]).model
    with pytest.raises(UserError, match="needs a schedule"):
        peft_config.plan_schedule(tiny_config(method="schedule"), model, None)
    with pytest.raises(UserError, match="use --method schedule"):
        peft_config.plan_schedule(tiny_config(method="lora"), model, Schedule.uniform(2, 2))


def test_rank_mismatch_names_the_module(fx):
    model = rundir.load_run(fx["base"]).model
    schedule = Schedule.uniform(2, 2)
    peft_model, _ = attach.attach_adapter(model, tiny_config(), schedule, total_steps=4)
    planned = schedule.planned()
    planned["model.layers.1.mlp.up_proj"] = 3
    with pytest.raises(RuntimeError, match=r"model\.layers\.1\.mlp\.up_proj.*planned rank 3, realized rank 2"):
        peft_config.check_ranks(planned, peft_model)
    assert not any("vision_tower" in n for n in peft_config.adapter_modules(peft_model))  # only LM projections


def test_the_rank_check_names_missing_extra_and_mis_scaled_adapters(fx):
    model = rundir.load_run(fx["base"]).model
    schedule = Schedule.uniform(2, 2)
    peft_model, _ = attach.attach_adapter(model, tiny_config(), schedule, total_steps=4)
    planned = schedule.planned()
    ratio = next(iter(peft_config.adapter_modules(peft_model).values())).scaling["default"]
    assert peft_config.check_ranks(planned, peft_model, alpha_ratio=ratio) == planned  # plain LoRA: alpha / r
    with pytest.raises(RuntimeError, match=r"LoRA scaling .*; expected alpha / r = "):
        peft_config.check_ranks(planned, peft_model, alpha_ratio=2 * ratio)
    with pytest.raises(RuntimeError, match=r"expected alpha / sqrt\(r\) = "):  # r = 2: ratio x sqrt(2) != ratio
        peft_config.check_ranks(planned, peft_model, alpha_ratio=ratio, rslora=True)
    extra = dict(planned) | {"model.layers.0.mlp.extra_proj": 2}
    with pytest.raises(RuntimeError, match=r"extra_proj'.*planned rank 2 but PEFT built no adapter on it"):
        peft_config.check_ranks(extra, peft_model)
    first = next(iter(planned))
    with pytest.raises(RuntimeError, match=rf"{first.replace('.', '[.]')}'.*rank-2 adapter on a module not planned"):
        peft_config.check_ranks({k: v for k, v in planned.items() if k != first}, peft_model)


def test_load_run_rejects_foreign_base(fx, tmp_path):
    out = instruct.train_run(tiny_config(max_steps=1), fx["base"], fx["data"], fx["images"], tmp_path / "r")
    other = make_fixture(tmp_path / "other")
    wide = dataclasses.replace(PRESETS["tiny"].lm, hidden_size=48, vocab_size=200)
    build_model(dataclasses.replace(PRESETS["tiny"], lm=wide)).save_pretrained(other["base"] / ".." / "wide")
    with pytest.raises(UserError, match="does not fit the base model"):
        rundir.load_run(out, base=other["base"] / ".." / "wide")


def test_cli(fx, tmp_path):
    from hydra_repro import cli

    train = {"rank": 2, "max_steps": 1, "global_batch_size": 4, "per_device_batch_size": 4, "max_length": 64}
    params = write_profile(tmp_path, train=train)
    argv = [
        "--params",
        str(params),
        "--base",
        str(fx["base"]),
        "--data",
        str(fx["data"]),
        "--images",
        str(fx["images"]),
        "--out",
        str(tmp_path / "cli"),
        "--run",
        "cli_run",
    ]
    cli.VERBS.setdefault("train", ("hydra_repro.stages.train", "train"))
    assert cli.main(["train", *argv]) == 0
    run = json.loads((tmp_path / "cli" / rundir.RUN_FILE).read_text())
    assert run["name"] == "cli_run" and run["profile"] == "t" and run["config"]["rank"] == 2
    assert cli.main(["train", *argv, "--method", "schedule"]) == 2  # no schedule given: one-line error, status 2
    params.write_text("profile: t\nprofiles:\n  t:\n    train: {rnk: 2}\n")
    assert cli.main(["train", *argv]) == 2


# ----------------------------------------------------------------------------------------------------------------
# FastLoraLinear: PEFT's parameters and math, a faster CPU forward/backward
def _peft_pair(p: float):
    models = []
    for fast in (False, True):
        model = build_model(PRESETS["tiny"]).train()
        cfg = tiny_config(rank=3, lora_dropout=p, fast_lora=fast)
        peft_model, _ = attach.attach_adapter(model, cfg, Schedule.uniform(2, 3), total_steps=2)
        with torch.no_grad():  # B = 0 at init would hide errors in the A path
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.linspace(-1, 1, param.numel()).view_as(param))
        models.append(peft_model)
    return models


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, 40, (3, 12), generator=g)
    ids[:, 1] = -200
    return {"input_ids": ids, "labels": ids.masked_fill(ids < 0, -100), "images": torch.randn(3, 3, 16, 16)}


def test_fast_lora_equals_peft():
    peft_model, fast_model = _peft_pair(0.0)
    assert sum(type(m) is fast_lora.FastLoraLinear for m in fast_model.modules()) == 14
    assert not any(type(m) is fast_lora.FastLoraLinear for m in peft_model.modules())
    data = _batch()
    losses = []
    for model in (peft_model, fast_model):
        loss = model(**data).loss
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    grads = [{n: p.grad for n, p in m.named_parameters() if p.requires_grad} for m in (peft_model, fast_model)]
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():  # float32 rounding differs with the order of the products
        torch.testing.assert_close(grads[1][name], g, rtol=1e-3, atol=1e-4 * g.abs().max().item(), msg=name)


def test_fast_lora_dropout():
    keep, rescale = fast_lora.dropout_keep_mask((400, 500), 0.05, torch.device("cpu"))
    assert keep.dtype == torch.float32 and set(keep.unique().tolist()) == {0.0, 1.0}
    assert abs(1 - keep.mean().item() - 0.05) < 0.003
    assert rescale == pytest.approx(1 / (1 - 3277 / 65536))  # p quantized to 1/65536
    peft_model, fast_model = _peft_pair(0.05)
    data = _batch()
    torch.manual_seed(0)
    a = fast_model(**data).loss
    b = fast_model(**data).loss
    assert not torch.equal(a, b)  # fresh masks each call
    with torch.no_grad():  # eval: no dropout, identical to PEFT
        torch.testing.assert_close(fast_model.eval()(**data).loss, peft_model.eval()(**data).loss)


def test_image_folder_from_manifest(tmp_path):
    data = tmp_path / "train.json"
    assert conversation.image_folder(data, tmp_path / "x") == tmp_path / "x"
    with pytest.raises(UserError, match="manifest.json does not exist"):
        conversation.image_folder(data, None)
    (tmp_path / "manifest.json").write_text(json.dumps({"paths": {"image_folder": "images"}}))
    assert conversation.image_folder(data, None) == tmp_path / "images"


def test_rslora_scales_by_the_square_root_of_the_rank(fx, tmp_path):
    out = instruct.train_run(
        tiny_config(rank=4, rslora=True, max_steps=2), fx["base"], fx["data"], fx["images"], tmp_path / "rs"
    )
    loaded = rundir.load_run(out, merge=False)
    scalings = [m.scaling["default"] for m in peft_config.adapter_modules(loaded.model).values()]
    assert scalings and scalings == pytest.approx([2.0 * 4 / 4**0.5] * len(scalings))  # alpha = 2r = 8, / sqrt(4)
    assert json.loads((out / rundir.RUN_FILE).read_text())["config"]["rslora"] is True


def test_eva_redistributes_ranks_at_the_same_total_and_trains(fx, tmp_path):
    cfg = tiny_config(method="eva", rank=4, max_steps=2)
    out = instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "eva")
    ranks = json.loads((out / rundir.RANKS_FILE).read_text())
    realized = [m["realized"] for m in ranks["modules"].values() if "realized" in m]
    assert sum(realized) == 4 * len(ranks["modules"])  # EVA keeps the total rank of uniform r = 4
    assert all(0 <= r <= 8 for r in realized)  # rho = 2: at most 2r per module
    dims = peft_config.model_dims(build_model(PRESETS["tiny"]))
    assert ranks["params"]["lora"] == ranks["formula_params"]
    assert ranks["over_budget"] == (ranks["params"]["lora"] > budget_params(4, dims))
    rundir.load_run(out)  # the adapter loads at EVA's ranks


def test_eva_positions_follow_the_spliced_sequence(fx):
    """The SVD mask must index the LM's input (image tokens spliced in), not input_ids."""
    from peft import get_peft_model

    from hydra_repro.data.conversation import DataCollator, load_tokenizer

    cfg = tiny_config(method="eva", rank=2)
    loaded = rundir.load_run(fx["base"])
    dataset = trainer.make_dataset(fx["data"], fx["images"], loaded.tokenizer, loaded.image_processor, 64)
    peft_model = get_peft_model(loaded.model, peft_config.peft_config(cfg, Schedule.uniform(2, 2), 4))
    seen = {}
    import peft.tuners.lora.eva as eva

    real = eva.get_eva_state_dict

    def spy(**kw):
        batch = DataCollator(load_tokenizer(fx["base"]).pad_token_id)([dataset[0], dataset[1]])
        seen["idx"] = kw["prepare_model_inputs_fn"](batch, peft_model.peft_config["default"])
        seen["len"] = batch["input_ids"].shape[1]
        return real(**kw)

    import unittest.mock

    with unittest.mock.patch.object(eva, "get_eva_state_dict", spy):
        attach.eva_initialize(peft_model, dataset, cfg, loaded.tokenizer.pad_token_id)
    size = loaded.model.config.mm_vision_config["image_size"]
    n_visual = loaded.model.encode_images(torch.zeros(1, 3, size, size)).shape[1]
    assert int(seen["idx"][:, 1].max()) >= seen["len"]  # positions past input_ids: the spliced sequence
    assert int(seen["idx"][:, 1].max()) < seen["len"] - 1 + n_visual


def test_eva_that_cannot_converge_stops_with_a_clear_error(fx, tmp_path, monkeypatch):
    # rank 16: rho x r = 32 components, more answer tokens than any batch of this fixture has: every batch is skipped
    monkeypatch.setattr(attach, "EVA_MAX_BATCHES", 5)
    with pytest.raises(
        UserError, match=r"eva: the SVD did not converge in 5 batches of 4 \(each batch needs >= rho x r = 32"
    ):
        instruct.train_run(tiny_config(method="eva", rank=16), fx["base"], fx["data"], fx["images"], tmp_path / "eva")
    assert not (tmp_path / "eva").exists()


def test_a_truncated_image_stops_training_before_it_starts(fx, tmp_path):
    images = tmp_path / "data"
    shutil.copytree(fx["images"], images)
    png = images / "img" / "3.png"
    png.write_bytes(png.read_bytes()[:40])  # a PNG cut off inside its image data
    with pytest.raises(UserError, match=r"record 3 \(id '3'\): image file .*img/3\.png is not a readable image"):
        instruct.train_run(tiny_config(), fx["base"], images / "train.json", images, tmp_path / "runs" / "bad")
    assert not (tmp_path / "runs").exists()  # nothing published, no work directory left


def test_training_stops_when_peft_realizes_another_rank(fx, tmp_path, monkeypatch):
    """The PEFT boundary is checked inside training: a rank_pattern that misses one module (PEFT then silently gives
    it the default rank) stops the run, naming the module, before anything is published."""
    schedule = Schedule.from_layer_dicts(
        [
            dict(q_proj=1, k_proj=1, v_proj=2, o_proj=2, up_proj=3, down_proj=2, gate_proj=2),
            dict(q_proj=2, k_proj=2, v_proj=3, o_proj=3, up_proj=4, down_proj=3, gate_proj=3),
        ],
        name="hand",
    )
    honest = Schedule.peft_patterns

    def tampered(self, alpha_ratio=2.0):
        default_r, ranks, alphas = honest(self, alpha_ratio)
        key = next(k for k in ranks if k.endswith("up_proj") and ranks[k] != default_r)
        return default_r, {k: v for k, v in ranks.items() if k != key}, {k: v for k, v in alphas.items() if k != key}

    monkeypatch.setattr(Schedule, "peft_patterns", tampered)
    cfg = tiny_config(method="schedule", max_steps=1)
    with pytest.raises(RuntimeError, match=r"module '.*mlp\.up_proj': planned rank \d, realized rank \d"):
        instruct.train_run(cfg, fx["base"], fx["data"], fx["images"], tmp_path / "runs" / "bad", schedule=schedule)
    assert not (tmp_path / "runs" / "bad").exists()
