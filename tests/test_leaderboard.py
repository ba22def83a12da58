"""Aggregation and writers: mean ± std over seeds, ordering, failed/skipped rows, atomic files."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics

from m6rec_bench.leaderboard import aggregate, write
from m6rec_bench.leaderboard.writers import to_csv, to_markdown
from m6rec_bench.results import Record


def _rec(label, seed, ndcg, status="ok", reason=None, groups=None, created="2026-01-01T00:00:00"):
    # a cell id is a file name (records/<cell_id>.json): only path-name characters (m6rec_bench.names)
    return Record(cell_id=re.sub(r"[^A-Za-z0-9._-]", "_", f"{label}-{seed}-{created}"), status=status, reason=reason, dataset="ml-100k",
                  dataset_checksum="sha256:abc", protocol="default", model=label.split()[0], label=label,
                  model_kind="baseline", family="recbole", seed=seed, config={"epochs": 5},
                  test={"ndcg@10": ndcg, "recall@10": ndcg / 2} if status == "ok" else {},
                  valid={"ndcg@10": ndcg} if status == "ok" else {}, extra_metrics=groups or {},
                  train_time_s=1.0 if status == "ok" else None, created_at=created)


def test_mean_std_sorting_and_status_rows():
    recs = [_rec("BPR", 2020, 0.30), _rec("BPR", 2021, 0.32), _rec("BPR", 2022, 0.31),
            _rec("Pop", 2020, 0.10), _rec("Pop", 2021, 0.12),
            _rec("KG", 2020, 0, status="skipped", reason="dataset 'x' has no kg"),
            _rec("Bad", 2020, 0, status="failed", reason="RuntimeError: boom")]
    [lb] = aggregate(recs)
    assert [r.label for r in lb.rows][:2] == ["BPR", "Pop"]
    bpr = lb.rows[0]
    assert bpr.test["ndcg@10"].mean == statistics.fmean([0.30, 0.32, 0.31])
    assert bpr.test["ndcg@10"].std == statistics.stdev([0.30, 0.32, 0.31])
    assert bpr.seeds == [2020, 2021, 2022]
    by = {r.label: r for r in lb.rows}
    assert by["KG"].status == "skipped" and "no kg" in by["KG"].reason
    assert by["Bad"].status == "failed" and by["Bad"].test == {}
    md = to_markdown(lb)
    assert "0.3100 ± 0.0100" in md and "skipped: dataset 'x' has no kg" in md and "failed: RuntimeError: boom" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(lb))))
    assert rows[0]["model"] == "BPR" and float(rows[0]["test_ndcg@10_mean"]) == 0.31


def test_newest_record_wins_per_seed_and_partial_failures_are_shown():
    recs = [_rec("BPR", 2020, 0.20, created="2026-01-01T00:00:00"), _rec("BPR", 2020, 0.30, created="2026-01-02T00:00:00"),
            _rec("BPR", 2021, 0, status="failed", reason="OOM")]
    [lb] = aggregate(recs)
    row = lb.rows[0]
    assert row.test["ndcg@10"].mean == 0.30 and row.test["ndcg@10"].n == 1
    assert row.status == "ok (1 failed)" and row.reason == "OOM"


def test_extra_metric_groups_become_columns(tmp_path):
    g = {"cold": {"ndcg@10": 0.05, "recall@20": 0.1}, "warm": {"ndcg@10": 0.3, "recall@20": 0.4}}
    recs = [_rec("BPR", 2020, 0.3, groups=g)]
    [lb] = aggregate(recs)
    assert lb.groups == ["cold", "warm"]
    paths = write(lb, tmp_path)
    assert "cold NDCG@10" in paths["md"].read_text()
    data = json.loads(paths["json"].read_text())
    assert data["rows"][0]["groups"]["cold"]["ndcg@10"]["mean"] == 0.05
    assert not list(tmp_path.rglob("*.part"))


def _pu_rec(label, seed, values, kind="baseline"):
    rec = _rec(label, seed, float(sum(values) / len(values)))
    rec.model_kind = kind
    rec.per_user = {"users": [str(i) for i in range(len(values))], "ndcg@10": list(values)}
    return rec


def test_seed_paired_test_with_holm_marks_real_differences():
    """▲/▼ come from the paired t-test over seeds (Holm-corrected); the per-user Wilcoxon rides along."""
    import random

    rng = random.Random(0)
    recs = []
    for seed in (2020, 2021, 2022):
        base = [rng.random() * 0.5 for _ in range(200)]
        better = [v + 0.05 + rng.random() * 0.01 for v in base]
        same = [v + rng.choice([-1, 1]) * 1e-3 * rng.random() for v in base]
        worse = [max(0.0, v - 0.2) for v in base]
        recs += [_pu_rec("BPR", seed, base), _pu_rec("Fusion", seed, better, "plugin"),
                 _pu_rec("Noise", seed, same, "plugin"), _pu_rec("Pop", seed, worse)]
    [lb] = aggregate(recs, implements={})
    assert lb.reference == "BPR"
    by = {r.label: r for r in lb.rows}
    assert by["BPR"].is_reference and by["BPR"].significance is None
    fusion = by["Fusion"].significance
    assert fusion.mark == "▲" and fusion.p_holm < 0.05 and fusion.seeds == (2020, 2021, 2022)
    assert fusion.ci_low > 0.05 and fusion.ci_high < 0.06
    assert fusion.users is not None and fusion.users.n_users == 200 and fusion.users.p_value < 1e-6
    assert by["Pop"].significance.mark == "▼"
    assert by["Noise"].significance.mark == "" and by["Noise"].significance.p_holm > 0.05
    # Holm: corrected p-values are never smaller than the raw ones
    for r in ("Fusion", "Noise", "Pop"):
        assert by[r].significance.p_holm >= by[r].significance.p_value
    assert "▲" in to_markdown(lb)


def test_tuned_rows_get_their_own_board_and_a_command_that_retunes(tmp_path):
    untuned = [_rec("BPR", 2020, 0.30), _rec("BPR", 2021, 0.31)]
    tuned = [_rec("BPR", s, v, created="2026-01-02T00:00:00") for s, v in ((2020, 0.33), (2021, 0.34))]
    for rec in tuned:
        rec.config.update({"embedding_size": 128, "m6_tune_budget": 4, "m6_tune_epochs": 20})
    boards = {lb.slug: lb for lb in aggregate(untuned + tuned)}
    assert set(boards) == {"default", "default-tuned"}
    # newer tuned records do not replace the untuned ones: a tuned row never ranks beside an untuned one
    assert boards["default"].rows[0].test["ndcg@10"].mean == statistics.fmean([0.30, 0.31])
    row = boards["default-tuned"].rows[0]
    assert row.test["ndcg@10"].mean == statistics.fmean([0.33, 0.34])
    assert row.reproduce["command"].endswith("--seeds 2 --epochs 5 --tune-budget 4 --tune-epochs 20")
    assert row.reproduce["tuning"] == {"budget": 4, "epochs": 20}
    paths = write(boards["default-tuned"], tmp_path)
    assert paths["md"].parent == tmp_path / "ml-100k" / "default-tuned"
    assert paths["md"].read_text().startswith("# Leaderboard — ml-100k / default (tuned)")
    assert "4 Optuna TPE trials per model of ≤ 20 epochs each" in paths["md"].read_text()


def test_typed_run_options_and_their_fallback_from_old_m6_keys_read_the_same():
    """A record's run options (variant, method, tuning budget, reproduce command) are typed (``Record.run``);
    a record written before them derives the same options from its ``m6_*`` config keys and spec."""
    from m6rec_bench.results.record import RunOptions

    old = _rec("BPR [mmr]", 2021, 0.3).model_copy(update={
        "model": "BPR", "spec": {"dataset": "movielens"},
        "config": {"epochs": 5, "m6_rerank": "mmr", "m6_tune_budget": 8, "m6_tune_study": "s", "m6_tune_epochs": 3}})
    typed = RunOptions.of(protocol="default", model="BPR", epochs=5, rerank="mmr",
                          config={"m6_tune_budget": 8, "m6_tune_study": "s", "m6_tune_epochs": 3})
    assert old.run is None and old.options == typed
    assert typed.board == "tuned" and typed.tuning() == {"budget": 8, "study": "s", "epochs": 3}
    assert old.reproduce([2021, 2020]) == typed.command("movielens", [2021, 2020]) == (
        "m6bench run --dataset movielens --protocol default --models BPR --seeds 2 "
        "--epochs 5 --rerank mmr --tune-budget 8 --tune-epochs 3")
    assert typed.command("x", [2022]).endswith("--seeds 2022 --epochs 5 --rerank mmr --tune-budget 8 --tune-epochs 3")
    # the typed field wins over the config keys, and a record is written with it, or (old) without it
    new = _rec("BPR [int8]", 2020, 0.3).model_copy(update={"model": "BPR", "run": RunOptions.of(
        protocol="default", model="BPR", compress="int8")})
    assert new.options.variant == "compress" and new.options.method == "int8" and new.options.board == ""
    assert '"run"' in new.model_dump_json() and '"run"' not in old.model_dump_json()
    assert Record.model_validate_json(new.model_dump_json()).run == new.run
    [lb] = aggregate([new])
    assert lb.rows[0].reproduce["command"] == ("m6bench run --dataset ml-100k --protocol default --models BPR "
                                               "--seeds 1 --compress int8")
    ablation = RunOptions.of(protocol="default", model="M6-Fusion", label="M6-Fusion w/o KG")
    assert ablation.variant == "ablation" and ablation.command("d", [2020]).endswith("--seeds 1 --ablation")


def test_every_committed_board_reads_back_into_the_one_model_and_writes_the_same_json():
    """``Leaderboard.from_dict`` is ``to_dict`` read back: the HTML page, the README block and
    ``leaderboard show`` render the same typed board the md/csv/json writers do."""
    from pathlib import Path

    from m6rec_bench.leaderboard import Leaderboard
    from m6rec_bench.leaderboard.writers import WRITERS, to_json

    paths = sorted((Path(__file__).resolve().parents[1] / "leaderboards").rglob("leaderboard.json"))
    assert len(paths) >= 9
    for path in paths:
        text = path.read_text()
        lb = Leaderboard.from_dict(json.loads(text))
        assert to_json(lb) == text, path
        assert all(isinstance(r.significance.delta, float) for r in lb.rows if r.significance)
    assert {k: w.filename for k, w in WRITERS.items()} == {
        "md": "leaderboard.md", "csv": "leaderboard.csv", "json": "leaderboard.json", "html": "index.html"}
    assert [k for k, w in WRITERS.items() if not w.with_board] == ["html"]  # the page is written by publish


def test_a_board_of_another_shape_is_a_one_line_error_for_publish_and_show(tmp_path):
    from typer.testing import CliRunner

    from m6rec_bench.cli import app

    [lb] = aggregate([_rec("BPR", 2020, 0.3)])
    write(lb, tmp_path)
    board = tmp_path / "ml-100k" / "default" / "leaderboard.json"
    data = json.loads(board.read_text())
    del data["rows"][0]["seeds"]
    board.write_text(json.dumps(data))
    for args in (["publish", "--dir", str(tmp_path)], ["leaderboard", "show", "--dir", str(tmp_path)]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and "not a readable leaderboard" in res.output and "Traceback" not in res.output, res.output
        assert "m6bench leaderboard build" in res.output and "--out" in res.output


def test_a_post_training_rerun_without_the_old_config_key_is_the_same_configuration():
    """Older compressed / re-ranked records carried their method as ``m6_compress`` / ``m6_rerank`` in
    config; newer ones type it (``Record.run``). A rerun of such a cell merges as the same row
    configuration: nothing is reported replaced."""
    from m6rec_bench.leaderboard.board import configuration, merge
    from m6rec_bench.results.record import RunOptions

    old = _rec("BPR [int8]", 2020, 0.3).model_copy(update={"model": "BPR", "config": {"epochs": 5, "m6_compress": "int8"}})
    new = old.model_copy(update={"config": {"epochs": 5}, "created_at": "2026-02-01T00:00:00",
                                 "run": RunOptions.of(protocol="default", model="BPR", epochs=5, compress="int8")})
    assert old.options == new.options and configuration(old) == configuration(new)
    assert merge([old], [new]) == [new]
    other = new.model_copy(update={"config": {"epochs": 6}})
    assert configuration(other) != configuration(new)
