"""The report's inputs: which run fills which row of the paper, and the result, gradient-norm, schedule,
performance-model and search files read and checked (a missing or malformed file names itself)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra_repro.config import PROFILES, load_yaml
from hydra_repro.constants import COMPONENTS
from hydra_repro.core.registry import SEEDS_FILE, RunSpec, load_registry, load_replicated
from hydra_repro.errors import UserError
from hydra_repro.io import read_json
from hydra_repro.report.numbers import MISSING, fmt

COMMAND = "hydra-repro tables"


INFEASIBLE = "infeasible"


ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")


COMPONENT_NAMES = {
    "down_proj": "Down",
    "gate_proj": "Gate",
    "up_proj": "Up",
    "k_proj": "K",
    "o_proj": "O",
    "q_proj": "Q",
    "v_proj": "V",
}


MODEL_ROLES = ("small", "large")


PROBE = "smol"  # the real-LM probe's column


# Gradient norms of Table V's Config4 layout (stages of 8, 4, 12 layers): Table VI's accounting at paper scale.
CONFIG4_NORMS = [0.2] * 8 + [0.6] * 4 + [1.4] * 12


PERF_MODELS = ("mlp", "lightgbm", "rf", "transformer")


PERFMODEL_PLACEHOLDER = "not yet produced: results/<profile>/perfmodel/small.json is absent (the `perfmodel` stage)"
PRIMARY_ROLE = "small"  # the role of Table VIII and Figure 6


# Which run of experiments/runs.yaml fills which row of the paper.
TABLE_RUNS: dict[str, dict[str, str]] = {
    "table_2": {"128": "lora_small", "Case": "case_small", "256": "lora2x_small"},
    "table_3": {f"{v}_{s}": f"{v}_{s}" for s in MODEL_ROLES for v in ("full", "lora", "hydra_fine", "hydra_coarse")},
    "table_4": {
        "Config1": "config1_small",
        "Config2": "config2_small",
        "Config3": "case_small",
        "Config4": "hydra_coarse_small",
        "Setting1": "hydra_fine_small",
        **{f"Setting{i}": f"setting{i}_small" for i in range(2, 6)},
    },
    "table_5": {
        "Config1": "config1_small",
        "Config2": "config2_small",
        "Config3": "case_small",
        "Config4": "hydra_coarse_small",
    },
    "table_6": {
        "coarse": "hydra_coarse_small",
        "setting1": "hydra_fine_small",
        **{f"setting{i}": f"setting{i}_small" for i in range(2, 6)},
    },
    # Beyond the paper: controls at the budget C of uniform LoRA (small model), beside HyDRA
    "table_controls": {
        "uniform LoRA": "lora_small",
        "HyDRA coarse": "hydra_coarse_small",
        "HyDRA fine": "hydra_fine_small",
        "HyDRA coarse, reversed": "reversed_coarse_small",
        "random ranks, draw 1": "random_d1_small",
        "random ranks, draw 2": "random_d2_small",
        "random ranks, draw 3": "random_d3_small",
        "AdaLoRA": "adalora_small",
        "EVA": "eva_small",
        "rsLoRA": "rslora_small",
    },
    "table_7": {
        "7/2": "stages7_d2_small",
        "11/2": "stages11_d2_small",
        "13/2": "stages13_d2_small",
        "17/2": "stages17_d2_small",
        "17/1": "stages17_d1_small",
    },
}


TABLE2_LAYOUTS = {"128": "uniform", "Case": "case", "256": "uniform_2x"}  # the paper-scale layout of each row


@dataclass(frozen=True)
class RunResult:
    """One run's headline scores; `status` is "ok", "infeasible" (with `reason`) or "missing" (--allow-missing)."""

    run: str
    status: str
    headline: dict[str, float] | None = None
    reason: str = ""
    samples: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False, compare=False)
    # the same run trained with the profile's other seeds (`hydra-repro replicate`); empty: one seed
    replicates: list[RunResult] = field(default_factory=list, repr=False, compare=False)

    def seed_values(self, bench: str) -> list[float]:
        runs = [self, *self.replicates]
        return [r.headline[bench] for r in runs if r.headline is not None]

    def cell(self, bench: str) -> str:
        """One seed: the score; several: "mean ± half-width of the 95% t-interval over seeds"."""
        if self.headline is None:
            return INFEASIBLE if self.status == INFEASIBLE else MISSING
        if not self.replicates:
            return fmt(self.headline[bench], bench)
        from hydra_repro.core.stats import seed_interval

        mean, half = seed_interval(self.seed_values(bench))
        return f"{fmt(mean, bench)} ± {fmt(half, bench)}"

    def value(self, bench: str) -> float | None:
        """The score, averaged over the training seeds when there are several."""
        if self.headline is None:
            return None
        values = self.seed_values(bench)
        return sum(values) / len(values)

    def seed_samples(self, bench: str) -> list[list[dict[str, Any]]] | None:
        """Per-sample records of every seed (None when any seed lacks them)."""
        out = [(r.samples or {}).get(bench) for r in (self, *self.replicates)]
        return None if not all(out) else out


