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

from pathlib import Path
from typing import Any

from m6rec_bench import artifacts
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine.twin import evaluate_model
from m6rec_bench.protocols import Protocol
from m6rec_bench.resolve import CellSpec
from m6rec_bench.results.record import Record


def measure(loaded: artifacts.Loaded, method: Any, protocol: Protocol, seed: int) -> dict[str, Any]:
    """Re-rank a loaded model's test users and evaluate it like any model (see the module doc)."""
    from m6rec_bench import rerank

    out = rerank.fit_and_wrap(method, loaded.model, loaded.train_data, loaded.valid_data, loaded.test_data, seed=seed)
    m = evaluate_model(loaded, out.model, protocol)
    if method.kind == "linucb":
        m["extra"][rerank.GROUP] = out.group
    return {**m, "eval_s": m["eval_s"] + out.group["rerank_s"]}


def measure_cell(spec: CellSpec, method: Any, protocol: Protocol, ds: PreparedDataset, twin: Record,
                 twin_path: Path) -> dict[str, Any]:
    """The record fields of a re-ranked cell (``spec.rerank`` set) whose twin's record is ``twin``."""
    m = measure(artifacts.load(twin_path, device=spec.device, prepared=ds), method, protocol, spec.seed)
    return {"test": m["test"], "extra_metrics": m["extra"], "per_user": m["per_user"], "n_params": twin.n_params,
            "eval_time_s": round(m["eval_s"], 3)}


__all__ = ["measure", "measure_cell"]
