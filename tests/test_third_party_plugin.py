"""A third-party plugin, built and installed as a real distribution, is found, listed and run.

The plugin's code is the "Adding a plugin" example of README.md, so the README stays true. Through
the plugin API's hooks alone (no core change) it folds in for ``m6bench serve`` and brings its own
column set to the board, exactly as the built-ins do.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from m6rec_bench import artifacts
from m6rec_bench.cli import app
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.models import registry
from m6rec_bench.results.store import RecordStore

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install a package holding the README plugin (+ one broken entry point) into a folder."""
    pkg = tmp_path_factory.mktemp("pkg")
    code = next(b for b in _readme_blocks("python") if "class MF(" in b)
    (pkg / "my_plugin.py").write_text(code)
    entry = next(b for b in _readme_blocks("toml") if "m6rec_bench.plugins" in b)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "my-mf-plugin"\nversion = "0.3.1"\n[tool.setuptools]\npy-modules = ["my_plugin"]\n'
        + entry.replace("# pyproject.toml of your package\n", "")
        + 'Broken = "my_missing_module:plugin"\n'
    )
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "--target", str(target), str(pkg)], check=True)
    return target


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield
    sys.modules.pop("my_plugin", None)
    registry.refresh()


def test_listed_with_package_and_version_and_broken_one_reported(installed):
    entry = registry.get("MyMF")
    assert (entry.kind, entry.family, entry.package, entry.version) == ("plugin", "cf", "my-mf-plugin", "0.3.1")
    broken = {b.name: b for b in registry.broken_plugins()}
    assert "Broken" in broken and "my_missing_module" in broken["Broken"].error
    res = CliRunner().invoke(app, ["plugins", "list"])
    assert res.exit_code == 0 and "MyMF" in res.output and "broken" in res.output


def test_runs_through_the_same_engine(installed, ml100k_slice):
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model="MyMF", epochs=2), prepared=ml100k_slice, command="t")
    assert rec.status == "ok", rec.reason
    assert rec.model_kind == "plugin" and rec.versions["my-mf-plugin"] == "0.3.1"
    assert 0 < rec.test["ndcg@10"] <= 1


def test_allow_list_env_restricts_loading(installed, monkeypatch):
    monkeypatch.setenv(registry.ALLOW_ENV, "MyMF")
    registry.refresh()
    assert set(registry.plugins()) == {"MyMF"}
    assert registry.broken_plugins() == []


def test_readme_plugin_imports_only_the_plugin_api():
    code = next(b for b in _readme_blocks("python") if "class MF(" in b)
    core = re.findall(r"^(?:from|import) (m6rec_bench\S*)", code, flags=re.M)
    assert core == ["m6rec_bench.plugin_api"]


@pytest.fixture(scope="module")
def trained(site, ml100k_slice, tmp_path_factory):
    """MyMF trained for 2 epochs into a runs folder (record + artifact), the package installed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        registry.refresh()
        runs = tmp_path_factory.mktemp("runs")
        store = RecordStore(runs)
        rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="MyMF", epochs=2), store=store,
                       resume=False, prepared=ml100k_slice)
        assert rec.status == "ok", rec.reason
        yield runs, store.path_for(rec), rec
    sys.modules.pop("my_plugin", None)
    registry.refresh()


def test_serve_folds_in_through_the_hook(installed, trained, ml100k_slice):
    from m6rec_bench.serve.scoring import Recommender, fold_in_models

    _, path, _ = trained
    loaded = artifacts.load(path, prepared=ml100k_slice)
    assert "MyMF" in fold_in_models()
    rec = Recommender(loaded)
    assert rec.scorer.can_fold_in
    # an anonymous list: the normalised sum of its unit item vectors, every listed item excluded
    tokens = loaded.items[1:6]
    ids = np.asarray([loaded.item_id(t) for t in tokens])
    answer = rec.recommend_items(tokens, k=10)
    assert answer.folded_in and len(answer.items) == 10 and not set(answer.items) & set(tokens)
    items = loaded.model.item.weight.detach()
    u = torch.nn.functional.normalize(torch.nn.functional.normalize(items[ids], dim=1).sum(0), dim=0)
    expected = (items @ u).numpy()
    assert answer.scores == pytest.approx(expected[[loaded.item_id(t) for t in answer.items]].tolist(), abs=1e-5)
    assert answer.scores == sorted(answer.scores, reverse=True)
    # a known user with nothing posted: the model's own ranking (its full_sort_predict scores)
    user = loaded.users[3]
    own = rec.recommend_user(user, k=5)
    uid = loaded.user_id(user)
    scores = (loaded.model.user.weight.detach()[uid] @ items.T).numpy()
    assert not own.folded_in and own.scores == pytest.approx(scores[[loaded.item_id(t) for t in own.items]].tolist(),
                                                              abs=1e-5)
    rec.add_interactions(user, [own.items[0]])
    assert rec.recommend_user(user, k=5).folded_in


def test_board_shows_the_plugins_column_set(installed, trained, tmp_path):
    runs, _, record = trained
    norms = record.extra_metrics["norms"]
    assert set(norms) == {"user", "item"} and all(v > 0 for v in norms.values())
    out = tmp_path / "boards"
    res = CliRunner().invoke(app, ["leaderboard", "build", "--runs-dir", str(runs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = next(out.rglob("leaderboard.md")).read_text()
    header = next(line for line in md.splitlines() if line.startswith("| # |"))
    assert "| User norm | Item norm |" in header
    row = next(line for line in md.splitlines() if "| MyMF |" in line)
    assert f"{norms['user']:,.3f}" in row and f"{norms['item']:,.3f}" in row
    assert "*User / Item norm*: mean L2 norm of the trained vectors." in md
    csv_header = next(out.rglob("leaderboard.csv")).read_text().splitlines()[0]
    assert "norms_user" in csv_header and "norms_item" in csv_header
