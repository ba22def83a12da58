"""The catalogue of bad inputs: each gets one clear line and a non-zero exit, never a traceback, and
nothing cached or recorded before is lost. Plus the safety rules (safe YAML, weights-only torch.load,
plugins only from allowed entry points).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

import m6rec_bench
from m6rec_bench.cli import app
from m6rec_bench.cli.common import friendly_errors
from m6rec_bench.models import registry
from m6rec_bench.results.store import load_record

runner = CliRunner()

# The dataset tests' local HTTP server and raw-file helpers (loaded under a name of their own: test
# modules must not ``import conftest``).
_spec = importlib.util.spec_from_file_location("m6_dataset_helpers", Path(__file__).parent / "datasets" / "conftest.py")
_dsh = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_dsh)
file_server = _dsh.file_server


def _snapshot(*roots: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for root in roots if root.exists()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_kept(before: dict[Path, str]) -> None:
    """Every file that existed before is still there, byte for byte."""
    lost = [p for p in before if not p.is_file()]
    changed = [p for p in before if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() != before[p]]
    assert not lost and not changed, f"lost {lost}, changed {changed}"


def _assert_one_line_error(res, code: int, pattern: str) -> None:
    out = res.output
    assert res.exit_code == code, out
    assert "Traceback" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert re.search(pattern, errors[0]), out


@pytest.fixture(scope="module")
def prior(ml100k_slice, m6home, tmp_path_factory):
    """Results that exist before each bad command: a finished record, a leaderboard, a cached dataset."""
    base = tmp_path_factory.mktemp("prior")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("M6BENCH_HOME", str(m6home))
        res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop", "--runs-dir", str(base / "runs"),
                                  "--out", str(base / "lb")])
    assert res.exit_code == 0, res.output
    return SimpleNamespace(slice=ml100k_slice, runs=base / "runs", lb=base / "lb", home=m6home)


@dataclass
class Ctx:
    prior: SimpleNamespace
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def slice(self) -> str:
        return str(self.prior.slice.folder)

    @property
    def dirs(self) -> list[str]:
        return ["--runs-dir", str(self.prior.runs), "--out", str(self.prior.lb)]

    def run(self, *args: str) -> list[str]:
        return ["run", *args, *self.dirs]

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)

    def folder(self, name: str, inter: str | None, **others: str) -> str:
        folder = self.tmp / "data" / name
        folder.mkdir(parents=True)
        files = {**others, **({"inter": inter} if inter is not None else {})}
        for suffix, text in files.items():
            (folder / f"{name}.{suffix}").write_text(text, encoding="utf-8")
        return str(folder)

    def suite(self, text: str, *args: str) -> list[str]:
        return self.run("--config", self.file("suite.yaml", text), "-d", self.slice, *args)

    def binary(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def record(self, edit: Callable[[dict], object], name: str = "record.json") -> str:
        """A copy of the prior run's record, changed by ``edit`` (which may return a whole new document)."""
        doc = next(d for p in sorted(self.prior.runs.rglob("seed*.json")) if (d := json.loads(p.read_text()))["status"] == "ok")
        out = edit(doc)
        return self.file(name, out if isinstance(out, str) else json.dumps(doc if out is None else out))

    def tampered(self, name: str, data: bytes | Callable[[Path], None]) -> list[str]:
        """``explain`` of a copy of the prior run whose artifact file ``name`` is replaced (or edited)."""
        runs = self.tmp / "runs"
        shutil.copytree(self.prior.runs, runs)
        [folder] = list(runs.rglob("*.artifact"))
        if callable(data):
            data(folder / name)
        else:
            (folder / name).write_bytes(data)
        return ["explain", "-m", str(folder.with_name(folder.name.removesuffix(".artifact") + ".json")), "-u", "1"]

    def registry(self, text: str) -> None:
        self.monkeypatch.setenv("M6BENCH_DATASETS_YAML", self.file("datasets.yaml", text))


def _plugin_with_int_field(ctx: Ctx) -> list[str]:
    for name, plugin in registry.plugins().items():
        field = plugin.config_cls.model_fields.get("embedding_size")
        if field is not None and field.annotation is int and "kg" not in plugin.needs:
            return ctx.suite(f"models: ['{name}']\noverrides:\n  '{name}': {{embedding_size: abc}}\n")
    pytest.skip("no installed plugin with an int embedding_size loads")


def _cuda(ctx: Ctx) -> list[str]:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return ctx.run("-d", ctx.slice, "-m", "Pop", "--device", "cuda")


