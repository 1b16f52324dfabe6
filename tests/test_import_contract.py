"""The import contract: no cycles, a torch-free core and configuration, and stage modules used by nobody else.

A stage module is the module of a CLI verb (`cli.VERBS`): argument parsing plus the stage's work. Library code
must not import one, or the stage's DVC deps grow and its module cannot change without re-running other stages.
The imports of stage modules that remain are listed in KNOWN_STAGE_IMPORTS; the test fails on any new one, and
on a listed one that is gone (so that the list only shrinks).
"""

from __future__ import annotations

import ast

from hydra_repro.cli import VERBS
from tests.importgraph import all_modules, closure, direct_imports, module_file

STAGES = {module for module, _ in VERBS.values()}
KNOWN_STAGE_IMPORTS = {
    ("hydra_repro.lmms_model", "hydra_repro.train"),  # load_run
    ("hydra_repro.gradnorm", "hydra_repro.train"),
    ("hydra_repro.replicate", "hydra_repro.evaluate"),
    ("hydra_repro.replicate", "hydra_repro.train"),
    ("hydra_repro.search", "hydra_repro.allocate_cli"),
    ("hydra_repro.search", "hydra_repro.evaluate"),
    ("hydra_repro.search", "hydra_repro.perfmodel"),
    ("hydra_repro.search", "hydra_repro.train"),
    ("hydra_repro.tables", "hydra_repro.replicate"),
}
# the pure parts: read, tested and property-checked without torch
TORCH_FREE = (
    "hydra_repro.allocation",
    "hydra_repro.schedule",
    "hydra_repro.registry",
    "hydra_repro.stats",
    "hydra_repro.config.validate",
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


def test_no_new_imports_of_stage_modules() -> None:
    found = {(m, s) for m, imports in project_graph().items() for s in imports & STAGES if m != "hydra_repro.cli"}
    assert found - KNOWN_STAGE_IMPORTS == set(), f"new imports of a stage module: {sorted(found - KNOWN_STAGE_IMPORTS)}"
    assert KNOWN_STAGE_IMPORTS - found == set(), f"gone, drop from the list: {sorted(KNOWN_STAGE_IMPORTS - found)}"


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
