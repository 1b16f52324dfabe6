"""dvc.yaml's deps match the code: every stage lists every project module that its verb imports, transitively.

A module missing from a stage's deps means that editing it re-runs nothing, and DVC's cache then serves results
of old code; a module listed that the verb does not import re-runs the stage for nothing. The closure is read from
the source (tests/importgraph.py), so this test fails the day a stage's verb starts importing a module that
dvc.yaml does not list. After moving code, rewrite the deps from the closure with:

    python -m tests.test_dvc_deps --write
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml

from hydra_repro.cli import VERBS
from tests.importgraph import PACKAGE, ROOT, closure, module_file

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


@functools.cache
def required_files(verb: str) -> frozenset[str]:
    modules = closure(VERBS[verb][0]) | closure(ENTRY)
    return frozenset(module_file(m).relative_to(ROOT).as_posix() for m in modules)


@functools.cache
def dep_entries(verb: str) -> tuple[str, ...]:
    """The project deps a stage of `verb` lists: its closure's files, the task package as one folder (its YAML
    templates are data)."""
    tasks = f"{PACKAGE}/tasks"
    return tuple(sorted({tasks if f.startswith(tasks + "/") else f for f in required_files(verb)}))


def missing_deps(stage: dict, verb: str) -> list[str]:
    deps = [str(d).split("#")[0].strip().rstrip("/") for d in stage.get("do", stage).get("deps", [])]
    return sorted(f for f in required_files(verb) if not any(f == d or f.startswith(d + "/") for d in deps))


def extra_deps(stage: dict, verb: str) -> list[str]:
    deps = [str(d).split("#")[0].strip().rstrip("/") for d in stage.get("do", stage).get("deps", [])]
    return sorted(d for d in deps if d.startswith(f"{PACKAGE}/") and d not in dep_entries(verb))


def check(text: str) -> list[str]:
    problems = []
    for name, stage in stages(text).items():
        verb = verb_of(stage)
        where = f"stage {name!r} (hydra-repro {verb})"
        problems += [f"{where}: deps lack {f}" for f in missing_deps(stage, verb)]
        problems += [f"{where}: deps list {f}, which it does not import" for f in extra_deps(stage, verb)]
    return problems


def write_deps(text: str) -> str:
    """`text` (dvc.yaml) with each stage's project deps replaced by its verb's closure, in place of the old ones."""
    all_stages = stages(text)
    out, current, done = [], None, False
    for line in text.splitlines(keepends=True):
        header = re.match(r"^  (\w+):\s*$", line)
        if header and header.group(1) in all_stages:
            current, done = header.group(1), False
        dep = re.match(rf"^(\s+)- {PACKAGE}/", line)
        if dep and current is not None:
            if not done:
                out += [f"{dep.group(1)}- {f}\n" for f in dep_entries(verb_of(all_stages[current]))]
                done = True
            continue
        out.append(line)
    return "".join(out)


def test_every_stage_depends_on_its_verbs_import_closure() -> None:
    problems = check(DVC_YAML.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def test_a_stage_missing_a_module_is_named() -> None:
    text = DVC_YAML.read_text(encoding="utf-8")
    dropped = text.replace("      - hydra_repro/core/schedule.py\n", "", 1)
    assert dropped != text, "dvc.yaml lists hydra_repro/core/schedule.py nowhere"
    problems = check(dropped)
    assert problems and all("hydra_repro/core/schedule.py" in p for p in problems)


@pytest.mark.parametrize("verb", sorted(v for v in VERBS if v != "repro"))
def test_every_verb_has_a_stage_and_imports_only_project_files_that_exist(verb: str) -> None:
    files = required_files(verb)
    assert all((ROOT / f).is_file() for f in files)
    assert verb in {verb_of(s) for s in stages(DVC_YAML.read_text(encoding="utf-8")).values()}


def test_the_closure_sees_lazy_imports() -> None:
    # train imports modeling inside functions (torch is heavy); the closure must still see it
    assert "hydra_repro/model/vlm.py" in required_files("train")
    assert "hydra_repro/core/schedule.py" in required_files("train")
    assert Path(module_file("hydra_repro.tasks")).name == "__init__.py"


def test_the_writer_produces_what_the_check_accepts() -> None:
    text = DVC_YAML.read_text(encoding="utf-8")
    broken = text.replace("      - hydra_repro/core/schedule.py\n", "", 1).replace(
        "      - hydra_repro/cli.py\n", "      - hydra_repro/cli.py\n      - hydra_repro/no_such_module.py\n", 1
    )
    assert check(broken)
    assert check(write_deps(broken)) == []


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_dvc_deps --write   (rewrites dvc.yaml's project deps)")
    DVC_YAML.write_text(write_deps(DVC_YAML.read_text(encoding="utf-8")), encoding="utf-8")
    print("\n".join(check(DVC_YAML.read_text(encoding="utf-8"))) or "dvc.yaml: every stage's deps match its verb")
