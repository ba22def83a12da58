"""``--jobs N``: cells in worker processes give the same records as the sequential run."""

from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

from m6rec_bench.cli import app


def test_jobs_2_matches_sequential(ml100k_slice, tmp_path):
    runner = CliRunner()
    boards = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"lb{jobs}"
        res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop,ItemKNN,BPR", "--epochs", "2",
                                  "--seeds", "1", "--jobs", jobs, "--runs-dir", str(tmp_path / f"runs{jobs}"), "--out", str(out)])
        assert res.exit_code == 0, res.output
        boards[jobs] = json.loads((out / ml100k_slice.name / "default" / "leaderboard.json").read_text())
    for a, b in zip(boards["1"]["rows"], boards["2"]["rows"], strict=True):
        assert a["label"] == b["label"] and a["seeds"] == b["seeds"]
        for metric in ("ndcg@10", "recall@10"):
            assert abs(a["test"][metric]["mean"] - b["test"][metric]["mean"]) < 2e-3, (a["label"], metric)


@pytest.mark.slow  # ~35 s on 2 cores: two full tuning studies
def test_parallel_tuning_matches_sequential(ml100k_slice, tmp_path):
    """--tune-budget 2 --jobs 2: each model's study in its own worker, same studies and best params as --jobs 1."""
    import optuna

    from m6rec_bench.results.store import RecordStore
    from m6rec_bench.tuning import open_storage

    runner = CliRunner()
    found = {}
    for jobs in ("1", "2"):
        runs, out = tmp_path / f"runs{jobs}", tmp_path / f"lb{jobs}"
        res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "ItemKNN,BPR", "--epochs", "2",
                                  "--tune-epochs", "1", "--tune-budget", "2", "--seeds", "1", "--jobs", jobs,
                                  "--runs-dir", str(runs), "--out", str(out)])
        assert res.exit_code == 0, res.output
        storage = open_storage(None, runs).backend
        studies = {}
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
            assert len(finished) == 2, (jobs, summary.study_name)
            assert all(t.user_attrs.get("epochs_run", 1) <= 1 for t in finished)  # --tune-epochs 1, not --epochs 2
            studies[summary.study_name] = study.best_trial.user_attrs["overrides"]
        records = {r.model: r for r in RecordStore(runs).records()}
        for name, best in studies.items():
            config = records[name.split(".")[0]].config
            assert {k: config[k] for k in best} == best and config["m6_tune_budget"] == 2
            assert config["m6_tune_epochs"] == 1 and config["epochs"] == 2 and config["m6_tune_study"] == name
        assert "≤ 1 epochs each" in (out / ml100k_slice.name / "default-tuned" / "leaderboard.md").read_text()
        found[jobs] = studies
    assert sorted(s.split(".")[0] for s in found["1"]) == ["BPR", "ItemKNN"]
    assert found["1"] == found["2"]  # same study names, same best params
