"""Tests of hydra_repro.model.vlm: LDP projector vs MobileVLM's construction, image splice, loss masking, generation
(cache vs recompute, batched vs single), the image really steering answers, MobileVLM checkpoint layout and bad input.

Run: `.venv/bin/python -m pytest tests/test_modeling.py -q` (about 15 s on 2 cores).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from hydra_repro.config.model import PRESETS, LMConfig, ModelConfig, VisionConfig, model_config_from_dict
from hydra_repro.constants import COMPONENTS, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from hydra_repro.errors import UserError
from hydra_repro.model.checkpoint import load_model
from hydra_repro.model.projector import LDPNetProjector
from hydra_repro.model.vlm import build_model, lm_dims, lora_target_names, process_images

TINY = ModelConfig()
N_VIS = TINY.num_visual_tokens  # 16x16 image, patch 4 -> 4x4 grid -> LDP -> 2x2 = 4 tokens


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(TINY)


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, TINY.vision.image_size, TINY.vision.image_size, generator=g)


def mobilevlm_ldp(mm_hidden: int, hidden: int) -> nn.Module:
    """MobileVLM's LDPBlock assembled the way its vision_projector.py does, from timm and torchvision parts."""
    timm_norm = pytest.importorskip("timm.layers.norm_act")
    mnv3 = pytest.importorskip("torchvision.models.mobilenetv3")
    from torchvision.ops.misc import SqueezeExcitation

    norm = partial(timm_norm.LayerNormAct2d, act_layer=None)
    se = partial(SqueezeExcitation, scale_activation=nn.Hardsigmoid)
    block = nn.Module()
    block.mlp = nn.Sequential(nn.Identity(), nn.Linear(mm_hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
    cfg = partial(mnv3.InvertedResidualConfig, hidden, 3, hidden, hidden, True, "HS", dilation=1, width_mult=1)
    block.mb_block = nn.Sequential(
        nn.Identity(), mnv3.InvertedResidual(cfg(stride=1), norm, se), mnv3.InvertedResidual(cfg(stride=2), norm, se)
    )
    return block


def run_reference_ldp(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    b, n, _ = x.shape
    side = int(n**0.5)
    y = block.mlp(x).permute(0, 2, 1).reshape(b, -1, side, side)
    return block.mb_block(y).flatten(2).permute(0, 2, 1)


# ---------------------------------------------------------------------------------------------------------------
# LDP projector
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("grid", "out_grid"), [(24, 12), (8, 4), (4, 2), (5, 3)])
def test_ldp_halves_the_grid_per_side(grid: int, out_grid: int) -> None:
    proj = LDPNetProjector(mm_hidden_size=24, hidden_size=16)
    out = proj(torch.randn(2, grid * grid, 24))
    assert out.shape == (2, out_grid * out_grid, 16)


def test_ldp_matches_mobilevlm_construction_keys_and_outputs() -> None:
    torch.manual_seed(1)
    ref = mobilevlm_ldp(24, 32).eval()
    ours = LDPNetProjector(24, 32).eval()
    ref_sd = {f"model.{k}": v for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref_sd.items()}
    ours.load_state_dict(ref_sd)
    x = torch.randn(3, 64, 24)
    torch.testing.assert_close(ours(x), run_reference_ldp(ref, x))


# ---------------------------------------------------------------------------------------------------------------
# Splice and loss
# ---------------------------------------------------------------------------------------------------------------
def test_splice_places_visual_tokens_at_the_placeholder_and_masks_labels(model) -> None:
    ids = torch.tensor([[1, 5, IMAGE_TOKEN_INDEX, 7, 8], [1, IMAGE_TOKEN_INDEX, 9, 10, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[1, 5, IGNORE_INDEX, 7, 8], [1, IGNORE_INDEX, 9, 10, IGNORE_INDEX]])
    img = images(2)
    with torch.no_grad():
        embeds, new_mask, new_labels = model._splice(ids, mask, labels, img, "right")
        feats = model.encode_images(img)
        emb = model.model.embed_tokens
        assert embeds.shape == (2, 5 - 1 + N_VIS, TINY.lm.hidden_size)
        for i, p in enumerate([2, 1]):
            torch.testing.assert_close(embeds[i, :p], emb(ids[i, :p]))
            torch.testing.assert_close(embeds[i, p : p + N_VIS], feats[i])
            torch.testing.assert_close(embeds[i, p + N_VIS :], emb(ids[i, p + 1 :]))
            assert (new_labels[i, p : p + N_VIS] == IGNORE_INDEX).all()
            assert new_labels[i, :p].tolist() == labels[i, :p].tolist()
            assert new_labels[i, p + N_VIS :].tolist() == labels[i, p + 1 :].tolist()
            assert new_mask[i].tolist() == mask[i, :p].tolist() + [1] * N_VIS + mask[i, p + 1 :].tolist()


def test_text_only_row_is_padded_on_the_requested_side(model) -> None:
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 7], [1, 8, 9]])
    with torch.no_grad():
        _, right, _ = model._splice(ids, None, None, images(2), "right")
        _, left, _ = model._splice(ids, None, None, images(2), "left")
    assert right[1].tolist() == [1, 1, 1] + [0] * (N_VIS - 1)
    assert left[1].tolist() == [0] * (N_VIS - 1) + [1, 1, 1]


