"""The m6bench CLI driven through Typer's CliRunner on a real ml-100k slice."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch
import typer
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.models import registry

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


def test_models_list_baselines():
    res = runner.invoke(app, ["models", "list", "--kind", "baseline"])
    assert res.exit_code == 0 and "LightGCN" in res.output and "MultiVAE" in res.output
    plugins = [m.name for m in registry.all_models() if m.kind == "plugin"]
    assert plugins and not any(name in res.output for name in plugins)  # --kind baseline lists no plugin


def _plugin_rows(*args: str) -> dict[str, dict[str, str]]:
    res = runner.invoke(app, ["plugins", "list", "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return {row["name"]: row for row in json.loads(res.output)}


def test_plugins_list_shows_every_plugin_with_family_needs_package_and_version():
    """One row per loaded plugin with its own family, needs, package and installed version; --check imports
    them all (status ok); M6BENCH_PLUGINS restricts the listing to the plugins named."""
    loaded = registry.plugins()
    version = metadata.version("m6rec-plugins")
    for rows in (_plugin_rows(), _plugin_rows("--check")):
        assert sorted(rows) == sorted(loaded)
        for name, plugin in loaded.items():
            row = rows[name]
            assert (row["family"], row["needs"]) == (plugin.family, ", ".join(sorted(plugin.needs))), name
            assert (row["package"], row["version"]) == ("m6rec-plugins", version), name
            assert row["description"] == plugin.description and row["status"] in {"ok", "listed"}, name
    assert {row["status"] for row in rows.values()} == {"ok"}  # after --check every plugin was imported
    table = runner.invoke(app, ["plugins", "list"], env={"COLUMNS": "200"}, terminal_width=200).output
    assert all(f"{name} " in table for name in loaded) and "m6rec-plugins" in table and version in table

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("M6BENCH_PLUGINS", "GNN-NGCF,KG-TransE")
            registry.refresh()
            assert sorted(_plugin_rows()) == ["GNN-NGCF", "KG-TransE"]
    finally:
        registry.refresh()


def _commands(group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))


def test_every_command_has_help():
    """Every command's help, found by walking the CLI, renders at 80 columns with its own usage line and a
    description, nothing cut; a group's help lists each of its commands, a command's help shows each of its
    options (every spelling: ``--dataset`` and ``-d``) and the whole help text of each option and argument."""
    root = typer.main.get_command(app)
    commands = [((), root), *_commands(root)]
    assert len(commands) >= 16
    for path, cmd in commands:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert res.exit_code == 0, path
        lines = res.output.splitlines()
        usage = next(i for i, line in enumerate(lines) if "Usage" in line)
        assert " ".join(("m6bench", *path)) in " ".join(lines[usage].split()), f"{path}: usage names another command"
        assert lines[usage + 2].strip() and "╭" not in lines[usage + 2], f"{path}: no description"
        assert max(len(line) for line in lines) <= 80, path
        assert "…" not in res.output, f"{path}: a help text is cut"
        text = " ".join(res.output.replace("│", " ").split())  # the panels' text, rewrapped lines joined
        words = set(text.replace(",", " ").split())
        if hasattr(cmd, "commands"):
            missing = [name for name, sub in cmd.commands.items() if not sub.hidden and name not in words]
        else:
            shown = [p for p in cmd.params if not getattr(p, "hidden", False)]
            missing = [opt for p in shown if p.param_type_name == "option" for opt in p.opts + p.secondary_opts
                       if opt not in words]
            missing += [p.name for p in shown if p.help and " ".join(p.help.replace("\\[", "[").split()) not in text]
        assert not missing, f"{path}: the help does not show {missing}"
