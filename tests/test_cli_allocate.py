"""`hydra-repro allocate`: the CLI contract other tools rely on (JSON keys, exit status 2 with one line)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hydra_repro.constants import COMPONENTS

CONFIG4_NORMS = [0.2] * 8 + [0.6] * 4 + [1.4] * 12


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hydra_repro", "allocate", *args], capture_output=True, text=True)


@pytest.fixture
def norms_file(tmp_path):
    p = tmp_path / "norms.json"
    p.write_text(json.dumps(CONFIG4_NORMS))
    return p


def test_contract_keys_and_values(norms_file):
    out = run_cli(
        "--grad-norms",
        str(norms_file),
        "--stages",
        "3",
        "--r-standard",
        "128",
        "--delta-d",
        "2",
        "--rule",
        "table",
        "--setting",
        "setting1",
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["stage_of_layer"] == [0] * 8 + [1] * 4 + [2] * 12
    assert d["stage_ranks"] == [124, 126, 131]
    assert len(d["ranks"]) == 24 and all(set(layer) == set(COMPONENTS) for layer in d["ranks"])
    assert d["ranks"][23]["up_proj"] == 133 and d["ranks"][23]["q_proj"] == 129
    assert d["budget_params"] == 121_110_528
    assert d["trainable_params"] < d["budget_params"]


def test_model_dims_and_gradnorm_object(tmp_path):
    norms = tmp_path / "g.json"
    norms.write_text(json.dumps({"layer_norms": [0.1, 0.2, 0.3, 0.4]}))
    dims = tmp_path / "dims.json"
    dims.write_text(
        json.dumps({"hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 4, "num_key_value_heads": 4})
    )
    out = run_cli(
        "--grad-norms", str(norms), "--stages", "1", "--r-standard", "8", "--delta-d", "1", "--model-dims", str(dims)
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["trainable_params"] == d["budget_params"] == 8 * 4 * (4 * 128 + 3 * 236)


@pytest.mark.parametrize(
    "content, args, needle",
    [
        ("[1, 2, 3]", ["--stages", "0"], "--stages: got 0"),
        ("[1, 2, 3]", ["--stages", "4"], "--stages: got 4"),
        ("[1, 2, 3]", ["--delta-d", "0"], "--delta-d: got 0"),
        ("[1, 2, 3]", ["--r-standard", "0"], "--r-standard: got 0"),
        ("[1, NaN, 3]", [], "layer 2 has norm nan"),
        ("[1, -2, 3]", [], "layer 2 has norm -2.0"),
        ('[1, "x", 3]', [], "layer 2 is 'x'"),
        ("{not json", [], "not valid JSON"),
        ("[]", [], "non-empty JSON list"),
        ("[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]", ["--stages", "8", "--r-standard", "4"], "budget"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, content, args, needle):
    p = tmp_path / "norms.json"
    p.write_text(content)
    base = {"--stages": "2", "--r-standard": "16", "--delta-d": "2"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    out = run_cli("--grad-norms", str(p), *[x for kv in base.items() for x in kv])
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert needle in out.stderr


def test_missing_file(tmp_path):
    out = run_cli("--grad-norms", str(tmp_path / "nope.json"), "--stages", "2", "--r-standard", "8", "--delta-d", "1")
    assert out.returncode == 2 and "not found" in out.stderr and "Traceback" not in out.stderr
