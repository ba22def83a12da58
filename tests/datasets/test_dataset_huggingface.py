"""The huggingface source kind, offline: local parquet/csv through datasets.load_dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from m6rec_bench.datasets import resolve
from m6rec_bench.errors import DataError

FRAME = pd.DataFrame(
    {
        "uid": [1, 1, 2, 3],
        "iid": ["a", "b", "a", "c"],
        "stars": [4.0, 3.5, 5.0, 1.0],
        "ts": [100, 200, 300, 400],
        "name": ["Alpha\tOne", "Beta", "Alpha\tOne", '"Gamma"'],
        "kind": ["x y", "z", "x y", None],
    }
)


def _entry(name: str, path: str, data_files: str, columns: dict) -> dict:
    return {
        "name": name,
        "description": "test",
        "format": path,
        "sources": [{"kind": "huggingface", "path": path, "data_files": data_files, "columns": columns}],
    }


COLUMNS = {"user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts", "item_text": {"title": "name", "genre": "kind"}}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_local_files_through_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsh, isolated_home: Path, fmt: str) -> None:
    data = tmp_path / f"ratings.{fmt}"
    FRAME.to_parquet(data) if fmt == "parquet" else FRAME.to_csv(data, index=False)
    dsh.write_registry(tmp_path / "reg.yaml", [_entry("hf-toy", fmt, data.name, COLUMNS)], monkeypatch)  # relative path

    ds = resolve("hf-toy", progress=False)
    assert ds.root.parent == isolated_home / "datasets" / "hf-toy"
    assert ds.root.name.startswith("hf-v1-")
    assert ds.features.item_text == ("title", "genre")
    assert ds.source == f"huggingface:{fmt}"
    inter = ds.atomic_file("inter").read_text().splitlines()
    assert inter[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert inter[1:] == ["1\ta\t4.0\t100", "1\tb\t3.5\t200", "2\ta\t5.0\t300", "3\tc\t1.0\t400"]
    item = ds.atomic_file("item").read_text().splitlines()
    assert item == ["item_id:token\ttitle:token_seq\tgenre:token_seq", "a\tAlpha One\tx y", "b\tBeta\tz", "c\t'Gamma'\t"]

    first_mtime = ds.atomic_file("inter").stat().st_mtime_ns
    again = resolve("hf-toy", progress=False)
    assert again == ds and again.atomic_file("inter").stat().st_mtime_ns == first_mtime


def test_minimal_mapping_and_changed_mapping_reconverts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsh) -> None:
    data = tmp_path / "r.parquet"
    FRAME.to_parquet(data)
    dsh.write_registry(tmp_path / "reg.yaml", [_entry("hf-min", "parquet", data.name, {"user": "uid", "item": "iid"})], monkeypatch)
    ds = resolve("hf-min", progress=False)
    assert ds.atomic_file("inter").read_text().splitlines()[0] == "user_id:token\titem_id:token"
    assert not ds.atomic_file("item").exists() and ds.features.item_text == ()
    dsh.write_registry(tmp_path / "reg.yaml", [_entry("hf-min", "parquet", data.name, {"user": "uid", "item": "iid", "rating": "stars"})], monkeypatch)
    changed = resolve("hf-min", progress=False)
    assert changed.root != ds.root and changed.checksum != ds.checksum


def test_missing_column_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsh, isolated_home: Path) -> None:
    data = tmp_path / "r.parquet"
    FRAME.to_parquet(data)
    dsh.write_registry(tmp_path / "reg.yaml", [_entry("hf-bad", "parquet", data.name, {"user": "user_id", "item": "iid"})], monkeypatch)
    with pytest.raises(DataError, match=r"has no column user_id \(found: uid, iid, stars, ts, name, kind\)"):
        resolve("hf-bad", progress=False)
    assert not [p for p in (isolated_home / "datasets" / "hf-bad").glob("hf-v*")]


def test_missing_data_file_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsh) -> None:
    dsh.write_registry(tmp_path / "reg.yaml", [_entry("hf-gone", "csv", "gone.csv", {"user": "u", "item": "i"})], monkeypatch)
    with pytest.raises(DataError, match=r"gone.csv not found"):
        resolve("hf-gone", progress=False)
