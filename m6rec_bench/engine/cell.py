"""Run one resolved cell — (dataset, protocol, model, config, seed) — through RecBole's own API.

A cell is resolved once (:func:`m6rec_bench.resolve.resolve`: every check, its dataset, split,
config and id), trained and evaluated by :mod:`m6rec_bench.training` (RecBole's ``run_recbole``
step for step, so a baseline run here gives the same numbers as raw RecBole; plugins go through the
very same trainer and evaluator), and leaves a record. A post-training cell (compressed,
re-ranked) goes to :func:`m6rec_bench.engine.variants.run_variant`, which is handed
:func:`run_cell` to train its plain twin.

The names of :mod:`m6rec_bench.resolve` and :mod:`m6rec_bench.training` are re-exported here for
the callers that import them from the engine.
"""

from __future__ import annotations

import traceback
from typing import Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine import environment, threads
from m6rec_bench.errors import M6BenchError
from m6rec_bench.models.registry import ModelEntry
from m6rec_bench.resolve import (  # noqa: F401 - re-exported: the engine's public names
    _VOLATILE,
    POST_TRAINING,
    CellSpec,
    ResolvedCell,
    build_config_dict,
    cell_id,
    check_device,
    check_protocol,
    code_of,
    plugin_settings,
    resolve,
    validate_spec,
)
from m6rec_bench.results.record import Record, RunConditions, RunOptions
from m6rec_bench.results.store import RecordStore
from m6rec_bench.training import (  # noqa: F401 - re-exported; run_cell calls train_and_evaluate through this module
    PER_USER_METRICS,
    Built,
    CellRun,
    EpochCallback,
    build,
    final_settings,
    metric_means,
    model_size,
    per_user_and_beyond,
    per_user_test_metrics,
    plugin_metrics,
    train_and_evaluate,
)

#: Old private names, kept for callers that still use them.
_plugin_settings, _metrics, _jsonable = plugin_settings, metric_means, final_settings


def _reusable(store: RecordStore, cid: str) -> Record | None:
    done = store.find(cid)
    if done is not None and done.status in ("ok", "skipped"):
        done._reused = True
        return done
    return None


def finished_record(spec: CellSpec, store: RecordStore, prepared: PreparedDataset | None = None) -> Record | None:
    """The ``ok`` or ``skipped`` record ``run_cell(spec, resume=True)`` would reuse from ``store``, or None.

    Lets a scheduler skip a finished cell without sending it to a worker; a cell whose dataset
    lacks what its plugin needs is left to :func:`run_cell` (it writes a fresh ``skipped`` record).
    """
    cell = resolve(spec, prepared)
    return _reusable(store, cell.cell_id) if cell.runnable else None


def run_cell(
    spec: CellSpec,
    *,
    store: RecordStore | None = None,
    resume: bool = True,
    on_epoch: EpochCallback | None = None,
    command: str | None = None,
    prepared: PreparedDataset | None = None,
    save_artifact: bool = True,
) -> Record:
    """Run one cell and return (and store) its record.

    Bad input (unknown model, protocol, device, config) raises :class:`UsageError` before anything
    runs (:func:`~m6rec_bench.resolve.resolve`). A model that fails while running becomes a
    ``failed`` record with the reason; a dataset lacking what a plugin needs gives a ``skipped``
    record. With ``resume``, a cell whose ``ok`` or ``skipped`` record exists in ``store`` is not
    run again. With ``save_artifact`` (and a store) the trained model is saved beside its record
    (:mod:`m6rec_bench.artifacts`).
    """
    from m6rec_bench import beyond

    cell = resolve(spec, prepared)
    entry, protocol, cid = cell.entry, cell.protocol, cell.cell_id
    base = _record_base(cell, command)
    if cell.missing:
        ds = cell.dataset
        rec = Record(cell_id=cid, status="skipped", config=cell.config, **base,
                     reason=f"dataset '{ds.name}' has no {', '.join(sorted(cell.missing))} (plugin needs {', '.join(sorted(entry.needs))})")
        if store is not None:
            store.put(rec)
        return rec

    if resume and store is not None:
        done = _reusable(store, cid)
        if done is not None:
            return done
    if spec.post_training:
        from m6rec_bench.engine.variants import run_variant

        def train_twin(twin: CellSpec, twin_store: RecordStore, twin_resume: bool) -> Record:
            return run_cell(twin, store=twin_store, resume=twin_resume, command=command, prepared=cell.dataset)

        return run_variant(cell, base, store=store, train_twin=train_twin)

    config_dict = cell.config
    plan = None
    if store is not None:  # a cell killed mid-training resumes from its last finished epoch
        from m6rec_bench.engine.checkpoint import CheckpointPlan, folder_for

        plan = CheckpointPlan(folder_for(store.root, cid), cid, resume=resume)
    load_start = threads.load()
    try:
        with environment.PeakMemory() as mem:
            run = train_and_evaluate(entry, cell.split, config_dict, on_epoch=on_epoch, checkpoints=plan)
            per_user, beyond_group = per_user_and_beyond(run)
            extra_metrics = {**protocol.extra_metrics(run), beyond.GROUP: beyond_group, **plugin_metrics(entry, run)}
        rec = Record(
            cell_id=cid, status="ok", config=config_dict, resolved_config=final_settings(run.config), valid=run.valid,
            test=run.test, extra_metrics=extra_metrics, per_user=per_user, best_epoch=run.best_epoch, epochs_run=run.epochs_run,
            n_params=run.n_params, n_trainable_params=run.n_trainable_params, n_buffers=run.n_buffers,
            setup_time_s=round(run.setup_time, 3), train_time_s=round(run.train_time, 3), eval_time_s=round(run.eval_time, 3),
            peak_mem_mb=round(mem.peak_mb, 1), conditions=run_conditions(load_start), **base,
        )
    except M6BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - failure isolation: one broken model must not stop a suite
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        rec = Record(cell_id=cid, status="failed", reason=last, config=config_dict, conditions=run_conditions(load_start),
                     **base)
    if store is not None:
        if rec.status == "ok" and save_artifact:
            _save_artifact(run, rec, store)
        store.put(rec)
        if plan is not None:
            plan.discard()
    return rec