def test_forward_feeds_the_spliced_embeddings_to_the_lm(model) -> None:
    ids = torch.tensor([[1, 5, IMAGE_TOKEN_INDEX, 7]])
    seen = {}
    handle = model.model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model(input_ids=ids, images=images(1))
            feats = model.encode_images(images(1))
    finally:
        handle.remove()
    torch.testing.assert_close(seen["embeds"][0, 2 : 2 + N_VIS], feats[0])


def test_loss_counts_only_given_labels(model) -> None:
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 5, 6, 7, 8]])
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, 4], labels[0, 5] = 7, 8  # only the last two tokens are targets
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels, images=images(1))
        # After the splice, token t of the text sits at t - 1 + N_VIS; it is predicted by the position before it.
        pos = [4 - 1 + N_VIS, 5 - 1 + N_VIS]
        manual = nn.functional.cross_entropy(out.logits[0, [p - 1 for p in pos]], torch.tensor([7, 8]))
    torch.testing.assert_close(out.loss, manual)


def test_image_without_placeholder_and_placeholder_without_image_are_errors(model) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        model(input_ids=torch.tensor([[1, 5, 6]]), images=images(1))
    with pytest.raises(ValueError, match="no images"):
        model(input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 6]]))


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------
def greedy_without_cache(model, prompt: list[int], image: torch.Tensor | None, steps: int) -> list[int]:
    """Reference: recompute the whole sequence at every step."""
    out: list[int] = []
    for _ in range(steps):
        ids = torch.tensor([prompt + out])
        with torch.no_grad():
            logits = model(input_ids=ids, images=image, use_cache=False).logits
        out.append(int(logits[0, -1].argmax()))
    return out


def test_cached_greedy_equals_recomputed_greedy(model) -> None:
    prompt = [1, 5, IMAGE_TOKEN_INDEX, 7, 8]
    got = model.generate_batch([prompt], images(1), max_new_tokens=8, eos_token_id=-1)
    assert got == [greedy_without_cache(model, prompt, images(1), 8)]


def test_batched_left_padded_generation_equals_per_sample(model) -> None:
    prompts = [[1, IMAGE_TOKEN_INDEX, 7], [1, 5, 6, IMAGE_TOKEN_INDEX, 7, 8, 9, 10], [1, 11, 12, 13]]
    img = images(3, seed=3)
    batched = model.generate_batch(prompts, img, max_new_tokens=6, eos_token_id=-1)
    single = [
        model.generate_batch([p], img[i : i + 1] if IMAGE_TOKEN_INDEX in p else None, 6, eos_token_id=-1)[0]
        for i, p in enumerate(prompts)
    ]
    assert batched == single


def test_generation_stops_at_eos(model) -> None:
    prompt = [1, IMAGE_TOKEN_INDEX, 7]
    free = model.generate_batch([prompt], images(1), max_new_tokens=5, eos_token_id=-1)[0]
    stopped = model.generate_batch([prompt], images(1), max_new_tokens=5, eos_token_id=free[2])[0]
    assert stopped == free[: free.index(free[2])]


