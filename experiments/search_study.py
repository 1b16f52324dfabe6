"""Guided vs random search at a size that can give a verdict (beyond the paper): 8 schedules per arm (4 rounds x
coarse + fine for the guided arm, 8 random draws), repeated over 3 search seeds, from the same initial registry runs.

    .venv/bin/python experiments/search_study.py --profile mini --role small

It runs `hydra-repro search` with the profile's search section overridden (rounds 4, per_round 1, random_runs 8,
`--repeats 3`) from a temporary copy of params.yaml, writes the record to results/<profile>/study/<role>.json, and
prints the study's verdict and its wall time (the rule: hydra_repro/report/search_study.py). The pipeline's default
search is smaller (a CPU budget); this is the full study. Its trainings go into the search's own cache
(runs/<profile>/search/<role>, keyed by schedule and training seed), which the pipeline's `search@<role>` stage
reuses but DVC then reports as changed: run it in a copy of the workspace to keep the committed outputs as they are.
Results and timings: docs/mini-run.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hydra_repro.report.search_study import study

SIZE = {"rounds": 4, "per_round": 1, "random_runs": 8}
REPEATS = 3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--profile", default="mini")
    p.add_argument("--role", choices=["small", "large"], default="small")
    a = p.parse_args()
    params = yaml.safe_load(a.params.read_text())
    section = params["profiles"][a.profile]
    section["search"] = {**(section.get("search") or {}), **SIZE}
    out = Path("results") / a.profile / "study" / f"{a.role}.json"
    with tempfile.TemporaryDirectory() as tmp:
        study_params = Path(tmp) / "params.yaml"
        study_params.write_text(yaml.safe_dump(params, sort_keys=False))
        cmd = [sys.executable, "-m", "hydra_repro", "search", "--params", str(study_params), "--profile", a.profile]
        cmd += ["--role", a.role, "--repeats", str(REPEATS), "--out", str(out)]
        t0 = time.time()
        rc = subprocess.run(cmd).returncode
    if rc != 0:
        return rc
    s = study(json.loads(out.read_text()))
    summary = {"wall_s": round(time.time() - t0), "evidence": s.evidence(), "verdict": s.verdict(), "diffs": s.diffs}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
