"""Evaluation throughput: questions per second for one model on the six mini tasks, after imports.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/eval_throughput.py \\
        [--model models/mini/base] [--data-dir data/mini] [--batch-size 16] [--max-new-tokens 8]

Without `--model`, a randomly initialised model of the `mini-1.7b` preset (24 layers) is built in memory; without
`--data-dir`, fabricated mini evaluation sets of `--n` documents per task are written to a temporary folder. A
random model never emits eos, so it generates `--max-new-tokens` tokens per answer: keep that near a trained
model's answer length (a word and eos). Target: one mini run on all six tasks in <= 60 s after imports.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model or run directory (default: random mini)")
    parser.add_argument("--preset", default="mini-1.7b", help="preset of the random model")
    parser.add_argument("--data-dir", type=Path, default=None, help="prepared data/<profile> (default: fabricated)")
    parser.add_argument("--n", type=int, default=60, help="documents per fabricated task")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (hydra-repro evaluate's mini default)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    from hydra_repro.eval.harness import import_lmms_eval, run_lmms_eval
    from hydra_repro.eval.lmms_model import HydraVLM
    from hydra_repro.tasks import MINI_TASKS, write_task_yamls
    from tests.fakes import write_mini_eval_sets, write_random_model

    import_lmms_eval()
    import torch

    torch.set_num_threads(args.threads)
    print(f"imports: {time.perf_counter() - t0:.1f} s; torch threads: {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory(prefix="hydra-bench-") as tmp:
        tmp = Path(tmp)
        if args.data_dir is None:
            write_mini_eval_sets(tmp / "eval", n=args.n)
            write_task_yamls(tmp / "tasks", tmp / "eval")
            task_dir = tmp / "tasks"
        else:
            task_dir = args.data_dir / "tasks"
        model_dir = args.model or write_random_model(tmp / "model", args.preset)
        t1 = time.perf_counter()
        lm = HydraVLM(str(model_dir), batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
        print(f"model load: {time.perf_counter() - t1:.1f} s ({model_dir})")

        total_q, total_s = 0, 0.0
        print(f"{'task':<14}{'questions':>10}{'seconds':>10}{'q/s':>8}{'tokens/s':>10}")
        for task in MINI_TASKS.values():
            tokens0, t = lm.generated_tokens, time.perf_counter()
            raw = run_lmms_eval(lm, [task], str(task_dir))
            dt = time.perf_counter() - t
            n = len(raw["samples"][task])
            total_q, total_s = total_q + n, total_s + dt
            print(f"{task:<14}{n:>10}{dt:>10.2f}{n / dt:>8.1f}{(lm.generated_tokens - tokens0) / dt:>10.0f}")
        print(f"{'all six':<14}{total_q:>10}{total_s:>10.2f}{total_q / total_s:>8.1f}")
        print(f"target: all six tasks <= 60 s after imports: {'met' if total_s <= 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
