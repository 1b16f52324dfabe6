"""One calibration experiment of the mini profile: stage I of the small model with params overrides, then
uniform LoRA with the committed `lora_small` plan, then the six mini tasks. Everything goes to `--out`; the
repository's DVC outputs are only read.

    .venv/bin/python experiments/calibration/run_variant.py --out /tmp/cal/A \\
        --set '{"pretrain": {"steps": 1500}}' [--base models/mini/small] [--data data/mini]

`--set` maps dotted keys of `profiles.mini` to values (dicts are merged into the existing section); `--base` skips
stage I and tunes that base model; `--data` points at another `hydra-repro prepare` output. Prints and writes
`summary.json` (overrides, wall times, headline scores). Results: docs/mini-run.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--set", default="{}", help="JSON: dotted keys of profiles.mini -> values")
    p.add_argument("--base", help="a stage-I model dir: skip stage I")
    p.add_argument("--data", default="data/mini")
    args = p.parse_args()
    overrides = json.loads(args.set)
    args.out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        node = params["profiles"]["mini"]
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = {**node.get(last, {}), **value} if isinstance(value, dict) else value
    (args.out / "params.yaml").write_text(yaml.safe_dump(params))
    prm = str(args.out / "params.yaml")
    base = args.base or str(args.out / "small")
    log = (args.out / "log.txt").open("a")

    def sh(cmd: list[str]) -> float:
        t = time.time()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=log, stderr=subprocess.STDOUT)
        return round(time.time() - t, 1)

    times = {}
    if not args.base:
        times["pretrain"] = sh(["hydra-repro", "pretrain", "--params", prm, "--profile", "mini", "--model", "small",
                                "--data", args.data, "--vision", "models/mini/vision", "--out", base])  # fmt: skip
    times["train"] = sh(["hydra-repro", "train", "--params", prm, "--profile", "mini", "--run", "lora_small",
                         "--plan", "schedules/mini/lora_small.json", "--base", base,
                         "--data", f"{args.data}/train.json", "--out", str(args.out / "lora")])  # fmt: skip
    times["eval"] = sh(["hydra-repro", "evaluate", str(args.out / "lora"), "--profile", "mini",
                        "--data-dir", args.data, "--results-dir", str(args.out / "res"), "--params", prm])  # fmt: skip
    headline = json.loads((args.out / "res" / "lora.json").read_text())["headline"]
    summary = {"overrides": overrides, "base": base, "data": args.data, "times_s": times, "headline": headline}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
