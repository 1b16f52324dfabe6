"""Atomic writes: a crash never leaves a half-written result behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing or malformed file is a UserError naming it."""
    from hydra_repro.errors import UserError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (expected a {what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}); expected a {what}") from None


def json_text(obj: Any, sort_keys: bool = False) -> str:
    """The one JSON layout of every file this project writes: 2-space indent, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> None:
    atomic_write_text(path, json_text(obj, sort_keys))


def write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> None:
    """A JSON file inside a directory that `atomic_dir` publishes as a whole (no rename of its own needed)."""
    Path(path).write_text(json_text(obj, sort_keys), encoding="utf-8")


def write_jsonl(path: str | os.PathLike, rows: list[Any]) -> None:
    """One JSON object per line (training logs), inside a directory that `atomic_dir` publishes."""
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The JSON in `path`, or None when it is missing or torn (a work directory left by a crash)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (checkpoints and wheels do not fit comfortably in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` (old content removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
