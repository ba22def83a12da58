"""What ``m6bench run`` shows while it works: the plan, progress with ETAs, boards as cells finish.

Two displays share one :class:`RunListener` (ETA bookkeeping and partial boards):

* on a terminal, rich progress bars (suite and running cell) with live ETAs;
* otherwise (``nohup m6bench run … > log``, CI, a Dask worker's log) plain lines with no ANSI
  codes: the first epoch of each cell and then one line every :data:`PLAIN_EVERY_S` seconds
  (cell, epoch, validation NDCG@10, elapsed, ETAs), and one line per finished cell.

After each computed cell the boards of its dataset and protocol are rewritten from the cells this
run has finished, titled *partial* until the suite completes, through the same
:func:`m6rec_bench.leaderboard.write` the end of the run uses.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task
from rich.table import Column
from rich.text import Text

from m6rec_bench.engine.cell import CellSpec
from m6rec_bench.engine.estimate import (
    Forecast,
    SuiteEstimate,
    cell_key,
    epoch_text,
    fmt_duration,
    fmt_eta,
    max_epochs,
    stopping_step,
)
from m6rec_bench.engine.suite import SuiteConfig, SuiteListener
from m6rec_bench.leaderboard import Leaderboard, aggregate, write
from m6rec_bench.results.record import Record
from m6rec_bench.tuning import TuningListener, TuningResult

#: Without a terminal, at most one epoch line per cell every this many seconds (besides its first epoch).
PLAIN_EVERY_S = 10.0


def write_boards(records: list[Record], out: Path, *, partial: bool) -> list[tuple[Leaderboard, dict[str, Path]]]:
    """Aggregate ``records`` and write their boards under ``out``; ``partial`` titles them as unfinished."""
    written = []
    for board in aggregate(records):
        board = replace(board, partial=partial)
        written.append((board, write(board, out, records)))
    return written


def plan_lines(est: SuiteEstimate, cfg: SuiteConfig) -> list[str]:
    """The plan as a short table that fits 80 columns: cells, models, seeds, protocols, estimate, outputs."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, cell in enumerate(est.cells):
        groups.setdefault((est.sizes[cell.dataset][0], cell.protocol), []).append(i)
    seeds = cfg.seed_list()
    models = {c.model for c in est.cells}
    shown_seeds = ", ".join(map(str, seeds[:4])) + (", …" if len(seeds) > 4 else "")
    lines = [f"Plan: {len(est.cells)} cells — {len(models)} models × {len(seeds)} seed{'s' if len(seeds) > 1 else ''} "
             f"({shown_seeds}), {est.jobs} at a time"]
    lines.append(f"  {'dataset':<16} {'protocol':<12} {'models':>6} {'cells':>6}  estimated time")

    def when(idx: Iterable[int]) -> str:
        secs = [est.seconds[i] for i in idx]
        known = sum(s for s in secs if s is not None) / max(1, est.jobs)
        return fmt_eta(known, sum(s is None for s in secs))

    for (dataset, protocol), idx in groups.items():
        n_models = len({est.cells[i].model for i in idx})
        lines.append(f"  {dataset[:16]:<16} {protocol[:12]:<12} {n_models:>6} {len(idx):>6}  {when(idx)}")
    if len(groups) > 1:
        lines.append(f"  {'total':<16} {'':<12} {len(models):>6} {len(est.cells):>6}  {when(range(len(est.cells)))}")
    ranked = sorted(((s, c.row) for c, s in zip(est.cells, est.seconds, strict=True) if s is not None), reverse=True)
    longest: dict[str, float] = {}
    for secs, row in ranked:
        longest.setdefault(row, secs)
    if len(longest) > 1:
        top = ", ".join(f"{row} {fmt_duration(s)}" for row, s in list(longest.items())[:3])
        lines.append(f"  longest cells: {top}")
    caps = sorted({max_epochs(c) for c in est.cells if not c.post_training})
    steps = sorted({stopping_step(c) for c in est.cells if not c.post_training})
    if caps:
        lines.append(f"  each cell: ≤{'/'.join(map(str, caps))} epochs, early stop after {'/'.join(map(str, steps))} "
                     "without validation gain")
    if cfg.tune_budget:
        head = f"  first: tuning, {cfg.tune_budget} Optuna trials per model"
        estimated = bool(est.tuning) and est.tuning_unknown < len(est.tuning)
        if estimated:
            studies = est.tuning_known / max(1, est.jobs)
            unknown = f" (+{est.tuning_unknown} unmeasured)" if est.tuning_unknown else ""
            lines.append(f"{head}: ~{fmt_duration(studies)}{unknown}")
        else:
            lines.append(f"{head}: not estimated (none measured)")
        lines.append("    (trial 0 = each model's defaults; Hyperband stops weak trials early)")
        if estimated:
            lines.append(f"  tuning + cells: {fmt_eta(est.wall_s, est.unknown + est.tuning_unknown)}")
    if est.priors.measured_on:
        lines.append(f"  estimates from {est.priors.measured_on}")
    lines.append(f"  records: {cfg.runs_dir}/")
    lines.append(f"  boards:  {cfg.leaderboard_dir}/<dataset>/<protocol>/leaderboard.md")
    return lines


