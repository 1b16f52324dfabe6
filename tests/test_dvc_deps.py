"""dvc.yaml's deps match the code: every stage lists every project module that its verb imports, transitively.

A module missing from a stage's deps means that editing it re-runs nothing, and DVC's cache then serves results
of old code. The closure is read from the source (tests/importgraph.py), so this test fails the day a stage's
verb starts importing a module that dvc.yaml does not list.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hydra_repro.cli import VERBS
from tests.importgraph import ROOT, closure, module_file

DVC_YAML = ROOT / "dvc.yaml"
# what runs every verb: the entry point chooses the verb's module
ENTRY = "hydra_repro.cli"


def stages(text: str) -> dict[str, dict]:
    return yaml.safe_load(text)["stages"]


def verb_of(stage: dict) -> str:
    body = stage.get("do", stage)
    match = re.search(r"hydra-repro\s+([\w-]+)", " ".join(str(body["cmd"]).split()))
    assert match, f"stage command {body['cmd']!r} does not run a hydra-repro verb"
    return match.group(1)


def required_files(verb: str) -> set[str]:
    modules = closure(VERBS[verb][0]) | closure(ENTRY)
    return {module_file(m).relative_to(ROOT).as_posix() for m in modules}


def missing_deps(stage: dict, verb: str) -> list[str]:
    deps = [str(d).split("#")[0].strip().rstrip("/") for d in stage.get("do", stage).get("deps", [])]
    return sorted(f for f in required_files(verb) if not any(f == d or f.startswith(d + "/") for d in deps))


def check(text: str) -> list[str]:
    problems = []
    for name, stage in stages(text).items():
        verb = verb_of(stage)
        problems += [f"stage {name!r} (hydra-repro {verb}): deps lack {f}" for f in missing_deps(stage, verb)]
    return problems


def test_every_stage_depends_on_its_verbs_import_closure() -> None:
    problems = check(DVC_YAML.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def test_a_stage_missing_a_module_is_named() -> None:
    text = DVC_YAML.read_text(encoding="utf-8")
    dropped = text.replace("      - hydra_repro/schedule.py\n", "", 1)
    assert dropped != text, "dvc.yaml lists hydra_repro/schedule.py nowhere"
    problems = check(dropped)
    assert problems and all("hydra_repro/schedule.py" in p for p in problems)


@pytest.mark.parametrize("verb", sorted(v for v in VERBS if v != "repro"))
def test_every_verb_has_a_stage_and_imports_only_project_files_that_exist(verb: str) -> None:
    files = required_files(verb)
    assert all((ROOT / f).is_file() for f in files)
    assert verb in {verb_of(s) for s in stages(DVC_YAML.read_text(encoding="utf-8")).values()}


def test_the_closure_sees_lazy_imports() -> None:
    # train imports modeling inside functions (torch is heavy); the closure must still see it
    assert "hydra_repro/modeling.py" in required_files("train")
    assert "hydra_repro/schedule.py" in required_files("train")
    assert Path(module_file("hydra_repro.tasks")).name == "__init__.py"
