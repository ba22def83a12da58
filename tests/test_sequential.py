"""The sequential protocol: RecBole's leave-one-out in exact time order, per-user metrics, refusals.

Everything runs on the 150-user slice of the bundled ml-100k (``ml100k_slice``), one torch thread,
one or two epochs: what is checked is the split and the plumbing, not model quality.
"""

from __future__ import annotations

import json
from collections import defaultdict
import pytest
from typer.testing import CliRunner

from m6rec_bench import compat
from m6rec_bench.cli import app
from m6rec_bench.datasets import PreparedDataset
from m6rec_bench.engine.cell import CellSpec, build_config_dict, per_user_test_metrics, run_cell, train_and_evaluate
from m6rec_bench.engine.suite import SuiteConfig, plan
from m6rec_bench.errors import UsageError
from m6rec_bench.evaluation import per_user_metrics
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from raw_recbole import raw_recbole

SEQ = get_protocol("sequential")


def _raw_order(ds: PreparedDataset) -> dict[str, list[tuple[int, int, str]]]:
    """Each user's interactions from the ``.inter`` file as (exact timestamp, line, item), in time order."""
    by_user: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    with open(ds.atomic_file("inter"), encoding="utf-8") as fh:
        cols = [c.split(":")[0] for c in fh.readline().rstrip("\n").split("\t")]
        u, i, t = cols.index("user_id"), cols.index("item_id"), cols.index("timestamp")
        for line_no, line in enumerate(fh):
            row = line.rstrip("\n").split("\t")
            by_user[row[u]].append((int(float(row[t])), line_no, row[i]))
    return {user: sorted(rows) for user, rows in by_user.items()}


def _loaders(ds: PreparedDataset, model: str):
    compat.apply()
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    entry = registry.get(model)
    config_dict = build_config_dict(CellSpec(dataset=ds.name, model=model, protocol="sequential"), entry, SEQ, ds, {})
    config = compat.build_config(model, ds.name, {**config_dict, "data_path": str(ds.root), "show_progress": False})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return dataset, data_preparation(config, dataset)


def _targets(dataset, loader) -> dict[str, list[str]]:
    """User token → the item tokens a loader holds for that user (its targets)."""
    users = dataset.field2id_token[dataset.uid_field]
    items = dataset.field2id_token[dataset.iid_field]
    feat = loader._dataset.inter_feat
    out: dict[str, list[str]] = defaultdict(list)
    for u, i in zip(feat[dataset.uid_field].numpy(), feat[dataset.iid_field].numpy(), strict=True):
        out[str(users[u])].append(str(items[i]))
    return out


@pytest.fixture(scope="module")
def raw_order(ml100k_slice):
    return _raw_order(ml100k_slice)


@pytest.mark.parametrize("model", ["GRU4Rec", "BPR"])
def test_split_is_leave_one_out_in_exact_time_order(ml100k_slice, raw_order, model):
    dataset, (train, valid, test) = _loaders(ml100k_slice, model)
    sequential = model == "GRU4Rec"
    tests, valids = _targets(dataset, test), _targets(dataset, valid)
    trains = _targets(dataset, train)
    assert set(tests) == set(valids) == set(raw_order)
    for user, rows in raw_order.items():
        in_time = [item for _, _, item in rows]
        assert tests[user] == [in_time[-1]], f"user {user}: test must be the latest interaction"
        assert valids[user] == [in_time[-2]], f"user {user}: valid must be the one before"
        # a sequential model trains on every next item after the first; a general one on the set
        assert sorted(trains[user]) == sorted(in_time[1:-2] if sequential else in_time[:-2])
    if sequential:  # the test example's history is the user's previous items, in time order, ≤ 50
        feat = test._dataset.inter_feat
        items = dataset.field2id_token[dataset.iid_field]
        users = dataset.field2id_token[dataset.uid_field]
        for row in range(5):
            user = str(users[feat[dataset.uid_field][row]])
            n = int(feat["item_length"][row])
            history = [str(items[i]) for i in feat["item_id_list"][row][:n].tolist()]
            assert history == [item for _, _, item in raw_order[user]][:-1][-50:]


def test_exact_time_shim_is_what_makes_the_split_exact(ml100k_slice, raw_order, monkeypatch):
    """Without compat._exact_time_order, float32 timestamps tie and some users get a wrong test item."""
    compat.apply()
    from recbole.data.dataset import Dataset

    monkeypatch.setattr(Dataset, "_change_feat_format", Dataset._change_feat_format._m6_original)
    dataset, (_, _, test) = _loaders(ml100k_slice, "BPR")
    tests = _targets(dataset, test)
    wrong = [u for u, rows in raw_order.items() if tests[u] != [rows[-1][2]]]
    assert wrong, "RecBole's float32 sort no longer ties on this slice: the shim may be unnecessary (RecBole#2204)"