def _record_base(cell: ResolvedCell, command: str | None) -> dict[str, Any]:
    """The fields every record of a cell carries, whatever its status."""
    spec, entry, ds = cell.spec, cell.entry, cell.dataset
    return {
        "dataset": ds.name, "dataset_checksum": ds.checksum, "protocol": cell.protocol.name, "model": entry.name,
        "label": row_label(spec, entry), "spec": spec.model_dump(mode="json", exclude={"tuning"}),
        "model_kind": entry.kind, "family": entry.family, "seed": spec.seed,
        "versions": {**environment.versions(), **({entry.package: entry.version} if entry.kind == "plugin" else {})},
        "hardware": environment.hardware(), "command": command if command is not None else environment.command_line(),
        "tuning": spec.tuning, "code": code_of(entry),
        "run": RunOptions.of(protocol=cell.protocol.name, model=entry.name, label=spec.label,
                             epochs=spec.epochs, compress=spec.compress, rerank=spec.rerank, config=spec.overrides),
    }


def failed_record(spec: CellSpec, reason: str, *, store: RecordStore | None = None, prepared: PreparedDataset | None = None,
                  command: str | None = None) -> Record:
    """The ``failed`` record of a cell whose run ended outside :func:`run_cell` — its worker process
    died (``os._exit``, a segfault in native code, the OOM killer), so no exception came back — with
    the same cell id as the run would have had. Stored when ``store`` is given; a ``failed`` record
    is never reused, so a rerun retries the cell."""
    cell = resolve(spec, prepared)
    rec = Record(cell_id=cell.cell_id, status="failed", reason=reason, config=cell.config, **_record_base(cell, command))
    if store is not None:
        store.put(rec)
    return rec


def run_conditions(load_start: float | None) -> RunConditions:
    """The machine load (at the cell's start and now) and the thread policy the cell ran under."""
    return RunConditions(load_start=load_start, load_end=threads.load(), **threads.conditions())


def row_label(spec: CellSpec, entry: ModelEntry) -> str:
    """A cell's leaderboard row name with the model's canonical spelling (``bpr`` → ``BPR``)."""
    return CellSpec(**{**spec.model_dump(), "label": spec.label or entry.name}).row


def _save_artifact(run: CellRun, rec: Record, store: RecordStore) -> None:
    """Save the trained model beside its record (before the record: a record's artifact is complete).

    A model whose state cannot be stored keeps its record, with no artifact and the reason in its log.
    """
    from m6rec_bench import artifacts

    folder = artifacts.folder_for(store.path_for(rec))
    try:
        artifacts.save(run, rec, folder)
    except (TypeError, ValueError, RuntimeError, OSError) as exc:
        import logging

        logging.getLogger(__name__).warning("no artifact for %s seed %s: %s", rec.label, rec.seed, exc)
        return
    rec.artifact = folder.name
