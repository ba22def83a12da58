"""A folder of atomic files given as a path: accepted when valid, a one-line DataError otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from m6rec_bench.datasets import resolve
from m6rec_bench.datasets.local import prepare_local
from m6rec_bench.errors import DataError


def _folder(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / "data" / name
    folder.mkdir(parents=True)
    for suffix, text in files.items():
        (folder / f"{name}.{suffix}").write_text(text, encoding="utf-8")
    return folder


GOOD = {
    "inter": "user_id:token\titem_id:token\trating:float\n1\t10\t4\n2\t11\t5\n",
    "item": "item_id:token\ttitle:token_seq\tgenre:token\tprice:float\n10\ta b\tx\t1.5\n11\tc\ty\t2\n",
}


def test_good_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, "mydata", GOOD)
    monkeypatch.chdir(tmp_path)
    ds = resolve("./data/mydata")
    assert ds.name == "mydata" and ds.root == folder.parent.resolve() and ds.folder == folder.resolve()
    assert ds.features.item_text == ("title", "genre")
    assert ds.features.kg is False
    assert ds.source == f"local:{folder.resolve()}"
    assert resolve(str(folder)).checksum == ds.checksum
    # a bare name that is not registered but is a folder here
    monkeypatch.chdir(tmp_path / "data")
    assert resolve("mydata").checksum == ds.checksum


def test_kg_feature_needs_kg_and_link(tmp_path: Path) -> None:
    files = dict(GOOD, kg="head_id:token\trelation_id:token\ttail_id:token\ne1\tr\te2\n")
    folder = _folder(tmp_path, "k", files)
    assert prepare_local(folder).features.kg is False
    (folder / "k.link").write_text("item_id:token\tentity_id:token\n10\te1\n")
    assert prepare_local(folder).features.provides() == {"inter", "item_text", "kg"}


def test_bundled_copy_as_a_local_folder(tmp_path: Path, dsh) -> None:
    copy = tmp_path / "ml-100k"
    shutil.copytree(dsh.BUNDLED, copy)
    ds = prepare_local(copy)
    assert ds.features.item_text == ("movie_title", "release_year", "class") and ds.features.kg
    assert ds.checksum == resolve("ml-100k").checksum  # same bytes, same checksum


@pytest.mark.parametrize(
    ("files", "pattern"),
    [
        ({"inter": "user_id:token\trating:float\n1\t3\n"}, r"mydata.inter: missing column item_id \(found: user_id:token, rating:float\)"),
        ({"inter": "item_id:token\n1\n"}, r"missing column user_id \(found: item_id:token\)"),
        ({"inter": "user_id\titem_id\n1\t2\n"}, r"header column 'user_id' is not 'name:type'"),
        ({"inter": "user_id:token,item_id:token\n1,2\n"}, r"is not 'name:type'"),
        ({"inter": "user_id:token\titem_id:token\n"}, r"no interactions"),
        ({"inter": ""}, r"empty file"),
        ({"inter": "user_id:token\titem_id:token\n1\t2\n", "item": "id:token\ttitle:token_seq\n2\tx\n"}, r"mydata.item: missing column item_id"),
    ],
)
def test_bad_atomic_files(tmp_path: Path, files: dict[str, str], pattern: str) -> None:
    folder = _folder(tmp_path, "mydata", files)
    with pytest.raises(DataError, match=pattern) as exc:
        prepare_local(folder)
    assert "\n" not in str(exc.value)


def test_missing_inter_lists_the_files_found(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "mydata", {})
    (folder / "ratings.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    (folder / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"mydata.inter not found \(the folder holds: notes.txt, ratings.inter\)"):
        prepare_local(folder)


def test_missing_folder_and_file_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        resolve(str(tmp_path / "nope"))
    f = tmp_path / "x.inter"
    f.write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match="is a file, not a folder"):
        resolve(str(f))