@pytest.fixture(scope="module")
def seq_run(ml100k_slice, m6home):
    """STAMP (the cheapest RecBole sequential model here), one epoch on the slice."""
    mp = pytest.MonkeyPatch()
    mp.setenv("M6BENCH_HOME", str(m6home))
    try:
        entry = registry.get("STAMP")
        spec = CellSpec(dataset=ml100k_slice.name, model="STAMP", protocol="sequential", epochs=1)
        config = build_config_dict(spec, entry, SEQ, ml100k_slice, {})
        yield train_and_evaluate(entry, ml100k_slice, config)
    finally:
        mp.undo()


def test_per_user_metrics_equal_recbole_on_a_sequential_loader(seq_run, ml100k_slice):
    result = per_user_metrics(seq_run.model, seq_run.test_data)
    assert result.means(4) == seq_run.test
    assert result.n_users == len(set(result.user_ids.tolist())) == 150  # one test item per user
    again = seq_run.trainer.evaluate(seq_run.test_data, load_best_model=False)
    assert {k: float(v) for k, v in again.items()} == seq_run.test
    per_user = per_user_test_metrics(seq_run)
    assert len(per_user["users"]) == len(set(per_user["users"])) == 150
    assert round(sum(per_user["ndcg@10"]) / 150, 4) == pytest.approx(seq_run.test["ndcg@10"], abs=1e-4)


def _agrees_with_raw_recbole(ds: PreparedDataset, model: str, epochs: int) -> None:
    spec = CellSpec(dataset=ds.name, model=model, protocol="sequential", epochs=epochs)
    rec = run_cell(spec, prepared=ds, command="test")
    assert rec.status == "ok", rec.reason
    config = build_config_dict(spec, registry.get(model), SEQ, ds, {})
    assert config["train_neg_sample_args"] is None and config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert rec.test == pytest.approx(raw_recbole(ds, model, config), abs=1e-12)
    assert len(rec.per_user["users"]) == 150 and rec.test["ndcg@10"] > 0


def test_stamp_matches_raw_recbole(ml100k_slice):
    _agrees_with_raw_recbole(ml100k_slice, "STAMP", epochs=1)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["GRU4Rec", "SASRec", "SRGNN"])
def test_leaderboard_baselines_match_raw_recbole(ml100k_slice, model):
    _agrees_with_raw_recbole(ml100k_slice, model, epochs=1)


@pytest.mark.parametrize("protocol", ["default", "cold-item"])
def test_sequential_models_are_refused_elsewhere_with_exit_code_2(ml100k_slice, tmp_path, protocol):
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--dataset", str(ml100k_slice.folder), "--protocol", protocol,
                              "--models", "BPR,SASRec", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "SASRec" in line and "--protocol sequential" in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.json"))  # nothing ran
    with pytest.raises(UsageError, match="sequential recommender"):
        run_cell(CellSpec(dataset="x", model="GRU4Rec", protocol=protocol), prepared=ml100k_slice)


def test_default_suites_follow_the_protocol():
    seq = [s.model for s in plan(SuiteConfig(protocols=["sequential"]))]
    assert seq[:5] == ["Pop", "BPR", "GRU4Rec", "SASRec", "SRGNN"]
    assert "SeqGNN-GRU" in seq and "LightGCN" not in seq
    both = plan(SuiteConfig(protocols=["default", "sequential"]))
    assert {s.model for s in both if s.protocol == "default"} == set(registry.default_suite("default"))
    assert not any(registry.get(s.model).model_type == "sequential" for s in both if s.protocol == "default")


def test_a_dataset_without_timestamps_is_refused(ml100k_slice, tmp_path):
    folder = tmp_path / "notime"
    folder.mkdir()
    lines = ml100k_slice.atomic_file("inter").read_text().splitlines()
    (folder / "notime.inter").write_text("\n".join("\t".join(line.split("\t")[:2]) for line in lines) + "\n")
    ds = PreparedDataset("notime", tmp_path, "sha256:x")
    with pytest.raises(UsageError, match="no 'timestamp' column"):
        SEQ.prepare(ds, 2020)


def test_models_list_shows_protocols():
    res = CliRunner().invoke(app, ["models", "list", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {row["name"]: row for row in json.loads(res.output)}
    assert "sequential" in rows["SASRec"]["protocols"] and "default," not in rows["SASRec"]["protocols"]
    assert "default, cold-item, sequential" in rows["BPR"]["protocols"]

