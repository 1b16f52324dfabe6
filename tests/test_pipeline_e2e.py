"""End to end: the smoke profile through `hydra-repro repro` (DVC stages side by side, then a plain `dvc repro`
that must find nothing left) in a fresh copy of the repository (slow: minutes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.split("\0") if f and (REPO / f).exists()]


def copy_tracked(root: Path) -> None:
    """The repository's tracked files under `root`, without the committed (mini) dvc.lock."""
    for rel in tracked_files():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    (root / "dvc.lock").unlink(missing_ok=True)


def git_commit_all(root: Path, env: dict[str, str]) -> None:
    """Make `root` its own git repository with everything committed (DVC needs one)."""
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(cmd, cwd=root, check=True, env=env)


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> Path:
    """A copy of the tracked files with its own git repository, the smoke profile selected, the pipeline run."""
    root = tmp_path_factory.mktemp("e2e") / "repo"
    copy_tracked(root)
    for generated in (root / "tables").glob("table_*"):
        generated.unlink()
    params = root / "params.yaml"
    params.write_text(re.sub(r"(?m)^profile: \w+", "profile: smoke", params.read_text()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", DVC_NO_ANALYTICS="1")
    git_commit_all(root, env)
    out = subprocess.run(["hydra-repro", "repro", "--jobs", "2"], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root


def test_every_table_and_figure_appears(smoke_repo):
    for n in [*range(1, 9), "search", "controls"]:
        for ext in ("md", "tex"):
            assert (smoke_repo / "tables" / f"table_{n}.{ext}").is_file(), f"table_{n}.{ext}"
    for fig in ("fig_3.png", "fig_6.png"):
        assert (smoke_repo / "tables" / fig).stat().st_size > 1000
    claims = (smoke_repo / "tables" / "claims.md").read_text()
    from hydra_repro.report import claims_stated as cs

    # + Setting1-best, stage count; + one search row (smoke records no search)
    stated = len(cs.STATED) + 2 + len(cs.HEADLINE_GAINS) + 1
    assert claims.split("## Evidence")[1].count("| **") == 9 + stated, claims
    # the search and the performance model either ran or recorded why not (smoke: on_degenerate record)
    for role in ("small", "large"):
        for name in (f"search/{role}.json", f"perfmodel/{role}.json"):
            assert (smoke_repo / "results" / "smoke" / name).is_file(), name
    for name in ("smol/gradnorm.json",):
        assert (smoke_repo / "results" / "smoke" / name).is_file(), name
    # the smol probe ran on its stand-in (nothing downloaded in smoke) and fills Table I's smol column
    fetch = json.loads((smoke_repo / "models" / "smoke" / "smollm2" / "fetch.json").read_text())
    assert fetch["source"] == "stand-in"
    assert "a random toy stand-in for SmolLM2" in (smoke_repo / "tables" / "table_1.md").read_text()


def test_reproduced_cells_hold_numbers(smoke_repo):
    """Every 'ours' cell of the result tables holds a number (or says infeasible), never a blank."""
    for n in (2, 3, 4, 7, "controls"):
        text = (smoke_repo / "tables" / f"table_{n}.md").read_text()
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()]
        rows = [cells for cells in rows if "ours" in cells]  # the row label cell reads exactly "ours"
        assert rows, f"table_{n}.md has no 'ours' rows"
        for row in rows:
            benchmarks = row[-6:]  # the six benchmark columns
            assert all(re.fullmatch(r"-?\d+\.\d+", c) or "infeasible" in c for c in benchmarks), (n, row)


def test_repro_ran_every_stage_once(smoke_repo):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["dvc", "stage", "list", "--name-only"]
    out = subprocess.run(cmd, cwd=smoke_repo, env=env, capture_output=True, text=True, check=True)
    timings = json.loads((smoke_repo / "logs" / "repro" / "timings.json").read_text())
    assert set(timings["stages"]) == set(out.stdout.split())
    assert all(stage["ran"] for stage in timings["stages"].values())  # a fresh copy: nothing was cached


def test_second_repro_is_a_no_op(smoke_repo):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["dvc", "status"], cwd=smoke_repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0
    assert "changed" not in out.stdout, out.stdout


def test_parallel_replicates_equal_one_at_a_time(smoke_repo, tmp_path):
    """`replicate --jobs 2` (two worker processes) writes byte-identical weights and evaluations to `--jobs 1`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    params = tmp_path / "params.yaml"
    text = (smoke_repo / "params.yaml").read_text()
    params.write_text(re.sub(r"(?m)^(    seeds:) 1\b", r"\1 3", text, count=1))
    outs = {}
    for jobs in ("1", "2"):
        out, res = tmp_path / f"runs{jobs}", tmp_path / f"res{jobs}"
        cmd = ["hydra-repro", "replicate", "--params", str(params), "--profile", "smoke", "--run", "lora_small"]
        cmd += ["--plan", "schedules/smoke/lora_small.json", "--base", "models/smoke/small", "--data"]
        cmd += ["data/smoke/train.json", "--data-dir", "data/smoke", "--out", str(out), "--results", str(res)]
        done = subprocess.run([*cmd, "--jobs", jobs], cwd=smoke_repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        outs[jobs] = (out, res)
    for seed in (43, 44):
        name = f"lora_small_s{seed}"
        a, b = (outs[j][0] / name / "adapter" / "adapter_model.safetensors" for j in ("1", "2"))
        assert a.read_bytes() == b.read_bytes(), name
        ra, rb = (json.loads((outs[j][1] / f"{name}.json").read_text()) for j in ("1", "2"))
        assert all(ra[k] == rb[k] for k in ("headline", "metrics", "samples")), name
    assert (outs["2"][0] / "lora_small_s43.log").stat().st_size > 0


def lock_outs(root: Path) -> dict[str, str]:
    """`stage:out path` -> md5 of every output in `root`'s dvc.lock."""
    import yaml

    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {f"{name}:{o['path']}": o["md5"] for name, st in stages.items() for o in st.get("outs", [])}


def test_another_path_gives_the_same_hashes(smoke_repo, tmp_path_factory):
    """A second copy at another (deeper) path runs the stages up to one training with plain `dvc repro`: every
    output hashes as in the first copy, so DVC's run cache holds across machines and checkouts."""
    root = tmp_path_factory.mktemp("elsewhere") / "a" / "deeper" / "checkout"
    copy_tracked(root)
    shutil.copy2(smoke_repo / "params.yaml", root / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", DVC_NO_ANALYTICS="1")
    git_commit_all(root, env)
    out = subprocess.run(["dvc", "repro", "train@lora_small"], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    here, there = lock_outs(root), lock_outs(smoke_repo)
    assert {
        "prepare:data/smoke",
        "pretrain_vision:models/smoke/vision",
        "train@lora_small:runs/smoke/lora_small",
    } <= set(here)
    assert {k: here[k] for k in here} == {k: there[k] for k in here}


def test_prepare_reproduces_the_committed_hash(tmp_path_factory):
    """`dvc repro prepare` (and the `check` stage before it) of the committed profile in a fresh copy writes exactly
    the data that dvc.lock records."""
    import yaml

    root = tmp_path_factory.mktemp("fresh") / "checkout"
    copy_tracked(root)
    shutil.copy2(REPO / "dvc.lock", root / "dvc.lock")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", DVC_NO_ANALYTICS="1")
    git_commit_all(root, env)
    committed = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["prepare"]
    out = subprocess.run(["dvc", "repro", "prepare"], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    produced = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["prepare"]
    assert produced["outs"] == committed["outs"]
