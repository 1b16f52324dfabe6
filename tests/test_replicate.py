"""`hydra-repro replicate`: which seeds it trains, with which commands, and what it records (train / evaluate faked)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import time
from pathlib import Path

import pytest

from hydra_repro.config.validate import profile_seeds
from hydra_repro.errors import UserError
from hydra_repro.stages import evaluate, replicate, train

REPO = Path(__file__).resolve().parents[1]


def write_params(path: Path, seeds) -> Path:
    path.write_text(f"profile: mini\nprofiles:\n  mini:\n    seeds: {seeds}\n    train: {{seed: 42}}\n")
    return path


def args_for(tmp: Path, params: Path, plan: dict) -> argparse.Namespace:
    (tmp / "plan.json").write_text(json.dumps(plan))
    parser = argparse.ArgumentParser()
    replicate.add_arguments(parser)
    argv = ["--params", str(params), "--run", "lora_small", "--plan", str(tmp / "plan.json"), "--base", "models/b"]
    argv += ["--data", "d/train.json", "--data-dir", "d", "--out", str(tmp / "runs"), "--results", str(tmp / "res")]
    return parser.parse_args(argv)


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple[str, argparse.Namespace]] = []

    def fake_train(args):
        seen.append(("train", args))
        args.out.mkdir(parents=True)
        return 0

    def fake_evaluate(args):
        seen.append(("evaluate", args))
        run = Path(args.runs[0])
        (Path(args.results_dir) / f"{run.name}.json").write_text("{}")
        return 0

    monkeypatch.setattr(train, "run", fake_train)
    monkeypatch.setattr(evaluate, "run", fake_evaluate)
    return seen


def test_three_seeds_train_and_evaluate_the_two_others(tmp_path, calls):
    args = args_for(tmp_path, write_params(tmp_path / "p.yaml", 3), {"run": "lora_small", "method": "lora"})
    summary = replicate.replicate(args)
    assert summary["seeds"] == [42, 43, 44] and summary["replicates"] == {
        "43": "lora_small_s43.json",
        "44": "lora_small_s44.json",
    }
    trains = [a for kind, a in calls if kind == "train"]
    assert [a.seed for a in trains] == [43, 44] and all(a.run == "lora_small" for a in trains)
    assert [a.out.name for a in trains] == ["lora_small_s43", "lora_small_s44"]
    assert all(str(a.plan).endswith("plan.json") for a in trains)  # the run's own plan: same allocation
    assert [Path(a.runs[0]).name for kind, a in calls if kind == "evaluate"] == ["lora_small_s43", "lora_small_s44"]
    assert json.loads((tmp_path / "res" / "seeds.json").read_text()) == summary


def test_one_seed_trains_nothing(tmp_path, calls):
    summary = replicate.replicate(
        args_for(tmp_path, write_params(tmp_path / "p.yaml", 1), {"run": "x", "method": "lora"})
    )
    assert calls == [] and summary["replicates"] == {} and summary["seeds"] == [42]


def test_infeasible_runs_replicate_nothing(tmp_path, calls):
    plan = {"run": "lora_small", "infeasible": "budget"}
    summary = replicate.replicate(args_for(tmp_path, write_params(tmp_path / "p.yaml", 3), plan))
    assert calls == [] and summary["seeds"] == [] and summary["reason"] == "budget"


@pytest.mark.parametrize("bad", [0, "3", True, -1])
def test_bad_seed_counts_name_the_key(tmp_path, bad):
    with pytest.raises(UserError, match=r"profiles\.mini\.seeds: got"):
        profile_seeds({"seeds": bad}, "profiles.mini")


def test_a_failed_evaluation_stops_with_the_replicate_named(tmp_path, calls, monkeypatch):
    monkeypatch.setattr(evaluate, "run", lambda args: 1)
    with pytest.raises(UserError, match="replicate lora_small_s43: evaluation failed"):
        replicate.replicate(args_for(tmp_path, write_params(tmp_path / "p.yaml", 2), {"run": "l", "method": "lora"}))
    assert not (tmp_path / "res" / "seeds.json").exists()


def test_jobs_auto_fills_the_cores_only_when_threads_are_pinned(monkeypatch):
    monkeypatch.setattr(replicate.os, "sched_getaffinity", lambda pid: {0, 1})
    assert replicate.resolve_jobs("auto", 1) == 2 and replicate.resolve_jobs("auto", 2) == 1
    assert replicate.resolve_jobs("auto", None) == 1  # torch's default threads (a GPU profile): one at a time
    assert replicate.resolve_jobs("3", 1) == 3


@pytest.mark.parametrize("bad", ["0", "two", "-1", ""])
def test_bad_jobs_name_the_flag(bad):
    with pytest.raises(UserError, match=rf"--jobs: got '{bad}'; expected 'auto' or an integer >= 1"):
        replicate.resolve_jobs(bad, 1)


def test_a_failed_parallel_seed_names_the_seed_and_shows_its_log(tmp_path):
    # two real worker processes; the training of each fails at once on a plan that does not exist
    bad = ["--params", str(REPO / "params.yaml"), "--profile", "smoke", "--run", "lora_small", "--plan"]
    bad += [str(tmp_path / "missing.json"), "--base", "b", "--data", "d", "--out", str(tmp_path / "o")]
    jobs = [(f"lora_small_s{s}", [*bad, "--seed", str(s)], []) for s in (43, 44)]
    failed = r"(?s)replicate lora_small_s4[34] failed \(exit status 1\): .*missing\.json.*last lines of"
    with pytest.raises(UserError, match=failed) as err:
        replicate.run_parallel(jobs, 2, tmp_path)
    seed = re.search(r"lora_small_s4[34]", str(err.value)).group()
    assert "missing.json" in (tmp_path / f"{seed}.log").read_text()


def sleep_or_fail(name, train_argv, eval_argv, log):
    """A worker target for the test below: `slow` marks its start, sleeps, then marks its end; others fail."""
    Path(log).write_text(f"{name} started\n")
    if name != "slow":
        raise RuntimeError(f"{name} broke")
    Path(train_argv[0]).write_text("started")
    time.sleep(600)
    Path(train_argv[1]).write_text("finished")


def test_the_first_failure_stops_the_other_seeds(tmp_path):
    started, finished = tmp_path / "started", tmp_path / "finished"
    jobs = [("slow", [str(started), str(finished)], []), ("s44", [], []), ("s45", [], [])]
    with pytest.raises(UserError, match=r"replicate s44 failed \(exit status 1\)"):
        replicate.run_parallel(jobs, 2, tmp_path, target=sleep_or_fail)
    assert multiprocessing.active_children() == []  # the sleeping seed was stopped, not waited for
    assert not finished.exists()
    assert not (tmp_path / "s45.log").exists()  # the queued seed never started
