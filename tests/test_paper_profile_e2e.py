"""The paper profile through DVC, from `prepare` to the first training runs, on tiny stand-ins of the hub layout
(MobileLLaMA without a pad token and with its hub id in config.json, a CLIP directory, LLaVA-558K / 665K records
with the image token last). Only step and batch counts are shrunk; modes, data source, ranks and templates are the
paper profile's. Evaluation needs the hub's datasets and is not run (slow: ~2 minutes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import copy_tracked, git_commit_all

pytestmark = pytest.mark.slow

CPU = {  # the only overrides: sizes, so that it runs on 2 CPU cores in a minute or two
    "pretrain": {"batch_size": 4, "steps": 3, "num_threads": 1, "log_every": 1},
    "gradnorm": {"steps": 3},
    "train": {"max_steps": 3, "global_batch_size": 4, "per_device_batch_size": 4, "num_threads": 1},
}
SMOL = {
    "lm": {"source": "stand-in"},  # the PyPI wheel is not fetched in a test
    "pretrain": {"steps": 2, "batch_size": 4, "num_threads": 1, "log_every": 1},
    "gradnorm": {"steps": 3},
    "train": {"global_batch_size": 4, "per_device_batch_size": 4, "num_threads": 1},
}
WORDS = "a photo of the cat dog red blue on table what is in image describe picture it shows".split()


def _tokenizer(out: Path) -> None:
    """A Llama-like word tokenizer with unk / bos / eos and, like MobileLLaMA's, no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", *WORDS, "\n", ".", "?", ":", "USER", "ASSISTANT"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(str(out))


def _stand_ins(root: Path) -> None:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    for name, layers in (("MobileLLaMA-1.4B-Chat", 24), ("MobileLLaMA-2.7B-Chat", 32)):
        out = root / "models" / "hub" / name
        _tokenizer(out)
        vocab = len(json.loads((out / "tokenizer.json").read_text())["model"]["vocab"])
        config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                             bos_token_id=1, eos_token_id=2, pad_token_id=None)  # fmt: skip
        LlamaForCausalLM(config).save_pretrained(str(out))
        cfg = json.loads((out / "config.json").read_text())
        (out / "config.json").write_text(json.dumps({**cfg, "_name_or_path": f"mtgv/{name}"}))
    clip = root / "models" / "hub" / "clip-vit-large-patch14-336"
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=56, patch_size=14, projection_dim=32)  # fmt: skip
    CLIPVisionModel(vision).save_pretrained(str(clip))
    CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}).save_pretrained(str(clip))

    llava = root / "data" / "llava"
    for rel in ("coco/train2017", "gqa/images", "ocr_vqa/images", "textvqa/train_images", "vg/VG_100K", "vg/VG_100K_2"):
        (llava / "images" / rel).mkdir(parents=True)
    (llava / "LLaVA-Pretrain" / "images" / "00000").mkdir(parents=True)
    pre, instr = [], []
    for i in range(16):
        colour = ("red", "blue")[i % 2]
        Image.new("RGB", (56, 56), colour).save(llava / "LLaVA-Pretrain" / "images" / "00000" / f"{i:09d}.jpg")
        Image.new("RGB", (56, 56), colour).save(llava / "images" / "coco" / "train2017" / f"{i:012d}.jpg")
        ask = "describe the picture ." if i % 2 else "<image>\ndescribe the picture ."
        ask = f"{ask}\n<image>" if i % 2 else ask  # LLaVA-558K puts the image token last in about half
        caption = [{"from": "human", "value": ask}, {"from": "gpt", "value": f"a {colour} photo"}]
        pre.append({"id": f"{i:09d}", "image": f"00000/{i:09d}.jpg", "conversations": caption})
        turns = [{"from": "human", "value": "what is in the image ?\n<image>"}, {"from": "gpt", "value": colour}]
        instr.append({"id": f"{i:012d}", "image": f"coco/train2017/{i:012d}.jpg", "conversations": turns})
    instr.append({"id": "text-1", "conversations": [{"from": "human", "value": "what is it ?"},
                                                    {"from": "gpt", "value": "a cat"}]})  # fmt: skip
    (llava / "LLaVA-Pretrain" / "blip_laion_cc_sbu_558k.json").write_text(json.dumps(pre))
    (llava / "llava_v1_5_mix665k.json").write_text(json.dumps(instr))


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper") / "repo"
    copy_tracked(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "paper"
    paper = params["profiles"]["paper"]
    for key, values in CPU.items():
        paper[key] = {**paper.get(key, {}), **values}
    for key, values in SMOL.items():
        paper["smol"][key] = {**paper["smol"].get(key, {}), **values}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _stand_ins(root)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")
    git_commit_all(root, env)
    out = subprocess.run(["dvc", "repro", "train@lora_small", "train@hydra_coarse_small"], cwd=root, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return root


def test_prepare_moves_the_image_first_and_writes_what_the_stages_need(paper_repo):
    data = paper_repo / "data" / "paper"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["image_moved_first"] == {"pretrain": 8, "train": 16}
    first = json.loads((data / "pretrain.json").read_text())[1]["conversations"][0]["value"]
    assert first == "<image>\ndescribe the picture ."


def test_stage_i_assembles_the_hub_lm_and_clip_and_pads_with_unk(paper_repo):
    base = paper_repo / "models" / "paper" / "small"
    config = json.loads((base / "config.json").read_text())
    assert config["num_hidden_layers"] == 24 and config["mm_projector_type"] == "ldpnet"
    assert config.get("_name_or_path", "") != "mtgv/MobileLLaMA-1.4B-Chat"
    tok = json.loads((base / "tokenizer_config.json").read_text())
    assert tok.get("pad_token") == "<unk>"


def test_training_runs_have_the_paper_ranks_and_no_hub_reference(paper_repo):
    for run, method in (("lora_small", "lora"), ("hydra_coarse_small", "schedule")):
        ranks = json.loads((paper_repo / "runs" / "paper" / run / "ranks.json").read_text())
        assert ranks["method"] == method and ranks["r_standard"] == 128 and not ranks["over_budget"]
        adapter = json.loads((paper_repo / "runs" / "paper" / run / "adapter" / "adapter_config.json").read_text())
        assert not re.search(r"mtgv/", str(adapter.get("base_model_name_or_path")))
    lora = json.loads((paper_repo / "runs" / "paper" / "lora_small" / "ranks.json").read_text())
    assert lora["params"]["lora"] == lora["budget_params"]  # uniform LoRA is the budget C
