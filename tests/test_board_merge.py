"""Boards never lose published rows: writes merge into a board folder, only ``prune`` removes rows.

Every test works on a copy of the committed board ``leaderboards/ml-100k/default`` (14 rows, 42
records) or on records copied from it, so nothing trains.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.errors import DataError
from m6rec_bench.leaderboard import aggregate, write
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import load_record

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboards" / "ml-100k" / "default"


def _records(folder: Path = COMMITTED) -> list[Record]:
    return [load_record(p) for p in sorted((folder / "records").glob("*.json"))]


def _by(label: str, seed: int | None = None) -> list[Record]:
    return [r for r in _records() if r.label == label and (seed is None or r.seed == seed)]


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """A copy of the committed board under ``<tmp>/lb/ml-100k/default``."""
    dest = tmp_path / "lb" / "ml-100k" / "default"
    shutil.copytree(COMMITTED, dest)
    return dest


def _write(records: list[Record], root: Path) -> None:
    for lb in aggregate(records):
        write(lb, root, records)


def _rows(board: Path) -> dict[str, dict]:
    return {row["label"]: row for row in json.loads((board / "leaderboard.json").read_text())["rows"]}


def _labels_everywhere(board: Path) -> set[str]:
    """The row labels of the JSON, after checking the CSV and Markdown list the same ones."""
    js = set(_rows(board))
    with open(board / "leaderboard.csv", newline="") as fh:
        cs = {row["label"] for row in csv.DictReader(fh)}
    md = {line.split(" | ")[1] for line in (board / "leaderboard.md").read_text().splitlines()
          if line.startswith("| ") and line.split(" | ")[1] not in ("Model", "---")}
    assert js == cs == md
    return js


def _new_row(label: str, seed: int, ndcg: float) -> Record:
    """A record of a row the committed board does not have, made from its Pop record of ``seed``."""
    [pop] = _by("Pop", seed)
    return pop.model_copy(update={"cell_id": f"{label.lower()}{seed}".ljust(16, "0")[:16], "label": label,
                                  "model": label, "test": {**pop.test, "ndcg@10": ndcg},
                                  "created_at": "2026-12-02T00:00:00+00:00"})


def _per_user(sig: dict) -> dict | None:
    """The per-user Wilcoxon test of a published significance: ``users`` now, the whole of it on the committed boards."""
    users = sig.get("users") if "method" in sig else sig
    return None if users is None else {k: users[k] for k in ("n_users", "delta", "p_value")}


def _files(board: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (board / "records").glob("*.json")}


def test_one_new_row_keeps_every_published_row_and_record(board):
    before_rows, before_files = _rows(board), _files(board)
    new = _new_row("EASE", 2020, 0.25)
    _write([new], board.parent.parent)

    rows = _rows(board)
    assert _labels_everywhere(board) == set(before_rows) | {"EASE"}
    files = _files(board)
    assert {k: files[k] for k in before_files} == before_files  # every old record, byte for byte
    assert set(files) == set(before_files) | {f"{new.cell_id}.json"}
    for label, row in before_rows.items():  # old rows unchanged: numbers, cells, carried per-user tests
        assert rows[label]["test"] == row["test"] and rows[label]["reproduce"]["cell_ids"] == row["reproduce"]["cell_ids"]
        if row["significance"] and label != "GNN-LightGCN":  # now in the implementations table
            assert _per_user(rows[label]["significance"]) == _per_user(row["significance"])
    assert rows["EASE"]["seeds"] == [2020]


def test_rebuilding_a_board_from_its_own_records_keeps_its_paired_tests(board):
    """Published records have no per-user arrays: the board's own raw tests are carried, Holm redone."""
    before = _rows(board)
    _write(_records(board), board.parent.parent)
    after = _rows(board)
    assert set(after) == set(before)
    # the per-user tests of the committed (older) board are carried; the seed-level ones recomputed
    assert {k: _per_user(r["significance"]) for k, r in after.items() if r["significance"]} == {
        k: _per_user(r["significance"]) for k, r in before.items() if r["significance"] and k != "GNN-LightGCN"}
    _write(_records(board), board.parent.parent)
    assert {k: r["significance"] for k, r in _rows(board).items()} == {k: r["significance"] for k, r in after.items()}
    assert "superseded" not in json.loads((board / "leaderboard.json").read_text())
    assert "Replaced rows" not in (board / "leaderboard.md").read_text()


