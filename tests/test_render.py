"""Every table and help screen reads at 80 columns; listing starts fast; warnings from our code fail.

Tables (``models list``, ``plugins list``, ``datasets list``, ``leaderboard show``) are rendered
at 80 columns: no line is longer, no name is split over two lines, and the machine formats parse.
Startup is checked structurally (which heavy modules an import or a listing pulls in); the timing
itself is ``benchmarks/startup.py``.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import types
import warnings
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.datasets import load_registry
from m6rec_bench.models import Plugin, PluginCard, PluginConfig, registry

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ROOT / "leaderboards"
runner = CliRunner()


def _at_80(args: list[str]) -> str:
    res = runner.invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0, res.output
    long = [line for line in res.output.splitlines() if len(line) > 80]
    assert not long, f"{args}: {len(long)} lines over 80 columns, e.g. {long[0]!r}"
    return res.output


def _first_cells(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def test_models_list_fits_80_columns_one_line_per_model():
    out = _at_80(["models", "list"])
    models = registry.all_models()
    assert len(out.splitlines()) <= len(models) + 10 <= 70
    firsts = _first_cells(out)
    missing = [m.name for m in models if m.name not in firsts]
    assert not missing, f"model names not whole at the start of a line: {missing}"
    assert "--wide" in out  # says how to see the hidden columns


def test_models_list_wide_and_machine_formats_have_every_column():
    models = registry.all_models()
    data = json.loads(runner.invoke(app, ["models", "list", "--format", "json"]).output)
    assert [row["name"] for row in data] == [m.name for m in models]
    bpr = next(row for row in data if row["name"] == "BPR")
    assert bpr["protocols"].startswith("default, cold-item, sequential") and bpr["package"] == "recbole"
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["models", "list", "-f", "csv"]).output)))
    assert len(rows) == len(models) and {"name", "needs", "default_suite", "description"} <= set(rows[0])
    wide = runner.invoke(app, ["models", "list", "--wide", "--kind", "plugin"], env={"COLUMNS": "80"}).output
    fusion = next(line for line in wide.splitlines() if line.startswith("M6-Fusion "))
    assert "m6rec-plugins" in fusion and "…" not in fusion  # every column, nothing cut


def test_plugins_list_fits_80_columns():
    out = _at_80(["plugins", "list"])
    firsts = _first_cells(out)
    plugins = [m.name for m in registry.all_models() if m.kind == "plugin"]
    assert plugins and all(name in firsts for name in plugins)
    assert len(out.splitlines()) <= len(plugins) + 10


def test_datasets_list_fits_80_columns_names_and_aliases_whole():
    out = _at_80(["datasets", "list"])
    lines = out.splitlines()
    for spec in load_registry():
        row = next((line for line in lines if line.startswith(spec.name + " ")), None)
        assert row is not None, spec.name
        assert ", ".join(spec.aliases) in row
    data = json.loads(runner.invoke(app, ["datasets", "list", "--format", "json"]).output)
    assert {"name", "aliases", "format", "features", "licence", "cached"} == set(data[0])
    assert "non-commercial" in data[0]["licence"]


@pytest.mark.parametrize("protocol", ["default", "cold-item", "sequential"])
def test_leaderboard_show_fits_80_columns_with_the_paired_test(protocol):
    out = _at_80(["leaderboard", "show", "--dir", str(BOARDS), "--protocol", protocol])
    board = json.loads((BOARDS / "ml-100k" / protocol / "leaderboard.json").read_text())
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("#"))
    assert "NDCG@10" in header.split() and "vs best baseline" in header
    for row in board["rows"]:
        assert any(f" {row['label']} " in f" {line} " for line in lines), row["label"]
    assert any("reference" in line for line in lines)


def test_leaderboard_show_machine_formats():
    data = json.loads(runner.invoke(app, ["leaderboard", "show", "--dir", str(BOARDS), "-f", "json"]).output)
    board = json.loads((BOARDS / "ml-100k" / "default" / "leaderboard.json").read_text())
    assert [row["model"] for row in data] == [row["label"] for row in board["rows"]]
    assert {"ndcg@10", "recall@10", "vs_baseline", "train_s", "status"} <= set(data[0])
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["leaderboard", "show", "--dir", str(BOARDS), "-f", "csv"]).output)))
    assert len(rows) == len(board["rows"]) and rows[0]["vs_baseline"].startswith("+")


def test_run_help_reads_at_80_columns():
    out = _at_80(["run", "--help"])
    assert len(out.splitlines()) <= 100
    for panel in ("Data", "Models", "Protocol", "Budget", "Output", "Scale-out"):
        assert f"─ {panel} ─" in out, panel
    assert "…" not in out and "<bool>" not in out and "``" not in out and "[default:" not in out
    # the long explanations moved into the description, reflowed (no line broken mid-sentence)
    assert "'M6-Fusion [int8]'" in out and '"m6rec-bench[dask]"' in out


def _commands(group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))


def test_every_help_reads_at_80_columns():
    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) >= 15
    for path in [(), *[p for p, _ in commands]]:
        out = _at_80([*path, "--help"])
        assert "Usage" in out, path
        usage_at = next(i for i, line in enumerate(out.splitlines()) if "Usage" in line)
        description = out.splitlines()[usage_at + 2].strip()
        assert description and not description.startswith("╭"), f"{path}: no description"
        assert "…" not in out, f"{path}: a help text is cut"
        assert "<bool>" not in out and "``" not in out, path


def test_bare_groups_print_help_and_exit_0():
    for args in ([], ["models"], ["datasets"], ["leaderboard"]):
        res = runner.invoke(app, args, env={"COLUMNS": "80"})
        assert res.exit_code == 0 and "Usage" in res.output, (args, res.exit_code)


def _modules_after(code: str) -> set[str]:
    """Heavy modules present after running ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(m for m in ('torch', 'recbole', 'scipy.stats', 'torch_geometric', " \
        "'pykeen', 'sentence_transformers') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, check=True)
    return set(res.stdout.split())