def test_empty_dynamic_cache_does_not_skip_the_image(model) -> None:
    from transformers import DynamicCache

    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 7]])
    with torch.no_grad():
        plain = model(input_ids=ids, images=images(1)).logits
        cached = model(input_ids=ids, images=images(1), past_key_values=DynamicCache(), use_cache=True).logits
    assert cached.shape[1] == 3 - 1 + N_VIS
    torch.testing.assert_close(cached, plain)


def test_hf_generate_refuses_image_prompts(model) -> None:
    with pytest.raises(NotImplementedError, match="generate_batch"):
        model.generate(input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 7]]), images=images(1))


def test_different_images_change_the_logits(model) -> None:
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 7], [1, IMAGE_TOKEN_INDEX, 7]])
    with torch.no_grad():
        logits = model(input_ids=ids, images=images(2)).logits[:, -1]
    assert (logits[0] - logits[1]).abs().max() > 1e-3


def test_answers_follow_the_image_after_training_on_a_colour_task() -> None:
    """Toy task: the answer token is the image's colour; only the image can tell the colours apart."""
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(TINY, seed=1)).train()
    colours = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])  # normalised RGB
    size = TINY.vision.image_size
    prompt, answer_base, eos = [1, IMAGE_TOKEN_INDEX, 20], 40, TINY.lm.eos_token_id
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(60):
        c = torch.randint(0, 4, (16,))
        pixels = colours[c][:, :, None, None].expand(-1, -1, size, size) + 0.1 * torch.randn(16, 3, size, size)
        ids = torch.tensor([prompt + [answer_base + int(k), eos] for k in c])
        labels = ids.clone()
        labels[:, : len(prompt)] = IGNORE_INDEX
        loss = model(input_ids=ids, labels=labels, images=pixels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    pixels = colours[:, :, None, None].expand(-1, -1, size, size)
    answers = model.generate_batch([prompt] * 4, pixels, max_new_tokens=3)
    assert answers == [[answer_base + k] for k in range(4)]


# ---------------------------------------------------------------------------------------------------------------
# Save / load in MobileVLM's layout
# ---------------------------------------------------------------------------------------------------------------
def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, TINY.lm.vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_save_and_load_round_trip(model, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    model.save_pretrained(out, tokenizer=tiny_tokenizer())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing half-written left beside it
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "mobilevlm"
    assert config["mm_projector_type"] == "ldpnet" and config["mm_vision_select_feature"] == "patch"
    assert config["mm_hidden_size"] == TINY.vision.hidden_size and config["mm_vision_select_layer"] == -2
    assert (out / "preprocessor_config.json").is_file()
    loaded = load_model(out)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value, msg=key)
    assert loaded.tokenizer.encode("w5 w7", add_special_tokens=False) == [5, 7]
    assert loaded.image_processor.crop_size == {"height": TINY.vision.image_size, "width": TINY.vision.image_size}
    assert not any(p.requires_grad for p in loaded.model.model.vision_tower.parameters())
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 7]])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(input_ids=ids, images=images(1)).logits, model(ids, images=images(1)).logits
        )


