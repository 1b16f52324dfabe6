"""Every path a verb's help names matches what dvc.yaml passes to it (or writes from it).

Help texts name paths as templates, `runs/<profile>/<run>` or `models/<profile>/small|large`; a stage's command in
dvc.yaml passes concrete ones (`runs/${profile}/${key}`). A help text that names a path the pipeline never uses
misleads whoever runs a verb by hand.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex

import pytest
import yaml

from hydra_repro.cli import VERBS
from tests.importgraph import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
SAMPLE = {"profile": "mini", "item": "small", "item.model": "small", "key": "lora_small"}


def concrete(path: str) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: SAMPLE[m.group(1)], path)


def templates(text: str) -> list[str]:
    """Path templates in a help text: tokens with a slash and a <placeholder> or a|b choice."""
    return [t.rstrip("/.,") for t in re.findall(r"[\w.<>|-]+(?:/[\w.<>|-]+)+/?", text or "") if "<" in t or "|" in t]


def matches(template: str, path: str) -> bool:
    parts = []
    for seg in template.split("/"):
        seg = re.escape(seg)
        seg = re.sub(r"<[^>]+>", "[^/]+", seg)
        parts.append(f"(?:{seg.replace(chr(92) + '|', '|')})")
    return re.fullmatch("/".join(parts), path.rstrip("/")) is not None


def parser_for(verb: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    importlib.import_module(VERBS[verb][0]).add_arguments(parser)
    return parser


def stage_calls() -> list[tuple[str, str, dict[str, list[str]], list[str]]]:
    """(stage, verb, option or positional -> values, outs) for every stage that runs a verb."""
    calls = []
    for name, stage in STAGES.items():
        body = stage.get("do", stage)
        # a foreach stage's ${item} / ${key} become SAMPLE's values before parsing (a verb may restrict --role)
        words = [concrete(w) for w in shlex.split(" ".join(str(body["cmd"]).split()))]
        verb = words[words.index("hydra-repro") + 1]
        parser = parser_for(verb)
        args = vars(parser.parse_args(words[words.index("hydra-repro") + 2 :]))
        values: dict[str, list[str]] = {}
        for action in parser._actions:
            value = args.get(action.dest)
            if value is not None and not isinstance(value, bool):
                values[action.dest] = [str(v) for v in (value if isinstance(value, list) else [value])]
        outs = [next(iter(o)) if isinstance(o, dict) else str(o) for o in body.get("outs", [])]
        calls.append((name, verb, values, outs))
    return calls


CALLS = stage_calls()


@pytest.mark.parametrize("stage, verb, values, outs", CALLS, ids=[c[0] for c in CALLS])
def test_option_help_names_the_paths_the_pipeline_passes(stage, verb, values, outs) -> None:
    parser = parser_for(verb)
    for action in parser._actions:
        if action.dest not in values:
            continue
        named = templates(action.help)
        for value in values[action.dest]:
            path = concrete(value)
            if "/" not in path or not named:
                continue
            assert any(matches(t, path) for t in named), (
                f"stage {stage}: {'/'.join(action.option_strings) or action.dest} gets {value!r}, "
                f"but its help names {named}"
            )


@pytest.mark.parametrize("verb", sorted({c[1] for c in CALLS}))
def test_verb_description_names_paths_its_stages_write(verb) -> None:
    outs = [concrete(o) for _, v, _, stage_outs in CALLS if v == verb for o in stage_outs]
    for template in templates(VERBS[verb][1]):
        assert any(matches(template, o) for o in outs), f"hydra-repro {verb}: {template} is not among {outs}"


def test_the_matcher_rejects_a_wrong_path() -> None:
    assert matches("models/<profile>/small|large", "models/mini/large")
    assert not matches("models/<profile>/base", "models/mini/small")
    assert not matches("results/runs/<run>.json", "results/mini/runs/lora_small.json")
