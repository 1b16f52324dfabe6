"""lmms-eval model `hydra_vlm`: our MobileVLM-architecture VLM (a base model or a trained run) behind lmms-eval.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m lmms_eval --model hydra_vlm \\
        --model_args pretrained=runs/<run> --batch_size 16 --tasks mini_pope --include_path data/mini/tasks

(lmms-eval's CLI always passes its own `--batch_size` and `--device`: give them as CLI flags, not model args.)

The name is registered through the `lmms_eval.models` entry point in pyproject.toml (`manifest` below);
`@register_model` alone does not reach lmms-eval 0.7.3's name lookup. From Python, `hydra_repro.eval.harness` builds
the instance itself and passes it to `simple_evaluate`.

Generation is greedy (the six tasks ask for temperature 0): requests are grouped by their generation settings,
sorted by prompt length so a batch pads little, generated in batches with the model's KV-cache `generate_batch`,
cut at the first `until` string, and returned in the original order. Each prompt is the conversation template
with "<image>" first, as MobileVLM prompts at evaluation.

This module imports no model code at import time: lmms-eval loads it while building its model registry.
"""

from __future__ import annotations

import gc
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from hydra_repro.constants import DEFAULT_IMAGE_TOKEN
from hydra_repro.errors import UserError

MODEL_NAME = "hydra_vlm"
DEFAULT_MAX_NEW_TOKENS = 128  # when a task sets none (lmms-eval's llava uses 1024; our answers are a few words)


