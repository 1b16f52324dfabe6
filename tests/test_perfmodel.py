"""The performance model Φ: learns a known rank -> score relation, reports Table VIII's errors, refuses bad data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.core.schedule import Schedule
from hydra_repro.errors import UserError
from hydra_repro.report.inputs import read_perfmodel
from hydra_repro.search.perfmodel import (
    BENCHMARKS,
    MODELS,
    Standardizer,
    _errors,
    collect_points,
    fit_transformer,
    run_perfmodel,
)

LAYERS, R = 6, 8


def synthetic_points(n: int, seed: int = 0) -> list[dict]:
    """Schedules with a depth slope s and an Up tilt t (like HyDRA's, which vary along few directions), scored by
    known functions of (s, t)."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        s, t = rng.uniform(-1, 1, size=2)
        ranks = [
            [max(1, round(R + 3 * s * (l - LAYERS / 2) + 4 * t * (c == 4))) for c in range(7)] for l in range(LAYERS)
        ]
        values = (s, t, s + t, s * t, -s, s * s)
        scores = {b: float(v) for b, v in zip(BENCHMARKS, values, strict=True)}
        points.append({"run": f"p{i:03d}", "ranks": ranks, "r_standard": R, "scores": scores})
    return points


def test_transformer_learns_a_known_relation_better_than_the_mean():
    cfg = PerfModelConfig(epochs=400, folds=3, repeats=1)
    out = run_perfmodel(cfg, synthetic_points(60))
    # predicting the training mean scores ~1.0 in standardised units
    assert out["models"]["transformer"]["mse"] < 0.2, out["models"]
    assert set(out["models"]) == set(MODELS)
    for m in MODELS:
        assert {"mse", "mae", "mse_kfold_mean", "mse_kfold_std", "mae_kfold_mean", "mae_kfold_std"} <= set(
            out["models"][m]
        )
    train, val = out["curves"]["transformer train"], out["curves"]["transformer validation"]
    assert len(train) == len(val) == 400 and train[-1] < train[0]
    assert out["split"] == {"train": 48, "validation": 12, "folds": 3, "repeats": 1}


def test_output_is_what_the_tables_read(tmp_path):
    out = run_perfmodel(PerfModelConfig(epochs=5, folds=2, repeats=1), synthetic_points(10))
    path = tmp_path / "perfmodel.json"
    path.write_text(json.dumps(out))
    assert read_perfmodel(path)["models"]["rf"]["mse"] == out["models"]["rf"]["mse"]


def test_fit_is_deterministic():
    x = np.array([np.asarray(p["ranks"]) / R for p in synthetic_points(12)])
    y = np.array([[p["scores"][b] for b in BENCHMARKS] for p in synthetic_points(12)])
    a = fit_transformer(x, y, PerfModelConfig(epochs=20))[0](x)
    b = fit_transformer(x, y, PerfModelConfig(epochs=20))[0](x)
    assert np.array_equal(a, b)


def test_degenerate_data_sets_are_refused():
    cfg = PerfModelConfig(folds=5, epochs=2)
    with pytest.raises(UserError, match="no evaluated schedule runs"):
        run_perfmodel(cfg, [])
    with pytest.raises(UserError, match=r"4 data points; need at least 5 \(perfmodel.folds = 5\)"):
        run_perfmodel(cfg, synthetic_points(4))
    constant = synthetic_points(8)
    for p in constant:
        p["scores"] = dict.fromkeys(BENCHMARKS, 1.0)
    with pytest.raises(UserError, match="constant targets"):
        run_perfmodel(cfg, constant)
    mixed = synthetic_points(8)
    mixed[0]["ranks"] = mixed[0]["ranks"][:-1]
    with pytest.raises(UserError, match=r"different layer counts \[5, 6\]"):
        run_perfmodel(cfg, mixed)


def test_a_constant_benchmark_is_kept_and_reported():
    points = synthetic_points(10)
    for p in points:
        p["scores"]["mmbench"] = 0.0
    out = run_perfmodel(PerfModelConfig(epochs=5, folds=2, repeats=1), points)
    assert out["constant_benchmarks"] == ["mmbench"]


@pytest.mark.parametrize(
    "kwargs, key", [({"folds": 1}, "folds"), ({"d_model": 30}, "d_model"), ({"val_fraction": 1.0}, "val_fraction")]
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(UserError, match=f"perfmodel.{key}"):
        PerfModelConfig(**kwargs)


def test_points_come_from_evaluated_schedule_runs_of_the_role(tmp_path):
    schedules, results = tmp_path / "schedules", tmp_path / "results"
    schedules.mkdir()
    results.mkdir()
    headline = dict.fromkeys(BENCHMARKS, 50.0)

    def plan(run, model="small", method="lora", result=True, infeasible=False):
        d = {"run": run, "model": model, "method": method, "r_standard": R}
        if infeasible:
            d["infeasible"] = "too many stages"
        elif method != "full":
            d["schedule"] = Schedule.uniform(LAYERS, R, run).to_dict()
        (schedules / f"{run}.json").write_text(json.dumps(d))
        if result:
            (results / f"{run}.json").write_text(json.dumps({"headline": headline}))

    plan("lora_small")
    plan("hydra_small", method="schedule")
    plan("full_small", method="full")
    plan("lora_large", model="large")
    plan("not_evaluated", result=False)
    plan("infeasible_small", method="schedule", result=False, infeasible=True)
    points = collect_points(schedules, results, "small")
    assert [p["run"] for p in points] == ["hydra_small", "lora_small"]
    assert points[0]["ranks"] == [[R] * 7] * LAYERS and points[0]["scores"] == headline


def test_the_stage_records_a_degenerate_data_set_when_asked(tmp_path):
    import argparse

    from hydra_repro.stages import perfmodel

    params = tmp_path / "params.yaml"
    for mode, expect in (("record", 0), ("error", None)):
        params.write_text(f"profile: smoke\nprofiles:\n  smoke:\n    perfmodel: {{on_degenerate: {mode}}}\n")
        args = argparse.Namespace(params=params, profile=None, role=None, schedules=tmp_path, results=tmp_path,
                                  search=None, out=tmp_path / "perf.json")  # fmt: skip
        if expect is None:
            with pytest.raises(UserError, match="no evaluated schedule runs"):
                perfmodel.run(args)
        else:
            assert perfmodel.run(args) == 0
            assert "no evaluated schedule runs" in json.loads((tmp_path / "perf.json").read_text())["degenerate"]


def test_errors_leave_out_benchmarks_constant_in_training():
    y = np.zeros((4, len(BENCHMARKS)))
    y[:, 0] = [1.0, 2.0, 3.0, 4.0]  # only the first benchmark varies
    scale = Standardizer(y)
    pred = scale(y).copy()
    pred[:, 0] += 0.5  # error 0.5 on the varying benchmark
    pred[:, 1] += 9.0  # a constant benchmark: predicted anything, it is left out
    assert _errors(pred, scale(y), scale) == {"mse": 0.25, "mae": 0.5}


def test_kfold_errors_are_stored_per_fold_for_paired_comparisons():
    out = run_perfmodel(PerfModelConfig(epochs=5, folds=2, repeats=2), synthetic_points(10))
    for m in out["models"].values():
        assert len(m["mse_kfold"]) == 4 and np.mean(m["mse_kfold"]) == pytest.approx(m["mse_kfold_mean"])


def test_the_stage_fits_and_writes_the_per_fold_errors(tmp_path, capsys):
    import argparse

    from hydra_repro.stages import perfmodel

    params = tmp_path / "params.yaml"
    params.write_text("profile: smoke\nprofiles:\n  smoke:\n    perfmodel: {epochs: 5, folds: 2, repeats: 1}\n")
    points = [p | {"role": "small", "arm": "random"} for p in synthetic_points(8)]
    (tmp_path / "search.json").write_text(json.dumps({"points": points}))
    args = argparse.Namespace(params=params, profile=None, role=None, schedules=tmp_path, results=tmp_path,
                              search=tmp_path / "search.json", out=tmp_path / "perf.json")  # fmt: skip
    assert perfmodel.run(args) == 0
    out = json.loads((tmp_path / "perf.json").read_text())
    assert out["points"] == 8 and all(len(m["mse_kfold"]) == 2 for m in out["models"].values())
    assert '"transformer"' in capsys.readouterr().out
