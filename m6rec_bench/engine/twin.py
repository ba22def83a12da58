"""The plain twin of a post-training cell: the same (dataset, protocol, model, config, seed) trained as usual.

A compressed cell (:mod:`m6rec_bench.engine.compressed`) and a re-ranked cell
(:mod:`m6rec_bench.engine.reranked`) never train: they load the trained artifact of the cell that has
neither ``compress`` nor ``rerank`` set, which is run here when its record (or artifact) is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from m6rec_bench import artifacts
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore

#: CellSpec fields that make a cell a post-training variant of its twin.
POST_TRAINING = ("compress", "rerank")


def trained_twin(spec: Any, store: RecordStore, command: str | None, ds: PreparedDataset) -> tuple[Record, Path]:
    """The twin's record and record path, training it when needed (or again when an older record has no artifact)."""
    from m6rec_bench.engine.cell import run_cell

    twin = spec.model_copy(update={k: None for k in POST_TRAINING})
    rec = run_cell(twin, store=store, resume=True, command=command, prepared=ds)
    if rec.status == "ok" and not artifacts.folder_for(store.path_for(rec)).is_dir():
        rec = run_cell(twin, store=store, resume=False, command=command, prepared=ds)  # older record: no artifact
    return rec, store.path_for(rec)


__all__ = ["POST_TRAINING", "trained_twin"]
