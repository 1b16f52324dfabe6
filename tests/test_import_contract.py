"""The import contract: no cycles, a torch-free core and configuration, and stage modules used by nobody else.

A stage module (`hydra_repro/stages/`, one per CLI verb in `cli.VERBS`) parses its verb's arguments and calls the
library. Library code must not import a stage module: the stage's DVC deps would grow, and the stage could not change
without re-running others. The one stage that composes other stages is `replicate`, which runs the `train` and
`evaluate` verbs with their own arguments for each extra seed (STAGE_COMPOSITION).
"""

from __future__ import annotations

import ast

from hydra_repro.cli import VERBS
from tests.importgraph import all_modules, closure, direct_imports, module_file

STAGES = {module for module, _ in VERBS.values()}
STAGE_COMPOSITION = {
    ("hydra_repro.stages.replicate", "hydra_repro.stages.evaluate"),
    ("hydra_repro.stages.replicate", "hydra_repro.stages.train"),
}
# the pure parts: read, tested and property-checked without torch
TORCH_FREE = (
    "hydra_repro.core.allocation",
    "hydra_repro.core.schedule",
    "hydra_repro.core.registry",
    "hydra_repro.core.stats",
    "hydra_repro.core.scoring",
    "hydra_repro.core.readers",
    "hydra_repro.config.validate",
    "hydra_repro.stages.allocate",
)
HEAVY = {"torch", "transformers", "peft", "lmms_eval", "accelerate"}


def project_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, without the parent packages every import runs."""
    graph = {}
    for module in all_modules():
        parents = {module.rsplit(".", k)[0] for k in range(1, module.count(".") + 1)}
        graph[module] = set(direct_imports(module_file(module))) - parents - {module}
    return graph


def third_party(module: str) -> set[str]:
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_import_cycles() -> None:
    graph = project_graph()
    cycles = []
    for module in graph:
        todo, seen = list(graph[module]), set()
        while todo:
            other = todo.pop()
            if other == module:
                cycles.append(module)
                break
            if other not in seen:
                seen.add(other)
                todo.extend(graph.get(other, ()))
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"


def test_core_and_configuration_are_torch_free() -> None:
    for root in TORCH_FREE:
        heavy = {m: third_party(m) & HEAVY for m in closure(root)}
        assert not any(heavy.values()), f"{root} reaches {[(m, sorted(h)) for m, h in heavy.items() if h]}"


def test_every_verb_is_a_stage_module() -> None:
    assert all(m.startswith("hydra_repro.stages.") for m in STAGES)
    assert STAGES == {m for m in all_modules() if m.startswith("hydra_repro.stages.")}


def stage_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(m, s) for m, imports in graph.items() for s in imports & STAGES if m != "hydra_repro.cli"}


def test_no_library_module_imports_a_stage() -> None:
    found = stage_imports(project_graph())
    assert found - STAGE_COMPOSITION == set(), f"imports of a stage module: {sorted(found - STAGE_COMPOSITION)}"


def test_the_stage_check_sees_a_library_importing_a_stage() -> None:
    graph = project_graph()
    graph["hydra_repro.report.inputs"] = graph["hydra_repro.report.inputs"] | {"hydra_repro.stages.replicate"}
    assert ("hydra_repro.report.inputs", "hydra_repro.stages.replicate") in stage_imports(graph) - STAGE_COMPOSITION


def test_the_cycle_check_sees_a_cycle(monkeypatch) -> None:
    import tests.test_import_contract as me

    graph = project_graph()
    graph["hydra_repro.errors"] = {"hydra_repro.config"}  # config imports errors: a cycle
    monkeypatch.setattr(me, "project_graph", lambda: graph)
    try:
        test_no_import_cycles()
    except AssertionError as e:
        assert "hydra_repro.errors" in str(e)
    else:
        raise AssertionError("the cycle check missed errors <-> config")
