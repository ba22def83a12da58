"""Paths built from data stay under their roots, and records carry no path of the machine that made them.

Each attack of issue #18 is driven through the CLI: it must end with its exit code and one line,
and nothing outside the root may be written, changed or deleted. Then a freshly made record, and
the records ``leaderboard build`` publishes (also from copies of the committed boards), must hold
no absolute path while keeping their cell ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.errors import UsageError
from m6rec_bench.names import contained, label_slug, slug_problem
from m6rec_bench.results.portable import portable_command
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore, load_record

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
#: A committed record whose command names a temporary --out (issue #18's example).
COMMITTED = REPO / "leaderboards" / "ml-100k" / "default" / "records" / "02d7346cf093f2aa.json"
#: The cell id of a 1-epoch Pop cell on the ml100k_slice fixture, computed on main before this change.


def _snapshot(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[Path, str]:
    """Every file under ``root`` (except under ``skip``) and a hash of its bytes."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(s == p or s in p.parents for s in skip)}


def _one_line(res, code: int, pattern: str, prefix: str = "error:") -> str:
    out = res.output
    assert res.exit_code == code, out
    assert "Traceback" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [line for line in out.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, out
    assert re.search(pattern, lines[0]), out
    return lines[0]


def _absolute_strings(obj: object) -> list[str]:
    """Every string in a JSON value that is, or holds, an absolute path (``/x``, ``~/x``)."""
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _absolute_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _absolute_strings(v)]
    if isinstance(obj, str) and re.search(r"(^|[\s'\"=])~?/[\w.-]", obj):
        return [obj]
    return []


# ----------------------------------------------------------------------------- the slug rule


@pytest.mark.parametrize("bad", ["", "..", ".", ".hidden", "../x", "a/b", "a\\b", "-rf", "a b", "x*", "é", "a" * 129])
def test_slug_rule_refuses_what_is_not_one_plain_name(bad: str) -> None:
    assert slug_problem(bad) is not None


@pytest.mark.parametrize("good", ["ml-100k", "default", "cold-item", "d984becef23bdc23", "_x", "M6-Fusion_w-o_KG", "a.b"])
def test_slug_rule_accepts_names_in_use(good: str) -> None:
    assert slug_problem(good) is None