def test_cli_import_listing_and_a_typo_import_no_heavy_stack():
    assert _modules_after("import m6rec_bench.cli") == set()
    listing_and_typo = (
        "from typer.testing import CliRunner\nfrom m6rec_bench.cli import app\n"
        "r = CliRunner().invoke(app, ['models', 'list'])\nassert r.exit_code == 0 and 'M6-Fusion' in r.output\n"
        "r = CliRunner().invoke(app, ['plugins', 'list'])\nassert r.exit_code == 0 and 'M6-Fusion' in r.output\n"
        "r = CliRunner().invoke(app, ['run', '-d', 'movielens', '-m', 'BRP'])\n"
        "assert r.exit_code == 2 and \"did you mean 'BPR'\" in r.output, r.output")
    assert _modules_after(listing_and_typo) == set()


def test_planning_a_suite_imports_no_heavy_stack():
    """``m6bench run`` plans (resolves models, checks the device, estimates) in the parent process
    without torch or RecBole: the cells' workers import them, so the parent does not pay for them a
    second time (the workbench's fixed cost over raw RecBole, issue #19)."""
    dry_run = (
        "from typer.testing import CliRunner\nfrom m6rec_bench.cli import app\n"
        "r = CliRunner().invoke(app, ['run', '-d', 'movielens', '-m', 'BPR,LightGCN', '--engine', 'recbole', '--dry-run'])\n"
        "assert r.exit_code == 0 and 'dry run' in r.output, r.output")
    assert _modules_after(dry_run) == set()


class _ProbeConfig(PluginConfig):
    size: int = 1


@pytest.fixture
def probe_package(monkeypatch):
    """An in-memory plugin package: a light top level with PLUGIN_CARDS, the plugin in a submodule."""
    top, sub = types.ModuleType("m6probe"), types.ModuleType("m6probe.model")
    sub.plugin = Plugin(name="Probe", family="cf", description="a probe", config_cls=_ProbeConfig, model_cls=object)
    top.PLUGIN_CARDS = {"Probe": PluginCard("Probe", "cf", "a probe")}
    monkeypatch.setitem(sys.modules, "m6probe", top)
    monkeypatch.setitem(sys.modules, "m6probe.model", sub)
    registry.refresh()
    yield top
    registry.refresh()


def _probe_source(cards):
    ep = metadata.EntryPoint(name="Probe", value="m6probe.model:plugin", group=registry.ENTRY_POINT_GROUP)
    return registry._Source(ep, "m6probe", "0.1", cards)


def test_cards_are_read_from_the_top_level_and_checked_on_load(probe_package):
    cards = registry._declared_cards(_probe_source(None).ep)
    assert cards == (PluginCard("Probe", "cf", "a probe"),)
    assert [p.name for p in registry._load(_probe_source(cards))] == ["Probe"]
    registry.refresh()
    with pytest.raises(registry.PluginLoadError, match="PLUGIN_CARDS"):
        registry._load(_probe_source((replace(cards[0], family="kg"),)))


def test_the_built_in_cards_are_declared():
    plugins = [m for m in registry.all_models() if m.kind == "plugin"]
    assert plugins and all(m.source is not None and m.source.cards is not None for m in plugins)


def test_deprecations_from_our_code_fail_tests_third_party_ones_do_not():
    # pytest's filterwarnings (pyproject.toml) are active inside this test
    for module in ("m6rec_bench.cli.run", "m6rec_plugins.text"):
        for category in (DeprecationWarning, FutureWarning):
            with pytest.raises(category):
                warnings.warn_explicit("deliberate", category, "x.py", 1, module=module, registry={})
    for category in (DeprecationWarning, FutureWarning):  # ignored, not raised
        warnings.warn_explicit("deliberate", category, "x.py", 1, module="sentence_transformers.x", registry={})


def test_loading_the_text_model_prints_nothing(capfd):
    text = pytest.importorskip("m6rec_plugins.text")
    from transformers.utils import logging as hf_logging

    # one load; a deprecated call of ours (get_sentence_embedding_dimension) errors here: pyproject's filterwarnings
    vectors = text.encode_texts(text.DEFAULT_TEXT_MODEL, ["a film", ""])
    assert vectors.shape == (2, 384) and not vectors[1].any()
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "%|" not in out + err
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is back
