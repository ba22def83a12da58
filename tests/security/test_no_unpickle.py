"""Issue #18: nothing reachable from the CLI unpickles, and config keys from outside are allow-listed.

Each route plants a pickle whose ``__reduce__`` touches a marker file (no shell, nothing else), then
drives the command a stranger's file would reach; the marker must never appear and the command must
refuse with one line (exit 2 for bad input, exit 1 for a bad dataset file). The routes and how they
are closed are tabled in :mod:`m6rec_bench.config_keys`.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from m6rec_bench import artifacts, compat, config_keys
from m6rec_bench.cli import app
from m6rec_bench.datasets import PreparedDataset
from m6rec_bench.engine.cell import CellSpec, run_cell, validate_spec
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.models import registry
from m6rec_bench.results.store import RecordStore
from m6rec_bench.tuning.spaces import search_space

runner = CliRunner()


class _Touch:
    """Unpickling this touches ``marker``: the proof that a route ran a stranger's pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """``(pickle file, marker)``; the pickle really runs code when loaded (checked here)."""
    marker, payload = tmp_path / "pwned", tmp_path / "evil.pth"
    payload.write_bytes(pickle.dumps(_Touch(marker)))
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Touch(probe)))
    assert probe.exists(), "the planted pickle must be live, or these tests prove nothing"
    return payload, marker


def _one_line(res, code: int, pattern: str) -> None:
    import re

    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), res.output


@pytest.fixture(scope="module")
def pop_record(ml100k_slice, tmp_path_factory) -> Path:
    """A real ``ok`` Pop record with its artifact (cheap: Pop trains in one pass)."""
    store = RecordStore(tmp_path_factory.mktemp("runs"))
    rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="Pop", epochs=1), store=store, resume=False,
                   prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    return store.path_for(rec)


def _tampered(src: Path, dest_dir: Path, *, config: dict | None = None, overrides: dict | None = None) -> Path:
    """A copy of a record (and its artifact) with keys added to its ``config`` and/or its spec's overrides."""
    data = json.loads(src.read_text())
    data["config"].update(config or {})
    data["spec"]["overrides"] = {**data["spec"].get("overrides", {}), **(overrides or {})}
    dest = dest_dir / src.name
    dest.write_text(json.dumps(data))
    shutil.copytree(artifacts.folder_for(src), artifacts.folder_for(dest))
    return dest


def _user(record: Path) -> str:
    return json.loads(record.read_text())["per_user"]["users"][0]


WHERE = {"config": lambda p: {"config": {"dataset_save_path": str(p)}},
         "spec": lambda p: {"overrides": {"dataset_save_path": str(p)}}}


@pytest.mark.parametrize("where", sorted(WHERE))
def test_explain_refuses_a_record_naming_a_pickle(pop_record, evil, tmp_path, where):
    payload, marker = evil
    record = _tampered(pop_record, tmp_path, **WHERE[where](payload))
    res = runner.invoke(app, ["explain", "--model", str(record), "--user", _user(pop_record)])
    _one_line(res, 2, r"dataset_save_path")
    assert not marker.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", sorted(WHERE))
def test_serve_refuses_a_record_naming_a_pickle(pop_record, evil, tmp_path, monkeypatch, where):
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: served.append(app_))  # never start a server
    payload, marker = evil
    record = _tampered(pop_record, tmp_path, **WHERE[where](payload))
    res = runner.invoke(app, ["serve", "--model", str(record), "--port", str(_free_port())])
    _one_line(res, 2, r"dataset_save_path")
    assert not marker.exists() and not served


def test_a_record_config_key_not_from_its_spec_is_refused(pop_record, tmp_path):
    """Any key added to a record's stored config (not only file keys) is refused, naming it."""
    record = _tampered(pop_record, tmp_path, config={"learning_rate": 0.5})
    with pytest.raises(UsageError, match=r"config differs from what its spec gives in 'learning_rate'"):
        artifacts.load(record)


