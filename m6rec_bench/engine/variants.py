"""Post-training variants of a cell, chosen in one place from one registry.

A variant (``CellSpec.compress``, ``CellSpec.rerank``) takes the trained model of its plain twin
(:mod:`m6rec_bench.engine.twin`), changes it after training and evaluates it again: it never trains.
:data:`VARIANTS` maps each post-training field of :class:`~m6rec_bench.resolve.CellSpec` to how its
cell is measured; :func:`run_variant` is the one dispatch. Methods are parsed by
:func:`m6rec_bench.resolve.post_training_method` (the same parser the cell id uses), and the
method's name goes into the record's typed run options (``Record.run.method``), not its config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine import compressed, reranked
from m6rec_bench.engine.twin import TrainTwin, run_post_training
from m6rec_bench.protocols import Protocol
from m6rec_bench.resolve import POST_TRAINING, CellSpec, ResolvedCell, post_training_method
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore

#: ``measure(spec, method, protocol, dataset, twin_record, twin_record_path)`` → the variant's record fields.
Measure = Callable[[CellSpec, Any, Protocol, PreparedDataset, Record, Path], dict[str, Any]]


@dataclass(frozen=True)
class Variant:
    """One kind of post-training cell: its ``CellSpec`` field, how its twin is named in a reason, how it is measured."""

    field: str
    twin_name: str
    measure: Measure


VARIANTS: dict[str, Variant] = {
    "compress": Variant("compress", "the uncompressed model", compressed.measure_cell),
    "rerank": Variant("rerank", "the model without re-ranking", reranked.measure_cell),
}
assert tuple(VARIANTS) == POST_TRAINING, "every post-training field of CellSpec has one variant"


def run_variant(cell: ResolvedCell, base: dict[str, Any], *, store: RecordStore | None,
                train_twin: TrainTwin) -> Record:
    """Run a post-training cell (``cell.spec.variant`` set) and return (and store) its record.

    ``train_twin(spec, store, resume)`` runs the plain twin when its record or artifact is missing
    (the engine passes :func:`~m6rec_bench.engine.cell.run_cell`).
    """
    spec = cell.spec
    kind = spec.variant
    if kind is None:
        raise ValueError(f"cell {spec.row} has no post-training variant")
    variant = VARIANTS[kind]
    method = post_training_method(kind, getattr(spec, kind))
    base = {**base, "run": base["run"].model_copy(update={"method": method.name})}  # typed, not a config key
    config = cell.config

    def _measure(twin: Record, twin_path: Path) -> dict[str, Any]:
        return variant.measure(spec, method, cell.protocol, cell.dataset, twin, twin_path)

    return run_post_training(spec, cell.cell_id, base, config, store=store, train_twin=train_twin,
                             what=variant.twin_name, measure=_measure)


__all__ = ["VARIANTS", "Variant", "run_variant"]
