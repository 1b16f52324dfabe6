"""Loading a model directory in MobileVLM's layout (bin / safetensors, sharded, with or without tower weights), and
assembling a VLM from a plain causal LM and a tower."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from transformers import (
    AutoTokenizer,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedTokenizerBase,
)

from hydra_repro.errors import UserError
from hydra_repro.io import read_json
from hydra_repro.model.hf_config import (
    _IGNORED_KEYS,
    PAPER_HUB_IDS,
    PAPER_VISION_TOWER,
    WEIGHTS_NAME,
    HydraVLMConfig,
    _mm_keys,
    _vision_config_dict,
)
from hydra_repro.model.vlm import HydraVLMForCausalLM


def load_lm_tokenizer(path: Path) -> Any:
    """A model directory's tokenizer. A bare SentencePiece model (`tokenizer.model`, MobileLLaMA's hub layout) whose
    config does not say otherwise loads with `legacy=True`, transformers 4.33's default that MobileVLM trained with:
    text after a special token (`</s>USER:`) starts with SentencePiece's `▁`, as encoding each piece on its own does.
    transformers 5's default (`legacy=False`) drops that `▁` from the second conversation round on."""
    path = Path(path)
    kwargs: dict[str, Any] = {}
    config = path / "tokenizer_config.json"
    if (path / "tokenizer.model").is_file() and not (path / "tokenizer.json").is_file():
        settings = read_json(config, "tokenizer config") if config.is_file() else {}
        if isinstance(settings, dict) and "legacy" not in settings:
            kwargs["legacy"] = True
    return AutoTokenizer.from_pretrained(str(path), **kwargs)


class LoadedModel(NamedTuple):
    model: HydraVLMForCausalLM
    tokenizer: PreTrainedTokenizerBase | None
    image_processor: CLIPImageProcessor


_REQUIRED_KEYS = {
    "vocab_size": int,
    "hidden_size": int,
    "intermediate_size": int,
    "num_hidden_layers": int,
    "num_attention_heads": int,
    "mm_vision_tower": str,
    "mm_hidden_size": int,
    "mm_projector_type": str,
    "mm_vision_select_layer": int,
}


def _download_hint(what: str) -> str:
    local = what.split("/")[-1]
    return (
        f"the Hugging Face hub is not reachable here: download {what!r} ({PAPER_HUB_IDS.get(what, 'a checkpoint')}) "
        f"on a machine with hub access (`huggingface-cli download {what} --local-dir models/paper/{local}`), "
        f"copy it to models/paper/{local} and pass that local directory"
    )


def _read_config(path: Path) -> dict[str, Any]:
    file = path / "config.json"
    config = read_json(file, "MobileVLM config.json")
    if not isinstance(config, dict):
        raise UserError(f"{file}: expected a JSON object, got {type(config).__name__}")
    for key, tp in _REQUIRED_KEYS.items():
        if key not in config:
            raise UserError(f"{file}: missing key {key!r} (expected {tp.__name__}, as in MobileVLM's config.json)")
        if not isinstance(config[key], tp) or isinstance(config[key], bool):
            raise UserError(f"{file}: key {key!r} is {config[key]!r}; expected {tp.__name__}")
    if config["mm_projector_type"] != "ldpnet":
        raise UserError(f"{file}: key 'mm_projector_type' is {config['mm_projector_type']!r}; expected 'ldpnet'")
    feature = config.get("mm_vision_select_feature", "patch")
    if feature != "patch":
        raise UserError(f"{file}: key 'mm_vision_select_feature' is {feature!r}; expected 'patch'")
    return config


