"""The m6bench CLI driven through Typer's CliRunner on a real ml-100k slice."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from m6rec_bench.cli import app

runner = CliRunner()


def test_run_writes_leaderboards_and_resumes(ml100k_slice, tmp_path):
    args = ["run", "--dataset", str(ml100k_slice.folder), "--models", "Pop,BPR", "--epochs", "2",
            "--seeds", "2", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    board = tmp_path / "lb" / ml100k_slice.name / "default"
    data = json.loads((board / "leaderboard.json").read_text())
    rows = {r["label"]: r for r in data["rows"]}
    assert set(rows) == {"Pop", "BPR"} and rows["BPR"]["seeds"] == [2020, 2021]
    assert rows["BPR"]["test"]["ndcg@10"]["n"] == 2
    assert "--models BPR --seeds 2 --epochs 2" in rows["BPR"]["reproduce"]["command"]
    md = (board / "leaderboard.md").read_text()
    assert "| BPR |" in md and "Test NDCG@10" in md
    csv_lines = (board / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("rank,model")
    assert len(list((tmp_path / "runs").rglob("seed*.json"))) == 4

    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "4 reused" in again.output


def test_show_prints_the_leaderboard(ml100k_slice, tmp_path):
    out = tmp_path / "lb"
    runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop", "--runs-dir", str(tmp_path / "r"), "-o", str(out)])
    res = runner.invoke(app, ["leaderboard", "show", "--dataset", str(ml100k_slice.folder), "--dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "Pop" in res.output
    missing = runner.invoke(app, ["leaderboard", "show", "--dataset", "movielens", "--dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "m6bench run --dataset movielens" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-d", "movielns"], "did you mean 'movielens'"),
        (["run", "-d", "movielens", "-m", "BRP"], "did you mean 'BPR'"),
        (["run", "-d", "movielens", "-m", "BPR", "--seeds", "zero"], "--seeds takes a count"),
        (["run", "-d", "movielens", "-m", "BPR", "--seeds", "2022"], "write --seeds 2022,"),
        (["run", "-d", "movielens", "-m", "BPR", "--protocol", "colditem"], "protocol 'colditem' not found"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(args, message):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_refused(ml100k_slice):
    res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop", "--device", "cuda"])
    assert res.exit_code == 2 and "sees no CUDA GPU" in res.output


def test_malformed_suite_config_names_the_line(tmp_path):
    cfg = tmp_path / "suite.yaml"
    cfg.write_text("models: [BPR\nseeds: 2\n")
    res = runner.invoke(app, ["run", "--config", str(cfg)])
    assert res.exit_code == 2 and "line" in res.output and str(cfg) in res.output
    cfg.write_text("modles: [BPR]\n")
    res = runner.invoke(app, ["run", "--config", str(cfg)])
    assert res.exit_code == 2 and "modles" in res.output


def test_suite_config_file_runs(ml100k_slice, tmp_path):
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(f"datasets: ['{ml100k_slice.folder}']\nmodels: [Pop]\nseeds: [5, 6]\n"
                   f"runs_dir: {tmp_path / 'runs'}\nleaderboard_dir: {tmp_path / 'lb'}\n")
    res = runner.invoke(app, ["run", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "lb" / ml100k_slice.name / "default" / "leaderboard.json").read_text())
    assert data["rows"][0]["seeds"] == [5, 6]


def test_models_and_plugins_list():
    res = runner.invoke(app, ["models", "list", "--kind", "baseline"])
    assert res.exit_code == 0 and "LightGCN" in res.output and "MultiVAE" in res.output
    res = runner.invoke(app, ["plugins", "list"])
    assert res.exit_code == 0


def _command_paths(group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name)
        if hasattr(cmd, "commands"):
            yield from _command_paths(cmd, (*path, name))


def test_every_command_has_help():
    """Every command's help, found by walking the CLI, renders at 80 columns with a description, nothing cut."""
    paths = [(), *_command_paths(typer.main.get_command(app))]
    assert len(paths) >= 16
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert res.exit_code == 0, path
        lines = res.output.splitlines()
        usage = next(i for i, line in enumerate(lines) if "Usage" in line)
        assert lines[usage + 2].strip() and "╭" not in lines[usage + 2], f"{path}: no description"
        assert max(len(line) for line in lines) <= 80, path
        assert "…" not in res.output, f"{path}: a help text is cut"