H = "user_id:token\titem_id:token\trating:float\n"
#: JSON nested far deeper than Python's recursion limit: ``json.loads`` raises RecursionError.
DEEP_JSON = '{"schema_version": ' + "[" * 100_000 + "]" * 100_000 + "}"
#: "Billion laughs": 8 aliases of 10, 10^8 strings once expanded, in ~550 bytes (the anchors inside
#: a setting a suite may hold: overrides of BPR's ``embedding_size``).
LAUGHS = "[" + ", ".join(['&a0 ["x","x","x","x","x","x","x","x","x","x"]']
                         + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]) + "]"
#: Enough interactions for 3 users and 3 items to pass the row checks (each user has 3).
ROWS = "".join(f"{u}\t{10 + i}\t4\n" for u in (1, 2, 3) for i in range(3))


def _deep_records(ctx: Ctx) -> list[str]:
    """A runs folder whose only record is nested 100 000 levels deep."""
    runs = ctx.tmp / "deep-runs"
    ctx.file("deep-runs/x/default/Pop/seed2020-0123456789abcdef.json", DEEP_JSON)
    return ["leaderboard", "build", "--runs-dir", str(runs), "--out", str(ctx.tmp / "lb")]


def _shape_mismatch(path: Path) -> None:
    """Weights whose tensors have other shapes than the model's (same names)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    save_file({k: torch.zeros(*(d + 1 for d in v.shape)) if v.dim() else v for k, v in state.items()}, str(path))
    meta = path.with_name("meta.json")
    doc = json.loads(meta.read_text())
    doc["bytes"]["model.safetensors"] = path.stat().st_size
    meta.write_text(json.dumps(doc))


def _garbage_weights(path: Path) -> None:
    """A weights file that is not safetensors, with meta.json's byte count updated to match."""
    path.write_bytes(b"\x08\0\0\0\0\0\0\0{garbage" + b"\0" * 64)
    meta = path.with_name("meta.json")
    doc = json.loads(meta.read_text())
    doc["bytes"]["model.safetensors"] = path.stat().st_size
    meta.write_text(json.dumps(doc))


def _latin1_rows(ctx: Ctx) -> str:
    """Latin-1 past the first 8 KB (the header check decodes only the first buffer)."""
    folder = ctx.folder("mine", H + ROWS + "".join(f"{u % 50}\t{u % 70}\t4\n" for u in range(2000)))
    with open(Path(folder) / "mine.inter", "ab") as fh:
        fh.write("caf\xe9\t10\t4\n".encode("latin-1"))
    return folder


def _meta_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))

    return apply

