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

import time
from pathlib import Path
from typing import Any

from m6rec_bench import artifacts
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine.twin import evaluate_model
from m6rec_bench.protocols import Protocol
from m6rec_bench.resolve import CellSpec
from m6rec_bench.results.record import Record

#: The extra-metrics group of a compressed cell's record.
GROUP = "compression"


def _on_cpu(model: Any) -> bool:
    return all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])


def measure(loaded: Any, method: Any, protocol: Protocol) -> dict[str, Any]:
    """Compress a loaded model and measure both: test metrics, size, speed (see the module doc)."""
    import torch

    from m6rec_bench import compress

    # both models are measured on the CPU (quantized kernels are CPU kernels), one after the other
    model = loaded.model if _on_cpu(loaded.model) else compress.copy_to_cpu(loaded.model)
    base_bytes = compress.model_bytes(model)
    base_speed = compress.scoring_speed(model, loaded.test_data)
    t0 = time.perf_counter()
    small = compress.apply(model, method)
    compress_s = time.perf_counter() - t0
    # a --device cuda cell: its compressed copy still scores on the CPU
    out = evaluate_model(loaded, small, protocol, device=torch.device("cpu"))
    size = compress.model_bytes(small)
    speed = compress.scoring_speed(small, loaded.test_data)
    return {
        **out, "n_params": compress.nonzero_params(small),
        "numbers": {"size_mb": size / 2**20, "base_size_mb": base_bytes / 2**20, "size_ratio": size / base_bytes,
                    "users_per_s": speed, "base_users_per_s": base_speed, "compress_s": compress_s},
    }


def measure_cell(spec: CellSpec, method: Any, protocol: Protocol, ds: PreparedDataset, twin: Record,
                 twin_path: Path) -> dict[str, Any]:
    """The record fields of a compressed cell (``spec.compress`` set) whose twin's record is ``twin``."""
    m = measure(artifacts.load(twin_path, prepared=ds), method, protocol)
    delta = {f"{k}_delta": m["test"][k] - twin.test[k] for k in ("ndcg@10", "recall@10") if k in m["test"] and k in twin.test}
    return {"test": m["test"], "extra_metrics": {**m["extra"], GROUP: {**m["numbers"], **delta}},
            "per_user": m["per_user"], "n_params": m["n_params"], "eval_time_s": round(m["eval_s"], 3)}


__all__ = ["GROUP", "measure", "measure_cell"]
