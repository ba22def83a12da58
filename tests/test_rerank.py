"""Re-ranking (m6rec_bench.rerank, engine/reranked.py): replay, LinUCB, slates, cells, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from m6rec_bench import rerank
from m6rec_bench.beyond import ItemStats
from m6rec_bench.cli import app
from m6rec_bench.engine import cell
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.errors import UsageError
from m6rec_bench.evaluation import evaluate_groups
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.results.store import RecordStore


def test_parse_methods():
    assert rerank.parse("linucb") == rerank.Method("linucb", 1.0) and rerank.parse(" MMR ").name == "mmr"
    assert rerank.parse("mmr:0.7").name == "mmr:0.7" and rerank.parse("linucb:1").name == "linucb"  # the default
    assert rerank.parse("linucb:0").param == 0.0
    for bad, why in (("bogus", "not a re-ranking method"), ("mmr:1.5", "between 0 and 1"), ("mmr:x", "between 0 and 1"),
                     ("linucb:-1", "≥ 0"), ("linucbb", "did you mean 'linucb'")):
        with pytest.raises(UsageError, match=why):
            rerank.parse(bad)
    spec = CellSpec(dataset="ml-100k", model="BPR", rerank="linucb")
    assert spec.row == "BPR [linucb]"
    with pytest.raises(UsageError, match="either compressed or re-ranked"):
        cell.validate_spec(spec.model_copy(update={"compress": "int8"}))


def _toy(seed: int = 0) -> tuple[rerank.Candidates, ItemStats]:
    """30 users, 40 items, each user's 15 candidates and 3 positives among them; a random training matrix."""
    rng = np.random.default_rng(seed)
    stats = ItemStats.from_matrix(sp.csr_matrix((rng.random((31, 41)) < 0.15).astype(float)))
    items = np.stack([rng.choice(np.arange(1, 41), 15, replace=False) for _ in range(30)])
    scores = -np.sort(rng.random((30, 15)), axis=1)
    return rerank.Candidates(np.arange(1, 31), items, scores, [row[rng.choice(15, 3, replace=False)] for row in items]), stats


class _Forced:
    """A policy that always picks the same arm (row) and counts its updates."""

    def __init__(self, arm: int) -> None:
        self.arm, self.updates = arm, 0

    def choose(self, contexts: np.ndarray) -> int:
        return self.arm

    def update(self, x: np.ndarray, reward: float) -> None:
        self.updates += 1


def test_replay_counts_only_matched_events():
    cands, stats = _toy()
    events = list(rerank.simulate_log(cands, stats, seed=3, novelty_weight=2.0, rounds=4))
    assert len(events) == 30 * 4 * 10
    shown = np.array([e.shown for e in events])
    again = rerank.simulate_log(cands, stats, seed=3, novelty_weight=2.0, rounds=4)
    assert np.array_equal(shown, [e.shown for e in again])  # the logger is seeded
    assert len(np.unique(shown)) > 5  # and shows many different arms
    for arm in (0, 4):
        policy = _Forced(arm)
        res = rerank.replay(policy, iter(events))
        logged = [e for e in events if e.shown == arm]
        assert res.events == len(events)
        assert res.matched == len(logged) == policy.updates > 0
        assert res.reward_sum == pytest.approx(sum(e.reward for e in logged))
        assert res.reward == pytest.approx(res.reward_sum / res.matched)


def test_logged_rewards_are_hits_with_the_novelty_bonus():
    cands, stats = _toy(1)
    user_of_event = np.repeat(np.arange(30), 2 * 10)
    events = list(rerank.simulate_log(cands, stats, seed=0, novelty_weight=0.5, rounds=2))
    n_hits = 0
    for u, e in zip(user_of_event, events, strict=True):
        item = e.items[e.shown]
        assert set(e.items) <= set(cands.items[u])
        if item in cands.positives[u]:
            n_hits += 1
            assert e.reward == pytest.approx(1 + 0.5 * stats.novelty[item] / stats.max_novelty)
        else:
            assert e.reward == 0.0
    assert n_hits > 0
    # within one logged slate an item is shown once, and the slate grows by one item per position
    first = events[:10]
    assert len({e.items[e.shown] for e in first}) == 10 and [len(e.items) for e in first] == list(range(15, 5, -1))


