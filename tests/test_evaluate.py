"""`hydra-repro evaluate`: result files, headline units, per-sample records, provenance, failures and bad input.

.venv/bin/python -m pytest tests/test_evaluate.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hydra_repro.errors import UserError
from hydra_repro.provenance import sidecar_path
from hydra_repro.stages import evaluate as stage
from hydra_repro.tasks import BENCHMARKS, MINI_TASKS, write_task_yamls
from tests.fakes import (
    fake_components,
    mini_rows,
    write_mini_eval_sets,
    write_parquet,
    write_random_model,
)

# FakeVLM seeing red as blue on 12 documents (see tests/test_tasks.py for the arithmetic); MME is the sum over
# all mini categories, which here are all perception categories.
EXPECTED = {"mme": 700.0, "mmbench": 83.3333, "textvqa": 83.3333, "pope": 66.6667, "gqa": 83.3333, "sqa_img": 100.0}


@pytest.fixture(scope="module")
def ev():
    """hydra_repro.eval.harness with lmms-eval imported once for the module."""
    from hydra_repro.eval import harness as evaluate

    evaluate.import_lmms_eval()
    return evaluate


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "mini"
    write_mini_eval_sets(root / "eval", n=12)
    write_task_yamls(root / "tasks", root / "eval")
    return root


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("runs") / "tiny_base")


def _fake_factory(run_dir: Path):
    from hydra_repro.eval.lmms_model import HydraVLM

    return HydraVLM.from_components(*fake_components({"red": "blue"}), batch_size=4, name=str(run_dir))


@pytest.fixture(scope="module")
def two_result_files(ev, data_dir, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("eval")
    runs = [root / "runs" / "lora_r8", root / "runs" / "hydra_fine"]
    for r in runs:
        r.mkdir(parents=True)
    paths = ev.evaluate_runs(runs, data_dir=data_dir, results_dir=root / "results", model_factory=_fake_factory)
    assert paths == [root / "results" / "lora_r8.json", root / "results" / "hydra_fine.json"]
    return paths


@pytest.fixture(scope="module")
def two_results(two_result_files) -> list[dict]:
    return [json.loads(p.read_text()) for p in two_result_files]


def test_headline_numbers_in_the_papers_units(two_results) -> None:
    for result in two_results:
        assert list(result["headline"]) == list(BENCHMARKS)
        assert result["headline"] == pytest.approx(EXPECTED, abs=1e-3)
        assert result["mme_scope"] == "all" and result["tasks"] == MINI_TASKS
        assert result["details"]["pope_f1_by_category"] == {"adversarial": 0.0, "popular": 1.0, "random": 1.0}
        assert result["metrics"]["mini_pope"]["pope_f1_score"] == pytest.approx(0.8)


def test_per_sample_records_support_paired_tests(two_results) -> None:
    result = two_results[0]
    n_docs = {"mme": 24, "mmbench": 48, "textvqa": 12, "pope": 12, "gqa": 12, "sqa_img": 12}
    assert result["n"] == n_docs
    for bench, records in result["samples"].items():
        assert [r["doc_id"] for r in records] == list(range(n_docs[bench]))
        assert all({"doc_id", "unit", "prediction", "target", "score"} <= set(r) for r in records)
    # the simple benchmarks: the headline is the mean record score
    for bench in ("gqa", "textvqa", "sqa_img"):
        scores = [r["score"] for r in result["samples"][bench]]
        assert 100 * sum(scores) / len(scores) == pytest.approx(result["headline"][bench], abs=1e-3)
    # MMBench: one CircularEval hit per question group, repeated on its 4 rotations
    units = {r["unit"]: r["score"] for r in result["samples"]["mmbench"]}
    assert len(units) == 12 and 100 * sum(units.values()) / 12 == pytest.approx(result["headline"]["mmbench"])
    # MME: the two questions of one image share a unit
    assert len({r["unit"] for r in result["samples"]["mme"]}) == 12
    assert result["samples"]["gqa"][0] == {"doc_id": 0, "unit": 0, "prediction": "blue", "target": "red", "score": 0.0}


def test_provenance_beside_the_result(two_results, two_result_files) -> None:
    assert "provenance" not in two_results[0]  # volatile: the result hashes the same on any machine
    prov = json.loads(sidecar_path(two_result_files[0]).read_text())
    assert prov["packages"]["lmms_eval"] == "0.7.3" and prov["packages"]["torch"] and prov["datasets_version"]
    assert {"git_commit", "git_dirty", "python", "created", "command", "lmms_eval_import_s"} <= set(prov)
    assert prov["hardware"]["cpu_count"] >= 1 and prov["profile"] == "mini" and prov["seed"] == 0
    assert prov["wall_time_s"] > 0


def test_real_model_through_the_cli_verb(ev, data_dir, tiny_model_dir, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    stage.add_arguments(parser)
    args = parser.parse_args(
        [str(tiny_model_dir), "--data-dir", str(data_dir), "--results-dir", str(tmp_path), "--tasks", "pope,mini_gqa"]
        + ["--max-new-tokens", "3", "--batch-size", "8"]
    )
    assert stage.run(args) == 0
    result = json.loads((tmp_path / "tiny_base.json").read_text())
    assert set(result["headline"]) == {"pope", "gqa"}
    assert all(isinstance(r["prediction"], str) for r in result["samples"]["pope"])


def test_bad_input_is_a_user_error_and_writes_nothing(ev, data_dir, tiny_model_dir, tmp_path) -> None:
    kw = dict(data_dir=data_dir, results_dir=tmp_path / "results", model_factory=_fake_factory)
    with pytest.raises(UserError, match="missing_run: run directory not found"):
        ev.evaluate_runs([tmp_path / "missing_run"], **kw)
    with pytest.raises(UserError, match="'mini_vqav2'"):
        ev.evaluate_runs([tiny_model_dir], tasks=["mini_vqav2"], **kw)
    empty = tmp_path / "data"
    write_task_yamls(empty / "tasks", empty / "eval")
    with pytest.raises(UserError, match=r"mini_pope\.parquet: data file for task 'mini_pope' not found"):
        ev.evaluate_runs([tiny_model_dir], tasks=["pope"], **{**kw, "data_dir": empty})
    assert not (tmp_path / "results").exists()


def test_lmms_eval_failure_exits_non_zero_without_a_result_file(ev, tiny_model_dir, tmp_path, capsys) -> None:
    root = tmp_path / "mini"
    rows = mini_rows("mini_mme", 2)[:-1]  # one image has a single question: lmms-eval's pair assertion fails
    write_parquet(rows, root / "eval" / "mini_mme.parquet")
    write_task_yamls(root / "tasks", root / "eval")
    parser = argparse.ArgumentParser()
    stage.add_arguments(parser)
    args = parser.parse_args([str(tiny_model_dir), "--data-dir", str(root), "--results-dir", str(tmp_path / "out")])
    args.tasks = "mme"
    assert stage.run(args) == 1
    assert "lmms-eval failed on tasks ['mini_mme']: AssertionError" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_lazy_evaluate_stand_in_does_not_import_on_probes(ev) -> None:
    lazy = ev._LazyModule("some_heavy_module")
    with pytest.raises(AttributeError):
        lazy.__path__  # noqa: B018


def test_a_hub_download_failure_names_its_root_cause(ev) -> None:
    import tenacity

    @tenacity.retry(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_none())
    def load() -> None:
        raise ConnectionError("lmms-lab/MME: offline")

    with pytest.raises(tenacity.RetryError) as retried:
        load()
    cause = ev.root_cause(retried.value)
    assert isinstance(cause, ConnectionError) and "lmms-lab/MME" in str(cause)
    try:
        raise RuntimeError("outer") from KeyError("inner")
    except RuntimeError as e:
        assert isinstance(ev.root_cause(e), KeyError)
