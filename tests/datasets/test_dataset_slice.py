"""slice_dataset(): a small ml-100k for fast tests, consistent across its atomic files."""

from __future__ import annotations

from pathlib import Path

from m6rec_bench import compat
from m6rec_bench.datasets import resolve, slice_dataset


def _col(path: Path, column: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    idx = [c.split(":")[0] for c in lines[0].split("\t")].index(column)
    return [line.split("\t")[idx] for line in lines[1:]]


def test_slice_keeps_only_kept_users_and_items(tmp_path: Path) -> None:
    full = resolve("ml-100k")
    ds = slice_dataset(full, tmp_path / "slices", n_users=150, seed=0)
    assert ds.name == "ml-100k-150u-s0" and ds.root == tmp_path / "slices"
    assert ds.features == full.features
    users = set(_col(ds.atomic_file("inter"), "user_id"))
    items = set(_col(ds.atomic_file("inter"), "item_id"))
    assert len(users) == 150
    # every interaction of a kept user is kept, byte for byte
    full_lines = full.atomic_file("inter").read_text().splitlines()
    kept = [line for line in full_lines[1:] if line.split("\t")[0] in users]
    assert ds.atomic_file("inter").read_text().splitlines() == [full_lines[0], *kept]
    for suffix in ("item", "user", "kg", "link"):
        assert ds.atomic_file(suffix).read_text().splitlines()[0] == full.atomic_file(suffix).read_text().splitlines()[0]
    assert set(_col(ds.atomic_file("item"), "item_id")) == items
    assert set(_col(ds.atomic_file("user"), "user_id")) == users
    assert set(_col(ds.atomic_file("link"), "item_id")) <= items
    entities = set(_col(ds.atomic_file("link"), "entity_id"))
    assert set(_col(ds.atomic_file("kg"), "head_id")) <= entities
    assert 0 < len(_col(ds.atomic_file("kg"), "head_id")) < len(_col(full.atomic_file("kg"), "head_id"))


def test_slice_is_deterministic_reused_and_seeded(tmp_path: Path) -> None:
    full = resolve("ml-100k")
    a = slice_dataset(full, tmp_path, 40, seed=1)
    mtime = a.atomic_file("inter").stat().st_mtime_ns
    b = slice_dataset(full, tmp_path, 40, seed=1)
    assert a == b and b.atomic_file("inter").stat().st_mtime_ns == mtime  # reused, not rewritten
    c = slice_dataset(full, tmp_path / "other", 40, seed=1)
    assert c.checksum == a.checksum
    d = slice_dataset(full, tmp_path, 40, seed=2)
    assert d.name != a.name and d.checksum != a.checksum
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_slice_of_a_local_folder_without_kg(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\n1\ta\n2\tb\n3\tc\n1\tc\n")
    (folder / "toy.item").write_text("item_id:token\ttitle:token_seq\na\tA\nb\tB\nc\tC\n")
    ds = slice_dataset(resolve(str(folder)), tmp_path / "out", 5, name="toy-all")
    assert ds.name == "toy-all" and ds.features.kg is False
    assert ds.atomic_file("inter").read_text() == (folder / "toy.inter").read_text()
    one = slice_dataset(resolve(str(folder)), tmp_path / "out", 1, seed=3)
    kept_items = set(_col(one.atomic_file("inter"), "item_id"))
    assert set(_col(one.atomic_file("item"), "item_id")) == kept_items


def test_recbole_loads_the_slice_not_the_bundled_copy(tmp_path: Path) -> None:
    ds = slice_dataset(resolve("ml-100k"), tmp_path, 150)
    compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset

    with compat.shielded_argv():
        config = Config(model="Pop", dataset=ds.name, config_dict={"data_path": str(ds.root), "show_progress": False})
    dataset = create_dataset(config)
    assert dataset.user_num - 1 == 150
    assert dataset.inter_num == len(ds.atomic_file("inter").read_text().splitlines()) - 1
