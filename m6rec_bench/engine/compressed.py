"""A compressed cell: the trained model of its uncompressed twin, compressed and evaluated again.

``CellSpec(compress="int8")`` names the same (dataset, protocol, model, config, seed) as the cell
without ``compress``; that twin is trained (or its record and artifact reused), its artifact is
loaded, :mod:`m6rec_bench.compress` compresses a copy, and the copy goes through RecBole's
evaluator on the same test split. The record carries the compressed model's metrics and, in
``extra_metrics["compression"]``, the size and full-ranking speed of both models and the NDCG@10
change, all measured here, in one process, one after the other, on the CPU (also for a model
trained with ``--device cuda``: int8 kernels are CPU kernels, and speeds compare like for like).
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

#: The extra-metrics group of a compressed cell's record.
GROUP = "compression"


def _on_cpu(model: Any) -> bool:
    return all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])


def measure(loaded: Any, method: Any, protocol: Protocol) -> dict[str, Any]:
    """Compress a loaded model and measure both: test metrics, size, speed (see the module doc)."""
    from recbole.utils import get_trainer

    from m6rec_bench import compress
    from m6rec_bench.engine.cell import CellRun, _metrics, per_user_and_beyond

    import torch

    # both models are measured on the CPU (quantized kernels are CPU kernels), one after the other
    model = loaded.model if _on_cpu(loaded.model) else compress.copy_to_cpu(loaded.model)
    base_bytes = compress.model_bytes(model)
    base_speed = compress.scoring_speed(model, loaded.test_data)
    t0 = time.perf_counter()
    small = compress.apply(model, method)
    compress_s = time.perf_counter() - t0
    config = loaded.config
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, small)
    trainer.device = torch.device("cpu")  # a --device cuda cell: its compressed copy still scores on the CPU
    t1 = time.perf_counter()
    test = _metrics(trainer.evaluate(loaded.test_data, load_best_model=False, show_progress=False))
    eval_s = time.perf_counter() - t1
    size = compress.model_bytes(small)
    speed = compress.scoring_speed(small, loaded.test_data)
    run = CellRun(model=small, dataset=loaded.dataset, test_data=loaded.test_data, config=config,
                  train_data=loaded.train_data, valid_data=loaded.valid_data)
    per_user, beyond_group = per_user_and_beyond(run)
    return {
        "test": test, "eval_s": eval_s, "extra": {**protocol.extra_metrics(run), "beyond": beyond_group}, "per_user": per_user,
        "n_params": compress.nonzero_params(small),
        "numbers": {"size_mb": size / 2**20, "base_size_mb": base_bytes / 2**20, "size_ratio": size / base_bytes,
                    "users_per_s": speed, "base_users_per_s": base_speed, "compress_s": compress_s},
    }


def run_compressed(spec: Any, protocol: Protocol, ds: PreparedDataset, config_dict: dict[str, Any], cid: str,
                   base: dict[str, Any], *, store: RecordStore | None, command: str | None) -> Record:
    """Run a compressed cell (``spec.compress`` set) and return (and store) its record."""
    from m6rec_bench import compress

    method = compress.parse(spec.compress)
    config = {**config_dict, "m6_compress": method.name}
    with tempfile.TemporaryDirectory(prefix="m6bench-compress-") as tmp:
        twin_store = store if store is not None else RecordStore(tmp)
        twin, twin_path = trained_twin(spec, twin_store, command, ds)
        if twin.status != "ok":
            rec = Record(cell_id=cid, status=twin.status, config=config, **base,
                         reason=f"the uncompressed model is {twin.status}: {twin.reason}")
        else:
            try:
                with environment.PeakMemory() as mem:
                    m = measure(artifacts.load(twin_path, prepared=ds), method, protocol)
                delta = {f"{k}_delta": m["test"][k] - twin.test[k] for k in ("ndcg@10", "recall@10") if k in m["test"] and k in twin.test}
                rec = Record(
                    cell_id=cid, status="ok", config=config, valid=twin.valid, test=m["test"],
                    extra_metrics={**m["extra"], GROUP: {**m["numbers"], **delta}}, per_user=m["per_user"],
                    best_epoch=twin.best_epoch, epochs_run=twin.epochs_run, n_params=m["n_params"],
                    train_time_s=twin.train_time_s, eval_time_s=round(m["eval_s"], 3), peak_mem_mb=round(mem.peak_mb, 1),
                    **base,
                )
            except M6BenchError as exc:  # e.g. nothing in this model to prune: a row that says so
                rec = Record(cell_id=cid, status="skipped", reason=str(exc), config=config, **base)
            except Exception as exc:  # noqa: BLE001 - failure isolation, as for any cell
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                rec = Record(cell_id=cid, status="failed", reason=last, config=config, **base)
    if store is not None:
        store.put(rec)
    return rec
