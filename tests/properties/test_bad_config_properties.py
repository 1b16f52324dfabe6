"""Every verb refuses a broken profile or registry before doing anything (Hypothesis over mutations).

A mutation of a shipped profile (a section deleted or misspelled, a key misspelled, a value of the wrong type or out
of range, the profile renamed) or of the registry must make every verb that reads it exit with status 2 and one
line that names the key, with no traceback and no file written or deleted. The verbs run in-process (`cli.main`),
from an empty working directory, with placeholder paths for their other arguments: validation comes first.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydra_repro.cli import main

REPO = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
REGISTRY = yaml.safe_load((REPO / "experiments" / "runs.yaml").read_text(encoding="utf-8"))
PROFILES = sorted(PARAMS["profiles"])

# verb -> its arguments besides --params (placeholders: validation must stop the verb before it reads them)
VERBS: dict[str, list[str]] = {
    "check": ["--registry", "runs.yaml"],
    "prepare": ["--registry", "runs.yaml"],
    "pretrain-vision": [],
    "pretrain": ["--model", "small"],
    "gradnorm": ["--base", "base", "--data", "train.json", "--out", "gradnorm.json"],
    "allocate": ["--registry", "runs.yaml"],
    "train": ["--base", "base", "--data", "train.json", "--out", "run"],
    "evaluate": ["run"],
    "replicate": ["--run", "lora_small", "--plan", "p.json", "--base", "b", "--data", "d.json", "--data-dir", "d"]
    + ["--out", "o", "--results", "r"],
    "search": [],
    "perfmodel": [],
    "tables": ["--registry", "runs.yaml"],
}
REGISTRY_VERBS = ("check", "prepare", "allocate", "tables")
# (section, key, a value out of its range) for keys every shipped profile has or may have
OUT_OF_RANGE = [
    ("train", "seed", -1),
    ("train", "max_steps", 0),
    ("train", "global_batch_size", 0),
    ("train", "per_device_batch_size", -4),
    ("train", "learning_rate", -1e-4),
    ("train", "learning_rate_scale", 0),
    ("train", "max_length", 0),
    ("pretrain", "steps", 0),
    ("pretrain", "batch_size", 0),
    ("pretrain", "lr", 0),
    ("pretrain", "seed", 2**32),
    ("pretrain_vision", "steps", 0),
    ("pretrain_vision", "batch_size", 0),
    ("gradnorm", "steps", 0),
    ("allocation", "r_standard", 0),
    ("allocation", "stages", 0),
    ("allocation", "delta_d", -1),
    ("evaluate", "batch_size", 0),
    ("data", "seed", -1),
    ("perfmodel", "epochs", 0),
    ("search", "rounds", -1),
]


def _misspell(name: str) -> str:
    return name[:-1] if len(name) > 3 else name + "x"


@st.composite
def profile_mutations(draw) -> tuple[dict, dict, str, str]:
    """(params, registry, the text the message must contain, a description) for one mutated profile."""
    params = copy.deepcopy(PARAMS)
    profile = draw(st.sampled_from(PROFILES))
    params["profile"] = profile
    section = params["profiles"][profile]
    kind = draw(
        st.sampled_from(["delete_section", "misspell_section", "misspell_key", "wrong_type", "range", "rename"])
    )
    nested = draw(st.booleans()) and kind in ("delete_section", "misspell_section", "misspell_key", "wrong_type")
    target = section["smol"] if nested else section
    if kind == "rename":
        new = profile + "_renamed"
        params["profiles"][new] = params["profiles"].pop(profile)
        return params, REGISTRY, "'profile'", f"profiles.{profile} renamed to {new}"
    if kind in ("delete_section", "misspell_section"):
        name = draw(st.sampled_from(sorted(target)))
        value = target.pop(name)
        if kind == "delete_section":
            return params, REGISTRY, f"'{name}'", f"section {name} deleted"
        target[_misspell(name)] = value
        return params, REGISTRY, f"'{_misspell(name)}'", f"section {name} misspelled"
    if kind == "range":
        sec, key, value = draw(st.sampled_from(OUT_OF_RANGE))
        if sec == "evaluate" or isinstance(section[sec], dict):
            section[sec] = {**(section[sec] or {}), key: value}
        return params, REGISTRY, f"{sec}.{key}", f"{sec}.{key} = {value!r}"
    names = sorted(n for n, v in target.items() if isinstance(v, dict) and v and n not in ("models", "smol"))
    name = draw(st.sampled_from(names))
    key = draw(st.sampled_from(sorted(target[name])))
    if kind == "misspell_key":
        target[name][key + "_typo"] = target[name].pop(key)
        return params, REGISTRY, f"'{key}_typo'", f"{name}.{key} misspelled"
    target[name][key] = [["not", "a"], "value"]  # no setting is a list of mixed lists
    return params, REGISTRY, f"{name}.{key}", f"{name}.{key} of the wrong type"


@st.composite
def registry_mutations(draw) -> tuple[dict, dict, str, str]:
    registry = copy.deepcopy(REGISTRY)
    run = draw(st.sampled_from(sorted(registry["runs"])))
    spec = registry["runs"][run]
    kind = draw(st.sampled_from(["unknown_key", "seed", "model", "method"]))
    if kind == "unknown_key":
        spec["sead"] = 1
        return PARAMS, registry, "'sead'", f"runs.{run}.sead"
    if kind == "seed":
        spec["seed"] = -1
        return PARAMS, registry, f"runs.{run}.seed", f"runs.{run}.seed = -1"
    spec[kind] = "nonsense"
    return PARAMS, registry, f"runs.{run}.{kind}", f"runs.{run}.{kind} = 'nonsense'"


def tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def check_verbs(tmp: Path, params: dict, registry: dict, needle: str, what: str, verbs, capsys, monkeypatch) -> None:
    (tmp / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (tmp / "runs.yaml").write_text(yaml.safe_dump(registry), encoding="utf-8")
    monkeypatch.chdir(tmp)
    before = tree(tmp)
    for verb in verbs:
        rc = main([verb, "--params", "params.yaml", *VERBS[verb]])
        err = capsys.readouterr().err
        assert rc == 2, f"{verb} with {what}: exit {rc}\n{err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, f"{verb} with {what}: {err}"
        assert needle in lines[0], f"{verb} with {what}: the message does not name {needle}: {lines[0]}"
        assert tree(tmp) == before, f"{verb} with {what} wrote or deleted files"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=profile_mutations())
def test_a_broken_profile_stops_every_verb_with_one_line(mutation, tmp_path_factory, capsys, monkeypatch) -> None:
    params, registry, needle, what = mutation
    check_verbs(tmp_path_factory.mktemp("cfg"), params, registry, needle, what, VERBS, capsys, monkeypatch)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=registry_mutations())
def test_a_broken_registry_stops_every_verb_that_reads_it(mutation, tmp_path_factory, capsys, monkeypatch) -> None:
    params, registry, needle, what = mutation
    check_verbs(tmp_path_factory.mktemp("reg"), params, registry, needle, what, REGISTRY_VERBS, capsys, monkeypatch)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_the_misspelled_train_section_stops_every_verb(verb, tmp_path, capsys, monkeypatch) -> None:
    params = copy.deepcopy(PARAMS)
    section = params["profiles"][params["profile"]]
    section["trian"] = section.pop("train")
    check_verbs(tmp_path, params, REGISTRY, "'trian'", "train: misspelled trian:", [verb], capsys, monkeypatch)
