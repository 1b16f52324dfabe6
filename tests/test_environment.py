"""The installed environment is the locked one, and everything a stage imports imports.

A broken transitive dependency (filelock 4 removed `filelock._api`, which lmms-eval 0.7.3's evaluator imports)
fails here in seconds, not after minutes of pipeline.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re

import pytest

from hydra_repro.cli import VERBS
from hydra_repro.provenance import LOCK_FILE, lock_sha256, provenance
from hydra_repro.tasks import MINI_TASKS, TEMPLATE_DIR, resolve_task_yamls
from tests.importgraph import all_modules


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", LOCK_FILE.read_text(encoding="utf-8"), flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_installed_versions_are_the_locked_ones() -> None:
    pins = locked()
    assert {"torch", "transformers", "peft", "lmms-eval", "dvc", "filelock"} <= pins.keys()
    wrong = {}
    for name, version in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong[name] = (version, None)
            continue
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed != requirements.lock (locked, installed): {wrong}; run `bash scripts/install`"


@pytest.mark.parametrize("module", [m for m in all_modules() if not m.endswith("__main__")])  # that one runs the CLI
def test_every_project_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_every_verb_module_is_a_project_module() -> None:
    assert {m for m, _ in VERBS.values()} <= set(all_modules())


def test_lmms_eval_evaluator_and_task_loading_import(tmp_path) -> None:
    evaluator = importlib.import_module("lmms_eval.evaluator")
    # what every evaluation runs first; it imports filelock._api, which filelock 4 removed
    evaluator._enable_reentrant_filelocks()
    from lmms_eval.tasks import TaskManager

    resolved = resolve_task_yamls(TEMPLATE_DIR, tmp_path / "eval", tmp_path / "tasks")
    manager = TaskManager(verbosity="ERROR", include_path=str(resolved), include_defaults=False)
    assert set(MINI_TASKS.values()) <= set(manager.all_tasks)


def test_provenance_records_the_lock_hash() -> None:
    digest = lock_sha256()
    assert digest is not None and len(digest) == 64
    assert provenance()["lock_sha256"] == digest


def test_a_bare_sentencepiece_tokenizer_loads(tmp_path) -> None:
    """MobileLLaMA ships only `tokenizer.model`: transformers converts it with sentencepiece's protobuf code, which
    fails when the protobuf runtime is older than that code (sentencepiece 0.2.3 with protobuf 6)."""
    from transformers import AutoTokenizer

    from tests.fakes import sentencepiece_hub

    hub = sentencepiece_hub(tmp_path)  # the hub layout: the SentencePiece model and a config, no tokenizer.json
    tokenizer = AutoTokenizer.from_pretrained(str(hub))
    ids = tokenizer("red green")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "red green" and tokenizer.unk_token_id not in ids