def _resolve_vision_tower(config: dict[str, Any], file: Path, vision_tower_path: str | Path | None) -> Path | None:
    """Local directory of a pretrained CLIP when config.json does not carry `mm_vision_config`, else None."""
    if "mm_vision_config" in config and vision_tower_path is None:
        if not isinstance(config["mm_vision_config"], dict):
            raise UserError(f"{file}: key 'mm_vision_config' is {config['mm_vision_config']!r}; expected an object")
        return None
    candidate = Path(vision_tower_path if vision_tower_path is not None else config["mm_vision_tower"])
    if candidate.is_dir():
        return candidate
    if vision_tower_path is not None:
        raise UserError(f"vision_tower_path: {candidate} is not a directory (expected a local CLIP checkpoint)")
    raise UserError(f"{file}: mm_vision_tower is {config['mm_vision_tower']!r}; {_download_hint(PAPER_VISION_TOWER)}")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if (path / WEIGHTS_NAME).is_file():
        return load_file(str(path / WEIGHTS_NAME))
    for index_name, shard_loader in (
        ("model.safetensors.index.json", lambda f: load_file(str(f))),
        ("pytorch_model.bin.index.json", lambda f: torch.load(f, map_location="cpu", weights_only=True)),
    ):
        if (path / index_name).is_file():
            index = json.loads((path / index_name).read_text(encoding="utf-8"))
            weights: dict[str, torch.Tensor] = {}
            for shard in sorted(set(index["weight_map"].values())):
                weights.update(shard_loader(path / shard))
            return weights
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise UserError(f"{path}: no weights found (expected {WEIGHTS_NAME}, a sharded index or pytorch_model.bin)")


