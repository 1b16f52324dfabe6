"""benchmarks/information_audit.py: its probe reads a planted linear code and not noise, and the script runs end to
end on a random tiny model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import write_mini_eval_sets, write_random_model

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "information_audit.py"


def load_script():
    spec = importlib.util.spec_from_file_location("information_audit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_reads_a_planted_linear_code_and_not_noise():
    audit = load_script()
    rng = np.random.default_rng(0)
    y = rng.choice(["red", "blue", "green"], size=300)
    code = np.stack([(y == c).astype(float) for c in ("red", "blue", "green")], axis=1)
    planted = np.concatenate([code + 0.1 * rng.normal(size=code.shape), rng.normal(size=(300, 13))], axis=1)
    noise = rng.normal(size=(300, 16))
    assert audit.probe(planted, list(y))["accuracy"] > 95
    got = audit.probe(noise, list(y))
    assert abs(got["accuracy"] - 100 / 3) < 10 and got["classes"] == 3 and got["n"] == 300


@pytest.mark.slow  # a subprocess that imports torch and builds a model: ~25 s
def test_the_audit_runs_on_a_random_tiny_model(tmp_path):
    model = write_random_model(tmp_path / "model")
    write_mini_eval_sets(tmp_path / "data" / "eval", n=24, tasks=["mini_pope", "mini_textvqa"])
    out = tmp_path / "audit.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(model), "--data", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "answer position" in done.stdout and out.is_file()
    assert not list(model.glob("*audit*"))  # nothing written into the model's directory