def resume_hint(cfg: SuiteConfig, finished: int) -> str:
    """What to do after Ctrl-C: where the boards of the ``finished`` cells are and how to rebuild them."""
    runs, out = shlex.quote(str(cfg.runs_dir)), shlex.quote(str(cfg.leaderboard_dir))
    return (f"{finished} cell{'s' if finished != 1 else ''} finished: the boards under {out} show them "
            f"(titled partial); rebuild the boards from every record with: m6bench leaderboard build --runs-dir {runs} "
            f"--out {out}")


def _summary(rec: Record, reused: bool) -> tuple[str, str, str]:
    """A finished cell as (symbol, colour, plain text)."""
    name = f"{rec.label or rec.model} seed {rec.seed}"
    if rec.status == "ok":
        how = "reused" if reused else f"{rec.train_time_s:.1f}s train, best epoch {rec.best_epoch}"
        return "✓", "green", f"{name}: test NDCG@10 {rec.test.get('ndcg@10', float('nan')):.4f} ({how})"
    symbol, colour = ("–", "yellow") if rec.status == "skipped" else ("✗", "red")
    return symbol, colour, f"{name}: {rec.status}: {rec.reason}"


def rich_summary(rec: Record, reused: bool) -> str:
    symbol, colour, text = _summary(rec, reused)
    return f"[{colour}]{symbol}[/{colour}] {escape(text)}"  # "M6-Fusion [int8]" is not rich markup


class RunListener(SuiteListener, TuningListener):
    """ETA bookkeeping and partial boards; the displays below only decide how to show them."""

    def __init__(self, forecast: Forecast, out: Path) -> None:
        self.forecast = forecast
        self.out = out
        self.finished: list[Record] = []

    def cell_started(self, index: int, total: int, spec: CellSpec) -> None:
        self.forecast.cell_started(spec)

    def epoch(self, spec: CellSpec, epoch: int, score: float) -> None:
        self.forecast.epoch(spec, epoch, score)

    def cell_finished(self, index: int, total: int, spec: CellSpec, record: Record, reused: bool) -> None:
        self.forecast.cell_finished(spec, record, reused)
        self.finished.append(record)
        if not reused:  # reused cells join the next write: a resumed suite does not rewrite boards per cell
            same = [r for r in self.finished if (r.dataset, r.protocol) == (record.dataset, record.protocol)]
            write_boards(same, self.out, partial=True)

    def counter(self, spec: CellSpec | None = None) -> str:
        """``cell 3/11`` for a running cell, ``2/11 done`` for the suite."""
        total = len(self.forecast.planned)
        if spec is not None:
            return f"cell {self.forecast.order.get(cell_key(spec), '?')}/{total}"
        return f"{len(self.forecast.done)}/{total} done"

    def suite_eta(self) -> str:
        return fmt_eta(*self.forecast.suite_remaining())

    def cell_eta(self, spec: CellSpec) -> str:
        left = self.forecast.cell_remaining(spec)
        return "?" if left is None else f"~{fmt_duration(left)}"


