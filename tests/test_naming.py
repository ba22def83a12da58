"""One name for each thing: the leaderboard root is --out, one default seed, one atomic-header rule,
one accessor of RecBole's private loader dataset, and one datasets.yaml (the top-level file)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import setuptools
from typer.testing import CliRunner

from m6rec_bench import compat, rerank
from m6rec_bench.cli import app
from m6rec_bench.datasets import registry as datasets_registry
from m6rec_bench.datasets.atomic import header_names, read_header, split_column
from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench.engine.cell import CellSpec
from m6rec_bench.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ------------------------------------------------------------------ --out everywhere, --dir hidden


@pytest.mark.parametrize("command", [["leaderboard", "show"], ["leaderboard", "prune"], ["publish"]])
def test_the_leaderboard_root_is_out_and_dir_is_a_hidden_alias(command):
    shown = runner.invoke(app, [*command, "--help"], terminal_width=200).output
    assert "--out" in shown and "--dir" not in shown


@pytest.mark.parametrize("option", ["--out", "-o", "--dir"])
def test_out_and_its_old_name_reach_the_same_root(tmp_path, option):
    res = runner.invoke(app, ["leaderboard", "show", "-d", "ml-100k", option, str(tmp_path)])
    assert res.exit_code == 2 and f"no leaderboard at {tmp_path}" in res.output
    res = runner.invoke(app, ["publish", option, str(tmp_path)])
    assert res.exit_code == 2 and f"no leaderboard.json under {tmp_path}" in res.output


def test_out_and_dir_naming_two_roots_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["publish", "--out", str(tmp_path / "a"), "--dir", str(tmp_path / "b")])
    assert res.exit_code == 2 and "--dir is the old name of --out; give one of them" in res.output


# ------------------------------------------------------------------ one seed, a re-ranker not a "policy"


def test_one_default_seed():
    from m6rec_bench.engine.suite import SuiteConfig

    assert CellSpec(dataset="ml-100k", model="BPR").seed == DEFAULT_SEED == 2020
    assert SuiteConfig(datasets=["ml-100k"], models=["BPR"], seeds=2).seed_list() == [DEFAULT_SEED, DEFAULT_SEED + 1]
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "m6rec_bench").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"(seed\w*\s*(:\s*int\s*)?=\s*2020|range\(2020)", line)]
    assert offenders == [], f"use m6rec_bench.defaults.DEFAULT_SEED: {offenders}"


def test_the_replay_interface_is_a_reranker():
    assert not hasattr(rerank, "Policy")  # "policy" read as one more kind of protocol
    for method in ("choose", "update"):  # what replay needs, and LinUCB provides
        assert hasattr(rerank.Reranker, method) and callable(getattr(rerank.LinUCB(), method))


# ------------------------------------------------------------------ one atomic-header rule


def test_one_header_rule(tmp_path):
    assert split_column("user_id:token") == ("user_id", "token") and split_column("x") == ("x", "")
    assert split_column("a:b:token") == ("a", "b:token")  # the name ends at the first ':'
    assert header_names("user_id:token\titem_id:token\trating:float\r\n") == ["user_id", "item_id", "rating"]
    good, bad = tmp_path / "g.inter", tmp_path / "b.inter"
    good.write_text("user_id:token\titem_id:token_seq\n1\t2\n", encoding="utf-8")
    bad.write_text("user_id:token\ta:b:token\n1\t2\n", encoding="utf-8")
    assert read_header(good) == [("user_id", "token"), ("item_id", "token_seq")]
    with pytest.raises(DataError, match="'a:b:token' is not 'name:type'"):
        read_header(bad)


# ------------------------------------------------------------------ RecBole's private loader state, in compat only


def test_loader_dataset_and_negative_exclusion_live_in_compat():
    used = [set(), {3}]
    loader = SimpleNamespace(_dataset="ds", _sampler=SimpleNamespace(used_ids=used))
    assert compat.loader_dataset(loader) == "ds" and compat.samples_negatives(loader)
    assert compat.exclude_negatives(loader, [5, 7]) and used == [{5, 7}, {3, 5, 7}]
    plain = SimpleNamespace(_dataset="ds", _sampler=None)
    assert not compat.samples_negatives(plain) and not compat.exclude_negatives(plain, [1])


def test_nothing_else_reads_recbole_private_loader_fields():
    # the core, and the built-in plugins (they reach the accessor through the plugin API)
    sources = list((ROOT / "m6rec_bench").rglob("*.py")) + list((ROOT / "plugins").rglob("*.py"))
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sources if p.name != "compat.py"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\._dataset\b|\._sampler\b", line)]
    assert offenders == [], f"use compat.loader_dataset / compat.exclude_negatives: {offenders}"


# ------------------------------------------------------------------ the top-level datasets.yaml is the one read


def test_a_checkout_reads_the_top_level_datasets_yaml(monkeypatch):
    monkeypatch.delenv(datasets_registry.ENV_VAR, raising=False)
    assert datasets_registry.registry_path() == datasets_registry.PACKAGED_YAML == ROOT / "datasets.yaml"
    assert datasets_registry.load_registry().path == ROOT / "datasets.yaml"
    assert not datasets_registry.WHEEL_YAML.is_symlink()  # a symlink does not survive an sdist


def test_a_wheel_gets_a_copy_of_the_top_level_file(tmp_path, monkeypatch):
    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    runpy.run_path(str(ROOT / "setup.py"))
    build_py = captured["cmdclass"]["build_py"](setuptools.Distribution({"packages": [], "script_name": "setup.py"}))
    build_py.ensure_finalized()
    build_py.build_lib = str(tmp_path)
    build_py.run()
    copy = tmp_path / "m6rec_bench" / "datasets" / "datasets.yaml"
    assert copy.read_bytes() == (ROOT / "datasets.yaml").read_bytes() and str(copy) in build_py.get_outputs()
    assert "include datasets.yaml" in (ROOT / "MANIFEST.in").read_text().splitlines()
