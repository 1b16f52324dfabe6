"""lmms-eval as a library: resolve the tasks, run them on published runs, and reduce lmms-eval's output to one
result file per run (headline score, per-category scores and per-sample records for the paired intervals)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.metadata
import io
import json
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_repro.errors import UserError
from hydra_repro.io import atomic_write_json
from hydra_repro.provenance import write_sidecar
from hydra_repro.tasks import (
    BENCHMARKS,
    MINI_TASKS,
    PAPER_TASK_DIRS,
    PAPER_TASKS,
    lmms_eval_tasks_dir,
    resolve_task_yamls,
)

PROFILES_WITH_MINI_TASKS = ("mini", "smoke", "smol")


UNITS = {
    "mme": "score (sum of per-category acc + acc+)",
    "mmbench": "% (CircularEval)",
    "textvqa": "% (VQA accuracy)",
    "pope": "% (F1, mean over categories)",
    "gqa": "% (exact match)",
    "sqa_img": "% (exact match)",
}


class EvaluationError(RuntimeError):
    """lmms-eval failed while evaluating a run (its own CLI would exit 0 here)."""


# -- lmms-eval import ---------------------------------------------------------------------------------------------
class _LazyModule(types.ModuleType):
    """Stands in for a heavy module until one of its public attributes is used, then imports the real one."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # probes such as __file__ / __path__ must not trigger the import
            raise AttributeError(name)
        del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def import_lmms_eval() -> tuple[Callable[..., Any], type]:
    """(simple_evaluate, TaskManager). HF `evaluate` (~6 s, used by none of our tasks) is deferred to first use."""
    if "evaluate" not in sys.modules and "lmms_eval.api.registry" not in sys.modules:
        sys.modules["evaluate"] = _LazyModule("evaluate")
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    return simple_evaluate, TaskManager


# -- inputs -------------------------------------------------------------------------------------------------------
def resolve_tasks(profile: str, names: Sequence[str] | None = None) -> dict[str, str]:
    """Benchmark key -> lmms-eval task name for `profile`; `names` are task names or benchmark keys (default all)."""
    table = MINI_TASKS if profile in PROFILES_WITH_MINI_TASKS else PAPER_TASKS
    if not names:
        return dict(table)
    by_name = {v: k for k, v in table.items()}
    out: dict[str, str] = {}
    for name in names:
        bench = name if name in table else by_name.get(name)
        if bench is None:
            raise UserError(
                f"--tasks: unknown task {name!r} for profile {profile!r}; expected one of {sorted(table.values())} "
                f"or a benchmark key {list(BENCHMARKS)}"
            )
        out[bench] = table[bench]
    return out


def check_mini_inputs(task_dir: Path, eval_dir: Path, tasks: Mapping[str, str]) -> None:
    """Every task needs its YAML in `task_dir` and its parquet file in `eval_dir` (written by `prepare`)."""
    for task in tasks.values():
        for path, what in ((task_dir / f"{task}.yaml", "task YAML"), (eval_dir / f"{task}.parquet", "data file")):
            if not path.is_file():
                raise UserError(f"{path}: {what} for task {task!r} not found (expected it from `hydra-repro prepare`)")