def test_linucb_update_math_and_it_learns_the_better_arm():
    rng = np.random.default_rng(0)
    arms = np.eye(2)  # arm 0 pays with probability 0.2, arm 1 with 0.8
    bandit = rerank.LinUCB(dim=2, alpha=0.5)
    A, b, picks = np.eye(2), np.zeros(2), []
    for _ in range(400):
        a = bandit.choose(arms)
        r = float(rng.random() < (0.2, 0.8)[a])
        bandit.update(arms[a], r)
        A += np.outer(arms[a], arms[a])
        b += r * arms[a]
        picks.append(a)
    np.testing.assert_allclose(bandit.A_inv, np.linalg.inv(A), atol=1e-10)  # Sherman–Morrison = the ridge inverse
    np.testing.assert_allclose(bandit.theta, np.linalg.solve(A, b), atol=1e-10)
    assert np.mean(picks[-200:]) > 0.9 and bandit.theta[1] == pytest.approx(0.8, abs=0.1)
    bandit.explore = False
    assert bandit.choose(arms) == 1 and np.allclose(bandit.scores(arms), bandit.theta)


def test_mmr_is_relevance_first_and_trades_for_diversity():
    cands, stats = _toy(2)
    only_rel = rerank.build_slates(rerank.mmr(1.0), cands, stats)
    np.testing.assert_array_equal(only_rel, cands.items[:, :10])  # λ = 1: the base order
    diverse = rerank.build_slates(rerank.mmr(0.3), cands, stats)
    assert not np.array_equal(diverse, only_rel)


@pytest.fixture(scope="module")
def bpr_run(ml100k_slice, m6home):
    mp = pytest.MonkeyPatch()
    mp.setenv("M6BENCH_HOME", str(m6home))
    try:
        entry = registry.get("BPR")
        spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=2)
        yield train_and_evaluate(entry, ml100k_slice, build_config_dict(spec, entry, get_protocol("default"), ml100k_slice, {}))
    finally:
        mp.undo()


@pytest.mark.parametrize("method", ["linucb", "mmr:0.3"])
def test_slates_are_distinct_candidates_without_history_and_lead_the_ranking(bpr_run, method):
    run = bpr_run
    out = rerank.fit_and_wrap(rerank.parse(method), run.model, run.train_data, run.valid_data, run.test_data, seed=2020)
    cands = rerank.candidates(run.model, run.test_data)
    data = run.test_data
    for uid, slate, items in zip(out.user_ids, out.slates, cands.items, strict=True):
        assert len(set(slate.tolist())) == 10 and 0 not in slate
        assert set(slate.tolist()) <= set(items.tolist())  # only the user's top-50 candidates
        assert not set(slate.tolist()) & set(data.uid2history_item[uid].tolist())  # masked history never comes back
    # through the evaluator: the top-10 is the slate, ranks 11.. are the base ranking without the slate
    wrapped = evaluate_groups(out.model, data, {"all": None}, topk=(10,), top_items=20)["all"]
    base = evaluate_groups(run.model, data, {"all": None}, topk=(10,), top_items=40)["all"]
    order = {int(u): i for i, u in enumerate(out.user_ids)}
    for row, uid in enumerate(wrapped.user_ids):
        slate = out.slates[order[int(uid)]]
        np.testing.assert_array_equal(wrapped.top_items[row, :10], slate)
        rest = [i for i in base.top_items[row] if i not in set(slate.tolist())][:10]
        np.testing.assert_array_equal(wrapped.top_items[row, 10:], rest)
    if method == "linucb":
        g = out.group
        assert g["replay_events"] == len(run.valid_data.uid_list) * rerank.ROUNDS * rerank.SLATE
        assert 0 < g["replay_matched"] < g["replay_events"] and g["replay_reward"] >= 0


