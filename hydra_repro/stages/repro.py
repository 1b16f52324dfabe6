"""`hydra-repro repro`: `dvc repro` with independent stages run side by side, one per core.

`dvc repro` runs stages one at a time, and every stage here uses one thread, so on a 2-core machine half the CPU
idles. DVC supports running independent stages from several `dvc repro` processes at once (it releases its repository
lock while a stage's command runs; https://dvc.org/doc/command-reference/repro#parallel-stage-execution). This
driver does that from the pipeline's own graph: a stage starts, as `dvc --wait-for-lock repro --single-item
<stage>`, once every stage it depends on has finished, at most `--jobs` cores busy at a time, each stage pinned to its
own core(s): one, or `meta: {cores: n}` in `dvc.yaml` for a stage that runs n torch threads (two threads squeezed
onto one core ran a small LM step 54x slower here, 6.3 s instead of 118 ms, as each parallel region waits for the
descheduled thread). DVC
still decides what is stale (unchanged stages are skipped), records `dvc.lock` and fills the cache, so the outputs
are the same as a plain `dvc repro`: every stage is deterministic at its configured thread count, and the
replicate stage's seeds give identical weights whether they run side by side or in turn. A final plain
`dvc repro` checks that nothing is left to run.

Each stage's output goes to `logs/repro/<stage>.log`; `logs/repro/timings.json` records each stage's wall time and
whether it ran. The first failing stage stops new launches; the error names it and shows its log's tail.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from hydra_repro.errors import UserError
from hydra_repro.io import atomic_write_json

LOG_DIR = Path("logs/repro")
SKIPPED = "didn't change, skipping"


def stage_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, int]]:
    """(every stage -> the stages it depends on, stage -> cores from its `meta: {cores: n}`), from DVC's own graph."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages whose outputs it reads
        deps = {s.addressing: {d.addressing for d in graph.successors(s)} for s in graph.nodes}
        cores = {s.addressing: int((s.meta or {}).get("cores", 1)) for s in graph.nodes}
    bad = {name: n for name, n in cores.items() if n < 1}
    if bad:
        raise UserError(f"dvc.yaml: meta.cores of {bad}; expected an integer >= 1 (cores the stage's threads need)")
    return deps, cores


def restrict(graph: dict[str, set[str]], targets: list[str]) -> dict[str, set[str]]:
    """The targets and everything upstream of them; no targets: the whole graph."""
    if not targets:
        return graph
    unknown = [t for t in targets if t not in graph]
    if unknown:
        raise UserError(f"repro: unknown stage(s) {unknown}; expected names from `dvc stage list`, e.g. {min(graph)}")
    keep: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(graph[name])
    return {name: deps & keep for name, deps in graph.items() if name in keep}


def run_graph(
    graph: dict[str, set[str]],
    run: Callable[[str, list[int]], bool],
    jobs: int,
    on_event: Callable[[str], None] = print,
    cores: dict[str, int] | None = None,
) -> dict[str, float]:
    """Run every stage once after all its dependencies, with at most `jobs` slots busy; returns stage -> seconds.

    A stage takes `cores[stage]` slots (default 1, at most `jobs`); `run(stage, slots)` returns True on success and
    owns `slots` (indices in range(jobs): the cores to pin) for the call's duration. Ready stages start in name
    order; one that does not fit blocks the rest until it does, so a many-core stage is never starved. After a
    failure no new stage starts; the running ones finish, then UserError names the failed stage(s).
    """
    cores = cores or {}
    done: dict[str, float] = {}
    failed: list[str] = []
    running: dict[Future[bool], tuple[str, list[int], float]] = {}
    free = list(range(jobs))[::-1]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            started = {name for name, _, _ in running.values()}
            ready = sorted(n for n, deps in graph.items() if n not in done and n not in started and deps <= done.keys())
            while ready and not failed:
                need = min(cores.get(ready[0], 1), jobs)
                if need > len(free):
                    break
                name, slots = ready.pop(0), [free.pop() for _ in range(need)]
                on_event(f"start {name}" + (f" ({need} cores)" if need > 1 else ""))
                running[pool.submit(run, name, slots)] = (name, slots, time.time())
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name, slots, t0 = running.pop(future)
                free.extend(slots)
                try:
                    ok = future.result()
                except Exception as exc:  # a crash of the launcher itself counts as the stage failing
                    on_event(f"error {name}: {exc!r}")
                    ok = False
                if ok:
                    done[name] = round(time.time() - t0, 1)
                    on_event(f"done  {name} ({done[name]} s)")
                else:
                    failed.append(name)
                    on_event(f"FAILED {name}")
    if failed:
        raise UserError(f"repro: stage(s) {failed} failed; see {', '.join(str(_log(n)) for n in failed)}")
    missing = sorted(graph.keys() - done.keys())
    if missing:  # only a cycle could leave stages unstarted; DVC rejects cyclic pipelines, so this guards the code
        raise UserError(f"repro: stage(s) {missing} never became ready (a dependency cycle?)")
    return done


