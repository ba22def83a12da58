"""A re-ranked cell: the trained model of its plain twin, its top-50 re-ranked into the top-10, evaluated again.

``CellSpec(rerank="linucb")`` names the same (dataset, protocol, model, config, seed) as the cell
without ``rerank``; that twin is trained (or its record and artifact reused,
:func:`m6rec_bench.engine.twin.trained_twin`), its artifact is loaded, :mod:`m6rec_bench.rerank`
learns the policy (LinUCB: by replay on the validation split, seeded with the cell's seed) and wraps
the model, and the wrapped model goes through RecBole's evaluator on the same test split. The record
carries the re-ranked model's test metrics, per-user metrics and ``beyond`` group, and, for LinUCB,
``extra_metrics["rerank"]`` (replay events, matched events, mean matched reward, the learned
weights). Validation metrics, epochs and training time are the twin's: nothing is retrained.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from typing import Any

from m6rec_bench import artifacts
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine import environment
from m6rec_bench.engine.twin import trained_twin
from m6rec_bench.errors import M6BenchError
from m6rec_bench.protocols import Protocol
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore


def measure(loaded: artifacts.Loaded, method: Any, protocol: Protocol, seed: int) -> dict[str, Any]:
    """Re-rank a loaded model's test users and evaluate it like any model (see the module doc)."""
    from recbole.utils import get_trainer

    from m6rec_bench import rerank
    from m6rec_bench.engine.cell import CellRun, _metrics, per_user_and_beyond

    out = rerank.fit_and_wrap(method, loaded.model, loaded.train_data, loaded.valid_data, loaded.test_data, seed=seed)
    config = loaded.config
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, out.model)
    t0 = time.perf_counter()
    test = _metrics(trainer.evaluate(loaded.test_data, load_best_model=False, show_progress=False))
    eval_s = time.perf_counter() - t0
    run = CellRun(model=out.model, dataset=loaded.dataset, test_data=loaded.test_data, config=config,
                  train_data=loaded.train_data, valid_data=loaded.valid_data)
    per_user, beyond_group = per_user_and_beyond(run)
    extra = {**protocol.extra_metrics(run), "beyond": beyond_group}
    if method.kind == "linucb":
        extra[rerank.GROUP] = out.group
    return {"test": test, "eval_s": eval_s + out.group["rerank_s"], "extra": extra, "per_user": per_user}


def run_reranked(spec: Any, protocol: Protocol, ds: PreparedDataset, config_dict: dict[str, Any], cid: str,
                 base: dict[str, Any], *, store: RecordStore | None, command: str | None) -> Record:
    """Run a re-ranked cell (``spec.rerank`` set) and return (and store) its record."""
    from m6rec_bench import rerank

    method = rerank.parse(spec.rerank)
    config = {**config_dict, "m6_rerank": method.name}
    with tempfile.TemporaryDirectory(prefix="m6bench-rerank-") as tmp:
        twin_store = store if store is not None else RecordStore(tmp)
        twin, twin_path = trained_twin(spec, twin_store, command, ds)
        if twin.status != "ok":
            rec = Record(cell_id=cid, status=twin.status, config=config, **base,
                         reason=f"the model without re-ranking is {twin.status}: {twin.reason}")
        else:
            try:
                with environment.PeakMemory() as mem:
                    m = measure(artifacts.load(twin_path, device=spec.device, prepared=ds), method, protocol, spec.seed)
                rec = Record(
                    cell_id=cid, status="ok", config=config, valid=twin.valid, test=m["test"],
                    extra_metrics=m["extra"], per_user=m["per_user"], best_epoch=twin.best_epoch,
                    epochs_run=twin.epochs_run, n_params=twin.n_params, train_time_s=twin.train_time_s,
                    eval_time_s=round(m["eval_s"], 3), peak_mem_mb=round(mem.peak_mb, 1), **base,
                )
            except M6BenchError as exc:
                rec = Record(cell_id=cid, status="skipped", reason=str(exc), config=config, **base)
            except Exception as exc:  # noqa: BLE001 - failure isolation, as for any cell
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                rec = Record(cell_id=cid, status="failed", reason=last, config=config, **base)
    if store is not None:
        store.put(rec)
    return rec


__all__ = ["measure", "run_reranked"]