def test_reranked_cell_reuses_the_twin_artifact(ml100k_slice, tmp_path, monkeypatch):
    trained: list[str] = []
    real = cell.train_and_evaluate

    def counting(entry, *args, **kw):
        trained.append(entry.name)
        return real(entry, *args, **kw)

    monkeypatch.setattr(cell, "train_and_evaluate", counting)
    store = RecordStore(tmp_path)
    spec = CellSpec(dataset=str(ml100k_slice.folder), model="BPR", epochs=1)
    recs = {m: run_cell(spec.model_copy(update={"rerank": m}), store=store, prepared=ml100k_slice) for m in ("linucb", "mmr")}
    assert trained == ["BPR"]  # the twin, once; both re-ranked cells load its artifact
    twin = run_cell(spec, store=store, prepared=ml100k_slice)
    assert twin.reused and trained == ["BPR"]
    for m, rec in recs.items():
        assert rec.status == "ok", rec.reason
        assert rec.label == f"BPR [{m}]" and rec.cell_id != twin.cell_id
        # the method is typed (Record.run), no longer an m6_rerank key in config: that is the settings the cell was given
        assert rec.run is not None and (rec.run.variant, rec.run.method) == ("rerank", m) and rec.config == twin.config
        old = rec.model_copy(update={"run": None, "config": {**rec.config, "m6_rerank": m}})  # as older records were
        assert old.options == rec.run and twin.run.variant is None
        assert rec.train_time_s == twin.train_time_s and rec.per_user["users"] == twin.per_user["users"]
        assert set(rec.extra_metrics["beyond"]) == {"coverage@10", "novelty@10", "ild@10"}
        assert rec.test != twin.test
    group = recs["linucb"].extra_metrics["rerank"]
    assert {"replay_events", "replay_matched", "replay_reward"} <= set(group)
    assert "rerank" not in recs["mmr"].extra_metrics
    # a plain cell keeps the id it always had: rerank enters the hash only when set
    entry = registry.get("BPR")
    cfg = build_config_dict(spec, entry, get_protocol("default"), ml100k_slice, {})
    payload_id = cell.cell_id(spec, entry, ml100k_slice, cfg)
    assert payload_id == twin.cell_id


def test_run_rerank_adds_rows_with_replay_columns(ml100k_slice, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    args = ["run", "-d", str(ml100k_slice.folder), "-m", "Pop", "--epochs", "1", "--rerank", "linucb,mmr",
            "--runs-dir", str(runs), "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Pop [linucb] seed 2020: test NDCG@10" in res.output
    board = next(out.rglob("leaderboard.md")).read_text()
    assert "| Pop [linucb] |" in board and "| Pop [mmr] |" in board and "Replay matched" in board and "ILD@10" in board
    data = json.loads(next(out.rglob("leaderboard.json")).read_text())
    cmd = {r["label"]: r["reproduce"]["command"] for r in data["rows"]}
    assert cmd["Pop [linucb]"].endswith("--rerank linucb") and "--ablation" not in cmd["Pop [mmr]"]
    assert data["reference"] == "Pop"  # paired tests compare against the plain baseline, never a re-ranked one


def test_bad_rerank_value_exits_2(ml100k_slice, tmp_path):
    res = CliRunner().invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "BPR", "--rerank", "bogus",
                                   "--runs-dir", str(tmp_path / "runs"), "-o", str(tmp_path / "lb")])
    assert res.exit_code == 2 and "not a re-ranking method" in res.output and "linucb" in res.output
    assert not (tmp_path / "lb").exists()  # refused before anything ran
