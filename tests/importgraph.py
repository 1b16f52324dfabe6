"""The project's import graph, read from the source (AST), for the DVC-deps and import-contract tests.

Every import counts, top-level or inside a function (the verbs import torch-heavy modules lazily), and so do
`importlib.import_module("hydra_repro...")` calls with a literal name. Importing `hydra_repro.a.b` runs the
`__init__.py` of every package on the way, so those count too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hydra_repro"


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of module `name` (a .py file or a package's __init__.py), or None outside the project."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@functools.cache
def direct_imports(path: Path, root: Path = ROOT) -> frozenset[str]:
    """Project modules imported anywhere in the file at `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    found = set()
    for name in names:
        for candidate in _with_parents(name):
            if module_file(candidate, root) is not None:
                found.add(candidate)
    return frozenset(found)


def closure(module: str, root: Path = ROOT) -> set[str]:
    """`module` and every project module it imports, transitively (package __init__ files included)."""
    seen: set[str] = set()
    todo = [m for m in _with_parents(module) if module_file(m, root) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(module_file(name, root), root) - seen)
    return seen


def all_modules(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out