def load_model(
    path: str | Path,
    vision_tower_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a checkpoint directory in MobileVLM's layout (ours or MobileVLM's own).

    Args:
        path: directory with config.json and weights (model.safetensors, sharded, or pytorch_model.bin).
        vision_tower_path: local CLIP directory; needed when config.json has no `mm_vision_config` (real MobileVLM
            checkpoints name `openai/clip-vit-large-patch14-336`), and used for the tower weights when the
            checkpoint does not include them.
        dtype, device: where the model lives.

    Returns:
        LoadedModel(model in eval mode with a frozen vision tower, tokenizer or None, image processor).

    Raises:
        UserError: missing directory (with download instructions for the paper's hub ids), missing or bad config keys,
            missing, unexpected or mis-shaped weights.
    """
    path = Path(path)
    if not path.is_dir():
        name = str(path)
        if name in PAPER_HUB_IDS:
            raise UserError(f"{name}: not a local directory; {_download_hint(name)}")
        raise UserError(f"{path}: checkpoint directory not found (expected config.json + weights)")
    config = _read_config(path)
    file = path / "config.json"
    tower_dir = _resolve_vision_tower(config, file, vision_tower_path)
    if tower_dir is not None:
        vision_config = CLIPVisionConfig.from_pretrained(str(tower_dir))
        config["mm_vision_config"] = _vision_config_dict(vision_config)
    if config["mm_vision_config"].get("hidden_size") != config["mm_hidden_size"]:
        raise UserError(
            f"{file}: key 'mm_hidden_size' is {config['mm_hidden_size']}; expected the vision tower's hidden size "
            f"({config['mm_vision_config'].get('hidden_size')})"
        )
    # a hub id in `_name_or_path` (a MobileVLM checkpoint from the hub) would make PEFT look the base model up on
    # the hub when it saves an adapter; emptied, as our own checkpoints have it (a path would make runs hash per host)
    hf_keys = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version", "torch_dtype")}
    hf_keys["_name_or_path"] = ""
    try:
        hf_config = HydraVLMConfig(**hf_keys)
        with torch.device("cpu"):
            model = HydraVLMForCausalLM(hf_config)
    except (TypeError, ValueError) as e:
        raise UserError(f"{file}: cannot build the model from it ({e})") from None

    weights = {k: v for k, v in _read_weights(path).items() if not _IGNORED_KEYS.search(k)}
    tower_prefix = "model.vision_tower.vision_tower.vision_model."
    if tower_dir is not None and not any(k.startswith(tower_prefix) for k in weights):
        # MobileVLM checkpoints may leave the frozen CLIP out; take it from the CLIP directory.
        clip = CLIPVisionModel.from_pretrained(str(tower_dir))
        weights.update({tower_prefix + k: v for k, v in clip.state_dict().items() if not _IGNORED_KEYS.search(k)})
    expected = {k: v for k, v in model.state_dict().items() if not _IGNORED_KEYS.search(k)}
    if hf_config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not match MobileVLM's layout: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    for key, param in expected.items():  # in module order, so the first mismatch reported is the earliest
        if weights[key].shape != param.shape:
            raise UserError(
                f"{path}: weight {key!r} has shape {tuple(weights[key].shape)}; expected {tuple(param.shape)} "
                "from config.json"
            )
    model.load_state_dict(weights, strict=False)
    if hf_config.tie_word_embeddings:
        model.tie_weights()

    if (path / "preprocessor_config.json").is_file():
        model.image_processor = CLIPImageProcessor.from_pretrained(str(path))
    elif tower_dir is not None and (tower_dir / "preprocessor_config.json").is_file():
        model.image_processor = CLIPImageProcessor.from_pretrained(str(tower_dir))
    tokenizer = None
    if any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        tokenizer = load_lm_tokenizer(path)
    model = model.to(device=device, dtype=dtype).eval()
    model.set_vision_tower_trainable(False)
    return LoadedModel(model, tokenizer, model.image_processor)


# Keys of a plain causal-LM config.json that do not describe the architecture
_LM_META_KEYS = (
    "model_type", "transformers_version", "torch_dtype", "dtype", "architectures", "quantization_config",
    "_name_or_path",  # a hub id here would make PEFT look the base model up on the hub when saving an adapter
)  # fmt: skip


def assemble_model(
    lm_dir: str | Path, vision_dir: str | Path, seed: int = 0, conv_template: str | None = None
) -> LoadedModel:
    """MobileVLM stage I's starting point: a pretrained Llama LM + a CLIP tower + a fresh LDP projector.

    Args:
        lm_dir: a plain Llama checkpoint (config.json with model_type "llama", weights, tokenizer): MobileLLaMA in
            the paper profile, the converted SmolLM2 in the smol profile.
        vision_dir: a CLIP vision checkpoint directory (the hub's CLIP ViT-L/14-336, or stage 0's mini tower).
        seed: seeds the projector's initialisation.
        conv_template: the LM's chat template, written to config.json as `conv_template` (None: MobileVLM's v1).

    Raises:
        UserError: a directory or key is missing, the LM is not a Llama, or its weights do not fit its config.
    """
    lm_dir, vision_dir = Path(lm_dir), Path(vision_dir)
    file = lm_dir / "config.json"
    if not file.is_file():
        raise UserError(
            f"{lm_dir}: no config.json (expected a plain Llama checkpoint: config.json, weights, tokenizer)"
        )
    config = read_json(file, "LM config.json")
    if not isinstance(config, dict) or config.get("model_type") != "llama":
        got = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise UserError(f"{file}: key 'model_type' is {got!r}; expected 'llama'")
    if not (vision_dir / "config.json").is_file():
        raise UserError(f"{vision_dir}: no config.json (expected a CLIP vision checkpoint directory)")
    clip = CLIPVisionModel.from_pretrained(str(vision_dir))
    keys = {k: v for k, v in config.items() if k not in _LM_META_KEYS}
    if conv_template is not None:
        from hydra_repro.data.conversation import get_template

        keys["conv_template"] = get_template(conv_template).name
    hf_config = HydraVLMConfig(
        **keys,
        architectures=["MobileLlamaForCausalLM"],
        **_mm_keys(str(vision_dir), clip.config.hidden_size, -2),
        mm_vision_config=_vision_config_dict(clip.config),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HydraVLMForCausalLM(hf_config)
    weights = {k: v for k, v in _read_weights(lm_dir).items() if not _IGNORED_KEYS.search(k)}
    expected = {k for k in model.state_dict() if not k.startswith(("model.vision_tower.", "model.mm_projector."))} - (
        {"lm_head.weight"} if hf_config.tie_word_embeddings else set()
    )
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise UserError(
            f"{lm_dir}: weights do not match its config.json: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    model.load_state_dict(weights, strict=False)
    if hf_config.tie_word_embeddings:
        model.tie_weights()
    model.model.vision_tower.clip.load_state_dict(clip.state_dict())
    if (vision_dir / "preprocessor_config.json").is_file():
        model.image_processor = CLIPImageProcessor.from_pretrained(str(vision_dir))
    tokenizer = load_lm_tokenizer(lm_dir) if (lm_dir / "tokenizer_config.json").is_file() else None
    if tokenizer is not None and tokenizer.pad_token is None:  # MobileLLaMA: none; MobileVLM's v1 recipe pads with unk
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    model.eval().set_vision_tower_trainable(False)
    return LoadedModel(model, tokenizer, model.image_processor)