def check_run_dirs(run_dirs: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for run_dir in run_dirs:
        if not Path(run_dir).is_dir():
            raise UserError(f"{run_dir}: run directory not found (expected a trained run or a model directory)")
        name = Path(run_dir).resolve().name
        if name in seen:
            raise UserError(f"{run_dir}: same result name {name!r} as {seen[name]} (results/runs/<name>.json)")
        seen[name] = Path(run_dir)


# -- results ------------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _metrics(task_results: Mapping[str, Any]) -> dict[str, Any]:
    """lmms-eval's `metric,filter` entries -> {metric: value}; stderr placeholders and empty lists dropped."""
    out = {}
    for key, value in task_results.items():
        if key == "alias" or (isinstance(value, str) and value == "N/A") or (isinstance(value, list) and not value):
            continue
        out[key.split(",")[0]] = _jsonable(value)
    return out


def _mmbench_hits(items: list[dict[str, Any]]) -> dict[int, float]:
    """CircularEval hit (0/1) per question group, each computed by lmms-eval's own static evaluator."""
    from lmms_eval.tasks.mmbench.en_utils import mmbench_evaluator

    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[int(item["index"]) % 1_000_000].append(item)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a category table per call
        return {u: float(mmbench_evaluator.eval_result(g, eval_method="static")[0]) for u, g in groups.items()}


def sample_records(bench: str, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-sample records {doc_id, unit, prediction, target, score[, category]}, ordered by doc_id.

    `unit` is the resampling unit for paired bootstrap tests: the image for MME (a question pair is scored
    together), the question group for MMBench (all rotations count as one), else the document. For MMBench
    `score` is the group's CircularEval hit, repeated on each rotation.
    """
    samples = sorted(samples, key=lambda s: s["doc_id"])
    hits = _mmbench_hits([s["gpt_eval_score"] for s in samples]) if bench == "mmbench" else {}
    records = []
    for s in samples:
        doc, pred = s.get("doc", {}), s["filtered_resps"][0]
        rec: dict[str, Any] = {"doc_id": s["doc_id"], "unit": s["doc_id"], "prediction": pred}
        if bench == "pope":
            m = s["pope_accuracy"]
            rec.update(target=m["ground_truth"], score=m["score"], category=doc.get("category"))
        elif bench == "mme":
            m = s.get("mme_perception_score") or s["mme_cognition_score"]
            rec.update(unit=m["question_id"], target=doc.get("answer"), score=m["score"], category=m["category"])
        elif bench == "mmbench":
            m = s["gpt_eval_score"]
            unit = int(m["index"]) % 1_000_000
            rec.update(unit=unit, target=m["answer"], score=hits[unit], category=m.get("category"))
        elif bench == "textvqa":
            rec.update(target=doc.get("answers"), score=s["exact_match"])
        else:  # gqa, sqa_img
            rec.update(target=s["target"], score=s["exact_match"])
        records.append(_jsonable(rec))
    return records


def headline(bench: str, metrics: Mapping[str, Any], samples: list[dict[str, Any]], mme_scope: str) -> float:
    """The number the paper's tables show for `bench` (see the module docstring for the protocol)."""
    if bench == "mme":
        keys = (
            ("mme_perception_score",) if mme_scope == "perception" else ("mme_perception_score", "mme_cognition_score")
        )
        return float(sum(metrics.get(k, 0.0) for k in keys))
    if bench == "pope":
        f1 = pope_f1_by_category(samples)
        return 100.0 * sum(f1.values()) / len(f1)
    if bench == "mmbench":
        return float(metrics["gpt_eval_score"])
    return 100.0 * float(metrics["exact_match"])


def pope_f1_by_category(samples: list[dict[str, Any]]) -> dict[str, float]:
    """lmms-eval's POPE F1 on each category's items (one pooled 'all' entry when there is no category)."""
    from lmms_eval.tasks.pope.utils import pope_aggregate_f1_score

    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        by_cat[str(s.get("doc", {}).get("category") or "all")].append(s["pope_f1_score"])
    return {c: float(pope_aggregate_f1_score(items)) for c, items in sorted(by_cat.items())}


def mme_by_category(samples: list[dict[str, Any]]) -> dict[str, float]:
    """lmms-eval's MME score (acc + acc+) of each category."""
    from lmms_eval.tasks.mme.utils import mme_aggregate_results

    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        m = s.get("mme_perception_score") or s["mme_cognition_score"]
        by_cat[m["category"]].append(m)
    return {c: float(mme_aggregate_results(items)) for c, items in sorted(by_cat.items())}


def summarize(raw: Mapping[str, Any], tasks: Mapping[str, str], mme_scope: str) -> dict[str, Any]:
    """simple_evaluate's output -> headline, metrics, details and per-sample records, keyed by benchmark."""
    out: dict[str, Any] = {"headline": {}, "metrics": {}, "details": {}, "samples": {}, "n": {}}
    for bench, task in tasks.items():
        if task not in raw.get("results", {}):
            raise EvaluationError(f"lmms-eval returned no results for task {task!r}")
        metrics = _metrics(raw["results"][task])
        samples = raw["samples"][task]
        out["metrics"][task] = metrics
        out["headline"][bench] = round(headline(bench, metrics, samples, mme_scope), 4)
        out["samples"][bench] = sample_records(bench, samples)
        out["n"][bench] = len(samples)
        if bench == "pope":
            out["details"]["pope_f1_by_category"] = pope_f1_by_category(samples)
        elif bench == "mme":
            out["details"]["mme_by_category"] = mme_by_category(samples)
    return out


# -- evaluation ---------------------------------------------------------------------------------------------------
def root_cause(error: BaseException) -> BaseException:
    """The innermost error: tenacity's RetryError wraps the last attempt's, and `raise ... from` chains (implicit
    contexts are not followed: they are often errors a library handled on the way)."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        last = getattr(error, "last_attempt", None)  # tenacity.RetryError
        inner = last.exception() if last is not None and hasattr(last, "exception") else None
        inner = inner or error.__cause__
        if inner is None:
            break
        error = inner
    return error


def run_lmms_eval(
    lm: Any, task_names: Sequence[str], include_path: str | list[str], *, seed: int = 0, verbosity: str = "WARNING"
) -> dict[str, Any]:
    """One `simple_evaluate` call; any lmms-eval failure becomes EvaluationError (never a silent exit 0)."""
    simple_evaluate, TaskManager = import_lmms_eval()
    task_manager = TaskManager(verbosity=verbosity, include_path=include_path, include_defaults=False)
    missing = [t for t in task_names if t not in task_manager.all_tasks]
    if missing:
        raise UserError(f"task {missing[0]!r}: not found under {include_path} (expected its YAML there)")
    with tempfile.TemporaryDirectory(prefix="hydra-eval-") as out_dir:
        # TextVQA and MMBench aggregations write upload files to `<output_path>/submissions`: keep them out of cwd.
        cli_args = argparse.Namespace(output_path=out_dir, process_with_media=False)
        try:
            raw = simple_evaluate(
                model=lm,
                tasks=list(task_names),
                task_manager=task_manager,
                log_samples=True,
                bootstrap_iters=0,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
                verbosity=verbosity,
                cli_args=cli_args,
            )
        except UserError:
            raise
        except Exception as e:  # lmms-eval raises anything from assertions to KeyErrors
            cause = root_cause(e)
            hint = (
                " (the paper profile's tasks load their datasets from the Hugging Face hub: it needs network "
                "access and a login, `huggingface-cli login`, since lmms-eval's task YAMLs ask for a token)"
                if any(w in type(cause).__name__ for w in ("Connection", "Offline", "Token", "HTTP"))
                else ""
            )
            raise EvaluationError(
                f"lmms-eval failed on tasks {list(task_names)}: {type(cause).__name__}: {cause}{hint}"
            ) from e
    if not raw or "results" not in raw:
        raise EvaluationError(f"lmms-eval returned no results for tasks {list(task_names)}")
    return raw


def task_folders(profile: str, data_dir: Path | None, tmap: Mapping[str, str], scratch: Path) -> str | list[str]:
    """lmms-eval's `include_path`: the mini tasks' YAMLs made concrete under `scratch` (their data checked first), or
    lmms-eval's own task folders for the paper profile."""
    if profile in PROFILES_WITH_MINI_TASKS:
        data_dir = Path(data_dir or Path("data") / profile)
        check_mini_inputs(data_dir / "tasks", data_dir / "eval", tmap)
        return str(resolve_task_yamls(data_dir / "tasks", data_dir / "eval", scratch))
    return [str(lmms_eval_tasks_dir() / d) for d in PAPER_TASK_DIRS]


def evaluate_runs(
    run_dirs: Sequence[Path],
    *,
    profile: str = "mini",
    data_dir: Path | None = None,
    results_dir: Path = Path("results/runs"),
    tasks: Sequence[str] | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    max_new_tokens: int | None = None,
    seed: int = 0,
    model_factory: Callable[[Path], Any] | None = None,
    task_map: Mapping[str, str] | None = None,
    include_path: str | list[str] | None = None,
) -> list[Path]:
    """Evaluate each run and write `results_dir/<run>.json`; returns the written paths.

    Args:
        model_factory: run dir -> lmms-eval model instance (default: `HydraVLM(pretrained=run_dir, ...)`).
        task_map, include_path: benchmark -> task name and the task folder(s), overriding the profile's (tests
            use them to run the real tasks' YAMLs on fabricated data).

    Raises:
        UserError: missing run dir, unknown task, missing task YAML or data file (before any model is loaded).
        EvaluationError: lmms-eval failed; no result file is written for that run.
    """
    run_dirs = [Path(r) for r in run_dirs]
    check_run_dirs(run_dirs)
    mini = profile in PROFILES_WITH_MINI_TASKS
    tmap = dict(task_map) if task_map is not None else resolve_tasks(profile, tasks)
    resolved = tempfile.TemporaryDirectory(prefix="hydra-repro-tasks-")  # concrete task YAMLs, this call only
    if include_path is None:
        include_path = task_folders(profile, data_dir, tmap, Path(resolved.name))
    mme_scope = "all" if mini else "perception"

    t_import = time.perf_counter()
    import_lmms_eval()
    import_s = time.perf_counter() - t_import
    if model_factory is None:
        from hydra_repro.eval.lmms_model import HydraVLM

        def model_factory(run_dir: Path) -> Any:
            return HydraVLM(
                str(run_dir), device=device, batch_size=batch_size, max_new_tokens=max_new_tokens, dtype=dtype
            )

    written = []
    for run_dir in run_dirs:
        record = run_dir / "run.json"
        if record.is_file() and json.loads(record.read_text(encoding="utf-8")).get("status") == "infeasible":
            # nothing was trained: the tables say "infeasible" with the allocator's reason
            info = json.loads(record.read_text(encoding="utf-8"))
            path = Path(results_dir) / f"{run_dir.resolve().name}.json"
            atomic_write_json(path, {"run": run_dir.resolve().name, "profile": profile, **info})
            written.append(path)
            continue
        t0 = time.perf_counter()
        lm = model_factory(run_dir)
        raw = run_lmms_eval(lm, list(tmap.values()), include_path, seed=seed)
        summary = summarize(raw, tmap, mme_scope)
        wall = time.perf_counter() - t0
        del lm
        gc.collect()
        result = {"run": run_dir.resolve().name, "run_dir": str(run_dir), "profile": profile, "tasks": tmap}
        result |= {"headline": summary["headline"], "units": {b: UNITS[b] for b in tmap}, "mme_scope": mme_scope}
        result |= {k: summary[k] for k in ("n", "metrics", "details", "samples")}
        path = Path(results_dir) / f"{result['run']}.json"
        atomic_write_json(path, result)
        write_sidecar(
            path,
            profile=profile,
            seed=seed,
            wall_time_s=round(wall, 3),
            lmms_eval_import_s=round(import_s, 3),
            batch_size=batch_size,
            device=device,
            datasets_version=importlib.metadata.version("datasets"),
            command=sys.argv,
        )
        written.append(path)
    resolved.cleanup()
    return written
