"""How large a difference could a comparison of two runs see? Minimum detectable difference (MDD) by seeds and size.

    .venv/bin/python benchmarks/plan_seeds.py                                  # every benchmark, default variances
    .venv/bin/python benchmarks/plan_seeds.py --bench gqa --seed-sd gqa=3.1 --unit-sd gqa=12
    .venv/bin/python benchmarks/plan_seeds.py --seeds 2,3,5,8 --scale 1,2,8 --target gqa=1.5

For two runs with n training seeds each on a test set of m units (`hydra_repro.core.stats.plan_mdd`):
se^2 = 2 seed_sd^2 / n + unit_sd^2 / m, df = 2 (n - 1), MDD = (t_{0.975,df} + t_{0.80,df}) se: the true difference
that a two-sided 5% test detects with 80% power. With one seed per run the seed SD is borrowed from other runs
(`--pooled-df`, its degrees of freedom). `seed_sd` is the between-seed SD of a run's headline on the test set;
`unit_sd` the SD over test units of the paired difference of the two runs' expected per-unit scores, on the
headline's scale. Defaults: seed SDs measured over 16 three-seed mini runs (GQA, TextVQA, MME) or assumed where
none was measured; unit SDs assumed (a 10-point difference in the chance of answering a question right; MME: 20
points of a 0-200 image score in each of its 5 categories). The seed SD is held fixed as the test set grows (part of
it is per-question disagreement that would shrink): the larger columns are, if anything, pessimistic about test size.
Also prints, per benchmark, the seeds per run needed for each `--target` MDD at the mini test size. docs/statistics.md.
"""

from __future__ import annotations

import argparse
import math

from hydra_repro.core.stats import plan_mdd, seeds_for_mdd

# benchmark: (label, seed SD, measured?, unit SD, mini test units, unit name, default targets)
DEFAULTS = {
    "mme": ("MME", 11.4, True, 100.0, 200, "images", (10.0, 25.0, 50.0)),
    "mmbench": ("MMBench", 3.0, False, 10.0, 100, "question groups", (1.0, 2.0, 5.0)),
    "textvqa": ("TextVQA", 1.34, True, 10.0, 300, "questions", (1.0, 2.0, 5.0)),
    "pope": ("POPE", 2.0, False, 10.0, 420, "questions", (1.0, 2.0, 5.0)),
    "gqa": ("GQA", 2.59, True, 10.0, 400, "questions", (1.0, 2.0, 5.0)),
    "sqa_img": ("ScienceQA-IMG", 1.5, False, 10.0, 300, "questions", (1.0, 2.0, 5.0)),
}


def _pairs(text: str | None, what: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        if key not in DEFAULTS or not value:
            raise SystemExit(f"{what}: expected bench=value with bench one of {list(DEFAULTS)}, got {item!r}")
        out[key] = float(value)
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def table(bench: str, seed_sd: float, unit_sd: float, units: int, seeds: list[int], scale: list[int],
          pooled_df: float, targets: tuple[float, ...], measured: bool) -> list[str]:  # fmt: skip
    label, *_, unit_name, _ = DEFAULTS[bench]
    sizes = [units * k for k in scale]
    lines = [
        f"{label}: seed SD {seed_sd:g} ({'measured' if measured else 'assumed'}), unit SD {unit_sd:g} (assumed); "
        f"MDD at 80% power, two-sided 5%, by seeds per run (rows) and {unit_name} (columns; mini: {units})",
        "| seeds | " + " | ".join(f"{m:,}" for m in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for n in seeds:
        row = [plan_mdd(seed_sd, unit_sd, n, m, pooled_df=pooled_df)["mdd"] for m in sizes]
        name = f"{n} (pooled SD, {pooled_df:g} df)" if n == 1 else str(n)
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    need = []
    for target in targets:
        n = seeds_for_mdd(target, seed_sd, unit_sd, units)
        floor = plan_mdd(0.0, unit_sd, 2, units)["mdd"]  # the test set's part alone, with infinitely many seeds
        text = str(n) if n is not None else f"none (the test set alone: {floor:.2f})" if floor > target else ">200"
        need.append(f"MDD {target:g}: {text}")
    lines.append(f"seeds per run needed at {units} {unit_name}: " + "; ".join(need))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", default=",".join(DEFAULTS), help="comma-separated benchmarks (default: all six)")
    p.add_argument("--seed-sd", help="bench=value,...: between-seed SD of a run's headline")
    p.add_argument("--unit-sd", help="bench=value,...: SD of the per-unit paired difference")
    p.add_argument("--units", help="bench=value,...: test units at scale 1 (default: the mini test set)")
    p.add_argument("--seeds", default="1,2,3,5,10", help="seeds per run, rows (default 1,2,3,5,10)")
    p.add_argument("--scale", default="1,4,16", help="test-set sizes as multiples of --units, columns")
    p.add_argument("--pooled-df", type=float, default=32.0,
                   help="df of the pooled seed SD for one-seed runs (default 32: 16 runs x 2)")  # fmt: skip
    p.add_argument("--target", help="bench=value,...: MDD to reach (default: three per benchmark)")
    a = p.parse_args(argv)
    seed_sd, unit_sd, units, target = (_pairs(x, n) for x, n in
                                       ((a.seed_sd, "--seed-sd"), (a.unit_sd, "--unit-sd"), (a.units, "--units"),
                                        (a.target, "--target")))  # fmt: skip
    out: list[str] = []
    for bench in a.bench.split(","):
        if bench not in DEFAULTS:
            raise SystemExit(f"--bench: {bench!r} is not one of {list(DEFAULTS)}")
        _, sd, measured, usd, n_units, _, targets = DEFAULTS[bench]
        out += table(
            bench,
            seed_sd.get(bench, sd),
            unit_sd.get(bench, usd),
            int(units.get(bench, n_units)),
            _ints(a.seeds),
            _ints(a.scale),
            a.pooled_df if a.pooled_df > 0 else math.inf,
            (target[bench],) if bench in target else targets,
            measured and bench not in seed_sd,
        )
        out.append("")
    print("\n".join(out).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
