"""One resolved cell (issue #15): ``run``, ``tune``, resume, a dead worker's record and artifacts all
resolve a cell through :func:`m6rec_bench.resolve.resolve`, so they refuse the same cells with the
same message and give a cell the same id; the engine does not tune (the pipeline does)."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.engine.cell import failed_record, finished_record, run_cell
from m6rec_bench.engine.suite import SuiteConfig, run_suite
from m6rec_bench.errors import UsageError
from m6rec_bench.pipeline import PipelineConfig, pipeline
from m6rec_bench.resolve import CellSpec, resolve
from m6rec_bench.results.store import RecordStore
from m6rec_bench.tuning import tune

runner = CliRunner()


def _refusal(output: str) -> str:
    return " ".join(output.split())


def test_tune_refuses_a_plugin_outside_its_protocols_up_front_like_run(ml100k_slice, tmp_path):
    """``m6bench tune -m M6-Adapt -p default`` used to start a study and fail its trial; now it is
    refused before any study exists, with exactly the message ``m6bench run`` gives."""
    folder = str(ml100k_slice.folder)
    ran = runner.invoke(app, ["run", "-d", folder, "-m", "M6-Adapt", "-p", "default", "--epochs", "1",
                              "--runs-dir", str(tmp_path / "runs-run"), "--out", str(tmp_path / "lb")])
    tuned = runner.invoke(app, ["tune", "-d", folder, "-m", "M6-Adapt", "-p", "default", "-n", "2", "--epochs", "1",
                                "--runs-dir", str(tmp_path / "runs-tune")])
    assert ran.exit_code == 2 and tuned.exit_code == 2, (ran.output, tuned.output)
    message = "plugin 'M6-Adapt' runs only under --protocol user-group, not 'default'"
    assert message in _refusal(ran.output) and message in _refusal(tuned.output)
    assert _refusal(tuned.output) == _refusal(ran.output)
    assert not (tmp_path / "runs-tune").exists()  # no study journal: nothing started
    with pytest.raises(UsageError, match="runs only under --protocol user-group"):
        tune("M6-Adapt", ml100k_slice, n_trials=1, protocol="default", runs_dir=tmp_path / "runs-lib")
    assert not (tmp_path / "runs-lib").exists()


def test_tune_refuses_a_bad_fixed_override_like_run(ml100k_slice, tmp_path):
    with pytest.raises(UsageError) as by_tune:
        tune("BPR", ml100k_slice, n_trials=1, overrides={"data_path": "/etc"}, runs_dir=tmp_path)
    with pytest.raises(UsageError) as by_resolve:
        resolve(CellSpec(dataset=ml100k_slice.name, model="BPR", overrides={"data_path": "/etc"}), ml100k_slice)
    assert str(by_tune.value) == str(by_resolve.value)


def test_every_path_gives_a_cell_the_id_of_its_resolution(ml100k_slice, tmp_path):
    store = RecordStore(tmp_path)
    spec = CellSpec(dataset=str(ml100k_slice.folder), model="Pop", epochs=1)
    cell = resolve(spec, ml100k_slice)
    assert cell.runnable and cell.split is not None and cell.config["seed"] == spec.seed
    rec = run_cell(spec, store=store, prepared=ml100k_slice)
    assert rec.status == "ok" and rec.cell_id == cell.cell_id and rec.config == cell.config
    assert finished_record(spec, store, ml100k_slice).cell_id == cell.cell_id
    dead = failed_record(spec, "worker died", prepared=ml100k_slice)
    assert dead.cell_id == cell.cell_id and dead.config == cell.config
    # a variant has its own id (its method is part of it); its twin is the plain cell
    assert resolve(spec.model_copy(update={"rerank": "mmr"}), ml100k_slice).cell_id != cell.cell_id
    assert spec.model_copy(update={"rerank": "mmr"}).twin() == spec


def test_a_dataset_without_what_the_model_needs_resolves_to_a_skipped_cell(ml100k_slice, tmp_path):
    bare = dataclasses.replace(ml100k_slice, features=dataclasses.replace(ml100k_slice.features, item_text=(), kg=False))
    spec = CellSpec(dataset=bare.name, model="M6-Fusion", epochs=1)
    cell = resolve(spec, bare)
    assert cell.missing and not cell.runnable and cell.split is None and cell.config == {"overrides": {}}
    rec = run_cell(spec, store=RecordStore(tmp_path), prepared=bare)
    assert rec.status == "skipped" and rec.cell_id == cell.cell_id
    with pytest.raises(UsageError, match="which M6-Fusion needs"):
        tune("M6-Fusion", bare, n_trials=1, runs_dir=tmp_path)


def test_the_engine_does_not_tune_the_pipeline_does(tmp_path):
    cfg = SuiteConfig(datasets=["x"], models=["Pop"], tune_budget=2, runs_dir=tmp_path / "r", leaderboard_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="pipeline"):
        run_suite(cfg)
    assert not (tmp_path / "r").exists()


def test_pipeline_takes_its_config_or_its_fields(ml100k_slice, tmp_path):
    settings = dict(datasets=[str(ml100k_slice.folder)], models=["Pop"], epochs=1, runs_dir=tmp_path / "runs",
                    leaderboard_dir=tmp_path / "lb")
    by_fields = pipeline(**settings)
    assert by_fields.config == PipelineConfig(**settings)
    assert [r.status for r in by_fields.records] == ["ok"] and not by_fields.failed
    assert by_fields.boards and by_fields.boards[0][1]["md"].is_file()
    again = pipeline(PipelineConfig(**settings))
    assert again.reused == 1 and again.records[0].cell_id == by_fields.records[0].cell_id
    with pytest.raises(UsageError, match="not both"):
        pipeline(PipelineConfig(**settings), epochs=2)
    with pytest.raises(UsageError, match="bad suite settings"):
        pipeline(datasets=["x"], seeds=0)
