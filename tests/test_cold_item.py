"""The cold-item protocol: the split, its determinism, and metrics over the right items."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.errors import UsageError
from m6rec_bench.evaluation import evaluate_groups
from m6rec_bench.models import registry
from m6rec_bench.protocols import PROTOCOLS, get_protocol
from m6rec_bench.protocols.cold_item import (
    COLD_ITEM,
    _split_counts,
    cold_items,
    item_groups,
    prepare_split,
    split_lines,
)



def _rows(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.split("\t")[:2]) for line in lines]  # (user, item); slice files keep this column order


def _files(ds: PreparedDataset) -> dict[str, list[tuple[str, str]]]:
    return {part: _rows(ds.folder / f"{ds.name}.{part}.inter") for part in ("train", "valid", "test")}


def test_protocol_is_registered():
    assert PROTOCOLS["cold-item"] is COLD_ITEM
    assert get_protocol("cold-item").settings()["eval_args"]["mode"] == "full"


def test_split_holds_no_cold_item_in_training(ml100k_slice):
    ds = prepare_split(ml100k_slice, seed=7)
    files = _files(ds)
    held = cold_items(ds.folder)
    cold_valid, cold_test = set(held["cold_valid"]), set(held["cold_test"])
    original = _rows(ml100k_slice.atomic_file("inter"))
    items = {i for _, i in original}
    # 20 % of the items, half to valid and half to test, disjoint
    assert len(cold_valid) + len(cold_test) == round(0.2 * len(items))
    assert abs(len(cold_valid) - len(cold_test)) <= 1 and not cold_valid & cold_test
    # no cold item in training; every interaction of a cold item is in its own split
    assert not {i for _, i in files["train"]} & (cold_valid | cold_test)
    assert {i for _, i in files["valid"]} >= cold_valid and {i for _, i in files["test"]} >= cold_test
    assert not {i for _, i in files["valid"]} & cold_test and not {i for _, i in files["test"]} & cold_valid
    assert sum(i in cold_test for _, i in original) == sum(i in cold_test for _, i in files["test"])
    # nothing lost, nothing duplicated
    assert Counter(original) == Counter(files["train"] + files["valid"] + files["test"])
    # warm interactions split 8:1:1 per user with RecBole's rounding
    cold = cold_valid | cold_test
    for user in sorted({u for u, _ in original})[:30]:
        n = sum(u == user and i not in cold for u, i in original)
        counts = [sum(u == user and i not in cold for u, i in files[p]) for p in ("train", "valid", "test")]
        cuts = _split_counts(n, (0.8, 0.1, 0.1))
        assert counts == [cuts[0], cuts[1] - cuts[0], n - cuts[1]]
    # side files follow under the split's name, so plugins find text and KG
    for suffix in ("item", "kg", "link", "user"):
        assert (ds.folder / f"{ds.name}.{suffix}").is_file()
    assert ds.name != ml100k_slice.name and ds.features == ml100k_slice.features


def test_split_is_deterministic_by_seed(ml100k_slice, tmp_path, monkeypatch):
    first = prepare_split(ml100k_slice, seed=3)
    texts = {p: (first.folder / f"{first.name}.{p}.inter").read_bytes() for p in ("train", "valid", "test")}
    monkeypatch.setenv("M6BENCH_HOME", str(tmp_path / "elsewhere"))
    again = prepare_split(ml100k_slice, seed=3)
    assert again.folder != first.folder
    assert {p: (again.folder / f"{again.name}.{p}.inter").read_bytes() for p in texts} == texts
    other = prepare_split(ml100k_slice, seed=4)
    assert cold_items(other.folder) != cold_items(first.folder)
    header = "user_id:token\titem_id:token\n"
    lines = [f"u{u}\ti{(u * 7 + k) % 40}\n" for u in range(30) for k in range(10)]
    assert split_lines(header, lines, 1) == split_lines(header, lines, 1)
    assert split_lines(header, lines, 1).cold_test != split_lines(header, lines, 2).cold_test


def test_dataset_without_content_is_refused(ml100k_slice):
    bare = PreparedDataset(ml100k_slice.name, ml100k_slice.root, ml100k_slice.checksum, DatasetFeatures())
    with pytest.raises(UsageError, match="item text or a knowledge graph"):
        COLD_ITEM.prepare(bare, 1)


def _ndcg10(ranked: list[int], positives: set[int]) -> float:
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(ranked[:10]) if i in positives)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(len(positives), 10)))
    return dcg / idcg


def test_metrics_are_computed_over_the_right_items(ml100k_slice):
    entry = registry.get("BPR")
    split, extra = COLD_ITEM.prepare(ml100k_slice, 2020)
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", protocol="cold-item", epochs=2)
    run = train_and_evaluate(entry, split, build_config_dict(spec, entry, COLD_ITEM, ml100k_slice, extra))
    groups = item_groups(run)
    ds = run.dataset
    ids = ds.field2token_id[ds.iid_field]
    held = cold_items(split.folder)
    assert set(np.flatnonzero(groups["cold"])) == {ids[t] for t in held["cold_test"]}
    assert not groups["warm"][[ids[t] for t in held["cold_valid"] + held["cold_test"]]].any()

    res = evaluate_groups(run.model, run.test_data, {"cold": groups["cold"], "warm": groups["warm"]})
    # independent re-computation, user by user, from the test file itself
    test_rows = _files(split)["test"]
    uids = ds.field2token_id[ds.uid_field]
    by_user: dict[int, set[int]] = {}
    for u, i in test_rows:
        by_user.setdefault(uids[u], set()).add(ids[i])
    cold_users = sorted(u for u, items in by_user.items() if any(groups["cold"][i] for i in items))
    assert sorted(res["cold"].user_ids.tolist()) == cold_users
    history = run.test_data.uid2history_item
    run.model.eval()
    for uid, value in list(zip(res["cold"].user_ids, res["cold"].values["ndcg@10"], strict=True))[:25]:
        with torch.no_grad():
            inter = run.test_data._dataset.join(Interaction({ds.uid_field: torch.tensor([uid])}))
            scores = run.model.full_sort_predict(inter).view(-1).clone()
        scores[0] = -np.inf
        scores[history[uid]] = -np.inf
        ranked = torch.topk(scores, 20).indices.tolist()
        positives = {i for i in by_user[uid] if groups["cold"][i]}
        assert value == pytest.approx(_ndcg10(ranked, positives))


def test_run_cell_reports_cold_warm_and_overall(ml100k_slice):
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model="Pop", protocol="cold-item", epochs=1),
                   prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    assert set(rec.extra_metrics) == {"cold", "warm", "overall", "beyond"}  # beyond accuracy: every record
    assert rec.extra_metrics["overall"] == rec.test
    # popularity knows nothing of items without training interactions: they are never recommended
    assert rec.extra_metrics["cold"]["hit@20"] == 0.0
    assert rec.extra_metrics["warm"]["ndcg@10"] > 0
    assert "ndcg@10" in rec.extra_metrics["cold"]


def test_held_out_items_are_never_training_negatives(ml100k_slice):
    from m6rec_bench import compat
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from m6rec_bench.protocols.cold_item import exclude_held_out_negatives

    compat.apply()
    entry = registry.get("BPR")
    split, extra = COLD_ITEM.prepare(ml100k_slice, 2020)
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", protocol="cold-item", epochs=1)
    config_dict = build_config_dict(spec, entry, COLD_ITEM, ml100k_slice, extra)
    assert config_dict["m6_train_negatives"] == "warm items only"  # in the config, so in the cell hash
    config = compat.build_config("BPR", split.name, {**config_dict, "data_path": str(split.root), "show_progress": False})
    init_seed(2020, True)
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    ids = dataset.field2token_id[dataset.iid_field]
    held = {ids[t] for t in sum(cold_items(split.folder).values(), [])}

    def negatives() -> set[int]:
        return {int(i) for batch in train for i in batch[config["NEG_PREFIX"] + config["ITEM_ID_FIELD"]].tolist()}

    assert negatives() & held, "RecBole alone draws held-out items as negatives (what the protocol prevents)"
    valid_used = [set(s) for s in valid._sampler.used_ids] if getattr(valid, "_sampler", None) else None
    exclude_held_out_negatives(train)
    assert not negatives() & held
    if valid_used is not None:  # evaluation phases are untouched
        assert [set(s) for s in valid._sampler.used_ids] == valid_used
    # and a full cell trains under it
    run = train_and_evaluate(entry, split, config_dict)
    assert np.isfinite(run.test["ndcg@10"])
