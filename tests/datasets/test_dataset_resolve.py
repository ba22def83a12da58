"""resolve(): bundled ml-100k, and a url source served from 127.0.0.1 through a test registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from m6rec_bench import compat
from m6rec_bench.datasets import checksum_of, resolve
from m6rec_bench.datasets.convert import ml100k
from m6rec_bench.datasets.prepare import bundled_root
from m6rec_bench.errors import ChecksumError, DataError, UsageError


def load_with_recbole(root: Path, name: str):  # type: ignore[no-untyped-def]
    """Build a RecBole Config + Dataset on prepared atomic files, as the engine does."""
    compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset

    with compat.shielded_argv():
        config = Config(model="Pop", dataset=name, config_dict={"data_path": str(root), "show_progress": False, "load_col": None})
    return create_dataset(config)


def test_bundled_ml100k(isolated_home: Path) -> None:
    ds = resolve("movielens", progress=False)
    assert ds.name == "ml-100k"
    assert ds.root == bundled_root()
    assert ds.atomic_file("inter").is_file()
    assert ds.features.item_text == ("movie_title", "release_year", "class")
    assert ds.features.kg is True
    assert ds.features.provides() == {"inter", "item_text", "kg"}
    assert ds.checksum.startswith("sha256:") and len(ds.checksum) == 71
    again = resolve("ML-100K")
    assert again.checksum == ds.checksum
    assert checksum_of(ds.folder, ds.name) == ds.checksum
    assert not list((isolated_home / "datasets").glob("ml-100k"))  # nothing copied


def test_checksum_changes_with_content_and_memo_notices(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "d.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    first = checksum_of(folder, "d")
    assert checksum_of(folder, "d") == first
    (folder / "d.inter").write_text("user_id:token\titem_id:token\n1\t3\n")
    assert checksum_of(folder, "d") != first
    (folder / "d.item").write_text("item_id:token\n2\n")
    assert checksum_of(folder, "d") not in (first,)


def test_url_source_downloads_converts_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, dsh, isolated_home: Path) -> None:
    data = dsh.ml100k_zip(300)
    url = file_server.add("/tiny-ml.zip", data)
    dsh.write_registry(tmp_path / "reg.yaml", [dsh.url_entry("tiny-ml", url, dsh.md5(data))], monkeypatch)

    ds = resolve("tiny-ml", progress=False)
    assert file_server.requests["/tiny-ml.zip"] == 1
    assert ds.root == isolated_home / "datasets" / "tiny-ml" / f"ml100k-v{ml100k.CONVERTER_VERSION}"
    assert ds.folder == ds.root / "tiny-ml"
    assert sorted(p.name for p in ds.folder.iterdir()) == ["tiny-ml.inter", "tiny-ml.item", "tiny-ml.user"]
    assert ds.features.item_text == ("movie_title", "release_year", "class") and ds.features.kg is False
    assert ds.source == url
    lines = ds.atomic_file("inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert len(lines) == 301
    # no temp or extracted leftovers; the verified archive is kept for re-conversion
    raw = isolated_home / "datasets" / "tiny-ml" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["tiny-ml.zip"]
    assert not [p for p in ds.root.parent.iterdir() if p.name.startswith(".")]

    dataset = load_with_recbole(ds.root, ds.name)
    assert dataset.inter_num == 300
    assert dataset.user_num - 1 == len({line.split("\t")[0] for line in lines[1:]})
    assert {"movie_title", "release_year", "class"} <= set(dataset.item_feat.columns)
    assert {"age", "gender", "occupation", "zip_code"} <= set(dataset.user_feat.columns)

    again = resolve("TINY-ML-alias", progress=False)
    assert file_server.requests["/tiny-ml.zip"] == 1  # served from the cache
    assert again == ds

    # a converter version bump converts again from the kept archive, without downloading
    monkeypatch.setattr(ml100k, "CONVERTER_VERSION", ml100k.CONVERTER_VERSION + 1)
    bumped = resolve("tiny-ml", progress=False)
    assert bumped.root.name == f"ml100k-v{ml100k.CONVERTER_VERSION}"
    assert bumped.checksum == ds.checksum
    assert file_server.requests["/tiny-ml.zip"] == 1


def test_wrong_md5_caches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, dsh, isolated_home: Path) -> None:
    data = dsh.ml100k_zip(50)
    url = file_server.add("/tiny-ml.zip", data)
    wrong = "md5:" + "f" * 32
    dsh.write_registry(tmp_path / "reg.yaml", [dsh.url_entry("tiny-ml", url, wrong)], monkeypatch)
    with pytest.raises(ChecksumError) as exc:
        resolve("tiny-ml", progress=False)
    assert f"expected {wrong}, got {dsh.md5(data)}" in str(exc.value)
    assert exc.value.exit_code == 1
    assert dsh.cached_files(isolated_home) == []
    assert not (isolated_home / "datasets" / "tiny-ml").exists()


def test_truncated_download_caches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, dsh, isolated_home: Path) -> None:
    data = dsh.ml100k_zip(300)
    url = file_server.add("/tiny-ml.zip", data, truncate=True)
    dsh.write_registry(tmp_path / "reg.yaml", [dsh.url_entry("tiny-ml", url, dsh.md5(data))], monkeypatch)
    with pytest.raises(DataError, match="cut short"):
        resolve("tiny-ml", progress=False)
    assert dsh.cached_files(isolated_home) == []


def test_evil_archive_writes_nothing_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, dsh, isolated_home: Path) -> None:
    members = {f"ml-100k/{k}": v for k, v in dsh.raw_ml100k_files(20).items()}
    members["../evil"] = b"gotcha"
    members["../../evil"] = b"gotcha"
    data = dsh.make_zip(members)
    url = file_server.add("/evil.zip", data)
    dsh.write_registry(tmp_path / "reg.yaml", [dsh.url_entry("evil-ml", url, dsh.md5(data))], monkeypatch)
    with pytest.raises(DataError, match=r"unsafe member '\.\./evil'"):
        resolve("evil-ml", progress=False)
    assert dsh.cached_files(isolated_home) == []
    assert not list(isolated_home.rglob("evil")) and not (isolated_home.parent / "evil").exists()


def test_unknown_name_and_unknown_source_kind(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="did you mean 'movielens'"):
        resolve("movielns")
    from m6rec_bench.datasets.prepare import prepare
    from m6rec_bench.datasets.registry import get_spec

    with pytest.raises(UsageError, match="no 'huggingface' source"):
        prepare(get_spec("ml-1m"), source="huggingface")


def test_bad_raw_file_leaves_no_half_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, dsh, isolated_home: Path) -> None:
    files = dsh.raw_ml100k_files(20)
    files["u.data"] += b"1\t2\tthree-fields-only\n"
    data = dsh.make_zip({f"ml-100k/{k}": v for k, v in files.items()})
    url = file_server.add("/bad.zip", data)
    dsh.write_registry(tmp_path / "reg.yaml", [dsh.url_entry("bad-ml", url, dsh.md5(data))], monkeypatch)
    with pytest.raises(DataError, match=r"u.data line 21: expected 4"):
        resolve("bad-ml", progress=False)
    base = isolated_home / "datasets" / "bad-ml"
    assert sorted(p.relative_to(base).as_posix() for p in base.rglob("*")) == ["raw", "raw/bad.zip"]