def write_mobilevlm_checkpoint(
    path: Path, with_vision_config: bool = True, with_tower_weights: bool = True, layout: str = "safetensors"
) -> dict:
    """A tiny checkpoint in MobileVLM's layout, built from plain transformers / torchvision parts, not our code.

    `layout`: "safetensors" (one file), "sharded" (two safetensors shards + index) or "bin" (pytorch_model.bin).
    """
    torch.manual_seed(7)
    lm_cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
    )  # fmt: skip
    vis_cfg = CLIPVisionConfig(
        hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4, image_size=16, patch_size=4
    )
    weights = dict(LlamaForCausalLM(lm_cfg).state_dict())
    if with_tower_weights:
        clip = CLIPVisionModel(vis_cfg).state_dict()
        weights.update({f"model.vision_tower.vision_tower.vision_model.{k}": v for k, v in clip.items()})
    weights.update({f"model.mm_projector.model.{k}": v for k, v in mobilevlm_ldp(24, 32).state_dict().items()})
    config = {
        "architectures": ["MobileLlamaForCausalLM"],
        "model_type": "mobilevlm",
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "hidden_act": "silu", "rms_norm_eps": 1e-6, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.33.1",
        "mm_vision_tower": "openai/clip-vit-large-patch14-336", "vision_tower_type": "clip",
        "mm_hidden_size": 24, "mm_projector_type": "ldpnet", "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch", "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad", "use_mm_proj": True, "tune_mm_mlp_adapter": False,
        "rope_scaling": None, "pretraining_tp": 1, "max_sequence_length": 2048, "use_cache": True,
    }  # fmt: skip
    if with_vision_config:
        config["mm_vision_tower"] = "tiny-clip"
        config["mm_vision_config"] = vis_cfg.to_dict()
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    tensors = {k: v.contiguous() for k, v in weights.items()}
    if layout == "safetensors":
        save_file(tensors, str(path / "model.safetensors"))
    elif layout == "bin":
        torch.save(tensors, path / "pytorch_model.bin")
    else:
        keys = sorted(tensors)
        shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
        for name, shard_keys in shards.items():
            save_file({k: tensors[k] for k in shard_keys}, str(path / name))
        weight_map = {k: name for name, shard_keys in shards.items() for k in shard_keys}
        (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return weights


@pytest.mark.parametrize("layout", ["safetensors", "sharded", "bin"])
def test_loads_a_hand_written_mobilevlm_checkpoint(tmp_path: Path, layout: str) -> None:
    weights = write_mobilevlm_checkpoint(tmp_path / "mvlm", layout=layout)
    loaded = load_model(tmp_path / "mvlm")
    state = loaded.model.state_dict()
    for key, value in weights.items():
        torch.testing.assert_close(state[key], value, msg=key)
    assert loaded.tokenizer is None
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 5]]), images=images(1)).logits
    assert out.shape == (1, 2 + 4, 64) and torch.isfinite(out).all()


def test_paper_style_checkpoint_needs_the_clip_directory(tmp_path: Path) -> None:
    write_mobilevlm_checkpoint(tmp_path / "mvlm", with_vision_config=False, with_tower_weights=False)
    with pytest.raises(UserError, match=r"openai/clip-vit-large-patch14-336.*download"):
        load_model(tmp_path / "mvlm")
    # With a local CLIP directory, the tower's config and weights come from it.
    clip = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                         image_size=16, patch_size=4)
    )  # fmt: skip
    clip.save_pretrained(tmp_path / "clip")
    loaded = load_model(tmp_path / "mvlm", vision_tower_path=tmp_path / "clip")
    torch.testing.assert_close(
        loaded.model.model.vision_tower.clip.embeddings.patch_embedding.weight, clip.embeddings.patch_embedding.weight
    )


def test_hub_id_without_local_copy_says_what_to_download() -> None:
    with pytest.raises(UserError, match=r"mtgv/MobileVLM-1\.7B.*huggingface-cli download"):
        load_model("mtgv/MobileVLM-1.7B")


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["mm_hidden_size", "mm_projector_type", "hidden_size", "mm_vision_tower"])
def test_missing_config_key_is_named(tmp_path: Path, key: str) -> None:
    write_mobilevlm_checkpoint(tmp_path / "m")
    config = json.loads((tmp_path / "m/config.json").read_text())
    del config[key]
    (tmp_path / "m/config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=re.escape(f"missing key {key!r}")):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"mm_projector_type": "mlp2x_gelu"}, "mm_projector_type"),
        ({"mm_hidden_size": "big"}, "mm_hidden_size"),
        ({"mm_hidden_size": 48}, "mm_hidden_size"),
        ({"mm_vision_select_feature": "cls_patch"}, "mm_vision_select_feature"),
        ({"intermediate_size": 80}, "model.layers.0.mlp.gate_proj.weight"),  # weights no longer fit the config
    ],
)
def test_bad_config_value_is_named(tmp_path: Path, edit: dict, message: str) -> None:
    write_mobilevlm_checkpoint(tmp_path / "m")
    config = json.loads((tmp_path / "m/config.json").read_text())
    (tmp_path / "m/config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(UserError, match=re.escape(message)):
        load_model(tmp_path / "m")


def test_corrupt_config_and_missing_weights(tmp_path: Path) -> None:
    write_mobilevlm_checkpoint(tmp_path / "m")
    (tmp_path / "m/model.safetensors").unlink()
    with pytest.raises(UserError, match="no weights found"):
        load_model(tmp_path / "m")
    (tmp_path / "m/config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json: not valid JSON"):
        load_model(tmp_path / "m")


def test_missing_weight_is_reported(tmp_path: Path) -> None:
    weights = write_mobilevlm_checkpoint(tmp_path / "m")
    del weights["model.mm_projector.model.mlp.1.weight"]
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / "m/model.safetensors"))
    with pytest.raises(UserError, match=re.escape("model.mm_projector.model.mlp.1.weight")):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("lm", "hidden_size", 36),
        ("lm", "num_key_value_heads", 3),
        ("vision", "image_size", 18),
        ("lm", "vocab_size", 0),
    ],
)
def test_model_config_validation_names_the_field(section: str, field: str, value: int) -> None:
    with pytest.raises(UserError, match=re.escape(f"model.{section}.{field}")):
        model_config_from_dict({section: {field: value}})