def manifest() -> Any:
    """Entry point payload for the `lmms_eval.models` group: name -> class path."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=f"{__name__}.HydraVLM")


def _as_int(name: str, value: Any, minimum: int = 1) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        out = None
    if out is None or out < minimum:
        raise UserError(f"model_args {name}: got {value!r}; expected an integer >= {minimum}")
    return out


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """Text before the earliest stop string (lmms-eval's `until`), stripped."""
    end = min((i for s in until if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:end].strip()


class HydraVLM(lmms):
    """lmms-eval model for `HydraVLMForCausalLM` checkpoints.

    Model args (`--model_args k=v,...`): `pretrained` (a run directory or a model directory), `max_new_tokens`
    (optional cap on every task's `max_new_tokens`), `conv_mode` (default: the template the model was trained with);
    `device` ("cpu") and `batch_size` (8) come from lmms-eval's `--device` / `--batch_size`.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        device: str | None = "cpu",
        batch_size: int | str | None = 8,
        max_new_tokens: int | str | None = None,
        conv_mode: str | None = None,
        dtype: str = "float32",
        max_batch_size: Any = None,  # passed by lmms-eval's CLI; batches here have a fixed size
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise UserError(
                f"model_args: unknown key {sorted(unknown)[0]!r}; expected pretrained, device, batch_size, "
                "max_new_tokens, conv_mode, dtype"
            )
        if dtype not in ("float32", "bfloat16"):
            raise UserError(f"model_args dtype: got {dtype!r}; expected float32 or bfloat16")
        from hydra_repro.adapters.rundir import load_run
        from hydra_repro.data.conversation import get_template, model_template

        if conv_mode is not None:
            get_template(conv_mode)  # unknown template: UserError before loading weights
        path = Path(pretrained)
        if not path.is_dir():
            raise UserError(f"model_args pretrained: {pretrained!r} is not a directory (expected a run or model dir)")
        import torch

        loaded = load_run(
            path, device=device or "cpu", dtype=getattr(torch, dtype)
        )  # a trained run (adapter merged) or a model directory
        if loaded.tokenizer is None:
            raise UserError(f"{path}: no tokenizer files (expected tokenizer.json or tokenizer_config.json)")
        # default: the template the model was trained with (config `conv_template`; MobileVLM's v1 when absent)
        self._conv_mode = conv_mode or model_template(loaded.model.config).name
        self._setup(loaded.model, loaded.tokenizer, loaded.image_processor, None, device, batch_size, max_new_tokens)
        self.pretrained = str(path)

    @classmethod
    def from_components(
        cls,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        encode: Callable[[str], list[int]] | None = None,
        *,
        conv_mode: str = "v1",
        device: str = "cpu",
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        name: str = "in-memory",
    ) -> HydraVLM:
        """Wrap an already built model (tests, benchmarks, a model still in memory after training).

        Args:
            encode: user message (with "<image>") -> prompt ids with IMAGE_TOKEN_INDEX; default: the conversation
                template and tokenisation of `hydra_repro.data.conversation`.
        """
        self = cls.__new__(cls)
        lmms.__init__(self)
        self._conv_mode = conv_mode
        self._setup(model, tokenizer, image_processor, encode, device, batch_size, max_new_tokens)
        self.pretrained = name
        return self

    def _setup(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        encode: Callable[[str], list[int]] | None,
        device: str | None,
        batch_size: Any,
        max_new_tokens: Any,
    ) -> None:
        self.device = device or "cpu"
        self.batch_size_per_gpu = _as_int("batch_size", 8 if batch_size in (None, "auto") else batch_size)
        self.max_new_tokens_cap = None if max_new_tokens in (None, "") else _as_int("max_new_tokens", max_new_tokens)
        self.model = model.to(self.device).eval() if hasattr(model, "to") else model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self._encode = encode
        self.generated_tokens = 0  # counted for throughput reports

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # -- prompt and image preparation ------------------------------------------------------------------------------
    def encode(self, context: str, has_image: bool) -> list[int]:
        """Task context -> prompt ids: the conversation template around "<image>\\n" + context."""
        message = f"{DEFAULT_IMAGE_TOKEN}\n{context}" if has_image else context
        if self._encode is None:
            self._encode = self._default_encoder()
        return self._encode(message)

    def _default_encoder(self) -> Callable[[str], list[int]]:
        """The training side's template and tokenisation (`data.conversation`), so prompts match training."""
        from hydra_repro.data import conversation as data

        template, tokenizer = data.get_template(self._conv_mode), self.tokenizer

        def encode(message: str) -> list[int]:
            return data.tokenizer_image_token(
                data.generation_prompt(message, template, image=False), tokenizer, template
            )

        return encode

    def _pixels(self, visuals: list[list[Any]]) -> Any:
        """One image per prompt (the first; MobileVLM takes one) -> (B, 3, S, S); blanks for text-only prompts."""
        from hydra_repro.model.vlm import process_images

        present = [v[0] for v in visuals if v]
        if not present:
            return None
        pixels = process_images(present, self.image_processor)
        if len(present) == len(visuals):
            return pixels
        out = pixels.new_zeros((len(visuals), *pixels.shape[1:]))
        out[[i for i, v in enumerate(visuals) if v]] = pixels
        return out

    # -- lmms-eval API ------------------------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy answers for `requests`, in their order. Each `req.args` is
        (context, gen_kwargs, doc_to_visual, doc_id, task, split)."""
        jobs = []
        for i, req in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
            jobs.append((i, context, dict(gen_kwargs or {}), visuals))
        return self._generate_jobs(jobs, len(requests))

    def _generate_jobs(self, jobs: list[tuple[int, str, dict[str, Any], list[Any]]], n: int) -> list[str]:
        groups: dict[str, list[tuple[int, list[int], dict[str, Any], list[Any]]]] = defaultdict(list)
        for i, context, gen_kwargs, visuals in jobs:
            key = json.dumps(gen_kwargs, sort_keys=True, default=str)
            groups[key].append((i, self.encode(context, bool(visuals)), gen_kwargs, visuals))
        outputs: list[str | None] = [None] * n
        bs = self.batch_size
        pbar = tqdm(total=len(jobs), disable=self.rank != 0 or len(jobs) < 2 * bs, desc="hydra_vlm")
        for group in groups.values():
            group.sort(key=lambda job: -len(job[1]))  # longest first: similar lengths share a batch
            gen_kwargs = group[0][2]
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
            if self.max_new_tokens_cap is not None:
                max_new = min(max_new, self.max_new_tokens_cap)
            for start in range(0, len(group), bs):
                batch = group[start : start + bs]
                new_ids = self.model.generate_batch(
                    [job[1] for job in batch], self._pixels([job[3] for job in batch]), max_new_tokens=max_new
                )
                for job, ids in zip(batch, new_ids, strict=True):
                    self.generated_tokens += len(ids)
                    outputs[job[0]] = cut_at_stops(self.tokenizer.decode(ids, skip_special_tokens=True), until)
                pbar.update(len(batch))
        pbar.close()
        return [o if o is not None else "" for o in outputs]

    def generate_until_multi_round(self, requests: list[Instance]) -> list[tuple[str, ...]]:
        """Multi-round protocol: round 0 from the context; then `doc_to_text(doc, previous_output=..., round_idx=r,
        previous_round_info=...)` returns (visuals, context, terminal, round outputs, info) until `terminal`.
        Rounds run one request at a time (none of the six tasks uses this path)."""
        results = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = req.args
            doc = self.task_dict[task][split][doc_id]
            visuals = doc_to_visual(doc) or []
            rounds: list[str] = []
            info, round_idx = None, 0
            while True:
                rounds.append(self._generate_jobs([(0, context, dict(gen_kwargs or {}), visuals)], 1)[0])
                round_idx += 1
                new_visuals, context, terminal, round_res, info = doc_to_text(
                    doc, previous_output=list(rounds), round_idx=round_idx, previous_round_info=info
                )
                if round_res is not None:
                    rounds = list(round_res)
                if terminal:
                    break
                visuals = new_visuals if new_visuals is not None else visuals
            results.append(tuple(rounds))
        return results

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "hydra_vlm scores by generation only: the six benchmarks are generate_until tasks, and multiple choice "
            "through loglikelihood is broken in lmms-eval 0.7.3"
        )

    def clean(self) -> None:
        """Keep the model: lmms-eval's default deletes every nn.Module attribute after each evaluation, which
        breaks an instance evaluated again (the benchmark, several task batches). The caller frees the model."""
        gc.collect()
