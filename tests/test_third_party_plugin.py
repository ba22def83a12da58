"""A third-party plugin, built and installed as a real distribution, is found, listed and run.

The plugin's code is the "Adding a plugin" example of README.md, so the README stays true.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.models import registry

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
