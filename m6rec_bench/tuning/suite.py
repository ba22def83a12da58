"""``m6bench run --tune-budget N``: tune every model of a suite with the same budget, then run.

Each (dataset, protocol, model) is tuned on the suite's first seed with ``N`` trials (and the same
time budget, if one is given), on validation only. The best configuration then goes into the
overrides of every cell of that model — all seeds, ablation rows included — so the test run, its
config hash and its record carry the tuned settings, plus ``m6_tune_budget`` (and
``m6_tune_timeout``, ``m6_tune_study``) naming the budget. The studies live in the suite's runs
directory, so a rerun resumes them, and ``m6bench tune`` with the same settings fills the same study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine.cell import CellSpec
from m6rec_bench.models import registry
from m6rec_bench.tuning.study import TuningListener, TuningResult, quiet_optuna, tune

if TYPE_CHECKING:  # pragma: no cover
    from m6rec_bench.engine.suite import SuiteConfig


def tuned_overrides(result: TuningResult) -> dict[str, Any]:
    """What a tuned model adds to its cells' overrides: the best params and the budget."""
    if result.nothing_to_tune or result.best_trial is None:
        return {}
    out: dict[str, Any] = {**result.best_params, "m6_tune_budget": result.budget, "m6_tune_study": result.study_name}
    if result.timeout_s is not None:
        out["m6_tune_timeout"] = result.timeout_s
    return out


def tune_suite(
    cfg: SuiteConfig,
    cells: list[CellSpec],
    prepared: Mapping[str, PreparedDataset],
    listener: Any = None,
) -> tuple[list[CellSpec], list[TuningResult]]:
    """Tune each model of ``cells`` with ``cfg.tune_budget`` trials; return the cells with tuned overrides.

    A model with nothing to tune (Pop), a plugin the dataset cannot serve (its cells become
    ``skipped`` records) and a model none of whose trials finished keep their cells unchanged;
    the returned results say which.
    """
    if not cfg.tune_budget:
        return cells, []
    seed = cfg.seed_list()[0]
    hooks = listener if isinstance(listener, TuningListener) else None
    results: dict[tuple[str, str, str], TuningResult | None] = {}
    out: list[CellSpec] = []
    for spec in cells:
        key = (spec.dataset, spec.protocol, spec.model)
        if key not in results:
            entry = registry.get(spec.model)
            ds = prepared[spec.dataset]
            if set(entry.needs) - ds.features.provides():
                results[key] = None
            else:
                with quiet_optuna():
                    results[key] = tune(
                        entry.name, ds, n_trials=cfg.tune_budget, protocol=spec.protocol, epochs=cfg.epochs,
                        seed=seed, device=cfg.device, overrides=cfg.overrides.get(entry.name, {}),
                        timeout=cfg.tune_timeout, runs_dir=cfg.runs_dir, listener=hooks,
                    )
        result = results[key]
        extra = tuned_overrides(result) if result is not None else {}
        out.append(spec.model_copy(update={"overrides": {**extra, **spec.overrides}}) if extra else spec)
    return out, [r for r in results.values() if r is not None]