@dataclass
class Inputs:
    profile: str
    paper: dict[str, Any]
    registry: dict[str, RunSpec]
    results: dict[str, RunResult]
    schedules: dict[str, dict[str, Any] | None]  # None: missing under --allow-missing
    gradnorm: dict[str, dict[str, Any] | None]
    # results/<profile>/perfmodel/<role>.json and search/<role>.json (the iterative enhancement phase), per role;
    # a role whose file is absent or records why it was not produced is left out
    perfmodels: dict[str, dict[str, Any]] = field(default_factory=dict)
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)
    probe: dict[str, Any] | None = None  # results/<profile>/smol/gradnorm.json: the real-LM probe's norms
    probe_lm: dict[str, Any] | None = None  # models/<profile>/smollm2/fetch.json: what the probe's LM is
    run_ranks: dict[str, dict[str, Any]] = field(default_factory=dict)  # runs/<profile>/<run>/ranks.json (eva, adalora)
    missing: list[str] = field(default_factory=list)  # notes for files absent under --allow-missing
    eval_choices: dict[str, list[int]] = field(default_factory=dict)  # bench -> choices per question (local docs)

    @property
    def benchmarks(self) -> dict[str, str]:
        return self.paper["benchmarks"]

    @property
    def perfmodel(self) -> dict[str, Any] | None:
        """The small model's performance model: Table VIII and Figure 6 (the role with the most trained runs)."""
        return self.perfmodels.get(PRIMARY_ROLE)

    @property
    def search(self) -> dict[str, Any] | None:
        return self.searches.get(PRIMARY_ROLE)

    def r_standard(self) -> int | None:
        for plan in self.schedules.values():
            if plan is not None and "r_standard" in plan:
                return plan["r_standard"]
        return None


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"{path}: expected {what}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_number(x) for x in v)


def read_result(path: Path, run: str, benchmarks: Sequence[str]) -> RunResult:
    d = read_json(path, f"result of run {run!r} (written by `hydra-repro evaluate`)")
    if not isinstance(d, dict):
        raise _bad(path, f"a JSON object for run {run!r}, got {type(d).__name__}")
    if d.get("run", run) != run:
        raise _bad(path, f"'run': {run!r}, got {d.get('run')!r}")
    if d.get("status") == INFEASIBLE:
        if not isinstance(d.get("reason"), str):
            raise _bad(path, "a 'reason' string beside 'status': 'infeasible'")
        return RunResult(run, INFEASIBLE, None, d["reason"])
    head = d.get("headline")
    bad = [b for b in benchmarks if not isinstance(head, dict) or not _is_number(head.get(b))]
    if bad:
        raise _bad(path, f"'headline' mapping each of {list(benchmarks)} to a number; missing or not a number: {bad}")
    samples = d.get("samples") if isinstance(d.get("samples"), dict) else None
    return RunResult(run, "ok", {b: float(head[b]) for b in benchmarks}, samples=samples)


def read_gradnorm(path: Path) -> dict[str, Any]:
    d = read_json(path, "gradient-norm file (written by `hydra-repro gradnorm`)")
    comps = d.get("component_norms") if isinstance(d, dict) else None
    if not isinstance(d, dict) or not _numbers(d.get("layer_norms")):
        raise _bad(path, "an object whose 'layer_norms' is a non-empty list of numbers (layer 1 first)")
    if not isinstance(comps, dict) or any(not _is_number(comps.get(c)) for c in COMPONENTS):
        raise _bad(path, f"'component_norms' mapping each of {list(COMPONENTS)} to a number")
    return d


