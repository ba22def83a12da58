"""``--jobs N``: cells in worker processes give the same records as the sequential run."""

from __future__ import annotations

import json

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
