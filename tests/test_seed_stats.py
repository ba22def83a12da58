"""Seed-level statistics: the training run is the unit of ▲/▼; boards say what they are.

Every test constructs records (nothing trains): a row that wins on users but loses on most seeds,
a reference chosen on validation, a board rebuilt from its published ``records/`` alone, a budget
run, and an implementation variant kept out of the ranking.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.leaderboard import aggregate, write
from m6rec_bench.leaderboard.aggregate import declared_implementations
from m6rec_bench.leaderboard.board import PER_USER_SUFFIX, Selection, prune, published_records, read_per_user
from m6rec_bench.leaderboard.site import build_site
from m6rec_bench.leaderboard.stats import seed_test, user_test
from m6rec_bench.leaderboard.writers import to_csv, to_markdown
from m6rec_bench.results import Record

SEEDS = (2020, 2021, 2022)


def _table(md: str) -> str:
    """The table lines of a Markdown board (its header explains ▲/▼ in words)."""
    return "\n".join(line for line in md.splitlines() if line.startswith("|"))


def _rec(label: str, seed: int, per_user: list[float] | None = None, *, test: float | None = None,
         valid: float | None = None, kind: str = "baseline", model: str | None = None, config: dict | None = None,
         best_epoch: int | None = None, epochs_run: int | None = None, train_time_s: float = 10.0) -> Record:
    mean = float(np.mean(per_user)) if per_user is not None else float(test)
    rec = Record(cell_id=f"{label}-{seed}".replace(" ", "_").ljust(16, "0")[:16], status="ok", dataset="ml-100k",
                 dataset_checksum="sha256:abc", protocol="default", model=model or label, label=label, model_kind=kind,
                 family="recbole" if kind == "baseline" else "x", seed=seed, config=config or {},
                 test={"ndcg@10": mean}, valid={"ndcg@10": mean if valid is None else valid},
                 best_epoch=best_epoch, epochs_run=epochs_run, train_time_s=train_time_s,
                 created_at="2026-12-01T00:00:00+00:00")
    if per_user is not None:
        rec.per_user = {"users": [f"u{i}" for i in range(len(per_user))], "ndcg@10": [round(v, 6) for v in per_user]}
    return rec


def test_a_row_that_wins_on_users_but_loses_on_most_seeds_gets_no_mark():
    """Like cold-item Text-Tower vs MultiVAE: −0.002, +0.06, −0.003 per seed; the per-user test alone says ▲."""
    rng = random.Random(1)
    recs = []
    for seed, shift in zip(SEEDS, (-0.0021, 0.0602, -0.0030), strict=True):
        ref = [rng.random() * 0.4 + 0.05 for _ in range(300)]
        recs += [_rec("MultiVAE", seed, ref), _rec("Text-Tower", seed, [v + shift for v in ref], kind="plugin")]
    [lb] = aggregate(recs, implements={})
    row = next(r for r in lb.rows if r.label == "Text-Tower")
    c = row.significance
    assert lb.reference == "MultiVAE"
    # the secondary per-user Wilcoxon is overwhelming — it is what used to give this row its ▲ …
    assert c.users is not None and c.users.delta > 0 and c.users.p_value < 1e-10
    # … but over seeds the row lost twice in three runs: no mark, an interval that spans 0, a large p
    assert c.mark == "" and c.p_holm > 0.05 and c.ci_low < 0 < c.ci_high
    assert c.seeds == SEEDS and c.delta == pytest.approx((-0.0021 + 0.0602 - 0.0030) / 3, abs=1e-6)
    assert "▲" not in _table(to_markdown(lb)) and "| reference |" in to_markdown(lb)


def test_interval_and_p_are_the_paired_t_over_seeds_on_common_seeds_only():
    a = {2020: 0.31, 2021: 0.33, 2022: 0.30, 2023: 0.90}  # 2023: the reference never ran it
    b = {2020: 0.29, 2021: 0.30, 2022: 0.29}
    row = [_rec("X", s, test=v, kind="plugin") for s, v in a.items()]
    ref = [_rec("R", s, test=v) for s, v in b.items()]
    c = seed_test(row, ref, "ndcg@10", "R")
    d = np.array([a[s] - b[s] for s in (2020, 2021, 2022)])
    assert c.seeds == (2020, 2021, 2022) and c.delta == pytest.approx(d.mean())
    assert c.p_value == pytest.approx(ttest_rel([a[s] for s in b], list(b.values())).pvalue)
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert (c.ci_low, c.ci_high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    one = seed_test(row[:1], ref, "ndcg@10", "R")  # one common seed: a difference, no interval, no test
    assert one.seeds == (2020,) and one.p_value is None and one.ci_low is None
    assert user_test(row, ref, "ndcg@10") is None  # no per-user data: nothing secondary


def test_the_reference_is_the_best_baseline_on_validation_not_on_test():
    recs = []
    for s in SEEDS:
        recs += [_rec("BPR", s, test=0.30, valid=0.20), _rec("LightGCN", s, test=0.28 + (s - 2020) * 1e-3, valid=0.25),
                 _rec("Fusion", s, test=0.35, valid=0.30, kind="plugin")]
    [lb] = aggregate(recs, implements={})
    assert lb.rows[0].label == "Fusion" and lb.rows[1].label == "BPR"  # still sorted by test
    assert lb.reference == "LightGCN" and next(r for r in lb.rows if r.label == "LightGCN").is_reference
    assert "**LightGCN** (the baseline with the best mean *validation* NDCG@10)" in to_markdown(lb)


def _board_records() -> list[Record]:
    rng = random.Random(7)
    recs = []
    for seed in SEEDS:
        base = [rng.random() * 0.5 for _ in range(120)]
        # all baselines, so that the CLI need not load the plugins to learn what they implement (speed)
        recs += [_rec("BPR", seed, base, valid=0.9),
                 _rec("Pop", seed, [max(0.0, v - 0.1 - rng.random() * 0.05) for v in base]),
                 _rec("Fusion", seed, [v + 0.02 + rng.random() * 0.02 for v in base]),
                 _rec("Noise", seed, [v + rng.uniform(-0.01, 0.01) for v in base])]
    return recs


def _significance(board: Path) -> dict:
    data = json.loads((board / "leaderboard.json").read_text())
    return {"reference": data["reference"], **{r["label"]: r["significance"] for r in data["rows"]}}


def test_a_board_rebuilt_from_its_published_records_alone_reproduces_every_p_value(tmp_path):
    recs = _board_records()
    [lb] = aggregate(recs, implements={})
    write(lb, tmp_path / "first", recs)
    board = tmp_path / "first" / "ml-100k" / "default"
    published = board / "records"
    # per-user metrics beside each record, not in it
    for rec in recs:
        assert json.loads((published / f"{rec.cell_id}.json").read_text())["per_user"] == {}
        assert (published / f"{rec.cell_id}{PER_USER_SUFFIX}").is_file()
    back = {r.cell_id: r for r in published_records(published)}
    assert all(back[r.cell_id].per_user == r.per_user for r in recs)  # float64 round trip: exact

    res = CliRunner().invoke(app, ["leaderboard", "build", "--runs-dir", str(published), "--out", str(tmp_path / "second")])
    assert res.exit_code == 0, res.output
    first, second = _significance(board), _significance(tmp_path / "second" / "ml-100k" / "default")
    assert first == second  # every p-value, Holm p, interval and per-user test, exactly
    assert first["Fusion"]["mark"] == "▲" and first["Pop"]["mark"] == "▼"
    assert all(first[k]["users"]["p_value"] is not None for k in ("Fusion", "Pop", "Noise"))
    # a pruned row's per-user files go with its records
    prune(tmp_path / "first", "ml-100k", "default", "", Selection(labels=["Noise"]))
    assert not list(published.glob("Noise*")) and len(list(published.glob(f"*{PER_USER_SUFFIX}"))) == 9


def test_a_per_user_file_that_would_need_unpickling_is_ignored(tmp_path):
    evil = tmp_path / f"x{PER_USER_SUFFIX}"
    np.savez(evil, users=np.array([{"a": 1}, None], dtype=object), **{"ndcg@10": np.array([0.1, 0.2])})
    assert read_per_user(evil) is None  # allow_pickle=False: refused, not loaded
    short = tmp_path / f"y{PER_USER_SUFFIX}"
    np.savez(short, users=np.array(["a", "b"]), **{"ndcg@10": np.array([0.1])})
    assert read_per_user(short) is None
    (tmp_path / f"z{PER_USER_SUFFIX}").write_bytes(b"not a zip")
    assert read_per_user(tmp_path / f"z{PER_USER_SUFFIX}") is None


def test_a_budget_run_says_so_and_carries_no_marks(tmp_path):
    """Every row stopped by ``--epochs 1`` at its best epoch: differences that would be marked are not."""
    recs = []
    for s in SEEDS:
        capped = {"config": {"epochs": 1}, "best_epoch": 0, "epochs_run": 1}
        recs += [_rec("GRU4Rec", s, test=0.020 + (s - 2020) * 1e-3, **capped),
                 _rec("Pop", s, test=0.035, **capped), _rec("SASRec", s, test=0.010 + (s - 2020) * 2e-3, **capped)]
    [lb] = aggregate(recs, implements={})
    assert lb.budget
    tested = [r.significance for r in lb.rows if r.significance]
    assert tested and all(c.mark == "" for c in tested) and all(c.p_holm < 0.05 for c in tested)
    md = to_markdown(lb)
    assert md.startswith("# Leaderboard — ml-100k / default — budget run, not converged") and "▼" not in _table(md)
    write(lb, tmp_path, recs)
    build_site(tmp_path)
    page = (tmp_path / "ml-100k" / "default" / "index.html").read_text()
    assert "budget run, not converged" in page and "▼" not in page.split("<table")[1].split("</table>")[0]

    # a cap most rows peaked before: not a budget run, marks stand — but not for a row still improving at the cap
    done = [r.model_copy(update={"config": {"epochs": 300}, "best_epoch": 40 if r.label != "SASRec" else 299,
                                 "epochs_run": 300}) for r in recs]
    [lb] = aggregate(done, implements={})
    by = {r.label: r for r in lb.rows}
    assert not lb.budget and by["GRU4Rec"].significance.mark == "▼"
    assert by["SASRec"].capped and by["SASRec"].significance.mark == "" and by["SASRec"].significance.p_holm < 0.05
    assert "(p=" in to_markdown(lb) and " capped |" in to_markdown(lb)
    # the reference itself still improving at the cap: every comparison is against an unconverged row
    ref_capped = [r.model_copy(update={"best_epoch": 299}) if r.label == "Pop" else r for r in done]
    [lb] = aggregate(ref_capped, implements={})
    assert lb.budget and not any(r.significance.mark for r in lb.rows if r.significance)


def test_gnn_lightgcn_declares_what_it_implements():
    assert declared_implementations(["GNN-LightGCN", "GNN-NGCF", "BPR"]) == {"GNN-LightGCN": "LightGCN"}


def test_an_implementation_variant_is_compared_with_its_original_outside_the_ranking_and_holm(tmp_path):
    recs = []
    for i, s in enumerate(SEEDS):
        recs += [_rec("LightGCN", s, test=0.29 + i * 0.001, valid=0.25, epochs_run=100, train_time_s=300.0),
                 _rec("GNN-LightGCN", s, test=0.30 + i * 0.002, kind="plugin", epochs_run=100, train_time_s=100.0),
                 _rec("BPR", s, test=0.28 - i * 0.003, valid=0.20, epochs_run=50, train_time_s=50.0)]
    [lb] = aggregate(recs)  # the plugin's own declaration, through the registry
    by = {r.label: r for r in lb.rows}
    assert by["GNN-LightGCN"].implements == "LightGCN" and by["GNN-LightGCN"].significance is None
    assert [r.label for r in lb.ranked_rows] == ["LightGCN", "BPR"] and lb.reference == "LightGCN"
    assert by["BPR"].significance.p_holm == by["BPR"].significance.p_value  # a Holm family of one
    [impl] = lb.implementations
    assert impl.label == "GNN-LightGCN" and impl.implements == "LightGCN"
    assert impl.speedup == pytest.approx(3.0) and impl.comparison.delta == pytest.approx(0.011)
    assert impl.comparison.mark == "" and impl.comparison.seeds == SEEDS
    md = to_markdown(lb)
    ranking, table = md.split("## Implementations")
    assert "GNN-LightGCN" not in ranking and "| LightGCN | GNN-LightGCN | 3 |" in table and "3.00×" in table
    assert {row.split(",")[2]: row.split(",")[0] for row in to_csv(lb).splitlines()[1:]}["GNN-LightGCN"] == ""
    write(lb, tmp_path, recs)
    build_site(tmp_path)
    page = (tmp_path / "ml-100k" / "default" / "index.html").read_text()
    assert "id='implementations'" in page and "GNN-LightGCN" not in page.split("id='leaderboard'")[1].split("</table>")[0]
