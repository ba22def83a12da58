"""``pipeline(cfg)``: the whole of ``m6bench run`` — tune → run → aggregate → write — as one call.

In the manner of PyKEEN's ``pipeline()``: the configuration is one typed object,
:class:`PipelineConfig` (the pydantic :class:`~m6rec_bench.engine.suite.SuiteConfig`, whose
fields are what a ``--config`` YAML file holds), or its fields as keyword arguments::

    from m6rec_bench.pipeline import pipeline

    result = pipeline(datasets=["ml-100k"], models=["BPR", "Pop"], epochs=5, seeds=2, tune_budget=4)
    result.boards  # [(Leaderboard, {"md": Path, "csv": Path, "json": Path}), …]

Layering: the pipeline calls tuning (:func:`m6rec_bench.tuning.tune_suite`) and the engine
(:func:`m6rec_bench.engine.suite.run_suite`); the engine never calls tuning — it runs the tuning step
the pipeline hands it, in its own worker pool, between planning and the cells. ``m6bench run``
(:mod:`m6rec_bench.cli.run`) is a thin wrapper over this function.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine.executors import Pool
from m6rec_bench.engine.suite import SuiteConfig, SuiteResult, run_suite
from m6rec_bench.errors import UsageError
from m6rec_bench.leaderboard import Leaderboard, aggregate, write
from m6rec_bench.listeners import SuiteListener
from m6rec_bench.resolve import CellSpec
from m6rec_bench.results.record import Record

#: The pipeline's configuration: every field is a setting of the run (and a key of a ``--config`` file).
PipelineConfig = SuiteConfig


@dataclass
class PipelineResult:
    """What :func:`pipeline` leaves: the records (plan order), the tuning results and the boards written."""

    config: PipelineConfig
    records: list[Record] = field(default_factory=list)
    reused: int = 0
    tuning: list[Any] = field(default_factory=list)  # m6rec_bench.tuning.TuningResult per tuned model
    boards: list[tuple[Leaderboard, dict[str, Path]]] = field(default_factory=list)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]


def tuning_step(cfg: PipelineConfig, listener: SuiteListener | None):
    """The tuning step of ``cfg`` (``tune_budget`` set) for :func:`~m6rec_bench.engine.suite.run_suite`."""

    def before_cells(cells: list[CellSpec], prepared: dict[str, PreparedDataset],
                     pool: Pool | None) -> tuple[list[CellSpec], list[Any]]:
        from m6rec_bench.tuning import tune_suite

        # one contained worker would run the studies one by one anyway, without their trial progress
        return tune_suite(cfg, cells, prepared, listener, pool=pool if pool is not None and pool.parallel else None)

    return before_cells


def write_boards(records: list[Record], out: Path, *, partial: bool = False) -> list[tuple[Leaderboard, dict[str, Path]]]:
    """Aggregate ``records`` and write their boards under ``out``; ``partial`` titles them as unfinished."""
    return [(board, write(board, out, records)) for board in (replace(b, partial=partial) for b in aggregate(records))]


def pipeline(cfg: PipelineConfig | None = None, /, *, listener: SuiteListener | None = None, command: str | None = None,
             write_leaderboards: bool = True, **settings: Any) -> PipelineResult:
    """Tune (``cfg.tune_budget``), run every cell (resuming finished ones), aggregate and write the boards.

    ``cfg`` is a :class:`PipelineConfig`; without one, ``settings`` are its fields
    (``pipeline(models=["BPR"], epochs=1)``), checked like a ``--config`` file (UsageError when bad).
    ``listener`` hears cells and epochs (and, being a ``TuningListener`` too, trials); ``command`` is
    the command line the records carry. ``write_leaderboards=False`` stops after the records.
    """
    if cfg is None:
        cfg = PipelineConfig.validated(**settings)
    elif settings:
        raise UsageError(f"give either a config or its fields, not both (got {', '.join(sorted(settings))})")
    if cfg.datasets == []:
        raise UsageError("no dataset given: use --dataset movielens (m6bench datasets list)")
    before = tuning_step(cfg, listener) if cfg.tune_budget else None
    suite: SuiteResult = run_suite(cfg, listener, command=command, before_cells=before)
    result = PipelineResult(config=cfg, records=suite.records, reused=suite.reused, tuning=suite.tuning)
    if write_leaderboards:
        result.boards = write_boards(result.records, cfg.leaderboard_dir, partial=False)
    return result


__all__ = ["PipelineConfig", "PipelineResult", "pipeline", "tuning_step", "write_boards"]