def read_schedule(path: Path, run: str) -> dict[str, Any]:
    d = read_json(path, f"schedule of run {run!r} (written by `hydra-repro allocate`)")
    if not isinstance(d, dict):
        raise _bad(path, f"a JSON object for run {run!r}")
    if "infeasible" in d:
        if not isinstance(d["infeasible"], str):
            raise _bad(path, "'infeasible' to be the reason, a string")
        return d
    for key in ("r_standard", "budget_params"):
        if not isinstance(d.get(key), int):
            raise _bad(path, f"an integer {key!r}")
    sched = d.get("schedule")
    if sched is not None:
        layers = sched.get("layers") if isinstance(sched, dict) else None
        if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
            raise _bad(path, "'schedule.layers' to be a non-empty list of component -> rank objects")
        if not isinstance(d.get("trainable_params"), int):
            raise _bad(path, "an integer 'trainable_params' beside 'schedule'")
    alloc = d.get("allocation")
    if alloc is not None and (
        not isinstance(alloc, dict)
        or not all(isinstance(alloc.get(k), list) for k in ("stage_of_layer", "stage_ranks"))
    ):
        raise _bad(path, "'allocation' with 'stage_of_layer' and 'stage_ranks' lists")
    return d


def read_perfmodel(path: Path) -> dict[str, Any]:
    d = read_json(path, "performance-model result")
    if isinstance(d, dict) and isinstance(d.get("degenerate"), str):
        return d  # the stage recorded why it could not fit (on_degenerate: record)
    models = d.get("models") if isinstance(d, dict) else None
    ok = isinstance(models, dict) and all(
        isinstance(models.get(m), dict) and all(_is_number(models[m].get(k)) for k in ("mse", "mae"))
        for m in PERF_MODELS
    )
    if not ok:
        raise _bad(path, f"'models' mapping each of {list(PERF_MODELS)} to {{'mse': number, 'mae': number}}")
    curves = d.get("curves", {})
    if not isinstance(curves, dict) or not all(_numbers(v) for v in curves.values()):
        raise _bad(path, "'curves' mapping a curve name to a non-empty list of losses per epoch")
    return d


def read_search(path: Path) -> dict[str, Any]:
    d = read_json(path, "search result")
    if isinstance(d, dict) and isinstance(d.get("degenerate"), str):
        return d
    ok = (
        isinstance(d, dict)
        and isinstance(d.get("best"), dict)
        and isinstance(d.get("arms"), dict)
        and all(_numbers(d["arms"].get(a)) or d["arms"].get(a) == [] for a in ("random", "guided"))
        and all(isinstance(b.get("scores"), dict) for b in d["best"].values())
    )
    if not ok:
        raise _bad(path, "'best' ({coarse|fine: {scores, ...}}) and 'arms' ({random, guided}: best-so-far lists)")
    return d


def read_eval_choices(eval_dir: Path) -> dict[str, list[int]]:
    """Choices per question of the local multiple-choice test sets (ScienceQA-IMG's `choices` column), which the
    per-sample records do not carry; empty when the profile evaluates on lmms-eval's hub datasets."""
    path = eval_dir / "mini_sqa_img.parquet"
    if not path.is_file():
        return {}
    import pandas as pd

    try:
        choices = pd.read_parquet(path, columns=["choices"])["choices"]
    except (OSError, ValueError, KeyError) as e:
        raise _bad(path, f"a parquet file with a 'choices' column ({e})") from None
    return {"sqa_img": [len(c) for c in choices]}


def load_paper_values(path: str | Path) -> dict[str, Any]:
    d = load_yaml(path)
    keys = ["benchmarks", *(f"table_{i}" for i in range(1, 9)), "figures"]
    if not isinstance(d, dict) or any(k not in d for k in keys):
        raise _bad(Path(path), f"the paper's transcribed values with top-level keys {keys}")
    return d


def required_runs() -> dict[str, str]:
    """run -> the first table that needs it."""
    out: dict[str, str] = {}
    for table, rows in TABLE_RUNS.items():
        for run in rows.values():
            out.setdefault(run, table)
    return out