#: (id, command built from the context, exit code, pattern the one error line must match)
CASES: list[tuple[str, Callable[[Ctx], list[str]], int, str]] = [
    ("unknown dataset", lambda c: c.run("-d", "movielns", "-m", "Pop"), 2,
     r"dataset 'movielns' not found in datasets\.yaml — did you mean 'movielens'\? \(m6bench datasets list\)"),
    ("unknown model", lambda c: c.run("-d", c.slice, "-m", "Pop,BRP"), 2,
     r"model 'BRP' not found — did you mean 'BPR'\? \(m6bench models list\)"),
    ("unknown protocol", lambda c: c.run("-d", c.slice, "-m", "Pop", "-p", "default", "-p", "colditem"), 2,
     r"protocol 'colditem' not found"),
    ("malformed datasets.yaml", lambda c: c.registry("datasets:\n  - name: [oops\n") or c.run("-d", "movielens"), 2,
     r"datasets\.yaml line \d+, column \d+: malformed YAML: .* — fix the file and retry"),
    ("datasets.yaml entry without sources", lambda c: c.registry("datasets:\n  - name: x\n") or c.run("-d", "x"), 2,
     r"datasets\.yaml line 2: entry 'x': sources: Field required"),
    ("missing datasets.yaml", lambda c: c.monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(c.tmp / "nope.yaml"))
     or c.run("-d", "movielens"), 2, r"dataset registry .*nope\.yaml not found \(set by M6BENCH_DATASETS_YAML\)"),
    ("malformed suite yaml", lambda c: c.suite("models: [Pop\nseeds: 2\n"), 2, r"suite\.yaml line \d+ is not valid YAML"),
    ("unknown suite key", lambda c: c.suite("modles: [Pop]\n"), 2, r"bad suite settings: modles: Extra inputs are not permitted"),
    ("suite yaml not a mapping", lambda c: c.suite("- Pop\n"), 2, r"suite\.yaml must be a mapping of settings, got list"),
    ("missing suite file", lambda c: c.run("--config", str(c.tmp / "nope.yaml")), 2, r"cannot read suite config .*nope\.yaml"),
    ("epochs 0 in suite yaml", lambda c: c.suite("models: [Pop]\nepochs: 0\n"), 2, r"epochs: Input should be greater than or equal to 1"),
    ("bad --seeds", lambda c: c.run("-d", c.slice, "-m", "Pop", "--seeds", "two"), 2,
     r"--seeds takes a count \(3\) or a list \(2020,2021\), got 'two'"),
    ("--seeds 0", lambda c: c.run("-d", c.slice, "-m", "Pop", "--seeds", "0"), 2, r"--seeds must be at least 1, got 0"),
    ("empty --models", lambda c: c.run("-d", c.slice, "-m", " , "), 2, r"expected a comma-separated list"),
    ("unknown device", lambda c: c.run("-d", c.slice, "-m", "Pop", "--device", "tpu"), 2,
     r"device 'tpu' is not supported; use --device cpu or --device cuda"),
    ("--device cuda without a GPU", _cuda, 2, r"--device cuda was asked for but torch .* sees no CUDA GPU; use --device cpu"),
    ("plugin config of the wrong type", _plugin_with_int_field, 2,
     r"bad config for plugin '.*': embedding_size: Input should be a valid integer.*\(got 'abc'\) — fix its overrides"),
    ("overrides for a model not in the suite", lambda c: c.suite("models: [Pop]\noverrides:\n  BPR: {embedding_size: 8}\n"), 2,
     r"overrides given for models not in the suite: \['BPR'\]"),
    ("--runs-dir is a file", lambda c: ["run", "-d", c.slice, "-m", "Pop", "--runs-dir", c.file("f", ""), "--out", str(c.prior.lb)], 2,
     r"--runs-dir .*/f cannot be used \(it is a file\) — give a writable folder"),
    ("--out inside a file", lambda c: ["run", "-d", c.slice, "-m", "Pop", "--runs-dir", str(c.prior.runs), "--out", c.file("f", "") + "/lb"], 2,
     r"--out .*/f/lb cannot be used \(Not a directory\) — give a writable folder"),
    ("M6BENCH_HOME is a file", lambda c: c.monkeypatch.setenv("M6BENCH_HOME", c.file("home", "")) or c.run("-d", c.slice, "-m", "Pop"),
     2, r"cache folder .*/home cannot be used \(it is a file\) — set M6BENCH_HOME to a writable folder"),
    ("override that makes RecBole unpickle a file", lambda c: c.suite(
        f"models: [BPR]\noverrides:\n  BPR: {{dataset_save_path: '{c.file('evil.pth', 'x')}'}}\n"), 2,
     r"override 'dataset_save_path' for 'BPR' is refused: RecBole would unpickle the file it names"),
    ("missing dataset folder", lambda c: c.run("-d", str(c.tmp / "nope"), "-m", "Pop"), 1, r"dataset folder .*nope does not exist"),
    ("folder without .inter", lambda c: c.run("-d", c.folder("mine", None, item="item_id:token\n1\n"), "-m", "Pop"), 1,
     r"mine\.inter not found \(the folder holds: mine\.item\) — a dataset folder <name>/ needs <name>\.inter"),
    (".inter without item_id", lambda c: c.run("-d", c.folder("mine", "user_id:token\trating:float\n1\t3\n"), "-m", "Pop"), 1,
     r"mine\.inter: missing column item_id \(found: user_id:token, rating:float\)"),
    ("empty dataset", lambda c: c.run("-d", c.folder("mine", H), "-m", "Pop"), 1, r"mine\.inter: no interactions \(only a header\)"),
    ("dataset with one user", lambda c: c.run("-d", c.folder("mine", H + "1\t10\t4\n1\t11\t5\n1\t12\t3\n"), "-m", "Pop"), 1,
     r"mine\.inter: 1 user\(s\) and 3 item\(s\) — a benchmark needs at least 2 users and 2 items"),
    ("NaN rating", lambda c: c.run("-d", c.folder("mine", H + "1\t10\t4\n2\t11\tnan\n"), "-m", "Pop"), 1,
     r"mine\.inter line 3: rating is 'nan', not a number — a 'rating:float' column needs a finite number"),
    ("text in the rating column", lambda c: c.run("-d", c.folder("mine", H + "1\t10\tfive\n2\t11\t4\n"), "-m", "Pop"), 1,
     r"mine\.inter line 2: rating is 'five', not a number"),
    ("ragged row", lambda c: c.run("-d", c.folder("mine", H + "1\t10\t4\n2\t11\n"), "-m", "Pop"), 1,
     r"mine\.inter line 3: 2 tab-separated fields, the header has 3"),
    ("reproduce a non-record", lambda c: ["reproduce", c.file("notes.json", '{"hello": 1}')], 2,
     r"notes\.json is not a readable m6rec-bench record"),
    ("reproduce a missing file", lambda c: ["reproduce", str(c.tmp / "nope.json")], 2, r"nope\.json is not a readable m6rec-bench record"),
    ("leaderboard show for a missing board", lambda c: ["leaderboard", "show", "-d", "movielens", "--dir", str(c.prior.lb)], 2,
     r"no leaderboard at .*ml-100k/default/leaderboard\.json; run: m6bench run --dataset movielens --protocol default"),
    ("leaderboard show of a damaged board", lambda c: c.file("lb/x/default/leaderboard.json", '{"rows": [')
     and ["leaderboard", "show", "-d", "x", "--dir", str(c.tmp / "lb")], 2,
     r"leaderboard\.json is not a readable leaderboard — rebuild it: m6bench leaderboard build"),
    ("leaderboard build without records", lambda c: ["leaderboard", "build", "--runs-dir", str(c.tmp / "none"), "--out", str(c.tmp)], 2,
     r"no records under .*none; run m6bench run first"),
    ("datasets info unknown", lambda c: ["datasets", "info", "movielns"], 2, r"dataset 'movielns' not found"),
    # ---- user text files: binary, not UTF-8, nested past the recursion limit, empty
    ("binary suite file", lambda c: c.run("--config", c.binary("suite.yaml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "-d", c.slice), 2,
     r"suite config .*suite\.yaml is a binary file, not text"),
    ("suite file not UTF-8", lambda c: c.run("--config", c.binary("suite.yaml", "models: [Pop]\n# caf\xe9\n".encode("latin-1")),
                                             "-d", c.slice), 2,
     r"suite config .*suite\.yaml is not UTF-8 text \(byte 0xe9 on line 2\) — save it as UTF-8"),
    ("suite file nested too deeply", lambda c: c.suite("models: " + "[" * 1000 + "]" * 1000 + "\n"), 2,
     r"suite config .*suite\.yaml cannot be a suite: YAML nested more than 64 levels deep"),
    ("suite file whose aliases expand to 10^8 values", lambda c: c.suite(f"models: [BPR]\noverrides:\n  BPR: {{embedding_size: {LAUGHS}}}\n"),
     2, r"suite config .*suite\.yaml cannot be a suite: YAML that expands to more than 100,000 values through its aliases"),
    ("suite file that contains itself", lambda c: c.suite("models: &m [BPR, *m]\n"), 2,
     r"suite config .*suite\.yaml cannot be a suite: YAML whose alias refers to the collection it is in"),
    ("empty suite file", lambda c: c.suite(""), 2, r"suite config .*suite\.yaml is empty — write the settings to run"),
    ("suite file of comments only", lambda c: c.suite("# models: [Pop]\n"), 2, r"suite config .*suite\.yaml is empty"),
    ("binary datasets.yaml", lambda c: c.monkeypatch.setenv("M6BENCH_DATASETS_YAML", c.binary("datasets.yaml", b"\0\1\2\xff"))
     or c.run("-d", "movielens", "-m", "Pop"), 2, r"dataset registry .*datasets\.yaml is a binary file"),
    ("datasets.yaml not UTF-8", lambda c: c.monkeypatch.setenv(
        "M6BENCH_DATASETS_YAML", c.binary("datasets.yaml", "datasets:\n  - name: caf\xe9\n".encode("latin-1")))
     or c.run("-d", "movielens", "-m", "Pop"), 2, r"dataset registry .*datasets\.yaml is not UTF-8 text \(byte 0xe9 on line 2\)"),
    ("datasets.yaml nested too deeply", lambda c: c.registry("datasets: " + "[" * 1000 + "]" * 1000 + "\n") or c.run("-d", "x"), 2,
     r"datasets\.yaml: malformed YAML: YAML nested more than 64 levels deep"),
    ("datasets.yaml whose aliases expand to 10^8 values", lambda c: c.registry(f"datasets: {LAUGHS}\n") or c.run("-d", "x"), 2,
     r"datasets\.yaml: malformed YAML: YAML that expands to more than 100,000 values through its aliases"),
    # ---- seeds numpy / torch / RecBole cannot take
    ("negative seed in --seeds", lambda c: c.run("-d", c.slice, "-m", "Pop", "--seeds", "-5,2020"), 2,
     r"--seeds -5,2020: seed -5 is out of range: seeds are whole numbers from 0 to 4294967295"),
    ("seed over 2^32 in --seeds", lambda c: c.run("-d", c.slice, "-m", "Pop", "--seeds", "2020,4294967296"), 2,
     r"seed 4294967296 is out of range"),
    ("negative seed in a suite file", lambda c: c.suite("models: [Pop]\nseeds: [-1]\n"), 2,
     r"bad suite settings: seeds: seed -1 is out of range"),
    # ---- records given to reproduce / leaderboard build
    ("record nested too deeply (reproduce)", lambda c: ["reproduce", c.file("deep.json", DEEP_JSON)], 2,
     r"deep\.json is not a readable m6rec-bench record: JSON nested 100001 levels deep \(at most 64 accepted\)"),
    ("record nested too deeply (leaderboard build)", _deep_records, 2, r"no records under .*deep-runs; run m6bench run first"),
    ("record with a wrong-typed field", lambda c: ["reproduce", c.record(lambda d: d.update(seed="x"))], 2,
     r"record\.json is not a readable m6rec-bench record: seed: Input should be a valid integer.*\(got 'x'\)"),
    ("record whose spec has a wrong-typed field", lambda c: ["reproduce", c.record(lambda d: d["spec"].update(epochs="many"))], 2,
     r"record\.json is not a readable m6rec-bench record: spec\.epochs: Input should be a valid integer.*\(got 'many'\) — "
     r"the record was edited"),
    ("record whose spec has an extra field", lambda c: ["reproduce", c.record(lambda d: d["spec"].update(evil=1))], 2,
     r"record\.json is not a readable m6rec-bench record: spec\.evil: Extra inputs are not permitted"),
    ("record that is a JSON list", lambda c: ["reproduce", c.record(lambda d: [d])], 2,
     r"record\.json is not a readable m6rec-bench record: a record is a JSON object, this is a list"),
    ("binary record", lambda c: ["reproduce", c.binary("record.json", b"\xff\xfe\0\x01")], 2,
     r"record\.json is not a readable m6rec-bench record: not UTF-8 text"),
    ("leaderboard.json nested too deeply", lambda c: c.file("lb/x/default/leaderboard.json", DEEP_JSON)
     and ["leaderboard", "show", "-d", "x", "--dir", str(c.tmp / "lb")], 2, r"leaderboard\.json is not a readable leaderboard"),
    # ---- tampered artifacts given to explain
    ("artifact weights of another size", lambda c: c.tampered("model.safetensors", b"\x08\0\0\0\0\0\0\0{garbage"), 1,
     r"artifact .*\.artifact is damaged: model\.safetensors is 16 bytes, meta\.json says [\d,]+ — retrain the cell"),
    ("artifact weights not safetensors", lambda c: c.tampered("model.safetensors", _garbage_weights), 1,
     r"artifact .*\.artifact is damaged: model\.safetensors cannot be read \(.*\) — retrain the cell"),
    ("artifact weights of other shapes", lambda c: c.tampered("model.safetensors", _shape_mismatch), 1,
     r"artifact .*\.artifact is damaged: model\.safetensors does not fit the model \(.*size mismatch.*\)"),
    ("artifact meta.json not JSON", lambda c: c.tampered("meta.json", b'{"format": 1, "users": ['), 1,
     r"artifact .*\.artifact is damaged: meta\.json is not valid JSON"),
    ("artifact meta.json nested too deeply", lambda c: c.tampered("meta.json", DEEP_JSON.encode()), 1,
     r"artifact .*\.artifact is damaged: meta\.json is JSON nested 100001 levels deep"),
    ("artifact meta.json without id lists", lambda c: c.tampered("meta.json", _meta_edit(lambda d: d.update(users=None))), 1,
     r"artifact .*\.artifact is damaged: meta\.json lacks the users/items"),
    # ---- dataset folders RecBole would misread (today: a failed row or NaN metrics, not an error)
    ("duplicate column", lambda c: c.run("-d", c.folder("mine", H.rstrip("\n") + "\trating:float\n"
                                                         + ROWS.replace("\t4\n", "\t4\t5\n")), "-m", "Pop"), 1,
     r"mine\.inter: column 'rating' appears twice in the header .* — RecBole would keep only one of them"),
    ("quoted id", lambda c: c.run("-d", c.folder("mine", H + ROWS + '"4"\t10\t4\n'), "-m", "Pop"), 1,
     r"mine\.inter line 11: user_id is '\"4\"', which starts with a double quote — .* remove the quotes"),
    ("field over pandas' limit", lambda c: c.run("-d", c.folder("mine", H + ROWS, item="item_id:token\ttitle:token_seq\n10\t"
                                                               + "a" * 131_073 + "\n"), "-m", "Pop"), 1,
     r"mine\.item line 2: title is 131,073 characters long, over the 131,072 RecBole's reader .* accepts"),
    ("quoted text in .item", lambda c: c.run("-d", c.folder("mine", H + ROWS, item='item_id:token\ttitle:token_seq\n10\t"Casablanca\n'),
                                             "-m", "Pop"), 1, r"mine\.item line 2: title is '\"Casablanca', which starts with a double quote"),
    ("UTF-8 BOM in .inter", lambda c: c.run("-d", c.folder("mine", "\ufeff" + H + ROWS), "-m", "Pop"), 1,
     r"mine\.inter starts with a UTF-8 byte-order mark \(BOM\) — .* save the file as UTF-8 without BOM"),
    ("UTF-8 BOM in .item", lambda c: c.run("-d", c.folder("mine", H + ROWS, item="\ufeffitem_id:token\n10\n"), "-m", "Pop"), 1,
     r"mine\.item starts with a UTF-8 byte-order mark \(BOM\)"),
    ("not UTF-8 below the header", lambda c: c.run("-d", _latin1_rows(c), "-m", "Pop"), 1,
     r"mine\.inter: not UTF-8 text — RecBole atomic files must be UTF-8"),
    ("dataset too small to split", lambda c: c.run("-d", c.folder("mine", H + "1\t10\t4\n1\t11\t3\n2\t10\t5\n2\t11\t4\n"), "-m", "Pop"), 1,
     r"mine\.inter: dataset 'mine' is too small for protocol 'default': no user has 3 or more interactions "
     r"\(4 interactions of 2 users\), so the split would leave valid and test empty"),
    # ---- user text is text: rich must not read it as markup or emoji codes (":abc:" was an emoji)
    ("--rerank value shown as typed", lambda c: c.run("-d", c.slice, "-m", "Pop", "--rerank", "mmr:abc"), 2,
     r"--rerank mmr:abc: MMR's lambda must be a number between 0 and 1"),
]


@pytest.mark.parametrize(("build", "code", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(prior, tmp_path, monkeypatch, build, code, pattern):
    before = _snapshot(prior.runs, prior.lb, prior.slice.folder, prior.home / "datasets")
    args = build(Ctx(prior, tmp_path, monkeypatch))
    res = runner.invoke(app, args)
    _assert_one_line_error(res, code, pattern)
    _assert_kept(before)
    written = set(_snapshot(prior.runs, prior.lb)) - set(before)
    assert not written, f"bad input wrote {sorted(written)}"


def test_bad_option_value_is_a_usage_error(prior):
    """Values click itself rejects (``--epochs 0``) get its usage message and exit 2."""
    res = runner.invoke(app, ["run", "-d", str(prior.slice.folder), "--epochs", "0", "-m", "Pop"])
    assert res.exit_code == 2 and "Invalid value for '--epochs'" in res.output and "Traceback" not in res.output


def test_file_system_errors_are_one_line():
    """The CLI's error boundary: an OSError on a named file (permissions, disk full) is one line, exit 1."""
    tiny = typer.Typer()

    @tiny.command()
    @friendly_errors
    def write_results() -> None:
        raise PermissionError(13, "Permission denied", "/data/runs/x.json")

    _assert_one_line_error(runner.invoke(tiny, []), 1, r"^error: /data/runs/x\.json: Permission denied$")


# ---------------------------------------------------------------- downloads, archives, the dataset cache


def test_bad_downloads_and_a_damaged_cache(tmp_path, monkeypatch, file_server, prior):
    home = tmp_path / "home"
    monkeypatch.setenv("M6BENCH_HOME", str(home))
    good = _dsh.ml100k_zip(300)
    evil = _dsh.make_zip({"ml-100k/u.data": b"1\t2\t3\t4\n", "../../evil.txt": b"pwned"})
    entries = [
        _dsh.url_entry("good-ml", file_server.add("/good.zip", good), _dsh.md5(good)),
        _dsh.url_entry("cut-ml", file_server.add("/cut.zip", good, truncate=True), _dsh.md5(good)),
        _dsh.url_entry("changed-ml", file_server.add("/changed.zip", good), "md5:" + "0" * 32),
        _dsh.url_entry("evil-ml", file_server.add("/evil.zip", evil), _dsh.md5(evil)),
    ]
    _dsh.write_registry(tmp_path / "datasets.yaml", entries, monkeypatch)
    res = runner.invoke(app, ["datasets", "fetch", "good-ml", "--no-progress"])
    assert res.exit_code == 0, res.output
    before = _snapshot(home, prior.runs, prior.lb)

    bad = [
        ("cut-ml", r"download of http://127\.0\.0\.1:\d+/cut\.zip was cut short: got \d+ of \d+ bytes — nothing was cached; retry"),
        ("changed-ml", r"checksum mismatch for .*/changed\.zip: expected md5:0{32}, got md5:[0-9a-f]{32} — the file was not cached"),
        ("evil-ml", r"archive .*evil\.zip has an unsafe member '\.\./\.\./evil\.txt' \(absolute path or '\.\.'\) — nothing was extracted"),
    ]
    for name, pattern in bad:
        for args in (["datasets", "fetch", name, "--no-progress"], ["run", "-d", name, "-m", "Pop", "--runs-dir", str(prior.runs),
                                                                    "--out", str(prior.lb)]):
            _assert_one_line_error(runner.invoke(app, args), 1, pattern)
        assert not (home / "datasets" / name).exists()  # nothing half-fetched is kept
    assert not (tmp_path / "evil.txt").exists() and not (home / "evil.txt").exists()
    _assert_kept(before)

    # a cached dataset damaged on disk: a clear error that says what to do; the file is left for inspection
    inter = next((home / "datasets" / "good-ml").rglob("good-ml.inter"))
    inter.write_text("user_id\titem_id\n1\t2\n", encoding="utf-8")
    before = _snapshot(home, prior.runs, prior.lb)
    res = runner.invoke(app, ["run", "-d", "good-ml", "-m", "Pop", "--runs-dir", str(prior.runs), "--out", str(prior.lb)])
    _assert_one_line_error(res, 1, r"cached dataset 'good-ml' is damaged: .*good-ml\.inter: header column 'user_id' is not "
                                   r"'name:type'.* — delete .*ml100k-v1 and run again to convert it afresh")
    _assert_kept(before)


# ---------------------------------------------------------------- damaged records and caches are ignored, never deleted


def test_corrupt_record_is_ignored_kept_and_its_cell_recomputed(prior, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(prior.runs, runs)
    [path] = list(runs.rglob("seed*.json"))
    path.write_text('{"schema_version": 2, "cell_id": ', encoding="utf-8")  # half a record
    foreign = path.with_name("seed2020-0123456789abcdef.json")
    foreign.write_text("not json at all", encoding="utf-8")
    res = runner.invoke(app, ["run", "-d", str(prior.slice.folder), "-m", "Pop", "--runs-dir", str(runs),
                              "--out", str(tmp_path / "lb")])
    assert res.exit_code == 0, res.output
    assert "1 cells: 1 finished (0 reused), 0 failed" in res.output  # recomputed
    assert load_record(path).status == "ok"
    assert path.with_name(path.name + ".corrupt").read_text() == '{"schema_version": 2, "cell_id": '  # kept aside
    assert foreign.read_text() == "not json at all"


def test_corrupt_checksum_memo_is_recomputed(prior, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(prior.runs, runs)
    memos = list((prior.home / "datasets" / ".checksums").glob("*.json"))
    assert memos
    for memo in memos:
        memo.write_text("{garbage", encoding="utf-8")
    res = runner.invoke(app, ["run", "-d", str(prior.slice.folder), "-m", "Pop", "--runs-dir", str(runs),
                              "--out", str(tmp_path / "lb")])
    assert res.exit_code == 0, res.output
    assert "1 cells: 1 finished (1 reused), 0 failed" in res.output  # same checksum, same cell
    assert any(m.read_text().startswith("{\n") for m in memos)


def test_corrupt_embedding_cache_entry_is_recomputed(tmp_path, monkeypatch):
    import numpy as np

    from m6rec_bench import embcache

    monkeypatch.setenv("M6BENCH_HOME", str(tmp_path))
    key = {"dataset_checksum": "sha256:abc", "model": "test"}
    embcache.load_or_compute("test", key, lambda: {"e": np.ones(3)})
    embcache.entry_path("test", key).write_bytes(b"PK\x03\x04 truncated")
    again = embcache.load_or_compute("test", key, lambda: {"e": np.zeros(3)})
    assert again["e"].tolist() == [0.0, 0.0, 0.0]
    assert embcache.load_or_compute("test", key, lambda: pytest.fail("recomputed twice"))["e"].tolist() == [0.0] * 3


# ---------------------------------------------------------------- safety


PACKAGE_SOURCES = sorted(Path(m6rec_bench.__file__).parent.rglob("*.py"))
PLUGIN_SOURCES = sorted((Path(__file__).parents[1] / "plugins").rglob("*.py"))


def _calls(text: str, name: str) -> list[str]:
    """The argument text of every ``name(...)`` call in ``text`` (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end(): i - 1])
    return out


def test_sources_load_yaml_safely_and_torch_weights_only():
    assert PACKAGE_SOURCES and PLUGIN_SOURCES
    bad = []
    for path in PACKAGE_SOURCES + PLUGIN_SOURCES:
        text = path.read_text(encoding="utf-8")
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        if re.search(r"\byaml\.(load|load_all|unsafe_load|full_load)\(|yaml\.(Unsafe|Full)?Loader\b", code):
            bad.append(f"{path}: yaml loading other than yaml.safe_load / SafeLoader")
        bad += [f"{path}: torch.load without weights_only=True" for args in _calls(code, "torch.load")
                if "weights_only=True" not in args.replace(" ", "")]
        if re.search(r"\b(pickle|dill|cloudpickle|joblib)\.loads?\(|allow_pickle=True", code):
            bad.append(f"{path}: unpickling")
    assert not bad, "\n".join(bad)


def test_safe_yaml_refuses_python_objects(tmp_path):
    cfg = tmp_path / "suite.yaml"
    cfg.write_text("models: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n")
    res = runner.invoke(app, ["run", "--config", str(cfg)])
    _assert_one_line_error(res, 2, r"suite\.yaml line 1 is not valid YAML")
    assert not (Path.cwd() / "pwned.txt").exists()
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(cfg.read_text())


def test_plugins_come_only_from_allowed_entry_points(monkeypatch, prior):
    if "GNN-LightGCN" not in registry.plugins() or "GNN-NGCF" not in registry.plugins():
        pytest.skip("the built-in GNN plugins are not installed")
    monkeypatch.setenv("M6BENCH_PLUGINS", "GNN-LightGCN")
    registry.refresh()
    try:
        assert set(registry.plugins()) == {"GNN-LightGCN"}
        res = runner.invoke(app, ["run", "-d", str(prior.slice.folder), "-m", "GNN-NGCF", "--runs-dir", str(prior.runs),
                                  "--out", str(prior.lb)])
        _assert_one_line_error(res, 2, r"model 'GNN-NGCF' not found")
    finally:
        monkeypatch.delenv("M6BENCH_PLUGINS")
        registry.refresh()


def test_models_option_narrows_a_suite_file_and_its_overrides(tmp_path):
    """--models picks some models of a suite file: the file's overrides of the others are dropped;
    an override naming no known model is still a typo."""
    from m6rec_bench.engine.suite import SuiteConfig, plan
    from m6rec_bench.errors import UsageError

    path = tmp_path / "suite.yaml"
    path.write_text("datasets: [movielens]\nprotocols: [sequential]\nseeds: 1\n"
                    "overrides:\n  GRU4Rec: {MAX_ITEM_LIST_LENGTH: 20}\n  SASRec: {MAX_ITEM_LIST_LENGTH: 20}\n")
    cfg = SuiteConfig.from_yaml(path, models=["Pop", "gru4rec"])
    assert set(cfg.overrides) == {"GRU4Rec"}
    cells = plan(cfg)
    assert [c.model for c in cells] == ["Pop", "GRU4Rec"]
    assert cells[1].overrides == {"MAX_ITEM_LIST_LENGTH": 20}
    path.write_text("datasets: [movielens]\noverrides:\n  BRP: {embedding_size: 8}\n")
    with pytest.raises(UsageError, match=r"not in the suite: \['BRP'\]"):
        plan(SuiteConfig.from_yaml(path, models=["BPR"]))
