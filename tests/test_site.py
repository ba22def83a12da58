"""Publishing: the static site from real runs, rendered in headless Chromium; reproduce a row."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.results import Record

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(ml100k_slice, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop,ItemKNN,BPR", "--seeds", "2",
                              "--epochs", "3", "--runs-dir", str(root / "runs"), "--out", str(root / "lb")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["publish", "--dir", str(root / "lb")])
    assert res.exit_code == 0, res.output
    return root / "lb"


def test_pages_tables_plots_and_record_links(site, ml100k_slice):
    page = site / ml100k_slice.name / "default" / "index.html"
    html = page.read_text()
    assert (site / "index.html").read_text().count("<li>") == 1
    assert html.count("<tr class=") == 3 and "<table class='sortable'" in html
    assert html.count("<svg") == 5  # a bar chart per metric + quality-vs-time
    assert not re.search(r"(src|href)=[\"']https?://", html), "the page must not load anything from the network"
    links = re.findall(r"href='(records/[^']+\.json)'", html)
    assert len(links) == 6
    # beyond-accuracy columns for every row, with the values of the board's JSON
    board = json.loads((page.parent / "leaderboard.json").read_text())
    for heading in ("Coverage@10", "Novelty@10", "ILD@10"):
        assert f"<th>{heading}</th>" in html
    for row in board["rows"]:
        cov = row["extras"]["beyond"]["coverage@10"]["mean"]
        assert f"data-sort='{cov:.6g}'" in html
    for link in links:
        rec = json.loads((page.parent / link).read_text())
        assert rec["command"] and rec["dataset_checksum"] and rec["versions"]["recbole"] == "1.2.1"
        assert rec["spec"]["model"] in {"Pop", "ItemKNN", "BPR"} and rec["per_user"] == {}
        # the engine writes the row's run options typed; what an older record derives from its spec reads the same
        typed = Record.model_validate(rec)
        assert typed.run is not None and typed.run.model == rec["model"] and typed.run.epochs == 3
        assert typed.model_copy(update={"run": None}).options == typed.run
        row = next(r for r in board["rows"] if rec["cell_id"] in r["reproduce"]["cell_ids"])
        command = row["reproduce"]["command"]
        assert command == typed.reproduce(row["seeds"]) and "--seeds 2 --epochs 3" in command


def test_reproduce_a_published_record(site, ml100k_slice):
    rec = next((site / ml100k_slice.name / "default" / "records").glob("*.json"))
    res = runner.invoke(app, ["reproduce", str(rec), "--dataset", str(ml100k_slice.folder)])  # published: <dir>/<name>
    assert res.exit_code == 0, res.output
    assert "reproduced" in res.output


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_renders_in_headless_chromium(site, ml100k_slice, tmp_path):
    page = site / ml100k_slice.name / "default" / "index.html"
    profile = tmp_path / "profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000",
                          "--dump-dom", page.as_uri() + "#sort=1-asc"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = dom.stdout
    names = re.findall(r"<tr class=\"[^\"]*\"><td data-sort=\"\d+\">\d+</td><td data-sort=\"([^\"]+)\"", body)
    assert names == sorted(names, key=str.lower) and len(names) == 3, names  # the hash sorted by model name
    assert body.count("<svg") == 5
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1300,1800",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
    keep = Path(__file__).parent.parent / ".pytest_cache" / "site.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)


def test_publish_regenerates_the_readme_results_block(site, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- leaderboards -->\nstale 0.9999\n<!-- /leaderboards -->\n\n## After\n")
    res = runner.invoke(app, ["publish", "--dir", str(site), "--readme", str(readme)])
    assert res.exit_code == 0, res.output
    text = readme.read_text()
    board = json.loads(next(site.glob("*/default/leaderboard.json")).read_text())
    assert "stale 0.9999" not in text and text.endswith("<!-- /leaderboards -->\n\n## After\n")
    for row in board["rows"]:  # every number comes from the leaderboard file
        stat = row["test"]["ndcg@10"]
        assert f"| {row['label']} | 2 | {stat['mean']:.4f} ± {stat['std']:.4f} |" in text
    assert "untuned: each model's defaults, at most 3 epochs of training per model (--epochs); seeds 2020, 2021" in text
    readme.write_text("no markers here\n")
    res = runner.invoke(app, ["publish", "--dir", str(site), "--readme", str(readme)])
    assert res.exit_code == 2 and "<!-- leaderboards -->" in res.output and "Traceback" not in res.output


def test_publishing_twice_gives_the_same_bytes(site):
    pages = sorted(site.rglob("index.html"))
    before = {p: p.read_bytes() for p in pages}
    res = runner.invoke(app, ["publish", "--dir", str(site)])
    assert res.exit_code == 0, res.output
    assert {p: p.read_bytes() for p in pages} == before  # a republished site diffs only where a number changed


def test_index_links_other_published_roots(site, tmp_path):
    """A root published inside another (leaderboards/components/) is linked from the outer index."""
    inner = tmp_path / "lb"
    shutil.copytree(site, inner)
    shutil.copytree(site, inner / "components")
    assert runner.invoke(app, ["publish", "--dir", str(inner / "components")]).exit_code == 0
    assert runner.invoke(app, ["publish", "--dir", str(inner)]).exit_code == 0
    index = (inner / "index.html").read_text()
    assert "<ul id='roots'><li><a href='components/index.html'>components</a></li></ul>" in index
    assert "id='roots'" not in (inner / "components" / "index.html").read_text()