def _read_runs(
    runs: dict[str, RunSpec],
    registry: str | Path,
    results: Path,
    schedules: Path,
    benches: list[str],
    absent: Any,
) -> tuple[dict[str, RunResult], dict[str, dict[str, Any] | None]]:
    """Every table run's result (with its seed replicates) and schedule; `absent(path, what)` says whether a file
    is missing under --allow-missing (and raises without it)."""
    res: dict[str, RunResult] = {}
    scheds: dict[str, dict[str, Any] | None] = {}
    for run, table in required_runs().items():
        if run not in runs:
            raise UserError(f"{registry}: run {run!r} is not defined; expected it for Table {table} ({__name__})")
        path = results / "runs" / f"{run}.json"
        res[run] = (
            RunResult(run, "missing") if absent(path, f"the result of run {run}") else read_result(path, run, benches)
        )
        path = schedules / f"{run}.json"
        scheds[run] = None if absent(path, f"the schedule of run {run}") else read_schedule(path, run)
    for run in load_replicated(registry):
        path = results / "replicates" / run / SEEDS_FILE
        if res[run].status != "ok" or absent(path, f"the seeds of run {run} (`hydra-repro replicate`)"):
            continue
        seeds = read_json(path, "replicate summary")
        files = seeds.get("replicates") if isinstance(seeds, dict) else None
        if not isinstance(files, dict):
            raise _bad(path, "an object with 'replicates': {seed: result file}")
        names = [str(files[k]) for k in sorted(files, key=int)]
        reps = [read_result(path.parent / f, Path(f).stem, benches) for f in names]
        res[run] = dataclasses.replace(res[run], replicates=reps)
    return res, scheds


def _read_search_outputs(results: Path, missing: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(performance models, searches) by role, each optional; a record of why one was not produced becomes a note
    in `missing`. Z*'s per-sample records are joined to the search for the paired comparisons."""
    perfs, searches = {}, {}
    for role in MODEL_ROLES:
        perf_path = results / "perfmodel" / f"{role}.json"
        perf = read_perfmodel(perf_path) if perf_path.is_file() else None
        search_path = results / "search" / f"{role}.json"
        found = read_search(search_path) if search_path.is_file() else None
        for path, doc in ((perf_path, perf), (search_path, found)):
            if doc is not None and "degenerate" in doc:
                missing.append(f"{path}: not produced at this scale: {doc['degenerate']}")
        if perf is not None and "degenerate" not in perf:
            perfs[role] = perf
        if found is not None and "degenerate" not in found:
            for best in found.get("best", {}).values():
                path = results / "search" / role / f"{best.get('key')}.json"
                best["samples"] = read_json(path, "search run result").get("samples") if path.is_file() else None
            searches[role] = found
    return perfs, searches


def load_inputs(
    profile: str,
    results: str | Path,
    schedules: str | Path,
    registry: str | Path = "experiments/runs.yaml",
    paper_values: str | Path = "experiments/paper_values.yaml",
    allow_missing: bool = False,
    models: str | Path | None = None,
    runs_dir: str | Path | None = None,
) -> Inputs:
    """Read and validate everything the tables need; a bad or (without `allow_missing`) absent file is a UserError."""
    if profile not in PROFILES:
        raise UserError(f"--profile: got {profile!r}; expected one of {list(PROFILES)}")
    results, schedules = Path(results), Path(schedules)
    paper = load_paper_values(paper_values)
    runs = load_registry(registry)
    benches = list(paper["benchmarks"])
    missing: list[str] = []

    def absent(path: Path, what: str) -> bool:
        if path.is_file():
            return False
        if not allow_missing:
            raise UserError(f"{path}: file not found (expected {what}; the pipeline writes it before `tables`)")
        missing.append(f"{path} is missing ({what}); its cells show {MISSING} (--allow-missing)")
        return True

    res, scheds = _read_runs(runs, registry, results, schedules, benches, absent)
    grad: dict[str, dict[str, Any] | None] = {}
    for role in MODEL_ROLES:
        path = results / "gradnorm" / f"{role}.json"
        grad[role] = None if absent(path, f"the gradient norms of the {role} model") else read_gradnorm(path)
    path = results / "smol" / "gradnorm.json"
    probe = None if absent(path, "the gradient norms of the real-LM probe") else read_gradnorm(path)
    lm_path = Path(models if models is not None else Path("models") / profile) / "smollm2" / "fetch.json"
    probe_lm = read_json(lm_path, "the probe LM's fetch.json") if lm_path.is_file() else None
    run_ranks = {}
    for run in required_runs():  # EVA's and AdaLoRA's parameter counts are only known once built
        path = Path(runs_dir if runs_dir is not None else Path("runs") / profile) / run / "ranks.json"
        if runs[run].method in ("eva", "adalora") and res[run].status == "ok":
            if not absent(path, f"the ranks record of run {run}"):
                run_ranks[run] = read_json(path, "ranks record")
    perfs, searches = _read_search_outputs(results, missing)
    return Inputs(
        profile,
        paper,
        runs,
        res,
        scheds,
        grad,
        perfs,
        searches,
        missing=missing,
        probe=probe,
        probe_lm=probe_lm,
        run_ranks=run_ranks,
    )