def test_our_own_records_still_load(pop_record, ml100k_slice):
    loaded = artifacts.load(pop_record, prepared=ml100k_slice)
    assert loaded.record.config["m6_dataset_checksum"] == ml100k_slice.checksum


@pytest.mark.parametrize("overrides", [
    {"dataset_save_path": "{payload}"},
    # NeuMF torch.loads its pretrained MF part; with the full unpickler turned back on by the environment
    {"use_pretrain": True, "mf_pretrain_path": "{payload}", "mlp_pretrain_path": "{payload}"},
], ids=["dataset_save_path", "mf_pretrain_path"])
def test_reproduce_refuses_a_record_naming_a_pickle(pop_record, evil, tmp_path, monkeypatch, overrides):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    payload, marker = evil
    record = _tampered(pop_record, tmp_path, overrides={k: str(v).format(payload=payload) if isinstance(v, str) else v
                                                        for k, v in overrides.items()})
    if "use_pretrain" in overrides:  # a NeuMF cell: the spec's model is what reproduce reruns
        data = json.loads(record.read_text())
        data["spec"]["model"] = data["model"] = "NeuMF"
        record.write_text(json.dumps(data))
    res = runner.invoke(app, ["reproduce", str(record)])
    _one_line(res, 2, rf"{record.name}: override '(dataset_save_path|mf_pretrain_path|mlp_pretrain_path|use_pretrain)'")
    assert not marker.exists()


def _suite(tmp_path: Path, ml100k_slice, text: str) -> tuple[list[str], Path]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    runs = tmp_path / "runs"
    return ["run", "--config", str(suite), "-d", str(ml100k_slice.folder), "--epochs", "1",
            "--runs-dir", str(runs), "--out", str(tmp_path / "lb")], runs


@pytest.mark.parametrize(("model", "overrides", "pattern"), [
    ("BPR", "{{dataloaders_save_path: '{payload}'}}",
     r"override 'dataloaders_save_path' for 'BPR' is refused: RecBole would unpickle the file it names"),
    ("NeuMF", "{{use_pretrain: true, mf_pretrain_path: '{payload}', mlp_pretrain_path: '{payload}'}}",
     r"override 'mf_pretrain_path' for 'NeuMF' is refused"),
    ("BPR", "{{checkpoint_dir: '{payload}'}}", r"override 'checkpoint_dir' for 'BPR' is refused: it names a file"),
    ("BPR", "{{learning_rat: 0.01}}", r"'learning_rat' is not a setting BPR reads — did you mean 'learning_rate'\?"),
    ("BPR", "{{learning_rate: fast}}", r"override 'learning_rate' for 'BPR': expected a number .* got a string 'fast'"),
    ("BPR", "{{seed: 7}}", r"m6rec-bench sets 'seed' itself — use --seeds"),
], ids=["dataloaders_save_path", "mf_pretrain_path", "checkpoint_dir", "unknown key", "wrong type", "seed"])
def test_suite_file_overrides_are_refused_before_anything_runs(ml100k_slice, evil, tmp_path, monkeypatch, model,
                                                               overrides, pattern):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    payload, marker = evil
    args, runs = _suite(tmp_path, ml100k_slice,
                        f"models: [{model}]\noverrides:\n  {model}: {overrides.format(payload=payload)}\n")
    res = runner.invoke(app, args)
    _one_line(res, 2, pattern)
    assert not marker.exists()
    assert not list(runs.rglob("*.json")), "nothing may run (or be recorded) before the overrides are checked"


def test_tune_set_is_checked_like_any_override(ml100k_slice, evil, tmp_path):
    payload, marker = evil
    res = runner.invoke(app, ["tune", "-d", str(ml100k_slice.folder), "-m", "BPR", "--trials", "1", "--epochs", "1",
                              "--set", f"dataset_save_path={payload}", "--runs-dir", str(tmp_path / "runs")])
    _one_line(res, 2, r"override 'dataset_save_path' for 'BPR' is refused")
    assert not marker.exists()


