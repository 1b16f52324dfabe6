"""`hydra-repro repro`: the graph walk that runs independent DVC stages side by side (fake runner, no DVC)."""

from __future__ import annotations

import threading
import time

import pytest

from hydra_repro.errors import UserError
from hydra_repro.stages import repro

# prepare -> pretrain@{small,large} -> train@{a,b} (small) ; tables needs everything
GRAPH = {
    "prepare": set(),
    "pretrain@small": {"prepare"},
    "pretrain@large": {"prepare"},
    "train@a": {"pretrain@small"},
    "train@b": {"pretrain@small"},
    "tables": {"train@a", "train@b", "pretrain@large"},
}


class Recorder:
    """A runner that records start/end order, concurrency and slots; `fail` names stages that fail."""

    def __init__(self, fail: set[str] = frozenset(), pause: float = 0.02) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, tuple[int, ...]]] = []
        self.active: set[int] = set()
        self.max_active = 0
        self.fail, self.pause = fail, pause

    def __call__(self, stage: str, slots: list[int]) -> bool:
        with self.lock:
            assert not self.active & set(slots), f"slots {slots} given twice"
            self.active |= set(slots)
            self.max_active = max(self.max_active, len(self.active))
            self.events.append(("start", stage, tuple(slots)))
        time.sleep(self.pause)
        with self.lock:
            self.active -= set(slots)
            self.events.append(("end", stage, tuple(slots)))
        return stage not in self.fail


def order(events: list[tuple[str, str, tuple[int, ...]]], kind: str) -> dict[str, int]:
    return {stage: i for i, (k, stage, _) in enumerate(events) if k == kind}


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_every_stage_runs_once_after_its_dependencies(jobs):
    rec = Recorder()
    times = repro.run_graph(GRAPH, rec, jobs, on_event=lambda _: None)
    assert set(times) == set(GRAPH)
    starts, ends = order(rec.events, "start"), order(rec.events, "end")
    assert len([e for e in rec.events if e[0] == "start"]) == len(GRAPH)
    for stage, deps in GRAPH.items():
        assert all(ends[d] < starts[stage] for d in deps), stage
    assert rec.max_active <= jobs
    assert all(len(slots) == 1 and 0 <= slots[0] < jobs for _, _, slots in rec.events)


def test_independent_stages_overlap_with_two_jobs():
    rec = Recorder(pause=0.1)
    repro.run_graph(GRAPH, rec, 2, on_event=lambda _: None)
    assert rec.max_active == 2  # pretrain@small and pretrain@large (then train@a and train@b) run together


def test_a_failure_stops_new_launches_and_names_the_stage():
    rec = Recorder(fail={"pretrain@small"})
    with pytest.raises(UserError, match=r"pretrain@small.*logs/repro/pretrain@small\.log"):
        repro.run_graph(GRAPH, rec, 2, on_event=lambda _: None)
    started = {stage for kind, stage, _ in rec.events if kind == "start"}
    assert not started & {"train@a", "train@b", "tables"}  # downstream of the failure, or launched after it


def test_a_many_core_stage_gets_its_cores_alone_and_is_not_starved():
    graph = {**GRAPH, "gradnorm@small": {"pretrain@small"}}
    rec = Recorder(pause=0.05)
    repro.run_graph(graph, rec, 2, on_event=lambda _: None, cores={"gradnorm@small": 2, "tables": 5})
    starts, ends = order(rec.events, "start"), order(rec.events, "end")
    slots = {stage: s for kind, stage, s in rec.events if kind == "start"}
    assert sorted(slots["gradnorm@small"]) == [0, 1] and len(slots["tables"]) == 2  # capped at jobs
    for other in graph.keys() - {"gradnorm@small"}:  # nothing overlaps it
        assert ends[other] < starts["gradnorm@small"] or starts[other] > ends["gradnorm@small"], other


def test_a_crashing_runner_counts_as_a_failed_stage():
    def boom(stage: str, slots: list[int]) -> bool:
        raise OSError("no such file")

    with pytest.raises(UserError, match="prepare"):
        repro.run_graph({"prepare": set()}, boom, 1, on_event=lambda _: None)


def test_restrict_keeps_targets_and_their_upstream():
    sub = repro.restrict(GRAPH, ["train@a"])
    assert sub == {"prepare": set(), "pretrain@small": {"prepare"}, "train@a": {"pretrain@small"}}
    assert repro.restrict(GRAPH, []) == GRAPH


def test_restrict_rejects_unknown_stages_by_name():
    with pytest.raises(UserError, match=r"unknown stage\(s\) \['trian@a'\]"):
        repro.restrict(GRAPH, ["trian@a"])


def test_jobs_is_validated_before_anything_runs(tmp_path, monkeypatch):
    import argparse

    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    repro.add_arguments(parser)
    with pytest.raises(UserError, match=r"--jobs: got '0'"):
        repro.run(parser.parse_args(["--jobs", "0"]))
    assert not (tmp_path / "logs").exists()


def test_a_dry_run_lists_the_changed_stages_and_everything_downstream_in_order():
    from hydra_repro.stages.repro import stale_stages

    graph = {
        "prepare": set(),
        "vision": {"prepare"},
        "fetch": set(),
        "pretrain": {"vision", "fetch"},
        "tables": {"pretrain"},
    }
    assert stale_stages(graph, {"prepare"}) == ["prepare", "vision", "pretrain", "tables"]
    assert stale_stages(graph, {"fetch"}) == ["fetch", "pretrain", "tables"]
    assert stale_stages(graph, set()) == []
    assert stale_stages(graph, set(graph)) == ["fetch", "prepare", "vision", "pretrain", "tables"]


def test_stage_commands_find_hydra_repro_without_an_activated_environment(monkeypatch):
    """dvc runs each stage's `hydra-repro ...` through the shell: `.venv/bin/hydra-repro repro` must work with the
    virtual environment's bin directory absent from PATH."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if not (Path(sys.executable).parent / "hydra-repro").is_file():
        pytest.skip("hydra-repro is not installed beside this interpreter")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert shutil.which("hydra-repro") is None
    done = subprocess.run("hydra-repro --help", shell=True, env=repro.stage_env(), capture_output=True, text=True)
    assert done.returncode == 0 and "usage" in done.stdout