def test_contained_refuses_an_escape_and_a_link_out(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    assert contained(tmp_path / "root", tmp_path / "root" / "a" / "b", what="x") == tmp_path / "root" / "a" / "b"
    for escape in (tmp_path / "root" / ".." / "elsewhere", tmp_path / "root" / "link" / "f"):
        with pytest.raises(UsageError, match=r"^x would put .* outside"):
            contained(tmp_path / "root", escape, what="x")


def test_a_record_naming_a_path_is_refused_when_parsed(tmp_path: Path) -> None:
    data = json.loads(COMMITTED.read_text())
    for field, value in (("protocol", "../../victim"), ("dataset", "/etc"), ("cell_id", "../x"), ("label", "..")):
        path = tmp_path / f"{field}.json"
        path.write_text(json.dumps({**data, field: value}))
        assert load_record(path) is None, field
    assert label_slug("M6-Fusion w/o KG") == "M6-Fusion_w-o_KG"


# ----------------------------------------------------------------------------- the four attacks


def _hostile_runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A runs folder with one good record and one whose protocol leads from --out into ``victim``."""
    runs, out, victim = tmp_path / "runs", tmp_path / "out", tmp_path / "victim"
    (victim / "records").mkdir(parents=True)
    (victim / "records" / "x.json").write_text('{"keep": "me"}\n')
    good = RecordStore(runs).put(Record.model_validate_json(COMMITTED.read_text()))
    data = json.loads(COMMITTED.read_text())
    # <out>/ml-100k/../../victim is tmp_path/victim: the old writer put boards there and deleted records/x.json
    data.update(protocol="../../victim", cell_id="0123456789abcdef")
    evil = good.with_name("seed2020-0123456789abcdef.json")
    evil.write_text(json.dumps(data))
    assert good != evil
    return runs, out, evil


def test_hostile_record_protocol_is_skipped_with_a_warning_and_victim_survives(tmp_path: Path) -> None:
    runs, out, evil = _hostile_runs(tmp_path)
    before = _snapshot(tmp_path, skip=(out,))
    res = runner.invoke(app, ["leaderboard", "build", "--runs-dir", str(runs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    _one_line(res, 0, rf"skipped .*{evil.name}: not a valid record — protocol: .*'\.\./\.\./victim'", prefix="warning:")
    assert _snapshot(tmp_path, skip=(out,)) == before  # victim/records/x.json is still there, nothing new outside --out
    assert (out / "ml-100k" / "default" / "leaderboard.json").is_file()
    assert [p.name for p in (out / "ml-100k" / "default" / "records").iterdir()] == [COMMITTED.name]


def test_hostile_record_alone_is_one_error_and_one_warning(tmp_path: Path) -> None:
    runs, out, evil = _hostile_runs(tmp_path)
    next(p for p in runs.rglob("*.json") if p != evil).unlink()
    before = _snapshot(tmp_path)
    res = runner.invoke(app, ["leaderboard", "build", "--runs-dir", str(runs), "--out", str(out)])
    _one_line(res, 2, r"no records under")
    _one_line(res, 2, r"protocol", prefix="warning:")
    assert _snapshot(tmp_path) == before and not out.exists()


def test_reproduce_refuses_a_hostile_record_before_running(tmp_path: Path) -> None:
    _, _, evil = _hostile_runs(tmp_path)
    res = runner.invoke(app, ["reproduce", str(evil)])
    _one_line(res, 2, r"is not a readable m6rec-bench record: protocol: ")


def test_datasets_yaml_path_cannot_send_records_outside_runs_dir(tmp_path: Path, ml100k_slice, monkeypatch) -> None:
    # The old code took a bundled source's ``path`` as the dataset's name: RecBole's folder + name +
    # name.inter. With enough ``../`` (clamped at /) both lead to victim/<name>.inter, so the data loads,
    # and records went to <runs-dir>/<path>/… = victim/<name>/… (boards likewise under --out).
    victim = tmp_path / "victim"
    (victim / ml100k_slice.name).mkdir(parents=True)
    for f in ml100k_slice.folder.iterdir():
        shutil.copy(f, victim / f.name)
    reach = "../" * 64 + str(victim / ml100k_slice.name).lstrip("/")
    cfg = tmp_path / "shared" / "datasets.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump({"datasets": [{"name": "evil", "sources": [{"kind": "recbole-bundled", "path": reach}]}]}))
    monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(cfg))
    work = tmp_path / "work"
    before = _snapshot(tmp_path)
    res = runner.invoke(app, ["run", "-d", "evil", "-m", "Pop", "--epochs", "1", "--runs-dir", str(work / "runs"),
                              "--out", str(work / "lb")])
    _one_line(res, 2, r"datasets\.yaml line \d+: entry 'evil': sources\.0: path .*must start with a letter")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("data_files", ["../../secret.csv", "/etc/passwd", "~/.ssh/id_rsa", "sub/../../x.csv"])
def test_datasets_yaml_local_files_stay_under_the_yaml_folder(tmp_path: Path, monkeypatch, data_files: str) -> None:
    cfg = tmp_path / "datasets.yaml"
    entry = {"name": "hf-evil", "sources": [{"kind": "huggingface", "path": "csv", "data_files": data_files,
                                             "columns": {"user": "u", "item": "i"}}]}
    cfg.write_text(yaml.safe_dump({"datasets": [entry]}))
    monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(cfg))
    res = runner.invoke(app, ["datasets", "list"])
    _one_line(res, 2, r"entry 'hf-evil': sources\.0: data_files: .*a datasets\.yaml may only name files under its own folder")


def test_synth_name_cannot_leave_the_synth_folder(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("M6BENCH_HOME", str(home))
    res = runner.invoke(app, ["datasets", "synth", "-u", "10", "-i", "20", "-n", "60", "--name", "../x", "--no-progress"])
    _one_line(res, 2, r"--name '\.\./x' must start with a letter")
    assert not (home / "x").exists()
    assert _snapshot(tmp_path) == {}  # nothing written anywhere


@pytest.mark.parametrize("args", [["-p", "../../secret"], ["-d", "..", "-p", "secret"]])
def test_show_cannot_read_outside_dir(tmp_path: Path, args: list[str]) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    row = {"label": "SECRET-ROW", "seeds": [2020], "test": {}, "groups": {}, "cost": {}, "status": "ok"}
    (secret / "leaderboard.json").write_text(json.dumps({"dataset": "x", "protocol": "p", "rows": [row]}))
    lb = tmp_path / "lb"
    (lb / "ml-100k").mkdir(parents=True)
    res = runner.invoke(app, ["leaderboard", "show", "--dir", str(lb), *args])
    _one_line(res, 2, r"--(protocol|dataset) '.*' must start with a letter")
    assert "SECRET-ROW" not in res.output


# ----------------------------------------------------------------------------- portable records


def test_command_drops_locations_and_machine_paths(tmp_path: Path) -> None:
    argv = ["/opt/venv/bin/m6bench", "run", "-d", str(tmp_path / "data" / "mine"), "--out", "/tmp/m6/lb",
            "--runs-dir=/work/runs9", "-o/tmp/q", "--tune-storage", "postgresql://u:pw@db/x", "--models", "M6-Fusion w/o KG",
            "--config", "/etc/suite.yaml", "--seeds", "3"]
    assert portable_command(argv, cwd=tmp_path) == (
        "m6bench run -d data/mine --models 'M6-Fusion w/o KG' --config '<dir>/suite.yaml' --seeds 3")


def test_fresh_record_has_no_machine_path_and_keeps_its_cell_id(tmp_path: Path, ml100k_slice, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runs, lb = tmp_path / "runs", tmp_path / "lb"
    monkeypatch.setattr(sys, "argv", [sys.prefix + "/bin/m6bench", "run", "-d", str(ml100k_slice.folder), "-m", "Pop",
                                      "--epochs", "1", "--runs-dir", str(runs), "--out", str(lb)])
    rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="Pop", epochs=1), store=RecordStore(runs),
                   resume=False, prepared=ml100k_slice, save_artifact=False)
    assert rec.status == "ok", rec.reason
    # the id comes from config (and the code), not from resolved_config or command: another machine's
    # folders and options give the same id
    monkeypatch.setattr(sys, "argv", ["/elsewhere/bin/m6bench", "run", "-d", str(ml100k_slice.folder), "-m", "Pop",
                                      "--epochs", "1", "--runs-dir", str(tmp_path / "other-runs"), "--out", "/x/lb"])
    again = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="Pop", epochs=1),
                     store=RecordStore(tmp_path / "other-runs"), resume=False, prepared=ml100k_slice, save_artifact=False)
    assert again.cell_id == rec.cell_id
    [stored] = runs.rglob("seed*.json")
    text = stored.read_text()
    assert str(tmp_path) not in text and "site-packages" not in text and sys.prefix not in text
    data = json.loads(text)
    assert "data_path" not in data["resolved_config"] and "checkpoint_dir" not in data["resolved_config"]
    assert data["resolved_config"]["epochs"] == 1
    assert data["command"] == f"m6bench run -d '<dir>/{ml100k_slice.name}' -m Pop --epochs 1"
    # the runs folder keeps the dataset folder as given (artifacts are loaded from it); the only absolute path
    assert _absolute_strings(data) == [str(ml100k_slice.folder)]

    res = runner.invoke(app, ["leaderboard", "build", "--runs-dir", str(runs), "--out", str(lb)])
    assert res.exit_code == 0, res.output
    [published] = (lb / ml100k_slice.name / "default" / "records").glob("*.json")
    assert published.name == f"{rec.cell_id}.json"
    pub = json.loads(published.read_text())
    assert _absolute_strings(pub) == [] and pub["spec"]["dataset"] == f"<dir>/{ml100k_slice.name}"
    res = runner.invoke(app, ["reproduce", str(published)])  # which folder is the reader's to say
    _one_line(res, 2, rf"ran on a local dataset folder \(<dir>/{ml100k_slice.name}\) — give your copy: .* --dataset <folder>")
    board = (lb / ml100k_slice.name / "default" / "leaderboard.json").read_text()
    assert str(ml100k_slice.folder) not in board and f"--dataset <dir>/{ml100k_slice.name}" in board


def test_rebuilding_the_committed_boards_publishes_portable_records(tmp_path: Path, monkeypatch) -> None:
    """Copies of every committed record, rebuilt root by root (leaderboards/, its compression/ and
    components/): same boards, same cell ids and metrics, and no path of the machine in any record."""
    monkeypatch.chdir(tmp_path)
    roots = sorted({p.parents[2] for p in (REPO / "leaderboards").rglob("leaderboard.json")})
    committed = sorted(p for root in roots for p in root.glob("*/*/records/*.json"))
    assert len(roots) >= 3 and len(committed) > 150
    # (the committed records themselves were rebuilt this way; those written before held machine paths)
    for i, root in enumerate(roots):
        store, out = RecordStore(tmp_path / f"runs{i}"), tmp_path / f"lb{i}"
        for path in root.glob("*/*/records/*.json"):
            store.put(Record.model_validate_json(path.read_text()))
        res = runner.invoke(app, ["leaderboard", "build", "--runs-dir", str(store.root), "--out", str(out)])
        assert res.exit_code == 0 and "warning" not in res.output, res.output
        for old in sorted(root.glob("*/*/leaderboard.json")):
            new = out / old.parent.relative_to(root)
            names = sorted(p.name for p in (old.parent / "records").glob("*.json"))
            assert sorted(p.name for p in (new / "records").glob("*.json")) == names
            for name in names:
                data, before = (json.loads((d / "records" / name).read_text()) for d in (new, old.parent))
                assert _absolute_strings(data) == [], (new / name, _absolute_strings(data))
                keep = ("cell_id", "config", "test", "valid", "extra_metrics", "versions")
                assert {k: data[k] for k in keep} == {k: before[k] for k in keep}
            rows = lambda d: {r["label"]: (r["reproduce"]["cell_ids"], r["test"]) for r in d["rows"]}  # noqa: E731
            assert rows(json.loads((new / "leaderboard.json").read_text())) == rows(json.loads(old.read_text()))


def test_finding_a_trained_run_never_globs_outside_runs_dir(tmp_path: Path) -> None:
    from m6rec_bench import artifacts

    with pytest.raises(UsageError, match=r"^--protocol '\.\./\.\./elsewhere' must start with a letter"):
        artifacts.find_record(tmp_path / "runs", "ml-100k", "Pop", protocol="../../elsewhere")


def test_a_url_whose_last_part_is_dotdot_downloads_into_the_raw_folder(tmp_path: Path, monkeypatch) -> None:
    from m6rec_bench.datasets import prepare as prep
    from m6rec_bench.datasets.registry import parse_registry

    seen: list[Path] = []

    def fake_download(url: str, dest: Path, checksum: str, progress: bool = True) -> None:
        seen.append(dest)
        raise prep.DataError("stop here")

    monkeypatch.setattr(prep, "download", fake_download)
    text = yaml.safe_dump({"datasets": [{"name": "evil", "converter": "ml100k", "sources": [
        {"kind": "url", "url": "http://127.0.0.1:9/a/..", "checksum": "md5:" + "0" * 32}]}]})
    spec = parse_registry(text, tmp_path / "datasets.yaml").get("evil")
    with pytest.raises(prep.DataError, match="stop here"):
        prep.prepare(spec, progress=False)
    assert [p.name for p in seen] == ["evil.zip"] and seen[0].parent.name == "raw"
