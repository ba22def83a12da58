"""The user-group protocol: seeded occupation groups, target-only ``.inter``, source users kept aside."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from m6rec_bench.datasets import PreparedDataset
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.errors import UsageError
from m6rec_bench.protocols import get_protocol
from m6rec_bench.protocols.default import DEFAULT
from m6rec_bench.protocols.user_group import MARKER, SOURCE_FILE, TARGET_FRACTION, occupations_of, split_users

PROTOCOL = get_protocol("user-group")


def _rows(path) -> tuple[str, list[str]]:
    with open(path, encoding="utf-8") as fh:
        return fh.readline(), [line for line in fh if line.strip()]


def _users(lines: list[str]) -> set[str]:
    return {line.split("\t", 1)[0] for line in lines}


def test_registered_with_the_default_split():
    assert PROTOCOL.name == "user-group"
    assert PROTOCOL.settings()["eval_args"] == DEFAULT.settings()["eval_args"]
    assert "benchmark_filename" not in PROTOCOL.settings()  # RecBole splits the target file itself


def test_groups_are_disjoint_cover_all_users_and_split_files_accordingly(ml100k_slice):
    split, extra = PROTOCOL.prepare(ml100k_slice, 2020)
    assert extra == {}
    header, all_lines = _rows(ml100k_slice.atomic_file("inter"))
    t_header, target = _rows(split.atomic_file("inter"))
    s_header, source = _rows(split.folder / SOURCE_FILE)
    assert t_header == s_header == header
    assert Counter(target) + Counter(source) == Counter(all_lines)  # every interaction, exactly once
    t_users, s_users = _users(target), _users(source)
    assert not t_users & s_users, "a source user in the target file"
    assert t_users | s_users == _users(all_lines)
    assert len(t_users) >= TARGET_FRACTION * len(_users(all_lines))

    meta = json.loads((split.folder / MARKER).read_text())
    occ = occupations_of(ml100k_slice.atomic_file("user"))
    assert {occ[u] for u in t_users} == set(meta["target_occupations"])
    assert {occ[u] for u in s_users} == set(meta["source_occupations"])
    assert not set(meta["target_occupations"]) & set(meta["source_occupations"])
    assert meta["n_users"] == {"target": len(t_users), "source": len(s_users)}
    assert meta["n_interactions"] == {"target": len(target), "source": len(source)}
    # side files: the target users' .user rows only; items, KG and links as they were
    _, user_rows = _rows(split.atomic_file("user"))
    assert _users(user_rows) == t_users
    for suffix in ("item", "kg", "link"):
        assert split.atomic_file(suffix).read_bytes() == ml100k_slice.atomic_file(suffix).read_bytes()


def test_groups_are_deterministic_per_seed_and_differ_across_seeds(ml100k_slice):
    occ = occupations_of(ml100k_slice.atomic_file("user"))
    users = sorted(occ)
    groups = {seed: split_users(users, occ, seed) for seed in (2020, 2021, 2022)}
    assert split_users(users, occ, 2020) == groups[2020]
    assert len({g.target_users for g in groups.values()}) == 3
    # the written split follows the same rule, and a rewrite (folder removed) gives the same bytes
    split, _ = PROTOCOL.prepare(ml100k_slice, 2021)
    _, target = _rows(split.atomic_file("inter"))
    assert _users(target) == groups[2021].target_users
    before = split.atomic_file("inter").read_bytes()
    shutil.rmtree(split.folder)
    again, _ = PROTOCOL.prepare(ml100k_slice, 2021)
    assert again.atomic_file("inter").read_bytes() == before


def test_target_takes_whole_occupations_in_seeded_order_until_thirty_percent():
    occ = {f"u{i}": ("a" if i < 50 else "b" if i < 80 else "c") for i in range(100)}
    for seed in range(10):
        g = split_users(sorted(occ), occ, seed)
        assert len(g.target_users) >= 30
        # no occupation could have been left out: without the last one drawn the target is short
        last = g.target_occupations[-1]
        assert len(g.target_users) - sum(v == last for v in occ.values()) < 30


def test_dataset_without_occupation_is_refused(ml100k_slice, tmp_path):
    folder = tmp_path / "noocc"
    shutil.copytree(ml100k_slice.folder, folder / "noocc-data")
    for path in (folder / "noocc-data").iterdir():
        path.rename(path.with_name(path.name.replace(ml100k_slice.name, "noocc-data")))
    user = folder / "noocc-data" / "noocc-data.user"
    header, rows = _rows(user)
    cols = header.rstrip("\n").split("\t")
    keep = [i for i, c in enumerate(cols) if not c.startswith("occupation")]
    user.write_text("\t".join(cols[i] for i in keep) + "\n"
                    + "".join("\t".join(r.rstrip("\n").split("\t")[i] for i in keep) + "\n" for r in rows))
    ds = PreparedDataset(name="noocc-data", root=folder, checksum="sha256:x", features=ml100k_slice.features)
    with pytest.raises(UsageError, match="occupation.*--protocol default"):
        PROTOCOL.prepare(ds, 2020)
    user.unlink()
    with pytest.raises(UsageError, match="no noocc-data.user"):
        PROTOCOL.prepare(ds, 2020)


def test_a_baseline_trains_and_is_tested_on_target_users_only(ml100k_slice):
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model="Pop", protocol="user-group", epochs=1),
                   prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    split, _ = PROTOCOL.prepare(ml100k_slice, 2020)
    _, target = _rows(split.atomic_file("inter"))
    assert set(rec.per_user["users"]) <= _users(target)
    assert rec.protocol == "user-group" and rec.test["ndcg@10"] > 0
