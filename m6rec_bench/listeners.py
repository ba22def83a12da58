"""What a front end (the CLI's progress displays) hears while a suite runs or a model is tuned.

No-op base classes, kept in a module that imports nothing heavy, so ``m6bench --help`` and a typo
error need not import the engine or Optuna to define a display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from optuna.trial import FrozenTrial

    from m6rec_bench.engine.cell import CellSpec
    from m6rec_bench.results.record import Record
    from m6rec_bench.tuning.study import TuningResult


class SuiteListener:
    """Hooks a front end (the CLI's progress display) receives; all no-ops by default."""

    def cell_started(self, index: int, total: int, spec: CellSpec) -> None: ...
    def epoch(self, spec: CellSpec, epoch: int, score: float) -> None: ...
    def cell_finished(self, index: int, total: int, spec: CellSpec, record: Record, reused: bool) -> None: ...


class TuningListener:
    """Hooks a front end receives while a model is tuned; all no-ops by default."""

    def tuning_started(self, result: TuningResult, to_run: int) -> None: ...
    def trial_started(self, model: str, number: int, index: int, total: int) -> None: ...
    def trial_epoch(self, model: str, number: int, epoch: int, score: float) -> None: ...
    def trial_finished(self, model: str, trial: FrozenTrial) -> None: ...