def stale_stages(graph: dict[str, set[str]], changed: set[str]) -> list[str]:
    """The stages that would run: those DVC reports changed and everything downstream, in an order DVC could run."""
    stale = set(changed)
    grew = True
    while grew:
        grew = False
        for name, deps in graph.items():
            if name not in stale and deps & stale:
                stale.add(name)
                grew = True
    order: list[str] = []
    while len(order) < len(stale):
        order += sorted(n for n in stale if n not in order and graph[n] <= set(order) | (graph.keys() - stale))
    return order


def dry_run(root: Path, graph: dict[str, set[str]]) -> list[str]:
    """What `dvc repro` would run, from `dvc status`. `dvc repro --dry` itself (DVC 3.67) stops at the first stage
    whose dependency is not built yet, so it cannot preview a fresh clone."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        changed = {name for name in repo.status() if name in graph}
        commands = {s.addressing: s.cmd for s in repo.index.stages}
    order = stale_stages(graph, changed)
    for name in order:
        print(f"{name}: {' '.join(str(commands.get(name, '')).split())}")
    print(f"{len(order)} of {len(graph)} stages would run")
    return order


def _log(stage: str) -> Path:
    return LOG_DIR / f"{stage.replace('/', '_')}.log"


def stage_env() -> dict[str, str]:
    """The environment for dvc and the stages' `hydra-repro` commands: this interpreter's scripts first on PATH, so
    `.venv/bin/hydra-repro repro` works without an activated virtual environment."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def dvc_runner(cores: list[int] | None, skipped: set[str]) -> Callable[[str, list[int]], bool]:
    """`run` for `run_graph`: one `dvc repro --single-item` per stage, pinned to cores `cores[slot]` (None: not
    pinned), logged."""

    def run(stage: str, slots: list[int]) -> bool:
        log = _log(stage)
        with log.open("w") as out:
            cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", stage]
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=stage_env())
            # set before dvc has started python, so the stage's command (its child) inherits the core
            if cores is not None and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(proc.pid, {cores[slot] for slot in slots})
            rc = proc.wait()
        text = log.read_text()
        if rc == 0 and SKIPPED in text:
            skipped.add(stage)
        if rc != 0:
            tail = "".join(text.splitlines(keepends=True)[-15:])
            print(f"--- {log} (last lines) ---\n{tail}", file=sys.stderr)
        return rc == 0

    return run


def usable_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", help="stages to bring up to date with their upstream (default: all)")
    p.add_argument("--jobs", default="auto", help="cores kept busy by stages (default: auto = usable cores)")
    p.add_argument("--dry", action="store_true", help="print the stages that would run, with their commands")


def run(args: argparse.Namespace) -> int:
    cores = usable_cores()
    if args.jobs == "auto":
        jobs = len(cores)
    elif str(args.jobs).isdigit() and int(args.jobs) >= 1:
        jobs = int(args.jobs)
    else:
        raise UserError(f"--jobs: got {args.jobs!r}; expected 'auto' or an integer >= 1 (cores kept busy)")
    if jobs > len(cores):
        cores = [cores[i % len(cores)] for i in range(jobs)]  # more stages than cores: share them round-robin
    graph, stage_cores = stage_graph(Path.cwd())
    graph = restrict(graph, args.targets)
    if args.dry:
        dry_run(Path.cwd(), graph)
        return 0
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    start, skipped = time.time(), set()

    def event(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} +{time.time() - start:6.0f} s] {msg}", flush=True)

    event(f"{len(graph)} stages, {jobs} at a time; logs in {LOG_DIR}/")
    # one stage at a time is plain `dvc repro`: no pinning, every stage sees all cores
    times = run_graph(graph, dvc_runner(cores if jobs > 1 else None, skipped), jobs, event, stage_cores)
    # the check: a plain sequential `dvc repro` must find nothing left to do
    check = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", *args.targets], capture_output=True, text=True, env=stage_env()
    )
    if check.returncode != 0:
        raise UserError(f"repro: the final `dvc repro` failed:\n{check.stdout[-2000:]}{check.stderr[-2000:]}")
    if "up to date" not in check.stdout:  # it had to run something the graph walk did not: show what
        event(f"the final `dvc repro` ran stages:\n{check.stdout[-2000:]}")
    total = round(time.time() - start, 1)
    stages = {name: {"seconds": s, "ran": name not in skipped} for name, s in sorted(times.items())}
    atomic_write_json(LOG_DIR / "timings.json", {"jobs": jobs, "wall_seconds": total, "stages": stages})
    ran = sum(v["ran"] for v in stages.values())
    event(f"all {len(times)} stages up to date ({ran} ran, {len(times) - ran} unchanged) in {total} s")
    return 0