def _with_item_emb(ml100k_slice, dest: Path, write) -> PreparedDataset:
    """A copy of the slice whose dataset folder holds an ``item_emb.npy`` written by ``write(path)``."""
    folder = dest / ml100k_slice.name
    shutil.copytree(ml100k_slice.folder, folder)
    write(folder / "item_emb.npy")
    return PreparedDataset(ml100k_slice.name, dest, ml100k_slice.checksum, ml100k_slice.features)


def test_ldiffrec_never_unpickles_item_emb_from_a_dataset_folder(ml100k_slice, tmp_path, evil):
    _, marker = evil
    obj = np.empty(1, dtype=object)
    obj[0] = _Touch(marker)
    ds = _with_item_emb(ml100k_slice, tmp_path / "data", lambda p: np.save(p, obj, allow_pickle=True))
    with pytest.raises(DataError, match=r"item_emb\.npy holds pickled Python objects"):
        run_cell(CellSpec(dataset=ds.name, model="LDiffRec", epochs=1, overrides={"n_cate": 2}), prepared=ds,
                 store=RecordStore(tmp_path / "runs"), resume=False)
    assert not marker.exists()
    assert not list((tmp_path / "runs").rglob("*.json")), "a refused dataset leaves no failed row"


def test_ldiffrec_still_loads_a_plain_item_emb(tmp_path):
    compat.apply()
    from recbole.model.general_recommender import ldiffrec

    path = tmp_path / "item_emb.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(ldiffrec.np.load(path, allow_pickle=True), np.arange(6).reshape(3, 2))
    assert ldiffrec.np.float32 is np.float32  # the rest of numpy is numpy


def test_pretrained_model_loads_are_weights_only(tmp_path, evil, monkeypatch):
    """Even with the environment turning torch's full unpickler back on, RecBole's pretrained loads stay
    weights-only (the second lock behind the refused path keys)."""
    import pickle as _pickle

    compat.apply()
    from recbole.model.general_recommender import neumf

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    payload, marker = evil
    with pytest.raises(_pickle.UnpicklingError):
        neumf.torch.load(payload, map_location="cpu")
    assert not marker.exists()


def test_every_search_space_and_ablation_passes_the_allow_list():
    """Tuning and ablation rows write overrides too: each must be a key the model reads, well typed."""

    class First:  # the first choice of every suggestion
        def suggest_categorical(self, name, choices):
            return choices[0]

        def suggest_float(self, name, low, high, **_):
            return low

        def suggest_int(self, name, low, high, **_):
            return low

    for entry in registry.all_models():
        space = search_space(entry)
        if space is not None:
            config_keys.check_overrides(entry, space(First()))
        for overrides in (entry.plugin.ablations.values() if entry.plugin is not None else ()):
            config_keys.check_overrides(entry, overrides)


def test_tuned_marks_and_protocol_settings_are_allowed():
    bpr = registry.get("BPR")
    config_keys.check_overrides(bpr, {"m6_tune_budget": 5, "m6_tune_study": "s", "m6_tune_note": "n",
                                      "m6_tune_timeout": 60.0, "m6_tune_epochs": 3,
                                      "train_neg_sample_args": None, "topk": 10, "eval_batch_size": 4096})
    with pytest.raises(UsageError, match="m6_tune_budget"):
        config_keys.check_overrides(bpr, {"m6_tune_budget": "many"})
    with pytest.raises(UsageError, match="is not a setting BPR reads"):
        config_keys.check_overrides(bpr, {"m6_train_negatives": "warm items only"})  # the protocol's, not yours


def test_validate_spec_refuses_bad_overrides_before_any_data(ml100k_slice):
    """plan() calls validate_spec for every cell: the check needs no dataset."""
    with pytest.raises(UsageError, match=r"'mlp_hidden_size'.*expected a list"):
        validate_spec(CellSpec(dataset="nowhere", model="NeuMF", overrides={"mlp_hidden_size": "not-a-list"}))