def test_model_config_presets_and_overrides() -> None:
    cfg = model_config_from_dict({"preset": "mini-3b", "lm": {"vocab_size": 200}})
    assert cfg.lm.num_hidden_layers == 32 and cfg.lm.vocab_size == 200 and cfg.num_visual_tokens == 16
    assert PRESETS["mini-1.7b"].lm.num_hidden_layers == 24
    with pytest.raises(UserError, match="model.lm: unknown key 'hidden'"):
        model_config_from_dict({"lm": {"hidden": 3}})
    with pytest.raises(UserError, match="model.preset"):
        model_config_from_dict({"preset": "huge"})
    assert isinstance(LMConfig(), LMConfig) and isinstance(VisionConfig(), VisionConfig)


# ---------------------------------------------------------------------------------------------------------------
# LoRA helpers and preprocessing
# ---------------------------------------------------------------------------------------------------------------
def test_lora_target_names_hit_only_the_lm_projections(model) -> None:
    names = lora_target_names(model)
    assert len(names) == 7 * TINY.lm.num_hidden_layers
    assert [n.split(".")[-1] for n in names[:7]] == list(COMPONENTS)
    assert [int(n.split(".")[2]) for n in names] == sorted(int(n.split(".")[2]) for n in names)
    all_names = [n for n, _ in model.named_modules()]
    assert any(n.endswith("vision_model.encoder.layers.0.self_attn.q_proj") for n in all_names)
    for name in names:  # PEFT matches a rank_pattern key against the end of every module name
        hits = [n for n in all_names if re.match(rf"(.*\.)?({re.escape(name)})$", n)]
        assert hits == [name]
        assert isinstance(model.get_submodule(name), nn.Linear)


def test_lm_dims_agree_between_config_and_model(model) -> None:
    assert lm_dims(TINY) == lm_dims(model) == lm_dims(model.config)
    assert lm_dims(model)["head_dim"] == TINY.lm.hidden_size // TINY.lm.num_attention_heads


def test_peft_lora_wrapping_keeps_the_image_path(model) -> None:
    peft = pytest.importorskip("peft")
    names = lora_target_names(model)
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=names, rank_pattern={names[0]: 4})
    wrapped = peft.get_peft_model(build_model(TINY), config)
    assert wrapped.get_submodule(f"base_model.model.{names[0]}").lora_A["default"].weight.shape[0] == 4
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 7], [1, IMAGE_TOKEN_INDEX, 7]])
    with torch.no_grad():
        logits = wrapped(input_ids=ids, images=images(2)).logits
    assert logits.shape[1] == 2 + N_VIS and (logits[0] - logits[1]).abs().max() > 1e-3
    assert lm_dims(wrapped) == lm_dims(model) and lora_target_names(wrapped) == names


def test_process_images_pads_to_square_and_resizes(model) -> None:
    from PIL import Image

    pixels = process_images([Image.new("RGB", (40, 20), (255, 0, 0))], model.image_processor)
    assert pixels.shape == (1, 3, TINY.vision.image_size, TINY.vision.image_size)
    # Top rows are mean-colour padding, which normalises to about zero.
    assert pixels[0, :, 0].abs().max() < 0.02


def test_a_hub_id_in_the_checkpoint_is_not_kept(tmp_path):
    """A MobileVLM checkpoint from the hub names its hub id in `_name_or_path`; PEFT would look it up on the hub when
    saving an adapter, so loading empties it (as our own checkpoints have it)."""
    build_model(PRESETS["tiny"]).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "_name_or_path": "mtgv/MobileVLM-1.7B"}))
    assert load_model(tmp_path / "m").model.config._name_or_path == ""
