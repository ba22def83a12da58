"""The plain twin of a post-training cell: the same (dataset, protocol, model, config, seed) trained as usual.

A compressed cell (:mod:`m6rec_bench.engine.compressed`) and a re-ranked cell
(:mod:`m6rec_bench.engine.reranked`) never train: they load the trained artifact of the cell that has
neither ``compress`` nor ``rerank`` set. When its record (or artifact) is missing, the twin is run
by the ``train_twin`` callable the engine passes in (:func:`m6rec_bench.engine.cell.run_cell`), so
this module never imports the cell runner.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from m6rec_bench import artifacts
from m6rec_bench.engine import environment
from m6rec_bench.errors import M6BenchError
from m6rec_bench.protocols import Protocol
from m6rec_bench.resolve import CellSpec
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore

#: Runs a plain cell into a store and returns its record: ``train_twin(spec, store, resume)``.
TrainTwin = Callable[[CellSpec, RecordStore, bool], Record]


def trained_twin(spec: CellSpec, store: RecordStore, train_twin: TrainTwin) -> tuple[Record, Path]:
    """The twin's record and record path, training it when needed (or again when an older record has no artifact)."""
    twin = spec.twin()
    rec = train_twin(twin, store, True)
    if rec.status == "ok" and not artifacts.folder_for(store.path_for(rec)).is_dir():
        rec = train_twin(twin, store, False)  # older record: no artifact
    return rec, store.path_for(rec)


def evaluate_model(loaded: artifacts.Loaded, model: Any, protocol: Protocol, device: Any = None) -> dict[str, Any]:
    """``model`` (the twin's loaded model, compressed or wrapped) through RecBole's evaluator on the
    twin's test split: test metrics, evaluation seconds, the protocol's groups plus ``beyond``, and
    the per-user metrics. ``device`` overrides where the trainer scores (e.g. the CPU)."""
    from recbole.utils import get_trainer

    from m6rec_bench import beyond
    from m6rec_bench.training import CellRun, metric_means, per_user_and_beyond

    config = loaded.config
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if device is not None:
        trainer.device = device
    t0 = time.perf_counter()
    test = metric_means(trainer.evaluate(loaded.test_data, load_best_model=False, show_progress=False))
    eval_s = time.perf_counter() - t0
    run = CellRun(model=model, dataset=loaded.dataset, test_data=loaded.test_data, config=config,
                  train_data=loaded.train_data, valid_data=loaded.valid_data)
    per_user, beyond_group = per_user_and_beyond(run)
    return {"test": test, "eval_s": eval_s, "extra": {**protocol.extra_metrics(run), beyond.GROUP: beyond_group},
            "per_user": per_user}


def run_post_training(spec: CellSpec, cid: str, base: dict[str, Any], config: dict[str, Any], *,
                      store: RecordStore | None, train_twin: TrainTwin, what: str,
                      measure: Callable[[Record, Path], dict[str, Any]]) -> Record:
    """Run a post-training cell and return (and store) its record.

    The twin is trained or reused (:func:`trained_twin`); ``measure(twin, twin_path)`` returns the
    record fields the variant measured (``test``, ``extra_metrics``, ``per_user``, ``n_params``,
    ``eval_time_s``); validation metrics, epochs, set-up and training time are the twin's. A twin that did
    not finish ``ok`` gives a record with its status (``what`` names it in the reason); a
    :class:`M6BenchError` while measuring gives a ``skipped`` row, anything else a ``failed`` one.
    """
    with tempfile.TemporaryDirectory(prefix="m6bench-post-") as tmp:
        twin_store = store if store is not None else RecordStore(tmp)
        twin, twin_path = trained_twin(spec, twin_store, train_twin)
        if twin.status != "ok":
            rec = Record(cell_id=cid, status=twin.status, config=config, **base,
                         reason=f"{what} is {twin.status}: {twin.reason}")
        else:
            try:
                with environment.PeakMemory() as mem:
                    fields = measure(twin, twin_path)
                rec = Record(cell_id=cid, status="ok", config=config, valid=twin.valid, best_epoch=twin.best_epoch,
                             epochs_run=twin.epochs_run, setup_time_s=twin.setup_time_s, train_time_s=twin.train_time_s,
                             peak_mem_mb=round(mem.peak_mb, 1), **fields, **base)
            except M6BenchError as exc:  # e.g. nothing in this model to prune: a row that says so
                rec = Record(cell_id=cid, status="skipped", reason=str(exc), config=config, **base)
            except Exception as exc:  # noqa: BLE001 - failure isolation, as for any cell
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                rec = Record(cell_id=cid, status="failed", reason=last, config=config, **base)
    if store is not None:
        store.put(rec)
    return rec


__all__ = ["TrainTwin", "evaluate_model", "run_post_training", "trained_twin"]