def test_the_same_cell_replaces_its_record(board):
    [old] = _by("Pop", 2020)
    new = old.model_copy(update={"test": {**old.test, "ndcg@10": 0.5}, "created_at": "2026-12-02T00:00:00+00:00"})
    files = _files(board)
    _write([new], board.parent.parent)

    pop = _rows(board)["Pop"]
    others = [r.test["ndcg@10"] for r in _by("Pop") if r.seed != 2020]
    assert pop["seeds"] == [2020, 2021, 2022] and pop["test"]["ndcg@10"]["mean"] == pytest.approx((0.5 + sum(others)) / 3)
    assert len(_rows(board)) == 14
    assert load_record(board / "records" / f"{old.cell_id}.json").test["ndcg@10"] == 0.5
    assert {k: v for k, v in _files(board).items() if k != f"{old.cell_id}.json"} == \
        {k: v for k, v in files.items() if k != f"{old.cell_id}.json"}


def test_another_configuration_replaces_the_row_and_the_header_says_so(board):
    old = _by("Pop")
    new = old[0].model_copy(update={"cell_id": "e1e1e1e1e1e1e1e1", "seed": 2020, "config": {**old[0].config, "seed": 2020, "epochs": 1},
                                    "created_at": "2026-12-02T00:00:00+00:00"})
    _write([new], board.parent.parent)

    rows = _rows(board)
    assert len(rows) == 14 and rows["Pop"]["reproduce"]["cell_ids"] == ["e1e1e1e1e1e1e1e1"]
    assert rows["Pop"]["seeds"] == [2020]  # never seeds of two configurations in one row
    assert not any((board / "records" / f"{r.cell_id}.json").exists() for r in old)
    [note] = json.loads((board / "leaderboard.json").read_text())["superseded"]
    assert note["label"] == "Pop" and note["seeds"] == [2020, 2021, 2022]
    assert sorted(note["cell_ids"]) == sorted(r.cell_id for r in old)
    md = (board / "leaderboard.md").read_text()
    assert "*Replaced rows*" in md and "**Pop** (seeds 2020, 2021, 2022" in md

    # the note stays while the row is on the board; the same configuration on a new seed joins the row
    more = new.model_copy(update={"cell_id": "e2e2e2e2e2e2e2e2", "seed": 2021, "config": {**new.config, "seed": 2021}})
    _write([more], board.parent.parent)
    assert _rows(board)["Pop"]["seeds"] == [2020, 2021]
    assert [n["label"] for n in json.loads((board / "leaderboard.json").read_text())["superseded"]] == ["Pop"]
    assert (board / "records" / "e1e1e1e1e1e1e1e1.json").exists()


def test_records_on_other_data_are_refused_and_the_board_is_untouched(board):
    before = {p.name: p.read_bytes() for p in board.rglob("*") if p.is_file() and p.name != ".lock"}
    new = _new_row("EASE", 2020, 0.25).model_copy(update={"dataset_checksum": "sha256:other"})
    with pytest.raises(DataError, match="dataset checksum"):
        _write([new], board.parent.parent)
    assert {p.name: p.read_bytes() for p in board.rglob("*") if p.is_file() and p.name != ".lock"} == before


def _prune(board: Path, *args: str):
    return CliRunner().invoke(app, ["leaderboard", "prune", "--dir", str(board.parent.parent), "-d", "ml-100k",
                                    "-p", "default", *args])


