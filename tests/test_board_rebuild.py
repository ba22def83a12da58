"""Acceptance: every committed board rebuilds, byte for byte, from its published records.

``m6bench leaderboard build --runs-dir <board>/records`` into a copy of the committed root (its
Markdown, CSV and HTML removed first; its ``leaderboard.json`` stays, since the per-user tests of a
board published without per-user files are carried from it), then ``m6bench publish``
(with ``--readme`` for the main root), must give back every committed file of every board —
``leaderboard.{md,csv,json}``, its ``index.html``, its records and per-user files — every root's
``index.html`` and the README's results block. Only the board's own timestamp (its ``created_at``,
shown as "generated …") may differ. The records are of several record schemas and carry their suite's
settings only as ``m6_*`` config keys: reading them must keep working as the record gains typed fields.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "leaderboards"
#: Leaderboard roots: the main one and those published inside it (each its own `m6bench publish --dir`).
ROOTS = ("compression", "components", "")
runner = CliRunner()


def _boards(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/leaderboard.json"))


def _masked(path: Path, stamp: str) -> bytes:
    """The file's bytes with the board's timestamp masked (only that string: records keep their own)."""
    data = path.read_bytes()
    return data.replace(stamp.encode(), b"<created_at>") if stamp else data


def _stamp(board: Path) -> str:
    return json.loads((board / "leaderboard.json").read_text())["created_at"]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rebuild") / "leaderboards"
    shutil.copytree(COMMITTED, out)
    for path in [*out.rglob("leaderboard.md"), *out.rglob("leaderboard.csv"), *out.rglob("index.html")]:
        path.unlink()
    for sub in ROOTS:
        for board in _boards(COMMITTED / sub):
            res = runner.invoke(app, ["leaderboard", "build", "--runs-dir", str(board / "records"), "--out", str(out / sub)])
            assert res.exit_code == 0, res.output
    readme = (REPO / "README.md").read_text()
    head, _, rest = readme.partition("<!-- leaderboards -->")
    stale = head + "<!-- leaderboards -->\nstale\n<!-- /leaderboards -->" + rest.partition("<!-- /leaderboards -->")[2]
    (out.parent / "README.md").write_text(stale)
    for sub in ROOTS:  # the inner roots first: the main index links those that are published
        args = ["publish", "--dir", str(out / sub)] + (["--readme", str(out.parent / "README.md")] if not sub else [])
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    return out


def test_every_committed_board_file_is_rebuilt_byte_for_byte(rebuilt):
    boards = [b for sub in ROOTS for b in _boards(COMMITTED / sub)]
    assert len(boards) >= 9
    differ, missing = [], []
    for board in boards:
        rel = board.relative_to(COMMITTED)
        mine, theirs = _stamp(rebuilt / rel), _stamp(board)
        for path in sorted(p for p in board.rglob("*") if p.is_file()):
            twin = rebuilt / path.relative_to(COMMITTED)
            if not twin.is_file():
                missing.append(str(path.relative_to(COMMITTED)))
            elif _masked(twin, mine) != _masked(path, theirs):
                differ.append(str(path.relative_to(COMMITTED)))
    assert not missing, f"not rebuilt: {missing}"
    assert not differ, f"rebuilt differently: {differ}"


def test_every_root_index_and_the_readme_block_are_rebuilt(rebuilt):
    for sub in ROOTS:
        assert (rebuilt / sub / "index.html").read_bytes() == (COMMITTED / sub / "index.html").read_bytes(), sub or "root"
    text, committed = (rebuilt.parent / "README.md").read_text(), (REPO / "README.md").read_text()
    assert "<!-- leaderboards -->" in text
    assert text == committed


def test_no_extra_files_in_a_rebuilt_board(rebuilt):
    extra = [str(p.relative_to(rebuilt)) for p in rebuilt.rglob("*")
             if p.is_file() and p.name != ".lock" and not (COMMITTED / p.relative_to(rebuilt)).exists()]
    assert not extra, extra
    assert all((rebuilt / p.relative_to(COMMITTED)).is_file() for p in COMMITTED.rglob("*.md"))
