"""Provenance of every result: package versions, the lock's hash, git commit and dirty flag, hardware, time.

Outputs that later stages read (data, models, adapters) must hash the same on any machine, so the stages that
write them keep this volatile record beside the output, in `<output>.provenance.json` (`write_sidecar`), never
inside it. Result files that only the tables read carry it inline (`provenance()`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "peft", "lmms_eval", "numpy", "hydra-repro")
# the locked environment every command installs from (scripts/lock regenerates it)
LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of `names` (None where a package is absent)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def lock_sha256(path: Path = LOCK_FILE) -> str | None:
    """sha256 of the lock file, or None when the package runs outside a checkout (no lock beside it)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            # this process's peak so far: written after a stage's work, it is the stage's peak
            info["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    except ImportError:
        pass
    return info


def provenance(**extra: Any) -> dict[str, Any]:
    """A dict for result files; `extra` (seed, profile, timings, ...) is merged in."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "packages": versions(),
        "lock_sha256": lock_sha256(),
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "hardware": hardware(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the provenance of `output` (a file or folder) is kept: a sibling, outside the hashed output."""
    output = Path(output)
    return output.with_name(output.name + ".provenance.json")


def write_sidecar(output: str | os.PathLike, **extra: Any) -> Path:
    """Write `provenance(**extra)` to `sidecar_path(output)` atomically; returns that path."""
    from hydra_repro.io import atomic_write_json

    path = sidecar_path(output)
    atomic_write_json(path, provenance(**extra))
    return path