def test_prune_removes_exactly_the_selected_rows_and_their_records(board):
    before_rows, before_files = _rows(board), _files(board)
    pop = {f"{r.cell_id}.json" for r in _by("Pop")}

    res = _prune(board, "--label", "Pop", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "would remove Pop: seed 2020" in res.output and _files(board) == before_files and _rows(board) == before_rows

    res = _prune(board, "--label", "Pop")
    assert res.exit_code == 0, res.output
    assert _labels_everywhere(board) == set(before_rows) - {"Pop"}
    assert _files(board) == {k: v for k, v in before_files.items() if k not in pop}
    rows = _rows(board)
    for label, row in rows.items():  # the per-user tests stay; Holm is redone over one row fewer
        assert row["test"] == before_rows[label]["test"]
        if row["significance"]:
            assert _per_user(row["significance"]) == _per_user(before_rows[label]["significance"])

    # one seed of one row: the row stays with its other seeds
    [bpr21] = _by("BPR", 2021)
    res = _prune(board, "--label", "BPR", "--seed", "2021")
    assert res.exit_code == 0, res.output
    assert _rows(board)["BPR"]["seeds"] == [2020, 2022] and not (board / "records" / f"{bpr21.cell_id}.json").exists()
    res = _prune(board, "--cell-id", bpr21.cell_id)
    assert res.exit_code == 2 and "matches cell id" in res.output


def test_prune_asks_for_an_explicit_selection(board):
    before = _files(board)
    res = _prune(board)
    assert res.exit_code == 2 and "say which rows to prune" in res.output
    res = _prune(board, "--label", "Nope")
    assert res.exit_code == 2 and "Pop" in res.output and "Traceback" not in res.output
    assert _files(board) == before


def _suite(root: str, records: list[Record]) -> None:
    """One suite: writes its board after each of its rows, as a run writing as it goes would."""
    for i in range(1, len(records) + 1):
        _write(records[:i], Path(root))


@pytest.mark.parametrize("round_", range(3))
def test_two_suites_writing_one_board_at_once_end_with_both(tmp_path, round_):
    ours = [r for label in ("BPR", "Pop", "ItemKNN") for r in _by(label)]
    theirs = [r for label in ("MultiVAE", "LightGCN", "NeuMF") for r in _by(label)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_suite, args=(str(tmp_path), recs)) for recs in ((ours, theirs) if round_ % 2 else (theirs, ours))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    board = tmp_path / "ml-100k" / "default"
    assert _labels_everywhere(board) == {"BPR", "Pop", "ItemKNN", "MultiVAE", "LightGCN", "NeuMF"}
    assert set(_files(board)) == {f"{r.cell_id}.json" for r in ours + theirs}
    assert not list(board.rglob("*.part"))


def test_a_failed_rerun_never_costs_the_board_a_published_result(board):
    [same_cell] = _by("BPR", 2020)
    failed_same = same_cell.model_copy(update={"status": "failed", "reason": "RuntimeError: OOM", "test": {}, "valid": {}})
    [pop] = _by("Pop", 2020)
    failed_other = pop.model_copy(update={"cell_id": "f0f0f0f0f0f0f0f0", "status": "failed", "reason": "boom", "test": {},
                                          "valid": {}, "config": {**pop.config, "epochs": 1}})
    files = _files(board)
    _write([failed_same], board.parent.parent)
    _write([failed_other], board.parent.parent)
    rows = _rows(board)
    assert rows["BPR"]["status"] == "ok" and rows["BPR"]["seeds"] == [2020, 2021, 2022]
    assert rows["Pop"]["status"] == "ok" and rows["Pop"]["seeds"] == [2020, 2021, 2022]
    assert _files(board) == files and "superseded" not in json.loads((board / "leaderboard.json").read_text())

    # a failure on a new seed of the same configuration is shown beside the row's results
    [bpr22] = _by("BPR", 2022)
    new_seed = bpr22.model_copy(update={"cell_id": "b2b2b2b2b2b2b2b2", "seed": 2023, "config": {**bpr22.config, "seed": 2023},
                                        "status": "failed", "reason": "RuntimeError: OOM", "test": {}, "valid": {}})
    _write([new_seed], board.parent.parent)
    assert _rows(board)["BPR"]["status"] == "ok (1 failed)" and (board / "records" / "b2b2b2b2b2b2b2b2.json").exists()


def test_the_site_names_replaced_rows(board):
    from m6rec_bench.leaderboard.site import build_site

    [pop] = _by("Pop", 2020)
    _write([pop.model_copy(update={"cell_id": "e1e1e1e1e1e1e1e1", "config": {**pop.config, "epochs": 1}})], board.parent.parent)
    build_site(board.parent.parent)
    page = (board / "index.html").read_text()
    assert "id='replaced'" in page and "<b>Pop</b> (seeds 2020, 2021, 2022" in page


def test_leaderboard_build_merges_into_a_committed_board(board, tmp_path):
    from m6rec_bench.results.store import RecordStore

    runs = tmp_path / "runs"
    RecordStore(runs).put(_new_row("EASE", 2021, 0.2))
    before = _files(board)
    res = CliRunner().invoke(app, ["leaderboard", "build", "--runs-dir", str(runs), "--out", str(board.parent.parent)])
    assert res.exit_code == 0, res.output
    assert len(_labels_everywhere(board)) == 15 and "EASE" in _rows(board)
    assert {k: v for k, v in _files(board).items() if k in before} == before and len(_files(board)) == 43


def test_a_cell_rerun_with_other_results_drops_its_rows_published_test(board):
    before = _rows(board)
    [old] = _by("BPR", 2020)
    _write([old.model_copy(update={"test": {**old.test, "ndcg@10": 0.2}})], board.parent.parent)
    rows = _rows(board)
    # its records are slim: nothing to pair users on, and the old per-user test is stale; the seed-level test is redone
    assert rows["BPR"]["significance"]["users"] is None and rows["BPR"]["significance"]["seeds"] == [2020, 2021, 2022]
    assert rows["Pop"]["significance"]["users"] == _per_user(before["Pop"]["significance"])
    [ref] = _by("MultiVAE", 2020)
    _write([ref.model_copy(update={"test": {**ref.test, "ndcg@10": 0.31}})], board.parent.parent)
    # the reference changed: no per-user test carries
    assert not any(r["significance"]["users"] for r in _rows(board).values() if r["significance"])


def test_prune_explains_itself():
    res = CliRunner().invoke(app, ["leaderboard", "prune", "--help"])
    assert res.exit_code == 0
    assert "the one way a row leaves it" in res.output and "--dry-run" in res.output and "--cell-id" in res.output


def test_record_files_the_board_does_not_list_are_ignored_not_revived(board):
    """A writer killed between the board and removing replaced records leaves files the JSON no longer lists."""
    [pop] = _by("Pop", 2020)
    _write([pop.model_copy(update={"cell_id": "e1e1e1e1e1e1e1e1", "config": {**pop.config, "epochs": 1}})], board.parent.parent)
    for old in _by("Pop"):  # as if the removal had not happened
        shutil.copy(COMMITTED / "records" / f"{old.cell_id}.json", board / "records")
    _write([_new_row("EASE", 2020, 0.25)], board.parent.parent)
    assert _rows(board)["Pop"]["reproduce"]["cell_ids"] == ["e1e1e1e1e1e1e1e1"]
    assert all((board / "records" / f"{old.cell_id}.json").exists() for old in _by("Pop"))  # ignored, not deleted


def test_a_partial_board_merged_into_a_held_board_stays_titled_partial(board: Path) -> None:
    """``m6bench run`` rewrites its boards as cells finish, titled partial: the merge with the rows a
    board already holds must keep that title, and the final (complete) write must drop it."""
    from dataclasses import replace

    new = [_new_row("Newcomer", 2020, 0.2)]
    for partial in (True, False):
        for lb in aggregate(new):
            write(replace(lb, partial=partial), board.parent.parent, new)
        first = (board / "leaderboard.md").read_text().splitlines()[0]
        assert ("partial" in first) is partial, first
        assert json.loads((board / "leaderboard.json").read_text())["partial"] is partial
        assert {"Newcomer", "MultiVAE", "M6-Fusion"} <= _labels_everywhere(board)
