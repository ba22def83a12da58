"""The ``m6bench run`` experience: plan and estimate, --dry-run, plain progress in logs, partial
boards while a suite runs, the Ctrl-C hint, and no empty folders after a failed command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.cli.progress import PlainListener
from m6rec_bench.engine import suite as suite_mod
from m6rec_bench.engine.cell import CellSpec
from m6rec_bench.engine.estimate import (
    PRIORS_FILE,
    Cost,
    Forecast,
    Priors,
    SuiteEstimate,
    build_priors,
    epoch_text,
    estimate_cell,
    shipped_priors,
)
from m6rec_bench.results.store import load_record

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def _run(ml100k_slice, tmp_path: Path, *extra: str, models: str = "Pop,ItemKNN"):
    args = ["run", "-d", str(ml100k_slice.folder), "-m", models, "--epochs", "2",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lb"), *extra]
    return runner.invoke(app, args)


def _board(tmp_path: Path, ml100k_slice) -> Path:
    return tmp_path / "lb" / ml100k_slice.name / "default"


# ---------------------------------------------------------------------------------- the plan


def test_dry_run_prints_the_plan_and_creates_nothing(ml100k_slice, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop,BPR", "--seeds", "2",
                              "--epochs", "3", "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "Plan: 4 cells — 2 models × 2 seeds (2020, 2021), 1 at a time"
    assert "estimated time" in lines[1]
    row = lines[2].split()
    assert row[:4] == [ml100k_slice.name, "default", "2", "4"] and row[4].startswith("~")
    assert "each cell: ≤3 epochs, early stop after 10 without validation gain" in res.output
    assert "records: runs/" in res.output and "boards:  leaderboards/<dataset>/<protocol>/leaderboard.md" in res.output
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert list(tmp_path.iterdir()) == []  # no runs/, no leaderboards/


def test_default_suite_plan_estimates_the_main_job_from_the_committed_records(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "--dataset", "movielens", "--dry-run"])
    assert res.exit_code == 0, res.output
    [row] = [line.split() for line in res.output.splitlines() if line.strip().startswith("ml-100k")]
    assert row[:4] == ["ml-100k", "default", "11", "11"]
    # benchmarks/priors_records: the 11 default models, one seed, took 5.5 min two at a time on a quiet
    # 2-core machine (621 s of cells); the tests run cells one at a time (M6BENCH_IN_PROCESS): ~11 min
    assert row[4].startswith("~") and row[4].endswith("m") and 9 <= int(row[4][1:-1]) <= 15, row
    assert "longest cells: M6-Fusion" in res.output
    assert list(tmp_path.iterdir()) == []


def test_shipped_priors_are_generated_from_the_committed_records():
    """cost_priors.json is what build_priors computes from leaderboards/**/records and the fresher
    records of benchmarks/priors_records — not typed by hand."""
    records = [r for p in sorted((REPO / "leaderboards").glob("**/records/*.json")) if (r := load_record(p))]
    fresh = [r for p in sorted((REPO / "benchmarks" / "priors_records").glob("*.json")) if (r := load_record(p))]
    assert len(fresh) == 11
    shipped = json.loads(PRIORS_FILE.read_text())
    assert build_priors(records, shipped["interactions"], fresh) == shipped
    assert build_priors(records, shipped["interactions"]) != shipped  # the fresher records count
    bpr = shipped_priors().cost("BPR", "BPR", "default")
    assert bpr is not None and bpr.epochs == 75 and 0.1 < bpr.s_per_epoch < 0.4  # RecBole's early stop after 75 epochs


def test_running_cell_eta_follows_its_own_pace_and_early_stopping():
    now = [0.0]
    spec = CellSpec(dataset="d", model="BPR", seed=1)
    priors = Priors(rows={"BPR": {"default": Cost(s_per_epoch=1.0, eval_s=0.0, epochs=50, n=3)}})
    est = SuiteEstimate([spec], [estimate_cell(spec, priors)], {"d": ("d", None)}, priors)
    fc = Forecast(est, clock=lambda: now[0])
    fc.cell_started(spec)
    assert fc.cell_remaining(spec) == pytest.approx(50 + 2.7)  # the prior: 50 epochs of 1 s + loading
    for epoch in range(10):  # this machine takes 2 s an epoch, the score still climbing
        now[0] += 2
        fc.epoch(spec, epoch, 0.1 + epoch / 100)
    assert fc.cell_remaining(spec) == pytest.approx((50 - 10) * 2)
    for epoch in range(10, 61):  # still improving at epoch 60: early stopping cannot come before epoch 72
        now[0] += 2
        fc.epoch(spec, epoch, 0.1 + epoch / 100)
    assert fc.cell_remaining(spec) == pytest.approx((60 + 10 + 2 - 61) * 2)
    capped = CellSpec(dataset="d", model="BPR", seed=1, epochs=65)
    assert epoch_text(capped, 61) == "epoch 61 (≤65, early stop after 10 without gain)"
    assert epoch_text(spec, 26) == "epoch 26 (≤300, early stop after 10 without gain)"


# ------------------------------------------------------------------------- progress in a log


def test_without_a_tty_each_epoch_and_cell_is_a_plain_line(ml100k_slice, tmp_path):
    res = _run(ml100k_slice, tmp_path, models="Pop,BPR")
    assert res.exit_code == 0, res.output
    assert "\x1b[" not in res.output and "\r" not in res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("Plan: 2 cells") and "estimated time" in lines[1]  # the plan comes first
    bpr_epoch = [line for line in lines if line.startswith("[cell 2/2] BPR seed 2020 (default): epoch 1 (≤2, early stop")]
    assert bpr_epoch and "valid NDCG@10 0." in bpr_epoch[0] and "cell ETA" in bpr_epoch[0] and "suite ETA" in bpr_epoch[0]
    done = [line for line in lines if line.startswith("[2/2 done] ✓ BPR seed 2020: test NDCG@10")]
    assert done and "elapsed" in done[0] and "suite ETA <1s" in done[0]


def test_plain_epoch_lines_are_throttled_to_one_every_n_seconds(tmp_path, monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(PlainListener, "_echo", lambda self, line: lines.append(line))
    now = [0.0]
    spec = CellSpec(dataset="d", model="BPR", seed=1)
    est = SuiteEstimate([spec], [None], {"d": ("d", None)}, Priors())
    listener = PlainListener(Forecast(est, clock=lambda: now[0]), tmp_path, every_s=10)
    listener.cell_started(0, 1, spec)
    for epoch in range(30):  # 30 epochs of 1 s: the first, then one line every 10 s
        now[0] += 1
        listener.epoch(spec, epoch, 0.2)
    assert [line.split(": ")[1].split(" (")[0] for line in lines] == ["epoch 1", "epoch 11", "epoch 21"]


def test_on_an_80_column_terminal_the_epoch_and_both_etas_are_shown_in_full(tmp_path):
    import io

    from rich.console import Console
    from rich.progress import Progress

    from m6rec_bench.cli.progress import RichListener

    now = [0.0]
    spec = CellSpec(dataset="d", model="BPR", seed=2020)
    priors = Priors(rows={"BPR": {"default": Cost(s_per_epoch=1.0, eval_s=0.0, epochs=50, n=3)}})
    est = SuiteEstimate([spec], [estimate_cell(spec, priors)], {"d": ("d", None)}, priors)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, color_system=None)
    progress = Progress(*RichListener.columns(), console=console, auto_refresh=False)
    listener = RichListener(Forecast(est, clock=lambda: now[0]), tmp_path, progress)
    listener.cell_started(0, 1, spec)
    for epoch in range(26):
        now[0] += 2
        listener.epoch(spec, epoch, 0.25)
    console.print(progress.get_renderable())
    shown = " ".join(screen.getvalue().split())
    assert "suite 0/1 done (default) · 52s elapsed · ETA ~48s" in shown
    assert "cell 1/1 BPR seed 2020 · epoch 26 (≤300, early stop after 10 without gain) · valid NDCG@10 0.2500 · ETA ~48s" in shown
    assert "…" not in shown and "/?" not in shown


# ---------------------------------------------------------------------------- partial boards


def test_board_is_written_as_cells_finish_and_marked_partial_until_the_suite_completes(ml100k_slice, tmp_path, monkeypatch):
    board = _board(tmp_path, ml100k_slice)
    seen: list[tuple[dict, str]] = []
    real = suite_mod.run_cell

    def spy(spec, **kw):
        if spec.model == "ItemKNN":  # the second cell starts: the first one's board is there already
            seen.append((json.loads((board / "leaderboard.json").read_text()), (board / "leaderboard.md").read_text()))
        return real(spec, **kw)

    monkeypatch.setattr(suite_mod, "run_cell", spy)
    res = _run(ml100k_slice, tmp_path)
    assert res.exit_code == 0, res.output
    [(mid_json, mid_md)] = seen
    assert mid_json["partial"] is True and [r["label"] for r in mid_json["rows"]] == ["Pop"]
    title = f"# Leaderboard — {ml100k_slice.name} / default"
    assert mid_md.splitlines()[0] == f"{title} (partial: suite still running or interrupted)"
    final = json.loads((board / "leaderboard.json").read_text())
    assert final["partial"] is False and {r["label"] for r in final["rows"]} == {"Pop", "ItemKNN"}
    assert (board / "leaderboard.md").read_text().splitlines()[0] == title


# ----------------------------------------------------------------------- failure and Ctrl-C


def _interrupt_at(model: str, monkeypatch) -> None:
    real = suite_mod.run_cell

    def cell(spec, **kw):
        if spec.model == model:
            raise KeyboardInterrupt
        return real(spec, **kw)

    monkeypatch.setattr(suite_mod, "run_cell", cell)


def test_ctrl_c_says_how_to_see_what_finished_and_that_the_command_resumes(ml100k_slice, tmp_path, monkeypatch):
    _interrupt_at("ItemKNN", monkeypatch)  # Pop has finished
    runs, lb = tmp_path / "my runs", tmp_path / "lb"
    res = runner.invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "Pop,ItemKNN", "--epochs", "2",
                              "--runs-dir", str(runs), "--out", str(lb)])
    assert res.exit_code == 130, res.output
    assert "run the same command again to resume" in res.output and "Traceback" not in res.output
    assert f"1 cell finished: the boards under {lb} show them (titled partial)" in res.output
    assert f"m6bench leaderboard build --runs-dir '{runs}' --out {lb}" in res.output
    data = json.loads((_board(tmp_path, ml100k_slice) / "leaderboard.json").read_text())
    assert data["partial"] is True and [r["label"] for r in data["rows"]] == ["Pop"]


@pytest.mark.parametrize("how", ["missing dataset folder", "Ctrl-C in the first cell"])
def test_a_failed_command_leaves_no_empty_folders(ml100k_slice, tmp_path, monkeypatch, how):
    kept = tmp_path / "kept"
    kept.mkdir()
    dataset = str(ml100k_slice.folder)
    if how == "missing dataset folder":
        dataset = str(tmp_path / "nowhere" / "ml-x")
    else:
        _interrupt_at("Pop", monkeypatch)
    res = runner.invoke(app, ["run", "-d", dataset, "-m", "Pop", "--epochs", "1",
                              "--runs-dir", str(tmp_path / "a" / "b" / "runs"), "--out", str(kept / "lb")])
    assert res.exit_code == (1 if how == "missing dataset folder" else 130), res.output
    assert "leaderboard build" not in res.output  # nothing finished: no boards to point at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]  # a/b/runs gone, parents included
    assert list(kept.iterdir()) == []  # lb gone, the folder that was there before kept


def test_tuning_is_estimated_from_the_trials_the_published_studies_trained():
    """Tuned records give each row's epochs per trial (uncapped Hyperband studies only) and the
    share of a default run that a trial trains; a study of N trials costs one default cell plus
    N - 1 such trials; a model with nothing to tune costs nothing; an unmeasured one is unknown."""
    from m6rec_bench.engine.estimate import estimate_suite, estimate_tuning
    from m6rec_bench.results.record import TuningSummary

    published = [r for p in sorted((REPO / "leaderboards/ml-100k/default/records").glob("*.json"))
                 if (r := load_record(p)) and r.tuning is None and r.status == "ok"]
    bpr = next(r for r in published if r.label == "BPR" and not r.options.variant)
    pop = next(r for r in published if r.label == "Pop")

    def tuned(rec, cell_id, study, note=None, trials=30, trial_epochs=0, tune_epochs=None):
        run = rec.options.model_copy(update={"tune_budget": 30, "tune_study": study, "tune_epochs": tune_epochs})
        return rec.model_copy(update={"cell_id": cell_id, "run": run, "tuning": TuningSummary(
            budget=30, trials=trials, trial_epochs=trial_epochs, study=study, note=note)})

    records = [bpr, pop,
               tuned(bpr, "t1", "bpr-study", trial_epochs=600),  # 20 epochs a trial
               tuned(bpr, "t2", "bpr-study", trial_epochs=600),  # another seed's cell of the same study: counted once
               tuned(bpr, "t3", "capped", trial_epochs=90, tune_epochs=3),  # --tune-epochs 3: not Hyperband's pace
               tuned(pop, "t4", "", note="nothing to tune", trials=0)]
    data = build_priors(records, {"ml-100k": 100000})
    epochs = data["rows"]["BPR"]["default"]["epochs"]
    assert data["rows"]["BPR"]["default"]["trial_epochs"] == 20.0
    assert data["rows"]["Pop"]["default"]["trial_epochs"] == 0.0
    assert data["trial_share"] == round(20.0 / epochs, 3)
    priors = Priors.from_json(data)
    cost = priors.cost("BPR", "BPR", "default")
    spec = CellSpec(dataset="ml-100k", model="BPR")
    one_trial = 20 * cost.s_per_epoch + cost.eval_s + 2.7
    assert estimate_tuning(spec, 30, priors) == pytest.approx(estimate_cell(spec, priors) + 29 * one_trial)
    assert estimate_tuning(spec, 30, priors, epochs_cap=5) < estimate_tuning(spec, 30, priors)
    assert estimate_tuning(CellSpec(dataset="ml-100k", model="Pop"), 30, priors) == 0.0
    # a row without tuned records: the share of its own default run's epochs
    no_trials = Priors(rows={"BPR": {"default": Cost(s_per_epoch=1.0, eval_s=0.0, epochs=50)}}, trial_share=0.2)
    assert estimate_tuning(spec, 11, no_trials) == pytest.approx((50 + 2.7) + 10 * (10 + 2.7))
    est = estimate_suite([spec, spec.model_copy(update={"seed": 2021}), CellSpec(dataset="ml-100k", model="NeuMF")],
                         jobs=2, priors=priors, tune_budget=30)
    assert set(est.tuning) == {("ml-100k", "default", "BPR"), ("ml-100k", "default", "NeuMF")}  # one study a model
    assert est.tuning_unknown == 1  # NeuMF: no cost measured in these priors
    assert est.wall_s == pytest.approx((est.tuning_known + sum(s for s in est.seconds if s is not None)) / 2)


def test_dry_run_of_a_tuned_suite_shows_the_tuning_estimate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "--dataset", "movielens", "-m", "BPR,Pop", "--tune-budget", "30", "--dry-run"])
    assert res.exit_code == 0, res.output
    line = next(line for line in res.output.splitlines() if "first: tuning" in line)
    assert "30 Optuna trials per model" in line and "trial 0 = each model's defaults" in res.output
    assert all(len(line) <= 80 for line in res.output.splitlines())
    if shipped_priors().trial_share is not None:  # the committed tuned board measured it
        assert "tuning + cells: ~" in res.output
    else:
        assert "not estimated (none measured)" in line