class PlainListener(RunListener):
    """Plain lines for a log file: no ANSI codes, no carriage returns, flushed as they are written."""

    def __init__(self, forecast: Forecast, out: Path, every_s: float = PLAIN_EVERY_S) -> None:
        super().__init__(forecast, out)
        self.every_s = every_s
        self.last_line: dict[tuple[str, int], float] = {}

    def _echo(self, line: str) -> None:
        typer.echo(line)

    def cell_started(self, index: int, total: int, spec: CellSpec) -> None:
        super().cell_started(index, total, spec)
        self.last_line.pop((spec.row, spec.seed), None)

    def epoch(self, spec: CellSpec, epoch: int, score: float) -> None:
        super().epoch(spec, epoch, score)
        now = self.forecast.clock()
        last = self.last_line.get((spec.row, spec.seed))
        if last is not None and now - last < self.every_s:
            return
        self.last_line[(spec.row, spec.seed)] = now
        self._echo(f"[{self.counter(spec)}] {spec.row} seed {spec.seed} ({spec.protocol}): {epoch_text(spec, epoch + 1)}, "
                   f"valid NDCG@10 {score:.4f}; elapsed {fmt_duration(self.forecast.elapsed())}, "
                   f"cell ETA {self.cell_eta(spec)}, suite ETA {self.suite_eta()}")

    def cell_finished(self, index: int, total: int, spec: CellSpec, record: Record, reused: bool) -> None:
        super().cell_finished(index, total, spec, record, reused)
        symbol, _, text = _summary(record, reused)
        self._echo(f"[{self.counter()}] {symbol} {text}; elapsed {fmt_duration(self.forecast.elapsed())}, "
                   f"suite ETA {self.suite_eta()}")

    def tuning_started(self, result: TuningResult, to_run: int) -> None:
        self._echo(f"tuning {result.model} ({result.dataset}/{result.protocol}): {result.n_trials} of "
                   f"{result.budget} trials done, {to_run} to run")

    def trial_finished(self, model: str, trial: Any) -> None:
        self._echo(f"tuning {model}: trial {trial.number} {trial.state.name.lower()}")


class _Live(ProgressColumn):
    """A task's whole line, computed at each refresh (the ETAs count down between epochs).

    One folding column rather than bar + elapsed + ETA columns: on an 80-column terminal the
    epoch text alone takes most of a line, and rich would squeeze the other columns to ``…``.
    """

    def __init__(self) -> None:
        super().__init__(table_column=Column(overflow="fold", ratio=1))

    def render(self, task: Task) -> Text:
        fn = task.fields.get("line")
        return Text(fn() if fn else task.description)


class RichListener(RunListener):
    """Rich progress on a terminal: the suite (cells done, elapsed, ETA) and the running cell (epoch, ETA)."""

    def __init__(self, forecast: Forecast, out: Path, progress: Progress) -> None:
        super().__init__(forecast, out)
        self.progress = progress
        self.where = ""
        self.cell_line = ""
        self.cells = progress.add_task("suite", total=len(forecast.planned), line=self._suite_line)
        self.current = progress.add_task("", total=None, line=lambda: "")

    @staticmethod
    def columns() -> tuple[ProgressColumn, ...]:
        return (SpinnerColumn(), _Live())

    def _suite_line(self) -> str:
        return (f"suite {self.counter()}{self.where} · {fmt_duration(self.forecast.elapsed())} elapsed · "
                f"ETA {self.suite_eta()}")

    def _show(self, spec: CellSpec, text: str) -> None:
        self.cell_line = text
        self.progress.update(self.current, line=lambda: f"{self.cell_line} · ETA {self.cell_eta(spec)}")

    def cell_started(self, index: int, total: int, spec: CellSpec) -> None:
        super().cell_started(index, total, spec)
        self.where = f" ({spec.protocol})"
        self._show(spec, f"{self.counter(spec)} {spec.row} seed {spec.seed}: loading")

    def epoch(self, spec: CellSpec, epoch: int, score: float) -> None:
        super().epoch(spec, epoch, score)
        self._show(spec, f"{self.counter(spec)} {spec.row} seed {spec.seed} · {epoch_text(spec, epoch + 1)} · "
                         f"valid NDCG@10 {score:.4f}")

    def cell_finished(self, index: int, total: int, spec: CellSpec, record: Record, reused: bool) -> None:
        super().cell_finished(index, total, spec, record, reused)
        self.progress.update(self.cells, completed=len(self.forecast.done))
        self.progress.console.print(rich_summary(record, reused), highlight=False)

    def tuning_started(self, result: TuningResult, to_run: int) -> None:
        self.where = f" · tuning {result.model} ({result.protocol})"
        text = f"{result.model}: {result.n_trials} of {result.budget} trials done, {to_run} to run"
        self.progress.update(self.current, line=lambda: text)

    def trial_finished(self, model: str, trial: Any) -> None:
        text = f"{model}: trial {trial.number} {trial.state.name.lower()}"
        self.progress.update(self.current, line=lambda: text)
